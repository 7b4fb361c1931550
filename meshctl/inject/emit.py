"""A small, fast YAML emitter for plain data (dict, list, str, int, float, bool, None).

Block style as kubectl writes it (keys in the order of the mapping, sequences not indented
under their key), strings plain when that is unambiguous, literal blocks for multi-line text,
double-quoted (JSON escapes, valid YAML) otherwise. Several times faster than PyYAML's emitter
on Kubernetes manifests, which matters when a file holds thousands of workloads.
"""
from __future__ import annotations

import datetime
import json
import math
import re

_PLAIN = re.compile(r"^[A-Za-z_/$][-A-Za-z0-9_./$()@,=+:]*(?: [-A-Za-z0-9_./$()@,=+:]+)*$")
_RESERVED = frozenset({
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
})
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]")


def _escape(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\u{c:04x}" if c <= 0xFFFF else f"\\U{c:08x}"


def quote(s: str) -> str:
    """A single-quoted YAML scalar when `s` is one printable line, else a double-quoted one (JSON
    escapes, and \\u escapes for what YAML must not see raw)."""
    if "\n" not in s and "\r" not in s and "\t" not in s and not _UNPRINTABLE.search(s):
        return "'" + s.replace("'", "''") + "'"
    return _UNPRINTABLE.sub(_escape, json.dumps(s, ensure_ascii=False))


def _scalar_str(s: str, cache: dict) -> str:
    out = cache.get(s)
    if out is None:
        if _PLAIN.fullmatch(s) and s.lower() not in _RESERVED and ": " not in s and not s.endswith(":"):
            out = s
        else:
            out = quote(s)
        cache[s] = out
    return out


def _scalar(v, cache: dict) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        text = repr(v)
        if "." not in text:  # YAML 1.1 floats need a dot: 1e+100 → 1.0e+100
            mant, _, exp = text.partition("e")
            text = f"{mant}.0" + (f"e{exp if exp[0] in '+-' else '+' + exp}" if exp else "")
        return text
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()  # a YAML timestamp, read back as one
    return _scalar_str(str(v), cache)


def _block(s: str) -> str | None:
    """A literal block header + body lines for a multi-line string, or None when unsafe."""
    if "\n" not in s or "\t" in s or "\r" in s or _UNPRINTABLE.search(s):
        return None
    if s.endswith("\n\n") or s.startswith((" ", "\n")):
        return None
    lines = s[:-1].split("\n") if s.endswith("\n") else s.split("\n")
    if any(line != line.rstrip(" ") for line in lines):
        return None
    return ("|" if s.endswith("\n") else "|-"), lines


class _Memo:
    """Emitted lines of shared (never modified) nodes, by (id, indent)."""

    def __init__(self, frozen: set, lines: dict) -> None:
        self.frozen = frozen
        self.lines = lines


def _emit(v, indent: str, out: list, cache: dict, memo: "_Memo | None" = None) -> None:
    """Append the lines of a block collection `v` at `indent`."""
    if memo is not None and id(v) in memo.frozen:
        key = (id(v), indent)
        lines = memo.lines.get(key)
        if lines is None:
            lines = []
            _emit(v, indent, lines, cache)
            memo.lines[key] = lines
        out.extend(lines)
        return
    if isinstance(v, dict):
        for k, item in v.items():
            key = _scalar(k, cache)
            _emit_entry(key + ":", item, indent, out, cache, False, memo)
    else:
        for item in v:
            _emit_entry("-", item, indent, out, cache, True, memo)


def _emit_entry(head: str, item, indent: str, out: list, cache: dict, in_list: bool, memo=None) -> None:
    if isinstance(item, dict):
        if not item:
            out.append(f"{indent}{head} {{}}")
        elif in_list:
            # "- key: value" with the rest of the mapping aligned under the first key
            sub: list = []
            _emit(item, indent + "  ", sub, cache, memo)
            first = sub[0]
            out.append(f"{indent}- {first[len(indent) + 2:]}")
            out.extend(sub[1:])
        else:
            out.append(f"{indent}{head}")
            _emit(item, indent + "  ", out, cache, memo)
    elif isinstance(item, list):
        if not item:
            out.append(f"{indent}{head} []")
        elif in_list:
            sub = []
            _emit(item, indent + "  ", sub, cache, memo)
            out.append(f"{indent}- {sub[0][len(indent) + 2:]}")
            out.extend(sub[1:])
        else:
            out.append(f"{indent}{head}")
            _emit(item, indent, out, cache, memo)  # sequences not indented under their key
    elif isinstance(item, str) and "\n" in item:
        block = _block(item)
        if block is None:
            out.append(f"{indent}{head} {quote(item)}")
        else:
            style, lines = block
            out.append(f"{indent}{head} {style}")
            pad = indent + "  "
            out.extend(pad + line if line else "" for line in lines)
    else:
        out.append(f"{indent}{head} {_scalar(item, cache)}")


def dump(doc, cache: dict | None = None, frozen: set | None = None, memo: dict | None = None) -> str:
    """One YAML document (no leading '---') for a mapping or a sequence. Nodes whose id is in
    `frozen` are known never to change: their lines are kept in `memo` and reused."""
    cache = {} if cache is None else cache
    m = _Memo(frozen, memo if memo is not None else {}) if frozen else None
    if isinstance(doc, (dict, list)):
        if not doc:
            return ("{}" if isinstance(doc, dict) else "[]") + "\n"
        out: list = []
        _emit(doc, "", out, cache, m)
        return "\n".join(out) + "\n"
    return _scalar(doc, cache) + "\n"

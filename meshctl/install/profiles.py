"""Values of an install: a profile, then each `-f values.yaml`, then each `--set a.b[0].c=v`.

The merged dict is checked against values.schema.json (beside this file). Problems are one-line
InputErrors naming the key path (`components.pilot.replicas`) or the file and line, with a
did-you-mean for misspelt keys.
"""
from __future__ import annotations

import copy
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from meshctl.errors import InputError, shown
from meshctl.loader import json_loads
from meshctl.paths import profiles_dir

_SCHEMA_PATH = Path(__file__).resolve().parent / "values.schema.json"
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$")
_SEGMENT = re.compile(r"^(?P<key>(?:[^\[\]\\]|\\.)+)?(?P<idx>(?:\[[0-9]+\])*)$")


# --- profiles -----------------------------------------------------------------------------------

def list_profiles() -> list[str]:
    """Names of the built-in profiles (profiles/<name>.yaml), sorted."""
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def profile_path(name: str) -> Path:
    names = list_profiles()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"unknown profile {name!r}",
                         hint=f"{hint}profiles: {', '.join(names)} (see 'meshctl profile list')")
    return profiles_dir() / f"{name}.yaml"


@lru_cache(maxsize=None)
def _profile_values(name: str) -> dict:
    return _read_yaml(profile_path(name), what="profile")


def profile_values(name: str) -> dict:
    """The values of a built-in profile (a fresh copy)."""
    return copy.deepcopy(_profile_values(name))


# --- files --------------------------------------------------------------------------------------

def _read_yaml(path: Path | str, what: str = "values file") -> dict:
    import yaml

    from meshctl.loader import safe_load_all
    name = str(path)
    try:
        if name == "-":  # kubectl's convention: -f - reads standard input
            import sys

            name = "<stdin>"
            raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        else:
            with open(path, "rb") as fh:
                raw = fh.read()
    except FileNotFoundError:
        raise InputError(f"{what} {name}: no such file", hint="check the path given to -f") from None
    except IsADirectoryError:
        raise InputError(f"{what} {name} is a directory", hint="-f takes a YAML file of values") from None
    except OSError as e:
        raise InputError(f"{what} {name}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: not a UTF-8 text file", hint="-f takes a YAML file of values") from None
    try:
        docs = [d for d in safe_load_all(text) if d is not None]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(e.problem or e.context or "invalid YAML").split())
        raise InputError(f"{name}{line}: invalid YAML: {problem}", hint="fix the YAML syntax at that line") from None
    except yaml.YAMLError as e:
        raise InputError(f"{name}: invalid YAML: {' '.join(str(e).split())}") from None
    if not docs:
        return {}
    if len(docs) > 1:
        raise InputError(f"{name}: holds {len(docs)} YAML documents; a values file holds one mapping")
    if not isinstance(docs[0], dict):
        raise InputError(f"{name}:1: a values file must be a mapping of keys, not a {type(docs[0]).__name__}",
                         hint="see 'meshctl profile dump sidecar' for the shape")
    if docs[0].get("kind") == "IstioOperator":
        raise InputError(f"{name}: is an IstioOperator; a values file is a plain mapping of install values",
                         hint="move spec.hub, spec.tag and spec.meshConfig to the top level and "
                              "spec.values.global.* under global (see 'meshctl profile dump sidecar')")
    return docs[0]


def merge(base: Any, override: Any) -> Any:
    """Deep merge: mappings merge key by key, anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


# --- --set --------------------------------------------------------------------------------------

def parse_value(text: str) -> Any:
    """Type a --set value: true/false, null, integers and floats are typed; a value in quotes
    stays a string (--set tag='"1.0"'); [..] and {..} are read as JSON; anything else is a string."""
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    low = s.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("null", "~"):
        return None
    if _INT.match(s):
        return int(s)
    if _FLOAT.match(s):
        return float(s)
    if s[:1] in ("[", "{"):
        try:
            return json_loads(s)
        except ValueError:
            raise InputError(f"--set value {text!r} looks like JSON but is not valid JSON",
                             hint="quote it to keep it a string: --set key='\"text\"'") from None
    return text


def parse_path(path: str) -> list[str | int]:
    """`a.b[0].c` → ['a', 'b', 0, 'c']; a dot inside a key is written `\\.`."""
    if not path:
        raise InputError("--set needs key=value, got an empty key", hint="e.g. --set components.pilot.replicas=2")
    parts: list[str] = []
    cur = ""
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path):
            cur += path[i:i + 2]
            i += 2
            continue
        if ch == ".":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    out: list[str | int] = []
    for part in parts:
        m = _SEGMENT.match(part)
        if not part or not m or m.group("key") is None:
            raise InputError(f"--set key {path!r} is malformed",
                             hint="use dotted keys and [N] list indexes, e.g. a.b[0].c=v")
        if m.group("key") is not None:
            out.append(re.sub(r"\\(.)", r"\1", m.group("key")))
        out.extend(int(x) for x in re.findall(r"\[([0-9]+)\]", m.group("idx")))
    return out


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            key = str(step).replace(".", "\\.")
            out += f".{key}" if out else key
    return out or "(top level)"


def apply_set(values: dict, expr: str) -> dict:
    """Apply one `--set a.b[0].c=v` to `values` (in place) and return it."""
    key, sep, raw = expr.partition("=")
    if not sep:
        raise InputError(f"--set {expr!r} has no '='", hint="use --set key.path=value")
    path = parse_path(key.strip())
    value = parse_value(raw)
    node: Any = values
    for i, step in enumerate(path):
        last = i == len(path) - 1
        nxt: Any = {} if last or isinstance(path[i + 1], str) else []
        where = format_path(path[:i]) if i else "the values"
        if isinstance(step, int):
            if not isinstance(node, list):
                raise InputError(f"--set {key}: {where} is not a list", hint="drop the [N] index")
            if step > len(node):
                raise InputError(f"--set {key}: index {step} is past the end of {where} ({len(node)} items)",
                                 hint=f"use an index from 0 to {len(node)} (= append)")
            if step == len(node):
                node.append(value if last else nxt)
            elif last:
                node[step] = value
            elif not isinstance(node[step], (dict, list)):
                node[step] = nxt
            node = node[step]
        else:
            if not isinstance(node, dict):
                raise InputError(f"--set {key}: {where} is not a mapping")
            if last:
                node[step] = value
            else:
                if not isinstance(node.get(step), (dict, list)) or (
                        isinstance(node.get(step), list) != isinstance(nxt, list)):
                    node[step] = nxt
                node = node[step]
    return values


# --- validation ---------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def schema() -> dict:
    with open(_SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


class SchemaError:
    """One problem found by `check`: the keyword that failed, where, and what was there."""

    __slots__ = ("validator", "validator_value", "absolute_path", "instance", "message")

    def __init__(self, validator: str, validator_value: Any, path: list, instance: Any, message: str):
        self.validator = validator
        self.validator_value = validator_value
        self.absolute_path = path
        self.instance = instance
        self.message = message


_TYPES = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    "null": lambda x: x is None,
}


def check(node: dict, value: Any, path: list | None = None, root: dict | None = None) -> list[SchemaError]:
    """Validate `value` against the subset of JSON Schema values.schema.json uses ($ref, type,
    enum, const, not, properties, additionalProperties, required, items, minItems, minimum,
    maximum, minLength, maxLength, pattern). A small checker instead of the jsonschema package
    keeps `manifest generate` quick to start; tests check that both agree."""
    root = root if root is not None else node
    path = path or []
    errors: list[SchemaError] = []
    while "$ref" in node:
        node = {**root["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    want = node.get("type")
    if want is not None:
        kinds = want if isinstance(want, list) else [want]
        if not any(_TYPES[k](value) for k in kinds):
            return [SchemaError("type", want, path, value, f"{value!r} is not of type {want}")]
    if "enum" in node and not any(value == e and type(value) is type(e) for e in node["enum"]):
        errors.append(SchemaError("enum", node["enum"], path, value, f"{value!r} is not one of {node['enum']}"))
    if "const" in node and value != node["const"]:
        errors.append(SchemaError("const", node["const"], path, value, f"{node['const']!r} was expected"))
    if "not" in node and not check(node["not"], value, path, root):
        errors.append(SchemaError("not", node["not"], path, value, f"{value!r} is not allowed"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in node and value < node["minimum"]:
            errors.append(SchemaError("minimum", node["minimum"], path, value, "too small"))
        if "maximum" in node and value > node["maximum"]:
            errors.append(SchemaError("maximum", node["maximum"], path, value, "too large"))
    if isinstance(value, str):
        if "minLength" in node and len(value) < node["minLength"]:
            errors.append(SchemaError("minLength", node["minLength"], path, value, f"{value!r} is too short"))
        if "maxLength" in node and len(value) > node["maxLength"]:
            errors.append(SchemaError("maxLength", node["maxLength"], path, value, f"{value!r} is too long"))
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(SchemaError("pattern", node["pattern"], path, value,
                                      f"{value!r} does not match {node['pattern']!r}"))
    if isinstance(value, list):
        if "minItems" in node and len(value) < node["minItems"]:
            errors.append(SchemaError("minItems", node["minItems"], path, value, "should be non-empty"))
        if "items" in node:
            for i, item in enumerate(value):
                errors.extend(check(node["items"], item, path + [i], root))
    if isinstance(value, dict):
        for name in node.get("required", ()):
            if name not in value:
                errors.append(SchemaError("required", node["required"], path, value,
                                          f"{name!r} is a required property"))
        props = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        unknown = [k for k in value if k not in props]
        if extra is False and unknown:
            errors.append(SchemaError("additionalProperties", False, path, value,
                                      f"unknown keys {sorted(map(str, unknown))}"))
        for k, v in value.items():
            if k in props:
                errors.extend(check(props[k], v, path + [k], root))
            elif isinstance(extra, dict):
                errors.extend(check(extra, v, path + [k], root))
    return errors


def _subschema(path: Iterable[str | int]) -> dict:
    """The schema of the mapping at `path` (following $ref), for did-you-mean suggestions."""
    root = schema()
    node = root
    for step in path:
        while "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        if isinstance(step, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(step, {})
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "a mapping"


def _error_message(err) -> tuple[str, str | None]:
    path = list(err.absolute_path)
    where = format_path(path)
    v = err.validator
    if v == "additionalProperties":
        known = sorted(_subschema(path).get("properties", {}))
        extra = sorted(k for k in err.instance if k not in known)
        name = extra[0] if extra else "?"
        full = format_path(path + [name])
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            return f"unknown key {full}; did you mean {format_path(path + [close[0]])}?", None
        return f"unknown key {full}", (f"keys of {where}: {', '.join(known)}" if known else None)
    if v == "type":
        names = {"object": "a mapping", "array": "a list"}
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        want_text = " or ".join(names.get(w, w) for w in want)
        hint = None
        if "string" in want and isinstance(err.instance, (int, float, bool)):
            text = json.dumps(err.instance)
            hint = (f"quote the value to keep it a string: {where}: \"{text}\" in a values file, "
                    f"--set {where}='\"{text}\"' on the command line")
        return f"{where}: expected {want_text}, got {_describe(err.instance)}", hint
    if v == "enum":
        allowed = ", ".join(json.dumps(x) for x in err.validator_value)
        return f"{where}: {_describe(err.instance)} is not one of {allowed}", None
    if v in ("minimum", "maximum"):
        word = "at least" if v == "minimum" else "at most"
        return f"{where}: {err.instance} must be {word} {err.validator_value}", None
    if v == "required":
        return f"{where}: {err.message}", None
    if v in ("pattern", "maxLength", "minLength") and path == ["revision"]:
        return (f"revision {shown(err.instance)} is not a valid name",
                "use lower-case letters, digits and '-', at most 40 characters, e.g. 1-24-0 or canary")
    if v == "pattern":
        return f"{where}: {_describe(err.instance)} does not match {err.validator_value}", None
    return f"{where}: {' '.join(err.message.split())}", None


def validate(values: dict, where: str | None = None) -> dict:
    """Check merged values against the schema; raise a one-line InputError for the first problem
    (prefixed with `where`, the file or flag the values came from, when given)."""
    errors = sorted(check(schema(), values),
                    key=lambda e: ([str(p) for p in e.absolute_path], e.validator != "additionalProperties"))
    if errors:
        # prefer the most specific (deepest) error of the first path
        msg, hint = _error_message(errors[0])
        raise InputError(f"{where}: {msg}" if where else msg, hint=hint)
    return values


def load_values(profile: str, files: Iterable[str] = (), sets: Iterable[str] = (),
                revision: str | None = None) -> dict:
    """The validated values: profile, then each -f file, then each --set, then --revision."""
    values = profile_values(profile)
    for f in files or ():  # each file is checked as it is merged, so an error names its file
        values = validate(merge(values, _read_yaml(f)), where=f"-f {'<stdin>' if f == '-' else f}")
    for expr in sets or ():
        # istioctl users write install values as `--set values.global.x=y`; these values have
        # no `values.` level, so the prefix is dropped (as `meshctl inject --set` does)
        apply_set(values, expr[len("values."):] if expr.startswith("values.") else expr)
    if revision is not None:
        values["revision"] = revision
    if values.get("revision") == "default":  # istioctl's name for the control plane without a revision
        values["revision"] = ""
    return validate(_follow_namespace(values, profile))


def _follow_namespace(values: dict, profile: str) -> dict:
    """global.istioNamespace follows `namespace` unless it was set too; the two must agree."""
    base = _profile_values(profile)
    ns = values.get("namespace")
    g = values.get("global")
    if not isinstance(g, dict) or not isinstance(ns, str):
        return values
    if ns != base.get("namespace") and g.get("istioNamespace") == base["global"]["istioNamespace"]:
        g["istioNamespace"] = ns
    if g.get("istioNamespace") != ns:
        raise InputError(f"namespace {ns!r} and global.istioNamespace {g.get('istioNamespace')!r} differ",
                         hint="set only namespace: global.istioNamespace follows it")
    return values


def complete_profile(incomplete: str) -> list[str]:
    """Shell completion of profile names."""
    try:
        return [p for p in list_profiles() if p.startswith(incomplete)]
    except Exception:  # completion must never fail loudly
        return []

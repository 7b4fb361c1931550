"""Minimal in-place edits of one YAML document inside a file (GitOps-friendly).

Given the text of a file, the composed node of one document (from the loader's CSafeLoader, with
line marks) and the document's old and new values, `patch_document` changes only the text of the
values that differ: a changed weight rewrites just that number, a new key or list item is inserted
as new lines, a removed one loses its lines. Everything else (other documents, comments, key order,
quoting, blank lines) stays byte-identical. The result is re-parsed and compared with the wanted
value before it is returned; when a fine-grained edit is not safe (flow style, odd layouts), the
smallest enclosing collection is rewritten instead.
"""
from __future__ import annotations

import difflib
import json
import re
from typing import Any

import yaml

from meshctl.errors import InputError

_PLAIN = re.compile(r"^[A-Za-z0-9_/][A-Za-z0-9_./@-]*$")


class _Unsafe(Exception):
    """A fine-grained edit cannot be made here; rewrite the enclosing collection."""


class _IndentDumper(yaml.SafeDumper):
    """Block sequences indented under their key (`key:\\n  - a`), the other common style."""

    def increase_indent(self, flow=False, indentless=False):  # noqa: D401 - PyYAML hook
        return super().increase_indent(flow, False)


def _scalar(value: Any, style: str | None = None) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else json.dumps(value)
    text = str(value)
    if style == "'":
        return "'" + text.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(text)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


class _Doc:
    def __init__(self, text: str, line_offset: int):
        self.text = text
        self.nl = "\r\n" if "\r\n" in text else "\n"
        self.offset = line_offset
        self.starts = [0]
        for m in re.finditer("\n", text):
            self.starts.append(m.end())
        self.edits: list[tuple[int, int, str]] = []
        self.indentless = True

    # positions
    def pos(self, mark) -> int:
        return self.starts[mark.line + self.offset] + mark.column

    def end(self, node) -> int:
        while node.id in ("mapping", "sequence") and not node.flow_style and node.value:
            node = node.value[-1][1] if node.id == "mapping" else node.value[-1]
        p = self.pos(node.end_mark)
        if node.id == "scalar" and node.style in ("|", ">"):
            while p > 0 and self.text[p - 1] in "\r\n":
                p -= 1
        return p

    def line_start(self, p: int) -> int:
        return self.text.rfind("\n", 0, p) + 1

    def line_end(self, p: int) -> int:
        """Just past the newline ending the line that holds position p."""
        n = self.text.find("\n", p)
        return len(self.text) if n < 0 else n + 1

    # rendering
    def block(self, value: Any, col: int) -> str:
        """`value` as block YAML whose first line starts at column `col` (already positioned)."""
        if not isinstance(value, (dict, list)) or not value:
            return _scalar(value) if not isinstance(value, (dict, list)) else json.dumps(value)
        dumper = yaml.SafeDumper if self.indentless else _IndentDumper
        out = yaml.dump(value, Dumper=dumper, default_flow_style=False, sort_keys=False, width=10**9,
                        allow_unicode=True)
        lines = out.rstrip("\n").split("\n")
        return lines[0] + "".join(self.nl + " " * col + ln for ln in lines[1:])

    def key_value(self, key: str, value: Any, col: int) -> str:
        if isinstance(value, (dict, list)) and value:
            inner = col + (0 if isinstance(value, list) and self.indentless else 2)
            return f"{_scalar(key)}:{self.nl}{' ' * inner}{self.block(value, inner)}"
        return f"{_scalar(key)}: {self.block(value, col)}"

    # edits
    def replace(self, node, new: Any) -> None:
        start, end = self.pos(node.start_mark), self.end(node)
        if node.id == "scalar":
            if isinstance(new, (dict, list)):
                text = json.dumps(new)
            else:
                text = _scalar(new, node.style if node.style in ("'", '"') else None)
        elif node.flow_style or not isinstance(new, (dict, list)) or not new or \
                (node.id == "mapping") != isinstance(new, dict):
            text = json.dumps(new) if isinstance(new, (dict, list)) else _scalar(new)
        else:
            text = self.block(new, node.start_mark.column)
        self.edits.append((start, end, text))

    def diff(self, node, old: Any, new: Any) -> None:
        if old == new and type(old) is type(new):
            return
        try:
            if isinstance(old, dict) and isinstance(new, dict) and node.id == "mapping":
                if not node.flow_style:
                    self._diff_mapping(node, old, new)
                    return
                pairs = {k.value: v for k, v in node.value if k.id == "scalar"}
                if set(old) == set(new) == set(pairs) and len(pairs) == len(node.value):
                    for key in old:  # same keys in a flow mapping: change the values in place
                        self.diff(pairs[key], old[key], new[key])
                    return
            if isinstance(old, list) and isinstance(new, list) and node.id == "sequence" and old and new:
                if not node.flow_style:
                    self._diff_sequence(node, old, new)
                    return
                if len(old) == len(new) == len(node.value):
                    for item, a, b in zip(node.value, old, new):
                        self.diff(item, a, b)
                    return
        except _Unsafe:
            pass
        self.replace(node, new)

    def _diff_mapping(self, node, old: dict, new: dict) -> None:
        pairs = {k.value: (k, v) for k, v in node.value if k.id == "scalar"}
        if set(pairs) != set(old) or not node.value:
            raise _Unsafe()
        pending: list[tuple[int, int, str]] = []
        for key in old:
            if key not in new:
                knode, vnode = pairs[key]
                ks = self.pos(knode.start_mark)
                ls = self.line_start(ks)
                if self.text[ls:ks].strip():
                    raise _Unsafe()  # e.g. the first key of a list item (`- key:`)
                pending.append((ls, self.line_end(self.end(vnode)), ""))
        if len(pending) == len(old) and not [k for k in new if k not in old]:
            raise _Unsafe()  # would empty the mapping
        added = [k for k in new if k not in old]
        if added:
            col = node.value[0][0].start_mark.column
            at = self.line_end(self.end(node))
            lead = "" if at == 0 or self.text[at - 1] == "\n" else self.nl
            text = lead + "".join(" " * col + self.key_value(k, new[k], col) + self.nl for k in added)
            pending.append((at, at, text))
        sub = _Doc.__new__(_Doc)
        sub.__dict__.update(self.__dict__)
        sub.edits = []
        for key in old:
            if key in new:
                knode, vnode = pairs[key]
                if vnode.id != "scalar" and vnode.flow_style and not vnode.value and not old[key] \
                        and isinstance(new[key], (dict, list)) and new[key]:
                    # `key: []` becoming a collection: write it in block style under the key
                    col = knode.start_mark.column
                    inner = col + (0 if isinstance(new[key], list) and self.indentless else 2)
                    pending.append((self.pos(knode.end_mark), self.end(vnode),
                                    f":{self.nl}{' ' * inner}{self.block(new[key], inner)}"))
                    continue
                sub.diff(vnode, old[key], new[key])
        self.edits.extend(pending + sub.edits)

    def _dash(self, item) -> int:
        """Start of the `- ` line holding a block sequence item; _Unsafe if the line has more."""
        p = self.pos(item.start_mark)
        ls = self.line_start(p)
        before = self.text[ls:p]
        if not re.fullmatch(r"[ \t]*-[ \t]+", before):
            raise _Unsafe()
        return ls

    def _item_text(self, value: Any, dash_col: int) -> str:
        return " " * dash_col + "- " + self.block(value, dash_col + 2) + self.nl

    def _diff_sequence(self, node, old: list, new: list) -> None:
        items = node.value
        if len(items) != len(old):
            raise _Unsafe()
        first = self._dash(items[0])
        dash_col = self.text.index("-", first) - first
        keyed_old = [json.dumps(v, sort_keys=True, default=str) for v in old]
        keyed_new = [json.dumps(v, sort_keys=True, default=str) for v in new]
        ops = difflib.SequenceMatcher(a=keyed_old, b=keyed_new, autojunk=False).get_opcodes()
        pending: list[tuple[int, int, str]] = []
        sub = _Doc.__new__(_Doc)
        sub.__dict__.update(self.__dict__)
        sub.edits = []
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                continue
            pairs = _align(old[i1:i2], new[j1:j2])
            paired_old = {i for i, _ in pairs}
            partner = dict((j, i) for i, j in pairs)
            for i in range(i1, i2):  # delete the old items nothing pairs with
                if i - i1 not in paired_old:
                    pending.append((self._dash(items[i]), self.line_end(self.end(items[i])), ""))
            inserts: dict[int, list[Any]] = {}
            for j in range(j1, j2):
                if j - j1 in partner:
                    i = i1 + partner[j - j1]
                    sub.diff(items[i], old[i], new[j])
                    continue
                later = [i1 + partner[jj - j1] for jj in range(j, j2) if jj - j1 in partner]
                nxt = later[0] if later else i2
                inserts.setdefault(nxt, []).append(new[j])
            for nxt, values in inserts.items():
                at = self._dash(items[nxt]) if nxt < len(items) else self.line_end(self.end(items[-1]))
                lead = "" if at == 0 or self.text[at - 1] == "\n" else self.nl
                pending.append((at, at, lead + "".join(self._item_text(v, dash_col) for v in values)))
        if len(new) == 0:
            raise _Unsafe()
        self.edits.extend(pending + sub.edits)

    def apply(self) -> str:
        out = self.text
        last = None
        for start, end, text in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            if last is not None and end > last:
                raise _Unsafe()
            out = out[:start] + text + out[end:]
            last = start
        return out


def _similarity(a: Any, b: Any) -> float:
    """Structural similarity in 0..1: dicts by their keys' values, lists by aligned items."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        if not keys:
            return 1.0
        return sum(_similarity(a[k], b[k]) for k in keys if k in a and k in b) / len(keys)
    if isinstance(a, list) and isinstance(b, list):
        if not a and not b:
            return 1.0
        pairs = _align(a, b, threshold=0.0)
        return 2 * sum(_similarity(a[i], b[j]) for i, j in pairs) / (len(a) + len(b))
    return 1.0 if a == b and type(a) is type(b) else 0.0


def _align(a: list, b: list, threshold: float = 0.2) -> list[tuple[int, int]]:
    """Order-preserving pairs (i, j) of similar items maximizing total similarity."""
    m, n = len(a), len(b)
    sim = [[_similarity(x, y) for y in b] for x in a]
    best = [[0.0] * (n + 1) for _ in range(m + 1)]
    for i in range(m - 1, -1, -1):
        for j in range(n - 1, -1, -1):
            take = sim[i][j] + best[i + 1][j + 1] if sim[i][j] > threshold else -1.0
            best[i][j] = max(best[i + 1][j], best[i][j + 1], take)
    pairs, i, j = [], 0, 0
    while i < m and j < n:
        if sim[i][j] > threshold and best[i][j] == sim[i][j] + best[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _sniff_indentless(node) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.id == "mapping":
            for k, v in n.value:
                if v.id == "sequence" and not v.flow_style and v.value:
                    return v.value[0].start_mark.column - 2 <= k.start_mark.column
                stack.append(v)
        elif n.id == "sequence":
            stack.extend(n.value)
    return True


def patch_document(text: str, node, line_offset: int, old: Any, new: Any,
                   check=None) -> str:
    """The file text with the document at `node` changed from `old` to `new` by minimal edits.
    `check(new_text)` (optional) must return the document's value re-parsed from the new text;
    when it differs from `new`, the whole document value is rewritten in block style instead."""
    doc = _Doc(text, line_offset)
    doc.indentless = _sniff_indentless(node)
    try:
        doc.diff(node, old, new)
        result = doc.apply()
    except _Unsafe:
        result = None
    if result is not None and (check is None or check(result) == new):
        return result
    doc.edits = []
    doc.replace(node, new)
    result = doc.apply()
    if check is not None and check(result) != new:
        raise InputError("cannot edit the file in place without changing other content",
                         hint="edit the VirtualService by hand, or apply the change on the cluster")
    return result


def json_value_node(text: str, body: Any):
    """The composed node of `body` inside a JSON file's text (a document, a list item, or an
    item of a `kind: List`), so JSON manifests get the same minimal edits; None if not found."""
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader_cls)
    except yaml.YAMLError:
        return None
    if root is None:
        return None

    def value(node):
        try:
            return json.loads(text[node.start_mark.index:node.end_mark.index])
        except ValueError:
            return None

    candidates = [root]
    if root.id == "sequence":
        candidates = list(root.value)
    elif root.id == "mapping":
        for k, v in root.value:
            if k.value == "items" and v.id == "sequence":
                candidates.extend(v.value)
    for node in candidates:
        if node.id == "mapping" and value(node) == body:
            return node
    return None

"""YAML → Python objects, each with a compact line map (a LineMap, meshctl.resources).

`_Loader` is libyaml's composer with less Python per node. `_construct` builds the plain data
Kubernetes manifests are made of and its LineMap in one walk over a document's nodes, so the nodes
can be dropped as soon as the document is built; anything unusual (merge keys, unusual scalars, a
key given twice) raises, and the caller falls back to PyYAML's constructor and `line_map`.
"""
from __future__ import annotations

import operator
from array import array

import yaml

from meshctl.resources import LineMap

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """CSafeLoader without path resolvers, and with plain scalars' tags remembered.

    libyaml's composer calls three Python hooks for every node: descend_resolver and
    ascend_resolver serve path resolvers, which meshctl does not use, so C callables that do
    nothing take their place (`operator.is_`, `tuple`: a builtin is not bound as a method); and
    resolve, whose answer for a plain scalar depends only on its text (no path resolvers), so it is
    looked up once per distinct text. Together a fifth less time composing."""

    descend_resolver = operator.is_  # (parent, index) → ignored
    ascend_resolver = tuple  # () → ignored

    _plain_tags: dict[str, str] = {}

    def resolve(self, kind, value, implicit, _scalar=yaml.ScalarNode, _resolve=_BaseLoader.resolve):
        if kind is _scalar and implicit[0]:
            tags = _Loader._plain_tags
            tag = tags.get(value)
            if tag is None:
                if len(tags) > 200_000:
                    tags.clear()
                tag = tags[value] = _resolve(self, kind, value, implicit)
            return tag
        return _resolve(self, kind, value, implicit)


# Kubernetes reads unquoted dates as strings; so do we (and JSON output stays plain).
_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: node.value)


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_TRUE = frozenset({"yes", "true", "on"})


class _SlowPath(Exception):
    """The document needs PyYAML's full constructor (merge keys, unusual scalars)."""


class _DuplicateKey(Exception):
    """A mapping of the document gives a key twice."""


def _entries(node: yaml.Node, base: int, keys: list, marks: list) -> None:
    """Append the line map entries of `node`'s subtree (see LineMap), aliases expanded."""
    if node.id == "mapping":
        children = [(k.value if k.id == "scalar" else LineMap.NON_SCALAR_KEY, k.start_mark.line, v)
                    for k, v in node.value]
    elif node.id == "sequence":
        children = [(LineMap.SEQUENCE_ITEM, c.start_mark.line, c) for c in node.value]
    else:
        return
    for key, line, child in children:
        i = len(keys)
        keys.append(key)
        marks.append(line + base)
        marks.append(i + 1)
        if child.id != "scalar":
            _entries(child, base, keys, marks)
            marks[2 * i + 1] = len(keys)


def line_map(node: yaml.Node, offset: int) -> LineMap:
    """The LineMap of a composed document whose text starts after `offset` lines."""
    keys: list = []
    marks: list[int] = []
    _entries(node, offset + 1, keys, marks)
    return LineMap(tuple(keys), array("I", marks), 0, len(keys), node.start_mark.line + offset + 1)


def _construct(node: yaml.Node, offset: int, memo: dict | None, strings: dict) -> tuple[object, LineMap]:
    """Nodes → (Python data, its LineMap) in one walk, faster than PyYAML's constructor for the
    plain cases Kubernetes manifests are made of. Timestamps stay strings (as Kubernetes reads
    them). Raises _SlowPath for anything unusual; shared (aliased) nodes are built once when
    `memo` is given. Strings go through `strings` (one object per distinct text: the keys and
    labels that every object repeats are stored once)."""
    keys: list = []
    marks: list[int] = []
    add_key, add_mark = keys.append, marks.append
    base = offset + 1
    intern = strings.setdefault

    def scalar(n):
        tag = n.tag
        v = n.value
        if tag == _STR or tag == _TIMESTAMP:
            return intern(v, v)
        if tag == _INT:
            if v.isdigit() and (len(v) == 1 or v[0] != "0"):
                return int(v)
            raise _SlowPath
        if tag == _BOOL:
            return v.lower() in _TRUE
        if tag == _NULL:
            return None
        raise _SlowPath

    def build(n):
        nid = n.id
        if nid == "scalar":
            return scalar(n)
        if memo is not None:
            hit = memo.get(id(n))
            if hit is not None:
                _entries(n, base, keys, marks)  # the map follows the expanded document
                return hit
        if nid == "mapping":
            out = {}
            for k, v in n.value:
                if k.id != "scalar" or k.tag == _MERGE:
                    raise _SlowPath
                key = scalar(k)
                i = len(keys)
                add_key(key if type(key) is str else k.value)
                add_mark(k.start_mark.line + base)
                add_mark(i + 1)
                if v.id == "scalar":
                    out[key] = scalar(v)
                else:
                    out[key] = build(v)
                    marks[2 * i + 1] = len(keys)
            if len(out) != len(n.value):
                raise _DuplicateKey
        else:
            out = []
            for c in n.value:
                i = len(keys)
                add_key(LineMap.SEQUENCE_ITEM)
                add_mark(c.start_mark.line + base)
                add_mark(i + 1)
                if c.id == "scalar":
                    out.append(scalar(c))
                else:
                    out.append(build(c))
                    marks[2 * i + 1] = len(keys)
        if memo is not None:
            memo[id(n)] = out
        return out

    try:
        data = build(node)
    finally:
        build = None  # noqa: F841 - the recursive closure refers to itself: free it without the cyclic GC
    return data, LineMap(tuple(keys), array("I", marks), 0, len(keys), node.start_mark.line + base)

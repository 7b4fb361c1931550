#!/usr/bin/env python3
"""Measure YAML parsers for `meshctl analyze`: PyYAML's C loader, meshctl's loader, rapidyaml.

    /tmp/ryml-venv/bin/python bench/yaml_parsers.py [--corpus DIR] [--services 2000] [--runs 5]
                                                    [--no-check] [--check-only] [--examples 5]

rapidyaml is not a dependency of meshctl. Run the script with an interpreter that has rapidyaml
and PyYAML (the script puts this checkout on sys.path; meshctl's loader needs nothing else):

    python3 -m venv /tmp/ryml-venv && /tmp/ryml-venv/bin/pip install rapidyaml pyyaml

Without rapidyaml (e.g. with .venv/bin/python) it prints one line saying so and exits 0.

Timing, on the corpus of ../shared/bench/gen_corpus.py (generated into a temporary directory
unless --corpus is given; 2000 services = 12,200 resources, about 5 MB in 100 files), CPU time
(time.process_time) per configuration, the configurations interleaved in each run, the cyclic
garbage collector paused as meshctl pauses it; median and best of --runs:
  a  PyYAML CSafeLoader: yaml.load_all of each file to plain Python objects (no line numbers)
  b  meshctl's loader: meshctl.loader.load_paths([DIR], recursive=True), MESHCTL_WORKERS=1
     (objects, a LineMap per object, Resources)
  c0 rapidyaml: ryml.parse_in_place of each file to its C++ tree only
  c1 rapidyaml tree + a walk of it in Python that reads every node's type, key and value and
     builds nothing (the floor of any conversion through the Python binding)
  c  rapidyaml to the same result as b: the tree of each file walked in Python into dicts,
     lists and scalars resolved with YAML 1.1 rules (as PyYAML's SafeLoader resolves them,
     timestamps kept as strings as meshctl keeps them, merge keys, anchors and aliases), a
     LineMap per document, then the same Resources (meshctl.loader._add_document); each file
     is parsed as one stream (rapidyaml's best case: meshctl parses document by document so
     that one broken document does not hide the others)

rapidyaml's Python binding (0.15.2) has no node location API (ParseEngine locations are C++
only), so the line of a key is found from the address of its text in the parsed buffer
(parse_in_place keeps scalars in the caller's buffer): the memoryview rapidyaml returns gives
the address. The line of a collection that is a sequence item, or of a document, is the line of
its first scalar (rapidyaml keeps no position for collections).

Semantics check (unless --no-check): every document of the corpus, of the conformance inputs
(../shared/conformance/istio-analyze/testdata and ../shared/conformance/istio-inject, every
.yaml) and of tests/**/*.yaml|yml, split into documents as meshctl splits them, is read by
meshctl's PyYAML loader (the reference) and by rapidyaml + the YAML 1.1 resolver of this script,
and also + a YAML 1.2 core schema resolver (what rapidyaml's own scalar rules give), and so
is a set of edge-case documents (EDGE_CASES: what YAML 1.1 and 1.2 read differently, syntax
where parsers disagree), since the corpus and the conformance inputs use none of it. It prints
the documents whose Python objects differ (strictly: bool is not int, key order counts), whose
line maps differ, the kinds of differences and the first --examples of each.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import ctypes
import gc
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from bisect import bisect_right
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_GEN = ROOT.parent / "shared" / "bench" / "gen_corpus.py"
CONFORMANCE = ROOT.parent / "shared" / "conformance"

import yaml  # noqa: E402

from meshctl import loader as mloader  # noqa: E402
from meshctl.resources import LineMap  # noqa: E402

try:
    import ryml
    from ryml import _ryml as R
except ImportError:
    ryml = R = None

# --------------------------------------------------------------------------------------------
# YAML 1.1 scalar resolution and construction, as PyYAML's SafeLoader does it (resolver.py,
# constructor.py), with meshctl's one change: timestamps stay strings.

_BOOL11 = re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
_FLOAT11 = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X)
_INT11 = re.compile(r"""^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+
                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""", re.X)
_NULL11 = re.compile(r"^(?:~|null|Null|NULL|)$")
_TIMESTAMP11 = re.compile(r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
                    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
                     (?:[Tt]|[ \t]+)[0-9][0-9]?
                     :[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
                     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""", re.X)
_BOOL_VALUES = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_NUMERIC_START = frozenset("-+0123456789.")


class Unsupported(Exception):
    """A document the reader refuses (a tag without a constructor, a recursive alias, ...)."""


class _Merge:
    pass


MERGE = _Merge()  # a plain `<<` key


def _int11(value: str) -> int:
    value = value.replace("_", "")
    sign = 1
    if value[0] == "-":
        sign, value = -1, value[1:]
    elif value[0] == "+":
        value = value[1:]
    if value == "0":
        return 0
    if value.startswith("0b"):
        return sign * int(value[2:], 2)
    if value.startswith("0x"):
        return sign * int(value[2:], 16)
    if value[0] == "0":
        return sign * int(value, 8)
    if ":" in value:
        digits = [int(part) for part in value.split(":")]
        digits.reverse()
        base, out = 1, 0
        for d in digits:
            out += d * base
            base *= 60
        return sign * out
    return sign * int(value)


def _float11(value: str) -> float:
    value = value.replace("_", "").lower()
    sign = 1
    if value[0] == "-":
        sign, value = -1, value[1:]
    elif value[0] == "+":
        value = value[1:]
    if value == ".inf":
        return sign * math.inf
    if value == ".nan":
        return math.nan
    if ":" in value:
        digits = [float(part) for part in value.split(":")]
        digits.reverse()
        base, out = 1, 0.0
        for d in digits:
            out += d * base
            base *= 60
        return sign * out
    return sign * float(value)


def plain11(text: str, cache: dict = {}):  # noqa: B006 - the cache is meant to be shared
    """A plain (unquoted, untagged) scalar with YAML 1.1 rules (PyYAML SafeLoader + meshctl)."""
    hit = cache.get(text, cache)
    if hit is not cache:
        return hit
    if not text or _NULL11.match(text):
        value = None
    elif text[0] in _NUMERIC_START and _INT11.match(text):
        value = _int11(text)
    elif text[0] in _NUMERIC_START and _FLOAT11.match(text):
        value = _float11(text)
    elif _BOOL11.match(text):
        value = _BOOL_VALUES[text.lower()]
    elif text == "<<":
        value = MERGE
    elif text == "=":
        raise Unsupported("could not determine a constructor for the tag 'tag:yaml.org,2002:value'")
    else:
        value = text  # strings, and timestamps (meshctl keeps them as strings)
    if len(cache) > 200_000:
        cache.clear()
    cache[text] = value
    return value


_BOOL12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT12 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def plain12(text: str):
    """A plain scalar with YAML 1.2 core schema rules (rapidyaml's own reading of scalars)."""
    if not text or text in ("~", "null", "Null", "NULL"):
        return None
    if _BOOL12.match(text):
        return text.lower() == "true"
    if _INT12.match(text):
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if _FLOAT12.match(text):
        low = text.lower()
        if low.endswith(".inf"):
            return -math.inf if low[0] == "-" else math.inf
        if low.endswith(".nan"):
            return math.nan
        return float(text)
    return text  # `<<` too: YAML 1.2 has no merge keys


def tagged(tag: str, text: str | None, plain: bool):
    """A scalar with an explicit tag, as PyYAML's SafeConstructor builds it."""
    if tag.startswith("!<tag:yaml.org,2002:") and tag.endswith(">"):
        tag = "!!" + tag[len("!<tag:yaml.org,2002:"):-1]
    text = "" if text is None else text
    if tag == "!!str" or tag == "!":
        return text
    if tag == "!!timestamp":
        return text
    if tag == "!!null":
        return None
    if tag == "!!bool":
        try:
            return _BOOL_VALUES[text.lower()]
        except KeyError:
            raise Unsupported(f"bad bool {text!r}") from None
    try:
        if tag == "!!int":
            return _int11(text)
        if tag == "!!float":
            return _float11(text)
    except (ValueError, IndexError):
        raise Unsupported(f"bad {tag} {text!r}") from None
    if tag == "!!binary":
        try:
            return base64.decodebytes(text.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError) as e:
            raise Unsupported(f"bad binary: {e}") from None
    raise Unsupported(f"could not determine a constructor for the tag {tag!r}")


# --------------------------------------------------------------------------------------------
# The address of a scalar's text (rapidyaml returns memoryviews into the parsed buffer).

class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_PB = _PyBuffer()
_PB_REF = ctypes.byref(_PB)


def _address_api(view: memoryview) -> int:
    _get_buffer(view, _PB_REF, 0)
    address = _PB.buf
    _release_buffer(_PB_REF)
    return address


def _view_buf_offset() -> int | None:
    """Where CPython keeps a memoryview's buffer address inside the object (read with one ctypes
    call instead of two; checked against PyObject_GetBuffer)."""
    data = bytearray(b"0123456789")
    view = memoryview(data)[3:]
    want = _address_api(view)
    for off in range(16, 256, 8):
        if ctypes.c_void_p.from_address(id(view) + off).value == want:
            return off
    return None


_VIEW_OFF = _view_buf_offset()
if _VIEW_OFF is not None:
    _from_address = ctypes.c_void_p.from_address

    def address(view: memoryview) -> int:
        return _from_address(id(view) + _VIEW_OFF).value
else:
    address = _address_api


# --------------------------------------------------------------------------------------------
# rapidyaml tree → (Python data, LineMap)

if ryml is not None:
    _MAP, _SEQ, _KEY, _VAL = ryml.MAP, ryml.SEQ, ryml.KEY, ryml.VAL
    _KEYREF, _VALREF, _KEYANCH, _VALANCH = ryml.KEYREF, ryml.VALREF, ryml.KEYANCH, ryml.VALANCH
    _KEYTAG, _VALTAG = ryml.KEYTAG, ryml.VALTAG
    _KEYQUO, _VALQUO = ryml.KEYQUO, ryml.VALQUO
    _NONE = ryml.NONE
    _SPECIAL_KEY = _KEYREF | _KEYANCH | _KEYTAG | _KEYQUO
    _SPECIAL_VAL = _VALREF | _VALANCH | _VALTAG | _VALQUO
    _MAX_EXPANDED = mloader.MAX_EXPANDED_NODES


def container_tag(tag: str, value):
    if tag in ("!!map", "!!seq", "!<tag:yaml.org,2002:map>", "!<tag:yaml.org,2002:seq>"):
        return value
    if tag in ("!!set", "!<tag:yaml.org,2002:set>") and isinstance(value, dict):
        return set(value)
    raise Unsupported(f"could not determine a constructor for the tag {tag!r}")


class Converter:
    """Walks one buffer parsed in place. `base` is the address of the buffer, `newlines` the
    offsets of its line breaks (taken before parsing: rapidyaml filters block and quoted scalars
    in place, leaving stale bytes behind them), `first_line` the 1-based line of its first byte."""

    def __init__(self, tree, buf: bytearray, newlines: list[int], first_line: int = 1,
                 strings: dict | None = None, plain=plain11):
        self.t = tree
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        self.newlines = newlines
        self.first_line = first_line
        self.strings = {} if strings is None else strings
        self.plain = plain
        self.yaml11 = plain is plain11

    def line(self, view) -> int:
        return bisect_right(self.newlines, address(view) - self.base) + self.first_line

    def first_line_of(self, node: int) -> int:
        """The line of the first scalar of a subtree (0 when it has none)."""
        t = self.t
        stack = [node]
        while stack:
            n = stack.pop()
            ty = R.Tree_type(t, n)
            if ty & _KEY:
                k = R.Tree_key(t, n)
                if k is not None:
                    return self.line(k)
            if ty & _VAL and not ty & (_MAP | _SEQ):
                v = R.Tree_val(t, n)
                if v is not None:
                    return self.line(v)
            kids = []
            c = R.Tree_first_child(t, n)
            while c != _NONE:
                kids.append(c)
                c = R.Tree_next_sibling(t, c)
            stack.extend(reversed(kids))
        return 0

    def document(self, node: int):
        """(data, LineMap, line of the document) of a document node."""
        t = self.t
        tree_type, key, val, first_child, next_sibling = (
            R.Tree_type, R.Tree_key, R.Tree_val, R.Tree_first_child, R.Tree_next_sibling)
        keys: list = []
        marks: list[int] = []
        add_key, add_mark = keys.append, marks.append
        intern = self.strings.setdefault
        plain = self.plain
        line = self.line
        anchors: dict[str, tuple] = {}
        expanded = [0]

        def scalar(n, text_view, ty, is_key):
            text = None if text_view is None else str(text_view, "utf-8")
            if ty & (_KEYTAG if is_key else _VALTAG):
                tag = str(R.Tree_key_tag(t, n) if is_key else R.Tree_val_tag(t, n), "utf-8")
                return tagged(tag, text, not ty & (_KEYQUO if is_key else _VALQUO))
            if ty & (_KEYQUO if is_key else _VALQUO):
                return intern(text, text)
            v = plain(text or "")
            return intern(v, v) if type(v) is str else v

        def ref(name):
            hit = anchors.get(name)
            if hit is None:
                raise Unsupported(f"found undefined alias {name!r}")
            if hit[0] is None:
                raise Unsupported("document contains itself through an alias (a recursive structure)")
            value, start, stop = hit
            if stop > start:  # the map follows the expanded document: copy the anchored entries
                shift = len(keys) - start
                expanded[0] += stop - start
                if expanded[0] > _MAX_EXPANDED:
                    raise Unsupported("alias bomb")
                keys.extend(keys[start:stop])
                for i in range(start, stop):
                    add_mark(marks[2 * i])
                    add_mark(marks[2 * i + 1] + shift)
            return value

        def value_of(n, ty):
            """The value of node n (a map, a seq or a scalar value)."""
            if ty & _VALREF:
                return ref(str(R.Tree_val_ref(t, n), "utf-8"))
            anchor = str(R.Tree_val_anchor(t, n), "utf-8") if ty & _VALANCH else None
            if anchor is not None:
                anchors[anchor] = (None, 0, 0)
            start = len(keys)
            if ty & _MAP:
                out = build_map(n)
            elif ty & _SEQ:
                out = build_seq(n)
            else:
                out = scalar(n, val(t, n), ty, False)
            if ty & _VALTAG and ty & (_MAP | _SEQ):
                out = container_tag(str(R.Tree_val_tag(t, n), "utf-8"), out)
            if anchor is not None:
                anchors[anchor] = (out, start, len(keys))
            return out

        def build_map(n):
            pairs = []  # (key, key text for the map, line, value, entries start, entries stop)
            merged = []
            c = first_child(t, n)
            while c != _NONE:
                ty = tree_type(t, c)
                kv = key(t, c)
                if ty & _SPECIAL_KEY:
                    if ty & _KEYREF:
                        k = ref(str(R.Tree_key_ref(t, c), "utf-8"))
                    else:
                        k = scalar(c, kv, ty, True)
                        if ty & _KEYANCH:
                            anchors[str(R.Tree_key_anchor(t, c), "utf-8")] = (k, 0, 0)
                else:
                    k = plain(str(kv, "utf-8")) if kv is not None else None
                    if type(k) is str:
                        k = intern(k, k)
                if k is MERGE:
                    merged.append(c)
                    c = next_sibling(t, c)
                    continue
                i = len(keys)
                add_key(k if type(k) is str else (str(kv, "utf-8") if kv is not None else ""))
                add_mark(line(kv) if kv is not None else 0)
                add_mark(i + 1)
                if ty & (_MAP | _SEQ | _SPECIAL_VAL):
                    v = value_of(c, ty)
                    marks[2 * i + 1] = len(keys)
                else:
                    vv = val(t, c)
                    v = plain(str(vv, "utf-8")) if vv is not None else None
                    if type(v) is str:
                        v = intern(v, v)
                    elif v is MERGE:
                        raise Unsupported("could not determine a constructor for the tag 'tag:yaml.org,2002:merge'")
                try:
                    hash(k)
                except TypeError:
                    raise Unsupported("found unhashable key") from None
                pairs.append((k, v))
                c = next_sibling(t, c)
            if merged:  # PyYAML's flatten_mapping reorders keys and entries: the slow way
                raise _SlowMerge
            return dict(pairs)

        def build_seq(n):
            out = []
            c = first_child(t, n)
            while c != _NONE:
                ty = tree_type(t, c)
                i = len(keys)
                add_key(LineMap.SEQUENCE_ITEM)
                if ty & (_MAP | _SEQ):
                    add_mark(self.first_line_of(c))
                    add_mark(i + 1)
                    out.append(value_of(c, ty))
                    marks[2 * i + 1] = len(keys)
                else:
                    vv = val(t, c)
                    add_mark(line(vv) if vv is not None else 0)
                    add_mark(i + 1)
                    if ty & _SPECIAL_VAL:
                        out.append(value_of(c, ty))
                        marks[2 * i + 1] = len(keys)
                    else:
                        v = plain(str(vv, "utf-8")) if vv is not None else None
                        if v is MERGE:
                            raise Unsupported("could not determine a constructor for the tag 'tag:yaml.org,2002:merge'")
                        out.append(intern(v, v) if type(v) is str else v)
                c = next_sibling(t, c)
            return out

        ty = tree_type(t, node)
        try:
            if ty & (_MAP | _SEQ):
                data = value_of(node, ty)
            else:
                data = value_of(node, ty) if ty & _VAL else None
        except _SlowMerge:
            data, keys, marks = self.document_merged(node)
        finally:
            value_of = build_map = build_seq = None  # noqa: F841 - recursive closures: no cycle left
        doc_line = self.first_line_of(node)
        return data, LineMap(tuple(keys), array("I", marks), 0, len(keys), doc_line), doc_line

    def document_merged(self, node: int):
        """A document with merge keys, the slow way: a node tree in Python (key, line, value,
        tag) flattened as PyYAML flattens it, then built."""
        t = self.t
        anchors: dict[str, object] = {}

        def compose(n, as_key=False):
            ty = R.Tree_type(t, n)
            if as_key:
                if ty & _KEYREF:
                    return anchors[str(R.Tree_key_ref(t, n), "utf-8")]
                kv = R.Tree_key(t, n)
                text = str(kv, "utf-8") if kv is not None else None
                tag = str(R.Tree_key_tag(t, n), "utf-8") if ty & _KEYTAG else None
                node_ = ["scalar", self.line(kv) if kv is not None else 0, text, tag, bool(ty & _KEYQUO)]
                if ty & _KEYANCH:
                    anchors[str(R.Tree_key_anchor(t, n), "utf-8")] = node_
                return node_
            if ty & _VALREF:
                name = str(R.Tree_val_ref(t, n), "utf-8")
                if name not in anchors:
                    raise Unsupported(f"found undefined alias {name!r}")
                return anchors[name]
            if ty & _MAP:
                node_ = ["map", self.first_line_of(n), []]
            elif ty & _SEQ:
                node_ = ["seq", self.first_line_of(n), []]
            else:
                vv = R.Tree_val(t, n)
                text = str(vv, "utf-8") if vv is not None else None
                tag = str(R.Tree_val_tag(t, n), "utf-8") if ty & _VALTAG else None
                node_ = ["scalar", self.line(vv) if vv is not None else 0, text, tag, bool(ty & _VALQUO)]
            if ty & _VALANCH:
                anchors[str(R.Tree_val_anchor(t, n), "utf-8")] = node_
            if node_[0] != "scalar":
                c = R.Tree_first_child(t, n)
                while c != _NONE:
                    if node_[0] == "map":
                        node_[2].append((compose(c, True), compose(c)))
                    else:
                        node_[2].append(compose(c))
                    c = R.Tree_next_sibling(t, c)
            return node_

        def is_merge(k):
            return k[0] == "scalar" and k[3] is None and not k[4] and k[2] == "<<" and self.yaml11

        def flatten(m):
            """PyYAML 6.0.4's flatten_mapping: the pairs of the merged mappings first, in the
            order given, a key merged twice kept once (the first), then the mapping's own."""
            merge, seen, index = [], set(), 0
            while index < len(m[2]):
                k, v = m[2][index]
                if is_merge(k):
                    del m[2][index]
                    if v[0] == "map":
                        subs = [v]
                    elif v[0] == "seq":
                        subs = v[2]
                    else:
                        raise Unsupported("expected a mapping or list of mappings for merging")
                    for sub in subs:
                        if sub[0] != "map":
                            raise Unsupported("expected a mapping for merging")
                        flatten(sub)
                        for pair in sub[2]:
                            if pair[0][2] not in seen:
                                seen.add(pair[0][2])
                                merge.append(pair)
                else:
                    index += 1
            if merge:
                m[2] = merge + m[2]

        def scalar_of(s):
            if s[3] is not None:
                return tagged(s[3], s[2], not s[4])
            if s[4]:
                return s[2]
            v = self.plain(s[2] or "")
            if v is MERGE:
                raise Unsupported("could not determine a constructor for the tag 'tag:yaml.org,2002:merge'")
            return v

        built: dict[int, object] = {}
        flattened: set[int] = set()

        def build(x):
            if x[0] == "scalar":
                return scalar_of(x)
            hit = built.get(id(x))
            if hit is not None:
                return hit
            if x[0] == "map":
                if id(x) not in flattened:
                    flattened.add(id(x))
                    flatten(x)
                out = {}
                built[id(x)] = out
                for k, v in x[2]:
                    out[build(k)] = build(v)
            else:
                out = []
                built[id(x)] = out
                out.extend(build(c) for c in x[2])
            return out

        root = compose(node)
        data = build(root)
        keys: list = []
        marks: list[int] = []

        def entries(x):
            if x[0] == "map":
                children = [(k[2] if k[0] == "scalar" else LineMap.NON_SCALAR_KEY, k[1], v) for k, v in x[2]]
            elif x[0] == "seq":
                children = [(LineMap.SEQUENCE_ITEM, c[1], c) for c in x[2]]
            else:
                return
            for k, ln, child in children:
                i = len(keys)
                keys.append(k)
                marks.append(ln)
                marks.append(i + 1)
                if child[0] != "scalar":
                    entries(child)
                    marks[2 * i + 1] = len(keys)

        entries(root)
        return data, keys, marks


class _SlowMerge(Exception):
    pass


_NEWLINE = re.compile(b"\n")


def newlines_of(buf) -> list[int]:
    return [m.start() for m in _NEWLINE.finditer(buf)]


def ryml_documents(tree) -> list[int]:
    root = tree.root_id()
    if tree.is_stream(root):
        return list(ryml.children(tree, root))
    return [root]


class _Quiet:
    """rapidyaml writes its parse errors to stderr (fd 2) itself: silence them for a check."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


# --------------------------------------------------------------------------------------------
# timing

def files_of(corpus: str) -> list[str]:
    return mloader.iter_files(corpus, recursive=True)


def run_pyyaml(files: list[str]) -> int:
    docs = 0
    for f in files:
        with open(f, "rb") as fh:
            text = fh.read().decode("utf-8-sig")
        docs += sum(1 for _ in yaml.load_all(text, Loader=yaml.CSafeLoader))
    return docs


def run_meshctl(corpus: str) -> int:
    return len(mloader.load_paths([corpus], recursive=True).resources)


def run_ryml_tree(files: list[str]) -> int:
    nodes = 0
    for f in files:
        with open(f, "rb") as fh:
            buf = bytearray(fh.read())
        tree = ryml.parse_in_place(buf)
        nodes += tree.size()
    return nodes


def run_ryml_walk(files: list[str]) -> int:
    """The floor of any conversion through the Python binding: the tree of each file visited
    node by node (type, key and value text, children), nothing built."""
    nodes = 0
    tree_type, key, val, first_child, next_sibling = (
        R.Tree_type, R.Tree_key, R.Tree_val, R.Tree_first_child, R.Tree_next_sibling)
    for f in files:
        with open(f, "rb") as fh:
            buf = bytearray(fh.read())
        t = ryml.parse_in_place(buf)
        stack = [t.root_id()]
        while stack:
            n = stack.pop()
            nodes += 1
            ty = tree_type(t, n)
            if ty & _KEY:
                key(t, n)
            if ty & (_MAP | _SEQ):
                c = first_child(t, n)
                while c != _NONE:
                    stack.append(c)
                    c = next_sibling(t, c)
            elif ty & _VAL:
                val(t, n)
    return nodes


def run_ryml(files: list[str]) -> mloader.Loaded:
    result = mloader.Loaded()
    strings: dict = {}
    for f in files:
        with open(f, "rb") as fh:
            buf = bytearray(fh.read())
        if buf.startswith(b"\xef\xbb\xbf"):
            del buf[:3]
        newlines = newlines_of(buf)
        tree = ryml.parse_in_place(buf)
        conv = Converter(tree, buf, newlines, 1, strings)
        for doc in ryml_documents(tree):
            data, lines, line = conv.document(doc)
            mloader._add_document(result, data, lines, None, 0, line, f, None)
    return result


def timed(fn, *args):
    gc.collect()
    gc.disable()
    try:
        t0, w0 = time.process_time(), time.perf_counter()
        out = fn(*args)
        return time.process_time() - t0, time.perf_counter() - w0, out
    finally:
        gc.enable()


def same_resources(a: mloader.Loaded, b: mloader.Loaded) -> tuple[int, int, int]:
    """(resources, bodies that differ, line maps or lines that differ) of b against a."""
    bodies = lines = 0
    for x, y in zip(a.resources, b.resources):
        if diff(x.body, y.body) is not None:
            bodies += 1
        lx, ly = x.lines, y.lines
        if (x.line, x.source) != (y.line, y.source) or (lx.keys[lx.start:lx.stop], list(lx.marks[2 * lx.start:2 * lx.stop]), lx.line) != \
                (ly.keys[ly.start:ly.stop], list(ly.marks[2 * ly.start:2 * ly.stop]), ly.line):
            lines += 1
    return len(a.resources), bodies + abs(len(a.resources) - len(b.resources)), lines


def bench(corpus: str, runs: int) -> None:
    files = files_of(corpus)
    size = sum(os.path.getsize(f) for f in files)
    os.environ[mloader.WORKERS_ENV] = "1"
    ref = mloader.load_paths([corpus], recursive=True)
    mine = run_ryml(files)
    n, bodies, lines = same_resources(ref, mine)
    print(f"corpus {corpus}: {len(files)} files, {size / 1e6:.1f} MB, {n:,} resources; "
          f"rapidyaml path vs meshctl: {bodies} objects differ, {lines} line maps differ")
    configs = [
        ("a  PyYAML CSafeLoader load_all (objects only)", run_pyyaml, (files,)),
        ("b  meshctl loader (objects, line maps, Resources)", run_meshctl, (corpus,)),
        ("c0 rapidyaml parse_in_place (C++ tree only)", run_ryml_tree, (files,)),
        ("c1 rapidyaml tree + a Python walk (nothing built)", run_ryml_walk, (files,)),
        ("c  rapidyaml + YAML 1.1 in Python (same as b)", run_ryml, (files,)),
    ]
    cpu: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)
    for fn_args in configs:  # warm-up
        timed(fn_args[1], *fn_args[2])
    for r in range(runs):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for name, fn, args in order:
            c, w, _ = timed(fn, *args)
            cpu[name].append(c)
            wall[name].append(w)
    print(f"rapidyaml tree nodes: {run_ryml_walk(files):,}")
    print(f"\nCPU seconds over {runs} interleaved runs (median / best), wall median, resources/s (median CPU):")
    for name, _, _ in configs:
        med = statistics.median(cpu[name])
        print(f"  {name:<52} {med:6.2f} / {min(cpu[name]):5.2f} s   wall {statistics.median(wall[name]):5.2f} s"
              f"   {n / med:8,.0f}/s")


# --------------------------------------------------------------------------------------------
# semantics check

def diff(a, b, path=()):
    """None when a and b are the same YAML data (types strict, key order counted), else
    (path, a part, b part, kind)."""
    if type(a) is not type(b):
        return path, a, b, f"{type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        if list(a) != list(b):
            ka, kb = list(a), list(b)
            if set(map(repr, ka)) == set(map(repr, kb)):
                return path, ka, kb, "key order"
            return path, sorted(map(repr, set(map(repr, ka)) ^ set(map(repr, kb)))), None, "keys"
        for k in a:
            d = diff(a[k], b[k], path + (k,))
            if d is not None:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return path, len(a), len(b), "list length"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, path + (i,))
            if d is not None:
                return d
        return None
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    return None if a == b else (path, a, b, f"{type(a).__name__} value")


def check_files() -> list[tuple[str, list[str]]]:
    groups = []
    for name, root in (("conformance istio-analyze", CONFORMANCE / "istio-analyze" / "testdata"),
                       ("conformance istio-inject", CONFORMANCE / "istio-inject"),
                       ("tests", ROOT / "tests")):
        if root.is_dir():
            files = sorted(str(p) for p in root.rglob("*") if p.is_file() and (
                p.suffix == ".yaml" or (name == "tests" and p.suffix == ".yml")))
            groups.append((name, files))
    return groups


# Documents that use what YAML 1.1 (PyYAML) and YAML 1.2 read differently, and syntax where
# parsers tend to disagree: the corpus and the conformance inputs use none of the former.
EDGE_CASES = {
    "bool yes/no/on/off": "a: yes\nb: No\nc: on\nd: OFF\ne: y\n",
    "key on/yes (GitHub Actions' `on:`)": "on: push\nyes: 1\n",
    "octal 0777": "mode: 0777\n",
    "octal 0o777": "mode: 0o777\n",
    "int 1_000": "n: 1_000\n",
    "sexagesimal 1:30": "t: 1:30\nu: 190:20:30.15\n",
    "binary 0b101": "n: 0b101\n",
    "hex 0x1F": "n: 0x1F\n",
    "float 1e3 / 1.0e+3 / 6.8523015e+5": "a: 1e3\nb: 1.0e+3\nc: 6.8523015e+5\nd: .5\ne: 1.\n",
    "inf/nan": "a: .inf\nb: -.Inf\nc: .NaN\n",
    "null ~ / empty / Null": "a: ~\nb:\nc: Null\nd: NULL\n",
    "timestamp": "a: 2001-12-14t21:59:43.10-05:00\nb: 2002-12-14\n",
    "merge key <<": "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n",
    "merge list <<: [*a, *b]": "a: &a {x: 1}\nb: &b {x: 2, z: 3}\nd:\n  <<: [*a, *b]\n",
    "quoted '<<' key": "'<<': 1\n",
    "explicit tags !!str !!int !!float !!bool": "a: !!str 12\nb: !!int '12'\nc: !!float 1\nd: !!bool yes\n",
    "!!binary": "a: !!binary aGVsbG8=\n",
    "custom tag !Ref": "a: !Ref x\n",
    "!!set": "s: !!set {a, b}\n",
    "%YAML 1.1 directive": "%YAML 1.1\n---\na: 1\n",
    "%YAML 1.2 directive": "%YAML 1.2\n---\na: yes\n",
    "tab after colon": "a:\t1\n",
    "tab indentation": "a:\n\tb: 1\n",
    "CRLF line ends": "a: 1\r\nb:\r\n  - x\r\n",
    "escapes \\N \\L \\P \\_": 'a: "x\\Ny\\Lz\\P\\_"\n',
    "multi-line plain scalar": "a: one\n  two\n\n  three\n",
    "folded with indent indicator": "a: >2\n   x\n  y\n",
    "literal keep +": "a: |+\n  x\n\nb: 1\n",
    "explicit key ?": "? a\n: 1\n? b\n",
    "flow mapping with empty values": "a: {x, y: 1}\n",
    "flow trailing comma": "a: [1, 2,]\n",
    "null sequence items": "a:\n- \n- x\n",
    "duplicate key": "a: 1\na: 2\n",
    "duplicate anchor": "a: &x 1\nb: &x 2\nc: *x\n",
    "anchor on key": "&k a: 1\nb: *k\n",
    "non-ASCII key": "ключ: значение\n",
    "JSON-style": '{"a": [1, true, null, "x"]}\n',
    "integer key": "1: a\n2.5: b\n",
    "plain scalar with ': '": "a: b: c\n",
    "plain '-' and ':' edge": "a: -\nb: ':'\nc: x:y\n",
    "comment without space": "a: b#c\nd: e #f\n",
    "indented sequence under key": "a:\n  - 1\n  -  2\n",
    "= value": "a: =\n",
}


def reference(chunk: str, offset: int):
    """meshctl's reading of one document: (data, LineMap, line) or ("error", message)."""
    if mloader.depth_problem(chunk):
        return "error", "too deep"
    try:
        ld = mloader._Loader(chunk)
        try:
            node = ld.get_single_node()
            if node is None:
                return None
            if "*" in chunk and "&" in chunk:
                bad = mloader.check_node(node)
                if bad:
                    return "error", bad
            data = ld.construct_document(node)
            lines = mloader.line_map(node, offset)
            return data, lines, node.start_mark.line + 1 + offset
        finally:
            ld.dispose()
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as e:
        return "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def with_ryml(chunk: str, offset: int, plain):
    buf = bytearray(chunk.encode("utf-8"))
    newlines = newlines_of(buf)
    try:
        with _Quiet():
            tree = ryml.parse_in_place(buf)
    except Exception as e:  # ryml.ExceptionParse and friends
        loc = getattr(getattr(e, "errdata_parse", None), "ymlloc", None)
        return "error", f"{type(e).__name__}" + (f" at line {loc.line}" if loc is not None else "")
    docs = ryml_documents(tree)
    if not docs:
        return None
    if len(docs) > 1:
        return "error", f"{len(docs)} documents"
    conv = Converter(tree, buf, newlines, offset + 1, {}, plain)
    doc = docs[0]
    if not tree.type(doc) & (_MAP | _SEQ | _VAL):
        return None  # an empty document
    try:
        return conv.document(doc)
    except (Unsupported, RecursionError, ValueError) as e:
        return "error", f"{type(e).__name__}: {e}"


def kind_of(d) -> str:
    path, a, b, kind = d
    if kind.endswith("value") or " vs " in kind:
        return f"{kind}: {a!r} vs {b!r}"[:120]
    return kind


def check(corpus: str, examples: int) -> None:
    edge = os.path.join(tempfile.mkdtemp(prefix="yaml-edge-"), "edge")
    os.mkdir(edge)
    for i, (name, text) in enumerate(EDGE_CASES.items()):
        Path(edge, f"{i:02d}.yaml").write_text(f"# {name}\n{text}", encoding="utf-8")
    groups = [("corpus", files_of(corpus))] + check_files() + [("YAML 1.1 edge cases", files_of(edge))]
    for schema, plain in (("YAML 1.1 resolver (PyYAML rules)", plain11), ("YAML 1.2 core schema", plain12)):
        print(f"\nrapidyaml + {schema}, against meshctl's PyYAML loader:")
        kinds: Counter = Counter()
        shown: dict[str, list[str]] = defaultdict(list)
        for group, files in groups:
            docs = differ = linediff = refused = 0
            for f in files:
                try:
                    text = Path(f).read_bytes().decode("utf-8-sig")
                except (UnicodeDecodeError, OSError):
                    continue
                for offset, chunk in mloader._split_documents(text):
                    if not chunk.strip():
                        continue
                    a = reference(chunk, offset)
                    b = with_ryml(chunk, offset, plain)
                    if a is None and b is None:
                        continue
                    docs += 1
                    where = (f"{os.path.relpath(f, ROOT.parent)}:{offset + 1}" if group != "YAML 1.1 edge cases"
                             else f"edge case {list(EDGE_CASES)[int(Path(f).stem)]!r}")
                    a_err = a is not None and a[0] == "error"
                    b_err = b is not None and b[0] == "error"
                    if a_err and b_err:
                        refused += 1
                        if group == "YAML 1.1 edge cases" and len(shown["refused by both"]) < 2 * examples:
                            shown["refused by both"].append(f"{where}: {a[1][:60]} / {b[1][:60]}")
                        continue
                    if a_err or b_err or a is None or b is None:
                        kind = ("PyYAML refuses, rapidyaml reads" if a_err else
                                "rapidyaml refuses, PyYAML reads" if b_err else "empty in one only")
                        detail = (a[1] if a_err else b[1] if b_err else "")
                        differ += 1
                        kinds[kind] += 1
                        if len(shown[kind]) < examples:
                            shown[kind].append(f"{where}: {detail}"[:160])
                        continue
                    d = diff(a[0], b[0])
                    if d is not None:
                        differ += 1
                        k = kind_of(d)
                        label = d[3] if (" vs " in d[3] or d[3].endswith("value")) else k
                        label = re.sub(r"\s+", " ", label)
                        kinds[label] += 1
                        if len(shown[label]) < examples:
                            shown[label].append(f"{where} at {'.'.join(map(str, d[0]))}: {k}")
                    la, lb = a[1], b[1]
                    if (la.keys, list(la.marks), a[2]) != (lb.keys, list(lb.marks), b[2]):
                        linediff += 1
                        if len(shown["line map"]) < examples:
                            first = next((i for i in range(min(len(la.keys), len(lb.keys)))
                                          if la.keys[i] != lb.keys[i] or la.marks[2 * i] != lb.marks[2 * i]), None)
                            shown["line map"].append(
                                f"{where}: entry {first}: PyYAML {la.keys[first] if first is not None else ''!r}@"
                                f"{la.marks[2 * first] if first is not None else a[2]} vs rapidyaml "
                                f"{lb.keys[first] if first is not None else ''!r}@"
                                f"{lb.marks[2 * first] if first is not None else b[2]}"[:160])
            print(f"  {group:<26} {len(files):4} files {docs:6,} documents: {differ:4} objects differ, "
                  f"{linediff:4} line maps differ, {refused:3} refused by both")
        if kinds:
            print("  kinds of differences (documents):")
            for kind, count in kinds.most_common():
                print(f"    {count:5}  {kind}")
                for ex in shown[kind]:
                    print(f"             {ex}")
        if shown["refused by both"]:
            print("  edge cases refused by both:")
            for ex in shown["refused by both"]:
                print(f"             {ex}")
        if shown["line map"]:
            print("  line maps (first entries that differ):")
            for ex in shown["line map"]:
                print(f"             {ex}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="a corpus directory (default: generate one)")
    ap.add_argument("--services", type=int, default=2000)
    ap.add_argument("--gen", default=str(DEFAULT_GEN))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--examples", type=int, default=5)
    args = ap.parse_args()
    if ryml is None:
        print("skipped: rapidyaml is not importable by this Python (see the docstring: "
              "/tmp/ryml-venv/bin/python bench/yaml_parsers.py)")
        return 0
    print(f"Python {sys.version.split()[0]}, PyYAML {yaml.__version__} (libyaml {yaml.__with_libyaml__}), "
          f"rapidyaml {ryml.version}; line numbers from memoryview addresses "
          f"({'CPython memoryview layout' if _VIEW_OFF is not None else 'PyObject_GetBuffer'})")
    with tempfile.TemporaryDirectory(prefix="yaml-parsers-") as tmp:
        corpus = args.corpus
        if corpus is None:
            corpus = os.path.join(tmp, "corpus")
            subprocess.run([sys.executable, args.gen, "--services", str(args.services), "--out", corpus],
                           check=True, stdout=subprocess.DEVNULL)
        if not args.check_only:
            bench(corpus, args.runs)
        if not args.no_check:
            check(corpus, args.examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())

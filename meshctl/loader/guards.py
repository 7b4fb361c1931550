"""Hostile-input guards: text refused before it is built, with a one-line message, never a crash
or a hang: documents over MAX_DOCUMENT_BYTES, nesting deeper than MAX_DEPTH (deep nesting
crashes the C composer), alias bombs and recursive aliases. Also keys given twice in one mapping
(kubectl refuses the document), and the safe readers for any text a user hands us outside the
load stage (safe_load, safe_load_all, json_loads)."""
from __future__ import annotations

import json
import re
from functools import lru_cache

import yaml

from meshctl.loader.compose import _MERGE, _Loader

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_EXPANDED_NODES = 1_000_000  # after alias expansion: stops "billion laughs" documents
MAX_DEPTH = 500


def check_node(node: yaml.Node) -> str | None:
    """Refuse alias bombs and absurd nesting without constructing anything."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 0, False)]
    while stack:
        n, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            return f"document nests deeper than {MAX_DEPTH} levels"
        nid = id(n)
        if nid in sizes and not done:
            continue
        if n.id == "scalar":
            sizes[nid] = 1
            continue
        children = [c for kv in n.value for c in kv] if n.id == "mapping" else list(n.value)
        if done:
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            if total > MAX_EXPANDED_NODES:
                return (f"document has too many aliases: it expands to more than {MAX_EXPANDED_NODES:,} "
                        "nodes (an alias bomb?)")
            sizes[nid] = total
            continue
        sizes[nid] = 0  # in progress: on the path from the root to the node being expanded
        stack.append((n, depth, True))
        for c in children:
            if sizes.get(id(c)) == 0:
                return "document contains itself through an alias (a recursive structure)"
            if id(c) not in sizes:
                stack.append((c, depth + 1, False))
    return None


def duplicate_keys(node: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    """(first, second) key nodes of every scalar key given twice in one mapping (merge keys `<<`
    aside). kubectl's strict decoding refuses such a document; YAML parsers keep the last value."""
    out: list[tuple[yaml.Node, yaml.Node]] = []
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.id == "scalar" or id(n) in seen:
            continue
        seen.add(id(n))
        if n.id == "sequence":
            stack.extend(n.value)
            continue
        first: dict[str, yaml.Node] = {}
        for k, v in n.value:
            if k.id == "scalar" and k.tag != _MERGE:
                if k.value in first:
                    out.append((first[k.value], k))
                else:
                    first[k.value] = k
            stack.append(k)
            stack.append(v)
    out.sort(key=lambda pair: (pair[1].start_mark.line, pair[1].start_mark.column))
    return out


_BRACKET = re.compile(r"[\[\]{}]")


def _flow_depth(text: str, end: int) -> int:
    """How many flow collections (`[`, `{`) are open at index `end` of `text`, by their brackets."""
    depth = 0
    for m in _BRACKET.finditer(text, 0, end + 1):
        depth += 1 if m.group() in "[{" else -1
    return depth


@lru_cache(maxsize=None)
def _line_longer_than(n: int) -> re.Pattern:
    return re.compile("[^\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]{%d}" % (n + 1))


def depth_problem(chunk: str) -> tuple[int, str] | None:
    """(0-based line, message) when the text nests deeper than MAX_DEPTH, found before composing
    it (deep nesting crashes the C composer). Cheap bound first; the event scan runs only when the
    bound is exceeded. libyaml may refuse deep nesting itself before producing any event (from
    PyYAML 6.0.4 it stops flow collections at 1,000 levels, in its own words): when the scan fails,
    the brackets open where it stopped tell whether depth was the reason, so the problem reads the
    same whichever PyYAML is installed."""
    brackets = chunk.count("[") + chunk.count("{")
    # the bound: brackets + the longest line (what str.splitlines splits on ends a line)
    if brackets + len(chunk) <= MAX_DEPTH or (
            brackets <= MAX_DEPTH and not _line_longer_than(MAX_DEPTH - brackets).search(chunk)):
        return None
    too_deep = f"document nests deeper than {MAX_DEPTH} levels"
    depth = 0
    try:
        for event in yaml.parse(chunk, Loader=_Loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line, too_deep
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        if mark is not None and depth + _flow_depth(chunk, mark.index) > MAX_DEPTH:
            return mark.line, too_deep
        return None  # the real parse reports it with its line
    return None


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_loads(text: str):
    """json.loads for JSON a user hands us (annotation values, ConfigMap data, --set values):
    nesting deeper than MAX_DEPTH is a ValueError with meshctl's message, like any other
    unreadable JSON, instead of a RecursionError (or a value too deep for the code that reads it)."""
    if text.count("[") + text.count("{") > MAX_DEPTH:
        depth = 0
        for m in _JSON_TOKEN.finditer(text):
            c = m.group()
            if c in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"JSON nests deeper than {MAX_DEPTH} levels")
            elif c in "]}":
                depth -= 1
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nests deeper than {MAX_DEPTH} levels") from None


class HostileYAML(yaml.MarkedYAMLError):
    """Text refused before it is built: nesting deep enough to crash the C parser, or an alias
    bomb. `problem` is meshctl's own one-line message; `problem_mark` its line."""

    def __init__(self, problem: str, line: int):
        super().__init__(problem=problem, problem_mark=yaml.Mark("<text>", 0, line, 0, None, None))

    def __str__(self) -> str:
        return self.problem


def safe_load_all(text: str) -> list:
    """yaml.safe_load_all for any text a user hands us outside load_paths (values files, mesh
    config, annotation values, ConfigMap data), safe on hostile input: nesting deep enough to
    crash the C parser, and alias bombs, raise HostileYAML (a yaml.MarkedYAMLError with meshctl's
    own message and the line) like any other unreadable text."""
    deep = depth_problem(text)
    if deep:
        raise HostileYAML(deep[1], deep[0])
    aliased = "*" in text and "&" in text
    docs = []
    try:
        loader = _Loader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if aliased:
                    bad = check_node(node)
                    if bad:
                        raise HostileYAML(bad, node.start_mark.line)
                docs.append(loader.construct_document(node))
        finally:
            loader.dispose()
    except RecursionError:
        raise HostileYAML(f"document nests deeper than {MAX_DEPTH} levels", 0) from None
    return docs


def safe_load(text: str):
    """One document of text (None when empty); see safe_load_all."""
    docs = safe_load_all(text)
    if len(docs) > 1:
        raise yaml.YAMLError(f"expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None

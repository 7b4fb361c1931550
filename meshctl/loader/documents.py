"""Text → Loaded: the resources of a YAML stream or a JSON file, and problems for what is unusable.

Each YAML document is parsed on its own (CSafeLoader), so one broken document is reported as a
problem (file:line) and the others are still loaded. A document's composed nodes are dropped as
soon as it is built: each object keeps a LineMap (meshctl.resources), a few bytes per field, for
the line of the field a finding names. Hostile input is refused with a problem (see guards),
never a crash or a hang: non-UTF-8 or binary text, documents over 5 MB, alias bombs, very deep
nesting, and documents that are not mappings.
"""
from __future__ import annotations

import gc
import json
import re
from dataclasses import dataclass, field
from typing import Iterable

import yaml

from meshctl.loader.compose import (
    _construct,
    _DuplicateKey,
    _Loader,
    _SlowPath,
    line_map,
)
from meshctl.loader.guards import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    check_node,
    depth_problem,
    duplicate_keys,
)
from meshctl.resources import LineMap, Resource

_DOC_SPLIT = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r]|$).*$", re.M)
# text that is only directives, comments and blank lines (what may come before a `---`)
_DIRECTIVES = re.compile(r"\A(?:[ \t]*(?:[%#].*)?\r?\n)*[ \t]*(?:[%#].*)?\Z")


@dataclass
class LoadProblem:
    """A document or file that could not be used. Code MSH0001 in analysis output."""

    source: str
    line: int
    message: str
    code: str = "MSH0001"
    # Why the input is not a Kubernetes manifest at all (what --ignore-unknown skips): "" when it
    # is one with a mistake, "template" for Go/Helm template text, "other" for any other file or
    # document (CI workflows, tool configs, YAML with foreign tags, binary files).
    unknown: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass
class Loaded:
    resources: list[Resource] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    objects: int = 0  # documents that are Kubernetes objects or lists of them (an empty List too)

    def extend(self, other: "Loaded") -> None:
        self.resources.extend(other.resources)
        self.problems.extend(other.problems)
        self.objects += other.objects


def _split_documents(text: str) -> Iterable[tuple[int, str]]:
    """Yield (0-based line offset, text) of each YAML document of a stream."""
    start = 0
    line = 0
    for m in _DOC_SPLIT.finditer(text):
        chunk = text[start:m.start()]
        if m.group(0).startswith("---") and _DIRECTIVES.match(chunk) and chunk.strip():
            continue  # `%YAML 1.1` / `%TAG ...` lines belong to the document the `---` starts
        yield line, chunk
        line += chunk.count("\n")
        # a `--- value` line keeps its content in the next document
        rest = m.group(0)[3:]
        start = m.start() + 3 if rest.strip() and not m.group(0).startswith("...") else m.end()
    yield line, text[start:]


_MANIFEST_KEYS = re.compile(r'^"?(apiVersion|kind)"?[ \t]*:|"(apiVersion|kind)"[ \t]*:', re.M)


def _unknown(text: str) -> str:
    """For text that cannot be read: "template" when it holds template actions ({{ }}), "other"
    when it does not look like a manifest (no apiVersion: and kind: keys), else ""."""
    if "{{" in text:
        return "template"
    return "" if len({m.group(1) or m.group(2) for m in _MANIFEST_KEYS.finditer(text)}) == 2 else "other"


def _problem_line(exc: Exception, offset: int) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return (mark.line + 1 + offset) if mark is not None else offset + 1


def _yaml_message(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        msg = f"{context}, {problem}" if context else problem
    else:
        msg = str(exc).splitlines()[0]
    return f"invalid YAML: {msg}"


def _items(body: dict, lines: LineMap | None, node: yaml.Node | None = None) -> list[tuple]:
    """Expand `kind: List` (and *List kinds with items) into (item, its line map, its node)."""
    kind = body.get("kind")
    items = body.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        item_maps: list = []
        if lines is not None:
            for i in lines.children():
                sub = lines.child(i)
                if lines.keys[i] == "items" and sub.start < sub.stop and sub.keys[sub.start] is LineMap.SEQUENCE_ITEM:
                    item_maps = [sub.child(j) for j in sub.children()]
        item_nodes: list = []
        if node is not None and node.id == "mapping":
            for k, v in node.value:
                if k.value == "items" and v.id == "sequence":
                    item_nodes = v.value
        return [(item, item_maps[i] if i < len(item_maps) else None, item_nodes[i] if i < len(item_nodes) else None)
                for i, item in enumerate(items)]
    return [(body, lines, node)]


def _duplicate_problems(node: yaml.Node, source: str, offset: int) -> list[LoadProblem]:
    return [LoadProblem(source, second.start_mark.line + 1 + offset,
                        f"key {json.dumps(second.value, ensure_ascii=False)} is given twice in one mapping (first at "
                        f"line {first.start_mark.line + 1 + offset}): kubectl refuses the document; keep one",
                        code="MSH0004")
            for first, second in duplicate_keys(node)]


def _json_node(text: str):
    """The YAML node tree of a JSON text (for line numbers), or None when YAML cannot read it."""
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError, ValueError):
        return None


class _GCPaused:
    """Loading builds millions of objects that live until the run ends (bodies and line maps;
    the YAML nodes are freed by reference counting, they hold no cycles): pause the cyclic GC,
    which would rescan the growing heap over and over."""

    depth = 0

    def __enter__(self):
        if _GCPaused.depth == 0:
            self.was_enabled = gc.isenabled()
            gc.disable()
        _GCPaused.depth += 1
        return self

    def __exit__(self, *exc):
        _GCPaused.depth -= 1
        if _GCPaused.depth == 0 and getattr(self, "was_enabled", True):
            gc.enable()
        return False


def load_text(text: str, source: str, default_namespace: str | None = None, keep_nodes: bool = False) -> Loaded:
    """Parse a (multi-document) YAML or JSON text into resources and problems. Each resource gets
    a LineMap; with `keep_nodes` also its composed YAML node (for an in-place edit of the text)."""
    with _GCPaused():
        return _load_text(text, source, default_namespace, {}, keep_nodes)


def _load_text(text: str, source: str, default_namespace: str | None, strings: dict,
               keep_nodes: bool = False) -> Loaded:
    result = Loaded()
    if source.endswith(".json") and text.lstrip().startswith(("{", "[")):
        deep = depth_problem(text)
        if deep:
            result.problems.append(LoadProblem(source, deep[0] + 1, deep[1]))
            return result
        try:
            data = json.loads(text)
        except RecursionError:
            result.problems.append(LoadProblem(source, 1, f"document nests deeper than {MAX_DEPTH} levels"))
            return result
        except ValueError as e:
            line = getattr(e, "lineno", 1)
            result.problems.append(LoadProblem(source, line, f"invalid JSON: {getattr(e, 'msg', e)}",
                                               unknown=_unknown(text)))
            return result
        # JSON is YAML: its YAML nodes give findings the line of the offending field
        node = _json_node(text)
        lines = None
        if node is not None:
            result.problems.extend(_duplicate_problems(node, source, 0))
            lines = line_map(node, 0)
        if isinstance(data, list):
            sequence = node is not None and node.id == "sequence"
            nodes = node.value if sequence else []
            maps = [lines.child(i) for i in lines.children()] if sequence else []
            docs = data
        else:
            docs, nodes, maps = [data], [node], [lines]
        for i, doc in enumerate(docs):
            n = nodes[i] if i < len(nodes) else None
            _add_document(result, doc, maps[i] if i < len(maps) else None, n if keep_nodes else None, 0,
                          n.start_mark.line + 1 if n is not None else 1, source, default_namespace)
        return result
    for offset, chunk in _split_documents(text):
        _load_document(result, chunk, offset, source, default_namespace, strings, keep_nodes)
    return result


def _load_document(result: Loaded, chunk: str, offset: int, source: str, default_namespace: str | None,
                   strings: dict, keep_nodes: bool = False) -> None:
    """One YAML document of a stream (its text, after `offset` lines) into `result`."""
    if not chunk.strip():
        return
    if len(chunk) * 4 > MAX_DOCUMENT_BYTES and (
            len(chunk) > MAX_DOCUMENT_BYTES or len(chunk.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES):
        result.problems.append(LoadProblem(
            source, offset + 1,
            f"document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB; split it into smaller documents"))
        return
    deep = depth_problem(chunk)
    if deep:
        result.problems.append(LoadProblem(source, offset + deep[0] + 1, deep[1]))
        return
    try:
        loader = _Loader(chunk)
        try:
            node = loader.get_single_node()
            if node is None:
                return
            aliased = "*" in chunk and "&" in chunk
            if aliased:
                bad = check_node(node)
                if bad:
                    result.problems.append(LoadProblem(source, node.start_mark.line + 1 + offset, bad))
                    return
            try:
                data, lines = _construct(node, offset, {} if aliased else None, strings)
            except (_SlowPath, _DuplicateKey):  # the full constructor; the last of duplicate keys wins
                duplicates = _duplicate_problems(node, source, offset)  # before merge keys rewrite the nodes
                data = loader.construct_document(node)
                lines = line_map(node, offset)  # after: a merged key is found where its value was written
                result.problems.extend(duplicates)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        result.problems.append(LoadProblem(source, _problem_line(e, offset), _yaml_message(e), unknown=_unknown(chunk)))
        return
    except RecursionError:
        result.problems.append(LoadProblem(source, offset + 1, "document nests too deeply"))
        return
    except (ValueError, TypeError, OverflowError) as e:  # e.g. an impossible timestamp
        result.problems.append(LoadProblem(source, offset + 1, f"invalid YAML value: {e}", unknown=_unknown(chunk)))
        return
    # the nodes are dropped here (unless kept for an edit): the line map is all findings need
    _add_document(result, data, lines, node if keep_nodes else None, offset, node.start_mark.line + 1 + offset,
                  source, default_namespace)


def _add_document(result: Loaded, data, lines: LineMap | None, node, offset: int, line: int, source: str,
                  default_namespace: str | None) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        result.problems.append(LoadProblem(
            source, line, f"document is a {type(data).__name__}, not a Kubernetes object (a mapping with apiVersion and kind)",
            unknown="other"))
        return
    if isinstance(data.get("apiVersion"), str) and isinstance(data.get("kind"), str):
        result.objects += 1
    for body, item_lines, item_node in _items(data, lines, node):
        item_line = item_lines.line if item_lines is not None else line
        if not isinstance(body, dict):
            result.problems.append(LoadProblem(source, item_line, "list item is not a Kubernetes object"))
            continue
        missing = [f for f in ("apiVersion", "kind") if not isinstance(body.get(f), str) or not body.get(f)]
        if missing:
            result.problems.append(LoadProblem(
                source, item_line, f"object has no {' or '.join(missing)}; every document needs apiVersion and kind",
                # a manifest without its kind has apiVersion and metadata (Helm's Chart.yaml has an apiVersion)
                unknown="other" if body is data and "kind" in missing and "metadata" not in body else ""))
            continue
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            result.problems.append(LoadProblem(source, item_line, "metadata is not a mapping"))
            continue
        res = Resource.from_dict(body, source=source, line=item_line, lines=item_lines,
                                 default_namespace=default_namespace)
        if item_node is not None:
            res.node, res.line_offset = item_node, offset
        result.resources.append(res)


def decode(data: bytes, source: str) -> tuple[str | None, LoadProblem | None]:
    """Bytes → text, refusing binary and non-UTF-8 input with a problem."""
    if b"\x00" in data[:8192]:
        return None, LoadProblem(source, 0, "file is binary, not YAML or JSON", unknown="other")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return None, LoadProblem(source, line, f"file is not UTF-8 (byte 0x{data[e.start]:02x}); save it as UTF-8",
                                 unknown=_unknown(data.decode("utf-8", "replace")))
    return text, None


def load_bytes(data: bytes, source: str, default_namespace: str | None = None, strings: dict | None = None) -> Loaded:
    text, problem = decode(data, source)
    if problem:
        return Loaded(problems=[problem])
    with _GCPaused():
        return _load_text(text, source, default_namespace, {} if strings is None else strings)

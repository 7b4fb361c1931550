"""The load stage: files, directories, stdin → Resources, with line marks and clear problems.

Each YAML document is parsed on its own (CSafeLoader), so one broken document is reported as a
problem (file:line) and the others are still loaded. Hostile input is refused with a problem,
never a crash or a hang: non-UTF-8 or binary files, documents over 5 MB, alias bombs, very deep
nesting, and documents that are not mappings.
"""
from __future__ import annotations

import gc
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from meshctl.errors import InputError
from meshctl.resources import Resource

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_EXPANDED_NODES = 1_000_000  # after alias expansion: stops "billion laughs" documents
MAX_DEPTH = 500
EXTENSIONS = (".yaml", ".yml", ".json")

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """CSafeLoader without path resolvers (unused here; they cost two calls per node)."""

    def descend_resolver(self, current_node, current_index):
        return None

    def ascend_resolver(self):
        return None


# Kubernetes reads unquoted dates as strings; so do we (and JSON output stays plain).
_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: node.value)

_DOC_SPLIT = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r]|$).*$", re.M)


@dataclass
class LoadProblem:
    """A document or file that could not be used. Code MSH0001 in analysis output."""

    source: str
    line: int
    message: str
    code: str = "MSH0001"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass
class Loaded:
    resources: list[Resource] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)

    def extend(self, other: "Loaded") -> None:
        self.resources.extend(other.resources)
        self.problems.extend(other.problems)


def _split_documents(text: str) -> Iterable[tuple[int, str]]:
    """Yield (0-based line offset, text) of each YAML document of a stream."""
    start = 0
    line = 0
    for m in _DOC_SPLIT.finditer(text):
        chunk = text[start:m.start()]
        yield line, chunk
        line += chunk.count("\n")
        # a `--- value` line keeps its content in the next document
        rest = m.group(0)[3:]
        start = m.start() + 3 if rest.strip() and not m.group(0).startswith("...") else m.end()
    yield line, text[start:]


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
                return (f"document expands to more than {MAX_EXPANDED_NODES:,} nodes through aliases "
                        "(an alias bomb?)")
            sizes[nid] = total
            continue
        sizes[nid] = 0  # in progress
        stack.append((n, depth, True))
        for c in children:
            if id(c) not in sizes:
                stack.append((c, depth + 1, False))
    return None


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


def _items(body: dict, node: yaml.Node | None) -> list[tuple[dict, yaml.Node | None]]:
    """Expand `kind: List` (and *List kinds with items) into their items."""
    kind = body.get("kind")
    items = body.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        item_nodes: list = []
        if node is not None and node.id == "mapping":
            for k, v in node.value:
                if k.value == "items" and v.id == "sequence":
                    item_nodes = v.value
        out = []
        for i, item in enumerate(items):
            out.append((item, item_nodes[i] if i < len(item_nodes) else None))
        return out
    return [(body, node)]


class _SlowPath(Exception):
    """The document needs PyYAML's full constructor (merge keys, unusual scalars)."""


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_TRUE = frozenset({"yes", "true", "on"})


def _construct(node: yaml.Node, memo: dict | None):
    """Nodes → Python data, faster than PyYAML's constructor for the plain cases Kubernetes
    manifests are made of. Timestamps stay strings (as Kubernetes reads them). Raises _SlowPath
    for anything unusual; shared (aliased) nodes are built once when `memo` is given."""
    if memo is not None:
        hit = memo.get(id(node))
        if hit is not None:
            return hit
    nid = node.id
    if nid == "scalar":
        tag = node.tag
        v = node.value
        if tag == _STR or tag == _TIMESTAMP:
            return v
        if tag == _INT:
            if v.isdigit() and (len(v) == 1 or v[0] != "0"):
                return int(v)
            raise _SlowPath
        if tag == _BOOL:
            return v.lower() in _TRUE
        if tag == _NULL:
            return None
        raise _SlowPath
    if nid == "sequence":
        out = [_construct(c, memo) for c in node.value]
    else:
        out = {}
        for k, v in node.value:
            if k.tag == _MERGE:
                raise _SlowPath
            key = _construct(k, memo)
            if isinstance(key, (list, dict)):
                raise _SlowPath
            out[key] = _construct(v, memo)
    if memo is not None:
        memo[id(node)] = out
    return out


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


def depth_problem(chunk: str) -> str | None:
    """Refuse documents nested deeper than MAX_DEPTH before composing them (deep nesting crashes
    the C composer). Cheap bound first; the event scan runs only when the bound is exceeded."""
    bound = chunk.count("[") + chunk.count("{") + max(map(len, chunk.splitlines()), default=0)
    if bound <= MAX_DEPTH:
        return None
    depth = 0
    try:
        for event in yaml.parse(chunk, Loader=_Loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return f"document nests deeper than {MAX_DEPTH} levels"
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as e:
        if "nesting depth" in str(e):  # libyaml from PyYAML 6.0.4 on stops deep nesting itself
            return f"document nests deeper than {MAX_DEPTH} levels"
        return None  # the real parse reports it with its line
    return None


def safe_load_all(text: str) -> list:
    """yaml.safe_load_all for any text a user hands us outside load_paths (values files, mesh
    config, annotation values, ConfigMap data), safe on hostile input: nesting deep enough to
    crash the C parser, and alias bombs, raise yaml.YAMLError like any other unreadable text."""
    deep = depth_problem(text)
    if deep:
        raise yaml.YAMLError(deep)
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
                        raise yaml.YAMLError(bad)
                docs.append(loader.construct_document(node))
        finally:
            loader.dispose()
    except RecursionError:
        raise yaml.YAMLError("document nests too deeply") from None
    return docs


def safe_load(text: str):
    """One document of text (None when empty); see safe_load_all."""
    docs = safe_load_all(text)
    if len(docs) > 1:
        raise yaml.YAMLError(f"expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


class _GCPaused:
    """Loading keeps every node alive: pause the cyclic GC, which would rescan the growing heap
    over and over (3-6x the parse time on large corpora)."""

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


def load_text(text: str, source: str, default_namespace: str | None = None) -> Loaded:
    """Parse a (multi-document) YAML or JSON text into resources and problems."""
    with _GCPaused():
        return _load_text(text, source, default_namespace)


def _load_text(text: str, source: str, default_namespace: str | None) -> Loaded:
    result = Loaded()
    if source.endswith(".json") and text.lstrip().startswith(("{", "[")):
        try:  # json.loads refuses nesting beyond the recursion limit, so composing below is safe
            data = json.loads(text)
        except RecursionError:
            result.problems.append(LoadProblem(source, 1, "document nests too deeply"))
            return result
        except ValueError as e:
            line = getattr(e, "lineno", 1)
            result.problems.append(LoadProblem(source, line, f"invalid JSON: {getattr(e, 'msg', e)}"))
            return result
        # JSON is YAML: its YAML nodes give findings the line of the offending field
        node = _json_node(text)
        if isinstance(data, list):
            docs, nodes = data, (node.value if node is not None and node.id == "sequence" else [])
        else:
            docs, nodes = [data], [node]
        for i, doc in enumerate(docs):
            n = nodes[i] if i < len(nodes) else None
            _add_document(result, doc, n, 0, n.start_mark.line + 1 if n is not None else 1, source, default_namespace)
        return result
    for offset, chunk in _split_documents(text):
        if not chunk.strip():
            continue
        if len(chunk) > MAX_DOCUMENT_BYTES or len(chunk.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
            result.problems.append(LoadProblem(
                source, offset + 1,
                f"document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB; split it into smaller documents"))
            continue
        deep = depth_problem(chunk)
        if deep:
            result.problems.append(LoadProblem(source, offset + 1, deep))
            continue
        try:
            loader = _Loader(chunk)
            try:
                node = loader.get_single_node()
                if node is None:
                    continue
                aliased = "*" in chunk and "&" in chunk
                if aliased:
                    bad = check_node(node)
                    if bad:
                        result.problems.append(LoadProblem(source, node.start_mark.line + 1 + offset, bad))
                        continue
                try:
                    data = _construct(node, {} if aliased else None)
                except _SlowPath:
                    data = loader.construct_document(node)
            finally:
                loader.dispose()
        except yaml.YAMLError as e:
            result.problems.append(LoadProblem(source, _problem_line(e, offset), _yaml_message(e)))
            continue
        except RecursionError:
            result.problems.append(LoadProblem(source, offset + 1, "document nests too deeply"))
            continue
        except (ValueError, TypeError, OverflowError) as e:  # e.g. an impossible timestamp
            result.problems.append(LoadProblem(source, offset + 1, f"invalid YAML value: {e}"))
            continue
        _add_document(result, data, node, offset, node.start_mark.line + 1 + offset, source, default_namespace)
    return result


def _add_document(result: Loaded, data, node, offset: int, line: int, source: str,
                  default_namespace: str | None) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        result.problems.append(LoadProblem(
            source, line, f"document is a {type(data).__name__}, not a Kubernetes object (a mapping with apiVersion and kind)"))
        return
    for body, item_node in _items(data, node):
        item_line = (item_node.start_mark.line + 1 + offset) if item_node is not None else line
        if not isinstance(body, dict):
            result.problems.append(LoadProblem(source, item_line, "list item is not a Kubernetes object"))
            continue
        missing = [f for f in ("apiVersion", "kind") if not isinstance(body.get(f), str) or not body.get(f)]
        if missing:
            result.problems.append(LoadProblem(
                source, item_line, f"object has no {' or '.join(missing)}; every document needs apiVersion and kind"))
            continue
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            result.problems.append(LoadProblem(source, item_line, "metadata is not a mapping"))
            continue
        res = Resource.from_dict(body, source=source, line=item_line, node=item_node,
                                 default_namespace=default_namespace)
        res.line_offset = offset
        result.resources.append(res)


def decode(data: bytes, source: str) -> tuple[str | None, LoadProblem | None]:
    """Bytes → text, refusing binary and non-UTF-8 input with a problem."""
    if b"\x00" in data[:8192]:
        return None, LoadProblem(source, 0, "file is binary, not YAML or JSON")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return None, LoadProblem(source, line, f"file is not UTF-8 (byte 0x{data[e.start]:02x}); save it as UTF-8")
    return text, None


def load_bytes(data: bytes, source: str, default_namespace: str | None = None) -> Loaded:
    text, problem = decode(data, source)
    if problem:
        return Loaded(problems=[problem])
    return load_text(text, source, default_namespace)


def iter_files(path: str, recursive: bool = False) -> list[str]:
    """The YAML/JSON files of a directory (sorted; subdirectories only with `recursive`)."""
    root = Path(path)
    if recursive:
        files = [str(p) for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in EXTENSIONS]
    else:
        files = [str(p) for p in sorted(root.iterdir()) if p.is_file() and p.suffix in EXTENSIONS]
    return files


def read_source(path: str) -> bytes:
    """Read a file (or stdin for "-"), turning OS errors into a one-line InputError."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory", hint="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", hint="pass a file, or a directory with -R") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", hint="check the file's permissions") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None


def load_paths(paths: Iterable[str], recursive: bool = False, default_namespace: str | None = None) -> Loaded:
    """Load files, directories and "-" (stdin). A missing or unreadable path is an InputError
    (exit 2); a bad document inside a readable file is a problem in the result."""
    result = Loaded()
    with _GCPaused():
        _load_paths_into(result, paths, recursive, default_namespace)
    return result


def _load_paths_into(result: Loaded, paths: Iterable[str], recursive: bool, default_namespace: str | None) -> None:
    for path in paths:
        if path != "-" and os.path.isdir(path):
            try:
                files = iter_files(path, recursive)
            except PermissionError:
                raise InputError(f"{path}: permission denied", hint="check the directory's permissions") from None
            for f in files:
                result.extend(load_bytes(read_source(f), f, default_namespace))
            continue
        result.extend(load_bytes(read_source(path), path, default_namespace))

"""The load stage: files, directories, stdin → Resources, with line marks and clear problems.

Each YAML document is parsed on its own (CSafeLoader), so one broken document is reported as a
problem (file:line) and the others are still loaded. A document's composed nodes are dropped as
soon as it is built: each object keeps a LineMap (meshctl.resources), a few bytes per field, for
the line of the field a finding names. Hostile input is refused with a problem (see guards),
never a crash or a hang: non-UTF-8 or binary files, documents over 5 MB, alias bombs, very deep
nesting, and documents that are not mappings. YAML nodes become objects and line maps in compose.
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
    MAX_EXPANDED_NODES,
    HostileYAML,
    check_node,
    depth_problem,
    duplicate_keys,
    json_loads,
    safe_load,
    safe_load_all,
)
from meshctl.resources import LineMap, Resource

__all__ = [
    "EXTENSIONS", "MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_EXPANDED_NODES", "POOL_MIN_BYTES", "WORKERS_ENV",
    "HostileYAML", "LoadProblem", "Loaded",
    "check_node", "decode", "depth_problem", "duplicate_keys", "iter_files", "json_loads", "line_map",
    "load_bytes", "load_paths", "load_text", "read_source", "safe_load", "safe_load_all", "workers",
]

_DOC_SPLIT = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r]|$).*$", re.M)


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


EXTENSIONS = (".yaml", ".yml", ".json")


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


# Input at least this large is parsed by a pool of processes (one per CPU), below it in this
# process: importing multiprocessing and starting two workers takes 25-30 ms, about what a second
# process saves on 256 KB of YAML (parsed at about 4 MB/s per process).
POOL_MIN_BYTES = 256 * 1024
WORKERS_ENV = "MESHCTL_WORKERS"  # processes that parse input (1: no pool)


def workers() -> int:
    """How many processes parse a large input: $MESHCTL_WORKERS, else the CPUs this process may
    run on. A pool needs the fork start method (Linux); elsewhere input is parsed in this process."""
    import multiprocessing

    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise InputError(f"{WORKERS_ENV}={value!r} is not a number",
                             hint="set it to a number of processes, e.g. 2") from None
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_paths(paths: Iterable[str], recursive: bool = False, default_namespace: str | None = None) -> Loaded:
    """Load files, directories and "-" (stdin). A missing or unreadable path is an InputError
    (exit 2); a bad document inside a readable file is a problem in the result. Large inputs are
    parsed in a pool of processes (see POOL_MIN_BYTES); the result is the same, in the same order."""
    result = Loaded()
    with _GCPaused():
        _load_paths_into(result, paths, recursive, default_namespace)
    return result


def _plan(paths: Iterable[str], recursive: bool) -> list:
    """The files to read in order ("-" for stdin), each directory expanded; a directory that
    cannot be listed is an InputError in its place (raised when reached, after earlier paths)."""
    plan: list = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            try:
                plan.extend(iter_files(path, recursive))
            except PermissionError:
                plan.append(InputError(f"{path}: permission denied", hint="check the directory's permissions"))
                break
            continue
        plan.append(path)
    return plan


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # reading it reports why


def _load_files(task: tuple[list[str], str | None]) -> Loaded:
    """Load a batch of files (in a pool process)."""
    files, default_namespace = task
    out = Loaded()
    strings: dict = {}
    with _GCPaused():
        for f in files:
            out.extend(load_bytes(read_source(f), f, default_namespace, strings))
    return out


def _load_documents(task: tuple[str, list[tuple[int, str]], str | None]) -> Loaded:
    """Load a run of documents of one large file (in a pool process)."""
    source, documents, default_namespace = task
    out = Loaded()
    strings: dict = {}
    with _GCPaused():
        for offset, chunk in documents:
            _load_document(out, chunk, offset, source, default_namespace, strings)
    return out


def _split_file(path: str, target: int) -> list:
    """A large YAML file as runs of its documents of about `target` characters each (for the
    pool); a file that cannot be read or decoded, or a JSON file, as one step of its own."""
    try:
        text, problem = decode(read_source(path), path)
    except InputError as e:
        return [e]
    if problem:
        return [Loaded(problems=[problem])]
    if path.endswith(".json") and text.lstrip().startswith(("{", "[")):
        return [[path]]
    runs: list = []
    size = target
    for offset, chunk in _split_documents(text):
        if size >= target:
            runs.append((path, []))
            size = 0
        runs[-1][1].append((offset, chunk))
        size += len(chunk)
    return runs


def _load_paths_into(result: Loaded, paths: Iterable[str], recursive: bool, default_namespace: str | None) -> None:
    plan = _plan(paths, recursive)
    files = [p for p in plan if isinstance(p, str) and p != "-"]
    sizes = {f: _size(f) for f in files}
    total = sum(sizes.values())
    n = workers() if total >= POOL_MIN_BYTES else 1
    if n < 2:
        strings: dict = {}
        for item in plan:
            if isinstance(item, InputError):
                raise item
            result.extend(load_bytes(read_source(item), item, default_namespace, strings))
        return
    # steps in order: batches of files, or runs of documents of a large file, of about a quarter
    # of a worker's share, so that the workers finish together; "-" (read here); an InputError
    # (raised when reached); a file's problem. Results come back in order.
    target = max(64 * 1024, total // (n * 4))
    steps: list = []
    for item in plan:
        if isinstance(item, str) and item != "-":
            if sizes[item] > target:
                steps.extend(_split_file(item, target))
            elif steps and isinstance(steps[-1], list) and sum(sizes[f] for f in steps[-1]) < target:
                steps[-1].append(item)
            else:
                steps.append([item])
        else:
            steps.append(item)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    tasks = [(_load_files, (step, default_namespace)) if isinstance(step, list) else
             (_load_documents, (*step, default_namespace)) if isinstance(step, tuple) else None for step in steps]
    jobs = sum(t is not None for t in tasks)
    pool = ProcessPoolExecutor(min(n, jobs), mp_context=multiprocessing.get_context("fork")) if jobs else None
    try:
        futures = [pool.submit(*t) if t is not None else None for t in tasks]
        for i, step in enumerate(steps):
            if isinstance(step, InputError):
                raise step
            if isinstance(step, Loaded):
                result.extend(step)
            elif isinstance(step, str):
                result.extend(load_bytes(read_source(step), step, default_namespace))
            else:
                try:
                    result.extend(futures[i].result())
                except BrokenProcessPool:  # a worker was killed (out of memory?): parse its part here
                    work, args = tasks[i]
                    result.extend(work(args))
            steps[i] = tasks[i] = futures[i] = None  # a large file's documents are not kept
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

"""Load and report stages of `meshctl inject`: read files, directories or stdin as YAML
document streams, transform the workloads, pass every other document through unchanged and in
order, and write the result (to stdout, or atomically to a file).
"""
from __future__ import annotations

import os
import re
from typing import Callable, Iterable

import yaml

from meshctl.errors import InputError
from meshctl.loader import decode, iter_files, read_source

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SEPARATOR = re.compile(r"^---(?=[ \t\r]|$)[^\n]*\n?", re.M)
_END = re.compile(r"^\.\.\.[ \t\r]*$", re.M)

Transform = Callable[[dict, str], dict]


def read_inputs(paths: Iterable[str], recursive: bool = False) -> list[tuple[str, str]]:
    """(source, text) of every input: files, the YAML/JSON files of directories, stdin for "-"."""
    out = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            files = iter_files(path, recursive)
        else:
            files = [path]
        for f in files:
            text, problem = decode(read_source(f), "stdin" if f == "-" else f)
            if problem:
                raise InputError(str(problem), hint="pass Kubernetes YAML or JSON")
            out.append(("stdin" if f == "-" else f, text))
    return out


def split_documents(text: str) -> list[tuple[int, str]]:
    """(1-based first line, raw text) of each document of a YAML stream."""
    text = _END.sub("", text)
    docs = []
    start = 0
    line = 1
    head_line, pending = 1, ""
    for m in _SEPARATOR.finditer(text):
        chunk = text[start:m.start()]
        docs.append((head_line, pending + chunk))
        line += chunk.count("\n")
        rest = m.group(0)[3:].strip()
        head_line, pending = line + 1, ""
        if rest.startswith("#"):  # "--- # comment": the comment heads the next document
            head_line, pending = line, rest + "\n"
        elif rest:  # "--- value": the value belongs to the next document
            docs.append((line, rest + "\n"))
        line += 1
        start = m.end()
    docs.append((head_line, pending + text[start:]))
    return [(ln, c) for ln, c in docs if c.strip()]


def parse(chunk: str, source: str, line: int):
    """One document's data; hostile documents (deep nesting, alias bombs) are an InputError."""
    from meshctl.loader import check_node, depth_problem

    deep = depth_problem(chunk)
    if deep:
        raise InputError(f"{source}:{line + deep[0]}: {deep[1]}")
    try:
        loader = _Loader(chunk)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if "&" in chunk:  # aliases need anchors: only then can a document expand
                problem = check_node(node)
                if problem:
                    raise InputError(f"{source}:{line + node.start_mark.line}: {problem}")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = line + (mark.line if mark is not None else 0)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{source}:{where}: invalid YAML: {problem}", hint="fix the document and try again") from None
    except RecursionError:
        raise InputError(f"{source}:{line}: document nests too deeply") from None


def leading_comments(chunk: str) -> str:
    """The comment lines a document starts with (Helm's `# Source: chart/templates/x.yaml`, a
    licence header), kept above the document when it is written out anew."""
    out = []
    for raw in chunk.splitlines():
        text = raw.strip()
        if text.startswith("#"):
            out.append(raw.rstrip() + "\n")
        elif text:
            break
    return "".join(out)


_scalars: dict = {}


def dump(doc, frozen: set | None = None, memo: dict | None = None) -> str:
    from meshctl.inject.emit import dump as emit

    return emit(doc, _scalars, frozen, memo)


def process(inputs: list[tuple[str, str]], transform: Transform, frozen: set | None = None) -> str:
    """Apply `transform(doc, where)` to every mapping document (List items included); a document
    the transform returns unchanged (the same object) is copied through as written."""
    parts: list[str] = []
    memo: dict = {}
    for source, text in inputs:
        for line, chunk in split_documents(text):
            doc = parse(chunk, source, line)
            if doc is None:
                continue
            where = f"{source}:{line}"
            out = doc
            if isinstance(doc, dict):
                if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
                    items = [transform(i, where) if isinstance(i, dict) else i for i in doc["items"]]
                    if any(a is not b for a, b in zip(items, doc["items"])):
                        out = dict(doc)
                        out["items"] = items
                else:
                    out = transform(doc, where)
            if out is doc:
                parts.append(chunk if chunk.endswith("\n") else chunk + "\n")
            else:
                parts.append(leading_comments(chunk) + dump(out, frozen, memo))
    return "---\n".join(parts)

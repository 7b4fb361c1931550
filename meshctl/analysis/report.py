"""The report stage of `meshctl analyze`: text, json, yaml and SARIF writers.

- text: one line per finding as istioctl prints them,
  `Error [IST0101] (VirtualService default/reviews reviews.yaml:14) Referenced host not found: "reviewz"`,
  coloured by level on a terminal, then a summary line on stderr.
- json / yaml: istioctl's list of `{code, level, message, origin, reference, documentationUrl}`.
- sarif: SARIF 2.1.0 for GitHub code scanning (one run; a rule per code that occurs).
"""
from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, TextIO

from meshctl.analysis.framework import Message, message_types

if TYPE_CHECKING:
    from meshctl.analysis.pipeline import AnalysisResult

FORMATS = ("text", "json", "yaml", "sarif")
INFORMATION_URI = "https://github.com/meshctl/meshctl"
LEVEL_STYLE = {"Error": "bold red", "Warning": "yellow", "Info": "cyan"}
SARIF_LEVEL = {"Error": "error", "Warning": "warning", "Info": "note"}
SARIF_SEVERITY = {"Error": "error", "Warning": "warning", "Info": "recommendation"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


# --- text ---------------------------------------------------------------------------------------

def text_line(m: Message) -> tuple[str, str]:
    """(level, rest) of a finding's line: `[CODE] (origin file:line) message`."""
    where = " ".join(p for p in (m.origin, m.reference) if p)
    where = f" ({where})" if where else ""
    return m.level, f"[{m.code}]{where} {m.text}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word == "info" else f"{n} {word}s"


def summary(result: "AnalysisResult") -> str:
    scope = _scope(result)
    below = f" ({result.hidden} below the output threshold)" if result.hidden else ""
    if not result.messages:
        if result.hidden:
            return f"No validation issues at or above the output threshold when analyzing {scope}{below}."
        return f"No validation issues found when analyzing {scope}."
    c = result.counts()
    return f"{_plural(c['Error'], 'error')}, {_plural(c['Warning'], 'warning')}, {c['Info']} info in {scope}{below}"


def _scope(result: "AnalysisResult") -> str:
    parts = [_plural(result.resources, "resource")]
    if result.files:
        parts.append(f"from {_plural(result.files, 'file')}")
    if result.from_cluster:
        parts.append("with the cluster's" if result.files else "from the cluster")
    if result.scope:
        parts.append(f"(namespace {result.scope})")
    if result.skipped:
        parts.append(f"({_plural(result.skipped, 'document')} skipped: not Kubernetes objects)")
    return " ".join(parts)


def write_text(result: "AnalysisResult", out: TextIO | None = None, err: TextIO | None = None) -> None:
    from meshctl import output

    out = out or sys.stdout
    err = err or sys.stderr
    color = output.color_enabled(out)
    if color:
        from rich.markup import escape

        con = output.console()
        for m in result.messages:
            level, rest = text_line(m)
            con.print(f"[{LEVEL_STYLE.get(level, '')}]{level}[/] {escape(rest)}")
    else:
        for m in result.messages:
            level, rest = text_line(m)
            out.write(f"{level} {rest}\n")
        out.flush()
    ecolor = output.color_enabled(err)
    if not result.messages and not result.failed:
        line = "✔ " + summary(result)
        err.write((f"\x1b[32m{line}\x1b[0m" if ecolor else line) + "\n")
    else:
        line = ("✖ " if result.failed else "‼ ") + summary(result)
        style = "\x1b[31m" if result.failed else "\x1b[33m"
        err.write((f"{style}{line}\x1b[0m" if ecolor else line) + "\n")
    err.flush()


# --- json / yaml --------------------------------------------------------------------------------

def to_list(result: "AnalysisResult") -> list[dict]:
    return [m.to_dict() for m in result.messages]


def dump_json_list(items: list[dict]) -> str:
    """json.dumps(items, indent=2, ensure_ascii=False) for a list of flat dicts, several times
    faster (Python's C encoder does not indent, so each value is encoded on its own)."""
    if not items:
        return "[]"
    enc = json.JSONEncoder(ensure_ascii=False).encode
    if any(isinstance(v, (dict, list)) for d in items for v in d.values()):
        return json.dumps(items, indent=2, ensure_ascii=False)
    return "[\n" + ",\n".join(
        "  {\n" + ",\n".join(f"    {enc(k)}: {enc(v)}" for k, v in d.items()) + "\n  }" if d else "  {}"
        for d in items) + "\n]"


# --- SARIF --------------------------------------------------------------------------------------

def artifact_location(path: str, cwd: str | None = None) -> dict | None:
    """A SARIF artifactLocation: relative to the working directory under %SRCROOT% (forward
    slashes), or an absolute file URI for files outside it; None for stdin and cluster objects."""
    if not path or path in ("-", "cluster") or path.startswith("<"):
        return None
    from pathlib import Path, PurePosixPath
    from urllib.parse import quote

    cwd = cwd or os.getcwd()
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, cwd) if os.path.splitdrive(absolute)[0] == os.path.splitdrive(cwd)[0] else None
    if rel is not None and not rel.startswith(".."):
        return {"uri": quote(PurePosixPath(*Path(rel).parts).as_posix()), "uriBaseId": "%SRCROOT%"}
    return {"uri": Path(absolute).as_uri()}


def _rule(code: str) -> dict:
    mt = message_types()[code]
    description = mt.description or mt.name
    if not description.endswith("."):
        description += "."
    source = "istio" if code.startswith("IST") else "meshctl"
    markdown = (f"**{mt.name}** ({code}, {mt.level.lower()})\n\n{description}\n\n"
                f"See [{code}]({mt.doc_url}) for causes and fixes.")
    return {
        "id": code,
        "name": mt.name,
        "shortDescription": {"text": f"{mt.name}: {description}"},
        "fullDescription": {"text": description},
        "help": {"text": f"{description} See {mt.doc_url} for causes and fixes.", "markdown": markdown},
        "helpUri": mt.doc_url,
        "defaultConfiguration": {"level": SARIF_LEVEL.get(mt.level, "warning")},
        "properties": {"tags": ["service-mesh", source], "precision": "high",
                       "problem.severity": SARIF_SEVERITY.get(mt.level, "warning")},
    }


def to_sarif(result: "AnalysisResult", version: str | None = None, cwd: str | None = None) -> dict:
    import hashlib

    if version is None:
        from meshctl import __version__ as version
    codes = sorted({m.code for m in result.messages})
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for m in result.messages:
        r: dict = {"ruleId": m.code, "ruleIndex": index[m.code], "level": SARIF_LEVEL.get(m.level, "warning"),
                   "message": {"text": m.text}}
        loc: dict = {}
        art = artifact_location(m.file or "", cwd)
        if art is not None:
            loc["physicalLocation"] = {"artifactLocation": art,
                                       "region": {"startLine": max(1, m.line_number or 1)}}
        if m.origin:
            kind, _, name = m.origin.partition(" ")
            loc["logicalLocations"] = [{"fullyQualifiedName": m.origin, "name": name, "kind": "object"}]
        elif art is None:  # a document from stdin that could not be loaded
            where = "stdin" if m.file == "-" else (m.file or "input")
            loc["logicalLocations"] = [{"fullyQualifiedName": where, "name": where, "kind": "resource"}]
        r["locations"] = [loc]  # GitHub requires a location on every result
        digest = hashlib.sha256(f"{m.code}\0{m.origin}\0{m.text}".encode()).hexdigest()[:32]
        r["partialFingerprints"] = {"meshctlFinding/v1": digest}
        results.append(r)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "meshctl", "version": str(version), "semanticVersion": str(version),
                                "informationUri": INFORMATION_URI, "rules": [_rule(c) for c in codes]}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


# --- dispatch -----------------------------------------------------------------------------------

def write(result: "AnalysisResult", fmt: str, out: TextIO | None = None, err: TextIO | None = None) -> None:
    out = out or sys.stdout
    if fmt == "text":
        write_text(result, out, err)
        return
    if fmt == "json":
        out.write(dump_json_list(to_list(result)) + "\n")
    elif fmt == "yaml":
        from meshctl.output import to_yaml

        out.write(to_yaml(to_list(result)))
    elif fmt == "sarif":
        out.write(json.dumps(to_sarif(result), indent=2, ensure_ascii=False) + "\n")
    else:  # pragma: no cover - the CLI checks the format
        raise ValueError(fmt)
    out.flush()

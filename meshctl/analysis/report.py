"""The report stage of `meshctl analyze`: text, json, yaml and SARIF writers.

- text: one line per finding as istioctl prints them,
  `Error [IST0101] (VirtualService default/reviews reviews.yaml:14) Referenced host not found: "reviewz"`,
  coloured by level on a terminal, then a summary line on stderr.
- json / yaml: istioctl's list of `{code, level, message, origin, reference, documentationUrl}`.
- sarif: SARIF 2.1.0 for GitHub code scanning (one run; a rule per code that occurs).
- junit: JUnit XML for CI systems that show test reports (as kubeconform writes it): a test
  suite per file (and one for the cluster's objects), a test case per analyzed object, a failure
  per finding at or above the failure threshold, the other findings in the case's system-out.
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING, TextIO

from meshctl.analysis.framework import Message, message_types

if TYPE_CHECKING:
    from meshctl.analysis.pipeline import AnalysisResult

FORMATS = ("text", "json", "yaml", "sarif", "junit")
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

        con = output.console(stream=out)
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
        "properties": _rule_properties(mt, source),
    }


def _rule_properties(mt, source: str) -> dict:
    """GitHub ranks the alerts of rules tagged `security` by their `security-severity`."""
    props: dict = {"tags": ["service-mesh", source], "precision": "high",
                   "problem.severity": SARIF_SEVERITY.get(mt.level, "warning")}
    if mt.security_severity:
        props["tags"].append("security")
        props["security-severity"] = mt.security_severity
    return props


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


# --- JUnit XML ----------------------------------------------------------------------------------

# Characters XML 1.0 cannot hold, even escaped (user text may carry them: hostile input).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _suite_name(source: str | None, from_cluster: bool) -> str:
    return "cluster" if from_cluster or not source else source


def to_junit(result: "AnalysisResult") -> str:
    """The JUnit XML document (see the module docstring); deterministic (no times)."""
    import xml.etree.ElementTree as ET

    from meshctl.analysis.framework import LEVEL_RANK, level_rank

    floor = level_rank(result.failure_threshold)
    cases: dict[object, dict] = {}  # key → {"suite", "name", "classname", "order", "messages"}

    def case_for_resource(r) -> dict:
        key = id(r)
        if key not in cases:
            cases[key] = {"suite": _suite_name(r.source, r.from_cluster), "name": r.origin,
                          "classname": f"{r.kind}@{r.api_version}", "order": (r.line, r.origin), "messages": []}
        return cases[key]

    for r in result.analyzed:
        case_for_resource(r)
    for m in result.messages:
        if m.resource is not None:
            case = case_for_resource(m.resource)
        else:  # a document that could not be read (or a finding about no object)
            key = ("document", m.file, m.line_number)
            case = cases.setdefault(key, {"suite": m.file or "input", "name": f"document at line {m.line_number}",
                                          "classname": "document", "order": (m.line_number, ""), "messages": []})
        case["messages"].append(m)

    root = ET.Element("testsuites", name="meshctl analyze")
    total = failed_total = 0
    by_suite: dict[str, list[dict]] = {}
    for case in cases.values():
        by_suite.setdefault(case["suite"], []).append(case)
    for suite_name in sorted(by_suite, key=lambda n: (n == "cluster", n)):
        suite = ET.SubElement(root, "testsuite", name=_xml_text(suite_name))
        failed = 0
        members = sorted(by_suite[suite_name], key=lambda c: c["order"])
        for case in members:
            tc = ET.SubElement(suite, "testcase", name=_xml_text(case["name"]), classname=_xml_text(case["classname"]))
            below = []
            for m in case["messages"]:
                level, rest = text_line(m)
                line = _xml_text(f"{level} {rest}")
                if LEVEL_RANK.get(m.level, 0) >= floor:
                    f = ET.SubElement(tc, "failure", message=_xml_text(f"{m.code}: {m.text}"), type=m.code)
                    f.text = f"{line}\nSee {m.type.doc_url}"
                else:
                    below.append(line)
            if tc.find("failure") is not None:
                failed += 1
            if below:
                ET.SubElement(tc, "system-out").text = "\n".join(below)
        suite.set("tests", str(len(members)))
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total += len(members)
        failed_total += failed
    root.set("tests", str(total))
    root.set("failures", str(failed_total))
    root.set("errors", "0")
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


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
    elif fmt == "junit":
        out.write(to_junit(result))
    else:  # pragma: no cover - the CLI checks the format
        raise ValueError(fmt)
    out.flush()

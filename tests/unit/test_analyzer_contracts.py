"""The analyzer framework's contracts, checked as Istio checks its own: every analyzer has a
unique name and a description, every code it can report is in messages.yaml, and the kinds it
reads — recorded while it runs over Istio's analyzer test cases and meshctl's examples — are the
kinds it declares as inputs (an analyzer that reads an undeclared kind is skipped when only that
kind is present, and silently says nothing)."""
from __future__ import annotations

import collections
import inspect
import json
import re
from pathlib import Path

import pytest
import yaml

from meshctl.analysis import framework
from meshctl.loader import load_paths
from meshctl.resources import ResourceSet

ROOT = Path(__file__).resolve().parents[2]
ANALYZERS = framework.all_analyzers()


def test_names_are_unique_and_every_analyzer_is_described():
    names = [a.name for a in ANALYZERS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z0-9]+(\.[A-Za-z0-9]+)+", n) for n in names), names
    assert not [a.name for a in ANALYZERS if not a.description.strip()]


def test_every_code_an_analyzer_reports_is_a_known_message():
    known = framework.message_types()
    for a in ANALYZERS:
        source = inspect.getsource(inspect.getmodule(a))
        for code in re.findall(r'report\(\s*"((?:IST|MSH)\d{4})"', source):
            assert code in known, (a.name, code)


def _inputs() -> list[tuple[list[Path], dict | None]]:
    out = []
    base = ROOT.parent / "shared" / "conformance" / "istio-analyze"
    if base.is_dir():
        for case in json.loads((base / "cases.json").read_text()):
            mesh = yaml.safe_load((base / case["mesh_config_file"]).read_text()) if case["mesh_config_file"] else None
            out.append(([base / "harness-defaults.yaml"] + [base / f for f in case["input_files"]], mesh))
    for d in ("examples/bookinfo", "tests/unit/data/istio-bookinfo", "tests/data/gateway-api/examples/standard"):
        if (ROOT / d).is_dir():
            out += [([p], None) for p in sorted((ROOT / d).rglob("*.yaml"))]
    return out


@pytest.fixture(scope="module")
def reads() -> dict[str, set[str]]:
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for paths, mesh in _inputs():
        loaded = load_paths([str(p) for p in paths], default_namespace="default")
        recorded: dict[str, set[str]] = {}
        framework.run(ResourceSet(loaded.resources), ANALYZERS, mesh_config=mesh, reads=recorded)
        for name, kinds in recorded.items():
            seen[name] |= kinds
    return seen


def test_analyzers_read_only_the_kinds_they_declare(reads):
    wrong = {}
    for a in ANALYZERS:
        kinds = reads.get(a.name, set())
        if not a.inputs:  # no inputs: runs on every input and may read anything
            continue
        undeclared = kinds - set(a.inputs) - {"*"}
        if undeclared:
            wrong[a.name] = sorted(undeclared)
    assert not wrong, f"analyzers reading kinds they do not declare: {wrong}"


def test_declared_inputs_are_kinds():
    """Inputs name object kinds (as the loader sees them), not Istio's internal collection names."""
    from meshctl.analysis.apigroups import builtin_groups

    from meshctl.kinds import WORKLOAD_KINDS

    known = {k for g in builtin_groups().values() for k in g.kinds} | WORKLOAD_KINDS  # + OpenShift's
    bad = {a.name: sorted(set(a.inputs) - known) for a in ANALYZERS if set(a.inputs) - known}
    assert not bad, bad

"""The conformance bar: `../shared/conformance/score analyze` (Istio's own analyzer test cases)
must reach recall and precision of at least 95%.

The scorer's own code computes the figures; its `run` (one `meshctl analyze` process per case)
is replaced by the CLI run in-process, which gives the same output in a fraction of the time.
`MESHCTL=.venv/bin/meshctl ../shared/conformance/score analyze -v` runs it through processes.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess


RECALL_FLOOR = 0.95
PRECISION_FLOOR = 0.95
# Cases that still fail, and why:
# - "alpha" (maturity.AlphaAnalyzer): expects alpha-annotation findings from an analyzer that
#   istioctl analyze does not run by default (skip_all in cases.json);
# - "unknown service registry in mesh networks": needs the mesh networks file, which the scorer
#   does not pass to meshctl.
KNOWN_FAILING = {"alpha", "unknown service registry in mesh networks"}


def _load_scorer(path):
    loader = importlib.machinery.SourceFileLoader("meshctl_conformance_score", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_conformance_score(shared_dir, cli, monkeypatch):
    scorer = _load_scorer(shared_dir / "conformance" / "score")

    def run(args, stdin=None):
        r = cli(*args, input=stdin)
        return subprocess.CompletedProcess(args, r.exit_code, r.stdout.encode(), r.stderr.encode())

    monkeypatch.setattr(scorer, "run", run)
    result = scorer.score_analyze(verbose=False)
    failing = {c["name"] for c in result["per_case"] if not c["ok"]}
    assert result["unreadable"] == 0
    assert result["recall"] >= RECALL_FLOOR, (result["recall"], sorted(failing))
    assert result["precision"] >= PRECISION_FLOOR, (result["precision"], sorted(failing))
    assert failing <= KNOWN_FAILING, sorted(failing - KNOWN_FAILING)

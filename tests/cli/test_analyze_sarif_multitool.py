"""Opt-in: Microsoft's SARIF Multitool validates `analyze -o sarif` against the SARIF 2.1.0
schema, the spec's rules and GitHub's ingestion rules (zero errors is the bar).

Install the tool once (npm), then point MESHCTL_SARIF_MULTITOOL at the binary:

    npm install --prefix /tmp/sarif-tool @microsoft/sarif-multitool-linux
    export MESHCTL_SARIF_MULTITOOL=/tmp/sarif-tool/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = os.environ.get("MESHCTL_SARIF_MULTITOOL", "")

pytestmark = pytest.mark.skipif(not TOOL or not os.access(TOOL, os.X_OK),
                                reason="set MESHCTL_SARIF_MULTITOOL to the Sarif.Multitool binary")


def _validate(sarif: Path, tmp_path: Path) -> list[str]:
    out = tmp_path / (sarif.stem + ".validation.sarif")
    env = dict(os.environ, DOTNET_SYSTEM_GLOBALIZATION_INVARIANT="1")
    proc = subprocess.run([TOOL, "validate", str(sarif), "--output", str(out), "--rule-kind", "Sarif;Gh"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert out.exists(), proc.stdout + proc.stderr
    doc = json.loads(out.read_text(encoding="utf-8-sig"))
    return [f"{r['ruleId']} {r.get('level', 'warning')}: {r['message'].get('text', r['message'])}"
            for run in doc["runs"] for r in run.get("results", [])
            if r.get("level", "warning") == "error"]


@pytest.mark.parametrize("args", [
    ["examples/bookinfo"],
    ["-R", "examples"],
])
def test_sarif_has_no_validation_errors(cli, monkeypatch, tmp_path, args):
    monkeypatch.chdir(ROOT)
    r = cli("analyze", "-o", "sarif", *args)
    assert r.exit_code in (0, 1), r
    f = tmp_path / "out.sarif"
    f.write_text(r.stdout)
    assert _validate(f, tmp_path) == []


def test_sarif_without_locations_or_findings_is_valid(cli, tmp_path):
    broken = tmp_path / "broken file.yaml"
    broken.write_text("kind: [\n")
    r = cli("analyze", "-o", "sarif", "-", str(broken), input="apiVersion: v1\nkind: Service\n"
            "metadata: {name: a}\nspec: {ports: [{port: 80, name: x}]}\n")
    f = tmp_path / "mixed.sarif"
    f.write_text(r.stdout)
    assert _validate(f, tmp_path) == []
    f1 = tmp_path / "stdin-broken.sarif"
    f1.write_text(cli("analyze", "-o", "sarif", "-", input="kind: [\n").stdout)
    assert _validate(f1, tmp_path) == []
    ok = tmp_path / "ok.yaml"
    ok.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    f2 = tmp_path / "empty.sarif"
    f2.write_text(cli("analyze", "-o", "sarif", str(ok)).stdout)
    assert _validate(f2, tmp_path) == []

"""`meshctl analyze` on files stays light: it never imports the Kubernetes client, httpx or
jinja2 (and plain Kubernetes manifests do not load jsonschema either); the CEL library is loaded
only when a Gateway API object is analyzed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("kubernetes", "httpx", "jinja2", "jsonschema", "cel_expr_python")


def _imported(args: list[str]) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "meshctl", "analyze", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    mods = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            mods.add(name.split(".")[0])
    return proc.returncode, mods


def test_analyze_files_imports_no_heavy_modules(tmp_path):
    code, mods = _imported(["examples/bookinfo"])
    assert code == 1
    assert "meshctl" in mods  # the measurement works
    assert not mods.intersection(HEAVY), sorted(mods.intersection(HEAVY))


def test_one_plain_manifest(tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    code, mods = _imported([str(f)])
    assert code == 0
    assert not mods.intersection(HEAVY), sorted(mods.intersection(HEAVY))


def test_gateway_api_objects_load_the_cel_library(tmp_path):
    f = tmp_path / "route.yaml"
    f.write_text("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a}\n"
                 "spec:\n  rules:\n  - matches:\n    - path: {value: /a}\n")
    code, mods = _imported([str(f)])
    assert code == 0
    assert "cel_expr_python" in mods
    assert not mods.intersection(set(HEAVY) - {"cel_expr_python"})

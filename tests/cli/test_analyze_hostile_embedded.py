"""YAML embedded in objects (annotation values, ConfigMap data, mesh config) nested deep enough to
overflow the C YAML parser's stack must be a finding or a one-line error — never a crash of the
process. Runs the CLI in a subprocess, since a crash there is a signal, not an exception."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEEP = "[" * 100000 + "]" * 100000

POD = """apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: prod
  annotations:
    {annotation}: '{value}'
spec: {{containers: [{{name: istio-proxy, image: x}}]}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: prod, labels: {{istio-injection: enabled}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio-sidecar-injector, namespace: istio-system}}
data: {{values: '{{"global": {{"hub": "h", "tag": "t", "proxy": {{"image": "p"}}}}}}'}}
"""
MESH_NETWORKS = """apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  meshNetworks: '{value}'
"""


def _run(tmp_path, text: str, *args: str) -> subprocess.CompletedProcess:
    f = tmp_path / "in.yaml"
    f.write_text(text)
    return subprocess.run([sys.executable, "-m", "meshctl", "analyze", *args, str(f)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def _assert_handled(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stderr[-500:])
    assert "Traceback" not in proc.stderr


def test_deep_mesh_config(tmp_path):
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(f"defaultConfig: {DEEP}\n")
    proc = _run(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "--mesh-config", str(mesh))
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "nests deeper" in proc.stderr


def test_deep_proxy_config_annotation_in_image_analysis(tmp_path):
    _assert_handled(_run(tmp_path, POD.format(annotation="proxy.istio.io/config", value=DEEP),
                         "--analyzers", "injection."))


def test_deep_annotation_value_all_analyzers(tmp_path):
    _assert_handled(_run(tmp_path, POD.format(annotation="proxy.istio.io/config", value=DEEP)))


def test_deep_mesh_networks(tmp_path):
    _assert_handled(_run(tmp_path, MESH_NETWORKS.format(value=DEEP)))

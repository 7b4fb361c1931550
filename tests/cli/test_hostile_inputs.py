"""Hostile YAML given outside manifests (values files, mesh config) is refused in one line, exit 2,
in a subprocess so that a crash of the C parser would show as a signal, not pass unnoticed."""
from __future__ import annotations

import subprocess
import sys

DEEP = "[" * 100_000 + "]" * 100_000
BOMB = "\n".join(['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [
    f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]" for prev, cur in zip("abcdefg", "bcdefgh")])

POD = """apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec:
  containers: [{name: app, image: app}]
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshctl", *args], capture_output=True, text=True, timeout=60)


def _assert_refused(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_deep_values_file(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(f"meshConfig: {DEEP}\n")
    _assert_refused(_run("manifest", "generate", "--profile", "minimal", "-f", str(values)), "nests deeper")


def test_alias_bomb_values_file(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(BOMB + "\n")
    _assert_refused(_run("profile", "dump", "sidecar", "-f", str(values)), "alias bomb")


def test_deep_mesh_config_for_inject(tmp_path):
    pod = tmp_path / "pod.yaml"
    pod.write_text(POD)
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(f"defaultConfig: {DEEP}\n")
    _assert_refused(_run("inject", "-f", str(pod), "--mesh-config", str(mesh)), "nests deeper")


def test_deep_manifest_for_inject(tmp_path):
    manifest = tmp_path / "deep.json"
    manifest.write_text('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": ' + DEEP + "}")
    _assert_refused(_run("inject", "-f", str(manifest)), "nests deeper")

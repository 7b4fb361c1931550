"""Hostile YAML (nesting deep enough to crash a C parser, alias bombs) given anywhere meshctl reads
YAML outside analyze's manifests — values files, mesh config, workload manifests for inject,
annotation values — is refused with meshctl's own one-line error naming the file and the line,
exit 2, nothing written. Run in a subprocess, so that a crash of the C parser shows as a signal.

The variants cover both sides of libyaml's own limit (PyYAML 6.0.4 refuses flow nesting beyond
1,000 levels itself, 6.0.3 does not): the message must not depend on which one is installed.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _flow(levels: int) -> str:
    return "[" * levels + "]" * levels


def _block(levels: int, indent: str = "") -> str:
    """A block mapping `levels` deep, starting at column len(indent)."""
    return "".join(f"{indent}{'  ' * i}k{i}:\n" for i in range(levels)) + f"{indent}{'  ' * levels}leaf\n"


BOMB_LINES = ['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [
    f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]" for prev, cur in zip("abcdefg", "bcdefgh")]

# (name, the value of a top-level key written on line 2 of a file, the message, the line reported)
VARIANTS = [
    ("flow-100000", _flow(100_000), "nests deeper than 500 levels", 2),
    ("flow-1500", _flow(1_500), "nests deeper than 500 levels", 2),
    ("flow-600", _flow(600), "nests deeper than 500 levels", 2),
    ("block-600", "\n" + _block(600, "  "), "nests deeper than 500 levels", None),
]
IDS = [v[0] for v in VARIANTS]

POD = """apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec:
  containers: [{name: app, image: app}]
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshctl", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _assert_refused(proc: subprocess.CompletedProcess, path: Path, needle: str, line: int | None) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and proc.stderr.startswith("error: "), proc.stderr[-500:]
    assert needle in errors[0]
    where = re.search(re.escape(str(path)) + r":(\d+)", errors[0])
    assert where, f"no file:line in {errors[0][:300]}"
    if line is not None:
        assert int(where.group(1)) == line
    assert len(errors[0]) < 600, "the offending value is echoed in full"


def _top_level(tmp_path: Path, name: str, key: str, value: str) -> Path:
    f = tmp_path / name
    f.write_text(f"# {name}\n{key}: {value}\n")
    return f


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_values_file_for_manifest_generate(tmp_path, variant):
    _, value, needle, line = variant
    values = _top_level(tmp_path, "values.yaml", "meshConfig", value)
    _assert_refused(_run("manifest", "generate", "--profile", "minimal", "-f", str(values)), values, needle, line)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_mesh_config_for_inject_writes_nothing(tmp_path, variant):
    _, value, needle, line = variant
    pod = tmp_path / "pod.yaml"
    pod.write_text(POD)
    mesh = _top_level(tmp_path, "mesh.yaml", "defaultConfig", value)
    out = tmp_path / "out.yaml"
    _assert_refused(_run("inject", "-f", str(pod), "--mesh-config", str(mesh), "--output-file", str(out)), mesh, needle, line)
    assert not out.exists()


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_mesh_config_for_analyze(tmp_path, variant):
    _, value, needle, line = variant
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    mesh = _top_level(tmp_path, "mesh.yaml", "defaultConfig", value)
    _assert_refused(_run("analyze", "--mesh-config", str(mesh), str(cm)), mesh, needle, line)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_workload_manifest_for_inject_writes_nothing(tmp_path, variant):
    _, value, needle, line = variant
    manifest = tmp_path / "deep.yaml"
    manifest.write_text(f"apiVersion: v1\nspec: {value}\nkind: Pod\nmetadata: {{name: p}}\n")
    out = tmp_path / "out.yaml"
    _assert_refused(_run("inject", "-f", str(manifest), "--output-file", str(out)), manifest, needle, line)
    assert not out.exists()


def test_deep_json_manifest_for_inject(tmp_path):
    manifest = tmp_path / "deep.json"
    manifest.write_text('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},\n"spec": '
                        + _flow(100_000) + "}")
    _assert_refused(_run("inject", "-f", str(manifest)), manifest, "nests deeper than 500 levels", None)


@pytest.mark.parametrize("annotation", ["proxy.istio.io/config", "sidecar.istio.io/userVolume"])
@pytest.mark.parametrize("levels", [600, 1_500, 100_000])
def test_annotation_value_for_inject(tmp_path, annotation, levels):
    pod = tmp_path / "pod.yaml"
    pod.write_text(POD.replace("namespace: default}", f"namespace: default, annotations: "
                                                      f"{{{annotation}: '{_flow(levels)}'}}}}"))
    out = tmp_path / "out.yaml"
    _assert_refused(_run("inject", "-f", str(pod), "--output-file", str(out)), pod, "nests deeper than 500 levels", None)
    assert not out.exists()


def test_alias_bomb_values_file(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("# values\n" + "\n".join(BOMB_LINES) + "\n")
    _assert_refused(_run("profile", "dump", "sidecar", "-f", str(values)), values, "too many aliases", None)


def test_alias_bomb_mesh_config_for_inject(tmp_path):
    pod = tmp_path / "pod.yaml"
    pod.write_text(POD)
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("\n".join(BOMB_LINES) + "\n")
    _assert_refused(_run("inject", "-f", str(pod), "--mesh-config", str(mesh)), mesh, "too many aliases", None)


def test_alias_bomb_workload_manifest_for_inject(tmp_path):
    manifest = tmp_path / "bomb.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n"
                        + "".join(f"  {ln}\n" for ln in BOMB_LINES))
    _assert_refused(_run("inject", "-f", str(manifest)), manifest, "too many aliases", None)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_analyze_reports_a_hostile_document_as_a_finding_at_its_line(tmp_path, variant):
    """analyze reports an unreadable document as MSH0001 at file:line (its documented contract:
    the other documents are still analyzed), with the same message."""
    _, value, needle, line = variant
    f = tmp_path / "in.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n"
                 f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata: {value}\n")
    proc = _run("analyze", str(f))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    found = re.search(rf"Error \[MSH0001\] \({re.escape(str(f))}:(\d+)\) document {needle}", proc.stdout)
    assert found, proc.stdout[:500]
    if line is not None:
        assert int(found.group(1)) == line + 6
    assert "1 resource" in proc.stderr  # the other document was analyzed

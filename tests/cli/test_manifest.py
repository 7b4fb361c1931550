"""`meshctl manifest generate`, `meshctl profile list|dump`: what a user sees."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_all(text):
    return yaml.load_all(text, Loader=_LOADER)


def _load(text):
    return yaml.load(text, Loader=_LOADER)

from meshctl.install.profiles import load_values


def _docs(text: str) -> list[dict]:
    return [d for d in _load_all(text) if d is not None]


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, r
    assert not [ln for ln in r.stderr.splitlines() if not ln.startswith(("error: ", "hint: "))], r
    return lines[0]


def test_generate_default_profile_is_sidecar(cli):
    r = cli("manifest", "generate")
    assert r.exit_code == 0, r
    assert r.stderr == ""
    docs = _docs(r.stdout)
    assert r.stdout.startswith("---\n") and r.stdout.count("\n---\n") == len(docs) - 1
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "istio-ingressgateway") in names
    assert ("MutatingWebhookConfiguration", "istio-sidecar-injector") in names


@pytest.mark.parametrize("profile, present, absent", [
    ("ambient", {("DaemonSet", "ztunnel"), ("DaemonSet", "istio-cni-node")}, {("Deployment", "istio-ingressgateway")}),
    ("minimal", {("Deployment", "istiod")}, {("Deployment", "istio-ingressgateway"), ("DaemonSet", "ztunnel")}),
])
def test_generate_profiles(cli, profile, present, absent):
    r = cli("manifest", "generate", "--profile", profile)
    assert r.exit_code == 0, r
    names = {(d["kind"], d["metadata"]["name"]) for d in _docs(r.stdout)}
    assert present <= names and not (absent & names)


def test_generate_is_deterministic_and_json_matches_yaml(cli):
    a = cli("manifest", "generate", "-p", "ambient")
    b = cli("manifest", "generate", "-p", "ambient")
    assert a.stdout == b.stdout
    j = cli("manifest", "generate", "-p", "ambient", "-o", "json")
    assert j.exit_code == 0, j
    listing = json.loads(j.stdout)
    assert listing["kind"] == "List" and listing["apiVersion"] == "v1"
    assert listing["items"] == _docs(a.stdout)
    g = cli("-o", "json", "manifest", "generate", "-p", "ambient")  # the global -o works too
    assert json.loads(g.stdout) == listing


def test_generate_with_values_sets_and_revision(cli, tmp_path):
    f = tmp_path / "values.yaml"
    f.write_text("hub: registry.example/istio\ncomponents:\n  pilot:\n    replicas: 2\n    autoscale: {enabled: false}\n")
    r = cli("manifest", "generate", "-p", "minimal", "-f", str(f), "--set", "components.pilot.replicas=3",
            "--set", "tag=\"1.24.2\"", "--revision", "canary")
    assert r.exit_code == 0, r
    docs = _docs(r.stdout)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["metadata"]["name"] == "istiod-canary"
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/istio/pilot:1.24.2"
    assert {d["metadata"]["labels"]["istio.io/rev"] for d in docs if d["kind"] == "Deployment"} == {"canary"}


@pytest.mark.parametrize("args, message", [
    (["--set", "components.pilot.replica=2"],
     "error: unknown key components.pilot.replica; did you mean components.pilot.replicas?"),
    (["--set", "components.pilot.replicas=two"], 'error: components.pilot.replicas: expected integer, got string "two"'),
    (["--set", "tag=1.0"], "error: tag: expected string, got number 1.0"),
    (["--set", "nokey"], "error: --set 'nokey' has no '='"),
    (["-p", "sidcar"], "error: unknown profile 'sidcar'"),
    (["--revision", "Bad_Name"], "error: revision 'Bad_Name' is not a valid name"),
    (["-o", "xml"], "error: unknown output format 'xml'"),
])
def test_generate_input_errors(cli, args, message):
    r = cli("manifest", "generate", *args)
    assert r.exit_code == 2, r
    assert r.stdout == ""
    assert _one_error_line(r).startswith(message)


def test_generate_bad_values_files(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("components:\n  pilot:\n    replicas: [1,\n")
    r = cli("manifest", "generate", "-f", str(bad))
    assert r.exit_code == 2 and r.stdout == ""
    assert _one_error_line(r).startswith(f"error: {bad}:4: invalid YAML")
    r = cli("manifest", "generate", "-f", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and r.stdout == ""
    assert _one_error_line(r) == f"error: values file {tmp_path / 'missing.yaml'}: no such file"
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n")
    r = cli("manifest", "generate", "-f", str(lst))
    assert r.exit_code == 2
    assert "must be a mapping" in _one_error_line(r)


def test_template_bug_prints_nothing_on_stdout(cli, tmp_path, monkeypatch):
    """A broken template fails the whole command before anything is printed."""
    import shutil

    import meshctl.paths
    from meshctl.install import render

    root = tmp_path / "templates"
    shutil.copytree(meshctl.paths.templates_dir(), root)
    (root / "install" / "ztunnel" / "daemonset.yaml.j2").write_text("kind: {{ v.nope }}\n")
    monkeypatch.setattr(meshctl.paths, "templates_dir", lambda: root)
    render._environment.cache_clear()
    try:
        r = cli("manifest", "generate", "-p", "ambient")
    finally:
        render._environment.cache_clear()
    assert r.exit_code != 0
    assert r.stdout == ""
    assert "template install/ztunnel/daemonset.yaml.j2" in _one_error_line(r)


def test_profile_list(cli):
    r = cli("profile", "list")
    assert r.exit_code == 0, r
    assert [ln.split()[0] for ln in r.stdout.splitlines()] == ["ambient", "minimal", "sidecar"]
    assert "Istio's default profile" in r.stdout
    r = cli("profile", "list", "-o", "json")
    assert json.loads(r.stdout) == ["ambient", "minimal", "sidecar"]


def test_profile_dump(cli, tmp_path):
    r = cli("profile", "dump", "ambient")
    assert r.exit_code == 0, r
    assert _load(r.stdout) == load_values("ambient")
    f = tmp_path / "v.yaml"
    f.write_text("meshMTLS: PERMISSIVE\n")
    r = cli("profile", "dump", "sidecar", "-f", str(f), "--set", "components.pilot.env.FOO=bar")
    dumped = _load(r.stdout)
    assert dumped["meshMTLS"] == "PERMISSIVE"
    assert dumped["components"]["pilot"]["env"] == {"FOO": "bar"}
    assert list(dumped)[:3] == ["profile", "hub", "tag"]  # the profile's key order is kept
    r = cli("profile", "dump", "sidecar", "-o", "json")
    assert json.loads(r.stdout) == load_values("sidecar")
    r = cli("profile", "dump", "nope")
    assert r.exit_code == 2 and r.stdout == ""
    assert _one_error_line(r).startswith("error: unknown profile 'nope'")


def test_profile_names_complete_in_the_shell():
    env = dict(os.environ, _MESHCTL_COMPLETE="complete_bash", COMP_WORDS="meshctl profile dump a", COMP_CWORD="3")
    code = "from meshctl.cli import app; app(prog_name='meshctl')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["ambient"]
    env.update(COMP_WORDS="meshctl manifest generate --profile ", COMP_CWORD="4")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["ambient", "minimal", "sidecar"]


def test_values_from_stdin(cli):
    r = cli("profile", "dump", "minimal", "-f", "-", input="tag: from-stdin\n")
    assert r.exit_code == 0, r
    assert _load(r.stdout)["tag"] == "from-stdin"
    r = cli("manifest", "generate", "-f", "-", input="tag: [\n")
    assert r.exit_code == 2 and r.stdout == ""
    assert _one_error_line(r).startswith("error: <stdin>:2: invalid YAML")


def test_profile_dump_without_a_name_dumps_the_default_profile(cli):
    r = cli("profile", "dump")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == cli("profile", "dump", "sidecar").stdout
    assert _load(r.stdout) == load_values("sidecar")
    r = cli("profile", "dump", "--set", "meshMTLS=PERMISSIVE")
    assert r.exit_code == 0 and _load(r.stdout)["meshMTLS"] == "PERMISSIVE"

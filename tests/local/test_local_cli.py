"""`meshctl local` input errors, without starting a mesh: one line, a documented exit code."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("args", [
    ("local", "status"),
    ("local", "apply", "-f", "{files}/vs.yaml"),
    ("local", "delete", "-f", "{files}/vs.yaml"),
    ("local", "logs", "productpage-v1"),
])
def test_commands_on_no_mesh_say_so(cli, tmp_path, args):
    (tmp_path / "vs.yaml").write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                                      "metadata: {name: r}\nspec: {hosts: [r]}\n")
    state = str(tmp_path / "state")
    r = cli(*[a.format(files=tmp_path) for a in args], "--state-dir", state)
    assert r.exit_code == 2, r
    assert r.stderr.startswith("error: no local mesh in ") and "meshctl local up" in r.stderr


def test_down_with_no_mesh_is_a_no_op(cli, tmp_path):
    r = cli("local", "down", "--state-dir", str(tmp_path / "state"))
    assert r.exit_code == 0 and "nothing to stop" in r.stdout


def test_up_on_a_missing_directory(cli, tmp_path):
    r = cli("local", "up", str(tmp_path / "nope"), "--state-dir", str(tmp_path / "state"))
    assert r.exit_code == 2 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_broken_yaml_names_file_and_line(cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: [\n")
    r = cli("local", "up", str(tmp_path / "bad.yaml"), "--state-dir", str(tmp_path / "state"), "--force")
    assert r.exit_code == 2 and "bad.yaml:" in r.stderr


def test_bad_durations_are_usage_errors(cli, tmp_path):
    r = cli("local", "up", str(tmp_path), "--cert-lifetime", "soon", "--state-dir", str(tmp_path / "s"))
    assert r.exit_code == 2 and "--cert-lifetime" in r.stderr


def test_proxy_status_local_without_a_mesh(cli, tmp_path):
    r = cli("proxy-status", "--local", "--state-dir", str(tmp_path / "state"))
    assert r.exit_code == 2 and "no local mesh running" in r.stderr


def test_an_empty_directory_declares_nothing(cli, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "vs.yaml").write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                                            "metadata: {name: r}\nspec: {hosts: [r]}\n")
    r = cli("local", "up", str(tmp_path / "m"), "--state-dir", str(tmp_path / "state"), "--force")
    assert r.exit_code == 2 and "declares no workload" in r.stderr


def test_down_on_a_directory_that_is_not_a_mesh_removes_nothing(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = cli("local", "down", "--state-dir", str(tmp_path))
    assert r.exit_code == 0 and "nothing to stop" in r.stdout
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_field_of_the_wrong_type_is_refused_at_its_line_even_with_force(cli, tmp_path):
    (tmp_path / "vs.yaml").write_text("""\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w, namespace: default}
spec: {address: 127.0.9.9}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: default}
spec:
  hosts: [r]
  http:
  - route:
    - destination: {host: r}
      weight: "heavy"
""")
    r = cli("local", "up", str(tmp_path / "vs.yaml"), "--force", "--state-dir", str(tmp_path / "state"))
    assert r.exit_code == 2, r
    assert "error: VirtualService default/r (" in r.stderr and "vs.yaml:14" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_state_directory_that_cannot_be_made_is_an_input_error(cli, tmp_path):
    from tests.local.harness import next_net, workload, write

    (tmp_path / "file").write_text("not a directory")
    mesh = write(tmp_path / "m", "mesh.yaml", workload("lonely", f"127.{next_net()}.0.9", None, command=False))
    r = cli("local", "up", str(mesh), "--state-dir", str(tmp_path / "file" / "state"))
    assert r.exit_code == 2, r
    assert f"error: {tmp_path / 'file' / 'state'}: cannot create the state directory: Not a directory\n" in r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command,listed", [("up", "text (default), json, yaml"), ("apply", "text (default), json, yaml"),
                                            ("delete", "text (default), json, yaml"), ("down", "text (default), json, yaml"),
                                            ("status", "table (default), json, yaml")])
def test_output_formats_are_listed_and_checked(cli, tmp_path, command, listed):
    r = cli("local", command, "--help", env={"COLUMNS": "200"})
    assert r.exit_code == 0 and listed in r.stdout
    r = cli("local", command, *(["DIR"] if command == "up" else []), "-o", "xml", "--state-dir", str(tmp_path / "s"))
    assert r.exit_code == 2 and "unknown output format 'xml'" in r.stderr

"""A path with no Kubernetes objects is a mistake (a CI job pointed at the wrong directory would
pass forever): exit 2 with a clear error, unless --allow-empty."""
from __future__ import annotations

import pytest


def _error(r) -> list[str]:
    assert r.exit_code == 2, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: ") and len(lines) == 2, r.stderr
    return lines


def test_an_empty_directory(cli, tmp_path):
    err = _error(cli("analyze", str(tmp_path)))
    assert err[0] == f"error: no Kubernetes objects found in {tmp_path}"
    assert "--allow-empty" in err[1]


def test_a_directory_whose_manifests_are_in_subdirectories_says_to_use_r(cli, tmp_path):
    (tmp_path / "top" / "sub").mkdir(parents=True)
    (tmp_path / "top" / "sub" / "svc.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
    err = _error(cli("analyze", str(tmp_path / "top")))
    assert "use -R" in err[1]
    r = cli("analyze", "-R", str(tmp_path / "top"))
    assert r.exit_code == 0, r


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n---\n"])
def test_files_and_stdin_without_objects(cli, tmp_path, text):
    f = tmp_path / "empty.yaml"
    f.write_text(text)
    assert _error(cli("analyze", str(f)))[0] == f"error: no Kubernetes objects found in {f}"
    assert _error(cli("analyze", "-", input=text))[0] == "error: no Kubernetes objects found in - (stdin)"


def test_everything_skipped_by_ignore_unknown_says_so(cli, tmp_path):
    (tmp_path / "mkdocs.yml").write_text("site_name: shop\n")
    err = _error(cli("analyze", "--ignore-unknown", str(tmp_path)))
    assert "1 document was skipped by --ignore-unknown" in err[1]


def test_allow_empty_passes(cli, tmp_path):
    r = cli("analyze", "--allow-empty", str(tmp_path))
    assert r.exit_code == 0, r
    assert "No validation issues found when analyzing 0 resources" in r.stderr


def test_an_empty_list_is_not_empty_input(cli):
    # `kubectl get vs -A -o yaml | meshctl analyze -` on a cluster with no VirtualService
    r = cli("analyze", "-", input="apiVersion: v1\nkind: List\nitems: []\nmetadata: {resourceVersion: ''}\n")
    assert r.exit_code == 0, r


def test_unreadable_documents_are_findings_not_empty_input(cli, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\ndata: [\n")
    r = cli("analyze", str(f))
    assert r.exit_code == 1 and "MSH0001" in r.stdout, r

"""--ignore-unknown (istioctl's flag): files and documents that are not Kubernetes objects are
skipped, so analyze runs over a whole repository (and in pre-commit) without MSH0001 for its
CI configs, docs config and Helm templates."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import repo_sample

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(repo_sample.make(tmp_path))
    return tmp_path


NOT_KUBERNETES = {".pre-commit-config.yaml", ".github/workflows/ci.yaml", "mkdocs.yml", "charts/shop/Chart.yaml",
                  "charts/shop/values.yaml", "charts/shop/templates/deployment.yaml",
                  "charts/shop/templates/service.yaml"}


def _files(found: list[dict], code: str) -> set[str]:
    return {m["reference"].rsplit(":", 1)[0] for m in found if m["code"] == code}


def test_without_it_every_file_that_is_not_kubernetes_is_reported_with_the_flag_to_use(cli, repo):
    r = cli("analyze", "-R", ".", "-o", "json")
    assert r.exit_code == 1, r
    found = json.loads(r.stdout)
    assert _files(found, "MSH0001") == NOT_KUBERNETES
    assert all("--ignore-unknown" in m["message"] for m in found if m["code"] == "MSH0001")


def test_it_skips_what_is_not_kubernetes_and_analyzes_the_rest(cli, repo):
    r = cli("analyze", "--ignore-unknown", "-R", ".", "-o", "json")
    assert r.exit_code == 0, r
    found = json.loads(r.stdout)
    assert not _files(found, "MSH0001")
    # no finding comes from a Helm template, even from its documents that parse
    assert {m["reference"].rsplit(":", 1)[0] for m in found} <= {"deploy/reviews.yaml"}, found
    r = cli("analyze", "--ignore-unknown", "-R", ".")
    assert "(8 documents skipped: not Kubernetes objects)" in r.stderr, r


def test_mistakes_in_kubernetes_manifests_are_still_reported(cli, repo):
    (repo / "deploy" / "ratings.yaml").write_text(repo_sample.BROKEN_ROUTE)
    (repo / "deploy" / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                                                 "data:\n  a: [1,\n")
    (repo / "deploy" / "nokind.yaml").write_text("- apiVersion: v1\n")
    r = cli("analyze", "--ignore-unknown", "-R", ".", "-o", "json")
    assert r.exit_code == 1, r
    found = json.loads(r.stdout)
    assert ("IST0101", "VirtualService shop/ratings") in {(m["code"], m["origin"]) for m in found}
    # a manifest that does not parse is not "unknown": it is a broken manifest
    assert _files(found, "MSH0001") == {"deploy/broken.yaml"}


def test_an_istio_object_without_a_kind_is_still_reported(cli, repo):
    (repo / "deploy" / "nokind.yaml").write_text("apiVersion: networking.istio.io/v1\nmetadata: {name: x}\n")
    found = json.loads(cli("analyze", "--ignore-unknown", "-R", ".", "-o", "json").stdout)
    assert _files(found, "MSH0001") == {"deploy/nokind.yaml"}, found  # an apiVersion: a manifest without a kind


def _hook_entry(hook_id: str) -> list[str]:
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == hook_id)
    return hook["entry"].split()[1:] + hook.get("args", [])


def test_the_files_hook_passes_a_commit_without_kubernetes_yaml(cli, repo):
    args = _hook_entry("meshctl-analyze")
    r = cli(*args, ".pre-commit-config.yaml", ".github/workflows/ci.yaml", "mkdocs.yml")
    assert r.exit_code == 0, r


def test_the_directories_hook_fails_on_a_directory_without_kubernetes_objects(cli, repo):
    args = [a for a in _hook_entry("meshctl-analyze-dir") if a != "."]
    assert cli(*args, ".").exit_code == 0
    r = cli(*args, "charts/")
    assert r.exit_code == 2 and "no Kubernetes objects found in charts/" in r.stderr, r

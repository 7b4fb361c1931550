"""The hooks of .pre-commit-hooks.yaml, installed and run by pre-commit itself (`pre-commit
try-repo`, which installs this repository into a fresh virtualenv as users' pre-commit does) on a
realistic repository: Kubernetes manifests beside CI configs, mkdocs.yml and a Helm chart.

pre-commit builds the hook environment from this checkout (a local path) and installs meshctl's
dependencies from the package index pip is configured with; nothing else is fetched. Slow: about a
minute to install the hook environment (once while the checkout has no uncommitted changes;
try-repo copies uncommitted changes into a new repository each run, which installs again)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import repo_sample

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")]

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> Path:
    pytest.importorskip("pre_commit")
    if not (ROOT / ".git").exists():
        pytest.skip("the checkout is not a git repository (pre-commit installs hooks from one)")
    return tmp_path_factory.mktemp("pre-commit-home")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV, "HOME": str(repo)})


@pytest.fixture
def repo(tmp_path) -> Path:
    root = repo_sample.make(tmp_path / "shop")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "shop")
    return root


def try_repo(repo: Path, home: Path) -> subprocess.CompletedProcess:
    """Both hooks of this repository on every file of `repo`."""
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1", **GIT_ENV}
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "--all-files",
                           "--color", "never"], cwd=repo, env=env, capture_output=True, text=True, timeout=840)


def test_the_hooks_skip_yaml_that_is_not_kubernetes_and_fail_on_a_mistake(repo, pre_commit_home):
    # one test: the hook environment is installed once (reused while this checkout is committed)
    r = try_repo(repo, pre_commit_home)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "meshctl analyze....." in out and "meshctl analyze (directories)....." in out, out[-4000:]
    assert "Failed" not in out and "MSH0001" not in out

    (repo / "deploy" / "ratings.yaml").write_text(repo_sample.BROKEN_ROUTE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ratings")
    r = try_repo(repo, pre_commit_home)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-4000:]
    finding = 'Error [IST0101] (VirtualService shop/ratings deploy/ratings.yaml:10) Referenced host not found: "ratingz"'
    assert out.count(finding) == 2, out[-4000:]  # from each hook
    assert "MSH0001" not in out

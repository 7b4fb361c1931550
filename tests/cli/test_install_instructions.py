"""Every install instruction installs this project. Its distribution is `meshctl-envoy`: the name
`meshctl` on PyPI is an unrelated project, so `pip install meshctl` would install that one. The
GitHub workflows pass actionlint where it is installed (on PATH, or named by MESHCTL_ACTIONLINT)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / ".pre-commit-hooks.yaml", *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "examples").rglob("*.yaml")), *sorted((ROOT / ".github").rglob("*.yaml"))]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml")) + sorted(
    (ROOT / "examples" / "github-actions").glob("*.yaml"))
WRONG = re.compile(r"\b(?:pip3?|pipx|uv pip|uv tool) install(?: -[-\w]+)* ['\"]?meshctl(?![-\w])")


def test_the_distribution_name_is_not_the_one_taken_on_pypi():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "meshctl-envoy"
    assert project["scripts"]["meshctl"] == "meshctl._entry:main"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_instruction_installs_meshctl_by_the_pypi_name(path):
    text = path.read_text(encoding="utf-8")
    wrong = [m.group(0) for m in WRONG.finditer(text)]
    assert not wrong, f"{path.relative_to(ROOT)} installs the unrelated PyPI project: {wrong}"
    for m in re.finditer(r"additional_dependencies:\s*\[([^\]]*)\]", text):
        assert not re.search(r"(?<![-\w])meshctl(?![-\w])", m.group(1)), path


def test_the_github_actions_example_installs_this_project():
    text = (ROOT / "examples" / "github-actions" / "analyze.yaml").read_text()
    assert "meshctl-envoy @ git+https://github.com/meshctl/meshctl" in text


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_pass_actionlint(workflow):
    tool = os.environ.get("MESHCTL_ACTIONLINT") or shutil.which("actionlint")
    if not tool:
        pytest.skip("actionlint is not installed (set MESHCTL_ACTIONLINT to its command)")
    proc = subprocess.run([*tool.split(), str(workflow)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

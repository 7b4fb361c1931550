"""requirements.lock (what the README's commands and CI install) and pyproject.toml (the ranges
users get) must agree: every dependency pyproject.toml names is pinned in the lock at a version
its range allows, and the lock holds every package those pins need in turn. Refresh the lock with
the command in its header (see README.md, "Dependencies")."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"


def _pins() -> dict[str, str]:
    """{canonical name: pinned version} for the lock's entries that apply to this environment."""
    pins = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", \
            f"requirements.lock: {raw!r} is not pinned with =="
        if req.marker is None or req.marker.evaluate():
            pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return pins


def _project_requirements() -> list[tuple[str, Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out += [(f"[{extra}]", Requirement(r)) for r in reqs]
    return out


def test_every_dependency_of_pyproject_is_pinned_in_the_lock_within_its_range():
    pins = _pins()
    problems = []
    for where, req in _project_requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} ({where}) is not in requirements.lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} in requirements.lock is outside pyproject's {req} ({where})")
    assert not problems, "refresh the lock (README.md, Dependencies):\n" + "\n".join(problems)


def test_the_lock_holds_what_its_pins_require():
    """Closed under dependencies: for each pinned package installed here at its pinned version,
    every requirement it declares (for this environment, without extras) is pinned too."""
    pins = _pins()
    env = default_environment()
    missing = []
    checked = 0
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version != version:
            continue  # installed without the lock (the latest-deps job): nothing to compare
        checked += 1
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(dict(env, extra="")):
                continue
            if canonicalize_name(req.name) not in pins:
                missing.append(f"{name}=={version} needs {req}")
    assert not missing, "requirements.lock is missing packages:\n" + "\n".join(missing)
    if checked == 0:
        import pytest

        pytest.skip("no package is installed at its locked version (installed without the lock)")


def test_the_readme_and_ci_install_from_the_lock():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", readme, re.S | re.M)
    install, tests = blocks[0].strip(), blocks[1].strip()
    assert "-c requirements.lock" in install and "-c requirements.lock" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()

"""The wheel carries the whole of meshctl: pyproject.toml lists its packages and data files by
hand (templates/ and profiles/ are mapped into meshctl/_data), so a new subpackage or data file
that is not listed would be missing from a `pip install .` while an editable install works."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_dir(name: str) -> Path:
    mapped = SETUPTOOLS.get("package-dir", {}).get(name)
    return ROOT / (mapped if mapped else name.replace(".", "/"))


def test_every_subpackage_is_in_the_wheel():
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "meshctl").rglob("__init__.py")}
    missing = on_disk - set(SETUPTOOLS["packages"])
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    for name in SETUPTOOLS["packages"]:
        assert _package_dir(name).is_dir(), f"{name} is listed in pyproject.toml but has no directory"


def test_every_data_file_is_in_the_wheel():
    packages = sorted(SETUPTOOLS["packages"], key=lambda n: len(_package_dir(n).parts), reverse=True)
    globs = SETUPTOOLS.get("package-data", {})
    missing = []
    for name in packages:
        base = _package_dir(name)
        shipped = {f for g in globs.get(name, []) for f in base.glob(g)}
        for f in base.rglob("*"):
            if not f.is_file() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
                continue
            # a file belongs to the innermost listed package whose directory holds it
            if next(p for p in packages if f.is_relative_to(_package_dir(p))) == name and f not in shipped:
                missing.append(f"{name}: {f.relative_to(base)}")
    assert not missing, "add to [tool.setuptools.package-data] in pyproject.toml:\n" + "\n".join(missing)

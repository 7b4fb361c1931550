"""Where meshctl's data (templates/, profiles/) lives: inside the wheel, or in a source checkout."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def data_dir(name: str) -> Path:
    """Return the directory of `templates` or `profiles`."""
    installed = _PKG / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PKG.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"meshctl data directory {name!r} is missing from this installation")


def templates_dir() -> Path:
    return data_dir("templates")


def profiles_dir() -> Path:
    return data_dir("profiles")

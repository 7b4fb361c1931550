"""Running one analyzer over YAML written in a test, and reading back what it found."""
from __future__ import annotations

import textwrap

from meshctl.analysis import framework
from meshctl.loader import load_text
from meshctl.resources import ResourceSet

SOURCE = "in.yaml"


def run_yaml(text: str, analyzer: str, mesh: dict | None = None) -> list[framework.Message]:
    """Messages of one analyzer (by its exact name) over a YAML text."""
    loaded = load_text(textwrap.dedent(text), SOURCE, default_namespace="default")
    assert not loaded.problems, loaded.problems
    [cls] = [a for a in framework.all_analyzers() if a.name == analyzer]
    return framework.run(ResourceSet(loaded.resources), [cls], mesh_config=mesh)


def found(messages) -> list[tuple[str, str]]:
    """(code, origin) pairs, sorted."""
    return sorted((m.code, m.origin) for m in messages)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line of the (dedented) text that contains `needle`."""
    seen = 0
    for i, line in enumerate(textwrap.dedent(text).splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(f"{needle!r} not in text")


def reference(text: str, needle: str, nth: int = 1) -> str:
    return f"{SOURCE}:{line_of(text, needle, nth)}"

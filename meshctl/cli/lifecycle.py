"""Commands of this group are registered here by register(app)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None

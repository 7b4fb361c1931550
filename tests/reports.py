"""Rendering a domain report the way a user sees it, for golden files: a console writing plain
text (no colour, no terminal) at a fixed width."""
from __future__ import annotations

import io


def console(width: int = 100):
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, no_color=True, color_system=None, highlight=False,
                   force_terminal=False, soft_wrap=True)


def render(write, result, fmt: str, **kwargs) -> tuple[str, str]:
    """(stdout, stderr) of `write(result, fmt, out, err, **kwargs)`."""
    out, err = console(), console()
    write(result, fmt, out, err, **kwargs)
    return out.file.getvalue(), err.file.getvalue()

"""Report stage helpers: consoles that respect NO_COLOR / --no-color / non-TTY, and machine output.

Machine output (json, yaml) goes to stdout and is never mixed with progress text, which goes
to stderr.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

_state = {"no_color": False, "verbose": 0}


def configure(no_color: bool = False, verbose: int = 0) -> None:
    _state["no_color"] = no_color or bool(os.environ.get("NO_COLOR"))
    _state["verbose"] = verbose


def verbose() -> int:
    return _state["verbose"]


def color_enabled(stream: TextIO | None = None) -> bool:
    if _state["no_color"] or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def console(stderr: bool = False):
    """A rich Console for human output; plain text when piped or when colour is off."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    color = color_enabled(stream)
    return Console(
        file=stream,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        soft_wrap=True,
        force_terminal=color or None,
    )


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def to_yaml(data: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def emit(data: Any, fmt: str, stream: TextIO | None = None) -> None:
    """Write `data` as json or yaml to stdout (or `stream`)."""
    stream = stream or sys.stdout
    if fmt == "json":
        stream.write(to_json(data))
    elif fmt == "yaml":
        stream.write(to_yaml(data))
    else:  # pragma: no cover - callers choose the format
        raise ValueError(fmt)
    stream.flush()


def warn(message: str) -> None:
    """A one-line warning on stderr."""
    sys.stderr.write(f"warning: {message}\n")

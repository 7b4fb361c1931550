"""Report stage helpers: consoles that respect NO_COLOR / --no-color / non-TTY, and machine output.

Machine output (json, yaml) goes to stdout and is never mixed with progress text, which goes
to stderr.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Optional, TextIO

from meshctl.errors import InputError

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


def console(stderr: bool = False, stream=None):
    """A rich Console for human output on `stream` (default stdout, or stderr); plain text when
    that stream is piped or when colour is off."""
    from rich.console import Console

    stream = stream or (sys.stderr if stderr else sys.stdout)
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


def emit_to(console, data: Any, fmt: str) -> None:
    """Write `data` as json or yaml to a rich Console's stream, unstyled."""
    console.file.write(to_json(data) if fmt == "json" else to_yaml(data))
    console.file.flush()


def warn(message: str) -> None:
    """A one-line warning on stderr."""
    sys.stderr.write(f"warning: {message}\n")


# --- -o/--output: allowed values in --help, in shell completion, and when checked ---------------

def check_output(value: Optional[str], allowed: tuple[str, ...], default: str) -> str:
    value = value or default
    if value not in allowed:
        raise InputError(f"unknown output format {value!r}", hint=f"use one of: {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class OutputFormats:
    """A command's output formats, declared once: `.option()` is its `-o/--output` option (the
    values listed in --help and offered by shell completion), `.check(value)` validates a value
    (the command's own -o or the global one) and resolves aliases.

        FORMATS = OutputFormats(("text", "json"), default="text", aliases={"log": "text"})
        def cmd(ctx: typer.Context, output: FORMATS.option() = None): fmt = FORMATS.check(output)
    """

    names: tuple[str, ...]
    default: str
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, format), e.g. istioctl's ("log", "text")
    help: str = ""

    def option(self) -> Any:
        from typing import Annotated

        import typer

        listed = ", ".join(f"{n} (default)" if n == self.default else n for n in self.names)
        extra = "".join(f"; {a} means {f}" for a, f in self.aliases)
        return Annotated[Optional[str], typer.Option(
            "--output", "-o", metavar="FORMAT", help=f"Output format: {listed}{extra}.{' ' + self.help if self.help else ''}",
            autocompletion=self.complete, show_default=False)]

    def complete(self, incomplete: str) -> list[str]:
        return [n for n in self.names if n.startswith(incomplete)]

    def check(self, value: Optional[str]) -> str:
        """The format named by `value` (any case, or an alias); None means the default."""
        if value:
            value = dict(self.aliases).get(value.lower(), value.lower())
        return check_output(value, self.names, self.default)



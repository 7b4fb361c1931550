"""`meshctl completion bash|zsh|fish`: print a shell completion script."""
from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

PROG = "meshctl"
COMPLETE_VAR = "_MESHCTL_COMPLETE"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell).rstrip("\n") + "\n"


def register(app: typer.Typer) -> None:
    @app.command("completion")
    def completion(shell: Annotated[Shell, typer.Argument(help="The shell to complete for.")]) -> None:
        """Print a shell completion script (source it, or save it where your shell loads completions)."""
        typer.echo(script(shell.value), nl=False)

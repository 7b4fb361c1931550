"""The `meshctl` console script.

`meshctl --version` is answered here without building the command tree (Typer and every command
module cost ~80 ms at start-up); everything else goes to the Typer app in meshctl.cli.
"""
from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from meshctl import __version__

        sys.stdout.write(f"meshctl {__version__}\n")
        return
    from meshctl.cli import app

    app(prog_name="meshctl")

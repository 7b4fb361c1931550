"""Options shared by commands (kubectl conventions), declared once.

Global options may be given before the command (`meshctl -n foo analyze`) or, for the
commands that take them, after it (`meshctl analyze -n foo`). `settings(ctx, ...)` merges both,
the command's own value winning.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Optional

import typer

from meshctl.errors import InputError


@dataclass(frozen=True)
class Settings:
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    namespace: Optional[str] = None
    output: Optional[str] = None
    no_color: bool = False
    verbose: int = 0


def complete_namespace(ctx: typer.Context, incomplete: str) -> list[str]:
    """Complete -n from the cluster, quietly giving nothing when it cannot be reached."""
    try:
        from meshctl import kube

        # during completion no callback has run: read the flags typed so far
        params = {**ctx.find_root().params, **{k: v for k, v in ctx.params.items() if v is not None}}
        client = kube.client(params.get("kubeconfig"), params.get("context"), timeout=2)
        names = [item["metadata"]["name"] for item in client.list("v1", "Namespace")]
    except Exception:  # completion must never fail loudly
        return []
    return [n for n in names if n.startswith(incomplete)]


KubeconfigOpt = Annotated[
    Optional[str],
    typer.Option("--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).",
                 envvar="KUBECONFIG", show_envvar=False),
]
ContextOpt = Annotated[Optional[str], typer.Option("--context", help="The kubeconfig context to use.")]
NamespaceOpt = Annotated[
    Optional[str],
    typer.Option("--namespace", "-n", help="Namespace to act on.", autocompletion=complete_namespace),
]
OutputOpt = Annotated[Optional[str], typer.Option("--output", "-o", help="Output format.")]


def dry_run_option(help_text: str):
    """kubectl's --dry-run: bare (client), --dry-run=client, --dry-run=server or --dry-run=none.
    A bare --dry-run becomes --dry-run=client before parsing (meshctl.cli.normalize_args)."""
    return typer.Option("--dry-run", metavar="[=client|server]", show_default=False, help=help_text)


def dry_run_mode(value: Optional[str], server: bool = True) -> Optional[str]:
    """None (a real run), "client" or "server" from the --dry-run value."""
    if value is None or value == "none":
        return None
    if value == "client" or (value == "server" and server):
        return value
    if value == "server":
        raise InputError("--dry-run=server needs a cluster: this command works on files here",
                         hint="use --dry-run (client) to see the change")
    raise InputError(f"invalid --dry-run value {value!r}",
                     hint="use --dry-run, --dry-run=client, --dry-run=server or --dry-run=none")


def settings(ctx: typer.Context, **overrides) -> Settings:
    """The global settings with any per-command values given after the command name."""
    root = ctx.find_root()
    base = root.obj if isinstance(root.obj, Settings) else Settings()
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given)


def check_output(value: Optional[str], allowed: tuple[str, ...], default: str) -> str:
    value = value or default
    if value not in allowed:
        raise InputError(f"unknown output format {value!r}", hint=f"use one of: {', '.join(allowed)}")
    return value

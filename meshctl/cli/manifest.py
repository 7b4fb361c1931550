"""`meshctl manifest generate`, `meshctl profile list`, `meshctl profile dump`: the offline half
of install (the cluster half, install/verify-install/uninstall, is meshctl.cli.lifecycle). Thin:
parse flags, call meshctl.install.profiles / render, print. The install-values options are
declared here once for both halves."""
from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from meshctl.cli.common import settings
from meshctl.output import OutputFormats


def complete_profile(incomplete: str) -> list[str]:
    from meshctl.install.profiles import complete_profile

    return complete_profile(incomplete)


ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile to start from (see 'meshctl profile list').",
                                         metavar="PROFILE", autocompletion=complete_profile)]
ValuesOpt = Annotated[Optional[List[str]], typer.Option(
    "--values", "-f", metavar="FILE",
    help="A YAML file of values merged over the profile (repeatable, later files win).")]
SetOpt = Annotated[Optional[List[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Set one value: --set a.b[0].c=v (repeatable, applied after -f; typed: numbers, "
                  "true/false; quote to keep a string: --set tag='\"1.24\"').")]
RevisionOpt = Annotated[Optional[str], typer.Option(
    "--revision", "-r", metavar="NAME", help="Control-plane revision (istiod-<revision>, beside the default one).")]
MANIFEST_FORMATS = OutputFormats(("yaml", "json"), default="yaml")
LIST_FORMATS = OutputFormats(("text", "yaml", "json"), default="text")
OutputOpt = MANIFEST_FORMATS.option()

manifest_app = typer.Typer(name="manifest", help="Render the install manifest without touching a cluster.",
                           no_args_is_help=True)
profile_app = typer.Typer(name="profile", help="List and show install profiles.", no_args_is_help=True)


@manifest_app.command("generate")
def manifest_generate(
    ctx: typer.Context,
    profile: ProfileOpt = "sidecar",
    values: ValuesOpt = None,
    set_: SetOpt = None,
    revision: RevisionOpt = None,
    output: OutputOpt = None,
) -> None:
    """Print the Kubernetes objects `meshctl install` would apply (YAML documents, or a JSON List)."""
    fmt = MANIFEST_FORMATS.check(output or settings(ctx).output)
    from meshctl.install import render

    objects = render.render_objects(_values(profile, values, set_, revision))  # all rendered before printing
    text = render.to_json(objects) if fmt == "json" else render.to_yaml(objects)
    sys.stdout.write(text)
    sys.stdout.flush()


@profile_app.command("list")
def profile_list(
    ctx: typer.Context,
    output: LIST_FORMATS.option() = None,
) -> None:
    """List the built-in profiles."""
    from meshctl.install import profiles

    fmt = LIST_FORMATS.check(output or settings(ctx).output)
    names = profiles.list_profiles()
    if fmt == "text":
        descriptions = {
            "sidecar": "istiod, ingress gateway, sidecar injection (Istio's default profile)",
            "ambient": "istiod, istio-cni and ztunnel: ambient mode (Istio's ambient profile)",
            "minimal": "istiod and the CRDs only (Istio's minimal profile)",
        }
        width = max(len(n) for n in names) if names else 0
        for n in names:
            sys.stdout.write(f"{n.ljust(width)}  {descriptions.get(n, '')}".rstrip() + "\n")
    else:
        from meshctl import output as out

        out.emit(names, fmt)


@profile_app.command("dump")
def profile_dump(
    ctx: typer.Context,
    profile: Annotated[str, typer.Argument(help="Profile name (default: sidecar, as for manifest generate).",
                                           autocompletion=complete_profile)] = "sidecar",
    values: ValuesOpt = None,
    set_: SetOpt = None,
    revision: RevisionOpt = None,
    output: OutputOpt = None,
) -> None:
    """Print the merged values of a profile (with any -f files and --set values) as YAML."""
    fmt = MANIFEST_FORMATS.check(output or settings(ctx).output)
    from meshctl import output as out

    out.emit(_values(profile, values, set_, revision), fmt)


def _values(profile: str, values: Optional[List[str]], sets: Optional[List[str]], revision: Optional[str]) -> dict:
    from meshctl.install import profiles

    return profiles.load_values(profile, files=values or (), sets=sets or (), revision=revision)


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app)
    app.add_typer(profile_app)

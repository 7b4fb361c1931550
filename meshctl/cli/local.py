"""`meshctl local`: a real Envoy mesh on this machine, driven by the same Istio files."""
from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from meshctl.local.report import FORMATS, STATUS_FORMATS

local_app = typer.Typer(
    name="local",
    help="Run a real Envoy mesh on this machine (sidecars, ingress gateway, mTLS) from Istio resources.",
    no_args_is_help=True,
)

StateOpt = Annotated[Optional[str], typer.Option(
    "--state-dir", metavar="DIR", help="Where the mesh keeps its state (default .meshctl/local, or $MESHCTL_LOCAL_STATE).")]
FilesOpt = Annotated[Optional[List[str]], typer.Option("--filename", "-f", help="Files or directories of Istio resources (repeatable).")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-R", help="Descend into subdirectories.")]
WaitOpt = Annotated[str, typer.Option("--timeout", help="How long to wait for proxies to take the change.")]


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")


def _state(value: Optional[str]) -> str:
    from meshctl.local.state import default_dir

    return value or default_dir()


@local_app.command("up")
def up_cmd(
    ctx: typer.Context,
    directory: Annotated[str, typer.Argument(metavar="DIR", help="Directory (or file) of Istio resources.")],
    state_dir: StateOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Start even when analyze reports errors.")] = False,
    cert_lifetime: Annotated[str, typer.Option("--cert-lifetime", help="Lifetime of each proxy's certificate (rotated at half).")] = "1h",
    timeout: Annotated[str, typer.Option("--timeout", help="How long to wait for every proxy to be SYNCED.")] = "60s",
    output_format: FORMATS.option() = None,
) -> None:
    """Start the mesh DIR describes; returns when every proxy is ready and SYNCED.

    Runs 'meshctl analyze' first and refuses (exit 1) on Error findings unless --force.
    """
    import sys

    from meshctl.analysis import report as areport
    from meshctl.cli.session import Session
    from meshctl.durations import parse as parse_duration
    from meshctl.errors import CheckFailed
    from meshctl.local import mesh, pipeline, report

    session = Session.of(ctx)
    fmt = session.output(FORMATS, output_format)
    lifetime = parse_duration(cert_lifetime, "--cert-lifetime")
    wait = parse_duration(timeout, "--timeout")
    findings = pipeline.preflight([directory])
    if findings.messages:  # beside a machine-readable result, on stderr
        areport.write(findings, "text", sys.stdout if fmt == "text" else sys.stderr)
    if findings.failed and not force:
        raise CheckFailed(f"analyze found errors in {directory}; the mesh was not started",
                          hint="fix them, or start anyway with --force")
    show = report.progress(session.err.file)
    try:
        result = mesh.up([directory], _state(state_dir), cert_lifetime=lifetime, timeout=wait, observer=show)
    finally:
        show.done()
    report.write(result, fmt, session.out, session.err)


def _change(ctx: typer.Context, files: Optional[List[str]], recursive: bool, state_dir: Optional[str], timeout: str,
            output_format: Optional[str], delete: bool) -> None:
    from meshctl.cli.session import Session
    from meshctl.durations import parse as parse_duration
    from meshctl.errors import InputError
    from meshctl.local import mesh, pipeline, report

    session = Session.of(ctx)
    fmt = session.output(FORMATS, output_format)
    if not files:
        raise InputError("no files given", hint="pass -f FILE or -f DIR")
    resources = pipeline.load(files, recursive=recursive)
    wait = parse_duration(timeout, "--timeout")
    show = report.progress(session.err.file)
    try:
        change = {"remove" if delete else "add": resources}
        result = mesh.change(_state(state_dir), timeout=wait, observer=show, **change)
    finally:
        show.done()
    report.write(result, fmt, session.out, session.err)


@local_app.command("apply")
def apply_cmd(ctx: typer.Context, files: FilesOpt = None, recursive: RecursiveOpt = False, state_dir: StateOpt = None,
              timeout: WaitOpt = "30s", output_format: FORMATS.option() = None) -> None:
    """Change the running mesh (no proxy restarts). An update Envoy would reject is refused
    before anything is written (exit 2, naming the resource)."""
    _change(ctx, files, recursive, state_dir, timeout, output_format, delete=False)


@local_app.command("delete")
def delete_cmd(ctx: typer.Context, files: FilesOpt = None, recursive: RecursiveOpt = False, state_dir: StateOpt = None,
               timeout: WaitOpt = "30s", output_format: FORMATS.option() = None) -> None:
    """Remove resources from the running mesh (the same files you applied)."""
    _change(ctx, files, recursive, state_dir, timeout, output_format, delete=True)


@local_app.command("status")
def status_cmd(ctx: typer.Context, state_dir: StateOpt = None, output_format: STATUS_FORMATS.option() = None) -> None:
    """Every proxy (proxy-status's vocabulary), workload process and ingress address."""
    from meshctl.cli.session import Session
    from meshctl.local import mesh, report

    session = Session.of(ctx)
    fmt = session.output(STATUS_FORMATS, output_format)
    report.write(mesh.status(_state(state_dir)), fmt, session.out, session.err)


@local_app.command("logs")
def logs_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A proxy: NAME or NAME.NAMESPACE (see 'meshctl local status').")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    app: Annotated[bool, typer.Option("--app", help="The workload's own output instead of its proxy's access log.")] = False,
    envoy_log: Annotated[bool, typer.Option("--envoy", help="The proxy's Envoy log instead of its access log.")] = False,
    tail: Annotated[Optional[int], typer.Option("--tail", help="Only the last N lines.")] = None,
    state_dir: StateOpt = None,
) -> None:
    """The access log of a proxy (JSON lines), its Envoy log, or the output of its workload."""
    import sys

    from meshctl.errors import InputError
    from meshctl.local import mesh

    if app and envoy_log:
        raise InputError("--app and --envoy exclude each other")
    path = mesh.log_path(_state(state_dir), name, "app" if app else "envoy" if envoy_log else "access")
    for chunk in mesh.read_log(path, tail=tail, follow=follow):
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()


@local_app.command("down")
def down_cmd(ctx: typer.Context, state_dir: StateOpt = None, output_format: FORMATS.option() = None) -> None:
    """Stop every process the mesh started (by PID) and remove its state; a no-op when none runs."""
    from meshctl.cli.session import Session
    from meshctl.local import mesh, report

    session = Session.of(ctx)
    fmt = session.output(FORMATS, output_format)
    report.write(mesh.down(_state(state_dir)), fmt, session.out, session.err)


# --- other commands on the local mesh (proxy-status, proxy-config, canary) ---------------------------

LocalOpt = Annotated[bool, typer.Option("--local", help="Act on the local mesh (meshctl local up) instead of a cluster.")]


def use_local(ctx: typer.Context, local: bool, state_dir: Optional[str]) -> Optional[str]:
    """The state directory of the local mesh a command acts on: with --local (or --state-dir),
    or automatically when a local mesh runs in the default state directory and no --context or
    --kubeconfig was given on the command line. None: act on the cluster."""
    from meshctl.errors import InputError
    from meshctl.local import mesh

    path = _state(state_dir)
    if local or state_dir:
        if not mesh.is_running(path):
            raise InputError(f"no local mesh running in {path}", hint="start one with 'meshctl local up DIR'")
        return path
    import click

    root = ctx.find_root()
    for name in ("kubeconfig", "context"):
        for c in (ctx, root):
            try:
                if c.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE,):
                    return None
            except Exception:  # the parameter does not exist on that command
                pass
    return path if mesh.is_running(path) else None

"""`meshctl local`: a real Envoy mesh on this machine, driven by the same Istio files."""
from __future__ import annotations

import time
from typing import Annotated, List, Optional

import typer

from meshctl.cli.common import OutputOpt, check_output, settings

local_app = typer.Typer(
    name="local",
    help="Run a real Envoy mesh on this machine (sidecars, ingress gateway, mTLS) from Istio resources.",
    no_args_is_help=True,
)

StateOpt = Annotated[Optional[str], typer.Option(
    "--state-dir", metavar="DIR", help="Where the mesh keeps its state (default .meshctl/local, or $MESHCTL_LOCAL_STATE).")]


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
) -> None:
    """Start the mesh DIR describes; returns when every proxy is ready and SYNCED.

    Runs 'meshctl analyze' first and refuses (exit 1) on Error findings unless --force.
    """
    from meshctl.analysis import report as areport
    from meshctl.durations import parse as parse_duration
    from meshctl.errors import CheckFailed
    from meshctl.local import mesh, pipeline, report

    lifetime = parse_duration(cert_lifetime, "--cert-lifetime")
    wait = parse_duration(timeout, "--timeout")
    result = pipeline.preflight([directory])
    if result.messages:
        areport.write(result, "text")
    if result.failed and not force:
        raise CheckFailed(f"analyze found errors in {directory}; the mesh was not started",
                          hint="fix them, or start anyway with --force")
    show = report.progress()
    try:
        up = mesh.up([directory], _state(state_dir), cert_lifetime=lifetime, timeout=wait, observer=show)
    finally:
        show.done()
    from meshctl import output

    for w in up.warnings:
        output.warn(w)
    report.write_up(up)


def _load_files(files: List[str], recursive: bool):
    from meshctl.errors import InputError
    from meshctl.local import pipeline

    if not files:
        raise InputError("no files given", hint="pass -f FILE or -f DIR")
    return pipeline.load(files, recursive=recursive)


def _change(files: Optional[List[str]], recursive: bool, state_dir: Optional[str], timeout: str, delete: bool) -> None:
    from meshctl.durations import parse as parse_duration
    from meshctl.local import mesh, report

    resources = _load_files(files or [], recursive)
    wait = parse_duration(timeout, "--timeout")
    show = report.progress()
    try:
        if delete:
            result = mesh.change(_state(state_dir), remove=resources, timeout=wait, observer=show)
        else:
            result = mesh.change(_state(state_dir), add=resources, timeout=wait, observer=show)
    finally:
        show.done()
    report.write_apply(result)


FilesOpt = Annotated[Optional[List[str]], typer.Option("--filename", "-f", help="Files or directories of Istio resources (repeatable).")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-R", help="Descend into subdirectories.")]
WaitOpt = Annotated[str, typer.Option("--timeout", help="How long to wait for proxies to take the change.")]


@local_app.command("apply")
def apply_cmd(ctx: typer.Context, files: FilesOpt = None, recursive: RecursiveOpt = False, state_dir: StateOpt = None,
              timeout: WaitOpt = "30s") -> None:
    """Change the running mesh (no proxy restarts). An update Envoy would reject is refused
    before anything is written (exit 2, naming the resource)."""
    _change(files, recursive, state_dir, timeout, delete=False)


@local_app.command("delete")
def delete_cmd(ctx: typer.Context, files: FilesOpt = None, recursive: RecursiveOpt = False, state_dir: StateOpt = None,
               timeout: WaitOpt = "30s") -> None:
    """Remove resources from the running mesh (the same files you applied)."""
    _change(files, recursive, state_dir, timeout, delete=True)


@local_app.command("status")
def status_cmd(ctx: typer.Context, state_dir: StateOpt = None, output_format: OutputOpt = None) -> None:
    """Every proxy (proxy-status's vocabulary), workload process and ingress address."""
    from meshctl.local import mesh, report

    s = settings(ctx, output=output_format)
    fmt = check_output(s.output, report.FORMATS, "table")
    report.write_status(mesh.status(_state(state_dir)), fmt)


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
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        if not follow:
            return
        fh = None
    if fh is not None:
        data = fh.read()
        if tail is not None:
            data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail > 0 else b""
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    while follow:
        if fh is None:
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                time.sleep(0.2)
                continue
        chunk = fh.read()
        if chunk:
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        else:
            time.sleep(0.2)


@local_app.command("down")
def down_cmd(ctx: typer.Context, state_dir: StateOpt = None) -> None:
    """Stop every process the mesh started (by PID) and remove its state; a no-op when none runs."""
    from meshctl.local import mesh, report

    report.write_down(mesh.down(_state(state_dir)))


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

"""`meshctl waypoint apply|list|status|delete`: ambient waypoints. Thin: parse flags, call
meshctl.waypoint.cluster, hand the result to meshctl.waypoint.report."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from meshctl.cli.common import ContextOpt, KubeconfigOpt, dry_run_mode, dry_run_option
from meshctl.waypoint.report import FORMATS

waypoint_app = typer.Typer(name="waypoint", help="Create, list, inspect and delete ambient waypoints "
                                                 "(Gateways of class istio-waypoint).", no_args_is_help=True)

NamespaceOpt = Annotated[Optional[str], typer.Option("--namespace", "-n", help="The waypoint's namespace "
                                                     "(default: the kubeconfig context's, else default).")]
OutputOpt = FORMATS.option()


def _prepare(ctx: typer.Context, kubeconfig, context, namespace, output_format):
    """The command's session and its output format, checked."""
    from meshctl.cli.session import Session

    session = Session.of(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace)
    return session, session.output(FORMATS, output_format)


@waypoint_app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The waypoint's name.")] = "waypoint",
    traffic_for: Annotated[str, typer.Option("--for", help="Traffic it takes: service, workload, all or none.")] = "service",
    enroll_namespace: Annotated[bool, typer.Option("--enroll-namespace", help="Label the namespace "
                                                   "istio.io/use-waypoint=NAME: its Services (or workloads) use it.")] = False,
    enroll_service: Annotated[Optional[list[str]], typer.Option("--enroll-service", help="Label this Service to use "
                                                                "the waypoint (repeatable).")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", "-r", help="The control-plane revision that "
                                                    "programs it (label istio.io/rev).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the waypoint is Programmed.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", help="How long --wait waits: 90s, 2m, ... "
                                          "(exit 3 after).")] = "90s",
    dry_run_value: Annotated[Optional[str], dry_run_option("Print the YAML instead of applying it "
                                                           "(no cluster needed).")] = None,
    namespace: NamespaceOpt = None,
    output_format: OutputOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Create or update a waypoint, optionally send a namespace's or Services' traffic through it."""
    from meshctl import durations
    from meshctl.waypoint import cluster, report

    session, fmt = _prepare(ctx, kubeconfig, context, namespace, output_format)
    timeout_s = durations.parse(timeout, "--timeout", allow_zero=False)
    dry_run = dry_run_mode(dry_run_value, server=False,
                           no_server="waypoint apply --dry-run prints the manifests; there is no server dry run")
    if dry_run:
        if enroll_service:
            from meshctl.errors import InputError

            raise InputError("--dry-run prints manifests and cannot show Service labels",
                             hint="leave out --enroll-service, or label with: kubectl label service NAME "
                                  f"istio.io/use-waypoint={name}")
        result = cluster.plan(session.settings.namespace or "default", name, traffic_for, revision, enroll_namespace)
        report.write(result, fmt, session.out.file, session.err.file)
        return
    client = session.kube()
    on_event = None
    if wait:
        def on_event(text: str) -> None:
            session.err.print(text, highlight=False)
    result = cluster.apply(client, session.namespace(), name, traffic_for, revision, enroll_namespace,
                           tuple(enroll_service or ()), wait, timeout_s, on_event=on_event)
    report.write(result, fmt, session.out.file, session.err.file)


@waypoint_app.command("list")
def list_cmd(
    ctx: typer.Context,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
    namespace: NamespaceOpt = None,
    output_format: OutputOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """List waypoints and whether they are ready (Programmed)."""
    from meshctl.waypoint import cluster, report

    session, fmt = _prepare(ctx, kubeconfig, context, namespace, output_format)
    client = session.kube()
    ns = None if all_namespaces else session.namespace()
    result = cluster.list_waypoints(client, ns)
    report.write(result, fmt, session.out.file, session.err.file, all_namespaces=all_namespaces, namespace=ns)


@waypoint_app.command("status")
def status_cmd(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="One waypoint (default: all in the namespace).")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
    namespace: NamespaceOpt = None,
    output_format: OutputOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Readiness, and which namespaces, Services and workloads use each waypoint, which policies and
    routes it enforces, and what is meant for it but not enforced."""
    from meshctl.waypoint import cluster, report

    session, fmt = _prepare(ctx, kubeconfig, context, namespace, output_format)
    client = session.kube()
    ns = None if all_namespaces else session.namespace()
    result = cluster.status(client, ns, name)
    report.write(result, fmt, session.out.file, session.err.file, namespace=ns)


@waypoint_app.command("delete")
def delete_cmd(
    ctx: typer.Context,
    names: Annotated[Optional[list[str]], typer.Argument(help="Waypoints to delete.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every waypoint of the namespace.")] = False,
    namespace: NamespaceOpt = None,
    output_format: OutputOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Delete waypoints by name, or all of a namespace's."""
    from meshctl.waypoint import cluster, report

    session, fmt = _prepare(ctx, kubeconfig, context, namespace, output_format)
    client = session.kube()
    result = cluster.delete(client, session.namespace(), tuple(names or ()), every)
    report.write(result, fmt, session.out.file, session.err.file)


def register(app: typer.Typer) -> None:
    app.add_typer(waypoint_app)

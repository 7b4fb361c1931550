"""`meshctl proxy-status` and `meshctl proxy-config`: mesh health read from Envoy admin endpoints.

Thin: build the options, call meshctl.proxy.status.check / meshctl.proxy.target.show|logging with
the session, hand the result to meshctl.proxy.report.write. Works without the control plane:
proxies are found through Kubernetes (port-forward to 15000), in the local mesh, or given
directly with --admin HOST:PORT.
"""
from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from meshctl.cli.common import ContextOpt, KubeconfigOpt, NamespaceOpt
from meshctl.cli.local import LocalOpt, StateOpt, use_local
from meshctl.proxy.admin import DEFAULT_CONCURRENCY
from meshctl.proxy.report import CONFIG_FORMATS, STATUS_FORMATS

AdminOpt = Annotated[Optional[List[str]], typer.Option(
    "--admin", metavar="HOST:PORT",
    help="Envoy admin address of a proxy outside Kubernetes (repeatable); skips pod discovery.")]
TimeoutOpt = Annotated[str, typer.Option("--timeout", help="Per-request timeout: 500ms, 3s, ... (bare numbers are seconds).")]


def _timeout(text: str) -> float:
    from meshctl import durations

    return durations.parse(text, "--timeout", allow_zero=False)


def _session(ctx: typer.Context, **overrides):
    from meshctl.cli.session import Session

    return Session.of(ctx, **overrides)


def proxy_status(
    ctx: typer.Context,
    admin: AdminOpt = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Proxies in all namespaces.")] = False,
    namespace: NamespaceOpt = None,
    output_format: STATUS_FORMATS.option() = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, help="Proxies probed at once, each over one connection (a port-forward for a "
                                     "pod).")] = DEFAULT_CONCURRENCY,
    timeout: TimeoutOpt = "3s",
    fail_on_unhealthy: Annotated[bool, typer.Option(
        "--fail-on-unhealthy", help="Exit 1 when a proxy is not SYNCED/STATIC or has an expired certificate.")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Health and xDS sync state of every proxy, read from each Envoy's admin endpoint.

    STATUS is SYNCED, STATIC (no xDS), STALE (rejected or lagging update), NOT READY,
    NOT CONNECTED (no control-plane connection) or UNREACHABLE, with the reason.
    """
    from meshctl.errors import CheckFailed
    from meshctl.proxy import report, status

    session = _session(ctx, namespace=namespace, kubeconfig=kubeconfig, context=context)
    fmt = session.output(STATUS_FORMATS, output_format)
    options = status.StatusOptions(admin=tuple(admin or ()), namespace=session.settings.namespace,
                                   all_namespaces=all_namespaces, timeout=_timeout(timeout), concurrency=concurrency)
    if not admin:
        options.local_state = use_local(ctx, local, state_dir)
    result = status.check(options, session.kube)
    report.write(result, fmt, session.out, session.err)
    bad = result.unhealthy
    if fail_on_unhealthy and bad:
        names = ", ".join(r.name for r in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckFailed(f"{len(bad)} of {len(result.rows)} proxies unhealthy: {names}")


# --- proxy-config ----------------------------------------------------------------------------

config_app = typer.Typer(
    name="proxy-config",
    help="Show one proxy's clusters, listeners, routes, endpoints, secrets or bootstrap; set its log level.",
    no_args_is_help=True,
)

TargetArg = Annotated[Optional[str], typer.Argument(
    metavar="POD_OR_ADDRESS", help="HOST:PORT of the admin endpoint, or POD[.NAMESPACE] (port-forward to 15000).")]


def _where(ctx: typer.Context, session, local: bool, state_dir: Optional[str]):
    from meshctl.proxy.target import Where

    return Where(local_state=lambda: use_local(ctx, local, state_dir), kube=session.kube)


def _section_command(section: str, doc: str):
    def command(
        ctx: typer.Context,
        target: TargetArg = None,
        admin: AdminOpt = None,
        output_format: CONFIG_FORMATS.option() = None,
        fqdn: Annotated[Optional[str], typer.Option("--fqdn", help="clusters: only this service FQDN (substring).")] = None,
        port: Annotated[Optional[int], typer.Option("--port", help="clusters/listeners: only this port.")] = None,
        direction: Annotated[Optional[str], typer.Option("--direction", help="clusters: inbound|outbound.")] = None,
        subset: Annotated[Optional[str], typer.Option("--subset", help="clusters: only this subset.")] = None,
        address: Annotated[Optional[str], typer.Option("--address", help="listeners: only this address.")] = None,
        name: Annotated[Optional[str], typer.Option("--name", help="routes: only this route configuration.")] = None,
        cluster: Annotated[Optional[str], typer.Option("--cluster", help="endpoints: only this cluster (substring).")] = None,
        status: Annotated[Optional[str], typer.Option("--status", help="endpoints: only this health status.")] = None,
        timeout: TimeoutOpt = "3s",
        namespace: NamespaceOpt = None,
        kubeconfig: KubeconfigOpt = None,
        context: ContextOpt = None,
        local: LocalOpt = False,
        state_dir: StateOpt = None,
    ) -> None:
        from meshctl.proxy import report, target as proxies
        from meshctl.proxy.config import Query

        session = _session(ctx, namespace=namespace, kubeconfig=kubeconfig, context=context)
        fmt = session.output(CONFIG_FORMATS, output_format)
        query = Query(section, fqdn=fqdn, port=port, direction=direction, subset=subset, address=address,
                      name=name, cluster=cluster, status=status).checked()
        where = proxies.Target.parse(target, admin, session.settings.namespace)
        result = proxies.show(where, _where(ctx, session, local, state_dir), query, _timeout(timeout))
        report.write(result, fmt, session.out, session.err)

    command.__doc__ = doc
    return command


SECTION_DOCS = {
    "clusters": "Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE.",
    "listeners": "Listeners: ADDRESSES, PORT, MATCH, DESTINATION (one row per filter chain).",
    "routes": "Route configurations: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE.",
    "endpoints": "Endpoints of every cluster: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER.",
    "secrets": "Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE.",
    "bootstrap": "Bootstrap summary (versions, node, xDS sources); -o json|yaml prints the whole bootstrap.",
}


def log(
    ctx: typer.Context,
    target: TargetArg = None,
    admin: AdminOpt = None,
    level: Annotated[Optional[str], typer.Option(
        "--level", help="Set this level (trace|debug|info|warning|error|critical|off) on every logger, "
                        "or per logger as in istioctl: http:debug,router:info.")] = None,
    logger: Annotated[Optional[str], typer.Option("--logger", help="Only this logger (default: all).")] = None,
    output_format: CONFIG_FORMATS.option() = None,
    timeout: TimeoutOpt = "3s",
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Show the proxy's logger levels, or change them with --level (POST /logging)."""
    from meshctl.proxy import report, target as proxies

    session = _session(ctx, namespace=namespace, kubeconfig=kubeconfig, context=context)
    fmt = session.output(CONFIG_FORMATS, output_format)
    change = proxies.LevelChange.parse(level, logger)
    where = proxies.Target.parse(target, admin, session.settings.namespace)
    result = proxies.logging(where, _where(ctx, session, local, state_dir), change, _timeout(timeout))
    report.write(result, fmt, session.out, session.err)


def register(app: typer.Typer) -> None:
    app.command("proxy-status")(proxy_status)
    for section, doc in SECTION_DOCS.items():
        config_app.command(section)(_section_command(section, doc))
    config_app.command("log")(log)
    app.add_typer(config_app, name="proxy-config")

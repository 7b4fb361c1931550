"""`meshctl proxy-status` and `meshctl proxy-config`: mesh health read from Envoy admin endpoints.

Thin: parse flags, call meshctl.proxy.{status,config}, hand the result to meshctl.proxy.report.
Works without the control plane: proxies are found through Kubernetes (port-forward to 15000)
or given directly with --admin HOST:PORT.
"""
from __future__ import annotations

import re
from typing import Annotated, List, Optional

import typer

from meshctl.cli.common import ContextOpt, KubeconfigOpt, NamespaceOpt, OutputOpt, check_output, settings
from meshctl.cli.local import LocalOpt, StateOpt, use_local

AdminOpt = Annotated[Optional[List[str]], typer.Option(
    "--admin", metavar="HOST:PORT",
    help="Envoy admin address of a proxy outside Kubernetes (repeatable); skips pod discovery.")]
def _timeout(text: str) -> float:
    from meshctl import durations

    return durations.parse(text, "--timeout", allow_zero=False)


TimeoutOpt = Annotated[str, typer.Option("--timeout", help="Per-request timeout: 500ms, 3s, ... (bare numbers are seconds).")]

_ADDRESS = re.compile(r"^(https?://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):\d+/?$")
_IP = re.compile(r"^(https?://)?(\[[0-9A-Fa-f:.]+\]|\d{1,3}(\.\d{1,3}){3})/?$")  # an address without its port


def _kube(s):
    from meshctl import kube

    return kube.client(s.kubeconfig, s.context)


def proxy_status(
    ctx: typer.Context,
    admin: AdminOpt = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Proxies in all namespaces.")] = False,
    namespace: NamespaceOpt = None,
    output_format: OutputOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1,
                                             help="Admin requests in flight at most.")] = 64,
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
    from meshctl import output
    from meshctl.errors import CheckFailed, InputError
    from meshctl.proxy import report, status
    from meshctl.proxy.admin import parse_address

    s = settings(ctx, namespace=namespace, output=output_format, kubeconfig=kubeconfig, context=context)
    fmt = check_output(s.output, ("table", "wide", "json", "yaml"), "table")
    forward = None
    if admin and all_namespaces:
        raise InputError("--admin and --all-namespaces exclude each other",
                         hint="--admin probes the given addresses only; drop one of them")
    local_state = None if admin else use_local(ctx, local, state_dir)
    if admin:
        targets = []
        for addr in dict.fromkeys(parse_address(a, default_port=status.ADMIN_PORT) for a in admin):
            targets.append(status.ProxyTarget(name=addr, address=addr))
    elif local_state:  # the local mesh (meshctl local up): every proxy, or those of -n
        from meshctl.local.mesh import proxy_targets

        targets = proxy_targets(local_state, None if all_namespaces or not s.namespace else s.namespace)
    else:
        k = _kube(s)
        ns = None if all_namespaces else (s.namespace or getattr(k, "namespace", None) or "default")
        targets = status.discover(k, ns)
        forward = lambda t: k.port_forward(t.namespace, t.pod, status.ADMIN_PORT)  # noqa: E731
        if not targets:
            where = "any namespace" if ns is None else f"namespace {ns}"
            output.warn(f"no mesh proxies found in {where}")
    rows = status.run(targets, timeout=_timeout(timeout), concurrency=concurrency, forward=forward)
    if fmt in ("json", "yaml"):
        output.emit({"proxies": [r.to_dict() for r in rows],
                     "summary": {"total": len(rows), "healthy": sum(1 for r in rows if r.healthy)}}, fmt)
    elif rows:
        report.print_table(report.status_rows(rows, wide=fmt == "wide"))
        output.console(stderr=True).print(report.summary_line(rows))
    bad = status.unhealthy(rows)
    if fail_on_unhealthy and bad:
        names = ", ".join(r.name for r in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckFailed(f"{len(bad)} of {len(rows)} proxies unhealthy: {names}")


# --- proxy-config ----------------------------------------------------------------------------

config_app = typer.Typer(
    name="proxy-config",
    help="Show one proxy's clusters, listeners, routes, endpoints, secrets or bootstrap; set its log level.",
    no_args_is_help=True,
)

TargetArg = Annotated[Optional[str], typer.Argument(
    metavar="POD_OR_ADDRESS", help="HOST:PORT of the admin endpoint, or POD[.NAMESPACE] (port-forward to 15000).")]


def _resolve(target: Optional[str], admin: Optional[List[str]], s) -> tuple[str, Optional[str], Optional[str]]:
    """('address', addr) or ('pod', name, namespace)."""
    from meshctl.errors import InputError
    from meshctl.proxy.admin import ADMIN_PORT, parse_address

    if admin:
        if len(admin) > 1:
            raise InputError("proxy-config reads one proxy; give --admin once")
        if target:
            raise InputError("give either POD_OR_ADDRESS or --admin, not both")
        return ("address", parse_address(admin[0], default_port=ADMIN_PORT), None)
    if not target:
        raise InputError("missing POD_OR_ADDRESS", hint="e.g. 'meshctl proxy-config clusters 127.0.0.1:15000' "
                                                         "or 'meshctl proxy-config clusters productpage-v1-abc.default'")
    if _ADDRESS.match(target):
        return ("address", parse_address(target), None)
    if _IP.match(target):
        return ("address", parse_address(target, default_port=ADMIN_PORT), None)
    pod, _, ns = target.partition(".")
    if not pod:
        raise InputError(f"invalid proxy {target!r}", hint="use HOST:PORT or POD[.NAMESPACE]")
    return ("pod", pod, ns or s.namespace)


def _with_proxy(ctx, target, admin, namespace, kubeconfig, context, fn, local=False, state_dir=None):
    """Run async fn(address) against the proxy, port-forwarding when it is a pod (or reading the
    local mesh's proxy of that name)."""
    import asyncio

    s = settings(ctx, namespace=namespace, kubeconfig=kubeconfig, context=context)
    how = _resolve(target, admin, s)
    if how[0] == "address":
        return asyncio.run(fn(how[1]))
    local_state = use_local(ctx, local, state_dir)
    if local_state:
        from meshctl.local.mesh import admin_of

        return asyncio.run(fn(admin_of(local_state, how[1], how[2])))
    from meshctl.proxy.status import ADMIN_PORT

    from meshctl.kube import NotFound

    k = _kube(s)
    namespace = how[2] or getattr(k, "namespace", None) or "default"
    try:
        forward = k.port_forward(namespace, how[1], ADMIN_PORT)
        port = forward.__enter__()
    except NotFound:
        raise _no_such_pod(k, how[1], namespace) from None
    try:
        return asyncio.run(fn(f"127.0.0.1:{port}"))
    finally:
        forward.__exit__(None, None, None)


def _no_such_pod(k, pod: str, namespace: str):
    """InputError (exit 2) for a pod that does not exist, naming the mesh pods it may have meant."""
    from meshctl.errors import InputError
    from meshctl.proxy.status import discover

    try:
        names = sorted(t.pod for t in discover(k, namespace) if t.pod)
    except Exception:  # the hint is a courtesy; the error stands without it
        names = []
    close = [n for n in names if n.startswith(pod)] or names
    if close:
        shown = ", ".join(close[:5]) + (f" and {len(close) - 5} more" if len(close) > 5 else "")
        hint = f"mesh pods in {namespace}: {shown}"
    else:
        hint = f"no mesh pods in namespace {namespace}; check -n, or list them with 'meshctl proxy-status -A'"
    return InputError(f"pod {namespace}/{pod} not found", hint=hint)


def _section_command(section: str, doc: str):
    def command(
        ctx: typer.Context,
        target: TargetArg = None,
        admin: AdminOpt = None,
        output_format: OutputOpt = None,
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
        from meshctl import output
        from meshctl.proxy import config, report

        from meshctl.errors import InputError

        s = settings(ctx, output=output_format)
        fmt = check_output(s.output, ("table", "json", "yaml"), "table")
        if direction is not None and direction.lower() not in ("inbound", "outbound"):
            raise InputError(f"unknown --direction {direction!r}", hint="use inbound or outbound")
        direction = direction.lower() if direction else direction
        if status is not None and status.upper() not in config.HEALTH_STATUSES:
            raise InputError(f"unknown --status {status!r}",
                             hint=f"use one of: {', '.join(config.HEALTH_STATUSES)}")
        data = _with_proxy(ctx, target, admin, namespace, kubeconfig, context,
                           lambda a: config.read(a, section, _timeout(timeout)), local, state_dir)
        dump, clusters = data.get("dump") or {}, data.get("clusters") or {}
        raw = config.section_data(section, dump, clusters)
        if section == "clusters":
            raw = [c for c in raw if len(config.cluster_rows([c], fqdn, port, direction, subset)) > 1]
        elif section == "listeners":
            raw = [lst for lst in raw if len(config.listener_rows([lst], address, port)) > 1]
        elif section == "routes" and name:
            raw = [r for r in raw if r.get("name") == name]
        elif section == "endpoints":
            raw = config.endpoint_section(clusters, cluster, status)
        if fmt != "table":
            output.emit(raw, fmt)
            return
        if section == "clusters":
            rows = config.cluster_rows(raw)
        elif section == "listeners":
            rows = config.listener_rows(raw)
        elif section == "routes":
            rows = config.route_rows(raw)
        elif section == "endpoints":
            rows = config.endpoint_rows(raw, status)
        elif section == "secrets":
            rows = config.secret_rows(config.secrets_section(dump), data.get("certs"))
        else:
            rows = config.bootstrap_rows(raw, data.get("server_info"))
        if section == "secrets" and len(rows) == 1:
            output.console(stderr=True).print("No active or warming secrets found.")
            return
        report.print_table(rows)

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
    output_format: OutputOpt = None,
    timeout: TimeoutOpt = "3s",
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Show the proxy's logger levels, or change them with --level (POST /logging)."""
    from meshctl import output
    from meshctl.errors import InputError
    from meshctl.proxy import config, report
    from meshctl.proxy.admin import LOG_LEVELS

    s = settings(ctx, output=output_format)
    fmt = check_output(s.output, ("table", "json", "yaml"), "table")
    pairs = None
    if level is not None and ":" in level:  # istioctl's form: NAME:LEVEL[,NAME:LEVEL...]
        if logger:
            raise InputError("give --level NAME:LEVEL,... or --level LEVEL --logger NAME, not both")
        pairs = []
        for part in level.split(","):
            name, sep, lvl = part.strip().partition(":")
            if not sep or not name.strip() or not lvl.strip():
                raise InputError(f"--level {level!r}: {part.strip()!r} is not NAME:LEVEL",
                                 hint="e.g. --level http:debug,router:info")
            pairs.append((name.strip(), lvl.strip().lower()))
        for _, lvl in pairs:
            if lvl not in LOG_LEVELS:
                raise InputError(f"unknown log level {lvl!r}", hint=f"use one of: {', '.join(LOG_LEVELS)}")
    elif level is not None:
        level = level.strip().lower()
        if level not in LOG_LEVELS:
            raise InputError(f"unknown log level {level!r}", hint=f"use one of: {', '.join(LOG_LEVELS)}")
    if logger and not level:
        raise InputError("--logger needs --level")
    levels = _with_proxy(ctx, target, admin, namespace, kubeconfig, context,
                         lambda a: config.log_levels(a, _timeout(timeout), level, logger, pairs), local, state_dir)
    if logger:
        levels = {logger: levels.get(logger, level)}
    elif pairs:
        levels = {name: levels.get(name, lvl) for name, lvl in pairs}
    if fmt != "table":
        output.emit(levels, fmt)
        return
    report.print_table([["LOGGER", "LEVEL"]] + [[k, v] for k, v in sorted(levels.items())])


def register(app: typer.Typer) -> None:
    app.command("proxy-status")(proxy_status)
    for section, doc in SECTION_DOCS.items():
        config_app.command(section)(_section_command(section, doc))
    config_app.command("log")(log)
    app.add_typer(config_app, name="proxy-config")

"""proxy-status: per-proxy health and xDS sync, read straight from each Envoy's admin interface.

Stages: discover (Kubernetes pods, the local mesh, or --admin addresses; here) → probe
(fanout.py: async, bounded, over admin.py) → parse (parse.py) → summarize (here: a pure function
of the admin answers, unit-tested on recorded answers) → report (report.py).

Status of a proxy, most severe first:

  UNREACHABLE    the admin endpoint did not answer (or the pod could not be port-forwarded)
  NOT CONNECTED  the proxy has an xDS (gRPC/ADS) control plane but no connection to it
  STALE          an xDS update was rejected (update_rejected, or update_failure for file-based
                 config), the initial fetch timed out, or updates are still warming (lagging)
  NOT READY      reachable and configured, but not LIVE (initializing, draining): what /ready
                 answers, read from the server.state gauge
  SYNCED         every xDS subscription accepted its last update
  STATIC         no xDS at all: the proxy runs on its bootstrap's static resources

A proxy is healthy when its status is SYNCED or STATIC and none of its certificates has
expired; `--fail-on-unhealthy` exits 1 otherwise. Certificates expiring within 24 hours and
clusters with endpoints none of which is healthy are warnings.

Envoy's xDS counters count since the proxy started: a rejection stays visible until restart,
even when a later update was accepted. Listener rejections carry Envoy's own error text (the
`error_state` of /config_dump), which clears once a later update of that listener succeeds.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from meshctl.proxy.admin import ADMIN_PORT, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT
from meshctl.proxy.parse import (X_NONE, X_NOT_SENT, X_STALE, X_SYNCED, X_UNKNOWN, Xds, ads_link_stat, as_int,
                                 certificates, endpoints, endpoints_from_stats, listener_errors, no_xds,
                                 parse_time, ready_from_stats, xds_states, ztunnel_certificates)

__all__ = ["ADMIN_PORT", "UNREACHABLE", "NOT_CONNECTED", "STALE", "NOT_READY", "SYNCED", "STATIC",
           "HEALTHY_STATUSES", "X_SYNCED", "X_STALE", "X_NOT_SENT", "X_NONE", "X_UNKNOWN", "Xds", "ProxyTarget",
           "ProxyStatus", "StatusOptions", "StatusResult", "summarize", "summarize_ztunnel", "unreachable",
           "run", "check", "discover", "proxy_kind", "targets_from_pods", "unhealthy", "human_duration"]

UNREACHABLE = "UNREACHABLE"
NOT_CONNECTED = "NOT CONNECTED"
STALE = "STALE"
NOT_READY = "NOT READY"
SYNCED = "SYNCED"
STATIC = "STATIC"
HEALTHY_STATUSES = (SYNCED, STATIC)
STATUS_ORDER = (SYNCED, STATIC, STALE, NOT_READY, NOT_CONNECTED, UNREACHABLE)

# A certificate is worth a warning when its rotation looks overdue: Istio's agents and the local
# mesh's CA replace a leaf at half its lifetime, so one with less than a third of its lifetime left
# was not replaced in time; at most a day ahead (long-lived certificates), a day when the start of
# its validity is not known.
CERT_WARN_SECONDS = 24 * 3600
CERT_WARN_FRACTION = 1 / 3


def cert_warn_seconds(cert: dict) -> float:
    """How close to its expiry a certificate ({not_before, not_after} texts) earns a warning."""
    start, end = parse_time(cert.get("not_before")), parse_time(cert.get("not_after"))
    if start is None or end is None or end <= start:
        return CERT_WARN_SECONDS
    return min(CERT_WARN_SECONDS, (end - start).total_seconds() * CERT_WARN_FRACTION)


@dataclass
class ProxyTarget:
    """A proxy to probe: an admin address, or a pod reached through port-forward."""

    name: str
    address: Optional[str] = None
    namespace: Optional[str] = None
    pod: Optional[str] = None
    kind: str = "envoy"  # envoy | sidecar | gateway | waypoint | ztunnel
    problem: Optional[str] = None  # known before probing (pod not running, no IP…)


@dataclass
class ProxyStatus:
    name: str
    address: Optional[str]
    kind: str = "envoy"
    namespace: Optional[str] = None
    status: str = UNREACHABLE
    healthy: bool = False
    reasons: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    version: Optional[str] = None
    envoy_version: Optional[str] = None
    state: Optional[str] = None
    ready: Optional[bool] = None
    control_plane: dict = field(default_factory=dict)
    xds: dict = field(default_factory=dict)
    certificates: list = field(default_factory=list)
    cert_expiry: Optional[str] = None
    cert_seconds_left: Optional[int] = None
    endpoints: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}  # shallow: rows are not reused
        d["xds"] = {k: dict(vars(v)) for k, v in self.xds.items()}
        return d

    def reason_text(self) -> str:
        return "; ".join(list(self.reasons) + list(self.warnings))


# --- summarize: pure functions of the admin answers -----------------------------------------


def short_envoy_version(version: str | None) -> Optional[str]:
    """'sha/1.40.0/Clean/RELEASE/BoringSSL' → '1.40.0'."""
    if not version:
        return None
    parts = version.split("/")
    return parts[1] if len(parts) > 1 else version


def human_duration(seconds: float) -> str:
    s = int(abs(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    if days >= 2:
        return f"{days}d"
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{s}s"


def _control_plane(st: ProxyStatus, stats: dict, grpc: bool, dynamic: bool, link: Optional[str]) -> None:
    if grpc:
        if "control_plane.connected_state" in stats:
            connected = as_int(stats.get("control_plane.connected_state")) == 1
        elif link and link in stats:
            connected = as_int(stats[link]) > 0
        else:
            connected = None
            st.warnings.append("control-plane connection not in this proxy's stats")
        st.control_plane = {"type": "grpc", "connected": connected,
                            "identifier": stats.get("control_plane.identifier") or None}
    elif dynamic:
        st.control_plane = {"type": "files", "connected": None, "identifier": None}
    else:
        st.control_plane = {"type": "none", "connected": None, "identifier": None}


def _stale_reasons(st: ProxyStatus, stats: dict, dynamic: bool, listeners_dump: Optional[dict]) -> list[str]:
    stale: list[str] = []
    lerrs = listener_errors(listeners_dump)
    for kind, x in st.xds.items():
        if x.state == X_STALE:
            detail = x.detail
            if kind == "LDS" and lerrs:
                detail = f"{detail}; {lerrs[0]}"
            elif kind == "LDS" and listeners_dump is not None:
                detail = f"{detail}; no listener reports an error now (a later update may have fixed it)"
            stale.append(f"{kind} {detail}")
        elif x.state == X_NOT_SENT and x.detail:
            stale.append(f"{kind} {x.detail}")
    warming_c = as_int(stats.get("cluster_manager.warming_clusters"))
    warming_l = as_int(stats.get("listener_manager.total_listeners_warming"))
    if dynamic and (warming_c or warming_l):
        parts = [f"{n} {what} warming" for n, what in ((warming_c, "cluster(s)"), (warming_l, "listener(s)")) if n]
        stale.append(" and ".join(parts) + " (update not applied yet)")
    return stale


def _certificates(st: ProxyStatus, certs: list[dict], problems: list[str]) -> list[dict]:
    """Set the certificate fields; expired ones become problems, soon-expiring ones warnings.
    Returns the expired certificates."""
    st.certificates = certs
    if certs and certs[0]["seconds_left"] is not None:
        st.cert_expiry, st.cert_seconds_left = certs[0]["not_after"], certs[0]["seconds_left"]
    expired = [c for c in certs if c["seconds_left"] is not None and c["seconds_left"] <= 0]
    for c in expired:
        problems.append(f"certificate {c['name']} expired {human_duration(c['seconds_left'])} ago")
    for c in certs:
        if c["seconds_left"] is not None and 0 < c["seconds_left"] <= cert_warn_seconds(c):
            st.warnings.append(f"certificate {c['name']} expires in {human_duration(c['seconds_left'])}")
    return expired


def summarize(target: ProxyTarget, info: dict, ready: Optional[tuple[bool, str]], stats: dict,
              certs: dict, clusters: Optional[dict] = None, listeners_dump: Optional[dict] = None,
              now: Optional[_dt.datetime] = None) -> ProxyStatus:
    """A proxy's status from its admin answers (no I/O).

    info: AdminClient.build_info() — {"version", "metadata"}; ready: (ready?, state text of /ready),
    None to read it from server.state in `stats`; clusters: /clusters?format=json, None to count
    endpoints from the membership gauges in `stats`.
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if ready is None:
        ready = ready_from_stats(stats) or (False, "unknown")
    st = ProxyStatus(name=target.name, address=target.address, kind=target.kind, namespace=target.namespace)
    st.envoy_version = info.get("version")
    st.version = (info.get("metadata") or {}).get("ISTIO_VERSION") or st.envoy_version
    st.ready = bool(ready[0])
    st.state = ready[1] or info.get("state") or ("LIVE" if st.ready else None)

    ads = info.get("ads_cluster")
    st.xds, grpc = xds_states(stats, "control_plane.connected_state" in stats or bool(ads))
    dynamic = any(x.state != X_NONE for x in st.xds.values()) or bool(info.get("dynamic"))
    if info.get("stats_filtered") and dynamic:
        # a stats_matcher (Istio's bootstrap keeps cluster_manager/listener_manager only) hides
        # per-cluster EDS and per-route RDS subscriptions: unknown, not absent
        for kind in ("EDS", "RDS"):
            if st.xds[kind].state == X_NONE:
                st.xds[kind] = Xds(type=kind, state=X_UNKNOWN, detail="not in this proxy's stats (stats_matcher)")
    _control_plane(st, stats, grpc, dynamic, ads_link_stat(ads))

    problems: list[str] = []
    disconnected = grpc and st.control_plane["connected"] is False
    if disconnected:
        who = f" {st.control_plane['identifier']}" if st.control_plane["identifier"] else ""
        problems.append(f"not connected to the control plane{who}")
    stale = _stale_reasons(st, stats, dynamic, listeners_dump)
    expired = _certificates(st, certificates(certs, now), problems)

    st.endpoints = endpoints(clusters) if clusters is not None else endpoints_from_stats(stats)
    empty = [c["cluster"] for c in st.endpoints["clusters"] if c["total"] and not c["healthy"]]
    if empty:
        more = f" and {len(empty) - 3} more" if len(empty) > 3 else ""
        st.warnings.append(f"no healthy endpoint in {', '.join(empty[:3])}{more}")

    if disconnected:
        st.status = NOT_CONNECTED
    elif stale:
        st.status = STALE
    elif not st.ready:
        st.status = NOT_READY
        problems.append(f"not ready (state {ready[1] or st.state})")
    elif dynamic:
        st.status = SYNCED
    else:
        st.status = STATIC
        st.warnings.insert(0, "static configuration only (no xDS)")
    if st.status != NOT_READY and not st.ready:
        problems.append(f"not ready (state {ready[1] or st.state})")
    st.reasons = problems[:1] + stale + problems[1:] if st.status == NOT_CONNECTED else stale + problems
    st.healthy = st.status in HEALTHY_STATUSES and not expired
    return st


def summarize_ztunnel(target: ProxyTarget, dump: dict, now: Optional[_dt.datetime] = None) -> ProxyStatus:
    """ztunnel is not Envoy: its admin port serves a config_dump of workloads, services and certificates."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    st = ProxyStatus(name=target.name, address=target.address, kind="ztunnel", namespace=target.namespace)
    st.ready = True
    workloads = dump.get("workloads") or []
    services = dump.get("services") or []
    expired = _certificates(st, ztunnel_certificates(dump, now), st.reasons)
    st.xds = no_xds()
    st.control_plane = {"type": "grpc", "connected": None, "identifier": None}
    st.endpoints = {"healthy": len(workloads), "total": len(workloads), "clusters": []}
    if workloads or services:
        st.status = SYNCED
        st.warnings.insert(0, f"ztunnel: {len(workloads)} workload(s), {len(services)} service(s)")
    else:
        st.status = STALE
        st.reasons.insert(0, "ztunnel has received no workloads from the control plane")
    st.healthy = st.status in HEALTHY_STATUSES and not expired
    return st


def unreachable(target: ProxyTarget, reason: str) -> ProxyStatus:
    return ProxyStatus(name=target.name, address=target.address, kind=target.kind, namespace=target.namespace,
                       status=UNREACHABLE, healthy=False, reasons=[reason], xds=no_xds())


# --- the command's domain function -----------------------------------------------------------


@dataclass
class StatusOptions:
    """What `meshctl proxy-status` was asked: --admin addresses, or Kubernetes pods of a namespace
    (None: all namespaces), or the local mesh's proxies (state dir)."""

    admin: tuple[str, ...] = ()
    namespace: Optional[str] = None
    all_namespaces: bool = False
    local_state: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass
class StatusResult:
    rows: list[ProxyStatus]
    searched: Optional[str] = None  # where pods were looked for, when none was found

    @property
    def unhealthy(self) -> list[ProxyStatus]:
        return unhealthy(self.rows)

    def to_dict(self) -> dict:
        return {"proxies": [r.to_dict() for r in self.rows],
                "summary": {"total": len(self.rows), "healthy": sum(1 for r in self.rows if r.healthy)}}


def check(options: StatusOptions, kube: Optional[Callable[[], Any]] = None) -> StatusResult:
    """Find the proxies `options` names and probe them all. `kube()` gives the Kubernetes client
    when the proxies are pods (each reached through a port-forward, portforward.py)."""
    from meshctl.errors import InputError
    from meshctl.proxy.admin import parse_address

    if options.admin and options.all_namespaces:
        raise InputError("--admin and --all-namespaces exclude each other",
                         hint="--admin probes the given addresses only; drop one of them")
    route = None
    searched = None
    if options.admin:
        addresses = dict.fromkeys(parse_address(a, default_port=ADMIN_PORT) for a in options.admin)
        targets = [ProxyTarget(name=a, address=a) for a in addresses]
    elif options.local_state:  # the local mesh (meshctl local up): every proxy, or those of -n
        from meshctl.local.mesh import proxy_targets

        targets = proxy_targets(options.local_state, None if options.all_namespaces else options.namespace)
    else:
        if kube is None:
            raise InputError("proxy-status needs --admin, --local or a Kubernetes cluster")
        from meshctl.proxy import portforward

        k = kube()
        ns = None if options.all_namespaces else (options.namespace or k.namespace_for(None))
        targets = discover(k, ns)
        if not targets:
            searched = "any namespace" if ns is None else f"namespace {ns}"
        for t in targets:  # each pod's admin port through a port-forward
            t.address = None if t.problem else f"{t.pod}.{t.namespace}:{ADMIN_PORT}"
        pods = [(t.address, t.namespace, t.pod) for t in targets if t.address]
        route = portforward.routes(k.connection(), pods, ADMIN_PORT) if pods else None
    rows = run(targets, timeout=options.timeout, concurrency=options.concurrency, route=route)
    return StatusResult(rows, searched)


def run(targets: Iterable[ProxyTarget], timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY,
        route: Optional[Callable[[str], Any]] = None) -> list[ProxyStatus]:
    """Probe every target (see fanout.collect); one row per target, in order."""
    from meshctl.proxy import fanout

    return fanout.run(targets, timeout=timeout, concurrency=concurrency, route=route)


# --- discover ---------------------------------------------------------------------------------


def proxy_kind(pod: dict) -> Optional[str]:
    """sidecar | gateway | waypoint | ztunnel for mesh proxy pods, None for other pods."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = pod.get("spec") or {}
    containers = [c.get("name") for c in spec.get("containers") or []]
    init = [c.get("name") for c in spec.get("initContainers") or []
            if c.get("name") == "istio-proxy" and c.get("restartPolicy") == "Always"]
    if labels.get("app") == "ztunnel" or "ztunnel" in containers:
        return "ztunnel"
    if "istio-proxy" not in containers and "istio-proxy" not in init:
        return None
    if labels.get("gateway.istio.io/managed") == "istio.io-mesh-controller" \
            or labels.get("gateway.networking.k8s.io/gateway-class-name") == "istio-waypoint" \
            or "istio.io/waypoint-for" in labels:
        return "waypoint"
    if "istio" in labels and "gateway" in str(labels.get("istio")) or labels.get("istio.io/gateway-name") \
            or "gateway.networking.k8s.io/gateway-name" in labels:
        return "gateway"
    return "sidecar"


def targets_from_pods(pods: Iterable[dict]) -> list[ProxyTarget]:
    out = []
    for pod in pods:
        kind = proxy_kind(pod)
        if kind is None:
            continue
        meta = pod.get("metadata") or {}
        name, ns = meta.get("name"), meta.get("namespace")
        phase = (pod.get("status") or {}).get("phase")
        problem = None
        if meta.get("deletionTimestamp"):
            problem = "pod is terminating"
        elif phase and phase != "Running":
            problem = f"pod is {phase}"
        out.append(ProxyTarget(name=f"{name}.{ns}", namespace=ns, pod=name, kind=kind, problem=problem))
    out.sort(key=lambda t: (t.namespace or "", t.pod or ""))
    return out


def discover(k, namespace: Optional[str]) -> list[ProxyTarget]:
    """Mesh proxy pods in `namespace` (None: all namespaces) through meshctl.kube."""
    return targets_from_pods(k.list("v1", "Pod", namespace=namespace))


# --- exit status ------------------------------------------------------------------------------


def unhealthy(rows: Iterable[ProxyStatus]) -> list[ProxyStatus]:
    return [r for r in rows if not r.healthy]

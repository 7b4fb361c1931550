"""proxy-status: per-proxy health and xDS sync, read straight from each Envoy's admin interface.

Stages: discover (Kubernetes pods, or --admin addresses) → probe (admin.py, async, bounded)
→ summarize (a pure function of the admin answers, unit-tested on recorded answers) → report.

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

import asyncio
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from meshctl.errors import MeshctlError
from meshctl.proxy.admin import ADMIN_PORT, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, AdminClient

UNREACHABLE = "UNREACHABLE"
NOT_CONNECTED = "NOT CONNECTED"
STALE = "STALE"
NOT_READY = "NOT READY"
SYNCED = "SYNCED"
STATIC = "STATIC"
HEALTHY_STATUSES = (SYNCED, STATIC)

# per xDS type
X_SYNCED = "SYNCED"
X_STALE = "STALE"
X_NOT_SENT = "NOT SENT"
X_NONE = "-"

CERT_WARN_SECONDS = 24 * 3600

STATS_FILTER = (  # kept short: httpx re-quotes the query of every request
    r"^(cluster_manager\.(cds\.|warming)|listener_manager\.(lds\.|total_listeners_warming)|control_plane\."
    r"|server\.state$|http\..*\.rds\.|cluster\..*\.(version_text|update_(success|rejected|failure)"
    r"|init_fetch_timeout|membership_(healthy|total))$)"
)
X_UNKNOWN = "?"


def stats_filter(ads_cluster: Optional[str] = None) -> str:
    """STATS_FILTER, plus the ADS cluster's active connections (the control-plane link when
    control_plane.* is left out by a stats_matcher, as Istio's bootstrap does)."""
    if not ads_cluster:
        return STATS_FILTER
    escaped = "".join("\\" + c if c in "\\.^$|?*+()[]{}-" else c for c in ads_cluster)
    return f"{STATS_FILTER}|^cluster\\.{escaped}\\.upstream_cx_active$"


SERVER_STATES = {0: "LIVE", 1: "DRAINING", 2: "PRE_INITIALIZING", 3: "INITIALIZING"}


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
class Xds:
    type: str
    state: str = X_NONE
    version: Optional[str] = None
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    subscriptions: int = 0
    detail: Optional[str] = None

    def cell(self) -> str:
        if self.state in (X_NONE, X_NOT_SENT) or not self.version:
            return self.state
        v = self.version if len(self.version) <= 14 else self.version[:13] + "…"
        return f"{self.state} ({v})"


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


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def short_envoy_version(version: str | None) -> Optional[str]:
    """'sha/1.40.0/Clean/RELEASE/BoringSSL' → '1.40.0'."""
    if not version:
        return None
    parts = version.split("/")
    return parts[1] if len(parts) > 1 else version


def _subscription(stats: dict, prefix: str, grpc: bool) -> Xds:
    x = Xds(type="")
    x.subscriptions = 1
    x.version = stats.get(prefix + "version_text") or None
    x.accepted = _int(stats.get(prefix + "update_success"))
    x.rejected = _int(stats.get(prefix + "update_rejected"))
    # with gRPC, update_failure counts broken streams (shown as NOT CONNECTED); with files, parse errors
    x.failed = 0 if grpc else _int(stats.get(prefix + "update_failure"))
    timed_out = _int(stats.get(prefix + "init_fetch_timeout"))
    if x.rejected or x.failed:
        x.state = X_STALE
        what = []
        if x.rejected:
            what.append(f"{x.rejected} rejected")
        if x.failed:
            what.append(f"{x.failed} unreadable")
        kept = f"at version {x.version}" if x.version else "nothing accepted yet"
        x.detail = f"{' and '.join(what)} update(s) since start, {kept}"
    elif x.accepted == 0 and not x.version:
        x.state = X_NOT_SENT
        if timed_out:
            x.detail = "initial fetch timed out"
    else:
        x.state = X_SYNCED
    return x


def _aggregate(kind: str, subs: dict[str, Xds]) -> Xds:
    agg = Xds(type=kind)
    if not subs:
        return agg
    agg.subscriptions = len(subs)
    agg.accepted = sum(s.accepted for s in subs.values())
    agg.rejected = sum(s.rejected for s in subs.values())
    agg.failed = sum(s.failed for s in subs.values())
    stale = sorted(n for n, s in subs.items() if s.state == X_STALE)
    unsent = sorted(n for n, s in subs.items() if s.state == X_NOT_SENT)
    versions: dict[str, int] = {}
    for s in subs.values():
        if s.version:
            versions[s.version] = versions.get(s.version, 0) + 1
    if versions:
        agg.version = max(sorted(versions), key=lambda v: versions[v])
    if stale:
        agg.state = X_STALE
        names = ", ".join(stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
        agg.detail = f"{names}: {subs[stale[0]].detail}"
    elif len(unsent) == len(subs):
        agg.state = X_NOT_SENT
        agg.detail = subs[unsent[0]].detail
    else:
        agg.state = X_SYNCED
    return agg


def xds_states(stats: dict, grpc: Optional[bool] = None) -> tuple[dict[str, Xds], bool]:
    """Per-type xDS state from /stats; second value: whether a gRPC control plane is configured."""
    if grpc is None:
        grpc = "control_plane.connected_state" in stats
    out: dict[str, Xds] = {}
    for kind, prefix in (("CDS", "cluster_manager.cds."), ("LDS", "listener_manager.lds.")):
        if prefix + "update_attempt" in stats or prefix + "version_text" in stats:
            x = _subscription(stats, prefix, grpc)
            x.type = kind
            out[kind] = x
        else:
            out[kind] = Xds(type=kind)
    eds: dict[str, Xds] = {}
    rds: dict[str, Xds] = {}
    for name in stats:
        if not name.endswith(".version_text"):
            continue
        prefix = name[: -len("version_text")]
        if name.startswith("cluster.") and not name.startswith("cluster_manager."):
            eds[prefix[len("cluster."):-1]] = _subscription(stats, prefix, grpc)
        elif name.startswith("http.") and ".rds." in name:
            rds[prefix.split(".rds.", 1)[1][:-1]] = _subscription(stats, prefix, grpc)
    out["EDS"] = _aggregate("EDS", eds)
    out["RDS"] = _aggregate("RDS", rds)
    return {k: out[k] for k in ("CDS", "LDS", "EDS", "RDS")}, grpc


def _parse_time(text: str | None) -> Optional[_dt.datetime]:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


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


def certificates(certs: dict, now: _dt.datetime) -> list[dict]:
    """Flatten /certs into [{kind, name, serial, san, not_after, seconds_left}], soonest first."""
    out = []
    for entry in (certs or {}).get("certificates", []) or []:
        for kind, items in (("cert_chain", entry.get("cert_chain") or []), ("ca_cert", entry.get("ca_cert") or [])):
            for c in items:
                not_after = _parse_time(c.get("expiration_time"))
                sans = [next(iter(s.values())) for s in c.get("subject_alt_names") or [] if s]
                out.append({
                    "type": "Cert Chain" if kind == "cert_chain" else "CA",
                    "name": (sans[0] if sans else None) or c.get("path") or "inline",
                    "path": c.get("path"),
                    "serial": c.get("serial_number"),
                    "san": sans,
                    "not_before": c.get("valid_from"),
                    "not_after": c.get("expiration_time"),
                    "seconds_left": int((not_after - now).total_seconds()) if not_after else None,
                })
    out.sort(key=lambda c: (c["seconds_left"] is None, c["seconds_left"] or 0))
    return out


def _host_healthy(host: dict) -> bool:
    hs = host.get("health_status") or {}
    if hs.get("eds_health_status", "HEALTHY") not in ("HEALTHY", "UNKNOWN"):
        return False
    flags = ("failed_active_health_check", "failed_outlier_check", "failed_active_degraded_check",
             "pending_dynamic_removal", "pending_active_hc", "excluded_via_immediate_hc_fail",
             "active_hc_timeout")
    return not any(hs.get(f) for f in flags)


def endpoints(clusters: dict) -> dict:
    """Healthy/total endpoints per cluster from /clusters?format=json."""
    per = []
    for c in (clusters or {}).get("cluster_statuses", []) or []:
        hosts = c.get("host_statuses") or []
        per.append({"cluster": c.get("name"), "healthy": sum(1 for h in hosts if _host_healthy(h)),
                    "total": len(hosts)})
    per.sort(key=lambda c: c["cluster"] or "")
    return {"healthy": sum(c["healthy"] for c in per), "total": sum(c["total"] for c in per), "clusters": per}


def endpoints_from_stats(stats: dict) -> dict:
    """Healthy/total endpoints per cluster from the membership_healthy/membership_total gauges
    (the counts /clusters lists host by host, in one /stats answer)."""
    per = []
    suffix = ".membership_total"
    for name, total in stats.items():
        if name.startswith("cluster.") and name.endswith(suffix):
            cluster = name[len("cluster."):-len(suffix)]
            healthy = _int(stats.get(f"cluster.{cluster}.membership_healthy"))
            per.append({"cluster": cluster, "healthy": healthy, "total": _int(total)})
    per.sort(key=lambda c: c["cluster"])
    return {"healthy": sum(c["healthy"] for c in per), "total": sum(c["total"] for c in per), "clusters": per}


def ready_from_stats(stats: dict) -> Optional[tuple[bool, str]]:
    """(ready, state) from server.state — what /ready answers (200 only when LIVE)."""
    if "server.state" not in stats:
        return None
    state = SERVER_STATES.get(_int(stats["server.state"]), str(stats["server.state"]))
    return state == "LIVE", state


def listener_errors(dump: dict | None) -> list[str]:
    """Envoy's error text for rejected listeners (error_state in /config_dump?resource=dynamic_listeners)."""
    out = []
    for item in (dump or {}).get("configs", []) or []:
        err = item.get("error_state")
        if not err:
            continue
        name = item.get("name") or (err.get("failed_configuration") or {}).get("name") or "?"
        details = " ".join(str(err.get("details", "")).split())
        if details.startswith("goo.gle/debugstr"):
            details = details[len("goo.gle/debugstr"):].strip()
        out.append(f"listener {name}: {details[:240]}")
    return out


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
    link = f"cluster.{ads}.upstream_cx_active" if ads else None
    st.xds, grpc = xds_states(stats, "control_plane.connected_state" in stats or bool(ads))
    dynamic = any(x.state != X_NONE for x in st.xds.values()) or bool(info.get("dynamic"))
    if info.get("stats_filtered") and dynamic:
        # a stats_matcher (Istio's bootstrap keeps cluster_manager/listener_manager only) hides
        # per-cluster EDS and per-route RDS subscriptions: unknown, not absent
        for kind in ("EDS", "RDS"):
            if st.xds[kind].state == X_NONE:
                st.xds[kind] = Xds(type=kind, state=X_UNKNOWN, detail="not in this proxy's stats (stats_matcher)")
    if grpc:
        if "control_plane.connected_state" in stats:
            connected = _int(stats.get("control_plane.connected_state")) == 1
        elif link and link in stats:
            connected = _int(stats[link]) > 0
        else:
            connected = None
            st.warnings.append("control-plane connection not in this proxy's stats")
        st.control_plane = {"type": "grpc", "connected": connected,
                            "identifier": stats.get("control_plane.identifier") or None}
    elif dynamic:
        st.control_plane = {"type": "files", "connected": None, "identifier": None}
    else:
        st.control_plane = {"type": "none", "connected": None, "identifier": None}

    problems: list[str] = []
    stale: list[str] = []
    if grpc and st.control_plane["connected"] is False:
        who = f" {st.control_plane['identifier']}" if st.control_plane["identifier"] else ""
        problems.append(f"not connected to the control plane{who}")
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
    warming_c = _int(stats.get("cluster_manager.warming_clusters"))
    warming_l = _int(stats.get("listener_manager.total_listeners_warming"))
    if dynamic and (warming_c or warming_l):
        parts = [f"{n} {what} warming" for n, what in ((warming_c, "cluster(s)"), (warming_l, "listener(s)")) if n]
        stale.append(" and ".join(parts) + " (update not applied yet)")

    st.certificates = certificates(certs, now)
    expired = [c for c in st.certificates if c["seconds_left"] is not None and c["seconds_left"] <= 0]
    soon = [c for c in st.certificates if c["seconds_left"] is not None and 0 < c["seconds_left"] <= CERT_WARN_SECONDS]
    if st.certificates and st.certificates[0]["seconds_left"] is not None:
        st.cert_expiry = st.certificates[0]["not_after"]
        st.cert_seconds_left = st.certificates[0]["seconds_left"]
    for c in expired:
        problems.append(f"certificate {c['name']} expired {human_duration(c['seconds_left'])} ago")
    for c in soon:
        st.warnings.append(f"certificate {c['name']} expires in {human_duration(c['seconds_left'])}")

    st.endpoints = endpoints(clusters) if clusters is not None else endpoints_from_stats(stats)
    empty = [c["cluster"] for c in st.endpoints["clusters"] if c["total"] and not c["healthy"]]
    if empty:
        more = f" and {len(empty) - 3} more" if len(empty) > 3 else ""
        st.warnings.append(f"no healthy endpoint in {', '.join(empty[:3])}{more}")

    if grpc and st.control_plane["connected"] is False:
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
    certs = []
    for c in dump.get("certificates") or []:
        for kind, items in (("Cert Chain", c.get("certChain") or []), ("CA", c.get("rootCerts") or [])):
            for item in items:
                not_after = _parse_time(item.get("expirationTime"))
                certs.append({"type": kind, "name": c.get("identity") or "?", "path": None,
                              "serial": item.get("serialNumber"), "san": [c.get("identity")] if c.get("identity") else [],
                              "not_before": item.get("validFrom"), "not_after": item.get("expirationTime"),
                              "seconds_left": int((not_after - now).total_seconds()) if not_after else None})
    certs.sort(key=lambda c: (c["seconds_left"] is None, c["seconds_left"] or 0))
    st.certificates = certs
    if certs and certs[0]["seconds_left"] is not None:
        st.cert_expiry, st.cert_seconds_left = certs[0]["not_after"], certs[0]["seconds_left"]
    expired = [c for c in certs if c["seconds_left"] is not None and c["seconds_left"] <= 0]
    for c in expired:
        st.reasons.append(f"certificate {c['name']} expired {human_duration(c['seconds_left'])} ago")
    for c in certs:
        if c["seconds_left"] is not None and 0 < c["seconds_left"] <= CERT_WARN_SECONDS:
            st.warnings.append(f"certificate {c['name']} expires in {human_duration(c['seconds_left'])}")
    st.xds = {k: Xds(type=k) for k in ("CDS", "LDS", "EDS", "RDS")}
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
                       status=UNREACHABLE, healthy=False, reasons=[reason],
                       xds={k: Xds(type=k) for k in ("CDS", "LDS", "EDS", "RDS")})


# --- probe ------------------------------------------------------------------------------------


async def probe(admin: AdminClient, target: ProxyTarget, address: str) -> ProxyStatus:
    """Read one proxy's admin endpoints concurrently and summarize them."""
    from meshctl.proxy.admin import AdminUnreachable

    if target.kind == "ztunnel":
        try:
            dump = await admin.get_json(address, "/config_dump")
        except AdminUnreachable as e:
            return unreachable(target, e.reason)
        return summarize_ztunnel(target, dump if isinstance(dump, dict) else {})

    # three requests a proxy, one after the other on one kept-alive connection (cheaper than
    # three connections; the concurrency bound keeps many proxies in flight). Readiness
    # (server.state) and endpoint counts (membership gauges) come in the /stats answer.
    try:
        info = await admin.build_info(address)
        stats = await admin.stats(address, stats_filter(info.get("ads_cluster")))
    except AdminUnreachable as e:
        return unreachable(target, e.reason)
    try:
        certs = await admin.certs(address)
    except AdminUnreachable as e:
        certs = e
    partial = []
    ready = ready_from_stats(stats)
    if ready is None:
        try:
            ready = await admin.ready(address)
        except AdminUnreachable as e:
            partial.append(f"/ready: {e.reason}")
            ready = (False, "")
    if isinstance(certs, AdminUnreachable):
        partial.append(f"/certs: {certs.reason}")
        certs = {}
    elif not isinstance(certs, dict):
        partial.append("/certs: answer is not Envoy's certificate list")
        certs = {}
    listeners_dump = None
    if _int(stats.get("listener_manager.lds.update_rejected")):
        try:
            listeners_dump = await admin.config_dump(address, resource="dynamic_listeners")
        except AdminUnreachable as e:
            partial.append(f"/config_dump: {e.reason}")
    st = summarize(target, info, ready, stats, certs, None, listeners_dump)
    if partial:
        st.reasons.extend(f"could not read {p}" for p in partial)
        st.healthy = False
    return st


Forwarder = Callable[[ProxyTarget], Any]  # returns a context manager yielding a local port


async def collect(targets: Iterable[ProxyTarget], timeout: float = DEFAULT_TIMEOUT,
                  concurrency: int = DEFAULT_CONCURRENCY, forward: Optional[Forwarder] = None) -> list[ProxyStatus]:
    """Probe every target (bounded concurrency, per-request timeout); one row per target, in order."""
    targets = list(targets)
    loop = asyncio.get_running_loop()
    pool = None
    if forward is not None and any(t.address is None and not t.problem for t in targets):
        from concurrent.futures import ThreadPoolExecutor

        # opening a port-forward blocks (API server round trips): enough threads to keep
        # --concurrency of them going, not the default executor's handful
        pool = ThreadPoolExecutor(max_workers=min(concurrency, 32), thread_name_prefix="port-forward")
    try:
        return await _collect(targets, timeout, concurrency, forward, loop, pool)
    finally:
        if pool is not None:
            pool.shutdown(wait=False)


async def _collect(targets, timeout, concurrency, forward, loop, pool) -> list[ProxyStatus]:
    async with AdminClient(timeout=timeout, concurrency=concurrency) as admin:
        forwards = asyncio.Semaphore(concurrency)

        async def one(t: ProxyTarget) -> ProxyStatus:
            if t.problem:
                return unreachable(t, t.problem)
            if t.address:
                try:
                    return await probe(admin, t, t.address)
                finally:
                    await admin.release(t.address)
            if forward is None:
                return unreachable(t, "no admin address")
            async with forwards:
                try:
                    cm = forward(t)
                    port = await loop.run_in_executor(pool, cm.__enter__)
                except MeshctlError as e:
                    return unreachable(t, f"port-forward to {t.pod}:{ADMIN_PORT} failed: {e.message}")
                local = f"127.0.0.1:{port}"
                try:
                    st = await probe(admin, t, local)
                    st.address = f"{t.pod}.{t.namespace}:{ADMIN_PORT}"
                    return st
                finally:
                    await admin.release(local)
                    await loop.run_in_executor(pool, cm.__exit__, None, None, None)

        return list(await asyncio.gather(*(one(t) for t in targets)))


def run(targets: Iterable[ProxyTarget], timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY,
        forward: Optional[Forwarder] = None) -> list[ProxyStatus]:
    return asyncio.run(collect(targets, timeout, concurrency, forward))


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

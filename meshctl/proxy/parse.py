"""Parse stage: Envoy admin answers → plain values (no I/O, no printing).

What proxy-status asks each proxy, and how each answer is read:

- `/config_dump?mask=BUILD_INFO_MASK` → `build_info_from_dump` (version, node metadata, xDS sources);
  `/server_info` → `build_info_from_server_info` for Envoys without field masks;
- `/stats?format=json&filter=stats_filter(...)` → `parse_stats` → `xds_states`, `ready_from_stats`,
  `endpoints_from_stats`;
- `/certs` → `certificates`; `/clusters?format=json` → `endpoints`;
- `/config_dump?resource=dynamic_listeners` → `listener_errors`.

Also the reusable stats reader's value types (`Histogram`, `parse_stats`), which the canary gates use.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Optional

# --- what to ask -------------------------------------------------------------------------------

# The bootstrap fields build_info needs: a few hundred bytes, where /server_info carries the node's
# list of every compiled-in extension (≈120 KB a proxy).
BUILD_INFO_MASK = ("bootstrap.node.user_agent_build_version,bootstrap.node.metadata,bootstrap.node.id,"
                   "bootstrap.dynamic_resources,bootstrap.stats_config.stats_matcher")

_XDS_COUNTERS = r"(version_text|update_(success|rejected|failure)|init_fetch_timeout)"
STATS_FILTER = (  # exactly the names summarize reads: no histograms, no other xDS counters
    r"^(cluster_manager\.(cds\.(update_attempt|" + _XDS_COUNTERS[1:] + r"|warming_clusters)"
    r"|listener_manager\.(lds\.(update_attempt|" + _XDS_COUNTERS[1:] + r"|total_listeners_warming)"
    r"|control_plane\.(connected_state|identifier)|server\.state"
    r"|(http\..*\.rds\..*|cluster\..*)\." + _XDS_COUNTERS + r"|cluster\..*\.membership_(healthy|total))$"
)


def _escape(name: str) -> str:
    return "".join("\\" + c if c in "\\.^$|?*+()[]{}-" else c for c in name)


def stats_filter(ads_cluster: Optional[str] = None) -> str:
    """STATS_FILTER, plus the ADS cluster's active connections (the control-plane link when
    control_plane.* is left out by a stats_matcher, as Istio's bootstrap does)."""
    if not ads_cluster:
        return STATS_FILTER
    return f"{STATS_FILTER}|^cluster\\.{_escape(ads_cluster)}\\.upstream_cx_active$"


def ads_link_stat(ads_cluster: Optional[str]) -> Optional[str]:
    return f"cluster.{ads_cluster}.upstream_cx_active" if ads_cluster else None


# --- numbers -----------------------------------------------------------------------------------


def as_int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def parse_time(text: str | None) -> Optional[_dt.datetime]:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- /stats ------------------------------------------------------------------------------------


@dataclass
class Histogram:
    """One Envoy histogram from /stats?format=json.

    quantiles: {"p50": value, "p99": value, ...} cumulative since start (None when no samples);
    interval: the same for the last flush interval;
    buckets: [(upper_bound, cumulative_count), ...] when asked with histogram_buckets=True.
    Values are in the histogram's unit (milliseconds for *_time / *_ms).
    """

    name: str
    quantiles: dict = field(default_factory=dict)
    interval: dict = field(default_factory=dict)
    buckets: list = field(default_factory=list)

    def to_dict(self) -> dict:
        out: dict = {"quantiles": self.quantiles, "interval": self.interval}
        if self.buckets:
            out["buckets"] = [{"le": le, "count": n} for le, n in self.buckets]
        return out


def _qname(q: float) -> str:
    return "p" + (f"{q:g}")


def parse_stats(data: Any) -> dict:
    """Flatten Envoy's JSON stats into {name: number | str | Histogram}.

    Counters and gauges become ints, text readouts (e.g. version_text) stay strings.
    """
    if not isinstance(data, dict) or not isinstance(data.get("stats"), list):
        raise ValueError("not Envoy stats JSON")
    out: dict = {}
    for item in data["stats"]:
        name = item.get("name")
        if name is not None:
            out[name] = item.get("value", 0)
            continue
        h = item.get("histograms")
        if isinstance(h, dict):  # quantile form
            names = [_qname(q) for q in h.get("supported_quantiles", [])]
            for entry in h.get("computed_quantiles", []):
                hist = Histogram(entry["name"])
                for qn, v in zip(names, entry.get("values", [])):
                    hist.quantiles[qn] = v.get("cumulative")
                    hist.interval[qn] = v.get("interval")
                out[hist.name] = hist
        elif isinstance(h, list):  # bucket form
            for entry in h:
                hist = Histogram(entry["name"])
                hist.buckets = [(b.get("upper_bound"), b.get("cumulative", 0)) for b in entry.get("buckets", [])]
                out[hist.name] = hist
    return out


SERVER_STATES = {0: "LIVE", 1: "DRAINING", 2: "PRE_INITIALIZING", 3: "INITIALIZING"}


def ready_from_stats(stats: dict) -> Optional[tuple[bool, str]]:
    """(ready, state) from server.state — what /ready answers (200 only when LIVE)."""
    if "server.state" not in stats:
        return None
    state = SERVER_STATES.get(as_int(stats["server.state"]), str(stats["server.state"]))
    return state == "LIVE", state


# --- xDS state from /stats ------------------------------------------------------------------------

X_SYNCED = "SYNCED"
X_STALE = "STALE"
X_NOT_SENT = "NOT SENT"
X_NONE = "-"
X_UNKNOWN = "?"
XDS_TYPES = ("CDS", "LDS", "EDS", "RDS")


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


def no_xds() -> dict[str, Xds]:
    return {k: Xds(type=k) for k in XDS_TYPES}


def _subscription(stats: dict, prefix: str, grpc: bool) -> Xds:
    x = Xds(type="")
    x.subscriptions = 1
    x.version = stats.get(prefix + "version_text") or None
    x.accepted = as_int(stats.get(prefix + "update_success"))
    x.rejected = as_int(stats.get(prefix + "update_rejected"))
    # with gRPC, update_failure counts broken streams (shown as NOT CONNECTED); with files, parse errors
    x.failed = 0 if grpc else as_int(stats.get(prefix + "update_failure"))
    timed_out = as_int(stats.get(prefix + "init_fetch_timeout"))
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
    return {k: out[k] for k in XDS_TYPES}, grpc


# --- endpoints ---------------------------------------------------------------------------------


def _host_healthy(host: dict) -> bool:
    hs = host.get("health_status") or {}
    if hs.get("eds_health_status", "HEALTHY") not in ("HEALTHY", "UNKNOWN"):
        return False
    flags = ("failed_active_health_check", "failed_outlier_check", "failed_active_degraded_check",
             "pending_dynamic_removal", "pending_active_hc", "excluded_via_immediate_hc_fail",
             "active_hc_timeout")
    return not any(hs.get(f) for f in flags)


def _endpoint_totals(per: list[dict]) -> dict:
    per.sort(key=lambda c: c["cluster"] or "")
    return {"healthy": sum(c["healthy"] for c in per), "total": sum(c["total"] for c in per), "clusters": per}


def endpoints(clusters: dict) -> dict:
    """Healthy/total endpoints per cluster from /clusters?format=json."""
    per = []
    for c in (clusters or {}).get("cluster_statuses", []) or []:
        hosts = c.get("host_statuses") or []
        per.append({"cluster": c.get("name"), "healthy": sum(1 for h in hosts if _host_healthy(h)),
                    "total": len(hosts)})
    return _endpoint_totals(per)


def endpoints_from_stats(stats: dict) -> dict:
    """Healthy/total endpoints per cluster from the membership_healthy/membership_total gauges
    (the counts /clusters lists host by host, in one /stats answer)."""
    per = []
    suffix = ".membership_total"
    for name, total in stats.items():
        if name.startswith("cluster.") and name.endswith(suffix):
            cluster = name[len("cluster."):-len(suffix)]
            healthy = as_int(stats.get(f"cluster.{cluster}.membership_healthy"))
            per.append({"cluster": cluster, "healthy": healthy, "total": as_int(total)})
    return _endpoint_totals(per)


# --- /certs ------------------------------------------------------------------------------------


def _cert_entry(kind: str, name: str, path, serial, sans: list, not_before, not_after_text,
                now: _dt.datetime) -> dict:
    not_after = parse_time(not_after_text)
    return {"type": kind, "name": name, "path": path, "serial": serial, "san": sans, "not_before": not_before,
            "not_after": not_after_text,
            "seconds_left": int((not_after - now).total_seconds()) if not_after else None}


def _soonest_first(certs: list[dict]) -> list[dict]:
    certs.sort(key=lambda c: (c["seconds_left"] is None, c["seconds_left"] or 0))
    return certs


def certificates(certs: dict, now: _dt.datetime) -> list[dict]:
    """Flatten /certs into [{type, name, path, serial, san, not_before, not_after, seconds_left}],
    soonest first, each certificate once (Envoy lists a certificate again for every TLS context
    that uses it)."""
    out, seen = [], set()
    for entry in (certs or {}).get("certificates", []) or []:
        for kind, items in (("Cert Chain", entry.get("cert_chain") or []), ("CA", entry.get("ca_cert") or [])):
            for c in items:
                key = (kind, c.get("path"), c.get("serial_number"), c.get("expiration_time"))
                if key in seen:
                    continue
                seen.add(key)
                sans = [next(iter(s.values())) for s in c.get("subject_alt_names") or [] if s]
                out.append(_cert_entry(kind, (sans[0] if sans else None) or c.get("path") or "inline",
                                       c.get("path"), c.get("serial_number"), sans, c.get("valid_from"),
                                       c.get("expiration_time"), now))
    return _soonest_first(out)


def ztunnel_certificates(dump: dict, now: _dt.datetime) -> list[dict]:
    """The certificates of ztunnel's /config_dump, in `certificates`' shape, soonest first."""
    out = []
    for c in dump.get("certificates") or []:
        identity = c.get("identity")
        for kind, items in (("Cert Chain", c.get("certChain") or []), ("CA", c.get("rootCerts") or [])):
            for item in items:
                out.append(_cert_entry(kind, identity or "?", None, item.get("serialNumber"),
                                       [identity] if identity else [], item.get("validFrom"),
                                       item.get("expirationTime"), now))
    return _soonest_first(out)


# --- /config_dump ------------------------------------------------------------------------------


def build_info_from_dump(dump: Any) -> dict:
    """build_info's shape from a /config_dump?mask=BUILD_INFO_MASK answer; raises KeyError,
    IndexError, TypeError or AttributeError when the answer lacks the masked fields."""
    boot = dump["configs"][0]["bootstrap"]
    node = boot["node"]
    build = node["user_agent_build_version"]
    v = build.get("version") or {}
    dyn = boot.get("dynamic_resources") or {}
    grpc = ((dyn.get("ads_config") or {}).get("grpc_services") or [{}])[0]
    return {"version": f"{v.get('major_number', 0)}.{v.get('minor_number', 0)}.{v.get('patch', 0)}",
            "revision": (build.get("metadata") or {}).get("revision.sha"),
            "node_id": node.get("id"), "metadata": node.get("metadata") or {},
            "ads_cluster": (grpc.get("envoy_grpc") or {}).get("cluster_name"),
            "dynamic": bool(dyn), "stats_filtered": bool((boot.get("stats_config") or {}).get("stats_matcher"))}


def build_info_from_server_info(server_info: dict) -> dict:
    """build_info's shape from /server_info ('sha/1.40.0/Clean/RELEASE/BoringSSL')."""
    parts = str(server_info.get("version", "")).split("/")
    node = server_info.get("node") or {}
    return {"version": parts[1] if len(parts) > 1 else parts[0] or None, "revision": parts[0] or None,
            "node_id": node.get("id"), "metadata": node.get("metadata") or {}, "state": server_info.get("state")}


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

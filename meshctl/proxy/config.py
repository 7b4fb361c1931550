"""proxy-config: one proxy's configuration sections, as tables (istioctl's columns) or raw.

Model stage only: each `*_section(dump)` returns the raw Envoy objects (what `-o json|yaml`
prints) and each `*_rows(...)` turns them into table rows (header first); `Query.result(answers)`
applies a command's filters and gives both. No I/O here: the admin answers come from
meshctl.proxy.target.
"""
from __future__ import annotations

import datetime as _dt
import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any, Optional

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
BLACKHOLE = "BlackHoleCluster"

SECTIONS = ("clusters", "listeners", "routes", "endpoints", "secrets", "bootstrap")


def _configs(dump: dict, type_suffix: str) -> dict:
    for c in (dump or {}).get("configs", []) or []:
        if str(c.get("@type", "")).endswith("." + type_suffix):
            return c
    return {}


# --- raw sections ----------------------------------------------------------------------------


def clusters_section(dump: dict) -> list[dict]:
    c = _configs(dump, "ClustersConfigDump")
    out = [d["cluster"] for d in c.get("dynamic_active_clusters", []) or [] if d.get("cluster")]
    out += [d["cluster"] for d in c.get("static_clusters", []) or [] if d.get("cluster")]
    return sorted(out, key=_cluster_sort_key)


def listeners_section(dump: dict) -> list[dict]:
    c = _configs(dump, "ListenersConfigDump")
    out = []
    for d in c.get("dynamic_listeners", []) or []:
        active = (d.get("active_state") or {}).get("listener")
        if active:
            out.append(active)
    out += [d["listener"] for d in c.get("static_listeners", []) or [] if d.get("listener")]
    return out


def routes_section(dump: dict) -> list[dict]:
    c = _configs(dump, "RoutesConfigDump")
    out = [d["route_config"] for d in c.get("dynamic_route_configs", []) or [] if d.get("route_config")]
    out += [d["route_config"] for d in c.get("static_route_configs", []) or [] if d.get("route_config")]
    return sorted(out, key=lambda r: r.get("name", ""))


def secrets_section(dump: dict) -> list[dict]:
    c = _configs(dump, "SecretsConfigDump")
    out = []
    for key, status in (("dynamic_active_secrets", "ACTIVE"), ("dynamic_warming_secrets", "WARMING"),
                        ("static_secrets", "ACTIVE")):
        for d in c.get(key, []) or []:
            item = dict(d)
            item.setdefault("_status", status)
            out.append(item)
    return out


def bootstrap_section(dump: dict) -> dict:
    return _configs(dump, "BootstrapConfigDump").get("bootstrap", {})


# --- clusters --------------------------------------------------------------------------------


def parse_cluster_name(name: str) -> tuple[str, str, str, str]:
    """Istio's 'direction|port|subset|fqdn' → (fqdn, port, subset, direction); others as (name, -, -, -)."""
    parts = name.split("|")
    if len(parts) == 4:
        direction, port, subset, fqdn = parts
        return fqdn, port, subset or "-", direction
    return name, "-", "-", "-"


def _cluster_sort_key(c: dict):
    fqdn, port, subset, direction = parse_cluster_name(c.get("name", ""))
    return (fqdn, subset, int(port) if port.isdigit() else 0, direction)


def _management(metadata: Optional[dict]) -> str:
    cfg = (((metadata or {}).get("filter_metadata") or {}).get("istio") or {}).get("config")
    if not cfg:
        return ""
    pieces = cfg.split("/")
    if cfg.startswith("/apis/networking.istio.io/") and len(pieces) == 8:
        return f"{pieces[7]}.{pieces[5]}"
    return "<unknown>"


def cluster_rows(clusters: list[dict], fqdn: Optional[str] = None, port: Optional[int] = None,
                 direction: Optional[str] = None, subset: Optional[str] = None) -> list[list[str]]:
    rows = [["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]]
    for c in clusters:
        f, p, s, d = parse_cluster_name(c.get("name", ""))
        if fqdn and fqdn not in f:
            continue
        if port is not None and p != str(port):
            continue
        if direction and d != direction:
            continue
        if subset and s != subset:
            continue
        ctype = c.get("type") or ("STATIC" if "cluster_type" not in c else c["cluster_type"].get("name", "-"))
        rows.append([f, p, s, d, ctype, _management(c.get("metadata"))])
    return rows


# --- listeners -------------------------------------------------------------------------------


def _chains(listener: dict) -> list[dict]:
    chains = list(listener.get("filter_chains") or [])
    if listener.get("default_filter_chain"):
        chains.append(listener["default_filter_chain"])
    return chains


def _address(listener: dict) -> str:
    addr = listener.get("address") or {}
    if "socket_address" in addr:
        return addr["socket_address"].get("address", "")
    if "pipe" in addr:
        return addr["pipe"].get("path", "")
    return ""


def _addresses(listener: dict) -> str:
    out = [_address(listener)]
    for extra in listener.get("additional_addresses") or []:
        out.append(((extra.get("address") or {}).get("socket_address") or {}).get("address", ""))
    return ",".join(out)


def _port(listener: dict) -> int:
    return int(((listener.get("address") or {}).get("socket_address") or {}).get("port_value", 0) or 0)


_APP_PROTOCOLS = {
    ("http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: HTTP TLS",
    ("istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: Istio HTTP Plain",
    ("istio-peer-exchange", "istio"): "App: TCP TLS",
    ("http/1.0", "http/1.1", "h2c"): "App: HTTP",
}


def describe_match(m: Optional[dict]) -> str:
    m = m or {}
    out = []
    if m.get("server_names"):
        out.append("SNI: " + ",".join(m["server_names"]))
    if m.get("transport_protocol"):
        out.append("Trans: " + m["transport_protocol"])
    if m.get("application_protocols"):
        apps = tuple(m["application_protocols"])
        out.append(_APP_PROTOCOLS.get(apps, "App: " + ",".join(apps)))
    port = f":{m['destination_port']}" if m.get("destination_port") else ""
    if m.get("prefix_ranges"):
        ranges = ",".join(f"{r.get('address_prefix')}/{r.get('prefix_len', 0)}" for r in m["prefix_ranges"])
        out.append(f"Addr: {ranges}{port}")
    elif port:
        out.append(f"Addr: *{port}")
    return "; ".join(out) or "ALL"


def _route_target(route_config: dict) -> str:
    vhosts = route_config.get("virtual_hosts") or []
    if len(vhosts) == 1 and vhosts[0].get("domains") == ["*"] and len(vhosts[0].get("routes") or []) == 1:
        r = vhosts[0]["routes"][0]
        cluster = (r.get("route") or {}).get("cluster")
        if (r.get("match") or {}).get("prefix") == "/" and cluster:
            return cluster if "Cluster" in cluster else f"Cluster: {cluster}"
    parts = []
    for vh in vhosts:
        domains = vh.get("domains") or []
        d = "" if domains == ["*"] else "/".join(domains)
        matches = ", ".join(route_match(r.get("match")) for r in vh.get("routes") or [])
        parts.append(f"{d} {matches}".strip())
    return "Inline Route: " + "; ".join(parts)


def describe_destination(filters: list[dict]) -> str:
    for f in filters or []:
        cfg = f.get("typed_config") or {}
        if f.get("name") == HCM or cfg.get("@type", "").endswith("HttpConnectionManager"):
            if cfg.get("route_config"):
                return _route_target(cfg["route_config"])
            name = (cfg.get("rds") or {}).get("route_config_name")
            return f"Route: {name}" if name else "HTTP"
        if f.get("name") == TCP_PROXY or cfg.get("@type", "").endswith("TcpProxy"):
            cluster = cfg.get("cluster", "")
            if cluster == BLACKHOLE:
                continue
            if not cluster and cfg.get("weighted_clusters"):
                cluster = ",".join(c.get("name", "") for c in cfg["weighted_clusters"].get("clusters") or [])
            return cluster if "Cluster" in cluster else f"Cluster: {cluster}"
    return "Non-HTTP/Non-TCP"


def listener_rows(listeners: list[dict], address: Optional[str] = None, port: Optional[int] = None) -> list[list[str]]:
    rows = [["ADDRESSES", "PORT", "MATCH", "DESTINATION"]]
    chosen = [lst for lst in listeners
              if (address is None or address in _addresses(lst).split(",")) and (port is None or _port(lst) == port)]
    chosen.sort(key=lambda lst: (_port(lst), _address(lst)))
    for lst in chosen:
        matches = [(describe_match(fc.get("filter_chain_match")), describe_destination(fc.get("filters") or []))
                   for fc in _chains(lst)]
        matches.sort(key=lambda m: m[1], reverse=True)
        for match, dest in matches:
            rows.append([_addresses(lst), str(_port(lst)), match, dest])
    return rows


# --- routes ----------------------------------------------------------------------------------


def route_match(m: Optional[dict]) -> str:
    m = m or {}
    out = []
    if m.get("prefix"):
        out.append(f"{m['prefix']}*")
    if m.get("path_separated_prefix"):
        out.append(f"PathPrefix:{m['path_separated_prefix']}")
    if m.get("path"):
        out.append(m["path"])
    if m.get("safe_regex"):
        out.append(f"regex {m['safe_regex'].get('regex', '')}")
    return " ".join(out)


def _domains(domains: list[str]) -> str:
    if len(domains) <= 1:
        return domains[0] if domains else ""
    plain = [d for d in domains if ":" not in d or (d.count(":") > 2 and d.endswith("]"))]
    unique = set(plain)
    keep = [d for d in plain
            if not any(d != d[: -len(sfx)] and d.endswith(sfx) and d[: -len(sfx)] in unique
                       for sfx in (".svc.cluster.local", ".svc"))]
    if len(keep) > 2:
        return f"{', '.join(keep[:2])} + {len(keep) - 2} more..."
    return ", ".join(keep)


def _passthrough(route: dict) -> bool:
    return (route.get("route") or {}).get("cluster") == "PassthroughCluster"


def route_rows(routes: list[dict], name: Optional[str] = None) -> list[list[str]]:
    rows = [["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]]
    for rc in routes:
        if name and rc.get("name") != name:
            continue
        for vh in rc.get("virtual_hosts") or []:
            for r in vh.get("routes") or []:
                if not _passthrough(r):
                    rows.append([rc.get("name", ""), vh.get("name", ""), _domains(vh.get("domains") or []),
                                 route_match(r.get("match")), _management(r.get("metadata"))])
            if not vh.get("routes"):
                rows.append([rc.get("name", ""), vh.get("name", ""), _domains(vh.get("domains") or []), "/*", "404"])
    return rows


# --- endpoints (from /clusters?format=json, as istioctl does) ---------------------------------


HEALTH_STATUSES = ("HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED", "UNKNOWN")


def host_health(host: dict) -> str:
    """HEALTHY, UNHEALTHY (EDS or a failed active health check), DRAINING, TIMEOUT, DEGRADED, UNKNOWN."""
    hs = host.get("health_status") or {}
    if hs.get("failed_active_health_check"):
        return "UNHEALTHY"
    return str(hs.get("eds_health_status", "HEALTHY"))


def endpoint_section(clusters: dict, cluster: Optional[str] = None, status: Optional[str] = None) -> list[dict]:
    """/clusters' cluster_statuses, only clusters whose name holds `cluster`, and with `status` only
    the hosts in that health status (clusters left without hosts are dropped)."""
    out = []
    for c in (clusters or {}).get("cluster_statuses", []) or []:
        if cluster and cluster not in c.get("name", ""):
            continue
        if status:
            hosts = [h for h in c.get("host_statuses") or [] if host_health(h).lower() == status.lower()]
            if not hosts:
                continue
            c = {**c, "host_statuses": hosts}
        out.append(c)
    return out


def endpoint_rows(cluster_statuses: list[dict], status: Optional[str] = None) -> list[list[str]]:
    items = []
    for c in cluster_statuses:
        for h in c.get("host_statuses") or []:
            sa = (h.get("address") or {}).get("socket_address") or {}
            pipe = (h.get("address") or {}).get("pipe") or {}
            addr = sa.get("address") or pipe.get("path") or "unknown"
            port = int(sa.get("port_value", 0) or 0)
            hs = h.get("health_status") or {}
            health = host_health(h)
            if status and health.lower() != status.lower():
                continue
            outlier = "FAILED" if hs.get("failed_outlier_check") else "OK"
            items.append((addr, port, c.get("name", ""), health, outlier))
    items.sort(key=lambda i: (i[0], i[1], i[2]))
    rows = [["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]]
    for addr, port, cluster, health, outlier in items:
        rows.append([f"{addr}:{port}" if port else addr, health, outlier, cluster])
    return rows


# --- secrets ---------------------------------------------------------------------------------


def _decode_pem(pem: str) -> Optional[dict]:
    """Serial and validity of the first certificate of a PEM bundle (stdlib only)."""
    import ssl

    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None or "BEGIN CERTIFICATE" not in pem:
        return None
    first = pem[pem.index("-----BEGIN CERTIFICATE-----"):]
    end = first.find("-----END CERTIFICATE-----")
    if end < 0:
        return None
    first = first[: end + len("-----END CERTIFICATE-----")] + "\n"
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(first)
        info = decode(path)
    except (ssl.SSLError, ValueError, OSError):
        return None
    finally:
        os.unlink(path)

    def iso(text: str) -> str:
        t = _dt.datetime.strptime(text, "%b %d %H:%M:%S %Y %Z")
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    return {"serial": info.get("serialNumber", "").lower(), "not_after": iso(info["notAfter"]),
            "not_before": iso(info["notBefore"])}


def _inline(source: Optional[dict]) -> Optional[str]:
    if not source:
        return None
    if "inline_string" in source:
        return source["inline_string"]
    if "inline_bytes" in source:
        import base64

        try:
            return base64.b64decode(source["inline_bytes"]).decode("ascii", "replace")
        except ValueError:
            return None
    if "filename" in source:
        try:
            with open(source["filename"]) as f:
                return f.read()
        except OSError:
            return None
    return None


def secret_rows(secrets: list[dict], certs: Optional[dict] = None,
                now: Optional[_dt.datetime] = None) -> list[list[str]]:
    """RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    by_path = {}
    for entry in (certs or {}).get("certificates", []) or []:
        for c in (entry.get("cert_chain") or []) + (entry.get("ca_cert") or []):
            if c.get("path"):
                by_path[c["path"]] = {"serial": c.get("serial_number", ""), "not_after": c.get("expiration_time", ""),
                                      "not_before": c.get("valid_from", "")}
    rows = [["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE"]]
    for s in secrets:
        secret = s.get("secret") or {}
        name = s.get("name") or secret.get("name", "")
        status = s.get("_status", "ACTIVE")
        if "tls_certificate" in secret:
            kind, source = "Cert Chain", secret["tls_certificate"].get("certificate_chain")
        elif "validation_context" in secret:
            kind, source = "CA", secret["validation_context"].get("trusted_ca")
        else:
            rows.append([name, "", "WARMING" if status == "WARMING" else status, "false", "", "", ""])
            continue
        info = None
        if source and "filename" in source and source["filename"] in by_path:
            info = by_path[source["filename"]]
        if info is None:
            pem = _inline(source)
            info = _decode_pem(pem) if pem else None
        if not info:
            rows.append([name, kind, status, "false", "", "", ""])
            continue
        na = info.get("not_after") or ""
        nb = info.get("not_before") or ""
        valid = False
        try:
            t_after = _dt.datetime.fromisoformat(na.replace("Z", "+00:00"))
            t_before = _dt.datetime.fromisoformat(nb.replace("Z", "+00:00"))
            valid = t_before <= now <= t_after
        except ValueError:
            pass
        rows.append([name, kind, status, "true" if valid else "false", info.get("serial", ""), na, nb])
    return rows


# --- bootstrap -------------------------------------------------------------------------------


def _host_port(host, port) -> str:
    """host:port, an IPv6 host in brackets ([::1]:15000)."""
    host = str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bootstrap_rows(bootstrap: dict, server_info: Optional[dict] = None) -> list[list[str]]:
    node = bootstrap.get("node") or {}
    meta = node.get("metadata") or {}
    admin = (((bootstrap.get("admin") or {}).get("address") or {}).get("socket_address") or {})
    dyn = bootstrap.get("dynamic_resources") or {}

    def source(cfg: Optional[dict]) -> str:
        if not cfg:
            return "-"
        if "ads" in cfg:
            return "ADS"
        if "path_config_source" in cfg:
            return "file " + cfg["path_config_source"].get("path", "")
        if "path" in cfg:
            return "file " + cfg["path"]
        if "api_config_source" in cfg:
            return cfg["api_config_source"].get("api_type", "API")
        return "?"

    ads = dyn.get("ads_config") or {}
    ads_clusters = ",".join(((g.get("envoy_grpc") or {}).get("cluster_name", "")) for g in ads.get("grpc_services") or [])
    static = bootstrap.get("static_resources") or {}
    rows = [["FIELD", "VALUE"]]
    version = (server_info or {}).get("version") or ""
    rows += [
        ["Envoy Version", version.split("/")[1] if version.count("/") >= 1 else version or "-"],
        ["Istio Version", meta.get("ISTIO_VERSION", "-")],
        ["Node ID", node.get("id", "-")],
        ["Node Cluster", node.get("cluster", "-")],
        ["Admin Address", _host_port(admin.get("address", "-"), admin.get("port_value", "-")) if admin else "-"],
        ["ADS", f"{ads.get('api_type', 'GRPC')} via {ads_clusters}" if ads else "-"],
        ["CDS", source(dyn.get("cds_config"))],
        ["LDS", source(dyn.get("lds_config"))],
        ["Static Clusters", str(len(static.get("clusters") or []))],
        ["Static Listeners", str(len(static.get("listeners") or []))],
        ["Static Secrets", str(len(static.get("secrets") or []))],
    ]
    return rows


def section_data(section: str, dump: dict, clusters: Optional[dict] = None) -> Any:
    """The raw data `-o json|yaml` prints for a section."""
    if section == "clusters":
        return clusters_section(dump)
    if section == "listeners":
        return listeners_section(dump)
    if section == "routes":
        return routes_section(dump)
    if section == "secrets":
        return [{k: v for k, v in s.items() if k != "_status"} for s in secrets_section(dump)]
    if section == "bootstrap":
        return bootstrap_section(dump)
    if section == "endpoints":
        return endpoint_section(clusters or {})
    raise ValueError(section)


# --- the command's query: filters, then the raw section and its table ---------------------------


@dataclass(frozen=True)
class Query:
    """A proxy-config section and its filters (each applies to tables and to -o json|yaml)."""

    section: str
    fqdn: Optional[str] = None
    port: Optional[int] = None
    direction: Optional[str] = None
    subset: Optional[str] = None
    address: Optional[str] = None
    name: Optional[str] = None
    cluster: Optional[str] = None
    status: Optional[str] = None

    def checked(self) -> "Query":
        """The query with --direction lower-cased; InputError (exit 2) for unknown values."""
        from meshctl.errors import InputError

        if self.direction is not None and self.direction.lower() not in ("inbound", "outbound"):
            raise InputError(f"unknown --direction {self.direction!r}", hint="use inbound or outbound")
        if self.status is not None and self.status.upper() not in HEALTH_STATUSES:
            raise InputError(f"unknown --status {self.status!r}", hint=f"use one of: {', '.join(HEALTH_STATUSES)}")
        return replace(self, direction=self.direction.lower() if self.direction else None)

    def result(self, answers: dict) -> "ConfigResult":
        """The section from the admin answers ({"dump", "clusters", "certs", "server_info"})."""
        section = self.section
        dump, clusters = answers.get("dump") or {}, answers.get("clusters") or {}
        raw = section_data(section, dump, clusters)
        if section == "clusters":
            raw = [c for c in raw if len(cluster_rows([c], self.fqdn, self.port, self.direction, self.subset)) > 1]
            rows = cluster_rows(raw)
        elif section == "listeners":
            raw = [lst for lst in raw if len(listener_rows([lst], self.address, self.port)) > 1]
            rows = listener_rows(raw)
        elif section == "routes":
            raw = [r for r in raw if not self.name or r.get("name") == self.name]
            rows = route_rows(raw)
        elif section == "endpoints":
            raw = endpoint_section(clusters, self.cluster, self.status)
            rows = endpoint_rows(raw, self.status)
        elif section == "secrets":
            rows = secret_rows(secrets_section(dump), answers.get("certs"))
        else:
            rows = bootstrap_rows(raw, answers.get("server_info"))
        empty = "No active or warming secrets found." if section == "secrets" and len(rows) == 1 else None
        return ConfigResult(section, raw, rows, empty)


@dataclass
class ConfigResult:
    section: str
    data: Any  # the raw Envoy objects: what -o json|yaml prints
    rows: list  # the table, header first
    empty: Optional[str] = None  # said (on stderr) instead of an empty table


@dataclass
class LogLevels:
    levels: dict  # logger → level

"""The translator: a local mesh model → each proxy's Envoy configuration, as plain dicts (pure).

What istiod does, in meaning, for the local mesh:

- every proxy gets an outbound cluster per service port and per DestinationRule subset, named as
  Istio names them (`outbound|PORT|SUBSET|FQDN`), so proxy-config, proxy-status and the canary
  gates read local proxies exactly as they read Istio's; sidecars get `inbound|PORT||` clusters
  to their own workload;
- a sidecar's outbound HTTP listener (ADDRESS:15001, the application's HTTP_PROXY) routes by
  Host: one virtual host per service port, with the VirtualService's http routes, or a default
  route when no VirtualService names the host; short hosts resolve in the resource's namespace;
- its inbound listener (ADDRESS:15006) terminates mTLS (PeerAuthentication STRICT: a TLS filter
  chain requiring a client certificate only; PERMISSIVE: TLS and plaintext; DISABLE: plaintext),
  enforces AuthorizationPolicy (RBAC, DENY before ALLOW) and forwards to the application;
- ISTIO_MUTUAL is the default between sidecars (auto mTLS): client certificate `default`, CA
  `ROOTCA`, the server's SPIFFE identity checked, SNI `outbound_.PORT_.SUBSET_.FQDN`;
- an ingress gateway gets a listener per Gateway server port with the routes of the
  VirtualServices bound to it.

Configuration reaches Envoy through files (Envoy's path_config_source): `cds.json`, `lds.json`,
`rds_<name>.json` and the SDS secret `sds_default.json` (the root CA is a static secret of the
bootstrap), all relative to the
proxy's own directory (its working directory), so proxies of one namespace share their clusters.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from meshctl.local import authz
from meshctl.local.model import (
    ADMIN_PORT,
    INBOUND_PORT,
    OUTBOUND_PORT,
    ROOT_NAMESPACE,
    GatewayProxy,
    Mesh,
    Port,
    Service,
    Workload,
    gateway_listen_port,
)
from meshctl.resources import Resource
from meshctl import hosts
from meshctl.selectors import label_map, matches
from meshctl.hosts import host_matches

T = "type.googleapis.com/"
CLUSTER_TYPE = T + "envoy.config.cluster.v3.Cluster"
LISTENER_TYPE = T + "envoy.config.listener.v3.Listener"
ROUTE_TYPE = T + "envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE = T + "envoy.extensions.transport_sockets.tls.v3.Secret"
HCM_TYPE = T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = T + "envoy.extensions.filters.http.router.v3.Router"
FAULT_TYPE = T + "envoy.extensions.filters.http.fault.v3.HTTPFault"
TLS_UP_TYPE = T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
TLS_DOWN_TYPE = T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
TLS_INSPECTOR_TYPE = T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
FILE_LOG_TYPE = T + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
HTTP_OPTIONS_TYPE = T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
PREVIOUS_HOSTS_TYPE = T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"

HTTP_PROXY_ROUTE = "http_proxy"
SECRET_CERT = "default"
SECRET_ROOT = "ROOTCA"
MAX = 4294967295
ISTIO_CONFIG = "/apis/networking.istio.io/v1/namespaces/{ns}/{kind}/{name}"

ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%", "direction": None, "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%", "authority": "%REQ(:AUTHORITY)%",
    "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%", "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%", "request_id": "%REQ(X-REQUEST-ID)%", "traceparent": "%REQ(TRACEPARENT)%",
    "trace_id": "%REQ(X-B3-TRACEID)%", "b3": "%REQ(B3)%", "user_agent": "%REQ(USER-AGENT)%",
    "downstream_peer_uri_san": "%DOWNSTREAM_PEER_URI_SAN%", "upstream_peer_uri_san": "%UPSTREAM_PEER_URI_SAN%",
    "bytes_received": "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%",
}

REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER", 307: "TEMPORARY_REDIRECT",
                  308: "PERMANENT_REDIRECT"}
LB_POLICIES = {"ROUND_ROBIN": "ROUND_ROBIN", "LEAST_CONN": "LEAST_REQUEST", "LEAST_REQUEST": "LEAST_REQUEST",
               "RANDOM": "RANDOM", "PASSTHROUGH": "ROUND_ROBIN", "UNSPECIFIED": "LEAST_REQUEST"}


@dataclass
class ProxyConfig:
    """One proxy: its bootstrap and the files its path_config_sources read."""

    name: str
    namespace: str
    kind: str                       # sidecar | gateway
    address: str
    identity: str
    bootstrap: dict
    files: dict                     # file name → DiscoveryResponse-shaped dict
    route_names: list = field(default_factory=list)
    inbound: Optional[str] = None   # ADDRESS:15006 for sidecars
    ingress: list = field(default_factory=list)  # [{"gateway", "port", "address"}]
    app: Optional[dict] = None      # {"argv", "address", "port", "cwd"} for workloads with a command
    workload: Optional[Workload] = None

    @property
    def key(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def admin(self) -> str:
        return f"{self.address}:{ADMIN_PORT}"


# --- small pieces ------------------------------------------------------------------------------

def version_of(resources: list) -> str:
    """A content hash (the render builds dicts in a fixed order, so keys need no sorting)."""
    return hashlib.sha1(json.dumps(resources, separators=(",", ":"), check_circular=False).encode()).hexdigest()[:12]


def discovery(resources: list, version: Optional[str] = None) -> dict:
    return {"version_info": version or version_of(resources), "resources": resources}


def config_source(path: str) -> dict:
    return {"path_config_source": {"path": f"./{path}"}, "resource_api_version": "V3"}


def sds(name: str) -> dict:
    """A secret by name: the proxy's certificate from its SDS file (rotated), the root CA as a
    static secret of the bootstrap (it never changes while the mesh runs; every watched file
    costs Envoy an inotify instance, and a user has 128 by default)."""
    if name == SECRET_ROOT:
        return {"name": name}
    return {"name": name, "sds_config": config_source(f"sds_{name.lower()}.json")}


def duration(value: Any) -> Optional[str]:
    """Istio's duration strings (1s, 500ms, 1m, 1h, 1.5s) → protobuf JSON seconds ("0.500s")."""
    if value is None:
        return None
    text = str(value).strip()
    units = (("ms", 0.001), ("us", 0.000001), ("µs", 0.000001), ("ns", 1e-9), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    total = 0.0
    rest = text
    if not rest:
        return None
    while rest:
        num = ""
        while rest and (rest[0].isdigit() or rest[0] == "."):
            num, rest = num + rest[0], rest[1:]
        unit = next((u for u, _ in units if rest.startswith(u)), None)
        if not num or unit is None:
            return None
        total += float(num) * dict(units)[unit]
        rest = rest[len(unit):]
    return f"{total:.9f}".rstrip("0").rstrip(".") + "s" if total else "0s"


def percent(value: Any) -> dict:
    """A percentage (0-100, fractional) as Envoy's FractionalPercent per million."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = 100.0
    return {"numerator": max(0, min(1_000_000, int(round(v * 10_000)))), "denominator": "MILLION"}


def _pct_of(obj: dict) -> dict:
    if isinstance(obj.get("percentage"), dict) and "value" in obj["percentage"]:
        return percent(obj["percentage"]["value"])
    if obj.get("percent") is not None:
        return percent(obj.get("percent"))
    return percent(100)


def cluster_name(direction: str, port: int, subset: str, fqdn: str) -> str:
    return f"{direction}|{port}|{subset}|{fqdn}"


def sni(port: int, subset: str, fqdn: str) -> str:
    return f"outbound_.{port}_.{subset}_.{fqdn}"


def _address(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


_ACCESS_LOGS: dict[str, list] = {}


def access_log(direction: str) -> list:
    """The JSON access log of one direction (one shared, read-only object per direction)."""
    if direction not in _ACCESS_LOGS:
        fmt = dict(ACCESS_LOG_FORMAT, direction=direction)
        _ACCESS_LOGS[direction] = [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": FILE_LOG_TYPE, "path": "./access.log", "log_format": {"json_format": fmt}}}]
    return _ACCESS_LOGS[direction]


# --- indexes over the resources (built once per render) --------------------------------------

class Index:
    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self.virtual_services = [r for r in mesh.of_kind("VirtualService") if r.group == "networking.istio.io"]
        self.destination_rules = [r for r in mesh.of_kind("DestinationRule") if r.group == "networking.istio.io"]
        self.peer_auth = [r for r in mesh.of_kind("PeerAuthentication") if r.group == "security.istio.io"]
        self.authz = [r for r in mesh.of_kind("AuthorizationPolicy") if r.group == "security.istio.io"]
        self.telemetry = [r for r in mesh.of_kind("Telemetry") if r.group == "telemetry.istio.io"]
        self._dr: dict[str, Optional[Resource]] = {}
        self._mode: dict[str, str] = {}
        self._subsets: dict[int, list] = {}
        self._mesh_vs_hosts = None
        self._dr_hosts = None
        self.uses_source_labels = any(
            isinstance(m, dict) and m.get("sourceLabels")
            for vs in self.virtual_services for h in vs.spec.get("http") or [] if isinstance(h, dict)
            for m in h.get("match") or [])

    def destination_rule(self, svc: Service) -> Optional[Resource]:
        if self._dr_hosts is None:
            exact: dict[str, list] = {}
            wild: list = []
            for dr in self.destination_rules:
                host = dr.spec.get("host")
                if isinstance(host, str):
                    fqdn = hosts.fqdn(host, dr.namespace or "default")
                    if fqdn.startswith("*"):
                        wild.append((fqdn, dr))
                    else:
                        exact.setdefault(fqdn, []).append(dr)
            self._dr_hosts = (exact, wild)
        if svc.fqdn not in self._dr:
            best = None
            exact, wild = self._dr_hosts
            for dr in exact.get(svc.fqdn, []) + [d for h, d in wild if host_matches(h, svc.fqdn)]:
                host = str(dr.spec.get("host"))
                rank = (0 if dr.namespace == svc.namespace else 1 if dr.namespace == ROOT_NAMESPACE else 2,
                        0 if not str(host).startswith("*") else 1)
                if best is None or rank < best[0]:
                    best = (rank, dr)
            self._dr[svc.fqdn] = best[1] if best else None
        return self._dr[svc.fqdn]

    def mtls_mode(self, w: Workload) -> str:
        if w.key not in self._mode:
            self._mode[w.key] = authz.mtls_mode(self.peer_auth, w.namespace, w.labels)
        return self._mode[w.key]

    def access_logging(self, namespace: str, labels: dict) -> bool:
        """Telemetry accessLogging: the most specific policy's `disabled` decides (default on)."""
        best = None
        for t in self.telemetry:
            sel = t.spec.get("selector")
            match = label_map(sel.get("matchLabels")) if isinstance(sel, dict) else {}
            if t.namespace == namespace:
                if match and not matches(labels, match):
                    continue
                level = 2 if match else 1
            elif t.namespace == ROOT_NAMESPACE and not match:
                level = 0
            else:
                continue
            logs = t.spec.get("accessLogging")
            if not isinstance(logs, list) or not logs:
                continue
            if best is None or level > best[0]:
                best = (level, not any(isinstance(x, dict) and x.get("disabled") is True for x in logs))
        return True if best is None else best[1]

    def subsets(self, dr: Optional[Resource]) -> list[dict]:
        if dr is None:
            return []
        hit = self._subsets.get(id(dr))
        if hit is None:
            hit = self._subsets[id(dr)] = [s for s in (dr.spec.get("subsets") or []) if isinstance(s, dict) and s.get("name")]
        return hit

    def virtual_services_for(self, fqdn: str) -> list[Resource]:
        """VirtualServices that serve `fqdn` for sidecars (`gateways` empty or `mesh`)."""
        if self._mesh_vs_hosts is None:
            exact: dict[str, list] = {}
            wild: list = []
            for vs in self.virtual_services:
                gws = [str(g) for g in vs.spec.get("gateways") or []]
                if gws and "mesh" not in gws:
                    continue
                for h in vs.spec.get("hosts") or []:
                    if not isinstance(h, str):
                        continue
                    h = hosts.fqdn(h, vs.namespace or "default")
                    if h.startswith("*"):
                        wild.append((h, vs))
                    else:
                        exact.setdefault(h, []).append(vs)
            self._mesh_vs_hosts = (exact, wild)
        exact, wild = self._mesh_vs_hosts
        out = list(dict.fromkeys(exact.get(fqdn, []) + [vs for h, vs in wild if host_matches(h, fqdn)]))
        return sorted(out, key=lambda r: (r.namespace or "", r.name))


# --- clusters ------------------------------------------------------------------------------------

def _merge_policy(dr: Optional[Resource], subset: Optional[dict], port: int) -> dict:
    """A DestinationRule's traffic policy for one port and subset (field by field, as Istio)."""
    out: dict = {}

    def layer(policy: Any) -> None:
        if not isinstance(policy, dict):
            return
        for k in ("loadBalancer", "connectionPool", "outlierDetection", "tls"):
            if policy.get(k) is not None:
                out[k] = policy[k]
        for pls in policy.get("portLevelSettings") or []:
            if isinstance(pls, dict) and (pls.get("port") or {}).get("number") == port:
                for k in ("loadBalancer", "connectionPool", "outlierDetection", "tls"):
                    if pls.get(k) is not None:
                        out[k] = pls[k]

    if dr is not None:
        layer(dr.spec.get("trafficPolicy"))
    if subset is not None:
        layer(subset.get("trafficPolicy"))
    return out


def _apply_policy(cluster: dict, policy: dict) -> None:
    lb = policy.get("loadBalancer") if isinstance(policy.get("loadBalancer"), dict) else {}
    simple = str(lb.get("simple") or "UNSPECIFIED").upper()
    cluster["lb_policy"] = "RING_HASH" if lb.get("consistentHash") else LB_POLICIES.get(simple, "LEAST_REQUEST")
    pool = policy.get("connectionPool") if isinstance(policy.get("connectionPool"), dict) else {}
    tcp = pool.get("tcp") if isinstance(pool.get("tcp"), dict) else {}
    http = pool.get("http") if isinstance(pool.get("http"), dict) else {}
    thresholds = {"max_connections": MAX, "max_pending_requests": MAX, "max_requests": MAX, "max_retries": MAX}
    for src, key, dst in ((tcp, "maxConnections", "max_connections"), (http, "http1MaxPendingRequests", "max_pending_requests"),
                          (http, "http2MaxRequests", "max_requests"), (http, "maxRetries", "max_retries")):
        if isinstance(src.get(key), int) and src[key] > 0:
            thresholds[dst] = src[key]
    cluster["circuit_breakers"] = {"thresholds": [dict(thresholds, track_remaining=True)]}
    if tcp.get("connectTimeout"):
        cluster["connect_timeout"] = duration(tcp["connectTimeout"]) or cluster["connect_timeout"]
    common = {}
    if isinstance(http.get("maxRequestsPerConnection"), int) and http["maxRequestsPerConnection"] > 0:
        common["max_requests_per_connection"] = http["maxRequestsPerConnection"]
    if http.get("idleTimeout"):
        common["idle_timeout"] = duration(http["idleTimeout"])
    options = {"@type": HTTP_OPTIONS_TYPE, "explicit_http_config": {"http_protocol_options": {}}}
    if common:
        options["common_http_protocol_options"] = common
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options}
    od = policy.get("outlierDetection") if isinstance(policy.get("outlierDetection"), dict) else None
    if od is not None:
        c5 = od.get("consecutive5xxErrors", od.get("consecutiveErrors"))
        out = {"interval": duration(od.get("interval")) or "10s",
               "base_ejection_time": duration(od.get("baseEjectionTime")) or "30s",
               "max_ejection_percent": int(od.get("maxEjectionPercent") or 10)}
        if isinstance(c5, int) and c5 > 0:
            out.update(consecutive_5xx=c5, enforcing_consecutive_5xx=100)
        else:
            out.update(enforcing_consecutive_5xx=0)
        cg = od.get("consecutiveGatewayErrors")
        if isinstance(cg, int) and cg > 0:
            out.update(consecutive_gateway_failure=cg, enforcing_consecutive_gateway_failure=100)
        else:
            out["enforcing_consecutive_gateway_failure"] = 0
        if od.get("splitExternalLocalOriginErrors"):
            out["split_external_local_origin_errors"] = True
        cluster["outlier_detection"] = out
        cluster["common_lb_config"] = {"healthy_panic_threshold": {"value": float(od.get("minHealthPercent") or 0)}}


def _tls_mode(policy: dict) -> str:
    tls = policy.get("tls") if isinstance(policy.get("tls"), dict) else {}
    return str(tls.get("mode") or "").upper()


class Clusters:
    """Outbound clusters, built once per render and shared by every proxy (proxies of all
    namespaces see the same services locally)."""

    def __init__(self, index: Index):
        self.index = index
        self.by_name: dict[str, dict] = {}
        self.order: list[str] = []
        self._built = False

    def build(self) -> list[dict]:
        if not self._built:
            for fqdn in sorted(self.index.mesh.services):
                svc = self.index.mesh.services[fqdn]
                dr = self.index.destination_rule(svc)
                subsets = self.index.subsets(dr)
                for port in svc.ports:
                    self._add(svc, port, dr, None)
                    for s in subsets:
                        self._add(svc, port, dr, s)
            self._built = True
        return [self.by_name[n] for n in self.order]

    def _add(self, svc: Service, port: Port, dr: Optional[Resource], subset: Optional[dict]) -> None:
        sub = str(subset.get("name")) if subset else ""
        name = cluster_name("outbound", port.number, sub, svc.fqdn)
        labels = label_map(subset.get("labels")) if subset else {}
        members = [w for w in svc.workloads if matches(w.labels, labels)]
        policy = _merge_policy(dr, subset, port.number)
        mode = _tls_mode(policy)
        # auto mTLS: to a workload with a sidecar unless the rule says DISABLE or the workload's
        # PeerAuthentication is DISABLE
        mtls = {w.key: (mode == "ISTIO_MUTUAL" or (mode == "" and self.index.mtls_mode(w) != "DISABLE"))
                for w in members}
        endpoints = []
        for w in members:
            ep: dict = {"endpoint": {"address": _address(w.address, INBOUND_PORT)}}
            if mtls[w.key]:
                ep["metadata"] = {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}
            endpoints.append(ep)
        if not subset or not labels:
            for address, ep in svc.static_endpoints:
                if matches(label_map(ep.get("labels")), labels):
                    p = (ep.get("ports") or {}).get(port.name) if isinstance(ep.get("ports"), dict) else None
                    endpoints.append({"endpoint": {"address": _address(address, int(p or port.target_port or port.number))}})
        meta = {"services": [{"host": svc.fqdn, "name": svc.short, "namespace": svc.namespace}]}
        if dr is not None:
            meta["config"] = ISTIO_CONFIG.format(ns=dr.namespace, kind="destination-rule", name=dr.name)
        cluster = {"@type": CLUSTER_TYPE, "name": name, "type": "STATIC", "connect_timeout": "10s",
                   "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}] if endpoints else []},
                   "metadata": {"filter_metadata": {"istio": meta}}}
        _apply_policy(cluster, policy)
        tls_endpoints = sum(1 for v in mtls.values() if v)
        if tls_endpoints or (not endpoints and mode == "ISTIO_MUTUAL"):
            sans = sorted({w.identity for w in members if mtls[w.key]})
            validation = {"validation_context_sds_secret_config": sds(SECRET_ROOT)}
            validation["default_validation_context"] = {"match_typed_subject_alt_names": [
                {"san_type": "URI", "matcher": {"exact": s}} for s in sans]}
            tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": TLS_UP_TYPE, "sni": sni(port.number, sub, svc.fqdn),
                "common_tls_context": {"tls_certificate_sds_secret_configs": [sds(SECRET_CERT)],
                                       "combined_validation_context": validation,
                                       "alpn_protocols": ["http/1.1"]}}}
            if tls_endpoints == len(endpoints):
                cluster["transport_socket"] = tls
            else:  # some endpoints take mTLS and others plaintext: by endpoint, as Istio's tlsMode
                cluster["transport_socket_matches"] = [{"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
                                                        "transport_socket": tls}]
        self.by_name[name] = cluster
        self.order.append(name)


# --- routes ---------------------------------------------------------------------------------------

def _string_match(m: Any) -> Optional[dict]:
    if not isinstance(m, dict):
        return None
    if "exact" in m:
        return {"exact": str(m["exact"])}
    if "prefix" in m:
        return {"prefix": str(m["prefix"])}
    if "regex" in m:
        return {"safe_regex": {"regex": str(m["regex"])}}
    return None


def _route_match(m: dict) -> dict:
    out: dict = {}
    uri = m.get("uri") if isinstance(m.get("uri"), dict) else {}
    if "exact" in uri:
        out["path"] = str(uri["exact"])
    elif "prefix" in uri:
        out["prefix"] = str(uri["prefix"])
    elif "regex" in uri:
        out["safe_regex"] = {"regex": str(uri["regex"])}
    else:
        out["prefix"] = "/"
    if m.get("ignoreUriCase"):
        out["case_sensitive"] = False
    headers = []
    for name, value in (m.get("headers") or {}).items() if isinstance(m.get("headers"), dict) else ():
        sm = _string_match(value)
        headers.append({"name": str(name), "string_match": sm} if sm else {"name": str(name), "present_match": True})
    for name, value in (m.get("withoutHeaders") or {}).items() if isinstance(m.get("withoutHeaders"), dict) else ():
        sm = _string_match(value)
        h = {"name": str(name), "string_match": sm} if sm else {"name": str(name), "present_match": True}
        headers.append(dict(h, invert_match=True))
    for field_name, header in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        sm = _string_match(m.get(field_name))
        if sm:
            headers.append({"name": header, "string_match": sm})
    if headers:
        out["headers"] = headers
    qps = []
    for name, value in (m.get("queryParams") or {}).items() if isinstance(m.get("queryParams"), dict) else ():
        sm = _string_match(value)
        qps.append({"name": str(name), "string_match": sm} if sm else {"name": str(name), "present_match": True})
    if qps:
        out["query_parameters"] = qps
    return out


def _header_ops(ops: Any) -> tuple[list, list]:
    add, remove = [], []
    if not isinstance(ops, dict):
        return add, remove
    for name, value in (ops.get("set") or {}).items() if isinstance(ops.get("set"), dict) else ():
        add.append({"header": {"key": str(name), "value": str(value)}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
    for name, value in (ops.get("add") or {}).items() if isinstance(ops.get("add"), dict) else ():
        add.append({"header": {"key": str(name), "value": str(value)}, "append_action": "APPEND_IF_EXISTS_OR_ADD"})
    for name in ops.get("remove") or [] if isinstance(ops.get("remove"), list) else ():
        remove.append(str(name))
    return add, remove


class Routes:
    """Envoy routes from VirtualServices, for one viewing namespace (short hosts resolve there)."""

    def __init__(self, index: Index, clusters: Clusters):
        self.index = index
        self.clusters = clusters

    def destination_cluster(self, vs: Resource, dest: dict, default_port: int) -> str:
        host = hosts.fqdn(str(dest.get("host") or ""), vs.namespace or "default")
        svc = self.index.mesh.services.get(host)
        port = (dest.get("port") or {}).get("number") if isinstance(dest.get("port"), dict) else None
        if not isinstance(port, int):
            port = svc.ports[0].number if svc is not None and len(svc.ports) == 1 else default_port
        return cluster_name("outbound", port, str(dest.get("subset") or ""), host)

    def action(self, vs: Resource, http: dict, port: int, match: Optional[dict]) -> dict:
        """The route (minus match) of one VirtualService http entry."""
        route: dict = {}
        meta = {"filter_metadata": {"istio": {"config": ISTIO_CONFIG.format(
            ns=vs.namespace, kind="virtual-service", name=vs.name)}}}
        if http.get("name"):
            route["name"] = str(http["name"])
        route["metadata"] = meta
        if isinstance(http.get("directResponse"), dict):
            dr = http["directResponse"]
            route["direct_response"] = {"status": int(dr.get("status") or 200)}
            body = dr.get("body") if isinstance(dr.get("body"), dict) else {}
            if body.get("string") is not None:
                route["direct_response"]["body"] = {"inline_string": str(body["string"])}
        elif isinstance(http.get("redirect"), dict):
            rd = http["redirect"]
            redirect: dict = {}
            if rd.get("uri"):
                redirect["path_redirect"] = str(rd["uri"])
            if rd.get("authority"):
                redirect["host_redirect"] = str(rd["authority"])
            if isinstance(rd.get("port"), int):
                redirect["port_redirect"] = rd["port"]
            if rd.get("scheme"):
                redirect["scheme_redirect"] = str(rd["scheme"])
            redirect["response_code"] = REDIRECT_CODES.get(int(rd.get("redirectCode") or 301), "MOVED_PERMANENTLY")
            route["redirect"] = redirect
        else:
            dests = [d for d in http.get("route") or [] if isinstance(d, dict) and isinstance(d.get("destination"), dict)]
            action: dict = {}
            weighted = [(self.destination_cluster(vs, d["destination"], port), int(d.get("weight") or 0), d)
                        for d in dests]
            if len(weighted) > 1:
                kept = [w for w in weighted if w[1] > 0] or weighted[:1]
                clusters = []
                for name, weight, d in kept:
                    c = {"name": name, "weight": weight if weight > 0 else 100}
                    add, remove = _header_ops((d.get("headers") or {}).get("request") if isinstance(d.get("headers"), dict) else None)
                    if add:
                        c["request_headers_to_add"] = add
                    if remove:
                        c["request_headers_to_remove"] = remove
                    clusters.append(c)
                action["weighted_clusters"] = {"clusters": clusters}
            elif weighted:
                action["cluster"] = weighted[0][0]
            else:
                action["cluster"] = "BlackHoleCluster"
            action["timeout"] = duration(http.get("timeout")) or "0s"
            retries = http.get("retries") if isinstance(http.get("retries"), dict) else None
            policy = _retry_policy(retries)
            if policy is not None:
                action["retry_policy"] = policy
            rw = http.get("rewrite") if isinstance(http.get("rewrite"), dict) else {}
            if rw.get("uri") is not None:
                uri = (match or {}).get("uri") if isinstance((match or {}).get("uri"), dict) else {}
                if "regex" in uri:
                    action["regex_rewrite"] = {"pattern": {"regex": str(uri["regex"])}, "substitution": str(rw["uri"])}
                else:
                    action["prefix_rewrite"] = str(rw["uri"])
            if isinstance(rw.get("uriRegexRewrite"), dict):
                rr = rw["uriRegexRewrite"]
                action["regex_rewrite"] = {"pattern": {"regex": str(rr.get("match") or "")},
                                           "substitution": str(rr.get("rewrite") or "")}
            if rw.get("authority"):
                action["host_rewrite_literal"] = str(rw["authority"])
            mirrors = []
            if isinstance(http.get("mirror"), dict):
                mp = http.get("mirrorPercentage") if isinstance(http.get("mirrorPercentage"), dict) else None
                mirrors.append((http["mirror"], mp.get("value") if mp else (http.get("mirrorPercent") if http.get("mirrorPercent") is not None else 100)))
            for m in http.get("mirrors") or []:
                if isinstance(m, dict) and isinstance(m.get("destination"), dict):
                    pct = (m.get("percentage") or {}).get("value", 100) if isinstance(m.get("percentage"), dict) else 100
                    mirrors.append((m["destination"], pct))
            if mirrors:
                action["request_mirror_policies"] = [
                    {"cluster": self.destination_cluster(vs, d, port), "runtime_fraction": {"default_value": percent(p)}}
                    for d, p in mirrors]
            route["route"] = action
        fault = http.get("fault") if isinstance(http.get("fault"), dict) else None
        if fault:
            cfg: dict = {"@type": FAULT_TYPE}
            delay = fault.get("delay") if isinstance(fault.get("delay"), dict) else None
            if delay and delay.get("fixedDelay"):
                cfg["delay"] = {"fixed_delay": duration(delay["fixedDelay"]) or "0s", "percentage": _pct_of(delay)}
            abort = fault.get("abort") if isinstance(fault.get("abort"), dict) else None
            if abort and abort.get("httpStatus") is not None:
                cfg["abort"] = {"http_status": int(abort["httpStatus"]), "percentage": _pct_of(abort)}
            if len(cfg) > 1:
                route["typed_per_filter_config"] = {"envoy.filters.http.fault": cfg}
        headers = http.get("headers") if isinstance(http.get("headers"), dict) else {}
        add, remove = _header_ops(headers.get("request"))
        if add:
            route["request_headers_to_add"] = add
        if remove:
            route["request_headers_to_remove"] = remove
        add, remove = _header_ops(headers.get("response"))
        if add:
            route["response_headers_to_add"] = add
        if remove:
            route["response_headers_to_remove"] = remove
        return route

    def for_virtual_service(self, vs: Resource, port: int, namespace: str, labels: Optional[dict],
                            gateway: Optional[str] = None) -> list[dict]:
        out = []
        for i, http in enumerate(vs.spec.get("http") or []):
            if not isinstance(http, dict):
                continue
            matches = [m for m in http.get("match") or [] if isinstance(m, dict)] or [None]
            for m in matches:
                if m is not None:
                    if isinstance(m.get("port"), int) and m["port"] != port:
                        continue
                    if m.get("sourceLabels") and (labels is None or not matches(labels, label_map(m["sourceLabels"]))):
                        continue
                    if m.get("sourceNamespace") and str(m["sourceNamespace"]) != namespace:
                        continue
                    gws = [str(g) for g in m.get("gateways") or []]
                    if gws and (gateway or "mesh") not in [_gateway_ref(vs, g) for g in gws]:
                        continue
                route = self.action(vs, http, port, m)
                route = {"match": _route_match(m or {}), **route}
                out.append(route)
        return out


def _gateway_ref(vs: Resource, name: str) -> str:
    if name == "mesh" or "/" in name:
        return name
    return f"{vs.namespace or 'default'}/{name}"


def _retry_policy(retries: Optional[dict]) -> Optional[dict]:
    base = {"retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                      "typed_config": {"@type": PREVIOUS_HOSTS_TYPE}}],
            "host_selection_retry_max_attempts": "5"}
    if retries is None:  # Istio's default: 2 retries on connection failures and 503
        return dict(base, retry_on="connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                    num_retries=2, retriable_status_codes=[503])
    attempts = retries.get("attempts")
    if not isinstance(attempts, int) or attempts <= 0:
        return None
    on = [x.strip() for x in str(retries.get("retryOn") or "connect-failure,refused-stream,unavailable,cancelled,503").split(",") if x.strip()]
    codes = [int(x) for x in on if x.isdigit()]
    kinds = [x for x in on if not x.isdigit()]
    if codes and "retriable-status-codes" not in kinds:
        kinds.append("retriable-status-codes")
    policy = dict(base, retry_on=",".join(kinds), num_retries=attempts)
    if codes:
        policy["retriable_status_codes"] = codes
    if retries.get("perTryTimeout"):
        policy["per_try_timeout"] = duration(retries["perTryTimeout"])
    return policy


def _domains(svc: Service, port: Port, namespace: str) -> list[str]:
    name, ns = svc.fqdn.split(".")[0], svc.namespace
    names = [svc.fqdn]
    if svc.fqdn.endswith(".svc.cluster.local"):
        names += [f"{name}.{ns}.svc", f"{name}.{ns}"]
        if namespace == ns:
            names.append(name)
    bare = port.number == 80 or len([p for p in svc.ports if p.http]) == 1
    out = []
    for n in names:
        out.append(f"{n}:{port.number}")
        if bare:
            out.append(n)
    return out


def _default_route(svc: Service, port: Port) -> dict:
    return {"name": "default", "match": {"prefix": "/"},
            "route": {"cluster": cluster_name("outbound", port.number, "", svc.fqdn), "timeout": "0s",
                      "retry_policy": _retry_policy(None)}}


# --- listeners -------------------------------------------------------------------------------

def _hcm(stat_prefix: str, filters: list, direction: str, logs: bool, rds: Optional[str] = None,
         route_config: Optional[dict] = None, extra: Optional[dict] = None) -> dict:
    hcm = {"@type": HCM_TYPE, "stat_prefix": stat_prefix,
           "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}],
           "normalize_path": True, "merge_slashes": True, "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
           "generate_request_id": True, "preserve_external_request_id": True,
           "use_remote_address": False, "stream_idle_timeout": "0s"}
    if logs:
        hcm["access_log"] = access_log(direction)
    if rds:
        hcm["rds"] = {"route_config_name": rds, "config_source": config_source(f"rds_{rds}.json")}
    else:
        hcm["route_config"] = route_config
    if extra:
        hcm.update(extra)
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}


FAULT_FILTER = {"name": "envoy.filters.http.fault", "typed_config": {"@type": FAULT_TYPE}}


RBAC_PER_ROUTE_TYPE = T + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
# Both RBAC filters are always in the chain, enforcing nothing by themselves; each virtual host
# carries the policies (typed_per_filter_config), so a policy change is a route update that
# applies to open connections at once instead of a listener replacement that drains them.
RBAC_FILTERS = [{"name": f"envoy.filters.http.rbac.{a}", "typed_config": {"@type": authz.RBAC_TYPE}}
                for a in ("deny", "allow")]


def rbac_per_route(policies: list[Resource], namespace: str, labels: dict) -> dict:
    out = {}
    for f in authz.rbac_filters(policies, namespace, labels):
        out[f["name"]] = {"@type": RBAC_PER_ROUTE_TYPE, "rbac": {k: v for k, v in f["typed_config"].items() if k != "@type"}}
    return out


def _inbound(index: Index, w: Workload, ports: list[tuple[Port, int, list[str]]], logs: bool) -> tuple[dict, list]:
    """ADDRESS:15006: TLS (and/or plaintext, by PeerAuthentication) → RBAC → inbound|PORT||.
    Returns the listener and its route configurations (RDS)."""
    mode = index.mtls_mode(w)
    per_route = rbac_per_route(index.authz, w.namespace, w.labels)
    routes: dict[str, dict] = {}

    def route_config(only: Optional[int]) -> str:
        name = f"inbound-{only or 'http'}"
        if name in routes:
            return name
        vhosts = []
        chosen = [p for p in ports if only is None or p[0].number == only]
        for port, target, _ in chosen:
            domains = ["*"] if only is not None else [f"*:{port.number}"]
            vhosts.append({"name": f"inbound|http|{port.number}", "domains": domains, "routes": [
                {"name": "default", "match": {"prefix": "/"},
                 "route": {"cluster": cluster_name("inbound", port.number, "", ""), "timeout": "0s"},
                 "decorator": {"operation": f"{w.name}.{w.namespace}:{port.number}/*"}}]})
        if only is None and ports:
            first = ports[0][0]
            vhosts.append({"name": "inbound|http|default", "domains": ["*"], "routes": [
                {"name": "default", "match": {"prefix": "/"},
                 "route": {"cluster": cluster_name("inbound", first.number, "", ""), "timeout": "0s"}}]})
        if per_route:
            for vh in vhosts:
                vh["typed_per_filter_config"] = per_route
        routes[name] = {"@type": ROUTE_TYPE, "name": name, "virtual_hosts": vhosts, "validate_clusters": False}
        return name

    xfcc = {"forward_client_cert_details": "APPEND_FORWARD", "set_current_client_cert_details": {"uri": True}}
    chains = []
    if mode in ("STRICT", "PERMISSIVE"):
        tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": TLS_DOWN_TYPE, "require_client_certificate": True,
            "common_tls_context": {"tls_certificate_sds_secret_configs": [sds(SECRET_CERT)],
                                   "validation_context_sds_secret_config": sds(SECRET_ROOT),
                                   "alpn_protocols": ["http/1.1"]}}}
        if len(ports) <= 1:  # one port: the Host-based route configuration serves every chain
            chains.append({"name": "inbound|tls", "filter_chain_match": {"transport_protocol": "tls"},
                           "transport_socket": tls,
                           "filters": [_hcm("inbound_0.0.0.0_15006", list(RBAC_FILTERS), "inbound", logs,
                                            rds=route_config(None), extra=xfcc)]})
        else:
            for port, _, snis in ports:
                chains.append({"name": f"inbound|tls|{port.number}",
                               "filter_chain_match": {"transport_protocol": "tls", "server_names": snis},
                               "transport_socket": tls,
                               "filters": [_hcm(f"inbound_0.0.0.0_{port.number}", list(RBAC_FILTERS), "inbound", logs,
                                                rds=route_config(port.number), extra=xfcc)]})
    if mode in ("PERMISSIVE", "DISABLE"):
        chains.append({"name": "inbound|plaintext",
                       "filter_chain_match": {"transport_protocol": "raw_buffer"} if mode == "PERMISSIVE" else {},
                       "filters": [_hcm("inbound_0.0.0.0_15006", list(RBAC_FILTERS), "inbound", logs,
                                        rds=route_config(None))]})
    listener = {"@type": LISTENER_TYPE, "name": "virtualInbound", "address": _address(w.address, INBOUND_PORT),
                "filter_chains": chains, "traffic_direction": "INBOUND"}
    if mode != "DISABLE":
        listener["listener_filters"] = [{"name": "envoy.filters.listener.tls_inspector",
                                         "typed_config": {"@type": TLS_INSPECTOR_TYPE}}]
    return listener, list(routes.values())


def _outbound_listener(address: str, logs: bool) -> dict:
    return {"@type": LISTENER_TYPE, "name": "virtualOutbound", "address": _address(address, OUTBOUND_PORT),
            "traffic_direction": "OUTBOUND",
            "filter_chains": [{"filters": [_hcm(f"outbound_0.0.0.0_{OUTBOUND_PORT}", [FAULT_FILTER], "outbound", logs,
                                                rds=HTTP_PROXY_ROUTE)]}]}


def _bootstrap(kind: str, key: str, namespace: str, address: str, metadata: dict) -> dict:
    return {
        "node": {"id": f"{'router' if kind == 'gateway' else 'sidecar'}~{address}~{key}~{namespace}.svc.cluster.local",
                 "cluster": key, "metadata": metadata},
        "admin": {"address": _address(address, ADMIN_PORT)},
        "dynamic_resources": {"cds_config": config_source("cds.json"), "lds_config": config_source("lds.json")},
        "stats_flush_interval": "1s",
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {
            "overload.global_downstream_max_connections": 50000,
            "re2.max_program_size.error_level": 32768}}]},
    }


# --- the render ------------------------------------------------------------------------------------

class Renderer:
    """Render every proxy of a mesh. Shared parts (clusters, the outbound routes of a namespace)
    are built once and referenced by every proxy that has them."""

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self.index = Index(mesh)
        self.clusters = Clusters(self.index)
        self.routes = Routes(self.index, self.clusters)
        self._outbound_routes: dict = {}
        self._cds: Optional[list] = None
        self._cds_version = ""
        self.services_of: dict[str, list[Service]] = {}  # workload key → the services it serves
        for svc in mesh.services.values():
            for w in svc.workloads:
                self.services_of.setdefault(w.key, []).append(svc)

    def cds(self) -> list[dict]:
        if self._cds is None:
            self._cds = self.clusters.build()
            self._cds_version = version_of(self._cds)  # hashed once, not once per proxy
        return self._cds

    def cds_file(self, extra: list) -> dict:
        shared = self.cds()
        if not extra:
            return discovery(shared, self._cds_version)
        version = hashlib.sha1((self._cds_version + version_of(extra)).encode()).hexdigest()[:12]
        return discovery(shared + extra, version)

    def outbound_routes(self, namespace: str, labels: Optional[dict]) -> dict:
        key = (namespace, tuple(sorted(labels.items())) if (labels and self.index.uses_source_labels) else None)
        cached = self._outbound_routes.get(key)
        if cached is not None:
            return cached  # (route configuration, its file)
        vhosts = []
        for fqdn in sorted(self.mesh.services):
            svc = self.mesh.services[fqdn]
            vss = self.index.virtual_services_for(fqdn)
            for port in svc.ports:
                if not port.http:
                    continue
                routes = []
                for vs in vss[:1]:  # Istio takes one VirtualService per host for sidecars
                    routes = self.routes.for_virtual_service(vs, port.number, namespace, labels)
                if not vss:
                    routes = [_default_route(svc, port)]
                vhosts.append({"name": f"{fqdn}:{port.number}", "domains": _domains(svc, port, namespace),
                               "routes": routes})
        vhosts.append({"name": "block_all", "domains": ["*"], "routes": [
            {"name": "block_all", "match": {"prefix": "/"}, "direct_response": {
                "status": 502, "body": {"inline_string": "no service in the local mesh answers to this host\n"}}}]})
        rc = {"@type": ROUTE_TYPE, "name": HTTP_PROXY_ROUTE, "virtual_hosts": vhosts, "validate_clusters": False}
        self._outbound_routes[key] = (rc, discovery([rc]))
        return self._outbound_routes[key]

    def sidecar(self, w: Workload) -> ProxyConfig:
        logs = self.index.access_logging(w.namespace, w.labels)
        inbound_ports: dict[int, tuple[Port, int, list[str]]] = {}
        for svc in self.services_of.get(w.key, ()):
            dr = self.index.destination_rule(svc)
            subsets = self.index.subsets(dr)
            mine = [""] + [str(s["name"]) for s in subsets if matches(w.labels, label_map(s.get("labels")))]
            for port in svc.ports:
                if not port.http:
                    continue
                entry = inbound_ports.setdefault(port.number, (port, w.port_for(port), []))
                entry[2].extend(sni(port.number, sub, svc.fqdn) for sub in mine)
        if not inbound_ports:
            for name, number in sorted(w.ports.items()):
                inbound_ports[number] = (Port(number, name, "HTTP"), number, [])
        ports = [inbound_ports[n] for n in sorted(inbound_ports)]
        inbound_clusters = []
        for port, target, _ in ports:
            name = cluster_name("inbound", port.number, "", "")
            inbound_clusters.append({"@type": CLUSTER_TYPE, "name": name, "type": "STATIC", "connect_timeout": "10s",
                                     "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                                         {"endpoint": {"address": _address(w.address, target)}}]}]},
                                     "circuit_breakers": {"thresholds": [{"max_connections": MAX, "max_pending_requests": MAX,
                                                                         "max_requests": MAX, "max_retries": MAX}]}})
        rc, rc_file = self.outbound_routes(w.namespace, w.labels)
        listeners, route_configs = [], [rc]
        if ports:
            inbound, inbound_routes = _inbound(self.index, w, ports, logs)
            listeners.append(inbound)
            route_configs += inbound_routes
        listeners.append(_outbound_listener(w.address, logs))
        files = {"cds.json": self.cds_file(inbound_clusters), "lds.json": discovery(listeners)}
        for r in route_configs:
            files[f"rds_{r['name']}.json"] = rc_file if r is rc else discovery([r])
        meta = {"NAMESPACE": w.namespace, "NAME": w.name, "LABELS": dict(w.labels), "SERVICE_ACCOUNT": w.service_account,
                "ISTIO_VERSION": "meshctl-local", "WORKLOAD_NAME": w.name, "INSTANCE_IPS": w.address}
        app = None
        if w.command:
            first = ports[0][1] if ports else None
            app = {"argv": list(w.command), "address": w.address, "port": first,
                   "source": w.resource.source if w.resource is not None else None}
        return ProxyConfig(w.name, w.namespace, "sidecar", w.address, w.identity,
                           _bootstrap("sidecar", w.key, w.namespace, w.address, meta), files, [r["name"] for r in route_configs],
                           inbound=f"{w.address}:{INBOUND_PORT}" if ports else None, app=app, workload=w)

    def gateway(self, g: GatewayProxy) -> ProxyConfig:
        logs = self.index.access_logging(ROOT_NAMESPACE, g.labels)
        per_route = rbac_per_route(self.index.authz, ROOT_NAMESPACE, g.labels)
        by_port: dict[int, list[dict]] = {}
        for s in g.servers:
            port = s.get("port") if isinstance(s.get("port"), dict) else {}
            proto = str(port.get("protocol") or "HTTP").upper()
            if not isinstance(port.get("number"), int) or proto not in ("HTTP", "HTTP2", "GRPC"):
                if isinstance(port.get("number"), int):
                    self.mesh.warnings.append(
                        f"Gateway {g.namespace}/{g.name}: server port {port.get('number')} ({proto}) is not served "
                        "locally (HTTP servers only)")
                continue
            by_port.setdefault(port["number"], []).append(s)
        gw_ref = f"{g.namespace}/{g.name}"
        listeners, route_files, names, ingress = [], {}, [], []
        for number in sorted(by_port):
            servers = by_port[number]
            server_hosts = [str(h) for s in servers for h in s.get("hosts") or []]
            vhosts: dict[str, list] = {}
            for vs in self.index.virtual_services:
                gws = [_gateway_ref(vs, str(x)) for x in vs.spec.get("gateways") or []]
                if gw_ref not in gws:
                    continue
                for host in vs.spec.get("hosts") or []:
                    host = str(host)
                    if not any(_server_host_matches(sh, vs.namespace or "default", host) for sh in server_hosts):
                        continue
                    vhosts.setdefault(host, []).extend(
                        self.routes.for_virtual_service(vs, number, ROOT_NAMESPACE, g.labels, gateway=gw_ref))
            rc_name = f"http.{number}"
            rc = {"@type": ROUTE_TYPE, "name": rc_name, "validate_clusters": False, "virtual_hosts": [
                {"name": f"{h}:{number}", "domains": ["*"] if h == "*" else [h, f"{h}:*"], "routes": routes,
                 **({"typed_per_filter_config": per_route} if per_route else {})}
                for h, routes in sorted(vhosts.items())]}
            route_files[f"rds_{rc_name}.json"] = discovery([rc])
            names.append(rc_name)
            listen = gateway_listen_port(number)
            listeners.append({"@type": LISTENER_TYPE, "name": f"0.0.0.0_{number}", "address": _address(g.address, listen),
                              "traffic_direction": "OUTBOUND",
                              "filter_chains": [{"filters": [_hcm(f"outbound_0.0.0.0_{number}", [FAULT_FILTER] + RBAC_FILTERS,
                                                                  "gateway", logs, rds=rc_name,
                                                                  extra={"use_remote_address": True})]}]})
            ingress.append({"gateway": gw_ref, "port": number, "address": f"{g.address}:{listen}"})
        files = {"cds.json": self.cds_file([]), "lds.json": discovery(listeners), **route_files}
        meta = {"NAMESPACE": ROOT_NAMESPACE, "NAME": g.name, "LABELS": dict(g.labels),
                "SERVICE_ACCOUNT": "istio-ingressgateway-service-account", "ISTIO_VERSION": "meshctl-local",
                "INSTANCE_IPS": g.address}
        return ProxyConfig(g.name, g.namespace, "gateway", g.address, g.identity,
                           _bootstrap("gateway", g.key, g.namespace, g.address, meta), files, names, ingress=ingress)

    def render(self) -> dict[str, ProxyConfig]:
        out = {}
        for key in sorted(self.mesh.workloads):
            out[key] = self.sidecar(self.mesh.workloads[key])
        for key in sorted(self.mesh.gateways):
            if key in out:
                from meshctl.errors import InputError

                g = self.mesh.gateways[key]
                raise InputError(f"Gateway {g.namespace}/{g.name} and WorkloadEntry {g.namespace}/{g.name} would "
                                 "run proxies of the same name", hint="rename one of them")
            out[key] = self.gateway(self.mesh.gateways[key])
        return out


def _server_host_matches(server_host: str, vs_namespace: str, host: str) -> bool:
    ns, sep, h = server_host.partition("/")
    if not sep:
        ns, h = "*", server_host
    if ns not in ("*", ".", vs_namespace) and not (ns == "." and vs_namespace):
        return False
    return host_matches(h, host)


def render(mesh: Mesh) -> dict[str, ProxyConfig]:
    """Every proxy's configuration (sidecars by workload key NAME.NAMESPACE, then gateways).
    The cyclic garbage collector is paused meanwhile: rendering makes many small dicts and no
    cycles, and full collections over them cost more than the render itself."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return Renderer(mesh).render()
    finally:
        if enabled:
            gc.enable()


# --- validation form ------------------------------------------------------------------------------

def validation_bootstrap(cfg: ProxyConfig, secrets: dict[str, dict]) -> dict:
    """The proxy's whole configuration as one static bootstrap for `envoy --mode validate`:
    the dynamic files' resources inline, RDS replaced by its route configuration, SDS by static
    secrets (`secrets`: name → Secret resource)."""
    routes = {}
    for name in cfg.route_names:
        for r in cfg.files.get(f"rds_{name}.json", {}).get("resources", []):
            routes[r["name"]] = {k: v for k, v in r.items() if k != "@type"}

    def strip(obj):
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if k == "sds_config":
                    continue
                if k == "rds" and isinstance(v, dict) and "route_config_name" in v:
                    out["route_config"] = routes.get(v["route_config_name"], {"name": v["route_config_name"]})
                    continue
                out[k] = strip(v)
            return out
        if isinstance(obj, list):
            return [strip(x) for x in obj]
        return obj

    boot = copy.deepcopy({k: v for k, v in cfg.bootstrap.items() if k != "dynamic_resources"})
    boot["admin"] = {"address": _address("127.0.0.1", 0)}
    clusters = [strip({k: v for k, v in c.items() if k != "@type"}) for c in cfg.files["cds.json"]["resources"]]
    listeners = [strip({k: v for k, v in lst.items() if k != "@type"}) for lst in cfg.files["lds.json"]["resources"]]
    boot["static_resources"] = {"clusters": clusters, "listeners": listeners,
                                "secrets": [{k: v for k, v in s.items() if k != "@type"} for s in secrets.values()]}
    return boot

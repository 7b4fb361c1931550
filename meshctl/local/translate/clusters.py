"""Clusters: each service port and DestinationRule subset as Istio's `outbound|PORT|SUBSET|FQDN`
cluster (endpoints, the rule's traffic policy, auto mTLS to endpoints with a sidecar), and a
sidecar's `inbound|PORT||` clusters to its own workload."""
from __future__ import annotations

from typing import Any, Optional

from meshctl.local.model import INBOUND_PORT, Port, Service, Workload
from meshctl.local.translate.index import Index
from meshctl.local.translate.xds import (
    CLUSTER_TYPE,
    HTTP_OPTIONS_TYPE,
    ISTIO_CONFIG,
    SECRET_CERT,
    SECRET_ROOT,
    TLS_UP_TYPE,
    address,
    cluster_name,
    duration,
    no_limits,
    sds,
    sni,
)
from meshctl.resources import Resource, as_dict
from meshctl.selectors import label_map, matches

LB_POLICIES = {"ROUND_ROBIN": "ROUND_ROBIN", "LEAST_CONN": "LEAST_REQUEST", "LEAST_REQUEST": "LEAST_REQUEST",
               "RANDOM": "RANDOM", "PASSTHROUGH": "ROUND_ROBIN", "UNSPECIFIED": "LEAST_REQUEST"}


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
    """A merged traffic policy on a cluster: load balancer, connection pool (circuit breakers,
    timeouts, requests per connection) and outlier detection."""
    lb = as_dict(policy.get("loadBalancer"))
    simple = str(lb.get("simple") or "UNSPECIFIED").upper()
    cluster["lb_policy"] = "RING_HASH" if lb.get("consistentHash") else LB_POLICIES.get(simple, "LEAST_REQUEST")
    pool = as_dict(policy.get("connectionPool"))
    tcp = as_dict(pool.get("tcp"))
    http = as_dict(pool.get("http"))
    thresholds = no_limits()
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
    od = policy.get("outlierDetection")
    if isinstance(od, dict):
        cluster["outlier_detection"] = _outlier_detection(od)
        cluster["common_lb_config"] = {"healthy_panic_threshold": {"value": float(od.get("minHealthPercent") or 0)}}


def _outlier_detection(od: dict) -> dict:
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
    return out


def _tls_mode(policy: dict) -> str:
    return str(as_dict(policy.get("tls")).get("mode") or "").upper()


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
            ep: dict = {"endpoint": {"address": address(w.address, INBOUND_PORT)}}
            if mtls[w.key]:
                ep["metadata"] = {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}
            endpoints.append(ep)
        if not subset or not labels:
            for addr, ep in svc.static_endpoints:
                if matches(label_map(ep.get("labels")), labels):
                    p = (ep.get("ports") or {}).get(port.name) if isinstance(ep.get("ports"), dict) else None
                    endpoints.append({"endpoint": {"address": address(addr, int(p or port.target_port or port.number))}})
        meta = {"services": [{"host": svc.fqdn, "name": svc.short, "namespace": svc.namespace}]}
        if dr is not None:
            meta["config"] = ISTIO_CONFIG.format(ns=dr.namespace, kind="destination-rule", name=dr.name)
        cluster = {"@type": CLUSTER_TYPE, "name": name, "type": "STATIC", "connect_timeout": "10s",
                   "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}] if endpoints else []},
                   "metadata": {"filter_metadata": {"istio": meta}}}
        _apply_policy(cluster, policy)
        tls_endpoints = sum(1 for v in mtls.values() if v)
        if tls_endpoints or (not endpoints and mode == "ISTIO_MUTUAL"):
            tls = _istio_mutual(sni(port.number, sub, svc.fqdn), sorted({w.identity for w in members if mtls[w.key]}))
            if tls_endpoints == len(endpoints):
                cluster["transport_socket"] = tls
            else:  # some endpoints take mTLS and others plaintext: by endpoint, as Istio's tlsMode
                cluster["transport_socket_matches"] = [{"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
                                                        "transport_socket": tls}]
        self.by_name[name] = cluster
        self.order.append(name)


def _istio_mutual(server_name: str, sans: list[str]) -> dict:
    """ISTIO_MUTUAL: the proxy's certificate, the mesh root, the server's SPIFFE identities."""
    validation = {"validation_context_sds_secret_config": sds(SECRET_ROOT)}
    validation["default_validation_context"] = {"match_typed_subject_alt_names": [
        {"san_type": "URI", "matcher": {"exact": s}} for s in sans]}
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": TLS_UP_TYPE, "sni": server_name,
        "common_tls_context": {"tls_certificate_sds_secret_configs": [sds(SECRET_CERT)],
                               "combined_validation_context": validation,
                               "alpn_protocols": ["http/1.1"]}}}


def inbound_cluster(w: Workload, port: Port, target: int) -> dict:
    """`inbound|PORT||`: a sidecar to its own workload's port."""
    name = cluster_name("inbound", port.number, "", "")
    return {"@type": CLUSTER_TYPE, "name": name, "type": "STATIC", "connect_timeout": "10s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": address(w.address, target)}}]}]},
            "circuit_breakers": {"thresholds": [no_limits()]}}

"""Listeners: a sidecar's inbound (ADDRESS:15006: mTLS and/or plaintext by PeerAuthentication,
RBAC, its own workload) and outbound (ADDRESS:15001, the application's HTTP_PROXY, routing by
Host) listeners, and a gateway's listener per server port; the HTTP connection manager they
share, with its access log and route configuration by RDS file."""
from __future__ import annotations

from typing import Optional

from meshctl.local.model import INBOUND_PORT, OUTBOUND_PORT, Port, Workload
from meshctl.local.translate import authz
from meshctl.local.translate.index import Index
from meshctl.local.translate.xds import (
    FAULT_TYPE,
    HCM_TYPE,
    HTTP_PROXY_ROUTE,
    LISTENER_TYPE,
    RBAC_PER_ROUTE_TYPE,
    RBAC_TYPE,
    ROUTE_TYPE,
    ROUTER_TYPE,
    SECRET_CERT,
    SECRET_ROOT,
    TLS_DOWN_TYPE,
    TLS_INSPECTOR_TYPE,
    access_log,
    address,
    cluster_name,
    config_source,
    sds,
)
from meshctl.resources import Resource

FAULT_FILTER = {"name": "envoy.filters.http.fault", "typed_config": {"@type": FAULT_TYPE}}
# Both RBAC filters are always in the chain, enforcing nothing by themselves; each virtual host
# carries the policies (typed_per_filter_config), so a policy change is a route update that
# applies to open connections at once instead of a listener replacement that drains them.
RBAC_FILTERS = [{"name": f"envoy.filters.http.rbac.{a}", "typed_config": {"@type": RBAC_TYPE}}
                for a in ("deny", "allow")]
XFCC = {"forward_client_cert_details": "APPEND_FORWARD", "set_current_client_cert_details": {"uri": True}}

InboundPort = tuple[Port, int, list]  # (service port, the workload's port, the SNIs it answers)


def hcm(stat_prefix: str, filters: list, direction: str, logs: bool, rds: Optional[str] = None,
        route_config: Optional[dict] = None, extra: Optional[dict] = None) -> dict:
    """The HTTP connection manager: `filters` then the router, the access log of `direction`
    when `logs`, routes from the RDS file of `rds` (else `route_config` inline)."""
    typed = {"@type": HCM_TYPE, "stat_prefix": stat_prefix,
             "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}],
             "normalize_path": True, "merge_slashes": True, "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
             "generate_request_id": True, "preserve_external_request_id": True,
             "use_remote_address": False, "stream_idle_timeout": "0s"}
    if logs:
        typed["access_log"] = access_log(direction)
    if rds:
        typed["rds"] = {"route_config_name": rds, "config_source": config_source(f"rds_{rds}.json")}
    else:
        typed["route_config"] = route_config
    if extra:
        typed.update(extra)
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": typed}


def rbac_per_route(policies: list[Resource], namespace: str, labels: dict) -> dict:
    """The AuthorizationPolicies of a proxy as per-route configuration of the two RBAC filters."""
    out = {}
    for f in authz.rbac_filters(policies, namespace, labels):
        out[f["name"]] = {"@type": RBAC_PER_ROUTE_TYPE, "rbac": {k: v for k, v in f["typed_config"].items() if k != "@type"}}
    return out


# --- a sidecar's inbound listener ------------------------------------------------------------------

def _inbound_routes(w: Workload, ports: list[InboundPort], only: Optional[int], per_route: dict) -> dict:
    """The route configuration `inbound-PORT` (one port's chain) or `inbound-http` (every port,
    by the Host's port, then the first port for any other Host)."""
    name = f"inbound-{only or 'http'}"
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
    return {"@type": ROUTE_TYPE, "name": name, "virtual_hosts": vhosts, "validate_clusters": False}


def inbound(index: Index, w: Workload, ports: list[InboundPort], logs: bool) -> tuple[dict, list]:
    """ADDRESS:15006: TLS (and/or plaintext, by PeerAuthentication) → RBAC → inbound|PORT||.
    Returns the listener and its route configurations (RDS)."""
    mode = index.mtls_mode(w)
    per_route = rbac_per_route(index.authz, w.namespace, w.labels)
    routes: dict[str, dict] = {}

    def route_config(only: Optional[int]) -> str:
        name = f"inbound-{only or 'http'}"
        if name not in routes:
            routes[name] = _inbound_routes(w, ports, only, per_route)
        return name

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
                           "filters": [hcm("inbound_0.0.0.0_15006", list(RBAC_FILTERS), "inbound", logs,
                                           rds=route_config(None), extra=XFCC)]})
        else:
            for port, _, snis in ports:
                chains.append({"name": f"inbound|tls|{port.number}",
                               "filter_chain_match": {"transport_protocol": "tls", "server_names": snis},
                               "transport_socket": tls,
                               "filters": [hcm(f"inbound_0.0.0.0_{port.number}", list(RBAC_FILTERS), "inbound", logs,
                                               rds=route_config(port.number), extra=XFCC)]})
    if mode in ("PERMISSIVE", "DISABLE"):
        chains.append({"name": "inbound|plaintext",
                       "filter_chain_match": {"transport_protocol": "raw_buffer"} if mode == "PERMISSIVE" else {},
                       "filters": [hcm("inbound_0.0.0.0_15006", list(RBAC_FILTERS), "inbound", logs,
                                       rds=route_config(None))]})
    listener = {"@type": LISTENER_TYPE, "name": "virtualInbound", "address": address(w.address, INBOUND_PORT),
                "filter_chains": chains, "traffic_direction": "INBOUND"}
    if mode != "DISABLE":
        listener["listener_filters"] = [{"name": "envoy.filters.listener.tls_inspector",
                                         "typed_config": {"@type": TLS_INSPECTOR_TYPE}}]
    return listener, list(routes.values())


# --- outbound and gateway listeners ----------------------------------------------------------------

def outbound(host: str, logs: bool) -> dict:
    """ADDRESS:15001, the application's HTTP_PROXY: every service by Host (RDS `http_proxy`)."""
    return {"@type": LISTENER_TYPE, "name": "virtualOutbound", "address": address(host, OUTBOUND_PORT),
            "traffic_direction": "OUTBOUND",
            "filter_chains": [{"filters": [hcm(f"outbound_0.0.0.0_{OUTBOUND_PORT}", [FAULT_FILTER], "outbound", logs,
                                               rds=HTTP_PROXY_ROUTE)]}]}


def gateway(host: str, number: int, listen: int, rds: str, logs: bool) -> dict:
    """A gateway server port `number`, bound on `listen`: faults, RBAC, the routes of `rds`."""
    return {"@type": LISTENER_TYPE, "name": f"0.0.0.0_{number}", "address": address(host, listen),
            "traffic_direction": "OUTBOUND",
            "filter_chains": [{"filters": [hcm(f"outbound_0.0.0.0_{number}", [FAULT_FILTER] + RBAC_FILTERS,
                                               "gateway", logs, rds=rds, extra={"use_remote_address": True})]}]}

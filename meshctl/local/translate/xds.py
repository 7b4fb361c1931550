"""Envoy's vocabulary as the translator writes it: type URLs, the discovery files proxies read
(path_config_source), secrets by name, protobuf JSON durations and percentages, socket
addresses, Istio's cluster names and SNI, and the JSON access log. Pure functions of their
arguments."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from meshctl import durations
from meshctl.errors import InputError

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
RBAC_TYPE = T + "envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_PER_ROUTE_TYPE = T + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"

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


# --- discovery files ------------------------------------------------------------------------------

def version_of(resources: list) -> str:
    """A content hash (the render builds dicts in a fixed order, so keys need no sorting)."""
    return hashlib.sha1(json.dumps(resources, separators=(",", ":"), check_circular=False).encode()).hexdigest()[:12]


def discovery(resources: list, version: Optional[str] = None) -> dict:
    return {"version_info": version or version_of(resources), "resources": resources}


def config_source(path: str) -> dict:
    return {"path_config_source": {"path": f"./{path}"}, "resource_api_version": "V3"}


# --- secrets --------------------------------------------------------------------------------------

def sds(name: str) -> dict:
    """A secret by name: the proxy's certificate from its SDS file (rotated), the root CA as a
    static secret of the bootstrap (it never changes while the mesh runs; every watched file
    costs Envoy an inotify instance, and a user has 128 by default)."""
    if name == SECRET_ROOT:
        return {"name": name}
    return {"name": name, "sds_config": config_source(f"sds_{name.lower()}.json")}


def cert_secret(leaf: Any) -> dict:
    """The proxy's certificate and key (a ca.Leaf) as the secret `default`."""
    return {"@type": SECRET_TYPE, "name": SECRET_CERT, "tls_certificate": {
        "certificate_chain": {"inline_string": leaf.cert_pem}, "private_key": {"inline_string": leaf.key_pem}}}


def certificate_file(leaf: Any) -> dict:
    """The SDS file of a proxy's certificate (`sds_default.json`), versioned by its serial."""
    return discovery([cert_secret(leaf)], str(leaf.serial))


def root_secret(ca: Any) -> dict:
    """The mesh's root certificate (a ca.CA) as the secret `ROOTCA`."""
    return {"@type": SECRET_TYPE, "name": SECRET_ROOT, "validation_context": {"trusted_ca": {"inline_string": ca.root_pem}}}


# --- values ---------------------------------------------------------------------------------------

def duration(value: Any) -> Optional[str]:
    """Istio's duration strings (1s, 500ms, 1m30s, 1.5h; a unit is required, as Istio's schema
    requires) → protobuf JSON seconds ("0.5s"); None when it is not one."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or not text[-1].isalpha():  # a bare number is seconds on meshctl's command line, not in Istio
        return None
    try:
        total = durations.parse(text)
    except InputError:
        return None
    return f"{total:.9f}".rstrip("0").rstrip(".") + "s" if total else "0s"


def percent(value: Any) -> dict:
    """A percentage (0-100, fractional) as Envoy's FractionalPercent per million."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = 100.0
    return {"numerator": max(0, min(1_000_000, int(round(v * 10_000)))), "denominator": "MILLION"}


def percent_of(obj: dict) -> dict:
    """Istio's `percentage: {value}` (or the older `percent`) of a fault; 100 when neither."""
    if isinstance(obj.get("percentage"), dict) and "value" in obj["percentage"]:
        return percent(obj["percentage"]["value"])
    if obj.get("percent") is not None:
        return percent(obj.get("percent"))
    return percent(100)


def address(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def no_limits() -> dict:
    """Circuit-breaker thresholds that limit nothing (Istio's defaults)."""
    return {"max_connections": MAX, "max_pending_requests": MAX, "max_requests": MAX, "max_retries": MAX}


# --- Istio's names --------------------------------------------------------------------------------

def cluster_name(direction: str, port: int, subset: str, fqdn: str) -> str:
    return f"{direction}|{port}|{subset}|{fqdn}"


def sni(port: int, subset: str, fqdn: str) -> str:
    return f"outbound_.{port}_.{subset}_.{fqdn}"


_ACCESS_LOGS: dict[str, list] = {}


def access_log(direction: str) -> list:
    """The JSON access log of one direction (one shared, read-only object per direction)."""
    if direction not in _ACCESS_LOGS:
        fmt = dict(ACCESS_LOG_FORMAT, direction=direction)
        _ACCESS_LOGS[direction] = [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": FILE_LOG_TYPE, "path": "./access.log", "log_format": {"json_format": fmt}}}]
    return _ACCESS_LOGS[direction]

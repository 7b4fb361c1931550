"""Helpers shared by analyzers: protocols from port names, host names, service lookups.

Pure functions over plain dicts and Resources; no indexes here (analyzers build those through
`ctx.index`).
"""
from __future__ import annotations

from typing import Any

from meshctl.resources import Resource

_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
              "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS",
              "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL"}
# Ports that are never sniffed: TCP even without a protocol prefix (SMTP, DNS, MySQL, MongoDB).
_WELL_KNOWN_TCP_PORTS = {25, 53, 3306, 27017}
HTTP_PROTOCOLS = {"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"}


def parse_protocol(name: str) -> str:
    """Istio's protocol for a name (case-insensitive), or "Unsupported"."""
    return _PROTOCOLS.get(str(name).lower(), "Unsupported")


def port_protocol(port: Any, name: str | None, protocol: Any = None, app_protocol: Any = None) -> str:
    """The protocol Istio derives from a Kubernetes Service port: UDP by protocol, then
    appProtocol, then the port name's prefix (`http-web` → HTTP); "Unsupported" when none."""
    if protocol == "UDP":
        return "UDP"
    name = str(name or "")
    if app_protocol is not None:
        name = str(app_protocol)
        special = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP", "kubernetes.io/wss": "HTTPS"}
        if name in special:
            return special[name]
    if name[:8].lower() == "grpc-web":
        return "GRPC-Web"
    prefix = name.split("-", 1)[0]
    proto = parse_protocol(prefix)
    if proto == "Unsupported":
        try:
            if int(port) in _WELL_KNOWN_TCP_PORTS:
                return "TCP"
        except (TypeError, ValueError):
            pass
    return proto


def is_control_plane(r: Resource) -> bool:
    """Istio's own objects (labelled `istio` or `release: istio`)."""
    labels = r.labels
    return "istio" in labels or labels.get("release") == "istio"

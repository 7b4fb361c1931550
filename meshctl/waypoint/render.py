"""The waypoint Gateway and the labels that send traffic through it (pure: no cluster)."""
from __future__ import annotations

from typing import Optional

from meshctl.errors import InputError
from meshctl.kinds import REVISION_LABEL, USE_WAYPOINT_LABEL, USE_WAYPOINT_NAMESPACE_LABEL, WAYPOINT_FOR_LABEL
from meshctl.schemas.gatewayapi import GROUP

WAYPOINT_CLASS = "istio-waypoint"
WAYPOINT_FOR = WAYPOINT_FOR_LABEL
USE_WAYPOINT = USE_WAYPOINT_LABEL
USE_WAYPOINT_NAMESPACE = USE_WAYPOINT_NAMESPACE_LABEL
REV = REVISION_LABEL
HBONE_PORT = 15008
TRAFFIC_TYPES = ("service", "workload", "all", "none")
DEFAULT_NAME = "waypoint"
GATEWAY_API_VERSION = f"{GROUP}/v1"


def _dns_label(value: str, what: str) -> None:
    import re

    if not value or len(value) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", value):
        raise InputError(f"{what} {value!r} is not a valid name",
                         hint="use lowercase letters, digits and '-', starting and ending with a letter or digit")


def gateway(namespace: str, name: str = DEFAULT_NAME, traffic_for: str = "service",
            revision: Optional[str] = None) -> dict:
    """The Gateway of class istio-waypoint that istiod turns into a waypoint deployment: one
    HBONE listener on port 15008; `istio.io/waypoint-for` says which traffic it takes."""
    _dns_label(namespace, "namespace")
    _dns_label(name, "waypoint name")
    if traffic_for not in TRAFFIC_TYPES:
        raise InputError(f"unknown traffic type {traffic_for!r} for --for", hint="use service, workload, all or none")
    labels = {WAYPOINT_FOR: traffic_for}
    if revision:
        _dns_label(revision, "revision")
        labels[REV] = revision
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "gatewayClassName": WAYPOINT_CLASS,
            "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
        },
    }


def use_labels(waypoint: str, waypoint_namespace: str, own_namespace: str) -> dict[str, Optional[str]]:
    """Labels that send an object's traffic through a waypoint (the namespace label only when the
    waypoint lives in another namespace; None removes a stale one)."""
    return {USE_WAYPOINT: waypoint,
            USE_WAYPOINT_NAMESPACE: waypoint_namespace if waypoint_namespace != own_namespace else None}


def enrolled_namespace(namespace: str, waypoint: str) -> dict:
    """The Namespace as `kubectl apply` takes it to enrol it (for --dry-run output)."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {USE_WAYPOINT: waypoint}}}


def is_waypoint(gw: dict) -> bool:
    return isinstance(gw, dict) and (gw.get("spec") or {}).get("gatewayClassName") == WAYPOINT_CLASS


def traffic_type(gw: dict) -> str:
    """`istio.io/waypoint-for` of a waypoint (Istio's default: service)."""
    labels = ((gw.get("metadata") or {}).get("labels") or {})
    value = labels.get(WAYPOINT_FOR)
    return value if value in TRAFFIC_TYPES else "service"


def condition(obj: dict, kind: str) -> tuple[str, str, str]:
    """(status, reason, message) of a status condition, ("Unknown", "", "") when absent."""
    for c in ((obj.get("status") or {}).get("conditions") or []):
        if isinstance(c, dict) and c.get("type") == kind:
            return str(c.get("status", "Unknown")), str(c.get("reason", "")), str(c.get("message", ""))
    return "Unknown", "", ""

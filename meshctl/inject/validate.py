"""Validation of the per-pod injection annotations (the same checks Istio's injector makes).

An invalid value is refused before anything is written; the message names the annotation and
the value.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Callable

from meshctl.errors import InputError, clip, shown

_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkKMGTPE]|[eE][+-]?\d+)?$")
_IFACE = re.compile(r"^[^\s/:]{1,15}$")


class AnnotationError(ValueError):
    pass


def _cidr_list(value: str) -> None:
    if not value:
        return
    for cidr in value.split(","):
        try:
            if "/" not in cidr:
                raise ValueError
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise AnnotationError(f"failed parsing cidr {shown(cidr)}") from None


def _port(value: str) -> int:
    text = value.strip()
    if not text.isdigit() or int(text) > 65535:
        raise AnnotationError(f"failed parsing port {shown(value)}")
    return int(text)


def parse_ports(value: str) -> list[int]:
    value = value.strip()
    return [_port(p) for p in value.split(",")] if value else []


def _include_ip_ranges(value: str) -> None:
    if value != "*":
        try:
            _cidr_list(value)
        except AnnotationError as e:
            raise AnnotationError(f"includeIPRanges invalid: {e}") from None


def _exclude_ip_ranges(value: str) -> None:
    try:
        _cidr_list(value)
    except AnnotationError as e:
        raise AnnotationError(f"excludeIPRanges invalid: {e}") from None


def _port_list(name: str, allow_star: bool = False) -> Callable[[str], None]:
    def check(value: str) -> None:
        if allow_star and value == "*":
            return
        try:
            parse_ports(value)
        except AnnotationError as e:
            raise AnnotationError(f"{name} invalid: {e}") from None
    return check


def _status_port(value: str) -> None:
    try:
        _port(value)
    except AnnotationError as e:
        raise AnnotationError(f"statusPort invalid: {e}") from None


def _uint32(value: str) -> None:
    if not value.isdigit() or int(value) > 2**32 - 1:
        raise AnnotationError("not a non-negative 32-bit integer")


def _bool(value: str) -> None:
    if value not in ("1", "t", "T", "true", "TRUE", "True", "0", "f", "F", "false", "FALSE", "False"):
        raise AnnotationError("not a boolean")


def _interception_mode(value: str) -> None:
    if value not in ("REDIRECT", "TPROXY", "NONE"):
        raise AnnotationError(f"interceptionMode invalid, use REDIRECT,TPROXY,NONE: {clip(value)}")


def _quantity(value: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise AnnotationError("value contains control characters")
    if not _QUANTITY.match(value):
        raise AnnotationError("quantities must match the regular expression "
                              "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def _interfaces(value: str) -> None:
    for name in value.split(","):
        if not _IFACE.match(name.strip()):
            raise AnnotationError(f"invalid interface name {shown(name)}")


def _proxy_config(value: str) -> None:
    from meshctl.inject.settings import parse_proxy_config

    parse_proxy_config(value)


def _json_objects(value: str) -> None:
    """sidecar.istio.io/userVolume and userVolumeMount: a JSON object of objects by name."""
    from meshctl.loader import json_loads

    try:
        data = json_loads(value)
    except ValueError as e:
        raise AnnotationError(f"not JSON ({' '.join(str(e).split()[:8])})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise AnnotationError('expected a JSON object of objects, e.g. {"name": {...}}')


VALIDATORS: dict[str, Callable[[str], None]] = {
    "sidecar.istio.io/userVolume": _json_objects,
    "sidecar.istio.io/userVolumeMount": _json_objects,
    "sidecar.istio.io/interceptionMode": _interception_mode,
    "status.sidecar.istio.io/port": _status_port,
    "readiness.status.sidecar.istio.io/initialDelaySeconds": _uint32,
    "readiness.status.sidecar.istio.io/periodSeconds": _uint32,
    "readiness.status.sidecar.istio.io/failureThreshold": _uint32,
    "traffic.sidecar.istio.io/includeOutboundIPRanges": _include_ip_ranges,
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": _exclude_ip_ranges,
    "traffic.sidecar.istio.io/includeInboundPorts": _port_list("includeInboundPorts", allow_star=True),
    "traffic.sidecar.istio.io/excludeInboundPorts": _port_list("excludeInboundPorts"),
    "traffic.sidecar.istio.io/excludeOutboundPorts": _port_list("excludeOutboundPorts"),
    "traffic.sidecar.istio.io/includeOutboundPorts": _port_list("includeOutboundPorts"),
    "traffic.sidecar.istio.io/excludeInterfaces": _interfaces,
    "traffic.sidecar.istio.io/kubevirtInterfaces": _interfaces,
    "istio.io/reroute-virtual-interfaces": _interfaces,
    "prometheus.istio.io/merge-metrics": _bool,
    "proxy.istio.io/config": _proxy_config,
    "sidecar.istio.io/proxyCPU": _quantity,
    "sidecar.istio.io/proxyMemory": _quantity,
    "sidecar.istio.io/proxyCPULimit": _quantity,
    "sidecar.istio.io/proxyMemoryLimit": _quantity,
}


def validate_annotations(annotations: dict, where: str) -> None:
    """Raise InputError naming the first invalid annotation (and every other one) of a pod."""
    problems = []
    for name, check in VALIDATORS.items():
        if name not in annotations:
            continue
        value = annotations[name]
        if not isinstance(value, str):
            problems.append(f"invalid value {shown(value)} for annotation {shown(name)}: annotation values must be strings")
            continue
        try:
            check(value)
        except ValueError as e:
            problems.append(f"invalid value {shown(value)} for annotation {shown(name)}: {e}")
    if problems:
        raise InputError(f"{where}: {'; '.join(problems)}",
                         hint="fix the annotation value in the pod template, then run inject again")


def _kind_of(value) -> str:
    """A YAML value's kind, as a manifest author names it."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string"


class Required:
    """A field Kubernetes requires, of the given shape."""

    def __init__(self, shape):
        self.shape = shape


_WANT = {str: "a string", int: "an integer", bool: "a boolean", dict: "a map", list: "a list"}

# What injection reads of a workload, as Kubernetes types it: a mapping shape lists the fields
# read ("*": every value), [shape] a list of such items, a tuple one of several types.
_PORT = {"name": str, "containerPort": int, "protocol": str}
_PROBE = {"httpGet": {"path": str, "port": (int, str), "scheme": str, "host": str,
                      "httpHeaders": [{"name": str, "value": str}]},
          "tcpSocket": {"port": (int, str), "host": str}, "grpc": {"port": int}, "exec": dict}
_CONTAINER = {"name": Required(str), "image": str, "ports": [_PORT], "env": [{"name": Required(str)}],
              "volumeMounts": [{"name": str, "mountPath": str}], "readinessProbe": _PROBE,
              "livenessProbe": _PROBE, "startupProbe": _PROBE, "securityContext": dict, "resources": dict,
              "args": [str], "command": [str], "lifecycle": dict, "restartPolicy": str}
_METADATA = {"name": str, "generateName": str, "namespace": str, "labels": {"*": str},
             "annotations": {"*": str}}
_POD = {"metadata": _METADATA,
        "spec": {"serviceAccountName": str, "serviceAccount": str, "hostNetwork": bool,
                 "containers": [_CONTAINER], "initContainers": [_CONTAINER],
                 "volumes": [{"name": Required(str)}], "securityContext": dict, "dnsConfig": dict,
                 "imagePullSecrets": [dict]}}
_TEMPLATED = {"metadata": _METADATA, "spec": {"template": _POD}}
WORKLOAD_SHAPES = {
    "Pod": _POD,
    "CronJob": {"metadata": _METADATA, "spec": {"jobTemplate": {"spec": {"template": _POD}}}},
}


def _shape_problems(value, shape, path: str, out: list[str]) -> None:
    if isinstance(shape, Required):
        if value is None:
            out.append(f"{path} is required")
            return
        shape = shape.shape
    if value is None:
        return  # Kubernetes reads null as absent
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            out.append(f"{path} must be a map, not {_kind_of(value)}")
            return
        for key, sub in shape.items():
            if key == "*":
                for k, v in value.items():
                    _shape_problems(v, sub, f"{path}.{k}" if path else str(k), out)
            elif key in value:
                _shape_problems(value[key], sub, f"{path}.{key}" if path else key, out)
        return
    if isinstance(shape, list):
        if not isinstance(value, list):
            out.append(f"{path} must be a list, not {_kind_of(value)}")
            return
        for i, item in enumerate(value):
            if item is None:
                out.append(f"{path}[{i}] is null")
                continue
            _shape_problems(item, shape[0], f"{path}[{i}]", out)
        return
    types = shape if isinstance(shape, tuple) else (shape,)
    if not any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in types):
        want = " or ".join(_WANT[t] for t in types)
        hint = " (quote the value)" if str in types and isinstance(value, (int, float, bool)) else ""
        out.append(f"{path} must be {want}, not {_kind_of(value)}{hint}")


def validate_workload_shape(doc: dict, where: str) -> None:
    """Raise InputError when the parts of a workload that injection reads do not have the types
    Kubernetes requires (kubectl would refuse the manifest too), naming every such field, instead
    of failing half-way through."""
    shape = WORKLOAD_SHAPES.get(doc.get("kind"), _TEMPLATED)
    problems: list[str] = []
    _shape_problems(doc, shape, "", problems)
    if problems:
        shown_ = problems[:3] + ([f"and {len(problems) - 3} more"] if len(problems) > 3 else [])
        raise InputError(f"{where}: {'; '.join(shown_)}",
                         hint="fix the workload manifest (kubectl would reject it too), then run inject again")

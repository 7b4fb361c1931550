"""Istio annotations on Kubernetes objects: unknown, misplaced, invalid, deprecated, alpha.

The table of known annotations (the kinds each applies to, maturity, deprecation, value checks)
is data: meshctl/analysis/annotations.yaml.
"""
from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from meshctl.analysis.framework import Analyzer, Context, analyzer, register
from meshctl.errors import clip, shown
from meshctl.resources import Resource, yaml_text

KINDS = ("Namespace", "Service", "Pod", "Deployment")
ANNOTATION_PATH = ("metadata", "annotations")

# Set by Istio itself (injector, controllers), never worth a finding.
ALWAYS_IGNORED = frozenset({"sidecar.istio.io/status", "gateway.istio.io/controller-version", "istio.io/rev"})
# Written by the istio-cni plugin on pods it handles (pods without the istio-init container).
CNI_DEFAULTS = frozenset({
    "sidecar.istio.io/interceptionMode", "traffic.sidecar.istio.io/includeInboundPorts",
    "traffic.sidecar.istio.io/excludeInboundPorts", "traffic.sidecar.istio.io/includeOutboundIPRanges",
})
DEPRECATION_DETAIL = {"sidecar.istio.io/inject": ' in favor of the "sidecar.istio.io/inject" label'}


@lru_cache(maxsize=None)
def known_annotations() -> dict[str, dict]:
    """name → {kinds, status, deprecated, validate} from annotations.yaml (loaded once)."""
    import yaml

    path = Path(__file__).resolve().parent.parent / "annotations.yaml"
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {a["name"]: a for a in data["annotations"]}


def is_istio_annotation(name: str) -> bool:
    """Annotations in Istio's namespaces (`*istio.io/...`), and the one Kubernetes annotation
    Istio documents."""
    if name == "kubernetes.io/ingress.class":
        return True
    return yaml_text(name).split("/", 1)[0].endswith("istio.io")


# --- value checks -------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$")
_INTERFACE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.\-]*$")
_DIGITS = re.compile(r"^[0-9]+$")
_GO_BOOLS = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}


def _port(text: str) -> int:
    t = text.strip()
    if not _DIGITS.match(t) or int(t) > 65535:
        raise ValueError(f"failed parsing port {shown(text)}")
    return int(t)


def _ports(value: str) -> None:
    value = value.strip()
    if value:
        for p in value.split(","):
            _port(p)


def _cidrs(value: str) -> None:
    if value:
        for cidr in value.split(","):
            try:
                ipaddress.ip_network(cidr, strict=False)
                if "/" not in cidr:
                    raise ValueError
            except ValueError:
                raise ValueError(f"failed parsing cidr {shown(cidr)}") from None


def _uint32(value: str) -> None:
    if not _DIGITS.match(value) or int(value) > 2**32 - 1:
        raise ValueError(f"{shown(value)} is not a non-negative 32-bit integer")


def _interfaces(value: str) -> None:
    if not value:
        return
    for name in value.split(","):
        name = name.strip()
        if not name:
            raise ValueError("empty interface name")
        if len(name) > 15:
            raise ValueError(f"interface name {shown(name)} too long (max 15 chars)")
        if not _INTERFACE.match(name):
            raise ValueError(f"interface name {shown(name)} contains invalid characters")


def _interception_mode(value: str) -> None:
    if value not in ("REDIRECT", "TPROXY", "NONE"):
        raise ValueError(f"interceptionMode invalid, use REDIRECT,TPROXY,NONE: {clip(value)}")


def _bool(value: str) -> None:
    if value not in _GO_BOOLS:
        raise ValueError(f"{shown(value)} is not a boolean")


def _quantity(value: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("value contains control characters")
    if not _QUANTITY.match(value):
        raise ValueError(f"{shown(value)} is not a resource quantity (e.g. 100m, 128Mi)")


# ProxyConfig's fields (proto names; the camelCase JSON names are accepted too).
_PROXY_CONFIG_FIELDS = frozenset({
    "config_path", "binary_path", "drain_duration", "discovery_address", "discovery_refresh_delay",
    "zipkin_address", "statsd_udp_address", "envoy_metrics_service_address", "proxy_admin_port",
    "availability_zone", "control_plane_auth_policy", "custom_config_file", "stat_name_length",
    "concurrency", "proxy_bootstrap_template_path", "interception_mode", "tracing", "sds",
    "envoy_access_log_service", "envoy_metrics_service", "proxy_metadata", "runtime_values", "status_port",
    "extra_stat_tags", "gateway_topology", "termination_drain_duration", "mesh_id", "readiness_probe",
    "proxy_stats_matcher", "hold_application_until_proxy_starts", "ca_certificates_pem", "image",
    "private_key_provider", "proxy_headers", "file_flush_interval", "file_flush_min_size_kb",
    "stats_compression", "connection_settings", "service_cluster", "tracing_service_name",
})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


_PROXY_CONFIG_NAMES = _PROXY_CONFIG_FIELDS | {_camel(f) for f in _PROXY_CONFIG_FIELDS}


def _proxy_config(value: str) -> None:
    import yaml

    from meshctl.loader import safe_load

    try:
        data = safe_load(value)
    except yaml.YAMLError as e:
        raise ValueError(f"failed to parse proxy config: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ValueError("proxy config must be a mapping of ProxyConfig fields")
    unknown = sorted(yaml_text(k) for k in data if yaml_text(k) not in _PROXY_CONFIG_NAMES)
    if unknown:
        raise ValueError(f"unknown ProxyConfig field {shown(unknown[0])}")


VALIDATORS: dict[str, Callable[[str], None]] = {
    "interception-mode": _interception_mode,
    "port": lambda v: (_port(v), None)[1],
    "uint32": _uint32,
    "include-cidrs": lambda v: None if v == "*" else _cidrs(v),
    "cidrs": _cidrs,
    "include-ports": lambda v: None if v == "*" else _ports(v),
    "ports": _ports,
    "interfaces": _interfaces,
    "bool": _bool,
    "proxy-config": _proxy_config,
    "quantity": _quantity,
}


def validate_value(kind: str, value: object) -> str | None:
    """The problem with an annotation value, or None."""
    check = VALIDATORS.get(kind)
    if check is None:
        return None
    try:
        check("" if value is None else yaml_text(value))
    except ValueError as e:
        return str(e)
    return None


# --- analyzers ----------------------------------------------------------------------------------

def _annotated(ctx: Context):
    for kind in KINDS:
        for r in ctx.of_kind(kind):
            if r.annotations:
                yield r


@register
class K8sAnalyzer(Analyzer):
    name = "annotations.K8sAnalyzer"
    description = "Checks for misplaced and invalid Istio annotations in Kubernetes resources"
    inputs = KINDS

    def analyze(self, ctx: Context) -> None:
        for r in _annotated(ctx):  # the table is read at the first annotated object
            self.check(ctx, r, known_annotations())

    @staticmethod
    def check(ctx: Context, r: Resource, table: dict[str, dict]) -> None:
        for ann, value in r.annotations.items():
            ann = yaml_text(ann)
            if not is_istio_annotation(ann) or ann in ALWAYS_IGNORED:
                continue
            path = (*ANNOTATION_PATH, ann)
            info = table.get(ann)
            if info is None:
                ctx.report("IST0108", r, ann, path=path)
                continue
            if info.get("deprecated"):
                # both the deprecated annotation and its replacement label: the user knows
                if not (ann == "sidecar.istio.io/inject" and ann in r.labels):
                    ctx.report("IST0135", r, ann, DEPRECATION_DETAIL.get(ann, ""), path=path)
            kinds = [k for k in info.get("kinds") or [] if k]
            if "Any" in kinds:
                continue
            if r.kind not in kinds:
                ctx.report("IST0107", r, ann, ", ".join(kinds), path=path)
                continue
            problem = validate_value(info.get("validate") or "", value)
            if problem:
                ctx.report("IST0125", r, ann, problem, path=path)


def _cni_handled(pod: Resource) -> bool:
    """Pods without the istio-init container: the CNI plugin set the traffic annotations."""
    spec = pod.spec
    inits = spec.get("initContainers") if isinstance(spec.get("initContainers"), list) else []
    return not any(isinstance(c, dict) and c.get("name") == "istio-init" for c in inits)


@analyzer("annotations.AlphaAnalyzer",
          "Checks for alpha Istio annotations in Kubernetes resources",
          inputs=KINDS,
          default=False)
def alpha(ctx: Context) -> None:
    for r in _annotated(ctx):
        table = known_annotations()
        skip_cni = r.kind == "Pod" and _cni_handled(r)
        for ann in r.annotations:
            ann = yaml_text(ann)
            if not is_istio_annotation(ann):
                continue
            info = table.get(ann)
            if info is None or info.get("status") != "Alpha" or ann in ALWAYS_IGNORED:
                continue
            if skip_cni and ann in CNI_DEFAULTS:
                continue
            ctx.report("IST0136", r, ann, path=(*ANNOTATION_PATH, ann))

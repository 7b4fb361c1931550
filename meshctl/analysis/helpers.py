"""Helpers shared by analyzers: protocols from port names, services and the hosts they answer,
workloads (pods and pod templates) by namespace and label, and mesh membership (sidecar or
ambient).

Every index is built once per run through `ctx.index`, so selecting the pods of a policy costs
the size of the smallest label bucket, not a scan of every pod.
"""
from __future__ import annotations

from typing import Any

from meshctl import hosts
from meshctl.analysis.framework import Context, as_dict, dig
from meshctl.kinds import (  # noqa: F401
    AMBIENT_REDIRECTION,
    CONTROLLER_KINDS,
    DATAPLANE_MODE_LABEL,
    INJECTION_LABEL,
    POD_TEMPLATE_PATHS,
    PROXY_CONTAINER,
    REVISION_LABEL,
    SIDECAR_INJECT,
)
from meshctl.resources import Resource, as_int, yaml_text
from meshctl.selectors import LabelIndex, label_map

_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
              "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS",
              "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL"}
# Ports that are never sniffed: TCP even without a protocol prefix (SMTP, DNS, MySQL, MongoDB).
_WELL_KNOWN_TCP_PORTS = {25, 53, 3306, 27017}
HTTP_PROTOCOLS = {"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"}


def parse_protocol(name: str) -> str:
    """Istio's protocol for a name (case-insensitive), or "Unsupported"."""
    return _PROTOCOLS.get(yaml_text(name).lower(), "Unsupported")


def port_protocol(port: Any, name: str | None, protocol: Any = None, app_protocol: Any = None) -> str:
    """The protocol Istio derives from a Kubernetes Service port: UDP by protocol, then
    appProtocol, then the port name's prefix (`http-web` → HTTP); "Unsupported" when none."""
    if protocol == "UDP":
        return "UDP"
    name = yaml_text(name or "")
    if app_protocol is not None:
        name = yaml_text(app_protocol)
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


def pod_index(ctx) -> LabelIndex:
    """All Pods (outside ignored namespaces) by label (built once per run)."""
    return ctx.index("pods-by-label", lambda c: LabelIndex(c.of_kind("Pod")))


class HostEntry:
    """What a host resolves to: a ServiceEntry's (or a Kubernetes Service's) ports and workload selector."""

    __slots__ = ("ports", "workload_labels", "resource")

    def __init__(self, ports: list[int], workload_labels: dict[str, str], resource: Resource):
        self.ports = ports
        self.workload_labels = workload_labels
        self.resource = resource


class ServiceHosts:
    """Hosts visible per namespace scope, from ServiceEntries and Kubernetes Services, keyed
    `scope/fqdn` (scope: a namespace or `*`), with wildcard hosts kept apart for suffix matching."""

    def __init__(self) -> None:
        self.exact: dict[str, HostEntry] = {}
        self.wildcards: list[tuple[str, str, HostEntry]] = []  # (scope, host, entry)

    def add(self, scope: str, namespace: str | None, host: str, entry: HostEntry) -> None:
        fqdn = hosts.fqdn(host, namespace)
        key = f"{scope}/{fqdn}"
        if key not in self.exact and fqdn.startswith("*"):
            self.wildcards.append((scope, fqdn, entry))
        self.exact[key] = entry

    def lookup(self, source_ns: str | None, export_to: list, host: str) -> HostEntry | None:
        """Istio's GetDestinationHost: what `host`, seen from `source_ns`, resolves to."""
        ns = source_ns or ""
        fqdn = hosts.fqdn(host, ns)
        e = self.exact.get(f"*/{fqdn}")
        if e is not None:
            return e
        scopes = [yaml_text(x) for x in export_to] if export_to else [ns]
        for s in scopes:
            e = self.exact.get(f"{ns if s == '.' else s}/{fqdn}")
            if e is not None:
                return e
        bare = fqdn[1:] if fqdn.startswith("*") else fqdn
        for scope, wh, entry in self.wildcards:
            if scope != "*" and scope != ns:
                continue
            if bare.endswith(wh[1:]):
                return entry
        return None




def build_service_hosts(ctx) -> ServiceHosts:
    from meshctl.analysis.framework import as_list, dig

    out = ServiceHosts()
    for se in ctx.of_kind("ServiceEntry"):
        if se.group != "networking.istio.io":
            continue
        spec = se.spec
        ports = [as_int(dig(p, "number")) for p in as_list(spec.get("ports")) if isinstance(p, dict)]
        entry = HostEntry(ports, label_map(dig(spec, "workloadSelector", "labels")), se)
        export = [yaml_text(x) for x in as_list(spec.get("exportTo"))]
        if not export or "*" in export:
            scopes = ["*"]
        else:
            scopes = list(dict.fromkeys(se.namespace or "" if x == "." else x for x in export))
        for h in as_list(spec.get("hosts")):
            if isinstance(h, str):
                for scope in scopes:
                    out.add(scope, se.namespace, h, entry)
    for svc in ctx.of_kind("Service"):
        ports = [as_int(dig(p, "port")) for p in as_list(svc.spec.get("ports")) if isinstance(p, dict)]
        entry = HostEntry(ports, {}, svc)
        anno = svc.annotations.get("networking.istio.io/exportTo")
        if not anno:
            scopes = ["*"]
        else:
            scopes = [(svc.namespace or "") if x.strip() == "." else x.strip() for x in yaml_text(anno).split(",")]
        for scope in scopes:
            out.add(scope, svc.namespace, svc.name, entry)
    return out


def service_hosts(ctx) -> ServiceHosts:
    return ctx.index("service-hosts", build_service_hosts)


# --- kinds -------------------------------------------------------------------------------------

ISTIO_NETWORKING = "networking.istio.io"
K8S_GATEWAY_GROUP = "gateway.networking.k8s.io"


def istio_gateways(ctx) -> list[Resource]:
    """Istio Gateways (networking.istio.io), not Gateway API Gateways of the same kind name."""
    return ctx.index("istio-gateways", lambda c: [g for g in c.of_kind("Gateway") if g.group == ISTIO_NETWORKING])


def of_group(ctx, kind: str, group: str) -> list[Resource]:
    return ctx.index(f"kind:{group}/{kind}", lambda c: [r for r in c.of_kind(kind) if r.group == group])


# --- YAML embedded in objects ----------------------------------------------------------------------

def safe_yaml_load(text: str):
    """yaml.load for YAML (or JSON) embedded in an object — annotation values, ConfigMap data —
    that is safe on hostile input (see meshctl.loader.safe_load)."""
    from meshctl.loader import safe_load

    return safe_load(text)


# --- workloads -------------------------------------------------------------------------------------

INJECT_LABEL = SIDECAR_INJECT
REV_LABEL = REVISION_LABEL
# Kinds that run pods (Pods aside), and where their pod template lives.
WORKLOAD_KINDS: dict[str, tuple[str, ...]] = {k: POD_TEMPLATE_PATHS[k] for k in CONTROLLER_KINDS}


def pods(ctx: Context) -> LabelIndex:
    """Every Pod, by namespace and label."""
    return ctx.index("workloads.pods", lambda c: LabelIndex(c.of_kind("Pod")))


def template(r: Resource) -> dict:
    """The pod template of a workload (the Pod itself for a Pod)."""
    if r.kind == "Pod":
        return r.body
    path = WORKLOAD_KINDS.get(r.kind)
    return as_dict(dig(r.body, *path)) if path else {}


def template_labels(r: Resource) -> dict[str, str]:
    return label_map(dig(template(r), "metadata", "labels"))


def template_annotations(r: Resource) -> dict[str, str]:
    return label_map(dig(template(r), "metadata", "annotations"))


def workloads(ctx: Context) -> LabelIndex:
    """Pods and every pod-running workload, by namespace and by the labels of the pods they run."""
    def build(c: Context) -> LabelIndex:
        return LabelIndex((r for kind in ("Pod", *WORKLOAD_KINDS) for r in c.of_kind(kind)), labels_of=template_labels)

    return ctx.index("workloads.all", build)


def namespace_object(ctx: Context, name: str | None) -> Resource | None:
    return ctx.resources.get("Namespace", None, name or "")


def pod_in_ambient(pod: Resource | None) -> bool:
    return pod is not None and pod.annotations.get(AMBIENT_REDIRECTION) == "enabled"


def namespace_in_ambient(ns: Resource | None) -> bool:
    if ns is None:
        return False
    labels = ns.labels
    if labels.get(INJECTION_LABEL) == "enabled":
        return False
    if labels.get(REV_LABEL):
        return False
    return labels.get(DATAPLANE_MODE_LABEL) == "ambient"


def _has_proxy(containers: Any) -> bool:
    for c in containers if isinstance(containers, list) else []:
        if isinstance(c, dict) and c.get("name") == PROXY_CONTAINER:
            return bool(c.get("image"))
    return False


def in_mesh(ctx: Context, r: Resource) -> bool:
    """Whether a Pod (or a workload's pod template) gets a sidecar: it has one, or its inject
    label/annotation says so, or its namespace is labelled `istio-injection=enabled`."""
    tmpl = template(r)
    spec = as_dict(tmpl.get("spec"))
    containers = list(spec.get("containers") or []) if isinstance(spec.get("containers"), list) else []
    if r.kind == "Pod" and isinstance(spec.get("initContainers"), list):
        containers += spec["initContainers"]
    if _has_proxy(containers):
        return True
    labels = label_map(dig(tmpl, "metadata", "labels"))
    if INJECT_LABEL in labels:
        return labels[INJECT_LABEL] == "true"
    annotations = label_map(dig(tmpl, "metadata", "annotations"))
    if INJECT_LABEL in annotations:
        return annotations[INJECT_LABEL] == "true"
    ns = namespace_object(ctx, r.namespace)
    if ns is not None:
        return ns.labels.get(INJECTION_LABEL) == "enabled"
    return False

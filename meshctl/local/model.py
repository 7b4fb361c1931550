"""The model of a local mesh: which services, workloads and gateways Istio's resources describe.

Workloads are declared with Istio's API for workloads outside Kubernetes:

- a ServiceEntry (`hosts`, `ports`, `resolution: STATIC`, `workloadSelector`) is a service;
- a WorkloadEntry (`address` in 127.0.0.0/8, `ports`, `labels`, `serviceAccount`) is one
  workload with its own sidecar; its process is the annotation `local.meshctl.io/command`
  (istiod ignores annotations, so the same file applies unchanged to a cluster);
- a Gateway gets one ingress gateway Envoy (Istio's ingress gateway identity and labels:
  namespace istio-system, the Gateway's selector as labels).

Nothing here does I/O; problems are InputErrors naming the file and line.
"""
from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from typing import Any, Optional

from meshctl import hosts
from meshctl.errors import InputError
from meshctl.resources import Resource, ResourceSet
from meshctl.selectors import LabelIndex, label_map

COMMAND_ANNOTATION = "local.meshctl.io/command"
ADDRESS_ANNOTATION = "local.meshctl.io/address"  # a Gateway's loopback address (else the first free one)
ROOT_NAMESPACE = "istio-system"
TRUST_DOMAIN = "cluster.local"
GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
HTTP_PROTOCOLS = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"}

# Ports every proxy takes on its own loopback address (Istio's sidecar ports).
ADMIN_PORT = 15000
OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
RESERVED_PORTS = (ADMIN_PORT, OUTBOUND_PORT, INBOUND_PORT)
GATEWAY_NET = ipaddress.ip_network("127.0.100.0/24")  # where gateways get their addresses


def spiffe(namespace: str, service_account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


class Keyed:
    """Workloads, gateways and their proxies are known as NAME.NAMESPACE (as proxy-status names
    Istio's proxies)."""

    name: str
    namespace: str

    @property
    def key(self) -> str:
        return f"{self.name}.{self.namespace}"


@dataclass
class Port:
    number: int
    name: str
    protocol: str
    target_port: Optional[int] = None

    @property
    def http(self) -> bool:
        return self.protocol.upper() in HTTP_PROTOCOLS


@dataclass
class Workload(Keyed):
    name: str
    namespace: str
    address: str
    labels: dict
    service_account: str
    ports: dict                       # port name → workload port
    command: Optional[list] = None    # argv, from the annotation
    resource: Optional[Resource] = None

    @property
    def identity(self) -> str:
        return spiffe(self.namespace, self.service_account)

    def port_for(self, port: Port) -> int:
        """The workload's port for a service port (WorkloadEntry ports by name, else targetPort)."""
        value = self.ports.get(port.name)
        if isinstance(value, int) and value > 0:
            return value
        return port.target_port or port.number


@dataclass
class Service:
    fqdn: str
    namespace: str
    ports: list
    selector: dict
    resource: Resource
    workloads: list = field(default_factory=list)
    static_endpoints: list = field(default_factory=list)   # inline endpoints (no sidecar), loopback only

    @property
    def short(self) -> str:
        return hosts.short_name(self.fqdn)

    def port(self, number: int) -> Optional[Port]:
        return next((p for p in self.ports if p.number == number), None)


@dataclass
class GatewayProxy(Keyed):
    name: str
    namespace: str                    # the Gateway resource's namespace
    address: str
    labels: dict
    resource: Resource
    servers: list = field(default_factory=list)

    @property
    def identity(self) -> str:
        return spiffe(ROOT_NAMESPACE, GATEWAY_SERVICE_ACCOUNT)


@dataclass
class Mesh:
    resources: ResourceSet
    services: dict                    # fqdn → Service
    workloads: dict                   # key → Workload
    gateways: dict                    # key → GatewayProxy
    warnings: list = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Resource]:
        return _by_name(self.resources.of_kind(kind))


def _where(r: Resource, path=()) -> str:
    ref = r.reference(path)
    return f"{r.origin} ({ref})" if ref else r.origin


def _loopback(value: Any, r: Resource, path) -> str:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        raise InputError(f"{_where(r, path)}: address {value!r} is not an IP address",
                         hint="give each workload its own loopback address, e.g. 127.0.10.1") from None
    if addr.version != 4 or not addr.is_loopback:
        raise InputError(f"{_where(r, path)}: address {value} is not in 127.0.0.0/8: the local mesh uses "
                         "loopback addresses only", hint="give each workload its own address such as 127.0.10.1")
    return str(addr)


def _int(value: Any) -> Optional[int]:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 65536 else None


def _ports(se: Resource) -> list[Port]:
    out = []
    for i, p in enumerate(se.spec.get("ports") or []):
        if not isinstance(p, dict):
            continue
        number = _int(p.get("number"))
        if number is None:
            raise InputError(f"{_where(se, ('spec', 'ports', i))}: port number {p.get('number')!r} is not a port")
        out.append(Port(number, str(p.get("name") or f"port-{number}"), str(p.get("protocol") or "TCP").upper(),
                        _int(p.get("targetPort"))))
    return out


def command_of(we: Resource) -> Optional[list]:
    text = we.annotations.get(COMMAND_ANNOTATION)
    if text is None:
        return None
    try:
        argv = shlex.split(str(text))
    except ValueError as e:
        raise InputError(f"{_where(we, ('metadata', 'annotations'))}: {COMMAND_ANNOTATION} cannot be split "
                         f"into words: {e}", hint='quote it as a shell command line, e.g. "python3 app.py"') from None
    return argv or None


def _networking(resources: ResourceSet, kind: str) -> list[Resource]:
    """The networking.istio.io objects of a kind, by namespace and name."""
    return [r for r in _by_name(resources.of_kind(kind)) if r.group == "networking.istio.io"]


def _by_name(resources) -> list[Resource]:
    return sorted(resources, key=lambda r: (r.namespace or "", r.name))


def build(resources: ResourceSet, gateway_addresses: Optional[dict] = None) -> Mesh:
    """Services, workloads and gateways of a resource set (InputError on unusable input).
    `gateway_addresses` keeps the addresses gateways already have (key → address)."""
    warnings: list[str] = []
    used: dict[str, str] = {}  # address → NAMESPACE/NAME of the workload or gateway that has it
    workloads = _workloads(resources, used)
    services = _services(resources, workloads, warnings)
    gateways = _gateways(resources, used, gateway_addresses or {})
    return Mesh(resources, services, workloads, gateways, warnings)


def _workloads(resources: ResourceSet, used: dict[str, str]) -> dict[str, Workload]:
    workloads: dict[str, Workload] = {}
    for we in _networking(resources, "WorkloadEntry"):
        spec = we.spec
        ns = we.namespace or "default"
        address = _loopback(spec.get("address"), we, ("spec", "address"))
        if address in used:
            raise InputError(f"{_where(we, ('spec', 'address'))}: address {address} is already taken by "
                             f"WorkloadEntry {used[address]}", hint="give every workload its own loopback address")
        used[address] = f"{ns}/{we.name}"
        ports = {}
        for name, value in (spec.get("ports") or {}).items() if isinstance(spec.get("ports"), dict) else ():
            n = _int(value)
            if n is None:
                raise InputError(f"{_where(we, ('spec', 'ports', name))}: port {value!r} is not a port")
            if n in RESERVED_PORTS:
                raise InputError(f"{_where(we, ('spec', 'ports', name))}: port {n} is taken by the workload's "
                                 "sidecar (15000 admin, 15001 outbound, 15006 inbound)", hint="use another port")
            ports[str(name)] = n
        w = Workload(we.name, ns, address, label_map(spec.get("labels")), str(spec.get("serviceAccount") or "default"),
                     ports, command_of(we), we)
        workloads[w.key] = w
    return workloads


def _services(resources: ResourceSet, workloads: dict[str, Workload], warnings: list[str]) -> dict[str, Service]:
    by_label = LabelIndex(workloads.values(), labels_of=lambda w: w.labels)
    services: dict[str, Service] = {}
    for se in _networking(resources, "ServiceEntry"):
        spec = se.spec
        ns = se.namespace or "default"
        selector = label_map((spec.get("workloadSelector") or {}).get("labels")
                             if isinstance(spec.get("workloadSelector"), dict) else None)
        ports = _ports(se)
        static = []
        for i, ep in enumerate(spec.get("endpoints") or []):
            if not isinstance(ep, dict):
                continue
            try:
                static.append((_loopback(ep.get("address"), se, ("spec", "endpoints", i, "address")), ep))
            except InputError:
                warnings.append(f"{_where(se, ('spec', 'endpoints', i))}: endpoint {ep.get('address')} is not a "
                                "loopback address; the local mesh leaves it out")
        members = by_label.select(selector, ns) if selector else []  # no selector: no workloads
        for host in spec.get("hosts") or []:
            if not isinstance(host, str) or host.startswith("*"):
                continue
            fqdn = hosts.fqdn(host, ns)
            svc = services.get(fqdn)
            if svc is None:
                services[fqdn] = Service(fqdn, ns, ports, selector, se, list(members), list(static))
            else:  # a second ServiceEntry for the host adds its endpoints
                svc.workloads.extend(w for w in members if w not in svc.workloads)
                svc.static_endpoints.extend(static)
            if not members and not static and str(spec.get("resolution") or "NONE").upper() != "STATIC":
                warnings.append(f"{_where(se)}: {host} has no local endpoints (resolution "
                                f"{spec.get('resolution') or 'NONE'}); requests to it answer 503")
    return services


def _gateways(resources: ResourceSet, used: dict[str, str], kept: dict[str, str]) -> dict[str, GatewayProxy]:
    gateways: dict[str, GatewayProxy] = {}
    taken = {ipaddress.ip_address(a) for a in list(used) + list(kept.values())}
    free = (str(a) for a in GATEWAY_NET.hosts() if a not in taken)
    for gw in _networking(resources, "Gateway"):
        labels = label_map(gw.spec.get("selector")) or {"istio": "ingressgateway"}
        servers = [s for s in gw.spec.get("servers") or [] if isinstance(s, dict)]
        key = f"{gw.name}.{gw.namespace or 'default'}"
        pinned = gw.annotations.get(ADDRESS_ANNOTATION)
        if pinned is not None:
            address = _loopback(pinned, gw, ("metadata", "annotations"))
            if address in used:
                raise InputError(f"{_where(gw, ('metadata', 'annotations'))}: address {address} is already taken by "
                                 f"WorkloadEntry {used[address]}", hint="give the gateway an address of its own")
            used[address] = f"{gw.namespace}/{gw.name}"
        else:
            address = kept.get(key) or next(free)
        g = GatewayProxy(gw.name, gw.namespace or "default", address, labels, gw, servers)
        gateways[g.key] = g
    return gateways


def gateway_listen_port(number: int) -> int:
    """The port a gateway server binds locally: its own number, or number+8000 below 1024
    (as Istio's ingress Service maps 80 to the pod's 8080), so no privileges are needed."""
    return number + 8000 if number < 1024 else number

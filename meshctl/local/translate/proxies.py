"""Every proxy of a mesh: a sidecar per workload and an ingress gateway per Gateway, each as its
bootstrap and the files its path_config_sources read (`cds.json`, `lds.json`, `rds_<name>.json`),
and the same configuration as one static bootstrap for `envoy --mode validate`."""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Optional

from meshctl.errors import InputError
from meshctl.hosts import CLUSTER_DOMAIN_SUFFIX, host_matches
from meshctl.local.model import (
    ADMIN_PORT,
    INBOUND_PORT,
    ROOT_NAMESPACE,
    GatewayProxy,
    Keyed,
    Mesh,
    Port,
    Service,
    Workload,
    gateway_listen_port,
)
from meshctl.local.translate import listeners
from meshctl.local.translate.clusters import Clusters, inbound_cluster
from meshctl.local.translate.index import Index
from meshctl.local.translate.routes import Routes, default_route, domains, gateway_ref
from meshctl.local.translate.xds import (
    HTTP_PROXY_ROUTE,
    ROUTE_TYPE,
    address,
    config_source,
    discovery,
    sni,
    version_of,
)
from meshctl.selectors import label_map, matches


@dataclass
class ProxyConfig(Keyed):
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
    app: Optional[dict] = None      # {"argv", "address", "port", "source"} for workloads with a command
    workload: Optional[Workload] = None

    @property
    def admin(self) -> str:
        return f"{self.address}:{ADMIN_PORT}"


def bootstrap(kind: str, key: str, namespace: str, host: str, metadata: dict) -> dict:
    return {
        "node": {"id": f"{'router' if kind == 'gateway' else 'sidecar'}~{host}~{key}~{namespace}.{CLUSTER_DOMAIN_SUFFIX}",
                 "cluster": key, "metadata": metadata},
        "admin": {"address": address(host, ADMIN_PORT)},
        "dynamic_resources": {"cds_config": config_source("cds.json"), "lds_config": config_source("lds.json")},
        "stats_flush_interval": "1s",
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {
            "overload.global_downstream_max_connections": 50000,
            "re2.max_program_size.error_level": 32768}}]},
    }


class Renderer:
    """Render every proxy of a mesh. Shared parts (clusters, the outbound routes of a namespace)
    are built once and referenced by every proxy that has them."""

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self.index = Index(mesh)
        self.clusters = Clusters(self.index)
        self.routes = Routes(self.index)
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

    def outbound_routes(self, namespace: str, labels: Optional[dict]) -> tuple[dict, dict]:
        """(route configuration `http_proxy`, its file) for the sidecars of a namespace (and of
        their labels, where a VirtualService matches on sourceLabels)."""
        key = (namespace, tuple(sorted(labels.items())) if (labels and self.index.uses_source_labels) else None)
        cached = self._outbound_routes.get(key)
        if cached is not None:
            return cached
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
                    routes = [default_route(svc, port)]
                vhosts.append({"name": f"{fqdn}:{port.number}", "domains": domains(svc, port, namespace),
                               "routes": routes})
        vhosts.append({"name": "block_all", "domains": ["*"], "routes": [
            {"name": "block_all", "match": {"prefix": "/"}, "direct_response": {
                "status": 502, "body": {"inline_string": "no service in the local mesh answers to this host\n"}}}]})
        rc = {"@type": ROUTE_TYPE, "name": HTTP_PROXY_ROUTE, "virtual_hosts": vhosts, "validate_clusters": False}
        self._outbound_routes[key] = (rc, discovery([rc]))
        return self._outbound_routes[key]

    def inbound_ports(self, w: Workload) -> list[listeners.InboundPort]:
        """The HTTP ports a workload serves (of its services, else its own named ports), with the
        SNIs that reach each: one per subset of its services' DestinationRules it belongs to."""
        ports: dict[int, listeners.InboundPort] = {}
        for svc in self.services_of.get(w.key, ()):
            dr = self.index.destination_rule(svc)
            subsets = self.index.subsets(dr)
            mine = [""] + [str(s["name"]) for s in subsets if matches(w.labels, label_map(s.get("labels")))]
            for port in svc.ports:
                if not port.http:
                    continue
                entry = ports.setdefault(port.number, (port, w.port_for(port), []))
                entry[2].extend(sni(port.number, sub, svc.fqdn) for sub in mine)
        if not ports:
            for name, number in sorted(w.ports.items()):
                ports[number] = (Port(number, name, "HTTP"), number, [])
        return [ports[n] for n in sorted(ports)]

    def sidecar(self, w: Workload) -> ProxyConfig:
        logs = self.index.access_logging(w.namespace, w.labels)
        ports = self.inbound_ports(w)
        rc, rc_file = self.outbound_routes(w.namespace, w.labels)
        lds, route_configs = [], [rc]
        if ports:
            listener, inbound_routes = listeners.inbound(self.index, w, ports, logs)
            lds.append(listener)
            route_configs += inbound_routes
        lds.append(listeners.outbound(w.address, logs))
        files = {"cds.json": self.cds_file([inbound_cluster(w, port, target) for port, target, _ in ports]),
                 "lds.json": discovery(lds)}
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
                           bootstrap("sidecar", w.key, w.namespace, w.address, meta), files, [r["name"] for r in route_configs],
                           inbound=f"{w.address}:{INBOUND_PORT}" if ports else None, app=app, workload=w)

    def gateway_servers(self, g: GatewayProxy) -> dict[int, list[dict]]:
        """A Gateway's HTTP servers by port (a warning for each server not served locally)."""
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
        return by_port

    def gateway_routes(self, g: GatewayProxy, number: int, servers: list[dict], per_route: dict) -> dict:
        """The route configuration `http.PORT`: the VirtualServices bound to the Gateway, by the
        hosts its servers on that port accept."""
        gw_ref = f"{g.namespace}/{g.name}"
        server_hosts = [str(h) for s in servers for h in s.get("hosts") or []]
        vhosts: dict[str, list] = {}
        for vs in self.index.virtual_services:
            gws = [gateway_ref(vs, str(x)) for x in vs.spec.get("gateways") or []]
            if gw_ref not in gws:
                continue
            for host in vs.spec.get("hosts") or []:
                host = str(host)
                if not any(_server_host_matches(sh, vs.namespace or "default", host) for sh in server_hosts):
                    continue
                vhosts.setdefault(host, []).extend(
                    self.routes.for_virtual_service(vs, number, ROOT_NAMESPACE, g.labels, gateway=gw_ref))
        return {"@type": ROUTE_TYPE, "name": f"http.{number}", "validate_clusters": False, "virtual_hosts": [
            {"name": f"{h}:{number}", "domains": ["*"] if h == "*" else [h, f"{h}:*"], "routes": routes,
             **({"typed_per_filter_config": per_route} if per_route else {})}
            for h, routes in sorted(vhosts.items())]}

    def gateway(self, g: GatewayProxy) -> ProxyConfig:
        logs = self.index.access_logging(ROOT_NAMESPACE, g.labels)
        per_route = listeners.rbac_per_route(self.index.authz, ROOT_NAMESPACE, g.labels)
        by_port = self.gateway_servers(g)
        lds, route_files, names, ingress = [], {}, [], []
        for number in sorted(by_port):
            rc = self.gateway_routes(g, number, by_port[number], per_route)
            route_files[f"rds_{rc['name']}.json"] = discovery([rc])
            names.append(rc["name"])
            listen = gateway_listen_port(number)
            lds.append(listeners.gateway(g.address, number, listen, rc["name"], logs))
            ingress.append({"gateway": f"{g.namespace}/{g.name}", "port": number, "address": f"{g.address}:{listen}"})
        files = {"cds.json": self.cds_file([]), "lds.json": discovery(lds), **route_files}
        meta = {"NAMESPACE": ROOT_NAMESPACE, "NAME": g.name, "LABELS": dict(g.labels),
                "SERVICE_ACCOUNT": "istio-ingressgateway-service-account", "ISTIO_VERSION": "meshctl-local",
                "INSTANCE_IPS": g.address}
        return ProxyConfig(g.name, g.namespace, "gateway", g.address, g.identity,
                           bootstrap("gateway", g.key, g.namespace, g.address, meta), files, names, ingress=ingress)

    def render(self) -> dict[str, ProxyConfig]:
        out = {}
        for key in sorted(self.mesh.workloads):
            out[key] = self.sidecar(self.mesh.workloads[key])
        for key in sorted(self.mesh.gateways):
            if key in out:
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
    boot["admin"] = {"address": address("127.0.0.1", 0)}
    clusters = [strip({k: v for k, v in c.items() if k != "@type"}) for c in cfg.files["cds.json"]["resources"]]
    lds = [strip({k: v for k, v in lst.items() if k != "@type"}) for lst in cfg.files["lds.json"]["resources"]]
    boot["static_resources"] = {"clusters": clusters, "listeners": lds,
                                "secrets": [{k: v for k, v in s.items() if k != "@type"} for s in secrets.values()]}
    return boot

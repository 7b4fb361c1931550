"""The resources a render reads, indexed once: DestinationRules and VirtualServices by host (as
istiod resolves them: short hosts in the resource's namespace, wildcards), the PeerAuthentication
mode of each workload, the Telemetry that decides its access log."""
from __future__ import annotations

from typing import Any, Iterable, Optional

from meshctl import hosts
from meshctl.hosts import host_matches
from meshctl.local.model import ROOT_NAMESPACE, Mesh, Service, Workload
from meshctl.local.translate import authz
from meshctl.resources import Resource


class Index:
    """The mesh's behaviour resources, indexed once per render: what applies to a service
    (its DestinationRule and VirtualServices by host) and to a workload (PeerAuthentication,
    Telemetry)."""

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self.virtual_services = [r for r in mesh.of_kind("VirtualService") if r.group == "networking.istio.io"]
        self.destination_rules = [r for r in mesh.of_kind("DestinationRule") if r.group == "networking.istio.io"]
        self.peer_auth = [r for r in mesh.of_kind("PeerAuthentication") if r.group == "security.istio.io"]
        self.authz = [r for r in mesh.of_kind("AuthorizationPolicy") if r.group == "security.istio.io"]
        self.telemetry = [r for r in mesh.of_kind("Telemetry") if r.group == "telemetry.istio.io"]
        self._dr: dict[str, Optional[Resource]] = {}
        self._mode: dict[str, str] = {}
        self._subsets: dict[int, list] = {}
        self._mesh_vs_hosts = None
        self._dr_hosts = None
        self.uses_source_labels = any(
            isinstance(m, dict) and m.get("sourceLabels")
            for vs in self.virtual_services for h in vs.spec.get("http") or [] if isinstance(h, dict)
            for m in h.get("match") or [])

    def destination_rule(self, svc: Service) -> Optional[Resource]:
        """The DestinationRule of a service: the one in its namespace, else the root namespace's,
        else any other; an exact host before a wildcard."""
        if self._dr_hosts is None:
            self._dr_hosts = _by_host((dr.spec.get("host"), dr) for dr in self.destination_rules)
        if svc.fqdn not in self._dr:
            best = None
            for dr in _lookup(self._dr_hosts, svc.fqdn):
                host = str(dr.spec.get("host"))
                rank = (0 if dr.namespace == svc.namespace else 1 if dr.namespace == ROOT_NAMESPACE else 2,
                        0 if not str(host).startswith("*") else 1)
                if best is None or rank < best[0]:
                    best = (rank, dr)
            self._dr[svc.fqdn] = best[1] if best else None
        return self._dr[svc.fqdn]

    def mtls_mode(self, w: Workload) -> str:
        if w.key not in self._mode:
            self._mode[w.key] = authz.mtls_mode(self.peer_auth, w.namespace, w.labels)
        return self._mode[w.key]

    def access_logging(self, namespace: str, labels: dict) -> bool:
        """Telemetry accessLogging: the most specific policy's `disabled` decides (default on)."""
        best = None
        for t in self.telemetry:
            level = authz.scope(t, namespace, labels)
            if level is None:
                continue
            logs = t.spec.get("accessLogging")
            if not isinstance(logs, list) or not logs:
                continue
            if best is None or level > best[0]:
                best = (level, not any(isinstance(x, dict) and x.get("disabled") is True for x in logs))
        return True if best is None else best[1]

    def subsets(self, dr: Optional[Resource]) -> list[dict]:
        if dr is None:
            return []
        hit = self._subsets.get(id(dr))
        if hit is None:
            hit = self._subsets[id(dr)] = [s for s in (dr.spec.get("subsets") or []) if isinstance(s, dict) and s.get("name")]
        return hit

    def virtual_services_for(self, fqdn: str) -> list[Resource]:
        """VirtualServices that serve `fqdn` for sidecars (`gateways` empty or `mesh`)."""
        if self._mesh_vs_hosts is None:
            self._mesh_vs_hosts = _by_host(
                (h, vs) for vs in self.virtual_services if _for_sidecars(vs) for h in vs.spec.get("hosts") or [])
        out = list(dict.fromkeys(_lookup(self._mesh_vs_hosts, fqdn)))
        return sorted(out, key=lambda r: (r.namespace or "", r.name))


def _for_sidecars(vs: Resource) -> bool:
    gws = [str(g) for g in vs.spec.get("gateways") or []]
    return not gws or "mesh" in gws


def _by_host(entries: Iterable[tuple[Any, Resource]]) -> tuple[dict[str, list[Resource]], list[tuple[str, Resource]]]:
    """(exact host → resources, [(wildcard host, resource)]) of (host, resource) pairs, each host
    resolved in its resource's namespace as istiod does; hosts that are not strings are left out."""
    exact: dict[str, list[Resource]] = {}
    wild: list[tuple[str, Resource]] = []
    for host, r in entries:
        if not isinstance(host, str):
            continue
        fqdn = hosts.fqdn(host, r.namespace or "default")
        if fqdn.startswith("*"):
            wild.append((fqdn, r))
        else:
            exact.setdefault(fqdn, []).append(r)
    return exact, wild


def _lookup(by_host: tuple[dict, list], fqdn: str) -> list[Resource]:
    exact, wild = by_host
    return exact.get(fqdn, []) + [r for h, r in wild if host_matches(h, fqdn)]

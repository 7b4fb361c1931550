"""The Istio kinds meshctl knows, and their JSON Schemas.

The schemas are data authored here (one `<kind>.json` per kind beside this file, a JSON Schema
for the whole object's `spec`). `analyze` validates with them (validate.py) and `install`
builds the CRDs' openAPIV3Schema from them, so the cluster and the analyzer agree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class IstioKind:
    kind: str
    group: str
    plural: str
    versions: tuple[str, ...]  # served versions, storage version first
    short_names: tuple[str, ...] = ()

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    def api_versions(self) -> tuple[str, ...]:
        return tuple(f"{self.group}/{v}" for v in self.versions)


_NET3 = ("v1", "v1alpha3", "v1beta1")
_SEC = ("v1", "v1beta1")

KINDS: tuple[IstioKind, ...] = (
    IstioKind("VirtualService", "networking.istio.io", "virtualservices", _NET3, ("vs",)),
    IstioKind("DestinationRule", "networking.istio.io", "destinationrules", _NET3, ("dr",)),
    IstioKind("Gateway", "networking.istio.io", "gateways", _NET3, ("gw",)),
    IstioKind("ServiceEntry", "networking.istio.io", "serviceentries", _NET3, ("se",)),
    IstioKind("Sidecar", "networking.istio.io", "sidecars", _NET3),
    IstioKind("WorkloadEntry", "networking.istio.io", "workloadentries", _NET3, ("we",)),
    IstioKind("WorkloadGroup", "networking.istio.io", "workloadgroups", _NET3, ("wg",)),
    IstioKind("EnvoyFilter", "networking.istio.io", "envoyfilters", ("v1alpha3",)),
    IstioKind("ProxyConfig", "networking.istio.io", "proxyconfigs", ("v1beta1",)),
    IstioKind("AuthorizationPolicy", "security.istio.io", "authorizationpolicies", _SEC, ("ap",)),
    IstioKind("PeerAuthentication", "security.istio.io", "peerauthentications", _SEC, ("pa",)),
    IstioKind("RequestAuthentication", "security.istio.io", "requestauthentications", _SEC, ("ra",)),
    IstioKind("Telemetry", "telemetry.istio.io", "telemetries", ("v1", "v1alpha1"), ("telemetry",)),
    IstioKind("WasmPlugin", "extensions.istio.io", "wasmplugins", ("v1alpha1",)),
    IstioKind("TrafficExtension", "extensions.istio.io", "trafficextensions", ("v1alpha1",)),
)

BY_KIND: dict[str, IstioKind] = {k.kind: k for k in KINDS}
ISTIO_GROUPS = frozenset(k.group for k in KINDS)


def istio_kind(api_version: str, kind: str) -> IstioKind | None:
    """The IstioKind for an object's apiVersion/kind, or None if it is not an Istio kind."""
    k = BY_KIND.get(kind)
    if k is None:
        return None
    group = api_version.rpartition("/")[0]
    return k if group == k.group else None


@lru_cache(maxsize=None)
def spec_schema(kind: str) -> dict:
    """The JSON Schema of `spec` for an Istio kind (loaded once)."""
    with open(_DIR / f"{kind.lower()}.json", encoding="utf-8") as fh:
        return json.load(fh)


def crd_openapi(kind: str, version: str | None = None) -> dict:
    """The CRD `openAPIV3Schema` for an Istio kind, built from its spec schema (see crd.py)."""
    from meshctl.schemas.crd import crd_openapi as _build

    return _build(kind, version)

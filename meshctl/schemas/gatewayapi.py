"""The Kubernetes Gateway API kinds meshctl validates, and their schemas.

The schemas in `gateway-api/<kind>.json` are generated from the released CRDs of the Gateway API
project (standard channel), with their CEL rules (`x-kubernetes-validations`) and defaults, so
`analyze` refuses what the API server refuses:

    python -m meshctl.schemas.gatewayapi DIR     # DIR: config/crd/standard of a release

writes one JSON Schema per kind (the `spec` of the storage version; every served version must
share it) and `gateway-api/index.json` (the release, and per kind its plural, scope and served
versions). Descriptions are dropped; objects with declared properties are closed, as kubectl's
strict field validation treats them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

GROUP = "gateway.networking.k8s.io"
_DIR = Path(__file__).resolve().parent / "gateway-api"
# Kinds of the standard channel that Istio implements (UDPRoute is left out: Istio does not serve it).
SUPPORTED = ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant", "BackendTLSPolicy",
             "TCPRoute", "TLSRoute", "ListenerSet")


@dataclass(frozen=True)
class GatewayAPIKind:
    kind: str
    plural: str
    versions: tuple[str, ...]  # served versions, storage version first
    namespaced: bool

    @property
    def group(self) -> str:
        return GROUP

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    def api_versions(self) -> tuple[str, ...]:
        return tuple(f"{GROUP}/{v}" for v in self.versions)


@lru_cache(maxsize=None)
def index() -> dict:
    """The generated index: `{"bundleVersion": "v1.6.1", "channel": ..., "kinds": {...}}`."""
    with open(_DIR / "index.json", encoding="utf-8") as fh:
        return json.load(fh)


def bundle_version() -> str:
    """The Gateway API release the schemas come from (`v1.6.1`)."""
    return index()["bundleVersion"]


@lru_cache(maxsize=None)
def kinds() -> dict[str, GatewayAPIKind]:
    return {k: GatewayAPIKind(k, v["plural"], tuple(v["versions"]), v["namespaced"])
            for k, v in index()["kinds"].items()}


BUNDLE_VERSION_ANNOTATION = f"{GROUP}/bundle-version"
# Gateway API CRDs older than these bundle versions are not watched by Istio's control plane.
MINIMUM_CRD_VERSIONS = {
    "grpcroutes.gateway.networking.k8s.io": (1, 1, 0),
    "backendtlspolicies.gateway.networking.k8s.io": (1, 4, 0),
    "tlsroutes.gateway.networking.k8s.io": (1, 5, 0),
    "tcproutes.gateway.networking.k8s.io": (1, 6, 0),
}
# What ambient mode's waypoints need served (as v1).
WAYPOINT_CRDS = ("gatewayclasses", "gateways", "httproutes")


def install_command(version: str | None = None) -> str:
    """The command that installs (or upgrades) the standard channel CRDs of a release."""
    return ("kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/"
            f"{version or bundle_version()}/standard-install.yaml")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(1, 6, 1) from "v1.6.1" (a pre-release suffix ignored); None when it is not a version."""
    import re

    m = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?$", str(text).strip())
    if not m:
        return None
    return tuple(int(g) if g else 0 for g in m.groups())  # type: ignore[return-value]


def gateway_api_kind(api_version: str, kind: str) -> GatewayAPIKind | None:
    """The Gateway API kind of an object's apiVersion/kind, or None."""
    if api_version.rpartition("/")[0] != GROUP:
        return None
    return kinds().get(kind)


@lru_cache(maxsize=None)
def spec_schema(kind: str) -> dict:
    """The JSON Schema of `spec` of a Gateway API kind (loaded once)."""
    with open(_DIR / f"{kind.lower()}.json", encoding="utf-8") as fh:
        return json.load(fh)


# --- generation from the released CRDs -------------------------------------------------------------

_KEEP = ("type", "properties", "additionalProperties", "required", "enum", "pattern", "minLength",
         "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "items", "minItems",
         "maxItems", "minProperties", "maxProperties", "format", "default", "oneOf", "anyOf", "allOf",
         "not", "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
         "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


def _convert(node):
    """One OpenAPI node of a CRD → the JSON Schema the compiler takes."""
    if not isinstance(node, dict):
        return node
    out: dict = {}
    for k in _KEEP:
        if k not in node:
            continue
        v = node[k]
        if k == "properties":
            out[k] = {name: _convert(sub) for name, sub in v.items()}
        elif k in ("items", "not") or (k == "additionalProperties" and isinstance(v, dict)):
            out[k] = _convert(v)
        elif k in ("oneOf", "anyOf", "allOf"):
            out[k] = [_convert(b) for b in v]
        elif k == "x-kubernetes-validations":
            out[k] = [{f: r[f] for f in ("rule", "message", "fieldPath", "reason") if f in r} for r in v]
        else:
            out[k] = v
    if out.get("anyOf") == [{"format": "ipv4"}, {"format": "ipv6"}]:
        del out["anyOf"]
        out["x-meshctl-format"] = "ip"
    switch = _discriminated(out.get("oneOf"))
    if switch is not None:
        del out["oneOf"]
        out.update(switch)
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-list-type") == "atomic":
        del out["x-kubernetes-list-type"]
    return out


def _discriminated(branches) -> dict | None:
    """`oneOf: [{properties: {F: {enum: [X]}, ...rest}}, {properties: {F: {not: {enum: [X]}}}}]`
    ("when F is X, the rest applies") as `if`/`then`, so a failure names the field that is
    wrong instead of "matches none of the allowed forms"."""
    if not isinstance(branches, list) or len(branches) != 2:
        return None
    first, second = (b.get("properties") if isinstance(b, dict) and set(b) == {"properties"} else None
                     for b in branches)
    if not first or not second or len(second) != 1:
        return None
    (field, negated), = second.items()
    enum = first.get(field)
    if not isinstance(enum, dict) or set(enum) != {"enum"} or negated != {"not": enum}:
        return None
    rest = {k: v for k, v in first.items() if k != field}
    return {"if": {"properties": {field: enum}, "required": [field]}, "then": {"properties": rest}}


def generate(crd_dir: str, out_dir: Path = _DIR) -> dict:
    """Write the schemas and the index from a release's `config/crd/standard` directory."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    index_out: dict = {"source": "kubernetes-sigs/gateway-api config/crd/standard", "kinds": {}}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            kind = spec["names"]["kind"]
            if kind not in SUPPORTED:
                continue
            ann = doc["metadata"].get("annotations", {})
            index_out["bundleVersion"] = ann.get(f"{GROUP}/bundle-version")
            index_out["channel"] = ann.get(f"{GROUP}/channel")
            served = [v for v in spec["versions"] if v.get("served")]
            storage = next(v for v in served if v.get("storage"))
            schemas = {v["name"]: _convert(v["schema"]["openAPIV3Schema"]["properties"]["spec"]) for v in served}
            first = schemas[storage["name"]]
            for name, s in schemas.items():
                if s != first:
                    raise SystemExit(f"{kind}: served version {name} differs from {storage['name']}")
            root = storage["schema"]["openAPIV3Schema"]
            if "spec" in root.get("required", []):
                first["x-meshctl-required"] = True
            first = {"$comment": f"Generated from the Gateway API {index_out['bundleVersion']} CRD "
                                 f"{doc['metadata']['name']} by meshctl.schemas.gatewayapi; do not edit.", **first}
            (out_dir / f"{kind.lower()}.json").write_text(json.dumps(first, indent=1, sort_keys=False) + "\n",
                                                          encoding="utf-8")
            versions = [storage["name"]] + [v["name"] for v in served if v is not storage]
            index_out["kinds"][kind] = {"plural": spec["names"]["plural"], "versions": versions,
                                        "namespaced": spec["scope"] == "Namespaced"}
    missing = set(SUPPORTED) - set(index_out["kinds"])
    if missing:
        raise SystemExit(f"CRDs not found in {crd_dir}: {', '.join(sorted(missing))}")
    index_out["kinds"] = dict(sorted(index_out["kinds"].items()))
    (out_dir / "index.json").write_text(json.dumps(index_out, indent=1) + "\n", encoding="utf-8")
    return index_out


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m meshctl.schemas.gatewayapi CRD_DIR (config/crd/standard of a release)")
    print(json.dumps(generate(sys.argv[1]), indent=1))

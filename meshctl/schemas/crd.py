"""CRD openAPIV3Schema built from meshctl's own spec schemas.

Kubernetes accepts only *structural* schemas in apiextensions.k8s.io/v1 CRDs: every node has a
`type` (or `x-kubernetes-int-or-string` / `x-kubernetes-preserve-unknown-fields`), no `$ref`,
`additionalProperties` only as the value schema of a map (never `false`, never beside
`properties`), and logical junctors (`oneOf`, `anyOf`, `allOf`, `not`) may only restate
value validations (no `type`, `properties`, `items`, `additionalProperties`, `description`,
`default`, `nullable`... inside them).  The conversion below keeps every check Kubernetes can
express and drops the rest (our analyzer still enforces them).
"""
from __future__ import annotations

import copy
from typing import Any

# Keywords allowed inside oneOf/anyOf/allOf/not branches of a structural schema.
_JUNCTOR_OK = frozenset({
    "required", "enum", "format", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "multipleOf", "minProperties", "maxProperties", "oneOf", "anyOf", "allOf", "not",
})
# JSON Schema keywords that OpenAPI v3 / Kubernetes does not know or forbids in CRDs
# (`uniqueItems: true` is refused by the API server; the analyzer still checks it).
_DROP = frozenset({"$schema", "$id", "$defs", "definitions", "$comment", "const", "examples",
                   "if", "then", "else", "dependentRequired", "dependentSchemas", "propertyNames",
                   "patternProperties", "unevaluatedProperties", "contains", "prefixItems",
                   "x-meshctl-regex", "title", "$anchor", "uniqueItems"})
# Formats the API server understands (others are dropped: they would only warn).
_K8S_FORMATS = frozenset({"int32", "int64", "float", "double", "byte", "date", "date-time",
                          "password", "uri", "email", "hostname", "ipv4", "ipv6", "cidr",
                          "mac", "uuid", "duration", "bsonobjectid", "uri"})


def _resolve(node: Any, root: dict) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def _const_to_enum(node: dict) -> dict:
    if "const" in node:
        node = dict(node)
        node["enum"] = [node.pop("const")]
    return node


def _junctor_branch(node: Any, root: dict) -> dict | None:
    """A oneOf/anyOf/... branch reduced to what a structural schema allows there."""
    node = _const_to_enum(_resolve(node, root))
    out: dict = {}
    for k, v in node.items():
        if k in ("oneOf", "anyOf", "allOf"):
            branches = [b for b in (_junctor_branch(x, root) for x in v) if b is not None]
            if k == "allOf":
                if branches:  # dropping a conjunct only loosens the check
                    out[k] = branches
            elif len(branches) == len(v) and branches:
                out[k] = branches
            else:
                return None  # a branch we cannot express: the junctor as a whole must go
        elif k == "not":
            b = _junctor_branch(v, root)
            if b is None:
                return None
            out[k] = b
        elif k == "properties":
            # "required" inside properties of a branch is not allowed; only top-level required
            return None
        elif k in _JUNCTOR_OK:
            out[k] = copy.deepcopy(v)
        elif k in ("type", "description", "title", "$comment", "additionalProperties"):
            continue
        else:
            return None
    return out if out else None


def structural(node: Any, root: dict) -> dict:
    """One JSON Schema node → a Kubernetes structural schema node."""
    node = _const_to_enum(_resolve(node, root))
    if node is True or node == {}:
        return {"x-kubernetes-preserve-unknown-fields": True}
    out: dict = {}
    types = node.get("type")
    nullable = False
    if isinstance(types, list):
        ts = [t for t in types if t != "null"]
        nullable = len(ts) < len(types)
        if set(ts) == {"integer", "string"}:
            out["x-kubernetes-int-or-string"] = True
            ts = []
        elif set(ts) == {"integer", "number"}:
            ts = ["number"]
        types = ts[0] if len(ts) == 1 else (None if not ts else "__many__")
    if types == "__many__":
        return {"x-kubernetes-preserve-unknown-fields": True}
    if types:
        out["type"] = types
    if nullable:
        out["nullable"] = True
    for k, v in node.items():
        if k in _DROP or k == "type" or k == "$ref":
            continue
        if k == "properties":
            out["properties"] = {name: structural(sub, root) for name, sub in v.items()}
        elif k == "items":
            out["items"] = structural(v, root)
        elif k == "additionalProperties":
            if isinstance(v, dict) and "properties" not in node:
                out["additionalProperties"] = structural(v, root)
            elif v is True and "properties" not in node:
                out["x-kubernetes-preserve-unknown-fields"] = True
            # False (closed object) is the structural default once unknown fields are pruned.
        elif k in ("oneOf", "anyOf", "allOf"):
            branches = [_junctor_branch(b, root) for b in v]
            if k == "allOf":
                kept = [b for b in branches if b is not None]
                if kept:
                    out[k] = kept
            elif all(b is not None for b in branches) and branches:
                out[k] = branches
        elif k == "not":
            b = _junctor_branch(v, root)
            if b is not None:
                out[k] = b
        elif k == "format":
            if v in _K8S_FORMATS:
                out[k] = v
        elif k in ("description", "required", "enum", "pattern", "minimum", "maximum",
                   "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems",
                   "maxItems", "multipleOf", "minProperties", "maxProperties",
                   "default", "nullable", "x-kubernetes-preserve-unknown-fields",
                   "x-kubernetes-int-or-string", "x-kubernetes-list-type",
                   "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
                   "x-kubernetes-validations", "x-kubernetes-embedded-resource"):
            if k in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(v, bool):
                # JSON Schema 2020-12 numeric form → OpenAPI v3 boolean form
                out["minimum" if k == "exclusiveMinimum" else "maximum"] = v
                out[k] = True
            else:
                out[k] = copy.deepcopy(v)
    if "type" not in out and not out.get("x-kubernetes-int-or-string") \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        if "properties" in out or "additionalProperties" in out:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("x-kubernetes-int-or-string"):
        for bad in ("type", "enum", "pattern", "format"):
            out.pop(bad, None)
    return out


def crd_openapi(kind: str, version: str | None = None) -> dict:
    """The `openAPIV3Schema` of the CRD of an Istio kind (the same for every served version)."""
    from meshctl.schemas import BY_KIND, spec_schema

    if kind not in BY_KIND:
        raise KeyError(f"not an Istio kind: {kind}")
    try:
        spec = spec_schema(kind)
    except FileNotFoundError:
        spec = {"type": "object", "additionalProperties": True}
    spec_node = structural(spec, spec)
    spec_node.pop("description", None)
    spec_node["description"] = f"Spec of {kind}; see https://istio.io/latest/docs/reference/config/"
    out = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_node,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    if spec.get("x-meshctl-required"):
        out["required"] = ["spec"]
    return out

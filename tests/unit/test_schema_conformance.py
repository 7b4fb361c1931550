"""Our schemas against Istio's: everything Istio's CRDs accept we accept, what they reject we reject.

Istio's CRD schemas (../shared/conformance/istio-crds/crd-all.gen.yaml) are walked for every kind
and served version; from each we build a sample object that sets every property (one entry of
each map and list) and check that our validator finds no unknown field and no type error in it.
Then we mutate the sample where Istio's schema has a check (enum, required field, duration rule,
port range, length/size limits, "only one of" rules) and check that ours reports that path too.
The CRDs `meshctl install` applies must state every rule (CEL or structural) Istio's state, and
Istio's analyzer test data must validate except for the objects listed in KNOWN_INVALID.
"""
from __future__ import annotations

import copy
import functools
import re

import pytest
import yaml

from meshctl.resources import Resource
from meshctl.schemas import BY_KIND, KINDS
from meshctl.schemas.validate import validate

DURATION_RULE = "duration(self) >= duration('1ms')"
PORT_RULE = "0 < self && self <= 65535"


@functools.lru_cache(maxsize=1)
def _istio_crds(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        docs = [d for d in yaml.load_all(fh, Loader=yaml.CSafeLoader) if d]
    return {d["spec"]["names"]["kind"]: d for d in docs}


@pytest.fixture
def istio_crds(shared_dir):
    return _istio_crds(str(shared_dir / "conformance" / "istio-crds" / "crd-all.gen.yaml"))


def _rules(node) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


def sample(node):
    """A value for an Istio schema node that sets every property it declares."""
    t = node.get("type")
    if DURATION_RULE in _rules(node):
        return "1s"
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return {"anything": {"nested": [1, "two"]}}
    if t == "object" or "properties" in node:
        if "properties" in node:
            return {k: sample(v) for k, v in node["properties"].items()}
        if isinstance(node.get("additionalProperties"), dict):
            return {"8080": sample(node["additionalProperties"])}
        return {"anything": 1}
    if t == "array":
        return [sample(node["items"])]
    if t == "string":
        if node.get("enum"):
            return node["enum"][0]
        return "example"
    if t == "integer":
        lo, hi = node.get("minimum", 0), node.get("maximum", 2 ** 31 - 1)
        return 8080 if lo <= 8080 <= hi else max(lo, 1)
    if t == "number":
        return 1.5
    if t == "boolean":
        return True
    raise AssertionError(f"unexpected schema node {node}")


def walk(node, path=()):
    """(path, node) for the node and every node below it, paths as in a sample object."""
    yield path, node
    for k, v in node.get("properties", {}).items():
        yield from walk(v, path + (k,))
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], path + (0,))
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], path + ("8080",))


def versions(crds):
    for kind in (k.kind for k in KINDS):
        crd = crds[kind]
        for v in crd["spec"]["versions"]:
            yield kind, f"{crd['spec']['group']}/{v['name']}", v["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _errors(api_version, kind, spec):
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "sample", "namespace": "default"},
            "spec": spec}
    return validate(Resource.from_dict(body))


def _get_parent(obj, path):
    for p in path[:-1]:
        obj = obj[p]
    return obj


def test_istio_crds_cover_our_kinds_and_versions(istio_crds):
    assert set(istio_crds) == set(BY_KIND)
    for kind, crd in istio_crds.items():
        served = {v["name"] for v in crd["spec"]["versions"] if v.get("served")}
        assert served == set(BY_KIND[kind].versions), kind
        assert crd["spec"]["group"] == BY_KIND[kind].group


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_istio_field_is_accepted(istio_crds, kind):
    checked = 0
    for k, api_version, schema in versions(istio_crds):
        if k != kind:
            continue
        spec = sample(schema)
        errors = _errors(api_version, kind, spec)
        wrong = [e.message for e in errors if "unknown field" in e.message or ": expected " in e.message]
        assert wrong == [], f"{api_version} {kind}"
        assert not [e for e in errors if e.path[:1] != ("spec",)]
        checked += sum(1 for _ in walk(schema))
    assert checked > 5


def _mutations(schema):
    """(description, path, new value or DELETE) for each check Istio's schema expresses."""
    for path, node in walk(schema):
        if not path:
            continue
        rules = _rules(node)
        if node.get("enum"):
            yield "enum", path, "NOT_AN_ISTIO_VALUE"
        if DURATION_RULE in rules:
            yield "duration syntax", path, "10x"
            yield "duration >= 1ms", path, "0s"
        if PORT_RULE in rules:
            yield "port 0", path, 0
            yield "port 65536", path, 65536
        if node.get("type") == "integer" and "minimum" in node and node["minimum"] > -(2 ** 31):
            yield "minimum", path, node["minimum"] - 1
        if node.get("type") == "integer" and "maximum" in node and node["maximum"] < 2 ** 31 - 1:
            yield "maximum", path, node["maximum"] + 1
        if node.get("type") == "string" and "maxLength" in node:
            yield "maxLength", path, "x" * (node["maxLength"] + 1)
        if node.get("type") == "string" and node.get("minLength"):
            yield "minLength", path, ""
        if node.get("type") == "array" and "maxItems" in node and node["maxItems"] <= 64:
            yield "maxItems", path, "MAX_ITEMS"
        if '!self.contains("*")' in rules:
            yield "no wildcard", path, "a*"
        if node.get("type") in ("object", "string", "integer", "number", "boolean", "array"):
            wrong = {"object": "text", "string": {"a": 1}, "integer": "text", "number": "text",
                     "boolean": "yes", "array": {"a": 1}}[node["type"]]
            yield "type", path, wrong
    for path, node in walk(schema):
        for req in node.get("required", []):
            if "properties" in node:
                yield "required", path + (req,), "DELETE"
        for rule in _rules(node):
            fields = re.findall(r"has\(self\.(\w+)\) \? 1 : 0", rule)
            if fields and rule.strip().endswith("<= 1"):
                yield "only one of " + "/".join(fields), path, ("SET_ALL", tuple(fields))


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_what_istio_rejects_we_reject(istio_crds, kind):
    (api_version, schema), *_ = [(av, s) for k, av, s in versions(istio_crds) if k == kind]
    base = sample(schema)
    base_errors = {(e.path, e.message) for e in _errors(api_version, kind, base)}
    nodes = dict(walk(schema))
    missed = []
    count = 0
    for what, path, value in _mutations(schema):
        spec = copy.deepcopy(base)
        parent = _get_parent(spec, path) if path else None
        if value == "DELETE":
            del parent[path[-1]]
        elif value == "MAX_ITEMS":
            parent[path[-1]] = parent[path[-1]] * (nodes[path]["maxItems"] + 1)
        elif isinstance(value, tuple) and value[0] == "SET_ALL":
            target = _get_parent(spec, path + ("x",))
            for f in value[1]:
                target[f] = sample(nodes[path]["properties"][f])
        else:
            parent[path[-1]] = value
        count += 1
        full = ("spec",) + path
        new = _errors(api_version, kind, spec)
        if value != ("SET_ALL", value[1] if isinstance(value, tuple) else None):
            new = [e for e in new if (e.path, e.message) not in base_errors]
        if isinstance(value, tuple):
            hit = any(e.path == full and ("only one of" in e.message or "cannot be set together" in e.message)
                      for e in new)
        else:
            hit = any(e.path[:len(full)] == full or full[:len(e.path)] == e.path for e in new)
        if not hit:
            missed.append(f"{what} at {'.'.join(map(str, path))} = {value!r}")
    assert missed == [], f"{kind}: Istio rejects, we accept: {missed}"
    assert count > 3


# --- Istio's analyzer test data -----------------------------------------------------------------

# Objects in Istio's analyzer test data that Istio's own CRD schemas (or Kubernetes) reject; the
# analyzer tests feed them to one analyzer at a time, so nothing there validates them.
KNOWN_INVALID = {
    ("condition-analyzer.yaml", "ServiceEntry default/negative-condition-svcEntry", ("metadata", "name")),
    # ... which also has no spec, required for a ServiceEntry by Istio's CRD
    ("condition-analyzer.yaml", "ServiceEntry default/negative-condition-svcEntry", ("spec",)),
    ("gateway-secrets.yaml", "Gateway defaultgateway-bogusCredentialName", ("metadata", "name")),
    # mode SIMPLE with neither credentialName nor serverCertificate/privateKey: Istio's admission
    # validation refuses it ("SIMPLE TLS requires a server certificate")
    ("gateway-secrets.yaml", "Gateway defaultgateway-nocredential", ("spec", "servers", 0, "tls")),
    ("conflicting-gateways-invalid-port.yaml", "Gateway alpha", ("spec", "servers", 0, "port")),
    ("conflicting-gateways-invalid-port.yaml", "Gateway beta", ("spec", "servers", 0, "port")),
    # v1alpha3 fields removed from the API long ago (the deprecation analyzer's input)
    ("deprecation.yaml", "EnvoyFilter istio-system/istio-multicluster-egressgateway", ("spec", "workloadLabels")),
    ("deprecation.yaml", "EnvoyFilter istio-system/istio-multicluster-egressgateway", ("spec", "filters")),
    # an HTTP route with a fault only: Istio's validation wants route, redirect or directResponse
    ("deprecation.yaml", "VirtualService foo/productpage", ("spec", "http", 0)),
    ("envoy-filter-add-operation.yaml", "EnvoyFilter bookinfo/test-auth-4", ("spec", "configPatches", 0, "match", "app")),
    ("envoy-filter-add-operation.yaml", "EnvoyFilter bookinfo/test-auth-5", ("spec", "configPatches", 0, "match", "app")),
    # `match:` and `patch:` left empty (null): the API server refuses null for an object field
    ("envoy-filter-remove-operation.yaml", "EnvoyFilter bookinfo/test-remove-4", ("spec", "configPatches", 0, "match")),
    ("envoy-filter-remove-operation.yaml", "EnvoyFilter bookinfo/test-remove-4", ("spec", "configPatches", 0, "patch")),
    ("envoy-filter-remove-operation.yaml", "EnvoyFilter bookinfo/test-remove-5", ("spec", "configPatches", 0, "match")),
    # selector and targetRef together: Istio's CRD rule allows at most one
    ("k8sgateway-selector.yaml", "Telemetry default/telemetry-effective", ("spec",)),
    # "*" as a ServiceEntry host: rejected by Istio's CRD rule `self != "*"`
    ("virtualservice_destinationhosts.yaml", "ServiceEntry default-ignore/service-entry-ignore", ("spec", "hosts", 0)),
    # a route entry without destination ("test destination null")
    ("virtualservice_destinationhosts.yaml", "VirtualService default/reviews-bogushost",
     ("spec", "http", 0, "route", 0, "destination")),
}


def test_istio_analyzer_testdata(shared_dir):
    from meshctl.loader import load_paths

    root = shared_dir / "conformance" / "istio-analyze" / "testdata"
    found = set()
    objects = 0
    for f in sorted(root.rglob("*.yaml")):
        for r in load_paths([str(f)]).resources:
            if r.api_version.rpartition("/")[0] in {k.group for k in KINDS}:
                objects += 1
            for e in validate(r):
                found.add((str(f.relative_to(root)), r.origin, e.path))
    assert objects > 200
    assert found == KNOWN_INVALID


def test_no_istio_analyzer_case_expects_a_schema_error(shared_dir):
    import json

    cases = json.loads((shared_dir / "conformance" / "istio-analyze" / "cases.json").read_text())
    # IST0106 never appears in Istio's expectations: the objects above are outside the analyzers'
    # (one per case) scope, and everything else in the test data must validate cleanly.
    assert not [c for c in cases for e in c["expected"] if e["code"] == "IST0106"]


# --- the CRDs we install keep every rule Istio's CRDs enforce ------------------------------------

def _norm(rule: str) -> str:
    return " ".join(rule.split())


def _pairs_excluded(node) -> set:
    """Field pairs that may not be set together in a structural node (oneOf "at most one"
    form, or allOf of `not: {required: [a, b]}`)."""
    out = set()
    branches = node.get("oneOf") or []
    names = [b["required"][0] for b in branches if set(b) == {"required"}]
    if any("not" in b for b in branches):
        out |= {frozenset((a, b)) for a in names for b in names if a != b}
    for b in node.get("allOf") or []:
        if set(b) == {"not"} and set(b["not"]) == {"required"} and len(b["not"]["required"]) == 2:
            out.add(frozenset(b["not"]["required"]))
        out |= _pairs_excluded(b)
    return out


def _expresses(rule: str, node: dict) -> bool:
    rules = {_norm(r["rule"]) for r in node.get("x-kubernetes-validations", [])}
    if rule in rules:
        return True
    if rule == '!self.contains("*")':
        return node.get("pattern") == "^[^*]*$"
    if rule == PORT_RULE:
        return node.get("minimum", 0) >= 1 and node.get("maximum", 2 ** 32) <= 65535
    if rule == "self.size() == 0":
        return node.get("maxLength") == 0
    if rule == 'self != "*"':
        return node.get("not") == {"enum": ["*"]}
    if rule == 'self in ["", "HTTP", "HTTPS"]':
        return node.get("enum") == ["", "HTTP", "HTTPS"]
    if rule == "has(self.wasm) != has(self.lua)":
        return node.get("oneOf") == [{"required": ["wasm"]}, {"required": ["lua"]}]
    if rule == "has(self.address) || has(self.network)":
        return node.get("anyOf") == [{"required": ["address"]}, {"required": ["network"]}]
    fields = re.findall(r"has\(self\.(\w+)\) \? 1 : 0", rule)
    if fields and rule.endswith("<= 1"):
        pairs = {frozenset((a, b)) for a in fields for b in fields if a != b}
        return pairs <= _pairs_excluded(node)
    return False


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_our_crd_keeps_istio_crd_rules(istio_crds, kind):
    from meshctl.schemas import crd_openapi

    ours = dict(walk(crd_openapi(kind)["properties"]["spec"]))
    missing = set()
    for k, api_version, schema in versions(istio_crds):
        if k != kind:
            continue
        for path, node in walk(schema):
            for r in node.get("x-kubernetes-validations", []):
                rule = _norm(r["rule"])
                if path not in ours or not _expresses(rule, ours[path]):
                    missing.add(f"{'.'.join(map(str, path)) or '(spec)'}: {rule[:80]}")
    assert sorted(missing) == []

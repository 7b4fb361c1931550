from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: relative, namespace: shop}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      proxy: {proxyVersion: '^1\\.2.*'}
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
    patch:
      operation: INSERT_BEFORE
      value: {name: envoy.lua}
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_AFTER
      value: {name: envoy.lua}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: wrong-ops, namespace: shop}
spec:
  priority: 10
  configPatches:
  - applyTo: ROUTE_CONFIGURATION
    patch:
      operation: ADD
      value: {name: x}
  - applyTo: HTTP_ROUTE
    patch:
      operation: REMOVE
  - applyTo: CLUSTER
    patch:
      operation: REPLACE
      value: {name: y}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: safe, namespace: shop}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_FIRST, value: {name: z}}
  - applyTo: CLUSTER
    patch: {operation: ADD, value: {name: c}}
"""


def test_patch_operations():
    msgs = run_yaml(DOC, "envoyfilter.EnvoyPatchAnalyzer")
    assert found(msgs) == [
        ("IST0151", "EnvoyFilter shop/relative"),
        ("IST0152", "EnvoyFilter shop/wrong-ops"),
        ("IST0153", "EnvoyFilter shop/wrong-ops"),
        ("IST0154", "EnvoyFilter shop/wrong-ops"),
        ("IST0155", "EnvoyFilter shop/relative"),
    ]
    refs = {m.code: m.reference for m in msgs}
    assert refs["IST0151"] == reference(DOC, "operation: INSERT_BEFORE")
    assert refs["IST0155"] == reference(DOC, "operation: INSERT_AFTER")
    assert refs["IST0153"] == reference(DOC, "operation: ADD")
    assert refs["IST0154"] == reference(DOC, "operation: REMOVE")
    assert refs["IST0152"] == reference(DOC, "operation: REPLACE")


def test_one_finding_per_code_and_filter():
    doc = """
    apiVersion: networking.istio.io/v1alpha3
    kind: EnvoyFilter
    metadata: {name: many, namespace: shop}
    spec:
      configPatches:
      - {applyTo: HTTP_FILTER, patch: {operation: INSERT_BEFORE, value: {name: a}}}
      - {applyTo: HTTP_FILTER, patch: {operation: INSERT_AFTER, value: {name: b}}}
    """
    assert found(run_yaml(doc, "envoyfilter.EnvoyPatchAnalyzer")) == [("IST0151", "EnvoyFilter shop/many")]

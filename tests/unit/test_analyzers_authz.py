from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod-eu}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
spec: {containers: [{name: cart, image: cart}]}
---
apiVersion: v1
kind: Pod
metadata: {name: legacy, namespace: old, labels: {app: legacy}}
spec: {containers: [{name: legacy, image: legacy}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - from:
    - source:
        namespaces: ["prod-*", "shop", "staging"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ghost, namespace: shop}
spec:
  selector:
    matchLabels: {app: ghost}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-wide, namespace: empty}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-in-mesh, namespace: old}
spec: {selector: {matchLabels: {app: legacy}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-cart, namespace: istio-system}
spec: {selector: {matchLabels: {app: cart}}}
"""


def test_policies_without_workloads_and_unknown_namespaces():
    msgs = run_yaml(DOC, "auth.AuthorizationPoliciesAnalyzer")
    assert found(msgs) == [
        ("IST0101", "AuthorizationPolicy shop/cart"),
        ("IST0127", "AuthorizationPolicy empty/ns-wide"),
        ("IST0127", "AuthorizationPolicy old/not-in-mesh"),
        ("IST0127", "AuthorizationPolicy shop/ghost"),
    ]
    missing = next(m for m in msgs if m.code == "IST0101")
    assert missing.text == 'Referenced namespace not found: "staging"'
    assert missing.reference == reference(DOC, '"staging"')
    ghost = next(m for m in msgs if m.origin.endswith("/ghost"))
    assert ghost.text.endswith("labels: app=ghost")
    assert ghost.reference == reference(DOC, "selector:", 2)


def test_root_namespace_comes_from_mesh_config():
    # in the root namespace a selector looks for pods anywhere; elsewhere only in its own namespace
    doc = DOC.replace("namespace: istio-system", "namespace: mesh-root")
    origin = ("IST0127", "AuthorizationPolicy mesh-root/mesh-cart")
    assert origin in found(run_yaml(doc, "auth.AuthorizationPoliciesAnalyzer"))
    assert origin not in found(run_yaml(doc, "auth.AuthorizationPoliciesAnalyzer", mesh={"rootNamespace": "mesh-root"}))

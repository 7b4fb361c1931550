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


MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: back, labels: {istio.io/rev: canary}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: back}
spec:
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: unlisted}
spec:
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: db}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch, namespace: plain}
spec:
  template:
    metadata: {labels: {app: batch}}
    spec: {containers: [{name: batch, image: batch}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: back}
spec: {selector: {matchLabels: {app: api}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: back}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: unlisted}
spec: {selector: {matchLabels: {app: db}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: typo, namespace: unlisted}
spec: {selector: {matchLabels: {app: dbb}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: batch, namespace: plain}
spec: {selector: {matchLabels: {app: batch}}}
"""


def test_workloads_in_manifests_count_as_the_pods_they_will_run():
    # a Deployment in a revision-labelled namespace, or in a namespace the input does not
    # describe, is a match; a typo and a namespace without injection still are not
    msgs = run_yaml(MANIFESTS, "auth.AuthorizationPoliciesAnalyzer")
    assert [(m.code, m.origin) for m in msgs] == [
        ("IST0127", "AuthorizationPolicy unlisted/typo"),
        ("IST0127", "AuthorizationPolicy plain/batch"),
    ]
    opted_out = MANIFESTS.replace("metadata: {labels: {app: db}}",
                                  "metadata: {labels: {app: db, sidecar.istio.io/inject: 'false'}}")
    assert ("IST0127", "AuthorizationPolicy unlisted/db") in [
        (m.code, m.origin) for m in run_yaml(opted_out, "auth.AuthorizationPoliciesAnalyzer")]

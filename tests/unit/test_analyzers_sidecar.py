import pytest

from .analysis_helpers import found, reference, run_yaml

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: reviews, namespace: shop, labels: {app: reviews, tier: back}}
spec: {}
---
apiVersion: v1
kind: Pod
metadata: {name: cart, namespace: shop, labels: {app: cart}}
spec: {}
"""


def test_selector_matching_nothing_and_overlaps():
    doc = PODS + """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: by-app, namespace: shop}
spec:
  workloadSelector:
    labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: by-tier, namespace: shop}
spec:
  workloadSelector:
    labels: {tier: back}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ghost, namespace: shop}
spec:
  workloadSelector:
    labels:
      app: ghost
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: only-cart, namespace: shop}
spec:
  workloadSelector:
    labels: {app: cart}
"""
    msgs = run_yaml(doc, "sidecar.SelectorAnalyzer")
    assert found(msgs) == [
        ("IST0101", "Sidecar shop/ghost"),
        ("IST0110", "Sidecar shop/by-app"),
        ("IST0110", "Sidecar shop/by-tier"),
    ]
    ghost = next(m for m in msgs if m.code == "IST0101")
    assert ghost.text == 'Referenced selector not found: "app=ghost"'
    assert ghost.reference == reference(doc, "app: ghost")
    overlap = next(m for m in msgs if m.origin == "Sidecar shop/by-tier")
    assert overlap.text.startswith('The Sidecars [by-app by-tier] in namespace "shop" select the same workload pod "reviews"')
    assert overlap.reference == reference(doc, "name: by-tier")


def test_several_namespace_defaults_and_ambient_namespaces():
    doc = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: a, namespace: shop}
    spec: {egress: [{hosts: ["./*"]}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: b, namespace: shop}
    spec: {egress: [{hosts: ["./*"]}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: only, namespace: solo}
    spec: {}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: amb, labels: {istio.io/dataplane-mode: ambient}}
    ---
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: useless, namespace: amb}
    spec: {}
    """
    assert found(run_yaml(doc, "sidecar.SelectorAnalyzer")) == [
        ("IST0111", "Sidecar shop/a"), ("IST0111", "Sidecar shop/b"), ("IST0167", "Sidecar amb/useless")]


def test_one_sidecar_per_pod_is_fine():
    doc = PODS + """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: r, namespace: shop}
spec: {workloadSelector: {labels: {app: reviews}}}
"""
    assert run_yaml(doc, "sidecar.SelectorAnalyzer") == []


WORKLOAD_SELECTORS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: default}
spec:
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: reviews, image: reviews}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  egress: [{hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings, namespace: default}
spec:
  workloadSelector: {labels: {app: ratings}}
  egress: [{hosts: ["./*"]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging: [{providers: [{name: envoy}]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ratings, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  accessLogging: [{providers: [{name: envoy}]}]
"""


@pytest.mark.parametrize("analyzer, kind", [("sidecar.SelectorAnalyzer", "Sidecar"),
                                            ("telemetry.SelectorAnalyzer", "Telemetry")])
def test_selectors_matching_a_deployment_in_the_input_are_not_dangling(analyzer, kind):
    msgs = run_yaml(WORKLOAD_SELECTORS, analyzer)
    assert [(m.code, m.origin, m.args) for m in msgs] == [
        ("IST0101", f"{kind} default/ratings", ("selector", "app=ratings"))]

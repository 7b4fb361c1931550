from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: old, namespace: shop}
spec:
  hosts: [cart]
  http:
  - fault:
      delay:
        percent: 10
        fixedDelay: 1s
    route: [{destination: {host: cart}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: new, namespace: shop}
spec:
  hosts: [cart]
  http:
  - fault: {delay: {percentage: {value: 10}, fixedDelay: 1s}}
    route: [{destination: {host: cart}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: egress, namespace: shop}
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
    egressProxy: {host: proxy.example.com, port: {number: 3128}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: serviceroles.rbac.istio.io}
spec:
  group: rbac.istio.io
  names: {kind: ServiceRole, plural: serviceroles}
"""


def test_deprecated_fields_and_removed_types():
    msgs = run_yaml(DOC, "deprecation.DeprecationAnalyzer")
    assert found(msgs) == [
        ("IST0002", "CustomResourceDefinition serviceroles.rbac.istio.io"),
        ("IST0002", "Sidecar shop/egress"),
        ("IST0002", "VirtualService shop/old"),
    ]
    by_origin = {m.origin: m for m in msgs}
    assert by_origin["VirtualService shop/old"].reference == reference(DOC, "percent: 10")
    assert by_origin["Sidecar shop/egress"].reference == reference(DOC, "egressProxy")
    assert "use HTTPRoute.fault.delay.percentage" in by_origin["VirtualService shop/old"].text


def test_nothing_deprecated():
    doc = DOC.split("---")[1]
    assert run_yaml(doc, "deprecation.DeprecationAnalyzer") == []

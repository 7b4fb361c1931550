from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: v1
kind: Pod
metadata:
  name: gw-1
  namespace: shop
  labels: {gateway.networking.k8s.io/gateway-name: web, app: gw}
spec: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: gw-2
  namespace: shop
  labels: {gateway.networking.k8s.io/gateway-name: web, app: gw}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-selector, namespace: shop}
spec:
  selector:
    matchLabels: {app: gw}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-target, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: web}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: other-ns, namespace: elsewhere}
spec: {selector: {matchLabels: {app: gw}}}
"""


def test_selectors_on_gateway_pods_are_ineffective():
    msgs = run_yaml(DOC, "k8sgateway.SelectorAnalyzer")
    assert found(msgs) == [("IST0166", "AuthorizationPolicy shop/by-selector")]
    assert msgs[0].text == "Ineffective selector on Kubernetes Gateway web. Use the TargetRef field instead."
    assert msgs[0].reference == reference(DOC, "selector:")


CRDS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: tcproutes.gateway.networking.k8s.io
  annotations:
    gateway.networking.k8s.io/bundle-version: v1.5.0-rc.1
spec: {group: gateway.networking.k8s.io, names: {kind: TCPRoute}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: grpcroutes.gateway.networking.k8s.io
  annotations:
    gateway.networking.k8s.io/bundle-version: v1.2.0
spec: {group: gateway.networking.k8s.io, names: {kind: GRPCRoute}}
"""


def test_old_gateway_api_crds():
    msgs = run_yaml(CRDS, "k8sgateway.CRDVersionAnalyzer")
    assert found(msgs) == [("IST0176", "CustomResourceDefinition tcproutes.gateway.networking.k8s.io")]
    assert '"1.5.0-rc.1" but Istio requires at least "1.6.0"' in msgs[0].text
    assert msgs[0].reference == reference(CRDS, "bundle-version: v1.5.0")

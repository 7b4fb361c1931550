"""Gateways deployed from manifests: the selector finds the gateway Deployment's pod template."""
import pytest

from .analysis_helpers import run_yaml

GATEWAY = """
apiVersion: v1
kind: Service
metadata: {name: my-gw, namespace: ingress}
spec:
  selector: {istio: my-gw}
  ports: [{name: http2, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: my-gw, namespace: ingress, labels: {unrelated: label}}
spec:
  template:
    metadata:
      annotations: {inject.istio.io/templates: gateway}
      labels: {istio: my-gw, sidecar.istio.io/inject: "true"}
    spec: {containers: [{name: istio-proxy, image: auto}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: ingress}
spec:
  selector: {istio: my-gw}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
  - port: {number: 9090, name: http-admin, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: typo, namespace: ingress}
spec:
  selector: {istio: my-gateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [other.example.com]
"""


@pytest.mark.parametrize("analyzer", ["gateway.IngressGatewayPortAnalyzer", "gateway.SecretAnalyzer"])
def test_selector_matching_a_gateway_deployment_is_found(analyzer):
    msgs = run_yaml(GATEWAY, analyzer)
    assert ("IST0101", "Gateway ingress/typo", ("selector", "istio=my-gateway")) in [
        (m.code, m.origin, m.args) for m in msgs]
    assert not [m for m in msgs if m.origin == "Gateway ingress/web" and m.code == "IST0101"]


def test_ports_are_checked_against_the_service_of_the_gateway_deployment():
    msgs = run_yaml(GATEWAY, "gateway.IngressGatewayPortAnalyzer")
    assert [(m.code, m.origin, m.args) for m in msgs if m.origin == "Gateway ingress/web"] == [
        ("IST0162", "Gateway ingress/web", (9090, "istio=my-gw"))]


POSTURE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: ingress}
spec:
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: shop, image: shop}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: edge, namespace: ingress}
spec:
  template:
    metadata: {labels: {istio: edge}}
    spec: {containers: [{name: istio-proxy, image: auto}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: helm-gw, namespace: ingress}
spec:
  template:
    metadata:
      annotations: {inject.istio.io/templates: gateway}
      labels: {app: helm-gw}
    spec: {containers: [{name: istio-proxy, image: auto}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-gw-istio, namespace: ingress}
spec:
  template:
    metadata: {labels: {gateway.networking.k8s.io/gateway-name: api-gw}}
    spec: {containers: [{name: istio-proxy, image: proxyv2}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: ingress}
spec:
  selector: {istio: edge}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


@pytest.mark.parametrize("analyzer, code", [("security.PeerAuthenticationAnalyzer", "MSH0101"),
                                            ("security.AuthorizationPolicyAnalyzer", "MSH0104")])
def test_gateway_workloads_are_left_out_of_the_mesh_posture_checks(analyzer, code):
    [msg] = run_yaml(POSTURE, analyzer)
    assert msg.code == code
    assert "1 workload(s)" in msg.text and "(Deployment shop)" in msg.text

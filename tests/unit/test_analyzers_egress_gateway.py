"""Gateways that carry the mesh's outbound traffic (egress gateways) are not ingress front doors."""
from .analysis_helpers import run_yaml

EGRESS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn, namespace: default}
spec:
  hosts: [edition.cnn.com, "*.wikipedia.org"]
  ports:
  - {number: 80, name: http-port, protocol: HTTP}
  - {number: 443, name: tls, protocol: TLS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [edition.cnn.com, en.wikipedia.org]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [edition.cnn.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 8080, name: http-public, protocol: HTTP}
    hosts: [shop.example.com]
"""


def test_plain_http_to_external_hosts_through_an_egress_gateway_is_not_flagged():
    msgs = run_yaml(EGRESS, "security.GatewayHTTPSRedirectAnalyzer")
    # only the host no ServiceEntry puts outside the mesh is still reported
    assert [(m.code, m.args) for m in msgs] == [("MSH0106", (2, "shop.example.com", "the host is a public name"))]


def test_mesh_internal_service_entry_hosts_are_still_checked():
    internal = EGRESS.replace("resolution: DNS", "resolution: DNS\n  location: MESH_INTERNAL")
    msgs = run_yaml(internal, "security.GatewayHTTPSRedirectAnalyzer")
    assert [(m.code, m.args[:2]) for m in msgs] == [("MSH0106", (0, "edition.cnn.com")),
                                                     ("MSH0106", (2, "shop.example.com"))]

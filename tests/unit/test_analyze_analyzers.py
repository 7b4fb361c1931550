"""The core analyzers on small inputs: what they report, the message text, and the line."""
from __future__ import annotations

import base64
import textwrap
import shutil
import subprocess

import pytest

from tests.unit.analysis_helpers import found, reference, run_yaml

SVC_REVIEWS = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
"""


def texts(messages) -> list[str]:
    return sorted(f"{m.code} {m.text}" for m in messages)


# --- virtualservice.DestinationHostAnalyzer ------------------------------------------------------

VS_HOSTS = SVC_REVIEWS + """
---
apiVersion: v1
kind: Service
metadata: {name: two, namespace: other}
spec:
  ports: [{name: http, port: 80}, {name: https, port: 443}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: other}
spec:
  hosts: [private.internal]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: [reviews]
  http:
  - mirror: {host: mirrorz}
    route:
    - destination: {host: reviews}
    - destination: {host: reviews.default.svc.cluster.local, port: {number: 9080}}
    - destination: {host: reviewz}
    - destination: {host: reviews, port: {number: 9999}}
    - destination: {host: two.other.svc.cluster.local}
    - destination: {host: api.example.com, port: {number: 443}}
    - destination: {host: private.internal}
"""


def test_destination_hosts():
    msgs = run_yaml(VS_HOSTS, "virtualservice.DestinationHostAnalyzer")
    assert texts(msgs) == sorted([
        'IST0101 Referenced host not found: "reviewz"',
        'IST0101 Referenced host:port not found: "reviews:9999"',
        'IST0101 Referenced host not found: "private.internal"',
        'IST0101 Referenced mirror host not found: "mirrorz"',
        'IST0112 This VirtualService routes to a service "two.other.svc.cluster.local" that exposes multiple '
        'ports [80 443]. Specifying a port in the destination is required to disambiguate.',
    ])
    by_text = {m.text: m for m in msgs}
    assert by_text['Referenced host not found: "reviewz"'].reference == reference(VS_HOSTS, "host: reviewz")
    assert by_text['Referenced mirror host not found: "mirrorz"'].reference == reference(VS_HOSTS, "mirrorz")


def test_service_export_to_annotation_hides_it_from_other_namespaces():
    text = """
    apiVersion: v1
    kind: Service
    metadata:
      name: local
      namespace: a
      annotations: {networking.istio.io/exportTo: "."}
    spec: {ports: [{name: http, port: 80}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: from-b, namespace: b}
    spec:
      hosts: [x]
      http: [{route: [{destination: {host: local.a.svc.cluster.local}}]}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: from-a, namespace: a}
    spec:
      hosts: [y]
      http: [{route: [{destination: {host: local}}]}]
    """
    assert found(run_yaml(text, "virtualservice.DestinationHostAnalyzer")) == [
        ("IST0101", "VirtualService b/from-b")]


def test_ingress_route_without_subset_next_to_subset_routes():
    text = SVC_REVIEWS + textwrap.dedent("""
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: mesh, namespace: default}
    spec:
      hosts: [reviews]
      http: [{route: [{destination: {host: reviews, subset: v1}}]}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: ingress, namespace: default}
    spec:
      hosts: ["*"]
      gateways: [gw]
      http: [{route: [{destination: {host: reviews}}]}]
    """)
    msgs = run_yaml(text, "virtualservice.DestinationHostAnalyzer")
    assert texts(msgs) == ["IST0140 Subset in virtual service default/mesh has no effect on ingress gateway "
                           "default/ingress requests"]


# --- virtualservice.DestinationRuleAnalyzer ------------------------------------------------------

def test_subsets_must_exist_in_a_destination_rule():
    text = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews, namespace: default}
    spec:
      host: reviews.default.svc.cluster.local
      subsets: [{name: v1, labels: {version: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: vs, namespace: default}
    spec:
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews, subset: v1}
        - destination: {host: reviews, subset: v2}
        mirrors:
        - destination: {host: reviews, subset: v9}
    """
    msgs = run_yaml(text, "virtualservice.DestinationRuleAnalyzer")
    assert texts(msgs) == ['IST0101 Referenced host+subset in destinationrule not found: "reviews+v2"',
                           'IST0101 Referenced mirror+subset in destinationrule not found: "reviews+v9"']
    assert {m.reference for m in msgs} == {reference(text, "subset: v2"), reference(text, "subset: v9")}


# --- virtualservice.GatewayAnalyzer --------------------------------------------------------------

def test_gateway_references_and_hosts():
    text = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: istio-system}
    spec:
      selector: {istio: ingressgateway}
      servers:
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: ["./*.shop.example.com", "other/api.example.com"]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: shop, namespace: istio-system}
    spec:
      hosts: [www.shop.example.com]
      gateways: [gw, missing, mesh, istio-system/gw~istio-autogenerated-k8s-gateway~http]
      http: [{route: [{destination: {host: x}}]}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: api, namespace: default}
    spec:
      hosts: [api.example.com]
      gateways: [istio-system/gw]
      http: [{route: [{destination: {host: x}}]}]
    """
    msgs = run_yaml(text, "virtualservice.GatewayAnalyzer")
    assert texts(msgs) == sorted([
        'IST0101 Referenced gateway not found: "missing"',
        "IST0132 one or more host [www.shop.example.com] defined in VirtualService istio-system/shop not found "
        "in Gateway istio-system/missing.",
        "IST0132 one or more host [api.example.com] defined in VirtualService default/api not found in Gateway "
        "istio-system/gw.",
        "IST0165 Gateway reference in VirtualService istio-system/shop is to an implementation-generated "
        "internal Gateway: istio-system/gw~istio-autogenerated-k8s-gateway~http.",
    ])
    missing = [m for m in msgs if m.code == "IST0101"][0]
    assert missing.reference == reference(text, "gateways: [gw, missing")


def test_kubernetes_gateway_reference():
    text = """
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: kgw, namespace: default}
    spec:
      gatewayClassName: istio
      listeners: [{name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: vs, namespace: default}
    spec:
      hosts: [a.example.com]
      gateways: [kgw]
      http: [{route: [{destination: {host: x}}]}]
    """
    assert run_yaml(text, "virtualservice.GatewayAnalyzer") == []


# --- virtualservice.ConflictingMeshGatewayHostsAnalyzer --------------------------------------------

def test_conflicting_mesh_hosts():
    text = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: a, namespace: default}
    spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: b, namespace: default}
    spec: {hosts: [reviews.default.svc.cluster.local], gateways: [mesh], http: [{route: [{destination: {host: reviews}}]}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: c, namespace: default}
    spec: {hosts: [reviews], gateways: [ingress], http: [{route: [{destination: {host: reviews}}]}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: d, namespace: other}
    spec: {hosts: [reviews], exportTo: ["."], http: [{route: [{destination: {host: reviews}}]}]}
    """
    msgs = run_yaml(text, "virtualservice.ConflictingMeshGatewayHostsAnalyzer")
    assert found(msgs) == [("IST0109", "VirtualService default/a"), ("IST0109", "VirtualService default/b")]
    assert msgs[0].text.startswith("The VirtualServices default/a,default/b associated with mesh gateway define "
                                   "the same host */reviews.default.svc.cluster.local")


# --- virtualservice.JWTClaimRouteAnalyzer -----------------------------------------------------------

JWT_VS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {app: edge}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: edge-1, namespace: istio-system, labels: {app: edge}}
spec: {containers: [{name: istio-proxy, image: proxyv2}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http:
  - match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
    route: [{destination: {host: x}}]
"""


def test_jwt_claim_route_needs_request_authentication():
    msgs = run_yaml(JWT_VS, "virtualservice.JWTClaimRouteAnalyzer")
    assert texts(msgs) == ["IST0149 The virtual service uses the JWT claim based routing (key: "
                           "@request.auth.claims.group) but found no request authentication for the gateway "
                           "(istio-system/gw) pod (edge-1). The request authentication must first be applied for "
                           "the gateway pods to validate the JWT token and make the claims available for routing."]
    assert msgs[0].reference == reference(JWT_VS, "@request.auth.claims.group")
    with_ra = JWT_VS + """
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {app: edge}}
  jwtRules: [{issuer: x, jwksUri: "https://x/jwks"}]
"""
    assert run_yaml(with_ra, "virtualservice.JWTClaimRouteAnalyzer") == []


# --- schema.ValidationAnalyzer.VirtualService ------------------------------------------------------

def test_unreachable_rules_and_ineffective_matches():
    text = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: vs, namespace: default}
    spec:
      hosts: [reviews]
      http:
      - name: api
        match: [{uri: {prefix: /api}}]
        route: [{destination: {host: reviews}}]
      - name: api-v2
        match: [{uri: {prefix: /api/v2}}]
        route: [{destination: {host: reviews}}]
      - name: again
        match: [{name: dup, uri: {prefix: /api}}]
        route: [{destination: {host: reviews}}]
      - route: [{destination: {host: reviews}}]
      - name: dead
        route: [{destination: {host: reviews}}]
    """
    msgs = run_yaml(text, "schema.ValidationAnalyzer.VirtualService")
    assert texts(msgs) == sorted([
        'IST0130 VirtualService rule "again" not used (all matches used by prior rules).',
        'IST0130 VirtualService rule "dead" not used (only the last rule can have no matches).',
        'IST0131 VirtualService rule "again" match "dup" is not used (duplicate/overlapping match in rule "api").',
        'IST0131 VirtualService rule "api-v2" match #0 of prefix /api/v2 is not used (duplicate/overlapping '
        'match in rule #0 of prefix /api on "api").',
    ])
    dup = [m for m in msgs if 'match "dup"' in m.text][0]
    assert dup.reference == reference(text, "name: dup")


def test_schema_errors_are_ist0106_at_the_field():
    text = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: dr, namespace: default}
    spec:
      host: reviews
      trafficPolicy:
        connectionPool:
          http: {http1MaxPendingRequest: 1}
    """
    msgs = run_yaml(text, "schema.ValidationAnalyzer.DestinationRule")
    assert [m.code for m in msgs] == ["IST0106"]
    assert msgs[0].text.startswith("Schema validation error: spec.trafficPolicy.connectionPool.http")
    assert msgs[0].reference == reference(text, "http1MaxPendingRequest")


# --- destinationrule -------------------------------------------------------------------------------

def test_ca_certificates():
    text = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: db, namespace: default}
    spec:
      host: db.example.com
      trafficPolicy:
        tls: {mode: SIMPLE}
        portLevelSettings:
        - port: {number: 5432}
          tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k}
        - port: {number: 5433}
          tls: {mode: SIMPLE, caCertificates: /ca}
    """
    msgs = run_yaml(text, "destinationrule.CaCertificateAnalyzer")
    assert texts(msgs) == [
        "IST0128 DestinationRule default/db in namespace default has TLS mode set to SIMPLE but no caCertificates "
        "are set to validate server identity for host: db.example.com",
        "IST0129 DestinationRule default/db in namespace default has TLS mode set to MUTUAL but no caCertificates "
        "are set to validate server identity for host: db.example.com at port number:5432",
    ]


SUBSETS = SVC_REVIEWS + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ghost, namespace: default}
spec: {host: ghost}
"""


def test_subsets_select_pods_or_workload_templates():
    pod = """
---
apiVersion: v1
kind: Pod
metadata: {name: r1, namespace: default, labels: {app: reviews, version: v1}}
spec: {containers: [{name: c, image: i}]}
"""
    msgs = run_yaml(SUBSETS + pod, "destinationrule.SubsetSelectPodAnalyzer")
    assert texts(msgs) == ["IST0173 The Subset v2 defined in the DestinationRule does not select any pods. Which "
                           "may lead to 503 UH (NoHealthyUpstream).",
                           "IST0174 The host ghost defined in the DestinationRule does not match any services in "
                           "the mesh."]
    deployment = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: default}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {containers: [{name: c, image: i}]}
"""
    assert found(run_yaml(SUBSETS + pod + deployment, "destinationrule.SubsetSelectPodAnalyzer")) == [
        ("IST0174", "DestinationRule default/ghost")]


def test_subsets_select_workload_entries_of_a_service_entry():
    """VMs (and the local mesh's workloads) are WorkloadEntries: a ServiceEntry's selector picks
    them by spec.labels, so a subset matching one selects an endpoint."""
    text = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: default}
spec: {address: 10.0.0.7, labels: {app: ratings, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""
    assert found(run_yaml(text, "destinationrule.SubsetSelectPodAnalyzer")) == [
        ("IST0173", "DestinationRule default/ratings")]


# --- gateway ---------------------------------------------------------------------------------------

GW_PODS = """
apiVersion: v1
kind: Pod
metadata: {name: gw-pod, namespace: edge, labels: {istio: edge}}
spec: {containers: [{name: istio-proxy, image: proxyv2}]}
---
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: edge}
spec:
  selector: {istio: edge}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: https, port: 443, protocol: TCP}
"""


def test_gateway_ports_and_selectors():
    text = GW_PODS + textwrap.dedent("""
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: edge}
    spec:
      selector: {istio: edge}
      servers:
      - {port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}
      - {port: {number: 80, name: http2, protocol: HTTP}, hosts: ["*"]}
      - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: PASSTHROUGH}}
      - {port: {number: 9000, name: tcp, protocol: TCP}, hosts: ["*"]}
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: nobody, namespace: edge}
    spec:
      selector: {istio: nobody}
      servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
    """)
    msgs = run_yaml(text, "gateway.IngressGatewayPortAnalyzer")
    assert texts(msgs) == [
        'IST0101 Referenced selector not found: "istio=nobody"',
        "IST0162 The gateway is listening on a target port (port 9000) that is not defined in the Service "
        "associated with its workload instances (Pod selector istio=edge). If you need to access the gateway "
        "port through the gateway Service, it will not be available.",
    ]
    assert [m for m in msgs if m.code == "IST0101"][0].reference == reference(text, "istio: nobody", 1)


def _self_signed(tmp_path, days: int) -> bytes:
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", str(days), "-subj", "/CN=test"], check=True, capture_output=True)
    return crt.read_bytes()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_gateway_secrets(tmp_path):
    good = base64.b64encode(_self_signed(tmp_path, 30)).decode()
    key = base64.b64encode(b"key").decode()
    text = GW_PODS + f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: good, namespace: edge}}
type: kubernetes.io/tls
data: {{tls.crt: {good}, tls.key: {key}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: junk, namespace: edge}}
data: {{tls.crt: {base64.b64encode(b"not a cert").decode()}, tls.key: {key}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  selector: {{istio: edge}}
  servers:
  - {{port: {{number: 443, name: a, protocol: HTTPS}}, hosts: [a.example.com], tls: {{mode: SIMPLE, credentialName: good}}}}
  - {{port: {{number: 443, name: b, protocol: HTTPS}}, hosts: [b.example.com], tls: {{mode: SIMPLE, credentialName: junk}}}}
  - {{port: {{number: 443, name: c, protocol: HTTPS}}, hosts: [c.example.com], tls: {{mode: SIMPLE, credentialName: gone}}}}
"""
    msgs = run_yaml(text, "gateway.SecretAnalyzer")
    assert texts(msgs) == [
        'IST0101 Referenced credentialName not found: "gone"',
        "IST0161 The credential referenced by the Gateway gw in namespace edge is invalid, which can cause the "
        "traffic not to work as expected.",
    ]
    assert [m for m in msgs if m.code == "IST0161"][0].reference == reference(text, "credentialName: junk")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_certificate_validity_parser(tmp_path):
    from datetime import datetime, timezone

    from meshctl.analysis.analyzers.gateway import certificate_validity

    [(not_before, not_after)] = certificate_validity(_self_signed(tmp_path, 10))
    now = datetime.now(timezone.utc)
    assert not_before <= now < not_after
    assert 9 <= (not_after - now).days <= 10
    with pytest.raises(ValueError):
        certificate_validity(b"hello")


def test_conflicting_gateways_and_duplicate_certificates():
    text = GW_PODS + textwrap.dedent("""
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: a, namespace: edge}
    spec:
      selector: {istio: edge}
      servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [shop.example.com],
                 tls: {mode: SIMPLE, credentialName: shop-cert}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: b, namespace: edge}
    spec:
      selector: {istio: edge}
      servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [shop.example.com],
                 tls: {mode: SIMPLE, credentialName: shop-cert}}]
    """)
    conflicts = run_yaml(text, "gateway.ConflictingGatewayAnalyzer")
    assert found(conflicts) == [("IST0145", "Gateway edge/a"), ("IST0145", "Gateway edge/b")]
    assert conflicts[0].text == ("Conflict with gateways edge/b (workload selector istio=edge, port 443, hosts "
                                 "shop.example.com).")
    certs = run_yaml(text, "gateway.CertificateAnalyzer")
    assert texts(certs) == [
        "IST0138 Duplicate certificate in multiple gateways [edge/a edge/b] may cause 404s if clients re-use "
        "HTTP2 connections.",
        "IST0138 Duplicate certificate in multiple gateways [edge/b edge/a] may cause 404s if clients re-use "
        "HTTP2 connections.",
    ]


# --- service.PortNameAnalyzer ----------------------------------------------------------------------

def test_port_names():
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      ports:
      - {name: http-web, port: 80}
      - {name: web, port: 8080, targetPort: 9090}
      - {port: 3306}
      - {name: custom, port: 81, appProtocol: http}
      - {name: dns, port: 5353, protocol: UDP}
      - {name: GRPC-Web-x, port: 82}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: ext, namespace: default}
    spec:
      type: ExternalName
      externalName: example.com
      ports: [{name: tcp, port: 443}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: istiod, namespace: istio-system, labels: {istio: pilot}}
    spec: {ports: [{name: weird, port: 1}]}
    """
    msgs = run_yaml(text, "service.PortNameAnalyzer")
    assert texts(msgs) == [
        "IST0118 Port name web (port: 8080, targetPort: 9090) doesn't follow the naming convention of Istio port.",
        "IST0150 Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched "
        "traffic for ports serving TCP protocol from being forwarded correctly",
    ]
    assert [m for m in msgs if m.code == "IST0118"][0].reference == reference(text, "name: web, port: 8080")


# --- deployment.MultiServiceAnalyzer ---------------------------------------------------------------

def test_deployment_behind_services_that_disagree():
    text = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: app, namespace: default}
    spec:
      selector: {matchLabels: {app: x}}
      template:
        metadata: {labels: {app: x, sidecar.istio.io/inject: "true"}}
        spec: {containers: [{name: c, image: i}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: tcp, namespace: default}
    spec: {selector: {app: x}, ports: [{name: http, port: 80, targetPort: 8080}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: udp, namespace: default}
    spec: {selector: {app: x}, ports: [{name: dns, port: 80, protocol: UDP, targetPort: 8080}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: alt, namespace: default}
    spec: {selector: {app: x}, ports: [{name: http, port: 81, targetPort: 8080}]}
    """
    msgs = run_yaml(text, "deployment.MultiServiceAnalyzer")
    assert texts(msgs) == [
        "IST0116 This deployment app is associated with multiple services using port 80 but different "
        "protocols: [default/tcp default/udp]",
        'IST0137 This deployment app is associated with multiple services [default/alt default/udp] using '
        'targetPort "8080" but different ports: [80 81].',
    ]
    not_in_mesh = text.replace(', sidecar.istio.io/inject: "true"', "")
    assert run_yaml(not_in_mesh, "deployment.MultiServiceAnalyzer") == []


# --- injection -------------------------------------------------------------------------------------

def test_injection_namespaces_and_pods():
    text = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: plain}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: both, labels: {istio-injection: enabled, istio.io/rev: canary}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: prod, labels: {istio-injection: enabled}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: bare, namespace: prod}
    spec: {containers: [{name: app, image: app}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: optout, namespace: prod, annotations: {sidecar.istio.io/inject: "false"}}
    spec: {containers: [{name: app, image: app}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: ok, namespace: prod}
    spec: {containers: [{name: app, image: app}, {name: istio-proxy, image: proxyv2}]}
    """
    msgs = run_yaml(text, "injection.Analyzer")
    assert found(msgs) == [("IST0102", "Namespace plain"), ("IST0103", "Pod prod/bare"),
                           ("IST0123", "Namespace both")]
    by_code = {m.code: m for m in msgs}
    assert by_code["IST0102"].text.startswith("The namespace is not enabled for Istio injection. Run 'kubectl "
                                              "label namespace plain istio-injection=enabled'")
    assert by_code["IST0123"].text == ("The namespace has more than one type of injection labels "
                                       "[istio-injection=enabled istio.io/rev=canary], which may lead to undefined "
                                       "behavior. Make sure only one injection label exists.")
    by_default = text + """
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: istio-sidecar-injector, namespace: istio-system}
    data:
      values: '{"sidecarInjectorWebhook": {"enableNamespacesByDefault": true}}'
    """
    assert ("IST0148", "Namespace plain") in found(run_yaml(by_default, "injection.Analyzer"))


def test_proxy_image_mismatch():
    text = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: istio-sidecar-injector, namespace: istio-system}
    data:
      values: '{"global": {"hub": "docker.io/istio", "tag": "1.24.0", "proxy": {"image": "proxyv2"}}}'
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: prod, labels: {istio-injection: enabled}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: old, namespace: prod}
    spec: {containers: [{name: istio-proxy, image: "docker.io/istio/proxyv2:1.23.0"}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: current, namespace: prod}
    spec: {containers: [{name: istio-proxy, image: "docker.io/istio/proxyv2:1.24.0"}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: distroless, namespace: prod, annotations: {proxy.istio.io/config: "image: {imageType: distroless}"}}
    spec: {containers: [{name: istio-proxy, image: "docker.io/istio/proxyv2:1.24.0-distroless"}]}
    """
    msgs = run_yaml(text, "injection.ImageAnalyzer")
    assert found(msgs) == [("IST0158", "Namespace prod")]
    assert "(pod names: [old])" in msgs[0].text


def test_image_auto_without_webhook():
    text = """
    apiVersion: v1
    kind: Pod
    metadata: {name: p, namespace: default}
    spec: {containers: [{name: istio-proxy, image: auto}]}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: d, namespace: default}
    spec:
      selector: {matchLabels: {app: d}}
      template:
        metadata: {labels: {app: d}}
        spec: {containers: [{name: istio-proxy, image: auto}]}
    """
    assert found(run_yaml(text, "injection.ImageAutoAnalyzer")) == [
        ("IST0146", "Deployment default/d"), ("IST0147", "Pod default/p")]
    webhook = text + """
    ---
    apiVersion: admissionregistration.k8s.io/v1
    kind: MutatingWebhookConfiguration
    metadata: {name: istio-sidecar-injector}
    webhooks:
    - name: object.sidecar-injector.istio.io
      objectSelector:
        matchExpressions: [{key: app, operator: In, values: [d]}]
    """
    assert found(run_yaml(webhook, "injection.ImageAutoAnalyzer")) == [("IST0147", "Pod default/p")]


def test_gateway_service_ports_default_to_tcp():
    """A Service port written without `protocol` is TCP (the API server's default)."""
    text = GW_PODS.replace(", protocol: TCP", "") + textwrap.dedent("""
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: edge}
    spec:
      selector: {istio: edge}
      servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
    """)
    assert "protocol" not in GW_PODS.replace(", protocol: TCP", "")
    assert run_yaml(text, "gateway.IngressGatewayPortAnalyzer") == []


def test_hostile_embedded_documents_are_ignored_not_fatal():
    deep_json = "[" * 5000 + "]" * 5000
    text = f"""
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: istio-sidecar-injector, namespace: istio-system}}
    data: {{values: '{deep_json}'}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {{name: prod, labels: {{istio-injection: enabled}}}}
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: p
      namespace: prod
      annotations: {{proxy.istio.io/config: '{deep_json}'}}
    spec: {{containers: [{{name: istio-proxy, image: x}}]}}
    """
    for name in ("injection.Analyzer", "injection.ImageAnalyzer"):
        assert [m.code for m in run_yaml(text, name) if m.code == "IST0001"] == []

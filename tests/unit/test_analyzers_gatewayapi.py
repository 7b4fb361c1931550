"""Gateway API across objects: parents, listeners, backends, ReferenceGrants, weights,
conflicting routes, waypoints named by labels, L7 policies in ambient mode."""
from __future__ import annotations

from tests.unit.analysis_helpers import found, reference, run_yaml

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    hostname: "*.example.com"
    allowedRoutes:
      namespaces: {from: Selector, selector: {matchLabels: {shared-gateway: "true"}}}
  - name: tcp
    port: 5432
    protocol: TCP
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {shared-gateway: "true"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  ports: [{name: http, port: 9080}]
"""


def route(body: str, namespace: str = "shop", name: str = "r") -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{body}"""


def test_a_route_attached_and_routed_correctly_has_no_finding():
    text = GATEWAY + route("""  parentRefs: [{name: web, namespace: infra, sectionName: http}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs: [{name: reviews, port: 9080}]
""")
    assert run_yaml(text, "gatewayapi.RouteParentAnalyzer") == []
    assert run_yaml(text, "gatewayapi.RouteBackendAnalyzer") == []


def test_missing_gateway_listener_and_service_parent():
    text = GATEWAY + route("""  parentRefs:
  - {name: nowhere, namespace: infra}
  - {name: web, namespace: infra, sectionName: https}
  - {group: "", kind: Service, name: ratings}
  - {group: "", kind: Service, name: reviews, port: 80}
""")
    msgs = run_yaml(text, "gatewayapi.RouteParentAnalyzer")
    assert [m.text for m in msgs] == [
        'Referenced gateway not found: "infra/nowhere"',
        'Referenced gateway listener not found: "infra/web/https"',
        'Referenced service not found: "shop/ratings"',
        'Referenced service port not found: "shop/reviews:80"',
    ]
    assert msgs[0].reference == reference(text, "name: nowhere")
    assert msgs[1].reference == reference(text, "sectionName: https")


def test_listener_refuses_the_namespace_or_the_kind():
    text = GATEWAY + route("""  parentRefs: [{name: web, namespace: infra, sectionName: http}]
""", namespace="other") + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: shop}
spec:
  parentRefs: [{name: web, namespace: infra, sectionName: tcp}]
"""
    msgs = run_yaml(text, "gatewayapi.RouteParentAnalyzer")
    assert found(msgs) == [("MSH0201", "GRPCRoute shop/g"), ("MSH0201", "HTTPRoute other/r")]
    texts = {m.origin: m.text for m in msgs}
    assert "do not accept routes from namespace other" in texts["HTTPRoute other/r"]
    assert "do not accept GRPCRoute" in texts["GRPCRoute shop/g"]


def test_namespace_selector_unknown_without_the_namespace_object():
    text = GATEWAY.replace("kind: Namespace\nmetadata: {name: other}", "kind: ConfigMap\nmetadata: {name: x}") + route(
        "  parentRefs: [{name: web, namespace: infra, sectionName: http}]\n", namespace="other")
    assert run_yaml(text, "gatewayapi.RouteParentAnalyzer") == []


def test_hostnames_that_no_listener_covers():
    text = GATEWAY + route("""  parentRefs: [{name: web, namespace: infra, sectionName: http}]
  hostnames: [shop.example.org, example.com]
""")
    [m] = run_yaml(text, "gatewayapi.RouteParentAnalyzer")
    assert m.code == "MSH0202" and "shop.example.org, example.com" in m.text and "*.example.com" in m.text
    assert m.reference == reference(text, "hostnames:")
    ok = text.replace("example.com]", "a.example.com]")
    assert run_yaml(ok, "gatewayapi.RouteParentAnalyzer") == []


def test_backends_missing_wrong_port_cross_namespace_and_zero_weights():
    text = GATEWAY + route("""  rules:
  - backendRefs:
    - {name: ratings, port: 9080}
    - {name: reviews, port: 8080}
    - {name: reviews, namespace: infra, port: 80}
  - backendRefs:
    - {name: reviews, port: 9080, weight: 0}
""")
    msgs = run_yaml(text, "gatewayapi.RouteBackendAnalyzer")
    assert [(m.code, m.text.split(":")[0]) for m in msgs] == [
        ("IST0101", "Referenced service not found"), ("IST0101", "Referenced service port not found"),
        ("IST0101", "Referenced service not found"), ("MSH0203", "The reference to Service infra/reviews is not permitted"),
        ("MSH0204", "Every backend of rule 1 has weight 0")]


def test_a_reference_grant_permits_the_cross_namespace_backend():
    text = GATEWAY + route("  rules:\n  - backendRefs: [{name: db, namespace: infra, port: 80}]\n") + """
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: infra}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: shop-to-db, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]
  to: [{group: "", kind: Service, name: db}]
"""
    assert run_yaml(text, "gatewayapi.RouteBackendAnalyzer") == []
    wrong = text.replace("namespace: shop}]\n  to", "namespace: other}]\n  to")
    assert found(run_yaml(wrong, "gatewayapi.RouteBackendAnalyzer")) == [("MSH0203", "HTTPRoute shop/r")]


def test_conflicting_routes_same_parent_host_and_match():
    body = """  parentRefs: [{name: web, namespace: infra}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: %s, port: 9080}]
"""
    text = GATEWAY + route(body % "reviews", name="a") + route(body % "ratings", name="b")
    [m] = run_yaml(text, "gatewayapi.ConflictingRouteAnalyzer")
    assert m.code == "MSH0205" and m.origin == "HTTPRoute shop/b" and "HTTPRoute shop/a" in m.text
    assert "PathPrefix /api" in m.text
    same = GATEWAY + route(body % "reviews", name="a") + route(body % "reviews", name="b")
    assert run_yaml(same, "gatewayapi.ConflictingRouteAnalyzer") == []


def test_use_waypoint_label_naming_a_missing_waypoint():
    text = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/use-waypoint: waypoint}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop, labels: {istio.io/use-waypoint: none}}
---
apiVersion: v1
kind: Service
metadata:
  name: ratings
  namespace: shop
  labels: {istio.io/use-waypoint: shared, istio.io/use-waypoint-namespace: infra}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shared, namespace: infra}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
"""
    [m] = run_yaml(text, "gatewayapi.WaypointReferenceAnalyzer")
    assert (m.code, m.origin, m.text) == ("IST0101", "Namespace shop", 'Referenced waypoint not found: "shop/waypoint"')
    assert m.reference == reference(text, "istio.io/use-waypoint: waypoint")


AMBIENT = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews}}
    spec: {containers: [{name: app, image: reviews}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: get-only, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {namespaces: [front]}}]
    to: [{operation: {methods: [GET], paths: ["/api/*"]}}]
"""


def test_l7_policy_selecting_ambient_workloads():
    [m] = run_yaml(AMBIENT, "gatewayapi.AmbientPolicyAnalyzer")
    assert m.code == "MSH0206"
    assert "(methods, paths)" in m.text and "Deployment reviews" in m.text and "allows less than written" in m.text
    assert "meshctl waypoint apply -n shop --enroll-namespace" in m.text
    assert m.reference == reference(AMBIENT, "methods: [GET]")
    with_waypoint = AMBIENT.replace("istio.io/dataplane-mode: ambient}", "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: wp}")
    [m] = run_yaml(with_waypoint, "gatewayapi.AmbientPolicyAnalyzer")
    assert "name: wp}]" in m.text


def test_l4_only_or_sidecar_policies_are_fine():
    l4 = AMBIENT.replace("    to: [{operation: {methods: [GET], paths: [\"/api/*\"]}}]\n", "    to: [{operation: {ports: [\"8080\"]}}]\n")
    assert run_yaml(l4, "gatewayapi.AmbientPolicyAnalyzer") == []
    sidecar = AMBIENT.replace("istio.io/dataplane-mode: ambient", "istio-injection: enabled")
    assert run_yaml(sidecar, "gatewayapi.AmbientPolicyAnalyzer") == []


def test_policy_targeting_gateways():
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: shop}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec: {gatewayClassName: nginx, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  - {kind: Gateway, group: gateway.networking.k8s.io, name: edge}
  - {kind: Gateway, group: gateway.networking.k8s.io, name: gone}
  rules:
  - to: [{operation: {methods: [GET]}}]
"""
    msgs = run_yaml(text, "gatewayapi.AmbientPolicyAnalyzer")
    assert [(m.code, m.text) for m in msgs] == [
        ("MSH0207", 'The policy targets Gateway shop/edge of class "nginx", which Istio does not program, so no Istio '
                    "proxy enforces it. Fix: target a waypoint (class istio-waypoint) or an Istio gateway (class istio)."),
        ("IST0101", 'Referenced gateway not found: "shop/gone"')]


def test_every_gateway_api_code_is_documented_and_analyzers_declare_what_they_read():
    from pathlib import Path

    from meshctl.analysis import framework

    docs = Path(__file__).resolve().parents[2] / "docs" / "analysis"
    index = (docs / "index.md").read_text()
    codes = sorted(c for c in framework.message_types() if c.startswith("MSH02"))
    assert codes == [f"MSH02{i:02d}" for i in range(1, 8)]
    for code in codes:
        page = docs / f"{code.lower()}.md"
        assert page.is_file() and page.read_text().startswith(f"# {code}: {framework.message_types()[code].name}")
        assert f"[{code}]({code.lower()}.md)" in index
        assert "Fix:" in framework.message_types()[code].template
    for a in framework.all_analyzers():
        if a.name.startswith("gatewayapi."):
            assert a.description and a.inputs


def test_l7_policy_on_a_workload_labelled_ambient_in_a_plain_namespace():
    text = AMBIENT.replace("labels: {istio.io/dataplane-mode: ambient}", "labels: {}").replace(
        "    metadata: {labels: {app: reviews}}", "    metadata: {labels: {app: reviews, istio.io/dataplane-mode: ambient}}")
    [m] = run_yaml(text, "gatewayapi.AmbientPolicyAnalyzer")
    assert m.code == "MSH0206" and "1 ambient workload(s) (Deployment reviews)" in m.text

from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
status:
  conditions:
  - type: istio.io/WaypointBound
    status: "False"
    reason: WaypointNotReady
    message: waypoint not ready
  - type: example.com/Synced
    status: "False"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route, namespace: shop}
status:
  parents:
  - parentRef: {name: gw}
    conditions:
    - {type: Accepted, status: "True", reason: Accepted}
    - {type: ResolvedRefs, status: "False", reason: BackendNotFound, message: no backend}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-gateway, namespace: shop}
spec: {}
status:
  conditions:
  - {type: Programmed, status: "False"}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: partial, namespace: shop}
status:
  conditions:
  - {type: WaypointAccepted, status: "True", reason: PartiallyInvalid, message: "bad targetRefs"}
"""


def test_negative_conditions_of_known_types_only():
    msgs = run_yaml(DOC, "conditions.ConditionAnalyzer")
    assert found(msgs) == [("IST0171", "AuthorizationPolicy shop/partial"), ("IST0171", "HTTPRoute shop/route"),
                           ("IST0171", "Service shop/reviews")]
    route = next(m for m in msgs if m.origin == "HTTPRoute shop/route")
    assert route.text == ("A condition with a negative status is present: type=ResolvedRefs, reason=BackendNotFound, "
                          "message=no backend.")
    assert route.reference == reference(DOC, "type: ResolvedRefs")
    svc = next(m for m in msgs if m.origin == "Service shop/reviews")
    assert svc.reference == reference(DOC, "type: istio.io/WaypointBound")


def test_positive_conditions_are_quiet():
    doc = DOC.replace('"False"', '"True"').replace("PartiallyInvalid", "Accepted")
    assert run_yaml(doc, "conditions.ConditionAnalyzer") == []

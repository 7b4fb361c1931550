from .analysis_helpers import found, reference, run_yaml

ISTIOD = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod
  namespace: istio-system
  labels: {app: istiod}
spec:
  template:
    spec:
      containers:
      - name: discovery
        env: [{name: PILOT_TRACE_SAMPLING, value: "1"}]
"""
RA = """
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules: [{issuer: "https://issuer.example.com", jwksUri: "https://issuer.example.com/keys"}]
"""


def test_istiod_without_blocked_cidrs_when_request_authentication_exists():
    doc = ISTIOD + RA
    msgs = run_yaml(doc, "authn.BlockedCIDRsAnalyzer")
    assert found(msgs) == [("IST0175", "Deployment istio-system/istiod")]
    assert "1 RequestAuthentication resource(s) exist (shop/jwt)" in msgs[0].text
    assert msgs[0].reference == reference(doc, "containers:")


def test_configured_or_no_request_authentication():
    configured = ISTIOD.replace('value: "1"}]', 'value: "1"}, {name: BLOCKED_CIDRS_IN_JWKS_URIS, value: "169.254.0.0/16"}]')
    assert run_yaml(configured + RA, "authn.BlockedCIDRsAnalyzer") == []
    assert run_yaml(ISTIOD, "authn.BlockedCIDRsAnalyzer") == []

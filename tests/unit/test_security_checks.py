"""meshctl's own posture checks (security.* analyzers, MSH01xx)."""
from meshctl.analysis import framework

from .analysis_helpers import found, reference, run_yaml

SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: cart, image: cart}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: db}]}
"""


def _strict(namespace: str, name: str = "default", mode: str = "STRICT", selector: str = "") -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {selector}
  mtls:
    mode: {mode}
"""


# --- MSH0101 / MSH0102 -------------------------------------------------------------------------

def test_namespace_with_workloads_and_no_strict_mtls():
    msgs = run_yaml(SHOP, "security.PeerAuthenticationAnalyzer")
    assert found(msgs) == [("MSH0101", "Namespace shop")]
    assert msgs[0].level == "Warning"
    assert msgs[0].reference == reference(SHOP, "name: shop")
    assert "PERMISSIVE (the default)" in msgs[0].text and "2 workload(s)" in msgs[0].text
    assert "Fix: add a PeerAuthentication with spec.mtls.mode: STRICT" in msgs[0].text


def test_strict_namespace_or_mesh_policy_satisfies_it():
    assert run_yaml(SHOP + _strict("shop"), "security.PeerAuthenticationAnalyzer") == []
    assert run_yaml(SHOP + _strict("istio-system"), "security.PeerAuthenticationAnalyzer") == []
    # a namespace policy without a mode inherits the mesh's
    assert run_yaml(SHOP + _strict("istio-system") + _strict("shop", mode="UNSET"),
                    "security.PeerAuthenticationAnalyzer") == []


def test_permissive_mesh_policy_and_namespace_override():
    doc = SHOP + _strict("istio-system", mode="PERMISSIVE") + _strict("shop", name="shop-mtls", mode="DISABLE")
    msgs = run_yaml(doc, "security.PeerAuthenticationAnalyzer")
    assert found(msgs) == [("MSH0101", "PeerAuthentication shop/shop-mtls"),
                           ("MSH0102", "PeerAuthentication istio-system/default")]
    by_code = {m.code: m for m in msgs}
    assert by_code["MSH0102"].reference == reference(doc, "mode: PERMISSIVE")
    assert by_code["MSH0101"].reference == reference(doc, "mode: DISABLE")
    assert by_code["MSH0101"].text.startswith("Mutual TLS is DISABLE, not STRICT, for 2 workload(s)")


def test_workload_level_strict_policy_covers_only_what_it_selects():
    doc = SHOP + _strict("shop", name="cart", selector="selector: {matchLabels: {app: cart}}")
    msgs = run_yaml(doc, "security.PeerAuthenticationAnalyzer")
    assert len(msgs) == 1 and "1 workload(s) in namespace shop (StatefulSet db)" in msgs[0].text


def test_no_workloads_or_opted_out_or_istio_namespace_means_no_finding():
    assert run_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n",
                    "security.PeerAuthenticationAnalyzer") == []
    opted_out = SHOP.replace("metadata: {name: shop}", "metadata: {name: shop, labels: {istio-injection: disabled}}")
    assert run_yaml(opted_out, "security.PeerAuthenticationAnalyzer") == []
    istiod = SHOP.replace("namespace: shop", "namespace: istio-system").split("---", 1)[1]
    assert run_yaml(istiod, "security.PeerAuthenticationAnalyzer") == []


def test_pods_of_a_listed_controller_are_not_counted_twice():
    pods = """
---
apiVersion: v1
kind: Pod
metadata:
  name: cart-5d9c7b-x2x9q
  namespace: shop
  ownerReferences: [{kind: ReplicaSet, name: cart-5d9c7b}]
spec: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: shop
  ownerReferences: [{kind: StatefulSet, name: web}]
spec: {}
"""
    msgs = run_yaml(SHOP + pods, "security.PeerAuthenticationAnalyzer")
    # cart's pod is its Deployment's; web's StatefulSet is not in the set, so its pod counts
    assert "3 workload(s) in namespace shop (Deployment cart, Pod web-0, StatefulSet db)" in msgs[0].text


def test_without_namespace_object_the_first_workload_carries_the_finding():
    doc = SHOP.split("---", 1)[1]
    msgs = run_yaml(doc, "security.PeerAuthenticationAnalyzer")
    assert found(msgs) == [("MSH0101", "Deployment shop/cart")]
    assert msgs[0].reference == reference(doc, "metadata: {name: cart")


# --- MSH0103 / MSH0104 -------------------------------------------------------------------------

def _policy(namespace: str, name: str, spec: str) -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{spec}
"""


def test_allow_rule_without_conditions_allows_everything():
    doc = SHOP + _policy("shop", "open", """  selector: {matchLabels: {app: cart}}
  rules:
  - from: [{source: {namespaces: [shop]}}]
  - {}""") + _policy("shop", "deny-ok", """  action: DENY
  rules:
  - {}""")
    msgs = run_yaml(doc, "security.AuthorizationPolicyAnalyzer")
    assert ("MSH0103", "AuthorizationPolicy shop/open") in found(msgs)
    allow_all = next(m for m in msgs if m.code == "MSH0103")
    assert allow_all.text.startswith("Rule 1 of this ALLOW policy")
    assert allow_all.reference == reference(doc, "- {}")
    assert not any(m.origin.endswith("deny-ok") for m in msgs)


def test_workloads_without_any_allow_policy():
    doc = SHOP + _policy("shop", "cart", """  selector: {matchLabels: {app: cart}}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]""")
    msgs = run_yaml(doc, "security.AuthorizationPolicyAnalyzer")
    assert found(msgs) == [("MSH0104", "Namespace shop")]
    assert msgs[0].level == "Info"
    assert "1 workload(s) in namespace shop (StatefulSet db)" in msgs[0].text


def test_default_deny_in_namespace_or_mesh():
    assert run_yaml(SHOP + _policy("shop", "deny-all", "  {}"), "security.AuthorizationPolicyAnalyzer") == []
    assert run_yaml(SHOP + _policy("istio-system", "deny-all", "  {}"), "security.AuthorizationPolicyAnalyzer") == []


# --- MSH0105 -----------------------------------------------------------------------------------

DR = """
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: DISABLE}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fqdn, namespace: other}
spec:
  host: reviews.bookinfo.svc.cluster.local
  subsets:
  - name: v1
    trafficPolicy: {tls: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: external, namespace: shop}
spec:
  host: api.example.com
  trafficPolicy: {tls: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mutual, namespace: shop}
spec:
  host: cart.shop.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"""


def test_tls_disabled_toward_mesh_hosts():
    msgs = run_yaml(DR, "security.DestinationRuleTLSAnalyzer")
    assert found(msgs) == [("MSH0105", "DestinationRule other/fqdn"), ("MSH0105", "DestinationRule shop/cart")]
    refs = {m.origin: m.reference for m in msgs}
    assert refs["DestinationRule shop/cart"] == reference(DR, "tls: {mode: DISABLE}")
    assert refs["DestinationRule other/fqdn"] == reference(DR, "tls: {mode: DISABLE}", 2)


# --- MSH0106 -----------------------------------------------------------------------------------

GW = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: front}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["front/shop.example.com"]
  - port: {number: 8080, name: http-internal, protocol: HTTP}
    hosts: [cart.shop.svc.cluster.local, "*"]
  - port: {number: 8081, name: http-redirect, protocol: HTTP}
    hosts: [pay.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8082, name: http-public, protocol: HTTP}
    hosts: [blog.example.org]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls, namespace: front}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, credentialName: wildcard}
"""


def test_http_servers_without_redirect():
    msgs = run_yaml(GW, "security.GatewayHTTPSRedirectAnalyzer")
    assert [(m.code, m.args) for m in msgs] == [
        ("MSH0106", (0, "shop.example.com", "the host is also served over HTTPS")),
        # `*` answers for every host, the HTTPS ones included
        ("MSH0106", (1, "*", "the host is also served over HTTPS")),
        ("MSH0106", (3, "blog.example.org", "the host is a public name")),
    ]
    assert msgs[0].reference == reference(GW, "protocol: HTTP}")
    assert msgs[2].reference == reference(GW, "name: http-public")
    internal = GW.replace('"*"]', "localhost]").split("---")[0]
    assert run_yaml(internal.replace("shop.example.com", "shop.internal").replace("blog.example.org", "blog.lan"),
                    "security.GatewayHTTPSRedirectAnalyzer") == []


# --- MSH0107 -----------------------------------------------------------------------------------

RA = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector:
    matchLabels: {app: cart, tier: web}
  jwtRules: [{issuer: "https://issuer.example.com"}]
"""


def test_request_authentication_without_required_principal():
    msgs = run_yaml(RA, "security.RequestAuthenticationAnalyzer")
    assert found(msgs) == [("MSH0107", "RequestAuthentication shop/jwt")]
    assert "the workloads selected by app=cart,tier=web" in msgs[0].text
    assert msgs[0].reference == reference(RA, "selector:")


def test_policies_requiring_a_principal():
    require = _policy("shop", "require-jwt", """  selector: {matchLabels: {app: cart}}
  rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]""")
    assert run_yaml(RA + require, "security.RequestAuthenticationAnalyzer") == []
    deny = _policy("shop", "deny-no-jwt", """  action: DENY
  rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]""")
    assert run_yaml(RA + deny, "security.RequestAuthenticationAnalyzer") == []
    # a policy for other workloads, or one that does not look at tokens, does not help
    other = _policy("shop", "other", """  selector: {matchLabels: {app: billing}}
  rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]""")
    no_token = _policy("shop", "ns", """  rules: [{from: [{source: {namespaces: [shop]}}]}]""")
    assert len(run_yaml(RA + other + no_token, "security.RequestAuthenticationAnalyzer")) == 1


# --- MSH0108 / MSH0109 -------------------------------------------------------------------------

VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route:
    - {destination: {host: cart, subset: v1}, weight: 80}
    - {destination: {host: cart, subset: v2}, weight: 30}
    retries:
      attempts: 3
  - route:
    - {destination: {host: cart, subset: v1}, weight: 90}
    - {destination: {host: cart, subset: v2}, weight: 10}
    retries: {attempts: 2, perTryTimeout: 2s}
  - route:
    - destination: {host: cart}
  tcp:
  - route:
    - {destination: {host: cart}, weight: 50}
"""


def test_route_weights():
    msgs = run_yaml(VS, "security.RouteWeightAnalyzer")
    assert [m.args for m in msgs] == [("http[0]", 110), ("tcp[0]", 50)]
    assert msgs[0].reference == reference(VS, "- route:")
    assert msgs[0].level == "Info"


def test_retries_without_per_try_timeout():
    msgs = run_yaml(VS, "security.RetryTimeoutAnalyzer")
    assert [m.args for m in msgs] == [("Route http[0]", 3)]
    assert msgs[0].reference == reference(VS, "retries:")


# --- all together --------------------------------------------------------------------------------

def test_security_prefix_selects_every_posture_analyzer_and_messages_have_docs(tmp_path):
    names = [a.name for a in framework.select_analyzers(["security"])]
    assert names and all(n.startswith("security.") for n in names)
    assert len(names) == 7
    types = framework.message_types()
    codes = sorted(c for c in types if c.startswith("MSH01"))
    assert codes == [f"MSH01{i:02d}" for i in range(1, 10)]
    for code in codes:
        assert "Fix:" in types[code].template
        assert types[code].doc_url.endswith(f"docs/analysis/{code.lower()}.md")

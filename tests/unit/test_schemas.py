"""meshctl's JSON Schemas for Istio kinds: the validator behind IST0106 and the CRD schemas."""
from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from meshctl.loader import load_text
from meshctl.resources import Resource
from meshctl.schemas import KINDS, crd_openapi, spec_schema
from meshctl.schemas.validate import SchemaError, format_path, regex_problem, validate

# --- one valid, realistic object per kind -----------------------------------------------------

VALID = {
    "VirtualService": """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  gateways: [mesh, istio-system/public]
  http:
  - name: canary
    match:
    - headers: {end-user: {exact: jason}, x-debug: {}}
      uri: {prefix: /api}
      queryParams: {v: {regex: "^[0-9]+$"}}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 10
    - destination: {host: reviews, subset: v1}
      weight: 90
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure"}
    fault: {delay: {fixedDelay: 7s, percentage: {value: 0.1}}}
    corsPolicy: {allowOrigins: [{regex: "https://.*\\\\.example\\\\.com"}], maxAge: 24h}
    headers: {request: {set: {x-canary: "true"}}}
  tcp:
  - match: [{port: 27017}]
    route: [{destination: {host: mongo.backup.svc.cluster.local, port: {number: 5555}}}]
""",
    "DestinationRule": """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.prod.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: user, ttl: 0.5s}}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {time: 7200s, interval: 75s}}
      http: {http2MaxRequests: 1000, maxRequestsPerConnection: 10}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m}
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {simple: LEAST_REQUEST}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
""",
    "Gateway": """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, credentialName: example-cert, minProtocolVersion: TLSV1_2}
  - port: {number: 80, name: http, protocol: http}
    hosts: ["*"]
    tls: {httpsRedirect: true}
""",
    "ServiceEntry": """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 443, name: https, protocol: TLS}
  endpoints:
  - {address: api.example.com, ports: {https: 443}}
""",
    "Sidecar": """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bookinfo}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
  egress:
  - hosts: ["./*", "istio-system/*"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
""",
    "WorkloadEntry": """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1}
spec:
  address: 10.0.0.12
  labels: {app: legacy}
  ports: {http: 8080}
  serviceAccount: legacy
""",
    "WorkloadGroup": """
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: legacy}
spec:
  metadata: {labels: {app: legacy}}
  template: {ports: {http: 8080}, serviceAccount: legacy}
  probe:
    periodSeconds: 5
    httpGet: {path: /ready, port: 8080}
""",
    "EnvoyFilter": """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: istio-system}
spec:
  workloadSelector: {labels: {app: reviews}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      proxy: {proxyVersion: '^1\\.2[0-9].*'}
      listener:
        portNumber: 8080
        filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.lua
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}
""",
    "ProxyConfig": """
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: per-workload}
spec:
  selector: {matchLabels: {app: ratings}}
  concurrency: 2
  image: {imageType: distroless}
  environmentVariables: {ISTIO_META_DNS_CAPTURE: "true"}
""",
    "AuthorizationPolicy": """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {methods: [GET], paths: ["/info*"]}}]
    when: [{key: "request.auth.claims[iss]", values: ["https://accounts.google.com"]}]
""",
    "PeerAuthentication": """
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec:
  selector: {matchLabels: {app: finance}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
""",
    "RequestAuthentication": """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: issuer-foo
    jwksUri: https://example.com/.well-known/jwks.json
    forwardOriginalToken: true
    fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}]
""",
    "Telemetry": """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 10.0
    customTags: {team: {literal: {value: payments}}}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}
      tagOverrides: {request_host: {operation: REMOVE}}
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
""",
    "WasmPlugin": """
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: openid-connect, namespace: istio-ingress}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  url: oci://private-registry:5000/openid-connect/openid:latest
  imagePullPolicy: IfNotPresent
  phase: AUTHN
  pluginConfig: {openid_server: authn, openid_realm: ingress}
""",
    "TrafficExtension": """
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: {name: header-check, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  wasm:
    url: oci://registry.example.com/header-check:1.0
    pluginConfig: {header: x-check}
""",
}


def resource(text: str) -> Resource:
    return Resource.from_dict(yaml.safe_load(text))


def test_every_kind_has_a_valid_example():
    assert set(VALID) == {k.kind for k in KINDS}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_example_is_accepted(kind):
    assert validate(resource(VALID[kind])) == []


# --- typical mistakes: (kind, dotted path to set, value or DELETE, error path, message part) ---

DELETE = object()
MISTAKES = [
    ("VirtualService", "spec.http.0.timeout", "10x", ("spec", "http", 0, "timeout"),
     '"10x" is not a valid duration (use e.g. "1s"'),
    ("VirtualService", "spec.http.0.timeout", 10, ("spec", "http", 0, "timeout"),
     'expected a string (a duration such as "10s" or "500ms"), got an integer (10)'),
    ("VirtualService", "spec.http.0.retries.atempts", 3, ("spec", "http", 0, "retries", "atempts"),
     'unknown field (did you mean "attempts"?)'),
    ("VirtualService", "spec.http.0.retries.perTryTimeout", "0s",
     ("spec", "http", 0, "retries", "perTryTimeout"), "at least 1ms"),
    ("VirtualService", "spec.http.0.match.0.uri", {"prefix": "/a", "exact": "/b"},
     ("spec", "http", 0, "match", 0, "uri"), "only one of exact, prefix, regex may be set"),
    ("VirtualService", "spec.http.0.match.0.uri", {}, ("spec", "http", 0, "match", 0, "uri"),
     "one of exact, prefix, regex must be set"),
    ("VirtualService", "spec.http.0.match.0.uri", {"regex": "([a-z]+"},
     ("spec", "http", 0, "match", 0, "uri", "regex"), 'invalid regular expression "([a-z]+": missing )'),
    ("VirtualService", "spec.http.0.match.0.uri", {"prefix": ""}, ("spec", "http", 0, "match", 0, "uri", "prefix"),
     "must not be empty"),
    ("VirtualService", "spec.http.0.match.0.uri", {"regex": "a" * 1025},
     ("spec", "http", 0, "match", 0, "uri", "regex"), "must be at most 1024 characters long"),
    ("VirtualService", "spec.http.0.rewrite", {"uri": "/v2", "uriRegexRewrite": {"match": "^/v1", "rewrite": "/v2"}},
     ("spec", "http", 0, "rewrite"), "uri and uriRegexRewrite cannot be set together"),
    ("VirtualService", "spec.http.0.rewrite", {}, ("spec", "http", 0, "rewrite"),
     "one of uri, uriRegexRewrite, authority must be set"),
    ("VirtualService", "spec.http.0.rewrite", {"uriRegexRewrite": {"match": "^/v1"}},
     ("spec", "http", 0, "rewrite", "uriRegexRewrite", "rewrite"), "required field missing"),
    ("VirtualService", "spec.http.0.match.0.headers.end-user", {"regex": "(?=x)y"},
     ("spec", "http", 0, "match", 0, "headers", "end-user", "regex"), "lookaround"),
    ("VirtualService", "spec.http.0.route.0.destination.port.number", 70000,
     ("spec", "http", 0, "route", 0, "destination", "port", "number"), "70000 is out of range 0–65535"),
    ("VirtualService", "spec.http.0.route.0.destination.port.number", "9080",
     ("spec", "http", 0, "route", 0, "destination", "port", "number"),
     'expected an integer, got a string ("9080")'),
    ("VirtualService", "spec.http.0.route.0.destination.host", DELETE,
     ("spec", "http", 0, "route", 0, "destination", "host"), "required field missing"),
    ("VirtualService", "spec.hosts", "reviews", ("spec", "hosts"), 'expected a list, got a string ("reviews")'),
    ("VirtualService", "spec.hosts.0", "reviews:9080", ("spec", "hosts", 0),
     '"reviews:9080" is not a valid host name (a DNS name such as "reviews"'),
    ("DestinationRule", "spec.host", "http://reviews", ("spec", "host"), "without scheme, port or path"),
    ("VirtualService", "spec.http.0.fault.delay.percentage.value", 150,
     ("spec", "http", 0, "fault", "delay", "percentage", "value"), "150 is out of range 0–100"),
    ("VirtualService", "spec.http.0.redirect", {"uri": "/v2", "redirectCode": 200},
     ("spec", "http", 0, "redirect", "redirectCode"), "200 is not a redirect code (use a 3xx code"),
    ("VirtualService", "spec.http.0.route", DELETE, ("spec", "http", 0),
     "one of route, redirect, directResponse, delegate must be set"),
    ("VirtualService", "spec.http.0.directResponse", {"status": 503, "body": {"bytes": "not base64!"}},
     ("spec", "http", 0, "directResponse", "body", "bytes"), '"not base64!" is not base64'),
    ("VirtualService", "spec.http.0.directResponse", {"status": 503}, ("spec", "http", 0),
     "route and directResponse cannot be set together"),
    ("DestinationRule", "spec.trafficPolicy.tls.mode", "ISTIO_MUTUALL",
     ("spec", "trafficPolicy", "tls", "mode"), 'did you mean "ISTIO_MUTUAL"?'),
    ("DestinationRule", "spec.trafficPolicy.tls", {"mode": "MUTUAL", "caCertificates": "/ca.pem"},
     ("spec", "trafficPolicy", "tls"), "mode MUTUAL needs clientCertificate and privateKey, or a credentialName"),
    ("DestinationRule", "spec.trafficPolicy.tls", {"mode": "SIMPLE", "credentialName": "c", "caCertificates": "/ca"},
     ("spec", "trafficPolicy", "tls"), "with credentialName, leave out clientCertificate, privateKey"),
    ("DestinationRule", "spec.trafficPolicy.tls", {"mode": "MUTUAL", "credentialName": "client-cert"},
     ("spec", "trafficPolicy", "tls"), None),
    ("DestinationRule", "spec.trafficPolicy.loadBalancer.simple", "ROUND_ROBIN",
     ("spec", "trafficPolicy", "loadBalancer"), "only one of simple, consistentHash"),
    ("DestinationRule", "spec.trafficPolicy.connectionPool.tcp.connectTimeout", "30",
     ("spec", "trafficPolicy", "connectionPool", "tcp", "connectTimeout"), "is not a valid duration"),
    ("DestinationRule", "spec.subsets.0.lables", {"version": "v1"}, ("spec", "subsets", 0, "lables"),
     'unknown field (did you mean "labels"?)'),
    ("Gateway", "spec.servers.0.port.number", 65536, ("spec", "servers", 0, "port", "number"),
     "out of range 0–65535"),
    ("Gateway", "spec.servers.0.port.protocol", "HTTPX", ("spec", "servers", 0, "port", "protocol"),
     '"HTTPX" is not a known protocol'),
    ("Gateway", "spec.servers.0.hosts.0", "https://www.example.com", ("spec", "servers", 0, "hosts", 0),
     '"https://www.example.com" is not a valid gateway host: a host takes no scheme'),
    ("Gateway", "spec.servers.0.hosts.0", "reviews", ("spec", "servers", 0, "hosts", 0),
     "short names are not allowed"),
    ("Sidecar", "spec.egress.0.hosts.0", "reviews.default.svc.cluster.local", ("spec", "egress", 0, "hosts", 0),
     'is not a valid egress host: must be namespace/host (e.g. "./*"'),
    ("Gateway", "spec.servers.0.port.protocol", "", ("spec", "servers", 0, "port", "protocol"),
     '"" is not a known protocol'),
    ("Gateway", "spec.servers.0.tls", {"mode": "SIMPLE"}, ("spec", "servers", 0, "tls"),
     "TLS termination needs credentialName (a Kubernetes secret) or serverCertificate and privateKey"),
    ("Gateway", "spec.servers.0.tls", {"mode": "MUTUAL", "serverCertificate": "/c.pem", "privateKey": "/k.pem"},
     ("spec", "servers", 0, "tls"), "mutual TLS needs caCertificates"),
    ("Gateway", "spec.servers.0.tls", {"mode": "ISTIO_MUTUAL", "credentialName": "cert"},
     ("spec", "servers", 0, "tls"), "mode ISTIO_MUTUAL uses the mesh certificates"),
    ("Gateway", "spec.servers.0.tls.serverCertificate", "/c.pem", ("spec", "servers", 0, "tls"), None),
    ("Gateway", "spec.servers.0.tls.mode", "STRICT", ("spec", "servers", 0, "tls", "mode"),
     '"STRICT" is not one of PASSTHROUGH, SIMPLE, MUTUAL'),
    ("Gateway", "spec.servers.0.tls.credentialNames", ["a", "b"], ("spec", "servers", 0, "tls"),
     "credentialName and credentialNames cannot be set together"),
    ("ServiceEntry", "spec.resolution", "DNSS", ("spec", "resolution"), 'did you mean "DNS"?'),
    ("ServiceEntry", "spec.ports.0.number", 0, ("spec", "ports", 0, "number"), "0 is out of range 1–65535"),
    ("ServiceEntry", "spec.hosts.0", "*", ("spec", "hosts", 0), '"*" is not allowed as a ServiceEntry host'),
    ("Sidecar", "spec.outboundTrafficPolicy.mode", "ALLOW", ("spec", "outboundTrafficPolicy", "mode"),
     'is not one of REGISTRY_ONLY, ALLOW_ANY'),
    ("Sidecar", "spec.workloadSelector.labels.app", "rat*", ("spec", "workloadSelector", "labels", "app"),
     "must not contain '*'"),
    ("WorkloadEntry", "spec.ports.http", 99999, ("spec", "ports", "http"), "out of range 1–65535"),
    ("WorkloadEntry", "spec.weight", -5, ("spec", "weight"), "-5 is out of range 0–4294967295"),
    ("WorkloadGroup", "spec.probe.tcpSocket", {"port": 8080}, ("spec", "probe"),
     "only one of httpGet, tcpSocket, exec, grpc may be set"),
    ("EnvoyFilter", "spec.configPatches.0.applyTo", "HTTP_FILTERS", ("spec", "configPatches", 0, "applyTo"),
     'did you mean "HTTP_FILTER"?'),
    ("EnvoyFilter", "spec.configPatches.0.match.proxy.proxyVersion", "1.2[",
     ("spec", "configPatches", 0, "match", "proxy", "proxyVersion"), "invalid regular expression"),
    ("EnvoyFilter", "spec.configPatches.0.match.app", "x", ("spec", "configPatches", 0, "match", "app"),
     "unknown field"),
    ("ProxyConfig", "spec.concurrency", "2", ("spec", "concurrency"), "expected an integer, got a string"),
    ("ProxyConfig", "spec.image.imageType", 3, ("spec", "image", "imageType"), "expected a string, got an integer (3)"),
    ("AuthorizationPolicy", "spec.action", "ALOW", ("spec", "action"),
     '"ALOW" is not one of ALLOW, DENY, AUDIT, CUSTOM (did you mean "ALLOW"?)'),
    ("AuthorizationPolicy", "spec.targetRef", {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"},
     ("spec",), "only one of selector, targetRef, targetRefs may be set"),
    ("AuthorizationPolicy", "spec.rules.0.to.0.operation.method", ["GET"], ("spec", "rules", 0, "to", 0, "operation", "method"),
     'unknown field (did you mean "methods"?)'),
    ("AuthorizationPolicy", "spec.provider", {"name": "ext-authz"}, ("spec",),
     "provider is only used with action CUSTOM"),
    ("AuthorizationPolicy", "spec.rules.0.from", [], ("spec", "rules", 0, "from"), "must not be empty"),
    ("AuthorizationPolicy", "spec.rules.0.to.0.operation", {}, ("spec", "rules", 0, "to", 0, "operation"),
     "must not be empty"),
    ("Sidecar", "spec.egress.0.hosts", [], ("spec", "egress", 0, "hosts"), "must not be empty"),
    ("Sidecar", "spec.outboundTrafficPolicy", {"mode": "REGISTRY_ONLY", "egressProxy": {"host": "proxy"}},
     ("spec", "outboundTrafficPolicy"), "egressProxy is only used with mode ALLOW_ANY"),
    ("RequestAuthentication", "spec.jwtRules.0", {"audiences": ["a"]}, ("spec", "jwtRules", 0),
     "one of issuer, jwksUri, jwks_uri must be set"),
    ("PeerAuthentication", "spec.mtls.mode", "STRIC", ("spec", "mtls", "mode"),
     '"STRIC" is not one of UNSET, DISABLE, PERMISSIVE, STRICT (did you mean "STRICT"?)'),
    ("PeerAuthentication", "spec.mtls", "STRICT", ("spec", "mtls"), 'expected an object, got a string ("STRICT")'),
    ("RequestAuthentication", "spec.jwtRules.0.timeout", "5", ("spec", "jwtRules", 0, "timeout"),
     "is not a valid duration"),
    ("RequestAuthentication", "spec.jwtRules.0.jwks", "{}", ("spec", "jwtRules", 0),
     "only one of jwksUri, jwks_uri, jwks may be set"),
    ("Telemetry", "spec.tracing.0.randomSamplingPercentage", "10%",
     ("spec", "tracing", 0, "randomSamplingPercentage"), 'expected a number, got a string ("10%")'),
    ("Telemetry", "spec.metrics.0.overrides.0.match.metric", "REQUEST_COUNTS",
     ("spec", "metrics", 0, "overrides", 0, "match", "metric"), 'did you mean "REQUEST_COUNT"?'),
    ("WasmPlugin", "spec.phase", "AUTH", ("spec", "phase"), 'is not one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS'),
    ("WasmPlugin", "spec.pluginConfig", "x", ("spec", "pluginConfig"), "expected an object"),
    ("WasmPlugin", "spec.url", "#%blah$#@", ("spec", "url"), "is not a usable module URL"),
    ("Telemetry", "spec.metrics.0.overrides.0.tagOverrides.request_host", {"operation": "UPSERT"},
     ("spec", "metrics", 0, "overrides", 0, "tagOverrides", "request_host"), "operation UPSERT needs a non-empty value"),
    ("ServiceEntry", "spec.resolution", "NONE", ("spec",),
     "endpoints need a resolution other than NONE (e.g. STATIC or DNS)"),
    ("ServiceEntry", "spec.ports", [{"number": 443, "name": "https", "protocol": "TLS"},
                                    {"number": 443, "name": "tls", "protocol": "TLS"}],
     ("spec", "ports", 1, "number"), "duplicate number 443 (also in item 0)"),
    ("ServiceEntry", "spec.addresses", ["10.0.0.0/16"], ("spec",), "CIDR addresses need resolution STATIC or NONE"),
    ("WasmPlugin", "spec.url", "ftp://example.com/plugin.wasm", ("spec", "url"),
     "is not a usable module URL (use oci://, https://, http:// or file://"),
    ("WorkloadEntry", "spec.address", "unix:///var/run/app.sock", ("spec",),
     "ports cannot be set for a unix:// address"),
    ("WorkloadEntry", "spec.address", "unix://run/app/", ("spec", "address"),
     "a unix:// address must be an absolute path or an abstract socket"),
    ("AuthorizationPolicy", "spec.rules.0.from.0.source.serviceAccounts", ["default/sleep"],
     ("spec", "rules", 0, "from", 0, "source"), "serviceAccounts and principals cannot be set together"),
    ("PeerAuthentication", "spec.selector", DELETE, ("spec",), "portLevelMtls needs a selector with matchLabels"),
    ("RequestAuthentication", "spec.jwtRules.0.jwksUri", "ftp://example.com/jwks.json",
     ("spec", "jwtRules", 0, "jwksUri"), '"ftp://example.com/jwks.json" is not an http:// or https:// URL'),
    ("Telemetry", "spec.metrics.0.overrides.0.tagOverrides.request_host.value", "x",
     ("spec", "metrics", 0, "overrides", 0, "tagOverrides", "request_host"), "operation REMOVE takes no value"),
    ("EnvoyFilter", "spec.configPatches.0.match.context", "WAYPOINT", ("spec", "configPatches", 0, "match"),
     "waypoint must be set when context is WAYPOINT"),
    ("TrafficExtension", "spec.wasm", DELETE, ("spec",), "one of wasm, lua must be set"),
    ("TrafficExtension", "spec.selector.matchLabels", [], ("spec", "selector", "matchLabels"), "expected an object, got a list"),
]


def _set(body: dict, dotted: str, value) -> None:
    parts = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    node = body
    for p in parts[:-1]:
        node = node[p]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = copy.deepcopy(value)


@pytest.mark.parametrize("kind,where,value,path,message", MISTAKES,
                         ids=[f"{m[0]}:{m[1]}={m[2] if m[2] is not DELETE else 'DELETE'}" for m in MISTAKES])
def test_mistake_is_reported_with_path_and_one_line_message(kind, where, value, path, message):
    body = yaml.safe_load(VALID[kind])
    _set(body, where, value)
    errors = validate(Resource.from_dict(body))
    at_path = [e for e in errors if e.path == path]
    if message is None:  # a change that must stay valid
        assert errors == []
        return
    assert at_path, f"no error at {path}: {errors}"
    assert any(message in e.message for e in at_path), at_path
    for e in errors:
        assert "\n" not in e.message
        assert e.message.startswith(format_path(e.path) + ": ")


@pytest.mark.parametrize("action,rules,provider,message", [
    ("DENY", None, None, "spec: action DENY without rules never applies (add an empty rule {} to deny every request)"),
    ("CUSTOM", None, {"name": "ext"}, "spec: action CUSTOM without rules never applies"),
    ("CUSTOM", [{}], None, "spec: action CUSTOM needs provider.name"),
    ("CUSTOM", [{}], {"name": ""}, "spec: action CUSTOM needs provider.name"),
    ("CUSTOM", [{}], {"name": "ext"}, None),
    ("DENY", [{}], None, None),
    ("ALLOW", None, None, None),
])
def test_authorization_policy_actions(action, rules, provider, message):
    spec = {"action": action}
    if rules is not None:
        spec["rules"] = rules
    if provider is not None:
        spec["provider"] = provider
    body = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "p", "namespace": "ns"}, "spec": spec}
    msgs = [e.message for e in validate(Resource.from_dict(body))]
    if message is None:
        assert msgs == []
    else:
        assert len(msgs) == 1 and msgs[0].startswith(message), msgs


def test_all_mistake_kinds_are_covered():
    assert {m[0] for m in MISTAKES} == {k.kind for k in KINDS}


def test_messages_read_like_the_documented_examples():
    body = yaml.safe_load(VALID["VirtualService"])
    body["spec"]["http"][0]["timeout"] = "10x"
    body["spec"]["http"][0]["retries"]["atempts"] = 3
    messages = [e.message for e in validate(Resource.from_dict(body))]
    assert 'spec.http[0].timeout: "10x" is not a valid duration (use e.g. "1s", "500ms", "1m30s")' in messages
    assert 'spec.http[0].retries.atempts: unknown field (did you mean "attempts"?)' in messages


@pytest.mark.parametrize("host", ["reviews", "reviews.prod.svc.cluster.local", "*.example.com", "*", "istio.io.",
                                  "*-foo.example.com", "10.0.0.1", "2001:db8::1", "Reviews"])
def test_hosts_istio_accepts(host):
    from meshctl.schemas.validate import host_ok

    assert host_ok(host)


@pytest.mark.parametrize("host", ["", "reviews:9080", "http://reviews", "reviews/", "a..b", "example.123",
                                  "*.*.com", "foo*.com", "_x.com", "x" * 64 + ".com"])
def test_hosts_istio_refuses(host):
    from meshctl.schemas.validate import host_ok

    assert not host_ok(host)


@pytest.mark.parametrize("code", [0, 301, 308])
def test_redirect_codes_istio_accepts(code):
    body = yaml.safe_load(VALID["VirtualService"])
    http = body["spec"]["http"][0]
    del http["route"], http["fault"]
    http["redirect"] = {"uri": "/v2", "redirectCode": code}
    assert validate(Resource.from_dict(body)) == []


def test_empty_protocol_means_sniffing_outside_gateways():
    body = yaml.safe_load(VALID["ServiceEntry"])
    body["spec"]["ports"][0]["protocol"] = ""
    assert validate(Resource.from_dict(body)) == []


def test_error_path_leads_to_the_line_of_the_field():
    text = VALID["VirtualService"].replace("timeout: 1.5s", "timeout: 1.5sec")
    loaded = load_text(text, "vs.yaml")
    (res,) = loaded.resources
    (err,) = validate(res)
    assert err.path == ("spec", "http", 0, "timeout")
    want = next(i for i, line in enumerate(text.splitlines(), 1) if "timeout: 1.5sec" in line)
    assert res.line_of(err.path) == want


def test_integer_map_keys_are_reported_as_strings():
    body = yaml.safe_load(VALID["PeerAuthentication"])
    body["spec"]["portLevelMtls"] = {0: {"mode": "DISABLE"}, 8080: {"mode": "PERMISIVE"}}
    errors = validate(Resource.from_dict(body))
    assert {e.path for e in errors} == {("spec", "portLevelMtls", "0"),
                                        ("spec", "portLevelMtls", "8080", "mode")}
    assert any('spec.portLevelMtls["0"]: invalid key: "0" is not a port number' in e.message for e in errors)


def test_null_is_not_a_value():
    """The API server refuses null for a field that is not nullable; so do we, with a hint."""
    body = yaml.safe_load(VALID["VirtualService"])
    body["spec"]["http"][0]["timeout"] = None
    (err,) = validate(Resource.from_dict(body))
    assert err.message == ('spec.http[0].timeout: expected a string (a duration such as "10s" or "500ms"), '
                           "got null (remove the key or give it a value)")
    body = yaml.safe_load(VALID["DestinationRule"])
    body["spec"]["trafficPolicy"]["tls"] = {"mode": "SIMPLE", "insecureSkipVerify": None}  # nullable in Istio
    assert validate(Resource.from_dict(body)) == []


@pytest.mark.parametrize("kind,required", [("ServiceEntry", True), ("WorkloadEntry", True), ("WorkloadGroup", True),
                                           ("WasmPlugin", True), ("TrafficExtension", True),
                                           ("VirtualService", False), ("PeerAuthentication", False)])
def test_spec_required_where_istio_requires_it(kind, required):
    body = yaml.safe_load(VALID[kind])
    del body["spec"]
    msgs = [e.message for e in validate(Resource.from_dict(body))]
    assert msgs == (["spec: required field missing"] if required else [])
    assert ("required" in crd_openapi(kind)) is required


def test_lists_keyed_by_name_reject_duplicates():
    body = yaml.safe_load(VALID["ServiceEntry"])
    body["spec"]["ports"].append({"number": 8443, "name": "https", "protocol": "TLS"})
    (err,) = validate(Resource.from_dict(body))
    assert err.message == 'spec.ports[1].name: duplicate name "https" (also in item 0)'
    body = yaml.safe_load(VALID["WasmPlugin"])
    body["spec"]["vmConfig"] = {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}
    (err,) = validate(Resource.from_dict(body))
    assert err.path == ("spec", "vmConfig", "env", 1, "name")


# --- object-level checks -----------------------------------------------------------------------

def test_metadata_name_is_required_and_dns1123():
    body = yaml.safe_load(VALID["Gateway"])
    body["metadata"]["name"] = "Public_GW"
    (err,) = validate(Resource.from_dict(body))
    assert err.path == ("metadata", "name") and '"Public_GW" is not a valid name' in err.message
    del body["metadata"]["name"]
    (err,) = validate(Resource.from_dict(body))
    assert err.message == "metadata.name: required field missing"
    body["metadata"]["generateName"] = "gw-"
    assert validate(Resource.from_dict(body)) == []


def test_metadata_namespace_labels_and_unknown_fields():
    body = yaml.safe_load(VALID["Gateway"])
    body["metadata"].update({"namespace": "Istio.System", "labels": {"enabled": True}, "lables": {}})
    msgs = sorted(e.message for e in validate(Resource.from_dict(body)))
    assert msgs == [
        'metadata.labels.enabled: expected a string, got a boolean (true) (quote the value)',
        'metadata.lables: unknown field (did you mean "labels"?)',
        'metadata.namespace: "Istio.System" is not a valid namespace: use lowercase letters, digits and '
        "'-', starting and ending with a letter or digit (at most 63 characters)",
    ]


def test_label_and_annotation_syntax():
    body = yaml.safe_load(VALID["Gateway"])
    body["metadata"]["labels"] = {"app.kubernetes.io/name": "gw", "ok": "", "bad key": "x", "v": "-x-",
                                  "Example.com/x": "y"}
    body["metadata"]["annotations"] = {"sidecar.istio.io/inject": "anything goes: here", "/x": "y"}
    errors = validate(Resource.from_dict(body))
    assert {e.path for e in errors} == {("metadata", "annotations", "/x"), ("metadata", "labels", "Example.com/x"),
                                        ("metadata", "labels", "bad key"), ("metadata", "labels", "v")}
    msgs = [e.message for e in errors]
    assert 'metadata.labels.v: "-x-" is not a valid label value: at most 63 letters, digits, \'-\', \'_\' or \'.\', ' \
           "starting and ending with a letter or digit" in msgs
    assert any(m.startswith('metadata.labels["bad key"]: "bad key" is not a valid key') for m in msgs)


def test_unknown_top_level_field_and_version():
    body = yaml.safe_load(VALID["Sidecar"])
    body["specs"] = body.pop("spec")
    body["apiVersion"] = "networking.istio.io/v2"
    msgs = [e.message for e in validate(Resource.from_dict(body))]
    assert 'specs: unknown field (did you mean "spec"?)' in msgs
    assert any(m.startswith('apiVersion: "networking.istio.io/v2" is not a served version of Sidecar (use '
                            "networking.istio.io/v1") for m in msgs)


def test_api_version_without_version():
    body = yaml.safe_load(VALID["Gateway"])
    body["apiVersion"] = "networking.istio.io"
    assert [e.message for e in validate(Resource.from_dict(body))] == [
        'apiVersion: "networking.istio.io" has no version (use networking.istio.io/v1, '
        "networking.istio.io/v1alpha3, networking.istio.io/v1beta1)"]


def test_spec_of_wrong_type():
    body = yaml.safe_load(VALID["Sidecar"])
    body["spec"] = ["egress"]
    assert [e.message for e in validate(Resource.from_dict(body))] == ["spec: expected an object, got a list"]


def test_non_istio_objects_are_not_validated():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad_Name"}, "spec": {"bogus": 1}}
    assert validate(Resource.from_dict(svc)) == []
    # an Istio kind name under another group is not Istio's
    other = {"apiVersion": "example.com/v1", "kind": "Gateway", "metadata": {"name": "x"}, "spec": {"y": 1}}
    assert validate(Resource.from_dict(other)) == []


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_networking_versions_share_a_schema(version):
    body = yaml.safe_load(VALID["VirtualService"])
    body["apiVersion"] = f"networking.istio.io/{version}"
    assert validate(Resource.from_dict(body)) == []
    body["spec"]["tcpp"] = []
    assert [e.message for e in validate(Resource.from_dict(body))] == ['spec.tcpp: unknown field (did you mean "tcp"?)']


RE2_VALID = [r"^/api/v[0-9]+", r"\pL+", r"\p{Greek}+x", r"abc\z", r"\Q.*+\E$", r"(?i)abc(?-i)def", r"(?U)a+",
             r"[[:alpha:]]+", r"(?<name>x)", r"(?P<n>x)", r"(?i:abc)", r"\\1", r"\(?=a", r"[(?=]", r"[]a]",
             r"[^]a]", r"a{2,1000}", r"\x{263a}", r"https://.*\.example\.com"]
RE2_INVALID = {r"a{1001}": "repeat count above 1000", r"(?#c)": "comments", r"(?x)a": "unknown flag 'x'",
               r"a\Z": "\\Z is not RE2 syntax", r"a++": "possessive", r"(a)\1": "backreferences",
               r"(": "missing )", r"(?=x)y": "lookaround", r"(?<=x)y": "lookaround", r"(?>x)": "atomic",
               "a\\": "trailing backslash", r"[a-": "unterminated character set", r"*a": "nothing to repeat",
               r"\p{Greek": "missing }"}


@pytest.mark.parametrize("pattern", RE2_VALID)
def test_regex_accepted_as_re2(pattern):
    assert regex_problem(pattern) is None


@pytest.mark.parametrize("pattern,problem", sorted(RE2_INVALID.items()))
def test_regex_refused_as_re2(pattern, problem):
    assert problem in (regex_problem(pattern) or "")


def test_messages_stay_on_one_line():
    body = yaml.safe_load(VALID["Gateway"])
    body["spec"]["servers"][0]["tls"]["mode"] = 'SIM\nPLE "x"'
    body["spec"]["selector"] = {"istio": "ingress"}
    body["spec"]["servers"][0]["port"]["bad\nkey"] = 1
    msgs = [e.message for e in validate(Resource.from_dict(body))]
    assert any(m.startswith('spec.servers[0].tls.mode: "SIM\\nPLE \\"x\\"" is not one of') for m in msgs)
    assert 'spec.servers[0].port["bad\\nkey"]: unknown field' in msgs
    assert all("\n" not in m for m in msgs)


def test_schema_error_detail():
    e = SchemaError(("spec", "x"), "spec.x: bad")
    assert e.detail == "bad"
    assert format_path(("spec", "m", "a.b/c", 0)) == 'spec.m["a.b/c"][0]'


# --- the schema files --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_schema_file_is_valid_draft_2020_12(kind):
    import jsonschema

    schema = spec_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


_CONSTRAINTS = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")


def _objects(node, path=""):
    """Schema nodes describing messages (constraint fragments under allOf/if/not... are not)."""
    if isinstance(node, dict):
        if "properties" in node:
            yield path, node
        for k, v in node.items():
            if k not in _CONSTRAINTS:
                yield from _objects(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _objects(v, f"{path}/{i}")


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_message_rejects_unknown_fields(kind):
    for path, node in _objects(spec_schema(kind)):
        assert node.get("additionalProperties") is False, f"{kind} {path} accepts unknown fields"


def test_schemas_are_small():
    total = sum(len(json.dumps(spec_schema(k.kind), separators=(",", ":"))) for k in KINDS)
    assert total < 150_000


# --- jsonschema agrees with the compiled validator ---------------------------------------------

def _reference_validator(kind):
    """A jsonschema validator of the same schema, taught meshctl's two value annotations."""
    import jsonschema
    from jsonschema import validators

    from meshctl.schemas.validate import duration_ns, host_ok, scoped_host_problem

    def x_regex(validator, flag, instance, schema):
        if flag and isinstance(instance, str) and regex_problem(instance):
            yield jsonschema.ValidationError("bad regex")

    def x_format(validator, fmt, instance, schema):
        if fmt == "duration" and isinstance(instance, str) and re.search(schema["pattern"], instance) \
                and duration_ns(instance) < 1e6:
            yield jsonschema.ValidationError("short duration")
        if fmt == "host" and isinstance(instance, str) and not host_ok(instance):
            yield jsonschema.ValidationError("bad host")
        if fmt in ("gateway-host", "sidecar-host") and isinstance(instance, str) \
                and scoped_host_problem(instance, fmt == "gateway-host"):
            yield jsonschema.ValidationError("bad scoped host")

    def x_unique_by(validator, key, instance, schema):
        if isinstance(instance, list):
            keys = [json.dumps(i[key], sort_keys=True) for i in instance
                    if isinstance(i, dict) and isinstance(i.get(key), (str, int, float, bool))]
            if len(keys) != len(set(keys)):
                yield jsonschema.ValidationError("duplicate")

    cls = validators.extend(jsonschema.Draft202012Validator,
                            {"x-meshctl-regex": x_regex, "x-meshctl-format": x_format,
                             "x-meshctl-unique-by": x_unique_by})
    return cls(spec_schema(kind))


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_compiled_validator_agrees_with_jsonschema(kind):
    from meshctl.schemas.validate import validate_spec

    ref = _reference_validator(kind)
    samples = [yaml.safe_load(VALID[kind])["spec"]]
    for m in MISTAKES:
        if m[0] == kind and m[1].startswith("spec."):
            body = yaml.safe_load(VALID[kind])
            _set(body, m[1], m[2])
            samples.append(body["spec"])
    for spec in samples:
        ours = validate_spec(kind, spec)
        theirs = list(ref.iter_errors(spec))
        assert bool(ours) == bool(theirs), (spec, ours, [t.message for t in theirs])
        # every error we report is on a path jsonschema also complains about, below or above it
        # (rules with their own message are reported once, at the object they constrain)
        their_paths = {("spec",) + tuple(t.absolute_path) for t in theirs}
        for e in ours:
            assert any(e.path[:len(tp)] == tp or tp[:len(e.path)] == e.path for tp in their_paths), \
                (e, their_paths)


# --- CRD openAPIV3Schema -----------------------------------------------------------------------

_JUNCTOR_FORBIDDEN = {"type", "properties", "items", "additionalProperties", "description", "default",
                      "nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
                      "x-kubernetes-embedded-resource", "$ref"}


def structural_problems(node, path="") -> list[str]:
    """Violations of Kubernetes' structural-schema rules (apiextensions.k8s.io/v1)."""
    out: list[str] = []
    if not isinstance(node, dict):
        return [f"{path}: not an object"]
    if "$ref" in node:
        out.append(f"{path}: $ref")
    has_type = "type" in node
    if not (has_type or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")):
        out.append(f"{path}: no type")
    if has_type and node["type"] not in ("object", "array", "string", "integer", "number", "boolean"):
        out.append(f"{path}: bad type {node['type']!r}")
    if node.get("x-kubernetes-int-or-string") and "type" in node:
        out.append(f"{path}: int-or-string with type")
    if "additionalProperties" in node:
        if not isinstance(node["additionalProperties"], dict):
            out.append(f"{path}: additionalProperties is not a schema")
        if "properties" in node:
            out.append(f"{path}: properties and additionalProperties together")
    if "properties" in node and node.get("type") != "object":
        out.append(f"{path}: properties without type object")
    if "items" in node and node.get("type") != "array":
        out.append(f"{path}: items without type array")
    if node.get("type") == "array" and "items" not in node:
        out.append(f"{path}: array without items")
    if node.get("uniqueItems"):
        out.append(f"{path}: uniqueItems: true")
    for bad in ("$schema", "$defs", "$id", "const", "propertyNames", "patternProperties", "dependentSchemas",
                "definitions", "dependencies", "additionalItems", "if", "then", "else"):
        if bad in node:
            out.append(f"{path}: {bad}")
    for k in ("oneOf", "anyOf", "allOf"):
        for i, b in enumerate(node.get(k, [])):
            out += _junctor_problems(b, f"{path}/{k}/{i}")
    if "not" in node:
        out += _junctor_problems(node["not"], f"{path}/not")
    for name, sub in node.get("properties", {}).items():
        out += structural_problems(sub, f"{path}/{name}")
    if isinstance(node.get("items"), dict):
        out += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += structural_problems(node["additionalProperties"], f"{path}{{}}")
    return out


def _junctor_problems(node, path) -> list[str]:
    out = []
    for k, v in node.items():
        if k in _JUNCTOR_FORBIDDEN:
            out.append(f"{path}: {k} inside a junctor")
        if k in ("oneOf", "anyOf", "allOf"):
            for i, b in enumerate(v):
                out += _junctor_problems(b, f"{path}/{k}/{i}")
        if k == "not":
            out += _junctor_problems(v, f"{path}/not")
    return out


def test_structural_checker_catches_violations():
    bad = {"type": "object", "properties": {
        "a": {"$ref": "#/x"}, "b": {"properties": {}}, "c": {"type": "object", "additionalProperties": False},
        "d": {"type": "object", "oneOf": [{"type": "string"}]},
        "e": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}
    problems = structural_problems(bad)
    assert any("/a: $ref" in p for p in problems)
    assert any("/b: no type" in p for p in problems)
    assert any("/c: additionalProperties is not a schema" in p for p in problems)
    assert any("type inside a junctor" in p for p in problems)
    assert any("/e: uniqueItems" in p for p in problems)


def test_crd_conversion_drops_what_kubernetes_refuses():
    from meshctl.schemas.crd import structural

    schema = {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "m": {"type": "object", "additionalProperties": False, "properties": {"a": {"$ref": "#/$defs/A"}}},
        "v": {"type": ["integer", "string"]}, "n": {"type": ["boolean", "null"]},
        "x": {"type": "string", "x-meshctl-regex": True, "if": {"pattern": "a"}, "then": {"maxLength": 2}}},
        "$defs": {"A": {"type": "integer", "exclusiveMinimum": 0}}}
    out = structural(schema, schema)
    assert structural_problems(out) == []
    p = out["properties"]
    assert p["tags"] == {"type": "array", "items": {"type": "string"}}
    assert p["m"]["properties"]["a"] == {"type": "integer", "minimum": 0, "exclusiveMinimum": True}
    assert p["v"] == {"x-kubernetes-int-or-string": True}
    assert p["n"] == {"type": "boolean", "nullable": True}
    assert p["x"] == {"type": "string"}


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_crd_openapi_is_structural(kind):
    schema = crd_openapi(kind)
    assert structural_problems(schema) == []
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
    text = json.dumps(schema)
    assert "x-meshctl" not in text and "$ref" not in text


def test_crd_openapi_keeps_the_checks_kubernetes_can_express():
    vs = crd_openapi("VirtualService")["properties"]["spec"]
    http = vs["properties"]["http"]["items"]["properties"]
    assert http["timeout"]["pattern"].startswith("^")
    assert http["timeout"]["x-kubernetes-validations"][0]["rule"] == "duration(self) >= duration('1ms')"
    uri = http["match"]["items"]["properties"]["uri"]
    assert uri["oneOf"] == [{"required": ["exact"]}, {"required": ["prefix"]}, {"required": ["regex"]}]
    port = http["route"]["items"]["properties"]["destination"]["properties"]["port"]["properties"]["number"]
    assert (port["minimum"], port["maximum"]) == (0, 65535)
    pa = crd_openapi("PeerAuthentication")["properties"]["spec"]
    assert pa["properties"]["mtls"]["properties"]["mode"]["enum"] == ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
    wasm = crd_openapi("WasmPlugin")["properties"]["spec"]["properties"]["pluginConfig"]
    assert wasm == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_crd_openapi_same_for_every_version():
    for k in KINDS:
        schemas = {json.dumps(crd_openapi(k.kind, v), sort_keys=True) for v in k.versions}
        assert len(schemas) == 1


def test_crd_openapi_rejects_unknown_kind():
    with pytest.raises(KeyError):
        crd_openapi("Deployment")


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_crd_object_validates_against_kubernetes_openapi(kind):
    kv = pytest.importorskip("kubernetes_validate")
    from meshctl.schemas import BY_KIND

    ik = BY_KIND[kind]
    schema = crd_openapi(kind)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": ik.crd_name},
           "spec": {"group": ik.group, "scope": "Namespaced",
                    "names": {"kind": kind, "plural": ik.plural, "singular": kind.lower(),
                              "listKind": f"{kind}List", "shortNames": list(ik.short_names)},
                    "versions": [{"name": v, "served": True, "storage": v == ik.storage_version,
                                  "schema": {"openAPIV3Schema": schema}} for v in ik.versions]}}
    kv.validate(crd, kv.latest_version(), strict=True)


def test_crd_size_is_reasonable():
    total = sum(len(yaml.safe_dump(crd_openapi(k.kind))) * len(k.versions) for k in KINDS)
    assert total < 500_000  # Istio's own CRDs for the same kinds are about 1 MB


# --- property test: random edits of the valid examples, compiled validator vs jsonschema ---------

def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


_SCALARS = ["", "1s", "500ms", "0s", "1h2m3.5s", "10x", "^a.*$", "(", "(?=a)", "STRICT", "HTTP", "GET",
            "unix:///sock", "oci://r/i:1", "ftp://x", "10.0.0.0/8", "*", "a*", "reviews",
            0, 1, -1, 80, 65535, 65536, 2 ** 31, 300, 599, 1.5, 100.5, True, False]


def _values():
    from hypothesis import strategies as st

    scalar = st.sampled_from(_SCALARS)
    key = st.sampled_from(["exact", "prefix", "regex", "host", "number", "mode", "name", "value",
                           "bogus", "8080", "app"])
    return st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(key, inner, max_size=3),
                        max_leaves=6)


def _reference_with_formats(kind):
    import jsonschema
    from jsonschema import validators

    base = _reference_validator(kind)

    def int32(validator, fmt, instance, schema):
        if fmt == "int32" and isinstance(instance, int) and not isinstance(instance, bool) \
                and not -(2 ** 31) <= instance < 2 ** 31:
            yield jsonschema.ValidationError("int32")

    cls = validators.extend(type(base), {"format": int32})
    return cls(spec_schema(kind))


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_random_edits_agree_with_jsonschema(kind):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from meshctl.schemas.validate import validate_spec

    ref = _reference_with_formats(kind)
    spec0 = yaml.safe_load(VALID[kind])["spec"]
    paths = [p for p in _paths(spec0) if p]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(paths), _values(), st.booleans())
    def check(path, value, add_key):
        spec = copy.deepcopy(spec0)
        parent = spec
        for p in path[:-1]:
            parent = parent[p]
        if add_key and isinstance(parent, dict):
            parent[f"{path[-1]}x"] = value
        else:
            parent[path[-1]] = value
        ours = validate_spec(kind, spec)
        theirs = list(ref.iter_errors(spec))
        assert bool(ours) == bool(theirs), (path, value, [e.message for e in ours], [t.message for t in theirs])

    check()


def test_arbitrary_documents_never_crash_the_validator():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=4)
    key = st.text(max_size=6) | st.integers(min_value=-5, max_value=70000) | st.sampled_from(
        ["http", "route", "match", "uri", "regex", "timeout", "ports", "number", "mtls", "mode", "selector"])
    tree = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(key, inner, max_size=4),
                        max_leaves=12)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from([k for k in KINDS]), tree, tree)
    def check(ik, spec, metadata):
        body = {"apiVersion": ik.api_versions()[0], "kind": ik.kind, "metadata": metadata, "spec": spec}
        for err in validate(Resource.from_dict(body)):
            assert isinstance(err, SchemaError)
            assert "\n" not in err.message and "\r" not in err.message
            assert err.message.startswith(format_path(err.path) + ": ")

    check()


def test_valid_objects_take_the_fast_path(monkeypatch):
    """Conditions (`if`, `not`, branches) only count errors: explaining them (did-you-mean,
    message formatting) must not happen for objects that are valid."""
    import meshctl.schemas.compiler as c
    import meshctl.schemas.errors as errs
    import meshctl.schemas.validate as v

    def boom(*_a, **_k):
        raise AssertionError("a message was built for a valid object")

    for module in (c, v):
        monkeypatch.setattr(module, "did_you_mean", boom)
    for module in (c, errs, v):
        monkeypatch.setattr(module, "format_path", boom)
    c._validators.clear()
    try:
        for kind, text in VALID.items():
            assert validate(resource(text)) == [], kind
        ap = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
              "metadata": {"name": "p"}, "spec": {"action": "ALLOW"}}
        assert validate(Resource.from_dict(ap)) == []
    finally:
        c._validators.clear()


def test_analyze_reports_schema_errors_at_their_lines(cli, tmp_path):
    """What a user sees: IST0106 per problem, at the line of the offending field, exit code 1."""
    f = tmp_path / "mesh.yaml"
    f.write_text(
        "apiVersion: networking.istio.io/v1\n"       # 1
        "kind: DestinationRule\n"                    # 2
        "metadata:\n"                                # 3
        "  name: reviews\n"                          # 4
        "  namespace: default\n"                     # 5
        "spec:\n"                                    # 6
        "  host: reviews\n"                          # 7
        "  trafficPolicy:\n"                         # 8
        "    connectionPool:\n"                      # 9
        "      tcp:\n"                               # 10
        "        connectTimeout: 30\n"               # 11
        "    tls:\n"                                 # 12
        "      mode: ISTIO_MUTUALL\n"                # 13
        "  subsets:\n"                               # 14
        "  - name: v1\n"                             # 15
        "    lables: {version: v1}\n")               # 16
    result = cli("analyze", "-o", "json", str(f))
    assert result.exit_code == 1, result
    import json as _json

    found = {(m["reference"], m["message"]) for m in _json.loads(result.stdout) if m["code"] == "IST0106"}
    assert found == {
        (f"{f}:11", 'Schema validation error: spec.trafficPolicy.connectionPool.tcp.connectTimeout: expected a '
                    'string (a duration such as "10s" or "500ms"), got an integer (30)'),
        (f"{f}:13", 'Schema validation error: spec.trafficPolicy.tls.mode: "ISTIO_MUTUALL" is not one of DISABLE, '
                    'SIMPLE, MUTUAL, ISTIO_MUTUAL (did you mean "ISTIO_MUTUAL"?)'),
        (f"{f}:16", 'Schema validation error: spec.subsets[0].lables: unknown field (did you mean "labels"?)'),
    }


@pytest.mark.parametrize("kind", sorted(VALID))
def test_crd_schema_accepts_the_valid_examples(kind):
    """The CRD schema read as JSON Schema (what the API server checks besides CEL and pruning)
    accepts the valid example, and still refuses a few typical mistakes."""
    import jsonschema

    validator = jsonschema.Draft7Validator(crd_openapi(kind))
    assert [e.message for e in validator.iter_errors(yaml.safe_load(VALID[kind]))] == []


def test_crd_schema_refuses_typical_mistakes():
    import jsonschema

    refused = 0
    for kind, where, value, _path, message in MISTAKES:
        if message is None:
            continue
        body = yaml.safe_load(VALID[kind])
        _set(body, where, value)
        refused += any(True for _ in jsonschema.Draft7Validator(crd_openapi(kind)).iter_errors(body))
    assert refused >= 50  # the rest need CEL, unknown-field pruning or checks only meshctl makes


def test_a_key_ending_in_a_newline_is_quoted_on_one_line():
    body = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"A\n": None}, "spec": {}}
    messages = [e.message for e in validate(Resource.from_dict(body))]
    assert messages and all("\n" not in m for m in messages)
    assert any(m.startswith('metadata["A\\n"]: unknown field') for m in messages), messages

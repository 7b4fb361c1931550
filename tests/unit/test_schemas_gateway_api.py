"""Gateway API schemas and their CEL rules: defaults applied before the rules, Kubernetes'
escaping of property names, isIP, transition rules skipped, the offending list item named."""
from __future__ import annotations

import pytest

from meshctl.analysis.pipeline import analyze_text
from meshctl.schemas import gatewayapi
from meshctl.schemas.cel import NodeRules, Rule, escape_key, is_ip, rules_of
from meshctl.schemas.validate import validate
from meshctl.resources import Resource


def _errors(text: str) -> list[str]:
    import yaml

    return [e.message for e in validate(Resource.from_dict(yaml.safe_load(text)))]


ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - path: {value: %s}
    backendRefs:
    - {name: reviews, port: 9080}
"""


def test_index_names_the_release_and_kinds():
    assert gatewayapi.bundle_version() == "v1.6.1"
    kinds = gatewayapi.kinds()
    assert set(kinds) == set(gatewayapi.SUPPORTED)
    assert kinds["HTTPRoute"].versions == ("v1", "v1beta1")
    assert not kinds["GatewayClass"].namespaced
    assert kinds["ReferenceGrant"].crd_name == "referencegrants.gateway.networking.k8s.io"


def test_a_valid_route_passes():
    assert _errors(ROUTE % "/api") == []


def test_path_type_defaults_to_prefix_before_the_rules_run():
    # `type` is left out: the API server defaults it to PathPrefix, whose rules want a "/"
    assert _errors(ROUTE % "api") == ["spec.rules[0].matches[0].path: value must be an absolute path and start with '/' "
                                      "when type one of ['Exact', 'PathPrefix']"]


def test_rules_see_escaped_property_names():
    # parentRefs' uniqueness rules read `__namespace__`: the same parent twice without sectionName
    text = ROUTE % "/a" + "  hostnames: [a.example.com]\n"
    text = text.replace("  - name: gw\n", "  - {name: gw, namespace: infra}\n  - {name: gw, namespace: infra}\n")
    assert _errors(text) == ["spec.parentRefs: sectionName must be unique when parentRefs includes 2 or more "
                             "references to the same parent"]
    other = text.replace("  - {name: gw, namespace: infra}\n  - {name: gw, namespace: infra}\n",
                         "  - {name: gw, namespace: infra}\n  - {name: gw, namespace: other}\n")
    assert _errors(other) == []


def test_escape_key_follows_kubernetes():
    assert escape_key("namespace") == "__namespace__"
    assert escape_key("a-b.c/d") == "a__dash__b__dot__c__slash__d"
    assert escape_key("x__y") == "x__underscores__y"
    assert escape_key("name") == "name"


@pytest.mark.parametrize("text,ok", [("10.0.0.1", True), ("2001:db8::1", True), ("example.com", False),
                                     ("010.0.0.1", False), ("::ffff:10.0.0.1", False), ("fe80::1%eth0", False),
                                     ("", False)])
def test_is_ip_as_kubernetes(text, ok):
    assert is_ip(text) is ok


def test_hostnames_that_are_ips_are_refused_by_isip():
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: t}
spec:
  hostnames: ["10.0.0.1"]
  rules:
  - backendRefs: [{name: a, port: 443}]
"""
    assert [m for m in _errors(text) if "spec.hostnames" in m]


def test_transition_rules_are_skipped():
    assert rules_of({"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"},
                                                  {"rule": "self.size() > 0"}]}) == [
        Rule("self.size() > 0", "failed rule: self.size() > 0")]


def test_a_rule_that_cannot_be_evaluated_is_reported_with_its_reason():
    rules = NodeRules([Rule("self.value.startsWith('/')", "value must start with /")])
    [(rule, reason, index)] = rules.failures({"other": 1})
    assert rule.message == "value must start with /" and "value" in reason and index is None


def test_the_listener_breaking_a_list_rule_is_named_with_its_line():
    text = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g, namespace: shop}
spec:
  gatewayClassName: istio
  listeners:
  - {name: web, port: 80, protocol: HTTP}
  - name: db
    port: 5432
    protocol: TCP
    hostname: db.example.com
"""
    result = analyze_text(text, analyzers=["schema.GatewayAPIValidationAnalyzer.Gateway"])
    [m] = [m for m in result.messages if m.code == "IST0106"]
    assert "spec.listeners[1]: hostname must not be specified for protocols ['TCP', 'UDP']" in m.text
    assert m.line_number == 8


def test_wrong_types_are_reported_once_by_the_schema_not_by_the_rules():
    errors = _errors((ROUTE % "/a").replace("port: 9080", "port: nine"))
    assert errors == ['spec.rules[0].backendRefs[0].port: expected an integer, got a string ("nine")']


def test_unknown_fields_and_versions():
    errors = _errors((ROUTE % "/a").replace("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v2")
                     .replace("  parentRefs:", "  parentRef:"))
    assert any(e.startswith('apiVersion: "gateway.networking.k8s.io/v2" is not a served version of HTTPRoute') for e in errors)
    assert 'spec.parentRef: unknown field (did you mean "parentRefs"?)' in errors


def test_istio_gateway_is_not_read_as_a_gateway_api_gateway():
    text = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""
    assert _errors(text) == []


def test_routes_differing_only_in_names_share_an_outcome_but_not_a_wrong_one():
    # backendRef names are read by no rule: the two routes are evaluated once; parentRef names
    # are read by the uniqueness rules, so a route that repeats a parent is still caught
    base = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r%d, namespace: shop}
spec:
  parentRefs: [{name: %s}, {name: %s}]
  rules:
  - backendRefs: [{name: %s, port: 80}]
"""
    assert _errors(base % (1, "a", "b", "reviews")) == []
    assert _errors(base % (2, "c", "d", "ratings")) == []
    assert _errors(base % (3, "e", "e", "details")) == [
        "spec.parentRefs: sectionName must be unique when parentRefs includes 2 or more references to the same parent"]


def _regex_literals() -> list[str]:
    import re

    from meshctl.schemas.cel import _all_rules, fast_regex

    out = set()
    for kind in gatewayapi.SUPPORTED:
        for rule in _all_rules(gatewayapi.spec_schema(kind)):
            if fast_regex(rule.rule) != rule.rule:
                for raw, triple, plain in re.findall(r'reMatches\((?:r"""(.*?)"""|(r?)\'([^\']*)\')\)', fast_regex(rule.rule)):
                    out.add(raw or plain.replace("\\\\", "\\"))
    return sorted(out)


@pytest.mark.parametrize("pattern", _regex_literals())
def test_patterns_matched_in_python_mean_what_re2_means(pattern):
    # the CEL library's own matches() is RE2: compare it with reMatches on tricky inputs
    from meshctl.schemas.cel import _environment

    env = _environment()
    re2 = env.compile("self[0].matches(self[1])")
    ours = env.compile("self[0].reMatches(self[1])")
    samples = ["", "a", "A", "abc", "a.b.example.com", "*.example.com", "foo\n", "a\nb", "/api/v1", "/a b",
               "Foo_bar9", "9foo", "ünï", "a/b", "x" * 300, "a..b", "-a", "a-", "example.com/key", "%2F", "/%zz",
               "shop.Cart", ".shop.Cart", "Get", "TCP", "a.b/c_d"]
    for text in samples:
        want = re2.eval(data={"self": [text, pattern]}).plain_value()
        got = ours.eval(data={"self": [text, pattern]}).plain_value()
        assert got == want, (pattern, text)


def test_a_remembered_outcome_still_checks_the_schema_and_nulls_are_defaulted():
    route = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  rules:
  - matches: [{path: {type: %s, value: /a}}]
    backendRefs: [{name: reviews, namespace: %s, port: 80}]
"""
    assert _errors(route % ("PathPrefix", "other")) == []
    # same shape, so the rules' outcome is remembered, but the namespace breaks the schema's pattern
    assert [e.split(":")[0] for e in _errors(route % ("PathPrefix", "Bad_NS"))] == [
        "spec.rules[0].backendRefs[0].namespace"]
    # a null where a default exists is defaulted, as the API server does
    assert _errors(route % ("null", "other")) == []

"""The shared vocabulary: one selector semantics and one host resolution for every command.
A label written as another YAML type is matched as its YAML text, everywhere."""
from __future__ import annotations

import pytest

from meshctl import hosts
from meshctl.analysis import framework
from meshctl.analysis.helpers import in_mesh
from meshctl.loader import load_text
from meshctl.resources import ResourceSet
from meshctl.selectors import LabelIndex, label_map, matches, matches_label_selector, selector_string


@pytest.mark.parametrize("labels,selector", [
    ({"inject": True}, {"inject": "true"}), ({"inject": "true"}, {"inject": True}),
    ({"version": 1}, {"version": "1"}), ({"x": None}, {"x": ""}), ({"on": "yes"}, {"on": "yes"}),
])
def test_a_label_of_another_type_matches_its_yaml_text_in_every_selector(labels, selector):
    assert matches(labels, selector)
    assert matches_label_selector({"matchLabels": selector}, labels)
    assert matches_label_selector({"matchExpressions": [{"key": next(iter(selector)), "operator": "In",
                                                         "values": list(selector.values())}]}, labels)
    index = LabelIndex([type("R", (), {"namespace": "ns", "labels": labels})()])
    assert index.select(selector) and index.select(selector, "ns") and index.any(selector)
    assert not index.select(selector, "other")


def test_selector_text_and_maps():
    assert selector_string({"b": 2, "a": True}) == "a=true,b=2"
    assert label_map({"a": False, 5: None}) == {"a": "false", "5": ""}
    assert label_map(["not", "a", "map"]) == {}


DOCS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: web, sidecar.istio.io/inject: %s}
    spec: {containers: [{name: web, image: web}]}
"""


@pytest.mark.parametrize("value,expected", [("true", True), ("'true'", True), ("false", False), ("'false'", False)])
def test_mesh_membership_reads_a_yaml_bool_label_like_its_text(value, expected):
    loaded = load_text(DOCS % value, "in.yaml")
    ctx = framework.Context(resources=ResourceSet(loaded.resources))
    dep = next(r for r in loaded.resources if r.kind == "Deployment")
    assert in_mesh(ctx, dep) is expected


@pytest.mark.parametrize("host,ns,istio,service", [
    ("reviews", "shop", "reviews.shop.svc.cluster.local", "reviews.shop.svc.cluster.local"),
    ("reviews.shop", "x", "reviews.shop", "reviews.shop.svc.cluster.local"),
    ("reviews.shop.svc", "x", "reviews.shop.svc", "reviews.shop.svc.cluster.local"),
    ("*.example.com", "x", "*.example.com", "*.example.com"),
])
def test_istios_host_rule_and_the_command_lines(host, ns, istio, service):
    assert hosts.fqdn(host, ns) == istio
    assert hosts.service_fqdn(host, ns) == service


def test_wildcards_and_names():
    assert hosts.host_matches("*.example.com", "api.example.com") and not hosts.host_matches("a.com", "b.com")
    assert hosts.name_from_host("x", "reviews.shop.svc.cluster.local") == ("shop", "reviews")
    assert hosts.short_or_full_name("d", "shop/gw") == ("shop", "gw") and hosts.short_name("a.b.c") == "a"

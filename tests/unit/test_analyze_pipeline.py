"""The analyze pipeline's model stage: mesh config, stand-in gateway objects, cluster + files."""
from __future__ import annotations

import pytest

from meshctl.analysis.framework import Analyzer, select_analyzers
from meshctl.analysis.pipeline import (
    analyze_loaded, default_resources, load_mesh_config, merged_mesh_config,
)
from meshctl.errors import InputError
from meshctl.loader import load_text
from meshctl.resources import Resource

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: %s}}]}]
"""


def test_stand_ins_follow_mesh_config():
    pod, svc = default_resources(merged_mesh_config({"ingressService": "edge"}), "mesh-system")
    assert (pod.kind, pod.namespace, pod.name) == ("Pod", "mesh-system", "edge-dummypod")
    assert (svc.kind, svc.namespace, svc.name) == ("Service", "mesh-system", "edge")
    assert pod.labels == {"istio": "ingressgateway"}
    assert [p["port"] for p in svc.spec["ports"]] == [80, 443, 31400, 15443]
    assert default_resources(merged_mesh_config({"ingressControllerMode": "OFF"}), "istio-system") == []


@pytest.mark.parametrize("text, expected", [
    ("ingressControllerMode: 'OFF'\nrootNamespace: x\n", {"ingressControllerMode": "OFF", "rootNamespace": "x"}),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: |\n    trustDomain: t.example\n",
     {"trustDomain": "t.example"}),
    ("", {}),
])
def test_mesh_config_files(tmp_path, text, expected):
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    assert load_mesh_config(str(f)) == expected


@pytest.mark.parametrize("text, words", [
    ("a: [\n", "not valid YAML"),
    ("- 1\n", "must be a mapping"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata: {other: x}\n", "no data.mesh"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: '[1, 2]'\n", "must be a mapping"),
    ("a: " + "[" * 100000 + "]" * 100000 + "\n", "nests deeper"),  # would crash the C parser
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: '" + "[" * 100000 + "]" * 100000
     + "'\n", "nests deeper"),
])
def test_bad_mesh_config_is_an_input_error(tmp_path, text, words):
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        load_mesh_config(str(f))
    assert words in e.value.message and str(f) in e.value.message


def test_files_replace_cluster_objects_and_stand_ins_are_not_reported():
    live = [Resource.from_dict(load_text(VS % "reviewz", "x").resources[0].body, source="cluster"),
            Resource.from_dict({"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": "reviews", "namespace": "shop"},
                                "spec": {"ports": [{"name": "http", "port": 80}]}}, source="cluster")]
    for r in live:
        r.from_cluster = True
    hosts = select_analyzers(["virtualservice.DestinationHostAnalyzer"])
    msgs, resources = analyze_loaded(load_text("", "none.yaml"), hosts, live=live)
    assert [(m.code, m.origin, m.reference) for m in msgs] == [("IST0101", "VirtualService shop/reviews", "")]
    fixed = load_text(VS % "reviews", "fix.yaml")
    msgs, resources = analyze_loaded(fixed, hosts, live=live)
    assert msgs == []
    assert len(resources) == 2 and fixed.resources[0] in resources
    # without a cluster, the stand-in gateway objects exist but are neither counted nor reported
    class Everything(Analyzer):
        name = "test.Everything"
        inputs = ("Pod", "Service")

        def analyze(self, ctx):
            for r in ctx.resources:
                ctx.report("IST0118", r, r.name, 1, "x")

    svc = load_text("apiVersion: v1\nkind: Service\nmetadata: {name: mine}\n", "svc.yaml",
                    default_namespace="default")
    msgs, resources = analyze_loaded(svc, [Everything], {"ingressService": "edge"})
    assert [m.origin for m in msgs] == ["Service default/mine"]
    assert resources == svc.resources
    msgs, _ = analyze_loaded(svc, [Everything], {"ingressService": "edge"}, live=[])
    assert [m.origin for m in msgs] == ["Service default/mine"]

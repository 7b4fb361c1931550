"""Mistakes kubectl would refuse that no Istio analyzer sees: kinds their API group does not serve,
duplicate keys in a mapping."""
from __future__ import annotations

import json

import pytest

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualServce
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"""


def test_a_misspelt_kind_in_an_istio_group_is_an_error_with_a_did_you_mean(cli, tmp_path):
    f = tmp_path / "vs.yaml"
    f.write_text(VS)
    r = cli("analyze", str(f))
    assert r.exit_code == 1, r
    assert r.stdout == (f'Error [MSH0003] (VirtualServce default/reviews {f}:2) Kind "VirtualServce" is not '
                        'served as networking.istio.io/v1: did you mean "VirtualService"?\n')
    assert "No validation issues" not in r.stderr


def test_a_kind_served_by_another_group_or_version_names_the_right_apiversion(cli, tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("apiVersion: v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
                 "apiVersion: networking.istio.io/v1\nkind: EnvoyFilter\nmetadata: {name: ef}\nspec: {}\n")
    found = {m["origin"]: m for m in json.loads(cli("analyze", "-o", "json", str(f)).stdout) if m["code"] == "MSH0003"}
    assert "apiVersion: apps/v1" in found["Deployment default/web"]["message"]
    assert found["Deployment default/web"]["reference"] == f"{f}:1"
    assert "v1alpha3 only" in found["EnvoyFilter default/ef"]["message"]


def test_a_crd_in_the_input_makes_its_kinds_known(cli, tmp_path):
    f = tmp_path / "crd.yaml"
    f.write_text("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                 "metadata: {name: backendfoos.gateway.networking.k8s.io}\n"
                 "spec:\n  group: gateway.networking.k8s.io\n  scope: Namespaced\n"
                 "  names: {kind: BackendFoo, plural: backendfoos}\n"
                 "  versions: [{name: v1alpha1, served: true, storage: true}]\n---\n"
                 "apiVersion: gateway.networking.k8s.io/v1alpha1\nkind: BackendFoo\nmetadata: {name: b}\n")
    assert "MSH0003" not in cli("analyze", str(f)).stdout
    f.write_text(f.read_text().split("---\n")[1])
    assert "MSH0003" in cli("analyze", str(f)).stdout


def test_custom_resources_of_other_groups_pass(cli, tmp_path):
    f = tmp_path / "cr.yaml"
    f.write_text("apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c}\n---\n"
                 "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata: {name: io}\n")
    r = cli("analyze", str(f))
    assert "MSH0003" not in r.stdout and r.exit_code == 0, r


@pytest.mark.parametrize("suppress", [("--suppress", "MSH0003=VirtualServce reviews"), ("--analyzers", "security")])
def test_the_kind_check_is_an_analyzer_like_the_others(cli, tmp_path, suppress):
    f = tmp_path / "vs.yaml"
    f.write_text(VS)
    assert "MSH0003" not in cli("analyze", *suppress, str(f)).stdout


DUP = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
  name: ratings
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviewz}
"""


def test_a_key_given_twice_is_an_error_at_the_second_key(cli, tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text(DUP)
    r = cli("analyze", "-o", "json", str(f))
    assert r.exit_code == 1, r
    found = json.loads(r.stdout)
    dup = [m for m in found if m["code"] == "MSH0004"]
    assert [(m["level"], m["reference"]) for m in dup] == [("Error", f"{f}:6")]
    assert dup[0]["message"] == ('key "name" is given twice in one mapping (first at line 4): kubectl refuses the '
                                 "document; keep one")
    # the rest of the document is still analyzed, as YAML parsers read it (the last value wins)
    assert ("IST0101", "VirtualService shop/ratings") in {(m["code"], m["origin"]) for m in found}


@pytest.mark.parametrize("name,text,line", [
    ("flow.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80, port: 81}]\n", 5),
    ("second.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\n"
                    "metadata: {name: b}\ndata:\n  x: '1'\n  x: '2'\n", 10),
    ("float.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {}\nratio: 0.5\nratio: 0.7\n", 6),
    ("vs.json", '{"apiVersion": "v1", "kind": "ConfigMap",\n "metadata": {"name": "a"},\n'
                ' "data": {"x": "1",\n          "x": "2"}}\n', 4),
])
def test_duplicate_keys_anywhere_in_yaml_and_json(cli, tmp_path, name, text, line):
    f = tmp_path / name
    f.write_text(text)
    found = json.loads(cli("analyze", "-o", "json", str(f)).stdout)
    assert [m["reference"] for m in found if m["code"] == "MSH0004"] == [f"{f}:{line}"]


def test_merge_keys_and_anchors_are_not_duplicates(cli, tmp_path):
    f = tmp_path / "anchors.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &l {app: a}\n"
                 "  annotations:\n    <<: *l\n    app: b\n")
    r = cli("analyze", str(f))
    assert "MSH0004" not in r.stdout and r.exit_code == 0, r

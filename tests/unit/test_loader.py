"""The load stage: resources with field lines, and hostile input refused as problems."""
from __future__ import annotations

from meshctl.loader import load_bytes, load_text

MULTI = """\
# a comment
apiVersion: v1
kind: Service
metadata:
  name: a
spec:
  ports:
  - name: web
    port: 80
---
bad: [
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: x}
spec:
  hosts: [reviewz]
---
- just a list
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm}
"""


def test_multi_document_file_keeps_good_documents_and_reports_bad_ones():
    loaded = load_text(MULTI, "f.yaml", default_namespace="default")
    assert [r.origin for r in loaded.resources] == [
        "Service default/a", "VirtualService x/r", "ConfigMap default/cm"]
    assert [(p.line, p.message.split(":")[0]) for p in loaded.problems] == [
        (12, "invalid YAML"), (19, "document is a list, not a Kubernetes object (a mapping with apiVersion and kind)")]


def test_field_lines_point_at_the_offending_field():
    svc, vs, cm = load_text(MULTI, "f.yaml").resources
    assert svc.line_of(["spec", "ports", 0, "port"]) == 9
    assert vs.line_of(["spec", "hosts", 0]) == 17
    assert vs.reference(["spec", "hosts"]) == "f.yaml:17"
    assert vs.line_of(["spec", "nothere"]) == 16  # nearest existing ancestor
    assert cm.line == 24


def test_yaml_directives_and_comments_before_a_document_start_belong_to_it():
    text = ("%YAML 1.1\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n"
            "---\n# the next one\n%TAG !k! tag:k8s.io,2024:\n---\napiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: cm}\ndata: {on: yes}\n")
    loaded = load_text(text, "d.yaml", default_namespace="default")
    assert loaded.problems == []
    svc, cm = loaded.resources
    assert (svc.line, svc.line_of(["spec", "ports", 0, "port"])) == (3, 6)
    assert (cm.line, cm.line_of(["data"])) == (11, 14)
    assert cm.body["data"] == {True: True}  # YAML 1.1, as the directive says


def test_cluster_scoped_kinds_take_no_default_namespace():
    loaded = load_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n", "n.yaml", "default")
    assert loaded.resources[0].namespace is None


def test_alias_bomb_is_refused_quickly():
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip("abcdefg", "bcdefgh"):
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    loaded = load_text("\n".join(levels) + "\n", "bomb.yaml")
    assert not loaded.resources
    assert "alias bomb" in loaded.problems[0].message


def test_binary_non_utf8_and_deep_documents_are_problems_not_crashes():
    assert "binary" in load_bytes(b"\x00\x01\x02", "b.yaml").problems[0].message
    assert "not UTF-8" in load_bytes(b"kind: \xff\n", "c.yaml").problems[0].message
    assert "deeper" in load_text("[" * 2000 + "]" * 2000, "d.yaml").problems[0].message


def test_json_documents_and_missing_kind():
    loaded = load_text('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}', "s.json")
    assert loaded.resources[0].origin == "Service s"
    loaded = load_text("metadata: {name: x}\n", "x.yaml")
    assert "no apiVersion or kind" in loaded.problems[0].message


def test_very_deep_flow_nesting_is_refused_without_crashing():
    # 100,000 levels would overflow the C composer's stack: refused before composing
    loaded = load_text("[" * 100_000 + "]" * 100_000, "deep.yaml")
    assert "deeper than 500" in loaded.problems[0].message


def test_yaml_values_are_typed_as_pyyaml_types_them_and_timestamps_stay_strings():
    text = """\
apiVersion: v1
kind: ConfigMap
metadata: &m {name: cm, namespace: ns}
data:
  base: &b {x: 1}
  merged:
    <<: *b
    y: 2
  octal: 010
  hex: 0x1f
  float: 1.5
  none: ~
  yes: yes
  when: 2020-01-01
  plain: "007"
"""
    body = load_text(text, "cm.yaml").resources[0].body
    data = body["data"]
    assert data["merged"] == {"x": 1, "y": 2}
    assert data["octal"] == 8 and data["hex"] == 31 and data["float"] == 1.5
    assert data["none"] is None and data[True] is True
    assert data["when"] == "2020-01-01"
    assert data["plain"] == "007"


def test_crlf_multi_document_files_split_into_documents():
    text = "apiVersion: v1\r\nkind: Service\r\nmetadata: {name: a}\r\n---\r\napiVersion: v1\r\nkind: Service\r\nmetadata: {name: b}\r\n"
    loaded = load_text(text, "crlf.yaml")
    assert [r.name for r in loaded.resources] == ["a", "b"]
    assert loaded.resources[1].line == 5


def test_safe_load_refuses_hostile_embedded_yaml_with_a_yaml_error():
    import pytest
    import yaml

    from meshctl.loader import safe_load, safe_load_all

    assert safe_load("a: 1\nb: [x, y]\n") == {"a": 1, "b": ["x", "y"]}
    assert safe_load("") is None
    assert safe_load_all("a: 1\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]
    with pytest.raises(yaml.YAMLError, match="deeper than 500"):
        safe_load("[" * 100_000 + "]" * 100_000)
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip("abcdefg", "bcdefgh"):
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(yaml.YAMLError, match="alias bomb"):
        safe_load("\n".join(levels))
    with pytest.raises(yaml.YAMLError, match="one YAML document"):
        safe_load("a: 1\n---\nb: 2\n")


def test_a_document_containing_itself_through_an_alias_is_a_problem():
    # PyYAML builds such a structure (here through its own constructor, for the float), and
    # every walk over it would recurse without end
    text = ("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r}\nspec:\n"
            "  hostnames:\n  - &x\n    weight: 1.5\n    name: *x\n")
    loaded = load_text(text, "r.yaml")
    assert not loaded.resources
    assert loaded.problems[0].message == "document contains itself through an alias (a recursive structure)"

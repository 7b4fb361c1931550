"""The YAML emitter and strategic merge used by inject: output reads back as the same data."""
from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from meshctl.inject.emit import dump
from meshctl.inject.merge import merge

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["yes", "no", "on", "~", "1.0", "0x1f", "a: b", "- x",
                                                           "#x", "x\n", "a\nb\n", " lead", "12:30", "*", "&a"]))
data = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), data, max_size=5))
def test_emitted_yaml_reads_back_as_the_same_data(doc):
    assert yaml.safe_load(dump(doc)) == (doc if doc else {})


def test_emitter_writes_kubectl_style_blocks():
    doc = {"metadata": {"name": "x", "annotations": {"a": "15020"}},
           "spec": {"containers": [{"name": "c", "args": ["-p", "15001", ""]}], "volumes": []},
           "value": "{}\n"}
    assert dump(doc) == (
        "metadata:\n  name: x\n  annotations:\n    a: '15020'\n"
        "spec:\n  containers:\n  - name: c\n    args:\n    - '-p'\n    - '15001'\n    - ''\n  volumes: []\n"
        "value: |\n  {}\n")


def test_shared_nodes_are_emitted_once_and_reused():
    shared = {"name": "istio-init", "args": ["a", "b"]}
    frozen = {id(shared)}
    memo: dict = {}
    one = dump({"spec": {"initContainers": [shared]}}, None, frozen, memo)
    two = dump({"spec": {"initContainers": [shared]}}, None, frozen, memo)
    assert one == two == dump({"spec": {"initContainers": [dict(shared)]}})
    assert memo


def test_strategic_merge_by_keys_and_order():
    original = {"spec": {"containers": [{"name": "app", "image": "a"},
                                        {"name": "istio-proxy", "volumeMounts": [{"mountPath": "/x", "name": "x"}]}],
                         "volumes": [{"name": "certs", "secret": {"secretName": "s"}}]}}
    patch = {"spec": {"containers": [{"name": "istio-proxy", "image": "p",
                                      "volumeMounts": [{"mountPath": "/y", "name": "y"}]}],
                      "volumes": [{"name": "data", "emptyDir": {}}, {"name": "certs", "emptyDir": None}]}}
    out = merge(original, patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "istio-proxy"]
    proxy = out["spec"]["containers"][1]
    assert proxy["image"] == "p" and [m["mountPath"] for m in proxy["volumeMounts"]] == ["/y", "/x"]
    assert out["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}, {"name": "certs"}]
    assert original["spec"]["containers"][1].get("image") is None  # inputs untouched

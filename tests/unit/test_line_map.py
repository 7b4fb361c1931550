"""Field lines: the loader keeps a compact line map per object (no YAML nodes), and it must give
the line a walk of the composed YAML nodes gives, for every path a finding can name."""
from __future__ import annotations

import pickle

import pytest

from meshctl.loader import load_paths, load_text

TRICKY = {
    "plain": """\
apiVersion: v1
kind: Service
metadata:
  name: a
  labels: {app: a, "quoted key": x}
spec:
  ports:
  - name: web
    port: 80
  -   name: grpc

      port: 90
  selector:
    app: a
""",
    "aliases": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  labels: &labels
    app: d
    version: v1
spec:
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
""",
    "merge keys, duplicates and odd keys": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: m
base: &base
  one: 1
  two: 2
data:
  <<: *base
  three: "3"
  three: "three"
  80: port
  true: yes
  ? a long key
  : value
  negative: -5
  float: 0.5
""",
    "a List": """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: first}
  data:
    k: v
-
  apiVersion: v1
  kind: ConfigMap
  metadata:
    name: second
""",
    "documents after others": """\
---
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
...
---
# comment

apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  http:
  - route:
    - destination: {host: a, subset: v1}
      weight: 90
    - destination:
        host: a
        subset: v2
      weight: 10
""",
}

JSON = """[
  {"apiVersion": "v1", "kind": "ConfigMap",
   "metadata": {"name": "j1"},
   "data": {"a": "1",
            "b": "2"}},
  {"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j2"},
     "spec": {"ports": [{"port": 80}]}}
  ]}
]
"""


def node_line(node, offset: int, path) -> int:
    """The line of `path` by a walk of the composed nodes (what findings have always pointed at)."""
    best = node.start_mark.line + 1 + offset
    for step in path:
        child = None
        if node.id == "mapping" and isinstance(step, str):
            for k, v in node.value:
                if k.value == step:
                    best, child = k.start_mark.line + 1 + offset, v
                    break
        elif node.id == "sequence" and isinstance(step, int) and 0 <= step < len(node.value):
            child = node.value[step]
            best = child.start_mark.line + 1 + offset
        if child is None:
            break
        node = child
    return best


def paths(value, prefix=()):
    """Every path of a value, and one more step that does not exist below each collection."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, prefix + (k,))
            yield prefix + (str(k),)
        yield prefix + ("missing",)
        yield prefix + (0,)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, prefix + (i,))
        yield prefix + (len(value),)
        yield prefix + (-1,)
        yield prefix + ("0",)
    else:
        yield prefix + ("below a scalar",)


def check_against_nodes(text: str, source: str) -> int:
    loaded = load_text(text, source, keep_nodes=True)
    assert loaded.resources
    checked = 0
    for r in loaded.resources:
        assert r.node is not None and r.lines is not None
        for p in paths(r.body):
            assert r.line_of(p) == node_line(r.node, r.line_offset, p), (r.origin, p)
            checked += 1
    return checked


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_line_map_answers_as_the_yaml_nodes_do(name):
    assert check_against_nodes(TRICKY[name], "f.yaml") > 10


def test_line_map_of_json_arrays_and_lists():
    assert check_against_nodes(JSON, "f.json") > 10
    by_name = {r.name: r for r in load_text(JSON, "f.json").resources}
    assert by_name["j1"].line_of(("data", "b")) == 5
    assert by_name["j2"].line == 7
    assert by_name["j2"].line_of(("spec", "ports", 0, "port")) == 8


def test_field_lines_in_tricky_documents():
    vs = load_text(TRICKY["documents after others"], "f.yaml").resources[1]
    assert vs.line_of(("spec", "http", 0, "route", 1, "destination", "subset")) == 20
    assert vs.line_of(("spec", "http", 0, "route", 1, "weight")) == 21
    assert vs.line_of(("spec", "http", 0, "route", 5, "weight")) == 15  # nearest existing: the route list
    cm = load_text(TRICKY["merge keys, duplicates and odd keys"], "f.yaml").resources[0]
    assert cm.body["data"]["three"] == "three"
    assert cm.line_of(("data", "three")) == 10  # the first of a duplicate key, as reported by MSH0004
    assert cm.line_of(("data", "one")) == 6  # a merged key: where its value is written
    second = load_text(TRICKY["a List"], "f.yaml").resources[1]
    assert (second.line, second.line_of(("metadata", "name"))) == (10, 13)


def test_objects_keep_no_yaml_nodes_unless_asked(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(TRICKY["aliases"] + "---\n" + TRICKY["plain"])
    loaded = load_paths([str(f)])
    assert [r.node for r in loaded.resources] == [None, None]
    d = loaded.resources[0]
    assert d.line_of(("spec", "template", "metadata", "labels", "version")) == 7
    # what crosses a process boundary keeps its lines
    again = pickle.loads(pickle.dumps(loaded.resources))
    assert [r.line_of(("metadata", "name")) for r in again] == [4, 18]

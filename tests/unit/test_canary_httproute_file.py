"""`meshctl canary shift -f FILE` on an HTTPRoute: the same GitOps edits in place as for a
VirtualService — only the changed values move, everything else stays byte-identical."""
from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_canary_file import shifts  # the same shifts, on an HTTPRoute

ROUTE = """\
# reviews, split by version
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 9080
  rules:
  - matches:
    - headers:
      - name: end-user
        value: jason
    backendRefs:
    - name: reviews-v2
      port: 9080
  - backendRefs:
    - name: reviews-v1   # stable
      port: 9080
      weight: 100  # all on v1
    - name: reviews-v2
      port: 9080
      weight: 0
    timeouts:
      request: 5s   # keep
"""

SERVICES = "".join(f"""\
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: reviews{', version: ' + name[-2:] if name != 'reviews' else ''}}}
  ports: [{{port: 9080, name: http}}]
""" for name in ("reviews", "reviews-v1", "reviews-v2", "reviews-v3"))


def files(tmp_path):
    route, services = tmp_path / "route.yaml", tmp_path / "services.yaml"
    route.write_text(ROUTE)
    services.write_text(SERVICES)
    return route, services


def weighted(path):
    doc = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "HTTPRoute"][0]
    rule = [r for r in doc["spec"]["rules"] if "matches" not in r][0]
    return [(b["name"], b.get("weight")) for b in rule["backendRefs"]]


def test_shift_an_httproute_file_changes_only_the_weights(cli, tmp_path):
    route, _ = files(tmp_path)
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(route))
    assert r.exit_code == 0, r
    assert r.stdout == (f"✔ reviews: shifted 100/0 (reviews-v1,reviews-v2) → 90/10 (reviews-v1,reviews-v2) in HTTPRoute "
                        f"default/reviews of {route}\n") and r.stderr == ""
    assert route.read_text() == ROUTE.replace("weight: 100  # all on v1", "weight: 90  # all on v1").replace(
        "weight: 0\n", "weight: 10\n")


def test_a_new_version_needs_its_service_in_the_files(cli, tmp_path):
    route, services = files(tmp_path)
    r = cli("canary", "shift", "reviews", "80/10/10", "--subsets", "v1,v2,v3", "-f", str(route))
    assert r.exit_code == 2, r
    assert r.stderr == ("error: no Service v3 (nor reviews-v3) in the files for HTTPRoute default/reviews to send "
                        "traffic to (Services: reviews-v1, reviews-v2)\n"
                        "hint: pass the file holding it with another -f, or pick an existing one with --subsets\n")
    assert route.read_text() == ROUTE
    r = cli("canary", "shift", "reviews", "80/10/10", "--subsets", "v1,v2,v3", "--header", "x-user=beta",
            "--mirror", "5", "-f", str(route), "-f", str(services), "-o", "json")
    assert r.exit_code == 0, r
    assert json.loads(r.stdout)["kind"] == "HTTPRoute"
    assert services.read_text() == SERVICES, "only the file holding the route is written"
    text = route.read_text()
    assert text.startswith("# reviews, split by version\n") and "request: 5s   # keep" in text
    assert "- name: reviews-v1   # stable" in text and "weight: 80  # all on v1" in text
    assert weighted(route) == [("reviews-v1", 80), ("reviews-v2", 10), ("reviews-v3", 10)]
    rules = yaml.safe_load(text)["spec"]["rules"]
    assert rules[1] == {"matches": [{"headers": [{"name": "x-user", "value": "beta"}]}],
                        "backendRefs": [{"name": "reviews-v3", "port": 9080}]}
    assert rules[2]["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "reviews-v3", "port": 9080}, "percent": 5}}]


def test_dry_run_and_a_json_manifest(cli, tmp_path):
    route, _ = files(tmp_path)
    r = cli("canary", "shift", "reviews", "75/25", "-f", str(route), "--dry-run")
    assert r.exit_code == 0, r
    assert "-      weight: 100  # all on v1\n+      weight: 75  # all on v1" in r.stdout and "dry run" in r.stderr
    assert route.read_text() == ROUTE
    js = tmp_path / "route.json"
    head = '{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "reviews"},\n'
    js.write_text(head + ' "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews"}], "rules": '
                  '[{"backendRefs": [{"name": "reviews-v1", "port": 9080}, {"name": "reviews-v2", "port": 9080}]}]}}\n')
    r = cli("canary", "shift", "reviews", "60/40", "-f", str(js))
    assert r.exit_code == 0, r
    text = js.read_text()
    assert text.startswith(head) and text.count("\n") == 2, "edited in place, layout kept"
    assert [b["weight"] for b in json.loads(text)["spec"]["rules"][0]["backendRefs"]] == [60, 40]


APP = """\
apiVersion: v1
kind: Service
metadata:
  name: reviews  # bookinfo
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1}
spec:
  selector: {app: reviews, version: v1}
  ports: [{port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2}
spec:
  selector: {app: reviews, version: v2}
  ports: [{port: 9080}]
"""


def test_create_an_httproute_in_the_services_file(cli, tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    r = cli("canary", "shift", "reviews", "90/10", "--kind", "HTTPRoute", "-f", str(path))
    assert r.exit_code == 2 and f"no HTTPRoute for reviews in {path}" in r.stderr, r
    r = cli("canary", "shift", "reviews", "90/10", "--kind", "HTTPRoute", "--create", "--subsets", "v1,v2",
            "-f", str(path))
    assert r.exit_code == 0, r
    assert f"created HTTPRoute reviews in {path}" in r.stdout
    text = path.read_text()
    assert text.startswith(APP + "---\n")
    new = list(yaml.safe_load_all(text))[3]
    assert new["metadata"] == {"name": "reviews"}, "the file's documents have no namespace either"
    assert new["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}]
    assert weighted(path) == [("reviews-v1", 90), ("reviews-v2", 10)]
    r = cli("canary", "shift", "reviews", "50/50", "-f", str(path))   # found now, without --kind
    assert r.exit_code == 0 and "in HTTPRoute default/reviews of" in r.stdout, r
    assert weighted(path) == [("reviews-v1", 50), ("reviews-v2", 50)]


def test_a_file_path_with_brackets_is_printed_as_it_is(cli, tmp_path):
    """A path is text, not console markup: `[prod]` was dropped from the line that names the file."""
    d = tmp_path / "[prod]"
    d.mkdir()
    route = d / "route.yaml"
    route.write_text(ROUTE)
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(route))
    assert r.exit_code == 0, r
    assert r.stdout.endswith(f" in HTTPRoute default/reviews of {route}\n") and "[prod]/route.yaml" in r.stdout


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(shifts(), min_size=1, max_size=4))
def test_successive_httproute_file_shifts_keep_everything_else(tmp_path, steps):
    """Any sequence of shifts: the file parses to exactly the planned route, the Services file
    is untouched, and the comments outside rewritten values survive."""
    from meshctl.canary import plan, shift, targets

    route, services = files(tmp_path)
    for subsets, weights, header, mirror in steps:
        before = yaml.safe_load(route.read_text())
        change = plan.Shift("reviews", None, subsets, weights, header, mirror)
        shift.shift(targets.FileTarget([str(route), str(services)], None), change)
        names = [f"reviews-{s}" for s in subsets]
        assert yaml.safe_load(route.read_text()) == plan.apply_shift(
            before, plan.Shift("reviews", "default", names, weights, header, mirror))
        text = route.read_text()
        assert text.startswith("# reviews, split by version\n") and "request: 5s   # keep" in text
        assert services.read_text() == SERVICES
        assert weighted(route) == list(zip(names, weights))

"""`meshctl canary shift -f FILE`: GitOps edits in place, everything else byte-identical."""
from __future__ import annotations

import json

import yaml

SERVICE = """\
# bookinfo reviews
apiVersion: v1
kind: Service
metadata:
  name: reviews   # the service
spec:
  ports:
  - port: 9080
"""

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews   # short name
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100  # all on v1
    - destination:
        host: reviews
        subset: v2
      weight: 0
    timeout: 5s   # keep
"""

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
"""


def manifest(tmp_path, vs=VS):
    path = tmp_path / "reviews.yaml"
    path.write_text(SERVICE + "---\n" + vs + "---\n" + DR)
    return path


def docs(path):
    return list(yaml.safe_load_all(path.read_text()))


def route(path):
    vs = docs(path)[1]
    default = [h for h in vs["spec"]["http"] if "match" not in h][0]
    return [(r["destination"]["subset"], r.get("weight")) for r in default["route"]]


def test_shift_file_changes_only_the_weights(cli, tmp_path):
    path = manifest(tmp_path)
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(path))
    assert r.exit_code == 0, r
    assert "100/0 (v1,v2) → 90/10 (v1,v2)" in r.stdout and r.stderr == ""
    expected = (SERVICE + "---\n" + VS.replace("weight: 100  # all on v1", "weight: 90  # all on v1")
                .replace("weight: 0\n", "weight: 10\n") + "---\n" + DR)
    assert path.read_text() == expected


def test_shift_file_three_way_header_and_mirror_keep_other_documents(cli, tmp_path):
    path = manifest(tmp_path)
    r = cli("canary", "shift", "reviews", "80/10/10", "--subsets", "v1,v2,v3", "--header", "x-user=beta",
            "--mirror", "5", "-f", str(path))
    assert r.exit_code == 0, r
    text = path.read_text()
    assert text.startswith(SERVICE + "---\n") and text.endswith("---\n" + DR)
    assert "weight: 80  # all on v1" in text and "timeout: 5s   # keep" in text and "- reviews   # short name" in text
    assert route(path) == [("v1", 80), ("v2", 10), ("v3", 10)]
    http = docs(path)[1]["spec"]["http"]
    assert http[0]["match"][0]["headers"] == {"end-user": {"exact": "jason"}}, "existing header route stays first"
    assert http[1] == {"match": [{"headers": {"x-user": {"exact": "beta"}}}],
                       "route": [{"destination": {"host": "reviews", "subset": "v3"}}]}
    assert http[2]["mirror"] == {"host": "reviews", "subset": "v3"} and http[2]["mirrorPercentage"] == {"value": 5.0}


def test_shift_file_dry_run_prints_diff_and_writes_nothing(cli, tmp_path):
    path = manifest(tmp_path)
    before = path.read_bytes()
    r = cli("canary", "shift", "reviews", "75/25", "-f", str(path), "--dry-run")
    assert r.exit_code == 0, r
    assert "-      weight: 100  # all on v1\n+      weight: 75  # all on v1" in r.stdout
    assert "dry run" in r.stderr
    assert path.read_bytes() == before


def test_shift_file_json_output(cli, tmp_path):
    path = manifest(tmp_path)
    r = cli("canary", "shift", "reviews", "60/40", "-f", str(path), "-o", "json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert data["before"] == {"v1": 100, "v2": 0} and data["after"] == {"v1": 60, "v2": 40} and data["changed"]


def test_shift_file_errors_are_one_line_and_leave_file_intact(cli, tmp_path):
    path = manifest(tmp_path)
    before = path.read_bytes()
    cases = [
        (["90/20"], "sum to 110"),
        (["90/10", "--subsets", "v1,v9"], "subset 'v9' is not defined in DestinationRule default/reviews"),
        (["abc"], "must be N/M"),
        (["90/10", "--header", "nonsense"], "must be NAME=VALUE"),
        (["90/10", "--mirror", "150"], "outside 0..100"),
    ]
    for extra, needle in cases:
        r = cli("canary", "shift", "reviews", *extra, "-f", str(path))
        assert r.exit_code == 2, (extra, r)
        assert r.stderr.startswith("error: ") and needle in r.stderr, (extra, r)
        assert "Traceback" not in r.stderr
    r = cli("canary", "shift", "ratings", "90/10", "-f", str(path))
    assert r.exit_code == 2 and "no VirtualService for ratings" in r.stderr
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and "no such file" in r.stderr
    assert path.read_bytes() == before


def test_shift_file_without_destination_rule_is_a_clear_error(cli, tmp_path):
    path = tmp_path / "vs.yaml"
    path.write_text(VS)
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(path))
    assert r.exit_code == 2
    assert "no DestinationRule for host reviews" in r.stderr
    assert "hint: give the file holding it with another -f" in r.stderr
    dr = tmp_path / "dr.yaml"
    dr.write_text(DR)
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(path), "-f", str(dr))
    assert r.exit_code == 0, r
    assert "weight: 90  # all on v1" in path.read_text()
    assert dr.read_text() == DR


def test_shift_file_flow_style_and_crlf(cli, tmp_path):
    flow = VS.replace("""  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100  # all on v1
    - destination:
        host: reviews
        subset: v2
      weight: 0
""", """  - route: [{destination: {host: reviews, subset: v1}, weight: 100}, {destination: {host: reviews, subset: v2}}]
""")
    path = tmp_path / "flow.yaml"
    path.write_text(flow + "---\n" + DR)
    r = cli("canary", "shift", "reviews", "70/30", "-f", str(path))
    assert r.exit_code == 0, r
    vs = docs(path)[0]
    assert [(r["destination"]["subset"], r["weight"]) for r in vs["spec"]["http"][1]["route"]] == [("v1", 70), ("v2", 30)]
    assert path.read_text().endswith("---\n" + DR)
    # CRLF line ends are kept (the DestinationRule given in a second file)
    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(VS.replace("\n", "\r\n").encode())
    dr = tmp_path / "dr.yaml"
    dr.write_text(DR)
    r = cli("canary", "shift", "reviews", "70/30", "--header", "x-user=beta", "-f", str(crlf), "-f", str(dr))
    assert r.exit_code == 0, r
    raw = crlf.read_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b""), raw
    assert b"weight: 70  # all on v1\r\n" in raw and b"exact: beta\r\n" in raw


def test_shift_file_indented_sequences_keep_their_style(cli, tmp_path):
    indented = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
    - route:
        - destination:
            host: reviews
            subset: v1
"""
    path = tmp_path / "indented.yaml"
    path.write_text(indented + "---\n" + DR)
    r = cli("canary", "shift", "reviews", "90/10", "--subsets", "v1,v2", "--header", "x-user=beta", "-f", str(path))
    assert r.exit_code == 0, r
    text = path.read_text()
    assert "    - match:\n        - headers:" in text, text
    assert "            subset: v1\n          weight: 90\n        - destination:" in text, text
    vs = list(yaml.safe_load_all(text))[0]
    assert [(r["destination"]["subset"], r["weight"]) for r in vs["spec"]["http"][1]["route"]] == [("v1", 90), ("v2", 10)]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def shifts(draw):
    subsets = draw(st.sampled_from([["v1", "v2"], ["v2", "v1"], ["v1", "v3"], ["v1", "v2", "v3"], ["v3", "v1", "v2"]]))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(subsets) - 1, max_size=len(subsets) - 1)))
    weights = [b - a for a, b in zip([0] + cuts, cuts + [100])]
    header = draw(st.sampled_from([None, ("x-user", "beta"), ("x-user", "alpha"), ("x-group", "canary")]))
    mirror = draw(st.sampled_from([None, 0.0, 5.0, 50.0]))
    return subsets, weights, header, mirror


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(shifts(), min_size=1, max_size=4))
def test_successive_file_shifts_keep_everything_else(tmp_path, steps):
    """Any sequence of shifts: the file always parses to exactly the planned object, the other
    documents stay byte-identical, and the comments outside rewritten values survive."""
    from meshctl.canary import plan, shift, targets

    path = manifest(tmp_path)
    for subsets, weights, header, mirror in steps:
        before = docs(path)[1]
        shift.shift(targets.FileTarget([str(path)], None), plan.Shift("reviews", None, subsets, weights, header, mirror))
        text = path.read_text()
        expected = plan.apply_shift(before, plan.Shift("reviews", "default", subsets, weights, header, mirror))
        assert docs(path)[1] == expected
        assert text.startswith(SERVICE + "---\n") and text.endswith("---\n" + DR)
        assert "- reviews   # short name" in text and "timeout: 5s   # keep" in text
        assert route(path) == list(zip(subsets, weights))


def test_shift_file_empty_http_becomes_block_and_json_manifests_are_edited_in_place(cli, tmp_path):
    dr = tmp_path / "dr.yaml"
    dr.write_text(DR)
    empty = tmp_path / "empty.yaml"
    empty.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
                     "spec:\n  hosts:\n  - reviews   # keep\n  http: []\n")
    r = cli("canary", "shift", "reviews", "90/10", "--subsets", "v1,v2", "-f", str(empty), "-f", str(dr))
    assert r.exit_code == 0, r
    assert empty.read_text().endswith("  - reviews   # keep\n  http:\n  - route:\n    - destination:\n"
                                      "        host: reviews\n        subset: v1\n      weight: 90\n"
                                      "    - destination:\n        host: reviews\n        subset: v2\n"
                                      "      weight: 10\n")
    js = tmp_path / "vs.json"
    head = '{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},\n'
    js.write_text(head + ' "spec": {"hosts": ["reviews"], "http": [{"route": '
                  '[{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}]}]}}\n')
    r = cli("canary", "shift", "reviews", "75/25", "--subsets", "v1,v2", "--header", "x-user=beta",
            "-f", str(js), "-f", str(dr))
    assert r.exit_code == 0, r
    text = js.read_text()
    assert text.startswith(head) and text.count("\n") == 2, "edited in place, layout kept"
    data = json.loads(text)
    assert data["spec"]["http"][0]["match"] == [{"headers": {"x-user": {"exact": "beta"}}}]
    assert [(x["destination"]["subset"], x["weight"]) for x in data["spec"]["http"][1]["route"]] == \
        [("v1", 75), ("v2", 25)]


APP = """\
apiVersion: v1
kind: Service
metadata:
  name: reviews  # bookinfo
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  template:
    metadata: {labels: {app: reviews, version: v1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2}
spec:
  template:
    metadata: {labels: {app: reviews, version: v2}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1}
spec:
  template:
    metadata: {labels: {app: ratings, version: v9}}
"""


def test_create_in_a_file_appends_destination_rule_and_virtual_service(cli, tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(path))
    assert r.exit_code == 2 and "no VirtualService for reviews" in r.stderr
    r = cli("canary", "shift", "reviews", "90/10", "--create", "-f", str(path))
    assert r.exit_code == 0, r
    assert "created DestinationRule reviews" in r.stdout and "created VirtualService reviews" in r.stdout
    text = path.read_text()
    assert text.startswith(APP + "---\n")
    new = list(yaml.safe_load_all(text))[4:]
    assert [d["kind"] for d in new] == ["DestinationRule", "VirtualService"]
    assert [s["name"] for s in new[0]["spec"]["subsets"]] == ["v1", "v2"], "only the Service's workloads count"
    assert "namespace" not in new[1]["metadata"], "the file's documents have none either"
    r = cli("canary", "shift", "reviews", "50/50", "-f", str(path))
    assert r.exit_code == 0, r
    assert route_of(path) == [("v1", 50), ("v2", 50)]
    r = cli("canary", "shift", "ratings", "90/10", "--create", "-f", str(path))
    assert r.exit_code == 2 and "no Service ratings" in r.stderr


def route_of(path):
    vs = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "VirtualService"][0]
    return [(x["destination"]["subset"], x["weight"]) for x in vs["spec"]["http"][-1]["route"]]


def test_shift_file_through_a_symlink_edits_the_target_and_keeps_the_link(cli, tmp_path):
    real = manifest(tmp_path)
    (tmp_path / "overlay").mkdir()
    link = tmp_path / "overlay" / "reviews.yaml"
    link.symlink_to(real)
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(link))
    assert r.exit_code == 0, r
    assert link.is_symlink(), "the link was replaced by a copy"
    assert route(real) == [("v1", 90), ("v2", 10)]
    assert [p.name for p in (tmp_path / "overlay").iterdir()] == ["reviews.yaml"]


def test_concurrent_file_shifts_take_turns_and_lose_nothing(tmp_path):
    """A shift that starts while another meshctl is editing the file waits for it and applies its
    change on top of the other's, instead of overwriting it with what it read before."""
    import fcntl
    import os
    import threading

    from meshctl.canary import plan, shift, targets

    path = manifest(tmp_path)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)          # the other editor is mid read-modify-write
    done = threading.Event()
    t = threading.Thread(target=lambda: (shift.shift(targets.FileTarget([str(path)], None), plan.Shift("reviews", None, None, [70, 30])), done.set()))
    t.start()
    try:
        assert not done.wait(0.3), "the second shift did not wait for the first"
        # the first editor finishes: it adds a mirror, replacing the file atomically
        text = path.read_text().replace("    timeout: 5s", "    mirror:\n      host: reviews\n      subset: v2\n"
                                        "    mirrorPercentage:\n      value: 5.0\n    timeout: 5s")
        tmp = tmp_path / ".other"
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        os.close(fd)
    t.join(10)
    assert done.is_set()
    assert route(path) == [("v1", 70), ("v2", 30)]
    assert docs(path)[1]["spec"]["http"][1]["mirrorPercentage"] == {"value": 5.0}, "the first editor's change was lost"


def test_shift_file_with_another_namespace_names_where_the_virtual_service_is(cli, tmp_path):
    path = manifest(tmp_path, vs=VS.replace("namespace: default", "namespace: prod"))
    before = path.read_text()
    r = cli("canary", "shift", "reviews", "90/10", "-f", str(path), "-n", "staging")
    assert r.exit_code == 2, r
    assert r.stderr == (f"error: no VirtualService for reviews in namespace staging in {path}\n"
                        "hint: the files hold VirtualService prod/reviews: drop -n or change it\n")
    assert path.read_text() == before

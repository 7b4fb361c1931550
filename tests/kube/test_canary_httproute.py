"""`meshctl canary` on Gateway API HTTPRoutes against the fake API server: a rule's backendRefs
split between per-version Services (reviews-v1, reviews-v2), as Flagger and Argo Rollouts do."""
from __future__ import annotations

import json
import threading

import pytest

from meshctl import kube
from meshctl.canary import plan, shift, targets
from tests.kube.test_canary_support import (FakePrometheus, get_route, get_vs, http_route, json_lines,
                                            route_weights, seed, seed_gateway_api)

pytestmark = pytest.mark.kube

PREFIX = "canary.meshctl.io/"


def canary(cli, kube_api, *args):
    return cli("--kubeconfig", kube_api.kubeconfig, "canary", *args)


def test_shift_an_httproute_says_which_api_it_edited(cli, kube_api):
    seed_gateway_api(kube_api)
    rv = get_route(kube_api)["metadata"]["resourceVersion"]
    r = canary(cli, kube_api, "shift", "reviews", "90/10", "--subsets", "v1,v2")
    assert r.exit_code == 0, r
    assert r.stdout == ("✔ reviews: shifted 100 (reviews-v1) → 90/10 (reviews-v1,reviews-v2) "
                        "in HTTPRoute default/reviews\n")
    assert route_weights(kube_api) == [("reviews-v1", 90), ("reviews-v2", 10)]
    rules = get_route(kube_api)["spec"]["rules"]
    assert rules[0] == http_route()["spec"]["rules"][0], "the header rule stays"
    assert rules[1]["backendRefs"] == [{"name": "reviews-v1", "port": 9080, "weight": 90},
                                       {"name": "reviews-v2", "port": 9080, "weight": 10}]
    assert get_route(kube_api)["metadata"]["resourceVersion"] != rv
    assert ("PUT", "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/reviews") in kube_api.requests
    # the full Service names work as well, and the route's own backends are the default
    r = canary(cli, kube_api, "shift", "reviews", "50/50", "--subsets", "reviews-v1,reviews-v3", "-o", "json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert data["kind"] == "HTTPRoute" and data["target"] == "HTTPRoute default/reviews"
    assert data["before"] == {"reviews-v1": 90, "reviews-v2": 10} and data["after"] == {"reviews-v1": 50, "reviews-v3": 50}
    r = canary(cli, kube_api, "shift", "reviews", "20/80")
    assert r.exit_code == 0, r
    assert route_weights(kube_api) == [("reviews-v1", 20), ("reviews-v3", 80)]


def test_header_ab_rule_and_mirror_on_an_httproute(cli, kube_api):
    seed_gateway_api(kube_api)
    r = canary(cli, kube_api, "shift", "reviews", "80/20", "--subsets", "v1,v3", "--header", "x-user=beta",
               "--mirror", "20")
    assert r.exit_code == 0, r
    assert "(header x-user=beta → reviews-v3; mirror 20%)" in r.stdout
    rules = get_route(kube_api)["spec"]["rules"]
    assert [x.get("matches") for x in rules] == [[{"headers": [{"name": "end-user", "value": "jason"}]}],
                                                 [{"headers": [{"name": "x-user", "value": "beta"}]}], None]
    assert rules[1]["backendRefs"] == [{"name": "reviews-v3", "port": 9080}]
    assert rules[2]["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "reviews-v3", "port": 9080}, "percent": 20}}]
    # the same header again moves its value, and nothing else appears
    r = canary(cli, kube_api, "shift", "reviews", "80/20", "--header", "x-user=gamma", "--mirror", "0")
    assert r.exit_code == 0, r
    rules = get_route(kube_api)["spec"]["rules"]
    assert len(rules) == 3 and rules[1]["matches"][0]["headers"] == [{"name": "x-user", "value": "gamma"}]
    assert "filters" not in rules[2]


def test_a_route_as_the_api_server_defaults_it_is_shifted_in_place(cli, kube_api):
    """The API server fills in defaults (a path prefix `/` match, header type Exact, backend group
    and kind): the rule is still the weighted one, and shifting to what it is writes nothing."""
    seed_gateway_api(kube_api, route=False)
    route = http_route(("reviews-v1", "reviews-v2"), (90, 10))
    route["spec"]["rules"][0]["matches"] = [{"path": {"type": "PathPrefix", "value": "/"},
                                             "headers": [{"type": "Exact", "name": "end-user", "value": "jason"}]}]
    route["spec"]["rules"][1]["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    for ref in route["spec"]["rules"][1]["backendRefs"]:
        ref.update(group="", kind="Service")
    kube_api.add(route)
    r = canary(cli, kube_api, "shift", "reviews", "90/10")
    assert r.exit_code == 0, r
    assert "unchanged 90/10 (reviews-v1,reviews-v2) → 90/10 (reviews-v1,reviews-v2)" in r.stdout
    assert not [m for m, _ in kube_api.requests if m == "PUT"]
    r = canary(cli, kube_api, "shift", "reviews", "70/30", "--header", "end-user=ann")
    assert r.exit_code == 0, r
    rules = get_route(kube_api)["spec"]["rules"]
    assert len(rules) == 2 and rules[0]["matches"][0]["headers"][0] == {"type": "Exact", "name": "end-user",
                                                                       "value": "ann"}
    assert [b["weight"] for b in rules[1]["backendRefs"]] == [70, 30] and rules[1]["backendRefs"][0]["kind"] == "Service"


def test_httproute_errors_name_the_fix_and_write_nothing(cli, kube_api):
    seed_gateway_api(kube_api)
    before = get_route(kube_api)
    r = canary(cli, kube_api, "shift", "reviews", "90/10", "--subsets", "v1,v9")
    assert r.exit_code == 2, r
    assert r.stderr.startswith("error: no Service v9 (nor reviews-v9) in namespace default for HTTPRoute "
                                "default/reviews to send traffic to (Services: reviews, reviews-v1, reviews-v2, "
                                "reviews-v3)\n")
    assert "create the Service for that version" in r.stderr
    r = canary(cli, kube_api, "shift", "ratings", "90/10")
    assert r.exit_code == 2 and "no HTTPRoute serves ratings in namespace default\n" in r.stderr, r
    r = canary(cli, kube_api, "shift", "reviews", "80/10/10")
    assert r.exit_code == 2 and "cannot tell which Services of reviews" in r.stderr
    route = get_route(kube_api)
    route["spec"]["rules"][1]["backendRefs"][0]["weight"] = "ninety"
    kube_api.add(route)
    before = get_route(kube_api)
    for args in (("shift", "reviews", "90/10", "--subsets", "v1,v2"), ("status", "reviews")):
        r = canary(cli, kube_api, *args)
        assert r.exit_code == 2, r
        assert r.stderr.startswith("error: HTTPRoute default/reviews: spec.rules[1].backendRefs[0].weight"), r.stderr
    assert get_route(kube_api) == before


def test_a_host_with_a_virtual_service_and_an_httproute_asks_which(cli, kube_api):
    seed(kube_api)
    seed_gateway_api(kube_api)
    vs, route = get_vs(kube_api), get_route(kube_api)
    r = canary(cli, kube_api, "shift", "reviews", "90/10", "--subsets", "v1,v2")
    assert r.exit_code == 2, r
    assert r.stderr == ("error: both VirtualService default/reviews and HTTPRoute default/reviews route reviews\n"
                        "hint: say which to change with --kind VirtualService or --kind HTTPRoute\n")
    assert get_vs(kube_api) == vs and get_route(kube_api) == route
    r = canary(cli, kube_api, "shift", "reviews", "90/10", "--subsets", "v1,v2", "--kind", "httproute")
    assert r.exit_code == 0 and "in HTTPRoute default/reviews" in r.stdout, r
    assert get_vs(kube_api) == vs
    r = canary(cli, kube_api, "shift", "reviews", "60/40", "--subsets", "v1,v2", "--kind", "VirtualService")
    assert r.exit_code == 0 and "in VirtualService default/reviews" in r.stdout, r
    assert route_weights(kube_api) == [("reviews-v1", 90), ("reviews-v2", 10)]
    r = canary(cli, kube_api, "shift", "reviews", "60/40", "--kind", "Ingress")
    assert r.exit_code == 2 and "--kind 'Ingress' is not a route kind" in r.stderr
    r = canary(cli, kube_api, "status", "reviews")
    assert r.exit_code == 2 and "--kind VirtualService or --kind HTTPRoute" in r.stderr
    r = canary(cli, kube_api, "status", "reviews", "--kind", "HTTPRoute", "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["weights"] == {"reviews-v1": 90, "reviews-v2": 10}, r
    r = canary(cli, kube_api, "run", "reviews", "--to", "v2", "--kind", "vs", "--prometheus", "http://127.0.0.1:1")
    assert r.exit_code == 3 and "Prometheus http://127.0.0.1:1 unreachable" in r.stderr, r


def test_concurrent_shifts_of_one_httproute_lose_nothing(kube_api):
    """Two operators shift one HTTPRoute 40 times each at once: each one's bookkeeping annotation
    (bumped in the same read-modify-write as the weights) ends at 40, and the weights and the
    bookkeeping of the final object come from the same write."""
    seed_gateway_api(kube_api)
    errors: list[BaseException] = []
    retried: list[int] = []

    def worker(name: str, offset: int) -> None:
        target = targets.ClusterTarget(kube.client(kube_api.kubeconfig), "default")
        try:
            for i in range(40):
                w = 1 + offset + i

                def bump(obj, name=name, w=w):
                    ann = obj["metadata"].setdefault("annotations", {})
                    ann[f"test.meshctl.io/{name}"] = str(int(ann.get(f"test.meshctl.io/{name}", "0")) + 1)
                    ann["test.meshctl.io/last"] = str(w)

                change = plan.Shift("reviews", "default", ["reviews-v1", "reviews-v2"], [100 - w, w])
                retried.append(shift.shift(target, change, also=bump).attempts - 1)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=("a", 0)), threading.Thread(target=worker, args=("b", 50))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ann = get_route(kube_api)["metadata"]["annotations"]
    assert ann["test.meshctl.io/a"] == "40" and ann["test.meshctl.io/b"] == "40"
    final = dict(route_weights(kube_api))
    assert final["reviews-v2"] in (40, 90) and ann["test.meshctl.io/last"] == str(final["reviews-v2"])
    assert sum(final.values()) == 100
    assert get_route(kube_api)["spec"]["rules"][0] == http_route()["spec"]["rules"][0]
    print(f"conflicts retried: {sum(retried)}")


def test_create_an_httproute_on_the_service(cli, kube_api):
    seed_gateway_api(kube_api, route=False)
    r = canary(cli, kube_api, "shift", "reviews", "90/10", "--kind", "HTTPRoute")
    assert r.exit_code == 2 and "no HTTPRoute serves reviews" in r.stderr and "--create" in r.stderr
    r = canary(cli, kube_api, "shift", "reviews", "90/10", "--kind", "HTTPRoute", "--create", "--subsets", "v1,v2")
    assert r.exit_code == 0, r
    assert "created HTTPRoute default/reviews" in r.stdout
    route = get_route(kube_api)
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}]
    assert route_weights(kube_api) == [("reviews-v1", 90), ("reviews-v2", 10)]
    plan.check_shape(route)


def test_server_dry_run_of_an_httproute(cli, kube_api):
    seed_gateway_api(kube_api)
    before = get_route(kube_api)
    r = canary(cli, kube_api, "shift", "reviews", "50/50", "--subsets", "v1,v2", "--dry-run=server")
    assert r.exit_code == 0, r
    assert "+      weight: 50" in r.stdout and "+    - name: reviews-v2" in r.stdout
    assert get_route(kube_api) == before


def test_rollout_of_an_httproute_reads_the_canary_services_metrics(cli, kube_api):
    seed_gateway_api(kube_api)
    base = ("--kubeconfig", kube_api.kubeconfig, "canary")
    with FakePrometheus(requests=200, errors=0, p99=20) as prom:
        r = cli(*base, "run", "reviews", "--to", "v2", "--interval", "0.1s", "--steps", "10,50", "--prometheus",
                prom.url, "-o", "json")
    assert r.exit_code == 0, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "advance", "advance", "promote", "promoted"]
    assert lines[0]["stable"] == "reviews-v1" and lines[0]["canary"] == "reviews-v2"
    assert [x["weights"]["reviews-v2"] for x in lines] == [0, 10, 50, 100, 100]
    # Istio's standard series of the canary Service itself (no version label to select)
    q = [x for x in prom.queries if "istio_requests_total" in x][0]
    assert 'destination_service="reviews-v2.default.svc.cluster.local"' in q and "destination_version" not in q
    assert route_weights(kube_api) == [("reviews-v1", 0), ("reviews-v2", 100)]
    assert get_route(kube_api)["metadata"]["annotations"][PREFIX + "phase"] == "Succeeded"
    r = cli(*base, "status", "reviews", "-o", "json")
    assert r.exit_code == 0, r
    status = json.loads(r.stdout)
    assert status["httpRoute"] == "HTTPRoute default/reviews" and status["phase"] == "Succeeded"
    assert status["weights"] == {"reviews-v1": 0, "reviews-v2": 100}
    r = cli(*base, "abort", "reviews")
    assert r.exit_code == 1 and "already succeeded" in r.stderr
    r = cli(*base, "run", "reviews", "--to", "reviews-v2", "--proxy-admin", "127.0.0.1:1")
    assert r.exit_code == 2 and r.stderr.startswith(
        "error: reviews-v2 already takes all traffic of reviews: it is the stable backend Service, not a canary")


def test_abort_an_httproute_rollout_by_hand(cli, kube_api):
    seed_gateway_api(kube_api)
    route = get_route(kube_api)
    state = {"phase": "Progressing", "stable": "reviews-v1", "canary": "reviews-v3", "weight": "30",
             "failures": "1", "step": "2", "started": "2026-01-01T12:00:00Z", "runner": "elsewhere/1/x",
             "analysis": json.dumps({"steps": [10, 20, 30, 40], "threshold": 3, "interval": 60})}
    route["metadata"]["annotations"] = {PREFIX + k: v for k, v in state.items()}
    route["spec"]["rules"][1]["backendRefs"] = [{"name": "reviews-v1", "port": 9080, "weight": 70},
                                                {"name": "reviews-v3", "port": 9080, "weight": 30}]
    kube_api.add(route)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "status", "reviews")
    assert r.exit_code == 0, r
    assert r.stdout.startswith("HTTPRoute default/reviews (reviews): reviews-v1 70% / reviews-v3 30%\n")
    assert "Progressing (stopped)" in r.stdout
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "abort", "reviews", "-o", "json")
    assert r.exit_code == 0, r
    assert json.loads(r.stdout)["phase"] == "Failed"
    assert route_weights(kube_api) == [("reviews-v1", 100), ("reviews-v3", 0)]
    assert get_route(kube_api)["metadata"]["annotations"][PREFIX + "phase"] == "Failed"

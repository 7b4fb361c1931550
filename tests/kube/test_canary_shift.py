"""`meshctl canary shift` against the fake API server: weights, three-way, header, conflicts, --create."""
from __future__ import annotations

import json
import threading

import pytest

from meshctl import kube
from meshctl.canary import plan, shift, targets
from tests.kube.test_canary_support import NET, annotations, get_vs, seed, weights

pytestmark = pytest.mark.kube


def test_shift_on_cluster(cli, kube_api):
    seed(kube_api)
    rv = get_vs(kube_api)["metadata"]["resourceVersion"]
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--subsets", "v1,v2")
    assert r.exit_code == 0, r
    assert "reviews: shifted 100 (v1) → 90/10 (v1,v2) in VirtualService default/reviews" in r.stdout, r.stdout
    vs = get_vs(kube_api)
    assert vs["metadata"]["resourceVersion"] != rv
    assert weights(kube_api) == [("v1", 90), ("v2", 10)]
    # the header route and the destination port stay
    assert vs["spec"]["http"][0]["match"] == [{"headers": {"end-user": {"exact": "jason"}}}]
    assert vs["spec"]["http"][1]["route"][1]["destination"]["port"] == {"number": 9080}
    # the PUT carried the resourceVersion it read
    assert ("PUT", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews") in kube_api.requests


def test_three_way_split_header_and_mirror_on_cluster(cli, kube_api):
    seed(kube_api)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "80/10/10", "--subsets", "v1,v2,v3",
            "--header", "x-user=beta", "--mirror", "20", "-o", "json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert data["after"] == {"v1": 80, "v2": 10, "v3": 10} and data["header"] == {"name": "x-user", "value": "beta"}
    http = get_vs(kube_api)["spec"]["http"]
    assert [h.get("match") for h in http] == [[{"headers": {"end-user": {"exact": "jason"}}}],
                                              [{"headers": {"x-user": {"exact": "beta"}}}], None]
    assert http[1]["route"][0]["destination"]["subset"] == "v3"
    assert http[2]["mirror"]["subset"] == "v3" and http[2]["mirrorPercentage"] == {"value": 20.0}
    # without --subsets the route's own subsets are reused
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "34/33/33")
    assert r.exit_code == 0, r
    assert weights(kube_api) == [("v1", 34), ("v2", 33), ("v3", 33)]


def test_shift_errors_on_cluster(cli, kube_api):
    seed(kube_api, dr=False)
    base = ("--kubeconfig", kube_api.kubeconfig, "canary", "shift")
    r = cli(*base, "reviews", "90/10", "--subsets", "v1,v2")
    assert r.exit_code == 2 and "no DestinationRule for host reviews in namespace default" in r.stderr, r
    r = cli(*base, "ratings", "90/10")
    assert r.exit_code == 2 and "no VirtualService serves ratings in namespace default" in r.stderr
    assert "--create" in r.stderr
    r = cli(*base, "reviews", "90/10", "-n", "other")
    assert r.exit_code == 2 and "namespace other" in r.stderr
    before = get_vs(kube_api)
    kube_api.add({"apiVersion": NET, "kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "default"},
                  "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}})
    r = cli(*base, "reviews", "90/10", "--subsets", "v1,v2")
    assert r.exit_code == 2 and "subset 'v2' is not defined in DestinationRule default/reviews (subsets: v1)" in r.stderr
    assert get_vs(kube_api) == before, "nothing written on error"


def test_unreachable_cluster_is_exit_3(cli, tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("""apiVersion: v1
kind: Config
current-context: x
clusters: [{name: x, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: x, user: {token: t}}]
contexts: [{name: x, context: {cluster: x, user: x}}]
""")
    r = cli("--kubeconfig", str(cfg), "canary", "shift", "reviews", "90/10")
    assert r.exit_code == 3, r
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_dry_run_prints_diff_and_writes_nothing(cli, kube_api):
    seed(kube_api)
    before = get_vs(kube_api)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "50/50", "--subsets", "v1,v2", "--dry-run")
    assert r.exit_code == 0, r
    assert "+      weight: 50" in r.stdout and "+        subset: v2" in r.stdout
    assert "dry run" in r.stderr
    assert get_vs(kube_api) == before
    assert not [m for m, _ in kube_api.requests if m in ("PUT", "POST", "PATCH")]


def test_create_from_pod_versions(cli, kube_api):
    seed(kube_api, vs=False, dr=False, pods=True)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10")
    assert r.exit_code == 2 and "--create" in r.stderr
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--create")
    assert r.exit_code == 0, r
    assert "created DestinationRule default/reviews" in r.stdout and "created VirtualService default/reviews" in r.stdout
    dr = kube_api.get(NET, "DestinationRule", "reviews", "default")
    assert dr["spec"]["subsets"] == [{"name": "v1", "labels": {"version": "v1"}},
                                     {"name": "v2", "labels": {"version": "v2"}}], "only the Service's pods count"
    assert weights(kube_api) == [("v1", 90), ("v2", 10)]
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "80/10/10", "--create")
    assert r.exit_code == 2 and "3 weights" in r.stderr


def test_create_without_versions_is_clear(cli, kube_api):
    seed(kube_api, vs=False, dr=False)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--create")
    assert r.exit_code == 2 and "no Service default/reviews" in r.stderr


def test_conflict_is_retried_with_the_fresh_object(kube_api):
    """Another writer changes the object between our read and our write: the PUT is refused
    (409), meshctl re-reads and re-applies, and the other writer's change survives."""
    seed(kube_api)
    k = kube.client(kube_api.kubeconfig)
    calls = []

    def also(obj):
        calls.append(1)
        if len(calls) == 1:  # someone else writes after our first read
            kube_api.edit(NET, "VirtualService", "reviews", "default",
                          {"metadata": {"labels": {"owner": "team-b"}}})

    result = shift.shift(targets.ClusterTarget(k, "default"), plan.Shift("reviews", "default", ["v1", "v2"], [70, 30]), also=also)
    assert result.attempts == 2 and len(calls) == 2
    vs = get_vs(kube_api)
    assert vs["metadata"]["labels"] == {"owner": "team-b"}
    assert weights(kube_api) == [("v1", 70), ("v2", 30)]


def test_concurrent_shifts_lose_nothing(kube_api):
    """Two operators shift 50 times each at once: no error escapes, each one's bookkeeping
    annotation (bumped in the same read-modify-write) ends at 50, the final weights are the
    last shift's."""
    seed(kube_api)
    errors: list[BaseException] = []
    done: dict[str, list] = {"a": [], "b": []}
    order: list[tuple[str, int]] = []
    lock = threading.Lock()

    def worker(name: str, offset: int) -> None:
        k = kube.client(kube_api.kubeconfig)
        try:
            for i in range(50):
                w = 1 + offset + i  # distinct per thread: a in 1..50, b in 51..100 (canary weights)
                key = f"test.meshctl.io/{name}"

                def bump(obj, key=key, w=w):
                    ann = obj["metadata"].setdefault("annotations", {})
                    ann[key] = str(int(ann.get(key, "0")) + 1)
                    ann["test.meshctl.io/last"] = str(w)

                res = shift.shift(targets.ClusterTarget(k, "default"), plan.Shift("reviews", "default", ["v1", "v2"], [100 - w, w]),
                                  also=bump)
                with lock:
                    order.append((name, w))
                done[name].append(res.attempts)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=("a", 0)), threading.Thread(target=worker, args=("b", 50))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ann = annotations(kube_api)
    assert ann["test.meshctl.io/a"] == "50" and ann["test.meshctl.io/b"] == "50"
    final = dict(weights(kube_api))
    last_a, last_b = 50, 100
    assert final["v2"] in (last_a, last_b), "the final object is one thread's last shift"
    # weights and bookkeeping come from the same write
    assert ann["test.meshctl.io/last"] == str(final["v2"])
    assert sorted(w for _, w in order) == list(range(1, 101))
    assert sum(final.values()) == 100
    retried = sum(a - 1 for a in done["a"] + done["b"])
    print(f"conflicts retried: {retried}")


def test_find_ignores_other_hosts(kube_api):
    seed(kube_api)
    other = {"apiVersion": NET, "kind": "VirtualService", "metadata": {"name": "ratings", "namespace": "default"},
             "spec": {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings"}}]}]}}
    kube_api.add(other)
    k = kube.client(kube_api.kubeconfig)
    shift.shift(targets.ClusterTarget(k, "default"),
                plan.Shift("reviews.default.svc.cluster.local", "default", ["v1", "v2"], [60, 40]))
    assert kube_api.get(NET, "VirtualService", "ratings", "default")["spec"] == other["spec"]
    assert plan.current_weights(get_vs(kube_api), "reviews", "default") == [("v1", 60), ("v2", 40)]


def test_create_that_cannot_shift_leaves_the_cluster_as_it_was(cli, kube_api):
    seed(kube_api, vs=False, dr=False, pods=True)
    kube_api.add({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "reviews-v3", "namespace": "default", "labels": {"app": "reviews", "version": "v3"}},
                  "spec": {"containers": [{"name": "app", "image": "x"}]}})
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--create")
    assert r.exit_code == 2, r
    assert "cannot tell which subsets" in r.stderr and "--subsets" in r.stderr
    assert kube_api.get(NET, "DestinationRule", "reviews", "default") is None
    assert kube_api.get(NET, "VirtualService", "reviews", "default") is None
    # with the subsets named, both objects are created and listed
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--create", "--subsets", "v1,v3")
    assert r.exit_code == 0, r
    assert "created DestinationRule default/reviews" in r.stdout and "created VirtualService default/reviews" in r.stdout
    assert weights(kube_api) == [("v1", 90), ("v3", 10)]


def test_create_rolls_back_the_destination_rule_when_the_virtual_service_cannot_be_created(cli, kube_api):
    seed(kube_api, vs=False, dr=False, pods=True)
    kube_api.deny("create", "virtualservices", group="networking.istio.io")
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--create")
    assert r.exit_code == 3, r
    assert kube_api.get(NET, "DestinationRule", "reviews", "default") is None, "the DestinationRule was left behind"


@pytest.mark.parametrize("field, value", [("subset", ["v1"]), ("weight", "ninety"), ("host", {"name": "reviews"})])
@pytest.mark.parametrize("command", [("shift", "reviews", "90/10", "--subsets", "v1,v2"), ("status", "reviews")])
def test_a_virtual_service_with_a_field_of_the_wrong_type_is_an_input_error(cli, kube_api, field, value, command):
    seed(kube_api)
    vs = get_vs(kube_api)
    route = vs["spec"]["http"][1]["route"][0]
    if field == "weight":
        route["weight"] = value
    else:
        route["destination"][field] = value
    kube_api.add(vs)
    before = get_vs(kube_api)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", *command)
    assert r.exit_code == 2, r
    assert r.stderr.startswith("error: VirtualService default/reviews: spec.http[1].route[0].")
    assert "internal error" not in r.stderr
    assert get_vs(kube_api) == before


def test_server_dry_run_sends_the_change_with_dry_run_and_keeps_the_object(cli, kube_api):
    seed(kube_api)
    before = get_vs(kube_api)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "50/50", "--subsets", "v1,v2",
            "--dry-run=server")
    assert r.exit_code == 0, r
    assert "+      weight: 50" in r.stdout
    assert get_vs(kube_api) == before
    assert ("PUT", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews") in kube_api.requests
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "50/50", "--dry-run=maybe")
    assert r.exit_code == 2 and "--dry-run=client" in r.stderr


def test_server_dry_run_of_files_is_refused_clearly(cli, tmp_path):
    f = tmp_path / "vs.yaml"
    f.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
                 "spec: {hosts: [reviews]}\n")
    r = cli("canary", "shift", "reviews", "50/50", "-f", str(f), "--dry-run=server")
    assert r.exit_code == 2 and "needs a cluster" in r.stderr

"""Canary in an ambient namespace: routing rules act only in a waypoint proxy there, so meshctl
says so when there is none (with the command that creates one), and reads a run's metrics from
the waypoint's Envoy when there is one."""
from __future__ import annotations

import pytest

from meshctl.canary import gates
from tests.kube.test_canary_support import seed, weights

pytestmark = pytest.mark.kube


def _ambient(kube_api, waypoint: str | None = None, on_service: bool = False) -> None:
    labels = {"istio.io/dataplane-mode": "ambient"}
    if waypoint and not on_service:
        labels["istio.io/use-waypoint"] = waypoint
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "labels": labels}})
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "default"},
           "spec": {"selector": {"app": "reviews"}, "ports": [{"port": 9080, "name": "http"}]}}
    if waypoint and on_service:
        svc["metadata"]["labels"] = {"istio.io/use-waypoint": waypoint}
    kube_api.add(svc)


def test_shift_without_a_waypoint_says_the_weights_would_not_act(cli, kube_api):
    seed(kube_api)
    _ambient(kube_api)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--subsets", "v1,v2")
    assert r.exit_code == 0, r
    assert weights(kube_api) == [("v1", 90), ("v2", 10)]
    assert "ambient mode" in r.stderr and "meshctl waypoint apply -n default --enroll-namespace" in r.stderr


@pytest.mark.parametrize("on_service", [False, True])
def test_shift_with_a_waypoint_says_nothing_more(cli, kube_api, on_service):
    seed(kube_api)
    _ambient(kube_api, waypoint="waypoint", on_service=on_service)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "90/10", "--subsets", "v1,v2")
    assert r.exit_code == 0, r
    assert "waypoint" not in r.stderr


def test_run_without_a_waypoint_or_metrics_source_names_the_fix(cli, kube_api):
    seed(kube_api)
    _ambient(kube_api)
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews", "--to", "v2", "--interval", "1s")
    assert r.exit_code == 2, r
    assert "ambient mode" in r.stderr and "meshctl waypoint apply -n default" in r.stderr
    assert "no pod with an istio-proxy sidecar" not in r.stderr


def test_waypoint_clusters_count_as_the_subset():
    stats = {
        "cluster.inbound-vip|9080|http/v2|reviews.default.svc.cluster.local.upstream_rq_2xx": 90,
        "cluster.inbound-vip|9080|http/v2|reviews.default.svc.cluster.local.upstream_rq_5xx": 10,
        "cluster.inbound-vip|9080|http/v1|reviews.default.svc.cluster.local.upstream_rq_5xx": 50,
        "cluster.outbound|9080|v2|reviews.default.svc.cluster.local.upstream_rq_2xx": 5,
    }
    r = gates.reading_from_stats(stats, "v2", "reviews.default.svc.cluster.local")
    assert r.counters == {"2xx": 95, "5xx": 10}

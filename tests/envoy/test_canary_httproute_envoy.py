"""`meshctl canary run` on an HTTPRoute with a real Envoy: the caller's proxy has one cluster per
version Service, named as Istio names them (`outbound|9080||reviews-v2.default.svc.cluster.local`,
no subset), and routes by the weights of the HTTPRoute's backendRefs (written from the fake API
server by a small sync thread, istiod's job). The rollout's gates read those clusters' stats."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.envoy.envoyproc import HCM_TYPE, ROUTE_TYPE, ROUTER_TYPE, static_cluster, write_atomic
from tests.envoy import test_canary_envoy as envoy_canary
from tests.envoy.test_canary_envoy import SUBSETS, direct_listener, listener_ports, run
from tests.kube.test_canary_support import json_lines, route_weights, seed_gateway_api

pytestmark = [pytest.mark.envoy, pytest.mark.kube]

SERVICES = {f"reviews-{v}": answer for v, answer in SUBSETS.items()}


def cluster_name(service: str) -> str:
    return f"outbound|9080||{service}.default.svc.cluster.local"


def route_config(split: dict[str, int]) -> dict:
    clusters = [{"name": cluster_name(s), "weight": w} for s, w in split.items() if w > 0]
    return {"version_info": str(time.monotonic_ns()), "resources": [{
        "@type": ROUTE_TYPE, "name": "9080", "virtual_hosts": [{
            "name": "reviews", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": clusters}}}]}]}]}


@pytest.fixture(scope="module")
def mesh(start_envoy, tmp_path_factory):
    upstream = start_envoy({"static_resources": {"listeners": [
        direct_listener(s, status, body) for s, (status, body) in SUBSETS.items()]}}, name="upstreams")
    ports = listener_ports(upstream.admin)
    rds_file = Path(tmp_path_factory.mktemp("rds")) / "rds.json"
    write_atomic(rds_file, route_config({"reviews-v1": 100}))
    hcm = {"@type": HCM_TYPE, "stat_prefix": "outbound_9080",
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}],
           "rds": {"route_config_name": "9080", "config_source": {
               "path_config_source": {"path": str(rds_file)}, "resource_api_version": "V3"}}}
    sidecar = start_envoy({
        "stats_flush_interval": "0.2s",
        "static_resources": {
            "clusters": [static_cluster(cluster_name(f"reviews-{v}"), ports[v]) for v in SUBSETS],
            "listeners": [{"name": "outbound", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": hcm}]}]}]}}, name="sidecar")
    return {"admin": sidecar.admin, "front": listener_ports(sidecar.admin)["outbound"], "rds": rds_file}


class Traffic(envoy_canary.Traffic):
    """Requests through the caller's proxy, and the HTTPRoute's weights turned into its routes."""

    def __init__(self, mesh, kube_api):
        super().__init__(mesh, kube_api, weights=lambda k: dict(route_weights(k)), routes=route_config,
                         start=(("reviews-v1", 100),))


def test_healthy_service_canary_is_promoted(cli, kube_api, mesh):
    seed_gateway_api(kube_api)
    with Traffic(mesh, kube_api) as traffic:
        r = run(cli, kube_api, mesh, "v2", "--steps", "25,50", "--threshold", "2")
        deadline = time.monotonic() + 15
        tail: list[str] = []
        while time.monotonic() < deadline:
            n = len(traffic.bodies)
            time.sleep(0.3)
            tail = traffic.bodies[n:]
            if tail and set(tail) == {"canary-v2"}:
                break
    assert r.exit_code == 0, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "advance", "advance", "promote", "promoted"], lines
    assert "cluster outbound|*||reviews-v2.default.svc.cluster.local" in lines[0]["message"]
    measured = [x["metrics"] for x in lines if x["metrics"]]
    assert len(measured) == 2 and all(m["requests"] > 0 and m["successRate"] == 100.0 for m in measured), measured
    assert route_weights(kube_api) == [("reviews-v1", 0), ("reviews-v2", 100)]
    assert tail and set(tail) == {"canary-v2"}, set(tail)


def test_failing_service_canary_is_rolled_back(cli, kube_api, mesh):
    seed_gateway_api(kube_api)
    with Traffic(mesh, kube_api):
        r = run(cli, kube_api, mesh, "reviews-v3", "--step", "20", "--threshold", "2")
    assert r.exit_code == 1, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "advance", "fail", "rollback", "rolled-back"], lines
    analyses = [x["metrics"] for x in lines if x["metrics"]]
    assert all(m["requests"] > 0 and m["successRate"] < 1 for m in analyses), analyses
    assert route_weights(kube_api) == [("reviews-v1", 100), ("reviews-v3", 0)]

"""`meshctl canary run` with a real Envoy: traffic flows through it while the rollout reads its
admin /stats (Istio's outbound cluster naming), and the weights it writes to the VirtualService
in the fake API server are turned into Envoy routes (as istiod would) by a small sync thread."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from meshctl.canary import plan
from tests.envoy.envoyproc import HCM_TYPE, ROUTE_TYPE, ROUTER_TYPE, static_cluster, write_atomic
from tests.kube.test_canary_support import destination_rule, get_vs, json_lines, seed, weights

pytestmark = [pytest.mark.envoy, pytest.mark.kube]

FQDN = "reviews.default.svc.cluster.local"
SUBSETS = {"v1": (200, "stable-v1"), "v2": (200, "canary-v2"), "v3": (503, "broken-v3"), "v4": (200, "slow-v4")}
SLOW = {"v4": "0.3s"}
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"


def cluster_name(subset: str) -> str:
    return f"outbound|9080|{subset}|{FQDN}"


def direct_listener(name: str, status: int, body: str) -> dict:
    filters = [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}]
    if name in SLOW:  # a slow version: every answer delayed by Envoy's fault filter
        filters.insert(0, {"name": "envoy.filters.http.fault", "typed_config": {
            "@type": FAULT_TYPE, "delay": {"fixed_delay": SLOW[name], "percentage": {"numerator": 100}}}})
    hcm = {"@type": HCM_TYPE, "stat_prefix": name, "http_filters": filters,
           "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
               {"match": {"prefix": "/"}, "direct_response": {"status": status, "body": {"inline_string": body}}}]}]}}
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def route_config(split: dict[str, int]) -> dict:
    clusters = [{"name": cluster_name(s), "weight": w} for s, w in split.items() if w > 0]
    return {"version_info": str(time.monotonic_ns()), "resources": [{
        "@type": ROUTE_TYPE, "name": "9080", "virtual_hosts": [{
            "name": "reviews", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": clusters}}}]}]}]}


def listener_ports(admin: str) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{admin}/listeners?format=json", timeout=2) as r:
        data = json.loads(r.read())
    return {s["name"]: s["local_address"]["socket_address"]["port_value"] for s in data["listener_statuses"]}


@pytest.fixture(scope="module")
def mesh(start_envoy, tmp_path_factory):
    """Upstreams (direct responses standing for each version) and one sidecar-like Envoy whose
    outbound clusters follow Istio's naming, routing by weights read from an RDS file."""
    upstream = start_envoy({"static_resources": {"listeners": [
        direct_listener(s, status, body) for s, (status, body) in SUBSETS.items()]}}, name="upstreams")
    ports = listener_ports(upstream.admin)
    rds_dir = tmp_path_factory.mktemp("rds")
    rds_file = Path(rds_dir) / "rds.json"
    write_atomic(rds_file, route_config({"v1": 100}))
    front_hcm = {"@type": HCM_TYPE, "stat_prefix": "outbound_9080",
                 "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}],
                 "rds": {"route_config_name": "9080", "config_source": {
                     "path_config_source": {"path": str(rds_file)}, "resource_api_version": "V3"}}}
    sidecar = start_envoy({
        # Istio's proxies flush stats every 5 s; histograms reach /stats at a flush, so the test's
        # 1 s intervals want a quicker flush.
        "stats_flush_interval": "0.2s",
        "static_resources": {
            "clusters": [static_cluster(cluster_name(s), ports[s]) for s in SUBSETS],
            "listeners": [{"name": "outbound", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": front_hcm}]}]}]}}, name="sidecar")
    front = listener_ports(sidecar.admin)["outbound"]
    return {"admin": sidecar.admin, "front": front, "rds": rds_file}


def vs_weights(kube_api) -> dict[str, int]:
    return dict(plan.current_weights(get_vs(kube_api), "reviews", "default"))


class Traffic:
    """A bounded request loop through the sidecar (the caller), plus istiod's job: turning the
    route's weights (`weights(kube_api)`: the VirtualService's by default) into the sidecar's
    routes (`routes(split)`), starting from `start`."""

    def __init__(self, mesh, kube_api, weights=vs_weights, routes=route_config, start=(("v1", 100),)):
        self.mesh = mesh
        self.kube_api = kube_api
        self.weights, self.routes, self.start = weights, routes, dict(start)
        self.stop = threading.Event()
        self.bodies: list[str] = []
        self.split: dict[str, int] = {}
        self.threads = [threading.Thread(target=self._requests, daemon=True) for _ in range(3)]
        self.threads.append(threading.Thread(target=self._sync, daemon=True))

    def _requests(self) -> None:
        url = f"http://127.0.0.1:{self.mesh['front']}/reviews"
        for _ in range(6000):  # bounded: about a minute at most
            if self.stop.is_set():
                return
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    self.bodies.append(r.read().decode())
            except urllib.error.HTTPError as e:
                self.bodies.append(e.read().decode())
            except OSError:
                pass
            time.sleep(0.01)

    def _sync(self) -> None:
        while not self.stop.is_set():
            split = self.weights(self.kube_api)
            if split != self.split and sum(split.values()) == 100:
                write_atomic(self.mesh["rds"], self.routes(split))
                self.split = split
            time.sleep(0.05)

    def __enter__(self):
        write_atomic(self.mesh["rds"], self.routes(self.start))
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(5)


def run(cli, kube_api, mesh, to: str, *extra):
    return cli("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews", "--to", to, "--interval", "1s",
               "--proxy-admin", mesh["admin"], "-o", "json", *extra)


def test_healthy_canary_is_promoted(cli, kube_api, mesh):
    seed(kube_api)
    with Traffic(mesh, kube_api) as traffic:
        r = run(cli, kube_api, mesh, "v2", "--steps", "25,50", "--threshold", "2")
        # the promoted weights reach the proxy: soon, the traffic goes to the canary only
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
    measured = [x["metrics"] for x in lines if x["metrics"]]
    assert len(measured) == 2 and all(m["requests"] > 0 and m["successRate"] == 100.0 for m in measured), measured
    assert all(m["p99Ms"] is not None and m["p99Ms"] < 500 for m in measured), measured
    assert weights(kube_api) == [("v1", 0), ("v2", 100)]
    assert tail and set(tail) == {"canary-v2"}, set(tail)


def test_failing_canary_is_rolled_back_within_threshold_intervals(cli, kube_api, mesh):
    seed(kube_api)
    threshold = 2
    with Traffic(mesh, kube_api):
        started = time.monotonic()
        r = run(cli, kube_api, mesh, "v3", "--step", "20", "--threshold", str(threshold))
        elapsed = time.monotonic() - started
    assert r.exit_code == 1, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "advance", "fail", "rollback", "rolled-back"], lines
    analyses = [x for x in lines if x["metrics"]]
    assert len(analyses) == threshold
    assert all(x["metrics"]["requests"] > 0 and x["metrics"]["successRate"] < 1 for x in analyses), analyses
    assert elapsed < threshold * 1.0 + 10, f"rolled back after {elapsed:.1f}s"
    assert weights(kube_api) == [("v1", 100), ("v3", 0)]
    assert get_vs(kube_api)["metadata"]["annotations"]["canary.meshctl.io/phase"] == "Failed"


def test_slow_canary_is_rolled_back(cli, kube_api, mesh):
    seed(kube_api)
    kube_api.add(destination_rule(("v1", "v2", "v3", "v4")))
    with Traffic(mesh, kube_api):
        r = run(cli, kube_api, mesh, "v4", "--step", "20", "--threshold", "1", "--max-p99", "150ms")
    assert r.exit_code == 1, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines][-2:] == ["rollback", "rolled-back"], lines
    m = lines[-2]["metrics"]
    assert m["successRate"] == 100.0 and 250 <= m["p99Ms"] <= 500, m
    assert {c["name"]: c["ok"] for c in lines[-2]["checks"]} == {"success-rate": True, "p99": False}
    assert weights(kube_api) == [("v1", 100), ("v4", 0)]


def test_stats_deltas_are_per_interval(mesh):
    """The gate reads the canary subset's clusters and counts each interval on its own."""
    from meshctl.canary import gates

    src = gates.EnvoySource([mesh["admin"]], FQDN, "v3")
    src.start()
    assert src.measure().requests == 0, "no traffic between two reads: zero, whatever came before"
    write_atomic(mesh["rds"], route_config({"v3": 100}))
    url = f"http://127.0.0.1:{mesh['front']}/"
    deadline = time.monotonic() + 5
    sent = 0
    while time.monotonic() < deadline and sent < 10:
        try:
            urllib.request.urlopen(url, timeout=2).read()
        except urllib.error.HTTPError as e:
            if e.code == 503 and e.read() == b"broken-v3":
                sent += 1
    m = src.measure()
    assert (m.requests, m.errors) == (sent, sent) and m.success_rate == 0.0
    assert src.measure().requests == 0


def test_proxies_found_as_pods_through_port_forward(cli, kube_api, mesh):
    """Without --proxy-admin the calling sidecars are the namespace's pods with an istio-proxy
    container, read through port-forward to their admin port."""
    seed(kube_api)
    admin_port = int(mesh["admin"].rsplit(":", 1)[1])
    kube_api.add({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "productpage-v1-abc", "namespace": "default", "labels": {"app": "productpage"}},
                  "spec": {"containers": [{"name": "productpage"}, {"name": "istio-proxy"}]},
                  "status": {"phase": "Running"}})
    kube_api.forward_pod_port("default", "productpage-v1-abc", 15000, admin_port)
    with Traffic(mesh, kube_api):
        r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews", "--to", "v2", "--interval", "1s",
                "--steps", "50", "-o", "json")
    assert r.exit_code == 0, r
    lines = json_lines(r.stdout)
    assert "Envoy /stats of 127.0.0.1:" in lines[0]["message"]
    assert [x["action"] for x in lines] == ["start", "advance", "promote", "promoted"], lines
    assert lines[2]["metrics"]["requests"] > 0
    assert any(p.endswith("/pods/productpage-v1-abc/portforward") for _, p in kube_api.requests)


def test_an_unreachable_proxy_among_others_is_reported_not_fatal(mesh):
    from meshctl.canary import gates

    src = gates.EnvoySource([mesh["admin"], "127.0.0.1:1"], FQDN, "v2")
    src.start()
    m = src.measure()
    assert m.error is None and m.requests == 0
    assert len(m.unreachable) == 1 and "127.0.0.1:1" in m.unreachable[0]
    assert "127.0.0.1:1" in m.to_dict()["unreachable"][0]
    all_down = gates.EnvoySource(["127.0.0.1:1"], FQDN, "v2")
    m = all_down.measure()
    assert m.error and gates.evaluate(m, gates.Thresholds())[0] == "fail"

"""meshctl proxy-status against real Envoy processes (started once for the module)."""
from __future__ import annotations

import datetime as dt
import json
import socket

import pytest

from tests.envoy.envoyproc import (ads_bootstrap, cds_resources, file_xds_bootstrap, istio_stats_matcher, lds_resources,
                                   make_cert, rejected_cluster, rejected_listener, static_bootstrap, tls_bootstrap,
                                   write_atomic)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def healthy(start_envoy):
    return start_envoy(static_bootstrap(), name="healthy")


@pytest.fixture(scope="module")
def synced(start_envoy, tmp_path_factory):
    d = tmp_path_factory.mktemp("xds-synced")
    return start_envoy(file_xds_bootstrap(d, version="v7"), name="synced")


@pytest.fixture(scope="module")
def stale(start_envoy, tmp_path_factory):
    """File-based xDS, then a CDS update and an LDS update that Envoy rejects."""
    d = tmp_path_factory.mktemp("xds-stale")
    proxy = start_envoy(file_xds_bootstrap(d, version="1"), name="stale")
    write_atomic(d / "cds.json", cds_resources("2", d, extra=(rejected_cluster(),)))
    proxy.wait_stat("cluster_manager.cds.update_rejected", lambda v: v >= 1)
    write_atomic(d / "lds.json", lds_resources("2", d, extra=(rejected_listener(),)))
    proxy.wait_stat("listener_manager.lds.update_rejected", lambda v: v >= 1)
    return proxy


@pytest.fixture(scope="module")
def stopped(start_envoy):
    proxy = start_envoy(static_bootstrap(), name="stopped")
    address = proxy.admin
    proxy.stop()
    return address


@pytest.fixture(scope="module")
def expiring(start_envoy, tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    # 2 hours left of 8: a certificate its agent should have replaced by now
    cert, key = make_cert(d, dt.timedelta(hours=2), issued_ago=dt.timedelta(hours=6))
    return start_envoy(tls_bootstrap(cert, key), name="expiring")


@pytest.fixture(scope="module")
def disconnected(start_envoy):
    return start_envoy(ads_bootstrap(closed_port()), name="disconnected", wait_ready=False)


def status_json(cli, *admins, extra=()):
    args = ["proxy-status", "-o", "json", "--timeout", "2"]
    for a in admins:
        args += ["--admin", a]
    r = cli(*args, *extra)
    assert r.exit_code == 0, r
    return {p["name"]: p for p in json.loads(r.stdout)["proxies"]}


def test_static_proxy_is_static_and_healthy(cli, healthy):
    r = cli("proxy-status", "--admin", healthy.admin, "--fail-on-unhealthy")
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "VERSION", "STATUS"]
    row = lines[1]
    assert row.startswith(healthy.admin)
    assert "1.40" in row and "STATIC" in row
    assert "static configuration only (no xDS)" in row
    assert "1 proxy: 1 static (1 healthy)" in r.stderr


def test_file_based_xds_is_synced_with_versions(cli, synced):
    p = status_json(cli, synced.admin)[synced.admin]
    assert p["status"] == "SYNCED" and p["healthy"] is True
    assert p["ready"] is True and p["state"] == "LIVE"
    assert {k: (v["state"], v["version"]) for k, v in p["xds"].items()} == {
        "CDS": ("SYNCED", "v7"), "LDS": ("SYNCED", "v7"), "EDS": ("SYNCED", "v7"), "RDS": ("SYNCED", "v7")}
    assert p["control_plane"]["type"] == "files"
    # two clusters: reviews (1 of 2 endpoints healthy via EDS) and ratings (static, 1 of 1)
    assert (p["endpoints"]["healthy"], p["endpoints"]["total"]) == (2, 3)
    reviews = [c for c in p["endpoints"]["clusters"] if c["cluster"].startswith("outbound|80||reviews")]
    assert reviews == [{"cluster": "outbound|80||reviews.default.svc.cluster.local", "healthy": 1, "total": 2}]


def test_rejected_updates_show_stale_with_reason(cli, stale):
    r = cli("proxy-status", "--admin", stale.admin)
    assert r.exit_code == 0, r  # an unhealthy proxy is a row, not a failure of the command
    row = r.stdout.splitlines()[1]
    assert "STALE" in row
    assert "CDS 1 rejected update(s) since start, at version 1" in row
    # the listener rejection carries Envoy's own error text from config_dump error_state
    assert "listener broken_listener" in row and "route_specifier" in row
    p = status_json(cli, stale.admin)[stale.admin]
    assert p["status"] == "STALE" and p["healthy"] is False
    assert p["xds"]["CDS"]["state"] == "STALE" and p["xds"]["CDS"]["version"] == "1"
    assert p["xds"]["CDS"]["rejected"] == 1
    assert p["xds"]["EDS"]["state"] == "SYNCED"


def test_fail_on_unhealthy_exits_1(cli, stale, healthy):
    r = cli("proxy-status", "--admin", healthy.admin, "--admin", stale.admin, "--fail-on-unhealthy")
    assert r.exit_code == 1
    assert len(r.stdout.splitlines()) == 3
    assert f"error: 1 of 2 proxies unhealthy: {stale.admin}" in r.stderr


def test_stopped_proxy_is_an_unreachable_row(cli, stopped, healthy):
    r = cli("proxy-status", "--admin", stopped, "--admin", healthy.admin, "--timeout", "1")
    assert r.exit_code == 0, r
    rows = r.stdout.splitlines()[1:]
    assert rows[0].startswith(stopped) and "UNREACHABLE" in rows[0] and "connection refused" in rows[0]
    assert rows[1].startswith(healthy.admin) and "STATIC" in rows[1]
    r = cli("proxy-status", "--admin", stopped, "--fail-on-unhealthy")
    assert r.exit_code == 1
    assert "Traceback" not in r.stderr


def test_expiring_certificate_warns(cli, expiring):
    p = status_json(cli, expiring.admin)[expiring.admin]
    assert p["status"] == "STATIC" and p["healthy"] is True  # a warning, not a failure
    assert 3600 < p["cert_seconds_left"] <= 2 * 3600
    cert = p["certificates"][0]
    assert cert["san"] == ["spiffe://cluster.local/ns/default/sa/short"]
    assert any("expires in 1h" in w for w in p["warnings"])
    r = cli("proxy-status", "--admin", expiring.admin)
    assert "1h5" in r.stdout and "‼" in r.stdout
    assert "certificate spiffe://cluster.local/ns/default/sa/short expires in 1h" in r.stdout


def test_no_control_plane_connection(cli, disconnected):
    p = status_json(cli, disconnected.admin)[disconnected.admin]
    assert p["status"] == "NOT CONNECTED"
    assert p["control_plane"] == {"type": "grpc", "connected": False, "identifier": None}
    assert p["reasons"][0] == "not connected to the control plane"
    assert p["xds"]["CDS"]["state"] == "NOT SENT"


def test_istio_like_filtered_stats(cli, start_envoy):
    """Istio's bootstrap keeps control_plane.* and per-cluster stats out: the ADS cluster's
    connections tell the link, and EDS/RDS show as unknown rather than absent."""
    boot = dict(ads_bootstrap(closed_port()), stats_config=istio_stats_matcher())
    proxy = start_envoy(boot, name="istio-like", wait_ready=False)
    p = status_json(cli, proxy.admin)[proxy.admin]
    assert p["status"] == "NOT CONNECTED"
    assert p["control_plane"]["connected"] is False
    assert (p["xds"]["EDS"]["state"], p["xds"]["RDS"]["state"]) == ("?", "?")
    assert p["xds"]["CDS"]["state"] == "NOT SENT"


def test_yaml_output_and_order(cli, healthy, synced, stopped):
    import yaml

    r = cli("proxy-status", "-o", "yaml", "--admin", synced.admin, "--admin", stopped, "--admin", healthy.admin,
            "--concurrency", "1", "--timeout", "1")
    assert r.exit_code == 0, r
    data = yaml.safe_load(r.stdout)
    assert [p["status"] for p in data["proxies"]] == ["SYNCED", "UNREACHABLE", "STATIC"]
    assert data["summary"] == {"total": 3, "healthy": 2}
    assert r.stderr == ""


def test_pods_through_port_forward(cli, kube_api, synced, stale):
    """Pods with an istio-proxy container (also as a native-sidecar init container) are probed on 15000."""
    def pod(name, init=False, labels=None):
        proxy = {"name": "istio-proxy", "image": "proxyv2"}
        spec = {"containers": [{"name": "app", "image": "app"}]}
        if init:
            spec["initContainers"] = [dict(proxy, restartPolicy="Always")]
        else:
            spec["containers"].append(proxy)
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop",
                                                                "labels": labels or {"app": name}},
                "spec": spec, "status": {"phase": "Running"}}

    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    kube_api.add(pod("reviews-1"))
    kube_api.add(pod("ratings-1", init=True))
    kube_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": "shop"},
                  "spec": {"containers": [{"name": "app", "image": "app"}]}, "status": {"phase": "Running"}})
    pending = pod("details-1")
    pending["status"] = {"phase": "Pending"}
    kube_api.add(pending)
    kube_api.forward_pod_port("shop", "reviews-1", 15000, int(synced.admin.rsplit(":", 1)[1]))
    kube_api.forward_pod_port("shop", "ratings-1", 15000, int(stale.admin.rsplit(":", 1)[1]))
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-status", "-n", "shop", "-o", "json")
    assert r.exit_code == 0, r
    got = {p["name"]: (p["kind"], p["status"]) for p in json.loads(r.stdout)["proxies"]}
    assert got == {"details-1.shop": ("sidecar", "UNREACHABLE"), "ratings-1.shop": ("sidecar", "STALE"),
                   "reviews-1.shop": ("sidecar", "SYNCED")}
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-status", "-n", "shop")
    assert "pod is Pending" in r.stdout
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-status", "-n", "empty")
    assert r.exit_code == 0 and r.stdout == ""
    assert "no mesh proxies found in namespace empty" in r.stderr


def test_ztunnel_pod_reads_its_config_dump(cli, kube_api):
    """ztunnel is not Envoy: its admin port serves workloads, services and certificates."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1, hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps({"workloads": [{"name": "reviews-1"}, {"name": "ratings-1"}], "services": [{"name": "reviews"}],
                       "certificates": [{"identity": "spiffe://cluster.local/ns/shop/sa/reviews",
                                         "certChain": [{"expirationTime": expires, "serialNumber": "7"}]}]}).encode()

    class Ztunnel(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/config_dump" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ztunnel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kube_api.add({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": "ztunnel-abc", "namespace": "istio-system", "labels": {"app": "ztunnel"}},
                      "spec": {"containers": [{"name": "istio-proxy", "image": "ztunnel"}]},
                      "status": {"phase": "Running"}})
        kube_api.forward_pod_port("istio-system", "ztunnel-abc", 15000, server.server_address[1])
        r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-status", "-A", "-o", "json")
        assert r.exit_code == 0, r
        (p,) = json.loads(r.stdout)["proxies"]
        assert (p["name"], p["kind"], p["status"], p["healthy"]) == ("ztunnel-abc.istio-system", "ztunnel", "SYNCED", True)
        assert p["warnings"] == ["ztunnel: 2 workload(s), 1 service(s)"]
        assert 86400 < p["cert_seconds_left"] <= 26 * 3600
    finally:
        server.shutdown()


def test_wide_output_adds_address_and_kind(cli, healthy):
    r = cli("proxy-status", "-o", "wide", "--admin", healthy.admin)
    assert r.exit_code == 0, r
    header, row = r.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "ADDRESS", "KIND", "VERSION"]
    assert row.split()[:3] == [healthy.admin, healthy.admin, "envoy"]


def test_port_forward_refused_is_an_unreachable_row(cli, kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reviews-1", "namespace": "shop"},
                  "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
                  "status": {"phase": "Running"}})
    kube_api.deny("create", "pods/portforward", namespace="shop")
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-status", "-n", "shop")
    assert r.exit_code == 0, r
    row = r.stdout.splitlines()[1]
    assert row.startswith("reviews-1.shop") and "UNREACHABLE" in row and "port-forward to reviews-1:15000 failed" in row
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-status", "-n", "shop", "--fail-on-unhealthy")
    assert r.exit_code == 1 and "1 of 1 proxies unhealthy: reviews-1.shop" in r.stderr


def test_the_stats_filter_asks_only_for_what_the_summary_reads(synced):
    """No histograms, no xDS counters the summary does not read: half the bytes of /stats's xDS
    section, the same statuses."""
    import urllib.parse

    from meshctl.proxy.parse import STATS_FILTER

    _, text = synced.get("/stats?" + urllib.parse.urlencode({"format": "json", "filter": STATS_FILTER}))
    stats = json.loads(text)["stats"]
    assert all("name" in s for s in stats), "no histograms"
    names = {s["name"] for s in stats}
    read = ("update_attempt", "version_text", "update_success", "update_rejected", "update_failure",
            "init_fetch_timeout", "membership_healthy", "membership_total", "warming_clusters",
            "total_listeners_warming", "server.state")
    assert all(n.endswith(read) for n in names), sorted(n for n in names if not n.endswith(read))
    assert {"cluster_manager.cds.update_attempt", "listener_manager.lds.version_text", "server.state",
            "cluster.outbound|80||reviews.default.svc.cluster.local.membership_total"} <= names
    assert any(n.startswith("http.") and n.endswith(".rds.80.version_text") for n in names)

"""proxy-status through a cluster: each pod's admin port over an asyncio port-forward (websocket,
v4.channel.k8s.io) to the fake API server, with the refusals a user can meet; and the fake's pod
proxy subresource, which bench/proxy_status.py compares it with."""
from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshctl import kube
from meshctl.proxy import status

pytestmark = pytest.mark.kube

BUILD = {"configs": [{"bootstrap": {"node": {"id": "n", "metadata": {"ISTIO_VERSION": "1.24.1"},
                                             "user_agent_build_version": {"version": {"major_number": 1,
                                                                                      "minor_number": 40}}}}}]}
STATS = {"stats": [{"name": "server.state", "value": 0}, {"name": "cluster.a.membership_healthy", "value": 1},
                   {"name": "cluster.a.membership_total", "value": 1}]}


class _Admin(BaseHTTPRequestHandler):
    """An Envoy-like admin endpoint: build info, stats, certificates (kept-alive HTTP/1.1)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server API
        path = self.path.split("?")[0]
        body = json.dumps(BUILD if path == "/config_dump" else STATS if path == "/stats"
                          else {"certificates": []}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # as Envoy's: many forwarded connections arrive at once


@pytest.fixture
def admin_port():
    server = _Server(("127.0.0.1", 0), _Admin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def mesh_pod(name: str, namespace: str = "shop", phase: str = "Running") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}, "status": {"phase": phase}}


def check(api, **options) -> dict:
    result = status.check(status.StatusOptions(**options), lambda: kube.client(api.kubeconfig))
    return {r.name: (r.status, r.address, "; ".join(r.reasons)) for r in result.rows}


def test_pods_over_port_forward_and_what_refuses_them(kube_api, admin_port):
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    for name in ("reviews-1", "ratings-1", "details-1"):
        kube_api.add(mesh_pod(name))
    kube_api.add(mesh_pod("pending-1", phase="Pending"))
    kube_api.forward_pod_port("shop", "reviews-1", 15000, admin_port)
    kube_api.forward_pod_port("shop", "details-1", 15000, admin_port)
    got = check(kube_api, namespace="shop", timeout=3)
    assert got["reviews-1.shop"] == ("STATIC", "reviews-1.shop:15000", "")
    assert got["pending-1.shop"] == ("UNREACHABLE", None, "pod is Pending")
    # nothing listens on the pod's admin port: the kubelet's error comes back on channel 1
    assert got["ratings-1.shop"][:2] == ("UNREACHABLE", "ratings-1.shop:15000")
    assert got["ratings-1.shop"][2] == ("port-forward to ratings-1:15000 failed: error forwarding port 15000 to "
                                        "pod: connection refused")
    pods = [p for _, p in kube_api.requests if p.startswith("/api/v1/namespaces/shop/pods/")]
    assert sorted(pods) == ["/api/v1/namespaces/shop/pods/details-1/portforward",
                            "/api/v1/namespaces/shop/pods/ratings-1/portforward",
                            "/api/v1/namespaces/shop/pods/reviews-1/portforward"], "one stream a pod, no GET first"
    kube_api.deny("create", "pods/portforward", namespace="shop")
    got = check(kube_api, namespace="shop", timeout=3)
    assert got["reviews-1.shop"] == ("UNREACHABLE", "reviews-1.shop:15000",
                                     f"port-forward to reviews-1:15000 failed: forbidden by the Kubernetes API server "
                                     f"at {kube_api.url}: cannot port-forward to pod shop/reviews-1")


def test_a_pod_gone_since_the_list_is_a_row_not_a_failure(kube_api, admin_port):
    kube_api.add(mesh_pod("reviews-1", namespace="default"))
    k = kube.client(kube_api.kubeconfig)
    targets = status.discover(k, "default")
    kube_api.remove("v1", "Pod", "reviews-1", "default")
    from meshctl.proxy import portforward

    targets[0].address = "reviews-1.default:15000"
    route = portforward.routes(k.connection(), [(targets[0].address, "default", "reviews-1")], 15000)
    (row,) = status.run(targets, timeout=3, route=route)
    assert (row.status, row.reasons) == ("UNREACHABLE", [f"port-forward to reviews-1:15000 failed: pod "
                                                         f"default/reviews-1 not found ({kube_api.url})"])


@pytest.fixture
def https_api(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    from tests.kube.fakeapi import FakeKube, make_tls

    server = FakeKube(tmp_path / "https").start(tls=make_tls(str(tmp_path / "tls")))
    yield server
    server.stop()


def test_many_pods_at_once_over_https(https_api, admin_port):
    """More forwards open at once than a select()-based forwarder can watch (its descriptors pass
    1,024 at about 150 pods): each is one TLS connection, read by the event loop."""
    for n in range(4):
        https_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{n}"}})
    for i in range(200):
        https_api.add(mesh_pod(f"app-{i:03d}", namespace=f"ns-{i % 4}"))
        https_api.forward_pod_port(f"ns-{i % 4}", f"app-{i:03d}", 15000, admin_port)
    got = check(https_api, all_namespaces=True, concurrency=200, timeout=10)
    assert len(got) == 200
    assert {s for s, _, _ in got.values()} == {"STATIC"}, [v for v in got.values() if v[0] != "STATIC"][:3]


def test_the_fake_pod_proxy_subresource(kube_api, admin_port):
    kube_api.add(mesh_pod("reviews-1", namespace="default"))
    kube_api.forward_pod_port("default", "reviews-1", 15000, admin_port)
    base = f"{kube_api.url}/api/v1/namespaces/default/pods"

    def get(path: str) -> tuple[int, dict]:
        req = urllib.request.Request(base + path, headers={"Authorization": "Bearer fake-token"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert get("/reviews-1:15000/proxy/stats?format=json") == (200, STATS)
    code, body = get("/reviews-1:15001/proxy/stats")
    assert code == 503 and "connect: connection refused" in body["message"]
    assert get("/missing:15000/proxy/stats")[0] == 404
    kube_api.deny("get", "pods/proxy", namespace="default")
    code, body = get("/reviews-1:15000/proxy/stats")
    assert code == 403 and 'cannot get resource "pods/proxy"' in body["message"]


def test_the_connection_follows_the_kubeconfigs_tls_settings(https_api, tmp_path):
    import ssl

    import yaml

    conn = kube.client(https_api.kubeconfig).connection()
    assert (conn.host, conn.port, conn.server) == ("127.0.0.1", int(https_api.url.rsplit(":", 1)[1]), https_api.url)
    assert conn.ssl.verify_mode == ssl.CERT_REQUIRED and conn.headers == {"authorization": "Bearer fake-token"}
    skip = yaml.safe_load(open(https_api.kubeconfig))
    del skip["clusters"][0]["cluster"]["certificate-authority-data"]
    skip["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    (tmp_path / "skip").write_text(yaml.safe_dump(skip))
    assert kube.client(str(tmp_path / "skip")).connection().ssl.verify_mode == ssl.CERT_NONE


def test_opening_a_port_forward_has_its_own_timeout(kube_api, admin_port):
    """A slow API server: the port-forward takes two round trips to open (connection, upgrade),
    each read one more; --timeout bounds the opening and each read, not their sum."""
    from meshctl.proxy import portforward

    kube_api.add(mesh_pod("reviews-1", namespace="default"))
    kube_api.forward_pod_port("default", "reviews-1", 15000, admin_port)
    k = kube.client(kube_api.kubeconfig)
    (target,) = status.discover(k, "default")
    target.address = "reviews-1.default:15000"
    route = portforward.routes(k.connection(), [(target.address, "default", "reviews-1")], 15000)
    kube_api.latency = 0.6
    (row,) = status.run([target], timeout=1.5, route=route)
    assert (row.status, row.reasons) == ("STATIC", [])

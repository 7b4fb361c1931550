"""meshctl.proxy.admin.fetch_stats (the reusable stats reader) against a real Envoy."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshctl.errors import EXIT_UNREACHABLE
from meshctl.proxy.admin import AdminClient, AdminUnreachable, Histogram, fetch_stats, fetch_stats_sync
from tests.envoy.envoyproc import http_listener, static_cluster


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with Content-Length, as real upstreams answer Envoy

    def do_GET(self):  # noqa: N802 - http.server API
        code = 500 if self.path.startswith("/fail") else 200
        self.send_response(code)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def traffic(start_envoy):
    """An Envoy in front of a Python upstream, after 5 successful and 3 failing requests."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    # histograms are merged on each stats flush (5 s by default): flush often
    boot = {"stats_flush_interval": "0.1s", "static_resources": {"clusters": [static_cluster("reviews", upstream.server_address[1])],
                                 "listeners": [http_listener("ingress", "reviews")]}}
    proxy = start_envoy(boot, name="traffic")
    _, text = proxy.get("/listeners?format=json")
    port = json.loads(text)["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
    for path in ["/"] * 5 + ["/fail"] * 3:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()
        except urllib.error.HTTPError:
            pass
    proxy.wait_stat("cluster.reviews.upstream_rq_completed", lambda v: v >= 8)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until a stats flush has merged latency samples
        h = fetch_stats_sync(proxy.admin, r"^cluster\.reviews\.upstream_rq_time$",
                             histogram_buckets=True)["cluster.reviews.upstream_rq_time"]
        if h.buckets and h.buckets[-1][1] >= 1:
            break
        time.sleep(0.05)
    else:
        pytest.fail("no latency sample reached the histogram")
    yield proxy
    upstream.shutdown()


def test_fetch_stats_counters_and_histograms(traffic):
    stats = fetch_stats_sync(traffic.admin, filter=r"^cluster\.reviews\.upstream_rq_(2xx|5xx|time)$")
    assert stats["cluster.reviews.upstream_rq_2xx"] == 5
    assert stats["cluster.reviews.upstream_rq_5xx"] == 3
    h = stats["cluster.reviews.upstream_rq_time"]
    assert isinstance(h, Histogram)
    assert h.quantiles["p99"] is not None and h.quantiles["p50"] <= h.quantiles["p99"]
    assert set(stats) == {"cluster.reviews.upstream_rq_2xx", "cluster.reviews.upstream_rq_5xx",
                          "cluster.reviews.upstream_rq_time"}


def test_fetch_stats_buckets_and_shared_client(traffic):
    async def two():
        async with AdminClient(timeout=2, concurrency=2) as admin:
            return await asyncio.gather(
                fetch_stats(traffic.admin, r"upstream_rq_time$", histogram_buckets=True, client=admin),
                fetch_stats(traffic.admin, r"^cluster\.reviews\.upstream_rq_total$", client=admin))

    buckets, total = asyncio.run(two())
    h = buckets["cluster.reviews.upstream_rq_time"]
    bounds = [b for b, _ in h.buckets]
    counts = [n for _, n in h.buckets]
    assert bounds == sorted(bounds) and counts == sorted(counts)  # cumulative, ascending bounds
    assert 1 <= counts[-1] <= 8  # samples merged by the last stats flush
    assert total == {"cluster.reviews.upstream_rq_total": 8}
    assert h.to_dict()["buckets"][0].keys() == {"le", "count"}


def test_fetch_stats_unreachable_is_a_proxy_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(AdminUnreachable) as e:
        fetch_stats_sync(f"127.0.0.1:{port}", timeout=1)
    assert e.value.exit_code == EXIT_UNREACHABLE
    assert str(e.value) == f"proxy 127.0.0.1:{port} unreachable: connection refused (/stats)"


def test_timeout_is_reported(tmp_path):
    """A peer that accepts but never answers times out within --timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        with pytest.raises(AdminUnreachable) as e:
            fetch_stats_sync(f"127.0.0.1:{server.getsockname()[1]}", timeout=0.3)
        assert e.value.reason == "timed out"
    finally:
        server.close()

"""Istio's traffic management on a real local mesh: requests from a client workload go through its
sidecar (as an application's HTTP_PROXY), over mTLS, to echo workloads' sidecars and apps."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from tests.local.harness import Client, next_net, service, stats, workload, write

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


@pytest.fixture(scope="module")
def net():
    return next_net()


@pytest.fixture(scope="module")
def routing_mesh(start_mesh, tmp_path_factory, net):
    d = tmp_path_factory.mktemp("routing")
    a = f"127.{net}.0"
    write(d, "services.yaml", service("echo"), service("flaky"), service("outlier"), service("slow"), service("pool"))
    write(d, "workloads.yaml",
          workload("echo-v1", f"{a}.1", "echo", "v1"), workload("echo-v2", f"{a}.2", "echo", "v2"),
          workload("flaky-v1", f"{a}.3", "flaky", args="--fail-every 2"),
          workload("outlier-good", f"{a}.4", "outlier"), workload("outlier-bad", f"{a}.5", "outlier", args="--status 500"),
          workload("slow-v1", f"{a}.6", "slow", args="--delay 1.5"),
          workload("pool-v1", f"{a}.7", "pool", args="--delay 0.5"),
          workload("client", f"{a}.10", None, command=False))
    write(d, "rules.yaml", """\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: echo, namespace: default}
        spec:
          host: echo
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
        """, """\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: outlier, namespace: default}
        spec:
          host: outlier.default.svc.cluster.local
          trafficPolicy:
            outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 5m, maxEjectionPercent: 100}
        """, """\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: pool, namespace: default}
        spec:
          host: pool
          trafficPolicy:
            connectionPool:
              tcp: {maxConnections: 1}
              http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
        """, """\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: echo, namespace: default}
        spec:
          hosts: [echo]
          http:
          - match:
            - headers: {end-user: {exact: jason}}
            route:
            - destination: {host: echo, subset: v2}
          - match:
            - uri: {prefix: /api/}
            rewrite: {uri: /v2api/}
            route:
            - destination: {host: echo, subset: v1}
          - match:
            - uri: {regex: "/items/[0-9]+"}
              method: {exact: DELETE}
            - queryParams: {debug: {exact: "1"}}
            directResponse: {status: 418, body: {string: "matched"}}
          - match:
            - uri: {exact: /old}
            redirect: {uri: /new, redirectCode: 302}
          - match:
            - uri: {prefix: /fault}
            fault:
              abort: {httpStatus: 503, percentage: {value: 50}}
            route:
            - destination: {host: echo, subset: v1}
          - match:
            - uri: {prefix: /delay}
            fault:
              delay: {fixedDelay: 1s, percentage: {value: 100}}
            route:
            - destination: {host: echo, subset: v1}
          - route:
            - destination: {host: echo, subset: v1}
              weight: 90
            - destination: {host: echo, subset: v2}
              weight: 10
        """, """\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: flaky, namespace: default}
        spec:
          hosts: [flaky.default.svc.cluster.local]
          http:
          - route:
            - destination: {host: flaky}
            retries: {attempts: 3, retryOn: 5xx}
        """, """\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: slow, namespace: default}
        spec:
          hosts: [slow]
          http:
          - route:
            - destination: {host: slow}
            timeout: 0.3s
        """)
    state_dir = start_mesh([d])
    return {"dir": d, "state": state_dir, "client": f"{a}.10", "a": a}


@pytest.fixture()
def client(routing_mesh):
    c = Client(routing_mesh["client"])
    yield c
    c.close()


def test_weighted_split_within_3_percent_over_2000_requests(client):
    counts = Counter()
    for _ in range(2000):
        status, _, body = client.request("echo:8080", "/")
        assert status == 200
        counts[body["name"]] += 1
    share = counts["echo-v2"] / 2000
    assert abs(share - 0.10) <= 0.03, counts


def test_header_route_sends_jason_to_v2(client):
    names = {client.request("echo:8080", "/", headers={"end-user": "jason"})[2]["name"] for _ in range(30)}
    assert names == {"echo-v2"}
    assert "echo-v1" in {client.request("echo:8080", "/", headers={"end-user": "bob"})[2]["name"] for _ in range(60)}


def test_uri_prefix_match_and_rewrite(client):
    status, _, body = client.request("echo:8080", "/api/books?x=1")
    assert status == 200 and body["path"] == "/v2api/books" and body["query"] == "x=1" and body["name"] == "echo-v1"


def test_regex_method_and_query_matches(client):
    assert client.request("echo:8080", "/items/42", method="DELETE")[0] == 418
    assert client.request("echo:8080", "/items/42", method="GET")[0] == 200
    assert client.request("echo:8080", "/anything?debug=1")[0] == 418
    assert client.request("echo:8080", "/anything?debug=0")[0] == 200


def test_redirect(client):
    status, headers, _ = client.request("echo:8080", "/old")
    assert status == 302 and headers["location"].endswith("/new")


def test_fault_abort_50_percent_within_5_percent(client):
    codes = Counter(client.request("echo:8080", "/fault")[0] for _ in range(2000))
    assert set(codes) <= {200, 503}
    assert abs(codes[503] / 2000 - 0.5) <= 0.05, codes


def test_fixed_delay_is_observed(client, routing_mesh):
    admin = f"{routing_mesh['client']}:15000"
    before = stats(admin, r"fault\.delays_injected$")
    start = time.monotonic()
    status, _, body = client.request("echo:8080", "/delay")
    assert status == 200 and body["name"] == "echo-v1"
    assert time.monotonic() - start >= 0.9  # a 1 s delay (timers may fire a little early)
    after = stats(admin, r"fault\.delays_injected$")
    assert sum(after.values()) == sum(before.values()) + 1


def test_retries_turn_a_flaky_upstream_into_successes(client, routing_mesh):
    # every other answer of flaky-v1 is 503: with retries each request still succeeds
    codes = Counter(client.request("flaky:8080", "/")[0] for _ in range(40))
    assert codes == {200: 40}
    s = stats(f"{routing_mesh['client']}:15000", r"outbound\|8080\|\|flaky.*upstream_rq_retry$")
    assert sum(v for k, v in s.items()) >= 40


def test_timeout_fires(client):
    start = time.monotonic()
    status, _, body = client.request("slow:8080", "/")
    assert status == 504
    assert time.monotonic() - start < 1.4  # the upstream answers after 1.5 s


def test_outlier_detection_ejects_the_failing_endpoint(client, routing_mesh):
    codes = [client.request("outlier:8080", "/")[0] for _ in range(60)]
    assert 500 in codes[:10]
    assert codes[-40:] == [200] * 40, codes
    s = stats(f"{routing_mesh['client']}:15000", r"outbound\|8080\|\|outlier.*outlier_detection.ejections_enforced_total$")
    assert sum(s.values()) >= 1


def test_circuit_breaking_rejects_what_the_connection_pool_cannot_hold(routing_mesh):
    """Istio's circuit-breaking task: one connection and one pending request allowed; eight
    concurrent callers of a service that answers in 0.5 s."""
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def call():
        c = Client(routing_mesh["client"])
        start.wait(timeout=10)
        status, headers, _ = c.request("pool:8080", "/")
        c.close()
        with lock:
            results.append((status, headers))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    codes = Counter(s for s, _ in results)
    assert len(results) == 8 and codes[200] >= 1 and codes[503] >= 1, codes
    assert all(h.get("x-envoy-overloaded") == "true" for s, h in results if s == 503)
    s = stats(f"{routing_mesh['client']}:15000", r"outbound\|8080\|\|pool.*upstream_rq_pending_overflow$")
    assert sum(s.values()) >= codes[503]


def test_default_route_and_short_names_for_hosts_without_virtual_service(client):
    for host in ("outlier", "outlier:8080", "outlier.default", "outlier.default.svc.cluster.local:8080"):
        status, _, _ = client.request(host, "/")
        assert status in (200, 500)
    assert client.request("nosuchservice:8080", "/")[0] == 502


def test_requests_cross_mtls_with_spiffe_identities(client, routing_mesh):
    status, _, body = client.request("echo:8080", "/", headers={"end-user": "jason"})
    assert status == 200
    assert "URI=spiffe://cluster.local/ns/default/sa/client" in body["headers"]["x-forwarded-client-cert"]


def test_apply_new_weights_under_steady_traffic_fails_no_request(routing_mesh, cli):
    stop = threading.Event()
    results: list[tuple[int, str]] = []

    def traffic():
        c = Client(routing_mesh["client"])
        while not stop.is_set() and len(results) < 20000:
            status, _, body = c.request("echo:8080", "/")
            results.append((status, body.get("name", "")))
        c.close()

    t = threading.Thread(target=traffic)
    t.start()
    try:
        time.sleep(0.5)
        mark = len(results)
        path = write(routing_mesh["dir"] / "later", "shift.yaml", """\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: echo, namespace: default}
            spec:
              hosts: [echo]
              http:
              - route:
                - destination: {host: echo, subset: v1}
                  weight: 10
                - destination: {host: echo, subset: v2}
                  weight: 90
            """)
        r = cli("local", "apply", "-f", str(path), "--state-dir", routing_mesh["state"])
        assert r.exit_code == 0, r
        applied = len(results)
        deadline = time.monotonic() + 30
        while len(results) < applied + 600 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(timeout=30)
        # the module's other tests expect the original routes
        r = cli("local", "apply", "-f", str(routing_mesh["dir"] / "rules.yaml"), "--state-dir", routing_mesh["state"])
        assert r.exit_code == 0, r
    assert [s for s, _ in results if s != 200] == []
    before = Counter(n for _, n in results[:mark])
    after = Counter(n for _, n in results[applied + 100:])
    assert before["echo-v1"] > before["echo-v2"]
    assert after["echo-v2"] > 3 * after["echo-v1"], after

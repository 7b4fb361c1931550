"""Metric gates: quantiles from histogram buckets, per-interval deltas, verdicts, Prometheus answers."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshctl.canary import gates
from meshctl.proxy.admin import parse_stats
from tests.kube.test_canary_support import FakePrometheus, Webhook

FQDN = "reviews.default.svc.cluster.local"


def test_quantile_matches_prometheus_histogram_quantile():
    # 50 samples <= 1 ms, 49 in (1, 5], 1 in (5, 10]
    buckets = [(1, 50), (5, 99), (10, 100), (math.inf, 100)]
    assert gates.quantile(0.99, buckets) == pytest.approx(5.0)
    assert gates.quantile(0.5, buckets) == pytest.approx(1.0)
    assert gates.quantile(0.995, buckets) == pytest.approx(7.5)
    assert gates.quantile(0.99, [(1, 0), (5, 0)]) is None
    assert gates.quantile(0.99, []) is None


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=10))
def test_quantile_is_within_the_bucket_bounds(increments):
    bounds = [0.5 * 2 ** i for i in range(len(increments))]
    cumulative, total = [], 0
    for b, n in zip(bounds, increments):
        total += n
        cumulative.append((b, total))
    q = gates.quantile(0.99, cumulative)
    if total == 0:
        assert q is None
    else:
        assert 0 <= q <= bounds[-1]


def stats(v2_2xx=0, v2_5xx=0, other=0, buckets=()):
    data = {"stats": [
        {"name": f"cluster.outbound|9080|v2|{FQDN}.upstream_rq_2xx", "value": v2_2xx},
        {"name": f"cluster.outbound|9080|v2|{FQDN}.upstream_rq_5xx", "value": v2_5xx},
        {"name": f"cluster.outbound|9081|v2|{FQDN}.upstream_rq_2xx", "value": 1},
        {"name": f"cluster.outbound|9080|v1|{FQDN}.upstream_rq_2xx", "value": other},
        {"name": "cluster.outbound|9080|v2|ratings.default.svc.cluster.local.upstream_rq_5xx", "value": other},
        {"name": f"cluster.outbound|9080|v2|{FQDN}.external.upstream_rq_5xx", "value": other},
        {"histograms": [{"name": f"cluster.outbound|9080|v2|{FQDN}.upstream_rq_time",
                         "buckets": [{"upper_bound": le, "cumulative": n} for le, n in buckets]}]},
    ]}
    return parse_stats(data)


def test_reading_sums_the_subset_clusters_of_the_host_only():
    r = gates.reading_from_stats(stats(10, 2, other=1000, buckets=[(1, 5), (5, 12)]), "v2", FQDN)
    assert r.counters == {"2xx": 11, "5xx": 2}
    assert r.buckets == {1.0: 5, 5.0: 12}


def test_deltas_between_reads_and_restarts():
    a = gates.reading_from_stats(stats(100, 10, buckets=[(1, 50), (5, 110)]), "v2", FQDN)
    b = gates.reading_from_stats(stats(150, 10, buckets=[(1, 60), (5, 160)]), "v2", FQDN)
    d = gates._delta(b, a)
    assert d.counters == {"2xx": 50, "5xx": 0} and d.buckets == {1.0: 10, 5.0: 50}
    restarted = gates.reading_from_stats(stats(3, 1), "v2", FQDN)
    assert gates._delta(restarted, b).counters == {"2xx": 4, "5xx": 1}, "counted from zero after a restart"


def test_evaluate_verdicts():
    t = gates.Thresholds(min_success_rate=99, max_p99_ms=500)
    assert gates.evaluate(gates.Metrics(0, 0, None), t)[0] == "hold"
    verdict, checks = gates.evaluate(gates.Metrics(200, 1, 20.0), t)
    assert verdict == "pass" and [c.name for c in checks] == ["success-rate", "p99"]
    assert gates.evaluate(gates.Metrics(100, 2, 20.0), t)[0] == "fail"
    verdict, checks = gates.evaluate(gates.Metrics(100, 0, 501.0), t)
    assert verdict == "fail" and not checks[1].ok and "p99 501.0 ms (max 500 ms)" == checks[1].message
    verdict, checks = gates.evaluate(gates.Metrics(100, 0, None), t)
    assert verdict == "pass" and "not evaluated" in checks[1].message
    assert gates.evaluate(gates.Metrics(error="proxy 1.2.3.4:15000 unreachable"), t)[0] == "fail"
    assert gates.evaluate(gates.Metrics(100, 50, 9999.0), gates.Thresholds(None, None)) == ("pass", [])


def test_prometheus_source_window_and_answers():
    with FakePrometheus(requests=120, errors=3, p99=87.5) as prom:
        src = gates.PrometheusSource(prom.url, FQDN, "v2")
        src.start()
        m = src.measure()
        assert (m.requests, m.errors, m.p99_ms) == (120, 3, 87.5)
        assert m.success_rate == pytest.approx(97.5)
    with FakePrometheus(requests=None) as prom:
        m = gates.PrometheusSource(prom.url, FQDN, "v2").measure()
        assert m.requests == 0 and m.error is None, "no data = no traffic = hold"
    with FakePrometheus() as prom:
        prom.answer = lambda *a: (400, {"status": "error", "error": "parse error at char 3"})
        m = gates.PrometheusSource(prom.url, FQDN, "v2").measure()
        assert m.error and "answered 400: parse error at char 3" in m.error
    with pytest.raises(Exception) as e:
        gates.PrometheusSource("prometheus:9090", FQDN, "v2")
    assert "not an http(s) URL" in str(e.value)


def test_webhook_checks():
    with Webhook(204) as ok, Webhook(418) as teapot:
        c = gates.call_webhook(ok.url, "rollout", {"canary": "v2"})
        assert c.ok and ok.calls == [{"canary": "v2", "type": "rollout"}]
        c = gates.call_webhook(teapot.url, "pre-rollout", {})
        assert not c.ok and "answered 418" in c.message
    c = gates.call_webhook("http://127.0.0.1:1/hook", "rollout", {}, timeout=1)
    assert not c.ok and "127.0.0.1:1" in c.message


def test_sidecar_pods():
    pods = [
        {"metadata": {"name": "a"}, "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]},
         "status": {"phase": "Running"}},
        {"metadata": {"name": "b"}, "spec": {"initContainers": [{"name": "istio-proxy"}], "containers": [{"name": "x"}]},
         "status": {"phase": "Running"}},
        {"metadata": {"name": "c"}, "spec": {"containers": [{"name": "app"}]}, "status": {"phase": "Running"}},
        {"metadata": {"name": "d"}, "spec": {"containers": [{"name": "istio-proxy"}]}, "status": {"phase": "Pending"}},
    ]
    assert gates.sidecar_pods(pods) == ["a", "b"]


def test_proxy_admin_addresses_read_like_proxy_status():
    """A proxy given twice would have its requests counted twice; no port means 15000."""
    from meshctl.canary.gates import EnvoySource

    src = EnvoySource(["127.0.0.1", "127.0.0.1:15000", "http://[::1]:15001/", "[::1]:15001"],
                      "reviews.default.svc.cluster.local", "v2")
    assert src.addresses == ["127.0.0.1:15000", "[::1]:15001"]


def test_a_per_version_service_is_read_from_its_own_clusters_on_sidecars_and_waypoints():
    """An HTTPRoute's canary is a Service (reviews-v2): Istio names its clusters without a subset,
    `outbound|PORT||FQDN` on a sidecar and `inbound-vip|PORT|http|FQDN` on a waypoint."""
    canary = "reviews-v2.default.svc.cluster.local"
    counters = {
        f"cluster.outbound|9080||{canary}.upstream_rq_2xx": 90,
        f"cluster.outbound|9080||{canary}.upstream_rq_5xx": 4,
        f"cluster.inbound-vip|9080|http|{canary}.upstream_rq_2xx": 10,
        f"cluster.inbound-vip|9080|tcp|{canary}.upstream_rq_2xx": 1000,        # not HTTP
        f"cluster.inbound-vip|9080|http/v2|{canary}.upstream_rq_5xx": 1000,    # a subset of it
        f"cluster.outbound|9080|v2|{canary}.upstream_rq_5xx": 1000,
        f"cluster.outbound|9080||reviews-v1.default.svc.cluster.local.upstream_rq_5xx": 1000,
        f"cluster.outbound|9080||{FQDN}.upstream_rq_5xx": 1000,
    }
    assert gates.reading_from_stats(counters, "", canary).counters == {"2xx": 100, "5xx": 4}
    import re

    flt = re.compile(gates.stats_filter("", canary))
    assert [n for n in counters if flt.search(n)] == list(counters)[:3]


def test_prometheus_selects_a_per_version_service_by_its_name_alone():
    src = gates.PrometheusSource("http://prometheus:9090", "reviews-v2.default.svc.cluster.local", None)
    q = src.queries("60s")
    assert 'destination_service="reviews-v2.default.svc.cluster.local"' in q["requests"]
    assert all("destination_version" not in x for x in q.values())
    assert "destination_version" not in src.describe()

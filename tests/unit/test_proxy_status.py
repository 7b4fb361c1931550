"""proxy-status model: xDS state, status precedence, certificates, endpoints, discovery (no I/O)."""
from __future__ import annotations

import datetime as dt

import pytest

from meshctl.errors import InputError
from meshctl.proxy import report
from meshctl.proxy.admin import Histogram, parse_address, parse_stats
from meshctl.proxy.status import (ProxyTarget, human_duration, proxy_kind, summarize, summarize_ztunnel,
                                  targets_from_pods, xds_states)

NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.timezone.utc)
T = ProxyTarget(name="p", address="127.0.0.1:15000")
INFO = {"version": "1.40.0", "metadata": {}}


def files_stats(**over):
    s = {"server.state": 0,
         "cluster_manager.cds.update_attempt": 1, "cluster_manager.cds.update_success": 1,
         "cluster_manager.cds.update_rejected": 0, "cluster_manager.cds.update_failure": 0,
         "cluster_manager.cds.version_text": "7",
         "listener_manager.lds.update_attempt": 1, "listener_manager.lds.update_success": 1,
         "listener_manager.lds.update_rejected": 0, "listener_manager.lds.update_failure": 0,
         "listener_manager.lds.version_text": "7",
         "cluster.outbound|80||a.ns.svc.cluster.local.version_text": "7",
         "cluster.outbound|80||a.ns.svc.cluster.local.update_success": 1,
         "cluster.outbound|80||a.ns.svc.cluster.local.update_rejected": 0,
         "cluster.outbound|80||a.ns.svc.cluster.local.membership_healthy": 2,
         "cluster.outbound|80||a.ns.svc.cluster.local.membership_total": 3,
         "cluster.static.membership_healthy": 1, "cluster.static.membership_total": 1,
         "http.outbound_0.0.0.0_80.rds.80.version_text": "7",
         "http.outbound_0.0.0.0_80.rds.80.update_success": 1,
         "cluster_manager.warming_clusters": 0, "listener_manager.total_listeners_warming": 0}
    s.update(over)
    return s


def certs(*expirations, valid_from="2026-01-01T00:00:00Z"):
    return {"certificates": [{"cert_chain": [
        {"path": f"/c{i}.pem", "serial_number": "0a", "subject_alt_names": [{"uri": f"spiffe://td/ns/x/sa/{i}"}],
         "valid_from": valid_from, "expiration_time": e}]} for i, e in enumerate(expirations)]}


def test_synced_file_based_proxy():
    st = summarize(T, INFO, None, files_stats(), certs("2026-03-01T00:00:00Z"), now=NOW)
    assert st.status == "SYNCED" and st.healthy and st.reasons == []
    assert {k: (x.state, x.version) for k, x in st.xds.items()} == {
        "CDS": ("SYNCED", "7"), "LDS": ("SYNCED", "7"), "EDS": ("SYNCED", "7"), "RDS": ("SYNCED", "7")}
    assert st.control_plane["type"] == "files"
    assert (st.endpoints["healthy"], st.endpoints["total"]) == (3, 4)
    assert st.endpoints["clusters"][0] == {"cluster": "outbound|80||a.ns.svc.cluster.local", "healthy": 2, "total": 3}
    assert st.state == "LIVE" and st.ready is True
    assert st.cert_expiry == "2026-03-01T00:00:00Z" and st.warnings == []


def test_rejected_update_is_stale_with_reason():
    st = summarize(T, INFO, None, files_stats(**{"cluster_manager.cds.update_rejected": 2}), {}, now=NOW)
    assert st.status == "STALE" and not st.healthy
    assert st.reasons == ["CDS 2 rejected update(s) since start, at version 7"]
    assert st.xds["CDS"].cell() == "STALE (7)"


def test_file_parse_failure_is_stale_but_grpc_stream_failure_is_not():
    st = summarize(T, INFO, None, files_stats(**{"listener_manager.lds.update_failure": 1}), {}, now=NOW)
    assert st.status == "STALE" and "LDS 1 unreadable update(s)" in st.reasons[0]
    grpc = files_stats(**{"listener_manager.lds.update_failure": 4, "control_plane.connected_state": 1})
    st = summarize(T, INFO, None, grpc, {}, now=NOW)
    assert st.status == "SYNCED" and st.control_plane["connected"] is True


def test_eds_rejection_names_the_cluster():
    st = summarize(T, INFO, None, files_stats(**{"cluster.outbound|80||a.ns.svc.cluster.local.update_rejected": 1}),
                   {}, now=NOW)
    assert st.status == "STALE"
    assert st.reasons[0].startswith("EDS outbound|80||a.ns.svc.cluster.local: 1 rejected")


def test_not_connected_wins_over_not_ready():
    stats = {"control_plane.connected_state": 0, "server.state": 2,
             "cluster_manager.cds.update_attempt": 3, "cluster_manager.cds.update_success": 0,
             "cluster_manager.cds.version_text": "", "cluster_manager.cds.init_fetch_timeout": 1}
    st = summarize(T, INFO, None, stats, {}, now=NOW)
    assert st.status == "NOT CONNECTED"
    assert st.reasons[0] == "not connected to the control plane"
    assert "CDS initial fetch timed out" in st.reasons
    assert "not ready (state PRE_INITIALIZING)" in st.reasons
    assert st.xds["CDS"].state == "NOT SENT" and st.xds["LDS"].state == "-"


def test_not_ready_and_warming():
    st = summarize(T, INFO, None, files_stats(**{"server.state": 1}), {}, now=NOW)
    assert st.status == "NOT READY" and st.reasons == ["not ready (state DRAINING)"]
    st = summarize(T, INFO, None, files_stats(**{"cluster_manager.warming_clusters": 2}), {}, now=NOW)
    assert st.status == "STALE" and st.reasons == ["2 cluster(s) warming (update not applied yet)"]


def test_static_proxy():
    st = summarize(T, INFO, (True, "LIVE"), {"server.state": 0, "cluster.local.membership_total": 1,
                                             "cluster.local.membership_healthy": 0}, {}, now=NOW)
    assert st.status == "STATIC" and st.healthy
    assert st.warnings == ["static configuration only (no xDS)", "no healthy endpoint in local"]
    assert all(x.state == "-" for x in st.xds.values())


def test_certificate_expiry_warning_and_failure():
    soon = summarize(T, INFO, None, files_stats(), certs("2026-01-10T14:30:00Z", "2027-01-01T00:00:00Z"), now=NOW)
    assert soon.healthy and soon.cert_seconds_left == 9000
    assert soon.warnings == ["certificate spiffe://td/ns/x/sa/0 expires in 2h30m"]
    assert report.cert_cell(soon) == "2h30m ‼"
    gone = summarize(T, INFO, None, files_stats(), certs("2026-01-10T11:00:00Z"), now=NOW)
    assert not gone.healthy and gone.status == "SYNCED"
    assert gone.reasons == ["certificate spiffe://td/ns/x/sa/0 expired 1h00m ago"]
    assert report.cert_cell(gone) == "EXPIRED"


def test_a_short_lived_certificate_warns_only_once_its_rotation_is_overdue():
    # Istio's workload certificates live 24 hours and are replaced at about half of that
    fresh = summarize(T, INFO, None, files_stats(), certs("2026-01-11T02:00:00Z", valid_from="2026-01-10T02:00:00Z"),
                      now=NOW)
    assert fresh.healthy and fresh.warnings == [] and report.cert_cell(fresh) == "14h00m"
    overdue = summarize(T, INFO, None, files_stats(),
                        certs("2026-01-10T19:00:00Z", valid_from="2026-01-09T19:00:00Z"), now=NOW)
    assert overdue.warnings == ["certificate spiffe://td/ns/x/sa/0 expires in 7h00m"]
    # the local mesh's one-hour leaves: 40 minutes left is on schedule, 10 minutes is not
    local = summarize(T, INFO, None, files_stats(), certs("2026-01-10T12:40:00Z", valid_from="2026-01-10T11:40:00Z"),
                      now=NOW)
    assert local.warnings == []
    late = summarize(T, INFO, None, files_stats(), certs("2026-01-10T12:10:00Z", valid_from="2026-01-10T11:10:00Z"),
                     now=NOW)
    assert late.warnings == ["certificate spiffe://td/ns/x/sa/0 expires in 10m"]


def test_a_certificate_used_by_many_tls_contexts_is_listed_and_warned_about_once():
    entry = certs("2026-01-10T14:00:00Z")["certificates"][0]
    st = summarize(T, INFO, None, files_stats(), {"certificates": [entry] * 11}, now=NOW)
    assert len(st.certificates) == 1
    assert st.warnings == ["certificate spiffe://td/ns/x/sa/0 expires in 2h00m"]


def test_istio_version_preferred():
    st = summarize(T, {"version": "1.32.3", "metadata": {"ISTIO_VERSION": "1.24.1"}}, None, files_stats(), {}, now=NOW)
    assert (st.version, st.envoy_version) == ("1.24.1", "1.32.3")


def test_ztunnel_summary():
    dump = {"workloads": [{"name": "a"}, {"name": "b"}], "services": [{"name": "s"}],
            "certificates": [{"identity": "spiffe://td/ns/x/sa/a", "state": "Available",
                              "certChain": [{"expirationTime": "2026-01-10T13:00:00Z", "serialNumber": "1"}]}]}
    st = summarize_ztunnel(ProxyTarget(name="ztunnel-x.istio-system", kind="ztunnel"), dump, now=NOW)
    assert st.status == "SYNCED" and st.healthy
    assert st.warnings == ["ztunnel: 2 workload(s), 1 service(s)", "certificate spiffe://td/ns/x/sa/a expires in 1h00m"]
    empty = summarize_ztunnel(ProxyTarget(name="z", kind="ztunnel"), {}, now=NOW)
    assert empty.status == "STALE" and not empty.healthy


def test_human_duration():
    assert [human_duration(s) for s in (30, 600, 3 * 3600 + 60, 86400 + 7200, 90 * 86400)] == [
        "30s", "10m", "3h01m", "1d2h", "90d"]


def _pod(name, containers=(), init=(), labels=None, phase="Running", ns="default"):
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"containers": [{"name": c} for c in containers], "initContainers": list(init)},
            "status": {"phase": phase}}


def test_proxy_kinds():
    assert proxy_kind(_pod("a", ["app", "istio-proxy"])) == "sidecar"
    assert proxy_kind(_pod("a", ["app"], [{"name": "istio-proxy", "restartPolicy": "Always"}])) == "sidecar"
    assert proxy_kind(_pod("a", ["app"], [{"name": "istio-init"}])) is None
    assert proxy_kind(_pod("a", ["app"], [{"name": "istio-proxy"}])) is None  # not a native sidecar
    assert proxy_kind(_pod("z", ["istio-proxy"], labels={"app": "ztunnel"})) == "ztunnel"
    assert proxy_kind(_pod("z", ["ztunnel"])) == "ztunnel"
    assert proxy_kind(_pod("w", ["istio-proxy"], labels={"gateway.istio.io/managed": "istio.io-mesh-controller"})) \
        == "waypoint"
    assert proxy_kind(_pod("g", ["istio-proxy"], labels={"istio": "ingressgateway"})) == "gateway"
    assert proxy_kind(_pod("plain", ["nginx"])) is None


def test_targets_from_pods():
    pods = [_pod("b", ["istio-proxy"], ns="shop"), _pod("a", ["istio-proxy"], phase="Pending", ns="shop"),
            _pod("c", ["nginx"], ns="shop")]
    targets = targets_from_pods(pods)
    assert [(t.name, t.pod, t.namespace, t.problem) for t in targets] == [
        ("a.shop", "a", "shop", "pod is Pending"), ("b.shop", "b", "shop", None)]


def test_parse_address():
    assert parse_address("127.0.0.1:15000") == "127.0.0.1:15000"
    assert parse_address("http://envoy.local:9901/") == "envoy.local:9901"
    assert parse_address("[::1]:15000") == "[::1]:15000"
    for bad in ("nonsense", "host:", ":80", "h:99999", "a b:1"):
        with pytest.raises(InputError):
            parse_address(bad)


def test_parse_stats_quantiles_and_buckets():
    quantiles = {"stats": [{"name": "cluster.a.upstream_rq_2xx", "value": 12},
                           {"name": "cluster.a.version_text", "value": "v3"},
                           {"histograms": {"supported_quantiles": [50, 99, 99.9], "computed_quantiles": [
                               {"name": "cluster.a.upstream_rq_time",
                                "values": [{"cumulative": 4, "interval": None}, {"cumulative": 9.5, "interval": 8},
                                           {"cumulative": 10, "interval": 10}]}]}}]}
    s = parse_stats(quantiles)
    assert s["cluster.a.upstream_rq_2xx"] == 12 and s["cluster.a.version_text"] == "v3"
    h = s["cluster.a.upstream_rq_time"]
    assert isinstance(h, Histogram)
    assert h.quantiles == {"p50": 4, "p99": 9.5, "p99.9": 10}
    assert h.interval == {"p50": None, "p99": 8, "p99.9": 10}
    buckets = {"stats": [{"histograms": [{"name": "cluster.a.upstream_rq_time", "buckets": [
        {"upper_bound": 0.5, "cumulative": 1}, {"upper_bound": 1, "interval": 0, "cumulative": 3}]}]}]}
    assert parse_stats(buckets)["cluster.a.upstream_rq_time"].buckets == [(0.5, 1), (1, 3)]
    with pytest.raises(ValueError):
        parse_stats({"nope": 1})


def test_status_rows_and_summary():
    ok = summarize(T, INFO, None, files_stats(), {}, now=NOW)
    bad = summarize(ProxyTarget(name="q", address="h:1"), INFO, None,
                    files_stats(**{"cluster_manager.cds.update_rejected": 1}), {}, now=NOW)
    rows = report.status_rows([ok, bad])
    assert rows[0] == ["NAME", "VERSION", "STATUS", "CDS", "LDS", "EDS", "RDS", "CERT EXPIRY", "ENDPOINTS", "REASON"]
    assert rows[1] == ["p", "1.40.0", "SYNCED", "SYNCED (7)", "SYNCED (7)", "SYNCED (7)", "SYNCED (7)", "-", "3/4", "-"]
    assert rows[2][2:4] == ["STALE", "STALE (7)"]
    assert report.summary_line([ok, bad]) == "2 proxies: 1 synced, 1 stale (1 healthy)"
    d = bad.to_dict()
    assert d["xds"]["CDS"]["rejected"] == 1 and d["healthy"] is False


def test_control_plane_link_from_the_ads_cluster_when_control_plane_stats_are_filtered():
    info = dict(INFO, ads_cluster="xds-grpc", dynamic=True, stats_filtered=True)
    base = {k: v for k, v in files_stats().items() if k.startswith(("cluster_manager.", "listener_manager.", "server."))}
    up = summarize(T, info, None, dict(base, **{"cluster.xds-grpc.upstream_cx_active": 1}), {}, now=NOW)
    assert up.status == "SYNCED" and up.control_plane == {"type": "grpc", "connected": True, "identifier": None}
    assert (up.xds["EDS"].state, up.xds["RDS"].state) == ("?", "?")
    down = summarize(T, info, None, dict(base, **{"cluster.xds-grpc.upstream_cx_active": 0}), {}, now=NOW)
    assert down.status == "NOT CONNECTED"
    unknown = summarize(T, info, None, base, {}, now=NOW)
    assert unknown.status == "SYNCED" and unknown.control_plane["connected"] is None
    assert "control-plane connection not in this proxy's stats" in unknown.warnings


def test_listener_error_state_in_the_reason():
    stats = files_stats(**{"listener_manager.lds.update_rejected": 1})
    dump = {"configs": [{"name": "l1", "active_state": {}},
                        {"error_state": {"failed_configuration": {"name": "bad"},
                                         "details": "goo.gle/debugstr  \nstat_prefix: \"x\"\n: route_specifier is required"}}]}
    st = summarize(T, INFO, None, stats, {}, listeners_dump=dump, now=NOW)
    assert st.reasons == ['LDS 1 rejected update(s) since start, at version 7; listener bad: stat_prefix: "x" : '
                          'route_specifier is required']
    st = summarize(T, INFO, None, stats, {}, listeners_dump={"configs": [{"name": "l1", "active_state": {}}]}, now=NOW)
    assert st.status == "STALE"
    assert st.reasons[0].endswith("no listener reports an error now (a later update may have fixed it)")

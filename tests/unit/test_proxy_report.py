"""proxy-status and proxy-config reports in every format (golden files under tests/golden/proxy/)."""
from __future__ import annotations

import datetime as dt

import pytest

from meshctl.proxy import report
from meshctl.proxy.config import LogLevels, Query
from meshctl.proxy.status import ProxyTarget, StatusResult, summarize, summarize_ztunnel, unreachable
from tests.reports import console, render

NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.timezone.utc)
ISTIO = {"version": "1.40.0", "metadata": {"ISTIO_VERSION": "1.24.1"}, "ads_cluster": "xds-grpc", "dynamic": True,
         "stats_filtered": True}
FILES = {"version": "1.40.0", "metadata": {}, "dynamic": True}
STATIC = {"version": "1.40.0", "metadata": {}}


def _xds(version="7", **over):
    s = {"server.state": 0,
         "cluster_manager.cds.update_attempt": 3, "cluster_manager.cds.update_success": 3,
         "cluster_manager.cds.version_text": version,
         "listener_manager.lds.update_attempt": 3, "listener_manager.lds.update_success": 3,
         "listener_manager.lds.version_text": version,
         "cluster.outbound|9080||reviews.shop.svc.cluster.local.version_text": version,
         "cluster.outbound|9080||reviews.shop.svc.cluster.local.update_success": 2,
         "cluster.outbound|9080||reviews.shop.svc.cluster.local.membership_healthy": 2,
         "cluster.outbound|9080||reviews.shop.svc.cluster.local.membership_total": 3,
         "http.outbound_0.0.0.0_9080.rds.9080.version_text": version,
         "http.outbound_0.0.0.0_9080.rds.9080.update_success": 2}
    s.update(over)
    return s


def _certs(expires: str, san: str = "spiffe://cluster.local/ns/shop/sa/reviews") -> dict:
    return {"certificates": [{"cert_chain": [{"path": "/etc/certs/cert-chain.pem", "serial_number": "1a2b",
                                              "subject_alt_names": [{"uri": san}], "valid_from": "2026-01-09T12:00:00Z",
                                              "expiration_time": expires}],
                              "ca_cert": [{"path": "/etc/certs/root-cert.pem", "serial_number": "01",
                                           "subject_alt_names": [], "valid_from": "2025-01-01T00:00:00Z",
                                           "expiration_time": "2035-01-01T00:00:00Z"}]}]}


def status_result() -> StatusResult:
    istio = {"server.state": 0, "cluster_manager.cds.update_attempt": 4, "cluster_manager.cds.update_success": 4,
             "cluster_manager.cds.version_text": "2026-01-10T11:58:02Z/41",
             "listener_manager.lds.update_attempt": 4, "listener_manager.lds.update_success": 4,
             "listener_manager.lds.version_text": "2026-01-10T11:58:02Z/41",
             "cluster.xds-grpc.upstream_cx_active": 1}
    rows = [
        summarize(ProxyTarget("productpage-v1-6b7f.shop", "productpage-v1-6b7f.shop:15000", "shop", kind="sidecar"),
                  ISTIO, None, istio, _certs("2026-01-11T08:50:00Z"), now=NOW),
        summarize(ProxyTarget("reviews-v1-5c8d.shop", "reviews-v1-5c8d.shop:15000", "shop", kind="sidecar"),
                  ISTIO, None, dict(istio, **{"cluster.xds-grpc.upstream_cx_active": 0}),
                  _certs("2026-01-11T12:00:00Z"), now=NOW),
        summarize(ProxyTarget("ratings-v1-9f2a.shop", "ratings-v1-9f2a.shop:15000", "shop", kind="sidecar"),
                  FILES, None, _xds(**{"cluster_manager.cds.update_rejected": 1, "cluster_manager.warming_clusters": 1,
                                       "cluster.outbound|9080||reviews.shop.svc.cluster.local.membership_healthy": 0}),
                  _certs("2026-01-09T12:00:00Z"), now=NOW),
        summarize(ProxyTarget("10.0.0.5:15000", "10.0.0.5:15000"), FILES, None, _xds(**{"server.state": 3}), {},
                  now=NOW),
        summarize(ProxyTarget("10.0.0.6:15000", "10.0.0.6:15000"), FILES, None, _xds("v12"), {}, now=NOW),
        summarize(ProxyTarget("10.0.0.7:15000", "10.0.0.7:15000"), STATIC, None,
                  {"server.state": 0, "cluster.static.membership_healthy": 1, "cluster.static.membership_total": 1},
                  {}, now=NOW),
        summarize_ztunnel(ProxyTarget("ztunnel-x7k2p.istio-system", "ztunnel-x7k2p.istio-system:15000",
                                      "istio-system", kind="ztunnel"),
                          {"workloads": [{"name": "a"}, {"name": "b"}], "services": [{"name": "s"}],
                           "certificates": [{"identity": "spiffe://cluster.local/ns/shop/sa/a",
                                             "certChain": [{"expirationTime": "2026-01-11T00:00:00Z",
                                                            "serialNumber": "7"}]}]}, now=NOW),
        unreachable(ProxyTarget("details-v1-0c1d.shop", None, "shop", kind="sidecar"), "pod is Pending"),
        unreachable(ProxyTarget("10.0.0.8:15000", "10.0.0.8:15000"), "connection refused"),
    ]
    return StatusResult(rows)


@pytest.mark.parametrize("fmt", ["table", "wide", "json", "yaml"])
def test_status_report(golden, fmt):
    out, err = render(report.write, status_result(), fmt)
    golden(f"proxy/status.{fmt}", out + (f"--- stderr\n{err}" if err else ""))


def test_status_statuses_cover_every_kind():
    statuses = [r.status for r in status_result().rows]
    assert statuses == ["SYNCED", "NOT CONNECTED", "STALE", "NOT READY", "SYNCED", "STATIC", "SYNCED",
                        "UNREACHABLE", "UNREACHABLE"]


def test_no_proxies_found_is_a_warning_and_no_table():
    out, err = render(report.write, StatusResult([], searched="namespace empty"), "table")
    assert (out, err) == ("", "warning: no mesh proxies found in namespace empty\n")
    out, err = render(report.write, StatusResult([], searched="any namespace"), "json")
    assert out == '{\n  "proxies": [],\n  "summary": {\n    "total": 0,\n    "healthy": 0\n  }\n}\n'


def test_colour_table_styles_the_status():
    import io

    from rich.console import Console

    out = Console(file=io.StringIO(), width=200, force_terminal=True, color_system="standard")
    report.write(status_result(), "table", out, console())
    text = out.file.getvalue()
    assert "\x1b[" in text and "NOT CONNECTED" in text and "productpage-v1-6b7f.shop" in text


# --- proxy-config -------------------------------------------------------------------------------

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
DR = "/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews"
VS = "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews"


def _dump() -> dict:
    clusters = [{"name": "outbound|9080|v1|reviews.shop.svc.cluster.local", "type": "EDS",
                 "metadata": {"filter_metadata": {"istio": {"config": DR}}}},
                {"name": "outbound|9080|v2|reviews.shop.svc.cluster.local", "type": "EDS",
                 "metadata": {"filter_metadata": {"istio": {"config": DR}}}},
                {"name": "inbound|9080||", "type": "ORIGINAL_DST"},
                {"name": "BlackHoleCluster", "type": "STATIC"}]
    listener = {"name": "virtualOutbound", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
                "filter_chains": [
                    {"filter_chain_match": {"destination_port": 9080},
                     "filters": [{"name": "envoy.filters.network.http_connection_manager",
                                  "typed_config": {"@type": HCM, "rds": {"route_config_name": "9080"}}}]}],
                "default_filter_chain": {"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                                      "typed_config": {"@type": TCP, "cluster": "PassthroughCluster"}}]}}
    route = {"name": "9080", "virtual_hosts": [
        {"name": "reviews.shop.svc.cluster.local:9080",
         "domains": ["reviews.shop.svc.cluster.local", "reviews", "reviews.shop.svc", "reviews.shop", "10.0.0.7"],
         "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "outbound|9080|v1|reviews.shop.svc.cluster.local"},
                     "metadata": {"filter_metadata": {"istio": {"config": VS}}}}]}]}
    secrets = [{"name": "default", "secret": {"name": "default", "tls_certificate": {
                   "certificate_chain": {"filename": "/etc/certs/cert-chain.pem"}}}},
               {"name": "ROOTCA", "secret": {"name": "ROOTCA", "validation_context": {
                   "trusted_ca": {"filename": "/etc/certs/root-cert.pem"}}}}]
    boot = {"node": {"id": "sidecar~10.0.0.9~reviews-v1-5c8d.shop~shop.svc.cluster.local", "cluster": "reviews.shop",
                     "metadata": {"ISTIO_VERSION": "1.24.1"}},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
            "dynamic_resources": {"ads_config": {"api_type": "GRPC", "grpc_services": [
                {"envoy_grpc": {"cluster_name": "xds-grpc"}}]}, "cds_config": {"ads": {}}, "lds_config": {"ads": {}}},
            "static_resources": {"clusters": [{"name": "xds-grpc"}, {"name": "agent"}]}}
    return {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": boot},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "dynamic_active_clusters": [{"cluster": c} for c in clusters]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "dynamic_listeners": [{"name": "virtualOutbound", "active_state": {"listener": listener}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "dynamic_route_configs": [{"route_config": route}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump", "dynamic_active_secrets": secrets}]}


CLUSTERS = {"cluster_statuses": [{"name": "outbound|9080|v1|reviews.shop.svc.cluster.local", "host_statuses": [
    {"address": {"socket_address": {"address": "10.0.0.12", "port_value": 9080}},
     "health_status": {"eds_health_status": "HEALTHY"}},
    {"address": {"socket_address": {"address": "10.0.0.11", "port_value": 9080}},
     "health_status": {"eds_health_status": "UNHEALTHY", "failed_outlier_check": True}}]}]}
ANSWERS = {"dump": _dump(), "clusters": CLUSTERS, "certs": _certs("2035-01-01T00:00:00Z"),
           "server_info": {"version": "abc/1.40.0/Clean/RELEASE/BoringSSL"}}
SECTIONS = ("clusters", "listeners", "routes", "endpoints", "secrets", "bootstrap")


@pytest.mark.parametrize("fmt", ["table", "json", "yaml"])
@pytest.mark.parametrize("section", SECTIONS)
def test_config_report(golden, section, fmt):
    out, err = render(report.write, Query(section).result(ANSWERS), fmt)
    golden(f"proxy/config-{section}.{fmt}", out + (f"--- stderr\n{err}" if err else ""))


def test_config_filters_apply_to_every_format():
    result = Query("clusters", subset="v2").checked().result(ANSWERS)
    assert [c["name"] for c in result.data] == ["outbound|9080|v2|reviews.shop.svc.cluster.local"]
    assert [r[2] for r in result.rows] == ["SUBSET", "v2"]
    result = Query("endpoints", status="unhealthy").checked().result(ANSWERS)
    assert [r[0] for r in result.rows] == ["ENDPOINT", "10.0.0.11:9080"]
    assert len(result.data[0]["host_statuses"]) == 1


def test_no_secrets_is_said_on_stderr():
    out, err = render(report.write, Query("secrets").result({"dump": {"configs": []}}), "table")
    assert (out, err) == ("", "No active or warming secrets found.\n")
    out, _ = render(report.write, Query("secrets").result({"dump": {"configs": []}}), "json")
    assert out == "[]\n"


@pytest.mark.parametrize("fmt", ["table", "json", "yaml"])
def test_log_levels_report(golden, fmt):
    out, err = render(report.write, LogLevels({"upstream": "debug", "admin": "info", "http": "warning"}), fmt)
    golden(f"proxy/log.{fmt}", out + (f"--- stderr\n{err}" if err else ""))

"""proxy-config model: istioctl-style rows from Envoy config dumps (no I/O)."""
from __future__ import annotations

import datetime as dt
import shutil

import pytest

from meshctl.proxy import config

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def test_cluster_rows_parse_istio_names_and_sort():
    clusters = [{"name": "outbound|9080|v2|reviews.default.svc.cluster.local", "type": "EDS"},
                {"name": "BlackHoleCluster", "type": "STATIC"},
                {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "type": "EDS",
                 "metadata": {"filter_metadata": {"istio": {
                     "config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}}},
                {"name": "inbound|9080||", "type": "ORIGINAL_DST"}]
    dump = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                         "dynamic_active_clusters": [{"cluster": c} for c in clusters]}]}
    rows = config.cluster_rows(config.clusters_section(dump))
    assert rows == [
        ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"],
        ["", "9080", "-", "inbound", "ORIGINAL_DST", ""],
        ["BlackHoleCluster", "-", "-", "-", "STATIC", ""],
        ["reviews.default.svc.cluster.local", "9080", "v1", "outbound", "EDS", "reviews.default"],
        ["reviews.default.svc.cluster.local", "9080", "v2", "outbound", "EDS", ""],
    ]
    assert len(config.cluster_rows(config.clusters_section(dump), subset="v2")) == 2
    assert len(config.cluster_rows(config.clusters_section(dump), direction="inbound")) == 2


def test_listener_matches_and_destinations():
    listener = {"name": "virtualOutbound", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
                "filter_chains": [
                    {"filter_chain_match": {"prefix_ranges": [{"address_prefix": "10.0.0.7", "prefix_len": 32}],
                                            "destination_port": 443},
                     "filters": [{"name": "envoy.filters.network.tcp_proxy",
                                  "typed_config": {"@type": TCP, "cluster": "outbound|443||api.ns.svc.cluster.local"}}]},
                    {"filter_chain_match": {"transport_protocol": "tls", "server_names": ["a.example"],
                                            "application_protocols": ["istio-peer-exchange", "istio"]},
                     "filters": [{"name": "envoy.filters.network.http_connection_manager",
                                  "typed_config": {"@type": HCM, "rds": {"route_config_name": "9080"}}}]}],
                "default_filter_chain": {"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                                      "typed_config": {"@type": TCP, "cluster": "PassthroughCluster"}}]}}
    rows = config.listener_rows([listener])
    assert rows[0] == ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]
    assert sorted(rows[1:]) == sorted([
        ["0.0.0.0", "15001", "Addr: 10.0.0.7/32:443", "Cluster: outbound|443||api.ns.svc.cluster.local"],
        ["0.0.0.0", "15001", "SNI: a.example; Trans: tls; App: TCP TLS", "Route: 9080"],
        ["0.0.0.0", "15001", "ALL", "PassthroughCluster"],
    ])
    inline = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "route_config": {"virtual_hosts": [{"domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]}}}]}
    assert config.describe_destination(inline["filters"]) == "Cluster: backend"
    blackhole = [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": TCP, "cluster": "BlackHoleCluster"}}]
    assert config.describe_destination(blackhole) == "Non-HTTP/Non-TCP"


def test_route_rows():
    rc = {"name": "9080", "virtual_hosts": [
        {"name": "reviews.default.svc.cluster.local:9080",
         "domains": ["reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local:9080", "reviews",
                     "reviews:9080", "reviews.default.svc", "reviews.default", "10.0.0.7", "10.0.0.7:9080"],
         "routes": [{"match": {"prefix": "/api"}, "route": {"cluster": "x"},
                     "metadata": {"filter_metadata": {"istio": {
                         "config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}}},
                    {"match": {"safe_regex": {"regex": "/v[0-9]+"}}, "route": {"cluster": "x"}},
                    {"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}]},
        {"name": "block_all", "domains": ["*"], "routes": []}]}
    rows = config.route_rows([rc])
    assert rows == [["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
                    ["9080", "reviews.default.svc.cluster.local:9080", "reviews, reviews.default + 1 more...",
                     "/api*", "reviews.default"],
                    ["9080", "reviews.default.svc.cluster.local:9080", "reviews, reviews.default + 1 more...",
                     "regex /v[0-9]+", ""],
                    ["9080", "block_all", "*", "/*", "404"]]
    assert config.route_rows([rc], name="other") == rows[:1]


def test_endpoint_rows():
    clusters = {"cluster_statuses": [{"name": "outbound|80||a", "host_statuses": [
        {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 80}},
         "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": True}},
        {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}, "health_status": {}},
        {"address": {"socket_address": {"address": "10.0.0.3", "port_value": 80}},
         "health_status": {"failed_active_health_check": True}}]}]}
    rows = config.endpoint_rows(config.endpoint_section(clusters))
    assert rows == [["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
                    ["10.0.0.1:80", "HEALTHY", "OK", "outbound|80||a"],
                    ["10.0.0.2:80", "HEALTHY", "FAILED", "outbound|80||a"],
                    ["10.0.0.3:80", "UNHEALTHY", "OK", "outbound|80||a"]]
    assert len(config.endpoint_rows(config.endpoint_section(clusters), status="unhealthy")) == 2
    assert config.endpoint_section(clusters, cluster="nomatch") == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_secret_rows_decode_inline_pem(tmp_path):
    from tests.envoy.envoyproc import make_cert

    cert, _ = make_cert(tmp_path, dt.timedelta(days=1), name="inline")
    pem = cert.read_text()
    dump = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                         "dynamic_active_secrets": [{"name": "default", "secret": {
                             "name": "default", "tls_certificate": {"certificate_chain": {"inline_string": pem}}}}],
                         "dynamic_warming_secrets": [{"name": "ROOTCA", "secret": {"name": "ROOTCA"}}]}]}
    rows = config.secret_rows(config.secrets_section(dump))
    assert rows[0] == ["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE"]
    assert rows[1][:5] == ["default", "Cert Chain", "ACTIVE", "true", "1a2b"]
    assert rows[2] == ["ROOTCA", "", "WARMING", "false", "", "", ""]
    import base64

    as_bytes = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                             "dynamic_active_secrets": [{"name": "default", "secret": {"name": "default",
                                 "validation_context": {"trusted_ca": {
                                     "inline_bytes": base64.b64encode(pem.encode()).decode()}}}}]}]}
    assert config.secret_rows(config.secrets_section(as_bytes))[1][:5] == ["default", "CA", "ACTIVE", "true", "1a2b"]
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    assert config.secret_rows(config.secrets_section(dump), now=later)[1][3] == "false"


def test_bootstrap_rows():
    boot = {"node": {"id": "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", "cluster": "a.ns",
                     "metadata": {"ISTIO_VERSION": "1.24.0"}},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
            "dynamic_resources": {"ads_config": {"api_type": "GRPC", "grpc_services": [
                {"envoy_grpc": {"cluster_name": "xds-grpc"}}]}, "cds_config": {"ads": {}}, "lds_config": {"ads": {}}},
            "static_resources": {"clusters": [{}, {}]}}
    rows = dict(tuple(r) for r in config.bootstrap_rows(boot, {"version": "abc/1.32.3/Clean/RELEASE/BoringSSL"})[1:])
    assert rows["Envoy Version"] == "1.32.3" and rows["Istio Version"] == "1.24.0"
    assert rows["ADS"] == "GRPC via xds-grpc" and rows["CDS"] == "ADS" and rows["Static Clusters"] == "2"
    assert rows["Admin Address"] == "127.0.0.1:15000"
    boot["admin"]["address"]["socket_address"]["address"] = "::1"
    rows = dict(tuple(r) for r in config.bootstrap_rows(boot, {})[1:])
    assert rows["Admin Address"] == "[::1]:15000"

"""meshctl proxy-config against real Envoy processes (started once for the module)."""
from __future__ import annotations

import datetime as dt
import json
import socket

import pytest

from tests.envoy.envoyproc import file_xds_bootstrap, make_cert, static_bootstrap, tls_bootstrap


@pytest.fixture(scope="module")
def proxy(start_envoy, tmp_path_factory):
    return start_envoy(file_xds_bootstrap(tmp_path_factory.mktemp("xds"), version="3"), name="config")


@pytest.fixture(scope="module")
def tls(start_envoy, tmp_path_factory):
    cert, key = make_cert(tmp_path_factory.mktemp("certs"), dt.timedelta(days=3))
    return start_envoy(tls_bootstrap(cert, key), name="tls")


def table(text: str) -> list[list[str]]:
    """Split plain-text table rows on runs of 3+ spaces."""
    import re

    return [re.split(r"\s{3,}", line.strip()) for line in text.splitlines() if line.strip()]


def test_clusters_table_like_istioctl(cli, proxy):
    r = cli("proxy-config", "clusters", proxy.admin)
    assert r.exit_code == 0, r
    rows = table(r.stdout)
    assert rows[0] == ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
    assert ["ratings.default.svc.cluster.local", "9080", "v1", "outbound", "STATIC"] in rows
    assert ["reviews.default.svc.cluster.local", "80", "-", "outbound", "EDS", "reviews.default"] in rows
    r = cli("proxy-config", "clusters", proxy.admin, "--fqdn", "reviews", "-o", "json")
    data = json.loads(r.stdout)
    assert [c["name"] for c in data] == ["outbound|80||reviews.default.svc.cluster.local"]
    assert data[0]["type"] == "EDS"


def test_listeners_routes_endpoints(cli, proxy):
    rows = table(cli("proxy-config", "listeners", proxy.admin).stdout)
    assert rows[0] == ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]
    assert rows[1][0] == "127.0.0.1" and rows[1][2:] == ["ALL", "Route: 80"]

    rows = table(cli("proxy-config", "routes", "--admin", proxy.admin).stdout)
    assert rows[0] == ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]
    assert rows[1][0:2] == ["80", "reviews.default.svc.cluster.local:80"]
    assert rows[1][3:] == ["/*", "reviews.default"]

    r = cli("proxy-config", "endpoints", proxy.admin, "--cluster", "reviews")
    rows = table(r.stdout)
    assert rows == [["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
                    ["127.0.0.1:9", "HEALTHY", "OK", "outbound|80||reviews.default.svc.cluster.local"],
                    ["127.0.0.2:9", "UNHEALTHY", "OK", "outbound|80||reviews.default.svc.cluster.local"]]
    r = cli("proxy-config", "endpoints", proxy.admin, "--status", "unhealthy", "-o", "yaml")
    assert r.exit_code == 0 and "127.0.0.2" in r.stdout
    assert "127.0.0.1" not in r.stdout, "--status filters the JSON/YAML output too"
    data = json.loads(cli("proxy-config", "endpoints", proxy.admin, "--status", "UNHEALTHY", "-o", "json").stdout)
    assert [[h["address"]["socket_address"]["address"] for h in c["host_statuses"]] for c in data] == [["127.0.0.2"]]
    for flag, value in (("--status", "sick"), ("--direction", "sideways")):
        r = cli("proxy-config", "endpoints" if flag == "--status" else "clusters", proxy.admin, flag, value)
        assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith(f"error: unknown {flag} '{value}'"), r
    r = cli("proxy-config", "clusters", proxy.admin, "--direction", "OUTBOUND")
    assert "outbound" in r.stdout


def test_bootstrap_and_raw_sections(cli, proxy):
    rows = dict(tuple(r) for r in table(cli("proxy-config", "bootstrap", proxy.admin).stdout)[1:])
    assert rows["Envoy Version"].startswith("1.40")
    assert rows["Node ID"] == "config"
    assert rows["CDS"].startswith("file ") and rows["CDS"].endswith("cds.json")
    r = cli("proxy-config", "bootstrap", proxy.admin, "-o", "json")
    assert set(json.loads(r.stdout)) >= {"node", "dynamic_resources", "admin"}
    r = cli("proxy-config", "routes", proxy.admin, "-o", "json")
    assert [rc["name"] for rc in json.loads(r.stdout)] == ["80"]


def test_secrets(cli, tls, proxy):
    rows = table(cli("proxy-config", "secrets", tls.admin).stdout)
    assert rows[0] == ["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE"]
    name, kind, status, valid, serial, not_after, _ = rows[1]
    assert (name, kind, status, valid, serial) == ("default", "Cert Chain", "ACTIVE", "true", "1a2b")
    expires = dt.datetime.fromisoformat(not_after.replace("Z", "+00:00"))
    assert dt.timedelta(days=2) < expires - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=3)
    r = cli("proxy-config", "secrets", proxy.admin)
    assert r.exit_code == 0 and r.stdout == "" and "No active or warming secrets found." in r.stderr


def test_log_level(cli, start_envoy):
    proxy = start_envoy(static_bootstrap(), name="logging")
    r = cli("proxy-config", "log", proxy.admin, "--level", "debug")
    assert r.exit_code == 0, r
    rows = dict(tuple(x) for x in table(r.stdout)[1:])
    assert rows["upstream"] == "debug" and rows["admin"] == "debug"
    _, text = proxy.get("/logging", method="POST")
    assert "  upstream: debug" in text
    r = cli("proxy-config", "log", proxy.admin, "--level", "error", "--logger", "upstream", "-o", "json")
    assert json.loads(r.stdout) == {"upstream": "error"}
    _, text = proxy.get("/logging", method="POST")
    assert "  upstream: error" in text and "  admin: debug" in text
    r = cli("proxy-config", "log", proxy.admin, "--level", "loud")
    assert r.exit_code == 2 and r.stderr.startswith("error: unknown log level 'loud'")
    r = cli("proxy-config", "log", proxy.admin, "--level", "info", "--logger", "nosuchlogger")
    assert r.exit_code == 2 and "no logger named 'nosuchlogger'" in r.stderr
    # istioctl's per-logger form, and levels in any case
    r = cli("proxy-config", "log", proxy.admin, "--level", "http:trace,router:INFO", "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"http": "trace", "router": "info"}, r
    _, text = proxy.get("/logging", method="POST")
    assert "  http: trace" in text and "  router: info" in text and "  admin: debug" in text
    r = cli("proxy-config", "log", proxy.admin, "--level", "http:info,nosuchlogger:info")
    assert r.exit_code == 2 and "no logger named 'nosuchlogger'; nothing was changed" in r.stderr
    assert "  http: trace" in proxy.get("/logging", method="POST")[1]
    r = cli("proxy-config", "log", proxy.admin, "--level", "WARNING", "--logger", "http", "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"http": "warning"}, r
    r = cli("proxy-config", "log", proxy.admin, "--level", "http:")
    assert r.exit_code == 2 and r.stderr.startswith("error: --level 'http:': 'http:' is not NAME:LEVEL")


def test_unreachable_proxy_is_exit_3_one_line(cli):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = cli("proxy-config", "clusters", f"127.0.0.1:{port}", "--timeout", "1")
    assert r.exit_code == 3
    assert r.stdout == ""
    assert r.stderr == f"error: proxy 127.0.0.1:{port} unreachable: connection refused (/config_dump)\n"


def test_bad_target_is_exit_2(cli):
    r = cli("proxy-config", "clusters", "--admin", "non sense")
    assert r.exit_code == 2 and r.stderr.startswith("error: invalid admin address 'non sense'")
    r = cli("proxy-config", "clusters", "--admin", "nonsense.invalid")   # a host name: port 15000
    assert r.exit_code == 3 and r.stderr == ("error: proxy nonsense.invalid:15000 unreachable: "
                                             "unknown host (/config_dump)\n"), r
    r = cli("proxy-config", "clusters")
    assert r.exit_code == 2 and r.stderr.startswith("error: missing POD_OR_ADDRESS")


def test_pod_form_through_port_forward(cli, kube_api, proxy):
    kube_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reviews-1", "namespace": "shop"},
                  "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
                  "status": {"phase": "Running"}})
    kube_api.forward_pod_port("shop", "reviews-1", 15000, int(proxy.admin.rsplit(":", 1)[1]))
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-config", "clusters", "reviews-1.shop")
    assert r.exit_code == 0, r
    assert "reviews.default.svc.cluster.local" in r.stdout
    r = cli("--kubeconfig", kube_api.kubeconfig, "-n", "shop", "proxy-config", "listeners", "reviews-1")
    assert r.exit_code == 0 and "Route: 80" in r.stdout
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-config", "clusters", "missing.shop")
    assert r.exit_code == 2, r   # a name typed wrong is an input error, as an unknown host is for canary
    assert r.stderr == "error: pod shop/missing not found\nhint: mesh pods in shop: reviews-1\n"
    r = cli("--kubeconfig", kube_api.kubeconfig, "proxy-config", "clusters", "reviews")   # the Deployment's name
    assert r.exit_code == 2 and r.stderr == ("error: pod default/reviews not found\nhint: no mesh pods in namespace "
                                             "default; check -n, or list them with 'meshctl proxy-status -A'\n"), r
    kube_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reviews-2", "namespace": "shop"},
                  "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
                  "status": {"phase": "Running"}})
    r = cli("--kubeconfig", kube_api.kubeconfig, "-n", "shop", "proxy-config", "routes", "reviews")
    assert r.exit_code == 2 and r.stderr.endswith("hint: mesh pods in shop: reviews-1, reviews-2\n"), r

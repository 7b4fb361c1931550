"""examples/bookinfo-local as a user runs it: up, curl through the gateway, Istio's own
networking samples applied unchanged, status, logs, a crashed sidecar, refusals, down.

The example is copied with its loopback addresses moved to a range of the test's own, so two test
processes never share an address."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from meshctl.local.state import State, alive
from tests.local.harness import ROOT, next_net, service, workload, write

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SAMPLES = Path(__file__).resolve().parent / "data" / "istio-bookinfo"
EXAMPLE = ROOT / "examples" / "bookinfo-local"


def relocated(source: Path, target: Path, net_from: int, net_to: int) -> Path:
    """A copy of a bookinfo-local directory with its addresses moved from 127.N.* to 127.M.*."""
    shutil.copytree(source, target)
    for f in target.glob("*.yaml"):
        f.write_text(f.read_text().replace(f"127.{net_from}.10.", f"127.{net_to}.10.")
                     .replace(f"127.{net_from}.100.", f"127.{net_to}.100."))
    return target


@pytest.fixture(scope="module")
def bookinfo(start_mesh, tmp_path_factory):
    net = next_net()
    d = relocated(EXAMPLE, tmp_path_factory.mktemp("bookinfo") / "bookinfo-local", 0, net)
    state_dir = start_mesh([d])
    st = State(state_dir)
    from meshctl.local import mesh

    data = mesh.status(state_dir)
    return {"dir": d, "state": state_dir, "st": st, "net": net, "status": data,
            "ingress": data["ingress"][0]["address"]}


def get(address: str, path: str = "/productpage", headers: dict | None = None, timeout: float = 15) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://{address}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def apply(cli, bookinfo, *paths, ok=True):
    args = ["local", "apply", "--state-dir", bookinfo["state"]]
    for p in paths:
        args += ["-f", str(p)]
    r = cli(*args)
    if ok:
        assert r.exit_code == 0, r
    return r


def restore(cli, bookinfo) -> None:
    """Back to the example's own routing (tests may run in any order, on any worker): delete
    every resource of Istio's samples, then apply the example's rules and gateway again."""
    r = cli("local", "delete", "-f", str(SAMPLES), "--state-dir", bookinfo["state"])
    assert r.exit_code == 0, r
    apply(cli, bookinfo, bookinfo["dir"] / "destination-rules.yaml", bookinfo["dir"] / "gateway.yaml")


def test_productpage_answers_json_through_the_gateway(bookinfo, cli):
    restore(cli, bookinfo)
    status, page = get(bookinfo["ingress"])
    assert status == 200
    assert page["details"]["author"] == "William Shakespeare"
    assert page["reviews"]["version"] in ("v1", "v2", "v3")
    versions = {get(bookinfo["ingress"])[1]["reviews"]["version"] for _ in range(30)}
    assert versions == {"v1", "v2", "v3"}


def test_status_json_shape(bookinfo, cli):
    r = cli("local", "status", "-o", "json", "--state-dir", bookinfo["state"])
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    names = {p["name"]: p for p in data["proxies"]}
    assert set(names) == {"productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1",
                          "bookinfo-gateway"}
    assert all(p["status"] == "SYNCED" for p in data["proxies"]), data["proxies"]
    assert names["bookinfo-gateway"]["kind"] == "gateway" and "inbound" not in names["bookinfo-gateway"]
    pp = names["productpage-v1"]
    assert pp["kind"] == "sidecar" and pp["namespace"] == "default"
    assert pp["inbound"] == f"127.{bookinfo['net']}.10.1:15006" and pp["admin"] == f"127.{bookinfo['net']}.10.1:15000"
    assert data["ingress"] == [{"gateway": "default/bookinfo-gateway", "port": 8080, "address": bookinfo["ingress"]}]


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_istio_networking_samples_apply_unchanged(bookinfo, cli, sample):
    r = apply(cli, bookinfo, SAMPLES / sample)
    assert "error" not in r.stderr
    status, page = get(bookinfo["ingress"])
    assert status == 200 and "details" in page


def test_request_routing_and_fault_injection_as_istio_io_describes(bookinfo, cli):
    restore(cli, bookinfo)
    apply(cli, bookinfo, SAMPLES / "destination-rule-all.yaml", SAMPLES / "virtual-service-all-v1.yaml")
    assert {get(bookinfo["ingress"])[1]["reviews"]["version"] for _ in range(10)} == {"v1"}
    apply(cli, bookinfo, SAMPLES / "virtual-service-reviews-test-v2.yaml")
    jason = get(bookinfo["ingress"], headers={"end-user": "jason"})[1]
    assert jason["reviews"]["version"] == "v2" and jason["reviews"]["ratings"]["ratings"]["Reviewer1"] == 5
    assert get(bookinfo["ingress"])[1]["reviews"]["version"] == "v1"
    apply(cli, bookinfo, SAMPLES / "virtual-service-ratings-test-abort.yaml")
    jason = get(bookinfo["ingress"], headers={"end-user": "jason"})[1]
    assert "error" in jason["reviews"]["ratings"] and "500" in jason["reviews"]["ratings"]["error"]
    apply(cli, bookinfo, SAMPLES / "virtual-service-ratings-test-delay.yaml")
    start = time.monotonic()
    status, jason = get(bookinfo["ingress"], headers={"end-user": "jason"})
    # productpage gives reviews 3 s and one retry; reviews waits 7 s for ratings: reviews is unavailable
    assert status == 200 and "error" in jason["reviews"] and "details" in jason
    assert time.monotonic() - start >= 5.5
    apply(cli, bookinfo, SAMPLES / "virtual-service-all-v1.yaml")


def test_logs_show_the_access_log_and_the_workload_output(bookinfo, cli):
    restore(cli, bookinfo)
    get(bookinfo["ingress"], headers={"x-request-id": "req-logs-test-1"})
    deadline = time.monotonic() + 10  # Envoy flushes access logs every 200 ms
    while True:
        r = cli("local", "logs", "productpage-v1", "--state-dir", bookinfo["state"])
        assert r.exit_code == 0, r
        entries = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        mine = [e for e in entries if e["request_id"] == "req-logs-test-1"]
        if len(mine) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    inbound = [e for e in mine if e["direction"] == "inbound"]
    assert inbound and inbound[0]["response_code"] == 200 and inbound[0]["upstream_cluster"] == "inbound|9080||"
    assert inbound[0]["downstream_peer_uri_san"] == \
        "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    out = [e for e in entries if e["request_id"] == "req-logs-test-1" and e["direction"] == "outbound"]
    assert {e["upstream_cluster"].split("|")[3] for e in out} == {"details.default.svc.cluster.local",
                                                                  "reviews.default.svc.cluster.local"}
    r = cli("local", "logs", "bookinfo-gateway.default", "--tail", "1", "--state-dir", bookinfo["state"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 1
    r = cli("local", "logs", "nosuch", "--state-dir", bookinfo["state"])
    assert r.exit_code == 2 and "productpage-v1.default" in r.stderr


def test_trace_context_is_propagated_through_every_hop(bookinfo, cli):
    restore(cli, bookinfo)
    apply(cli, bookinfo, SAMPLES / "destination-rule-all.yaml", SAMPLES / "virtual-service-reviews-v3.yaml")
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    get(bookinfo["ingress"], headers={"traceparent": trace, "x-request-id": "req-trace-1"})
    deadline = time.monotonic() + 10
    while True:
        r = cli("local", "logs", "ratings-v1", "--state-dir", bookinfo["state"])
        hits = [json.loads(x) for x in r.stdout.splitlines() if "req-trace-1" in x]
        if hits or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert hits and hits[0]["traceparent"] == trace and hits[0]["direction"] == "inbound"
    assert hits[0]["downstream_peer_uri_san"] == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
    apply(cli, bookinfo, SAMPLES / "virtual-service-all-v1.yaml")


def test_an_update_envoy_would_reject_is_refused_and_nothing_changes(bookinfo, cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings]
  http:
  - match:
    - uri:
        regex: "/ratings/(unclosed"
    route:
    - destination: {host: ratings}
""")
    before = {p: p.read_bytes() for p in (Path(bookinfo["state"]) / "proxies").rglob("*.json")}
    r = apply(cli, bookinfo, bad, ok=False)
    assert r.exit_code == 2, r
    assert "VirtualService default/ratings" in r.stderr and "bad.yaml" in r.stderr
    after = {p: p.read_bytes() for p in (Path(bookinfo["state"]) / "proxies").rglob("*.json")}
    assert {p: v for p, v in after.items() if not p.name.startswith("sds_")} == \
           {p: v for p, v in before.items() if not p.name.startswith("sds_")}
    assert get(bookinfo["ingress"])[0] == 200


def test_a_crashed_sidecar_is_reported_and_restarted(bookinfo, cli):
    restore(cli, bookinfo)
    st = bookinfo["st"]
    rec = st.pids()["processes"]["proxy/details-v1.default"]
    os.kill(rec["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    data = None
    while time.monotonic() < deadline:
        r = cli("local", "status", "-o", "json", "--state-dir", bookinfo["state"])
        data = {p["name"]: p for p in json.loads(r.stdout)["proxies"]}
        if data["details-v1"]["restarts"] >= 1 and data["details-v1"]["status"] == "SYNCED":
            break
        time.sleep(0.2)
    assert data["details-v1"]["restarts"] >= 1 and data["details-v1"]["lastExit"] == -signal.SIGKILL
    assert data["details-v1"]["status"] == "SYNCED" and data["details-v1"]["pid"] != rec["pid"]
    assert get(bookinfo["ingress"])[1]["details"]["author"] == "William Shakespeare"


def test_proxy_status_and_proxy_config_read_the_local_mesh(bookinfo, cli):
    restore(cli, bookinfo)
    r = cli("proxy-status", "--local", "--state-dir", bookinfo["state"], "-o", "json")
    assert r.exit_code == 0, r
    rows = {p["name"]: p for p in json.loads(r.stdout)["proxies"]}
    assert rows["productpage-v1.default"]["status"] == "SYNCED" and len(rows) >= 7
    r = cli("proxy-config", "clusters", "productpage-v1", "--local", "--state-dir", bookinfo["state"],
            "--fqdn", "reviews.default.svc.cluster.local")
    assert r.exit_code == 0, r
    assert "reviews.default.svc.cluster.local" in r.stdout and "v3" in r.stdout and "reviews.default" in r.stdout
    r = cli("proxy-config", "secrets", "reviews-v2.default", "--local", "--state-dir", bookinfo["state"])
    assert r.exit_code == 0, r
    names = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert sorted(names) == ["ROOTCA", "default"] and "ACTIVE" in r.stdout


def test_proxy_status_finds_the_local_mesh_by_itself(bookinfo, cli):
    r = cli("proxy-status", "-o", "json", env={"MESHCTL_LOCAL_STATE": bookinfo["state"], "KUBECONFIG": ""})
    assert r.exit_code == 0, r
    assert {p["name"] for p in json.loads(r.stdout)["proxies"]} >= {"productpage-v1.default", "bookinfo-gateway.default"}
    r = cli("canary", "status", "reviews", "-o", "json", env={"MESHCTL_LOCAL_STATE": bookinfo["state"]})
    assert r.exit_code in (0, 2), r  # 2 when no VirtualService serves reviews at this point
    assert "kubeconfig" not in r.stderr.lower()


def test_up_refuses_a_second_mesh_on_the_same_state(bookinfo, cli):
    r = cli("local", "up", str(bookinfo["dir"]), "--state-dir", bookinfo["state"])
    assert r.exit_code == 2 and "already running" in r.stderr


def small_mesh(directory: Path) -> Path:
    """Two workloads (one running the echo app) and an ingress: a mesh to take up and down."""
    net = next_net()
    write(directory, "mesh.yaml", service("mini"), workload("mini-v1", f"127.{net}.0.1", "mini"),
          workload("mini-client", f"127.{net}.0.2", None, command=False), f"""\
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata:
          name: mini-gateway
          namespace: default
          annotations: {{local.meshctl.io/address: 127.{net}.100.1}}
        spec:
          selector: {{istio: ingressgateway}}
          servers:
          - port: {{number: 8080, name: http, protocol: HTTP}}
            hosts: ["*"]
        """, """\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: mini, namespace: default}
        spec:
          hosts: ["*"]
          gateways: [mini-gateway]
          http:
          - route:
            - destination: {host: mini, port: {number: 8080}}
        """)
    return directory


def test_down_stops_every_process_and_a_second_down_is_a_no_op(cli, tmp_path):
    d = small_mesh(tmp_path / "mini")
    state_dir = str(tmp_path / "state")
    r = cli("local", "up", str(d), "--state-dir", state_dir)
    assert r.exit_code == 0, r
    pids = State(state_dir).pids()
    procs = [(r["pid"], r["started"]) for r in pids["processes"].values()] + \
            [(pids["supervisor"]["pid"], pids["supervisor"]["started"])]
    assert len(procs) == 5 and all(alive(p, s) for p, s in procs)  # 3 proxies, 1 app, the supervisor
    r = cli("local", "down", "--state-dir", state_dir)
    assert r.exit_code == 0 and "stopped" in r.stdout
    assert not any(alive(p, s) for p, s in procs)
    assert not Path(state_dir).exists()
    r = cli("local", "down", "--state-dir", state_dir)
    assert r.exit_code == 0 and "nothing to stop" in r.stdout


def test_up_apply_and_down_answer_in_json_for_scripts(cli, tmp_path):
    d = small_mesh(tmp_path / "json")
    state_dir = str(tmp_path / "state")
    r = cli("local", "up", str(d), "--state-dir", state_dir, "-o", "json")
    try:
        assert r.exit_code == 0, r
        up = json.loads(r.stdout)  # progress stays on stderr
        assert (up["proxies"], up["workloads"], up["stateDir"]) == (3, 1, str(Path(state_dir).absolute()))
        assert up["ingress"] == [{"gateway": "default/mini-gateway", "port": 8080,
                                  "address": up["ingress"][0]["address"]}]
        r = cli("local", "apply", "-f", str(d), "--state-dir", state_dir, "-o", "yaml")
        assert r.exit_code == 0, r
        import yaml

        applied = yaml.safe_load(r.stdout)
        assert {c["result"] for c in applied["changes"]} == {"unchanged"} and applied["proxiesUpdated"] == []
    finally:
        r = cli("local", "down", "--state-dir", state_dir, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["wasRunning"] is True
    assert json.loads(r.stdout)["stopped"] == 4  # 3 proxies and the echo app


def test_up_over_a_state_whose_processes_died_cleans_up_and_starts_again(cli, tmp_path):
    d = small_mesh(tmp_path / "again")
    state_dir = str(tmp_path / "state")
    assert cli("local", "up", str(d), "--state-dir", state_dir).exit_code == 0
    pids = State(state_dir).pids()
    os.kill(pids["supervisor"]["pid"], signal.SIGKILL)  # its children stop with it (PDEATHSIG)
    deadline = time.monotonic() + 10
    procs = [(r["pid"], r["started"]) for r in pids["processes"].values()]
    while time.monotonic() < deadline and any(alive(p, s) for p, s in procs):
        time.sleep(0.05)
    assert not any(alive(p, s) for p, s in procs)
    r = cli("local", "status", "--state-dir", state_dir)
    assert "UNREACHABLE" in r.stdout and "supervisor is not running" in r.stdout
    try:
        r = cli("local", "up", str(d), "--state-dir", state_dir)
        assert r.exit_code == 0, r
        ingress = json.loads(cli("local", "status", "-o", "json", "--state-dir", state_dir).stdout)["ingress"][0]["address"]
        status, body = get(ingress, "/hello")
        assert status == 200 and body["name"] == "mini-v1" and body["path"] == "/hello"
    finally:
        assert cli("local", "down", "--state-dir", state_dir).exit_code == 0


def test_analyze_errors_stop_up_unless_forced(cli, tmp_path):
    net = next_net()
    d = tmp_path / "broken"
    d.mkdir()
    (d / "mesh.yaml").write_text(f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: default}}
spec:
  hosts: [web.default.svc.cluster.local]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: web}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: web-v1, namespace: default}}
spec: {{address: 127.{net}.0.1, labels: {{app: web}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: [web]
  http:
  - route:
    - destination: {{host: nosuchhost}}
""")
    state_dir = str(tmp_path / "state")
    r = cli("local", "up", str(d), "--state-dir", state_dir)
    assert r.exit_code == 1 and "IST0101" in r.stdout and "not started" in r.stderr
    assert not Path(state_dir, "mesh.json").exists()
    try:
        r = cli("local", "up", str(d), "--state-dir", state_dir, "--force")
        assert r.exit_code == 0, r
    finally:
        cli("local", "down", "--state-dir", state_dir)


def test_a_non_loopback_address_is_refused_with_its_file_and_line(cli, tmp_path):
    (tmp_path / "we.yaml").write_text("""\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v1, namespace: default}
spec:
  address: 10.1.2.3
  labels: {app: web}
""")
    r = cli("local", "up", str(tmp_path / "we.yaml"), "--state-dir", str(tmp_path / "state"))
    assert r.exit_code == 2 and "we.yaml:5" in r.stderr and "127.0.0.0/8" in r.stderr

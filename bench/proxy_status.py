"""Benchmark: proxy-status over many Envoy admin endpoints, given directly and through a cluster.

Direct (`--admin …`): three real Envoys (static, file-based xDS, TLS with a certificate) and a
light asyncio server, in its own process, that answers on many 127.0.0.1 ports with those Envoys'
own answers (each distinct request is asked of the real Envoy once, then replayed) after a fixed
latency. For 100, 500 and 2000 endpoints it prints the collect stage (wall and CPU, in a fresh
process) and the whole `meshctl proxy-status --admin …` command, table and `-o json` (wall and
CPU).

Through a cluster (`-A`): the fake API server (tests/kube/fakeapi.py, HTTPS, in its own process)
with N mesh pods in 10 namespaces, each pod's admin port answered by the replay server, and a
network round trip of `--api-latency` added to each answer, websocket upgrade, message relayed
through a port-forward and new connection (twice with TLS). It prints `meshctl proxy-status -A
-o json` (wall and CPU), and the collect stage through a port-forward per pod (what meshctl does)
and through the API server's pod proxy subresource (measured for comparison; Istio's sidecars
serve their admin port on 127.0.0.1 only, which the pod proxy cannot reach).

With `--baseline REV` every figure is also measured for that revision of meshctl (`git archive`
into a temporary directory), in the same run and against the same servers: the machine is shared,
so compare figures of one run. Each tree runs with its own default --concurrency.

    .venv/bin/python bench/proxy_status.py [--sizes 100,500,2000] [--latency 0.02] [--pods 500]
        [--api-latency 0.02] [--baseline REV] [--runs 1]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- the replay server: real Envoys' answers on many ports, after a latency ------------------------


def serve(sources: dict, count: int, latency: float, conn) -> None:
    """Child process: `count` listening sockets on 127.0.0.1, HTTP/1.1 keep-alive. Each distinct
    request target is asked once of a real Envoy (`sources`: path → admin address, "" for the
    rest) and its answer replayed, `latency` seconds after the request (an asyncio.Protocol and a
    timer per request: the server should cost little of the machine the client runs on)."""
    answers: dict[bytes, bytes] = {}

    def fetch(target: bytes) -> bytes:
        path = target.decode().split("?")[0]
        admin = sources.get(path, sources[""])
        try:
            with urllib.request.urlopen(f"http://{admin}{target.decode()}", timeout=5) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        reason = b"OK" if status == 200 else b"Service Unavailable" if status == 503 else b"Not Found"
        return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                % (status, reason, len(body)) + body)

    class Admin(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while b"\r\n\r\n" in self.buf:
                head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                loop.call_later(latency, self.answer, head.split(b" ", 2)[1])

        def answer(self, target: bytes) -> None:
            if target not in answers:
                answers[target] = fetch(target)  # once per distinct request, from the real Envoy
            if not self.transport.is_closing():
                self.transport.write(answers[target])

    async def main() -> None:
        ports = []
        for _ in range(count):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(128)
            s.setblocking(False)
            await loop.create_server(Admin, sock=s)
            ports.append(s.getsockname()[1])
        conn.send(ports)
        await loop.run_in_executor(None, conn.recv)  # wait for "stop"

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())


class Replay:
    """The replay server in a child process; `.ports` are its listening ports."""

    def __init__(self, sources: dict, count: int, latency: float):
        self._parent, child = mp.Pipe()
        self._proc = mp.Process(target=serve, args=(sources, count, latency, child), daemon=True)
        self._proc.start()
        self.ports: list[int] = self._parent.recv()

    def stop(self) -> None:
        self._parent.send("stop")
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()


# --- the fake API server with mesh pods, in a child process --------------------------------------


def _cluster(workdir: str, ports: list[int], latency: float, conn) -> None:
    from tests.kube.fakeapi import FakeKube, make_tls

    fake = FakeKube(os.path.join(workdir, "kube")).start(tls=make_tls(os.path.join(workdir, "tls")))
    for n in range(10):
        fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"shop-{n}"}})
    for i, port in enumerate(ports):
        ns, name = f"shop-{i % 10}", f"app-{i:04d}-7d9f8"
        fake.add({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": name, "namespace": ns, "labels": {"app": f"app-{i:04d}"}},
                  "spec": {"containers": [{"name": "app", "image": "app"}, {"name": "istio-proxy", "image": "proxyv2"}]},
                  "status": {"phase": "Running", "podIP": f"10.1.{i // 250}.{i % 250 + 1}"}})
        fake.forward_pod_port(ns, name, 15000, port)
    fake.latency = latency
    conn.send(fake.kubeconfig)
    conn.recv()  # wait for "stop"
    fake.stop()


class Cluster:
    def __init__(self, ports: list[int], latency: float):
        self._parent, child = mp.Pipe()
        self._proc = mp.Process(target=_cluster, args=(tempfile.mkdtemp(prefix="meshctl-bench-kube-"), ports,
                                                       latency, child), daemon=True)
        self._proc.start()
        self.kubeconfig: str = self._parent.recv()

    def stop(self) -> None:
        self._parent.send("stop")
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()


# --- running a tree's code ----------------------------------------------------------------------


def tree_of(rev: str) -> Path:
    """meshctl/ of `rev`, extracted into a temporary directory."""
    out = Path(tempfile.mkdtemp(prefix=f"meshctl-{rev[:12]}-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "meshctl"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def timed(cmd: list[str], tree: Path, stdin: str | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall, CPU of the process, result) of a command run in `tree`, first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NO_COLOR": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin, cwd=str(tree))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def counts(statuses) -> str:
    out: dict[str, int] = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return " ".join(f"{k}={v}" for k, v in sorted(out.items()))


_COLLECT = r"""
import json, sys, time
addresses = json.load(sys.stdin)
from meshctl.proxy import status
assert status.__file__.startswith(sys.argv[1]), status.__file__
targets = [status.ProxyTarget(name=a, address=a) for a in addresses]
extra = {"concurrency": int(sys.argv[2])} if int(sys.argv[2]) else {}
t0, c0 = time.perf_counter(), time.process_time()
rows = status.run(targets, timeout=5.0, **extra)
print(json.dumps([time.perf_counter() - t0, time.process_time() - c0, [r.status for r in rows]]))
"""


def admin_case(trees: dict, addresses: list[str], sizes: list[int], runs: int, concurrency: int) -> None:
    print(f"\n{'endpoints':>9}  {'tree':<10} {'collect (s)':>11} {'collect CPU':>11} {'CLI (s)':>11} {'CLI CPU':>8} "
          f"{'-o json (s)':>11} {'json CPU':>8}  statuses        (wall: median/min of --runs; CPU: median)")
    for n in sizes:
        addrs = addresses[:n]
        for label, tree in trees.items():
            figures: dict[str, list[float]] = {}
            statuses = ""
            for _ in range(runs):
                _, _, proc = timed([sys.executable, "-c", _COLLECT, str(tree), str(concurrency)], tree, json.dumps(addrs))
                if proc.returncode:
                    raise SystemExit(proc.stderr[-2000:])
                wall, cpu, got = json.loads(proc.stdout)
                figures.setdefault("collect", []).append(wall)
                figures.setdefault("collect CPU", []).append(cpu)
                statuses = counts(got)
                for fmt in ("table", "json"):
                    cmd = [sys.executable, "-m", "meshctl", "proxy-status", "-o", fmt, "--timeout", "5"]
                    cmd += ["--concurrency", str(concurrency)] if concurrency else []
                    for a in addrs:
                        cmd += ["--admin", a]
                    wall, cpu, proc = timed(cmd, tree)
                    if proc.returncode:
                        statuses += f" ({fmt}: exit {proc.returncode}: {proc.stderr.strip()[:200]})"
                    figures.setdefault(fmt, []).append(wall)
                    figures.setdefault(fmt + " CPU", []).append(cpu)
            m = {k: statistics.median(v) for k, v in figures.items()}
            w = {k: f"{statistics.median(v):.2f}/{min(v):.2f}" for k, v in figures.items()}
            print(f"{n:>9}  {label:<10} {w['collect']:>11} {m['collect CPU']:>11.2f} {w['table']:>11} "
                  f"{m['table CPU']:>8.2f} {w['json']:>11} {m['json CPU']:>8.2f}  {statuses}")
            sys.stdout.flush()


_CLUSTER_COLLECT = r"""
import json, ssl, sys, time
from meshctl import kube
from meshctl.proxy import fanout, status
from meshctl.proxy.admin import Route
k = kube.client(sys.argv[1])
how = sys.argv[2]
t0, c0 = time.perf_counter(), time.process_time()
if how == "port-forward":
    rows = status.check(status.StatusOptions(all_namespaces=True), lambda: k).rows
else:  # the pod proxy subresource: GET /api/v1/namespaces/NS/pods/NAME:15000/proxy/PATH
    cfg = k.configuration
    tls = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    _, url, headers, _, _ = k._api.param_serialize(method="GET", resource_path="/", header_params={},
                                                   auth_settings=["BearerToken"])
    auth = "".join(f"{n}: {v}\r\n" for n, v in headers.items() if n.lower() == "authorization").encode()
    host, port = cfg.host.split("//")[1].split(":")
    targets = [status.ProxyTarget(name=t.name, address=f"{t.namespace}/{t.pod}", namespace=t.namespace, pod=t.pod,
                                  kind=t.kind) for t in status.discover(k, None)]
    def route(address):
        ns, pod = address.split("/")
        return Route(host, int(port), f"/api/v1/namespaces/{ns}/pods/{pod}:15000/proxy", auth, tls, shared=True)
    rows = fanout.run(targets, timeout=5.0, route=route)
print(json.dumps([time.perf_counter() - t0, time.process_time() - c0, [r.status for r in rows]]))
"""


def cluster_case(trees: dict, kubeconfig: str, pods: int, runs: int) -> None:
    print(f"\n{'pods':>5}  {'what':<34} {'wall (s)':>11} {'CPU (s)':>8}  statuses        (wall: median/min; CPU: median)")
    rows = []
    for label, tree in trees.items():
        rows.append((f"CLI -A -o json, {label}", [sys.executable, "-m", "meshctl", "--kubeconfig", kubeconfig,
                                                  "proxy-status", "-A", "-o", "json"], tree, True))
    current = trees["this tree"]
    for how in ("port-forward", "pod-proxy"):
        rows.append((f"collect via {how}, this tree", [sys.executable, "-c", _CLUSTER_COLLECT, kubeconfig, how],
                     current, False))
    for what, cmd, tree, cli in rows:
        walls, cpus, statuses = [], [], ""
        for _ in range(runs):
            wall, cpu, proc = timed(cmd, tree)
            if proc.returncode:
                statuses = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
                continue
            if cli:
                statuses = counts(p["status"] for p in json.loads(proc.stdout)["proxies"])
            else:
                wall, cpu, got = json.loads(proc.stdout)
                statuses = counts(got)
            walls.append(wall)
            cpus.append(cpu)
        w = f"{statistics.median(walls):.2f}/{min(walls):.2f}" if walls else "-"
        c = f"{statistics.median(cpus):>8.2f}" if cpus else f"{'-':>8}"
        print(f"{pods:>5}  {what:<34} {w:>11} {c}  {statuses}")
        sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,500,2000")
    ap.add_argument("--latency", type=float, default=0.02, help="seconds before each replayed admin answer")
    ap.add_argument("--pods", type=int, default=500, help="mesh pods for the -A case (0: skip it)")
    ap.add_argument("--api-latency", type=float, default=0.02, help="network round trip to the API server")
    ap.add_argument("--pod-latency", type=float, default=0.001, help="API server to pod, inside the cluster")
    ap.add_argument("--baseline", metavar="REV", help="also measure this git revision of meshctl")
    ap.add_argument("--concurrency", type=int, default=0, help="--concurrency to pass (0: each tree's default)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each measurement (medians printed)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    from tests.envoy.envoyproc import EnvoyProcess, file_xds_bootstrap, make_cert, static_bootstrap, tls_bootstrap

    trees = {"this tree": ROOT}
    if args.baseline:
        trees["baseline"] = tree_of(args.baseline)
    work = Path(tempfile.mkdtemp(prefix="meshctl-bench-"))
    cert, key = make_cert(work, dt.timedelta(days=30))
    envoys = [EnvoyProcess.start(static_bootstrap(), work / "e1", name="static"),
              EnvoyProcess.start(file_xds_bootstrap(work / "xds"), work / "e2", name="xds"),
              EnvoyProcess.start(tls_bootstrap(cert, key), work / "e3", name="tls")]
    sources = {"": envoys[1].admin, "/certs": envoys[2].admin}
    servers: list = []
    try:
        print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
              f"baseline {args.baseline or '-'}")
        if sizes:
            replay = Replay(sources, max(sizes) - len(envoys), args.latency)
            servers.append(replay)
            addresses = [e.admin for e in envoys] + [f"127.0.0.1:{p}" for p in replay.ports]
            print(f"proxy-status --admin: {len(envoys)} real Envoys + replay server ({len(replay.ports)} ports, "
                  f"{args.latency * 1000:g} ms latency)")
            admin_case(trees, addresses, sizes, args.runs, args.concurrency)
        if args.pods:
            pod_replay = Replay(sources, args.pods, args.pod_latency)
            servers.append(pod_replay)
            cluster = Cluster(pod_replay.ports, args.api_latency)
            servers.append(cluster)
            print(f"\nproxy-status -A: fake API server (HTTPS, {args.api_latency * 1000:g} ms a round trip), "
                  f"{args.pods} mesh pods in 10 namespaces, {args.pod_latency * 1000:g} ms from the API server to a pod")
            cluster_case(trees, cluster.kubeconfig, args.pods, args.runs)
    finally:
        for server in reversed(servers):
            server.stop()
        for e in envoys:
            e.stop()


if __name__ == "__main__":
    main()

"""Figures of the local mesh, measured side by side in one run (not run by CI).

    .venv/bin/python bench/local_mesh.py [--rate 500] [--seconds 10] [--skip-wrk] [--only render]
                                         [--baseline REF]

1. Added latency: client → sidecar → mTLS → sidecar → app, against client → app directly, p50
   and p99, (a) at a fixed moderate rate on one connection with a Python client (open loop: each
   request is sent on schedule; latency is measured from the schedule, so a stall is counted),
   and (b) with wrk at one connection (closed loop) where wrk is installed. The app is an Envoy
   answering directly (fast and steady, so the difference is the mesh's).
2. Memory per sidecar with bookinfo-local loaded: Private_Dirty + Swap from /proc/PID/smaps_rollup
   (the sidecar's own memory), and RSS beside it.
3. `meshctl local up examples/bookinfo-local` until every proxy is SYNCED (wall time of the command).
4. Rendering the configuration of 200 services and 600 workloads (model + translate; JSON
   serialization of every proxy's files shown apart). With --baseline REF, the meshctl of git
   REF renders the same mesh in the same run, the two interleaved so that the machine's load
   weighs on both alike.

Addresses: 127.251.0.0/16 and 127.252.0.0/16 (nothing else on the machine uses them).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshctl.local import envoy, mesh, pipeline  # noqa: E402
from meshctl.local.translate import xds  # noqa: E402

A = "127.251.0"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# --- 1. latency ------------------------------------------------------------------------------------

APP_ENVOY = {
    "admin": {"address": {"socket_address": {"address": f"{A}.1", "port_value": 15990}}},
    "static_resources": {"listeners": [{
        "name": "app", "address": {"socket_address": {"address": f"{A}.1", "port_value": 8080}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": xds.HCM_TYPE, "stat_prefix": "app",
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": xds.ROUTER_TYPE}}],
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]}}}]}]}]},
}


def latency_mesh(d: Path) -> None:
    (d / "app.json").write_text(json.dumps(APP_ENVOY))
    (d / "mesh.yaml").write_text(f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: app, namespace: default}}
spec:
  hosts: [app.default.svc.cluster.local]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: app}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: app-v1
  namespace: default
  annotations:
    local.meshctl.io/command: "{envoy.binary()} -c app.json --disable-hot-restart --concurrency 1 -l error"
spec: {{address: {A}.1, labels: {{app: app, version: v1}}, serviceAccount: app}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: client, namespace: default}}
spec: {{address: {A}.10, labels: {{role: client}}, serviceAccount: client}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: istio-system}}
spec: {{mtls: {{mode: STRICT}}}}
""")


def bare_pair(d: Path) -> list[subprocess.Popen]:
    """Two plain Envoys with mTLS between them and nothing else (no access log, RBAC, retries,
    faults or stats names of a mesh): the floor any Envoy sidecar pair with mTLS costs here."""
    from meshctl.local import ca as mesh_ca

    root = mesh_ca.CA.create()
    leaf = root.issue("spiffe://cluster.local/ns/default/sa/bare", 3600)
    secrets = [{"name": "cert", "tls_certificate": {"certificate_chain": {"inline_string": leaf.cert_pem},
                                                      "private_key": {"inline_string": leaf.key_pem}}},
               {"name": "root", "validation_context": {"trusted_ca": {"inline_string": root.root_pem}}}]
    ctx = {"tls_certificate_sds_secret_configs": [{"name": "cert"}], "validation_context_sds_secret_config": {"name": "root"}}

    def hcm(cluster: str) -> dict:
        return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": xds.HCM_TYPE, "stat_prefix": "bare",
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": xds.ROUTER_TYPE}}],
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]}}}

    def cluster(name: str, port: int, tls: bool) -> dict:
        c = {"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": name,
             "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                 "address": f"{A}.1", "port_value": port}}}}]}]}}
        if tls:
            c["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": xds.TLS_UP_TYPE, "common_tls_context": ctx}}
        return c

    server = {"admin": {"address": {"socket_address": {"address": f"{A}.20", "port_value": 15000}}},
              "static_resources": {"secrets": secrets, "clusters": [cluster("app", 8080, False)], "listeners": [{
                  "name": "in", "address": {"socket_address": {"address": f"{A}.20", "port_value": 17006}},
                  "filter_chains": [{"transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                      "@type": xds.TLS_DOWN_TYPE, "require_client_certificate": True, "common_tls_context": ctx}},
                      "filters": [hcm("app")]}]}]}}
    server["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]["address"] = f"{A}.1"
    client = {"admin": {"address": {"socket_address": {"address": f"{A}.21", "port_value": 15000}}},
              "static_resources": {"secrets": secrets, "clusters": [cluster("server", 17006, True)], "listeners": [{
                  "name": "out", "address": {"socket_address": {"address": f"{A}.21", "port_value": 17001}},
                  "filter_chains": [{"filters": [hcm("server")]}]}]}}
    client["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]["address"] = f"{A}.20"
    procs = []
    for name, boot in (("bare-server", server), ("bare-client", client)):
        path = d / f"{name}.json"
        path.write_text(json.dumps(boot))
        procs.append(subprocess.Popen([envoy.binary(), "-c", str(path), "--disable-hot-restart", "--concurrency", "1",
                                       "-l", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(f"{A}.21", 17001, timeout=1)
            c.request("GET", "/")
            if c.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.05)
    return procs


def open_loop(address: str, port: int, host: str, rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of requests sent on a fixed schedule over one kept-alive connection."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    headers = {"Host": host}
    for _ in range(200):  # warm up
        conn.request("GET", "/", headers=headers)
        conn.getresponse().read()
    out = []
    interval = 1.0 / rate
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = start + i * interval
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        conn.request("GET", "/", headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"unexpected status {r.status} from {address}:{port}")
        out.append((time.perf_counter() - max(due, start)) * 1000)
    conn.close()
    return out


def wrk(url: str, host: str, seconds: float) -> dict | None:
    exe = shutil.which("wrk")
    if not exe:
        return None
    p = subprocess.run([exe, "-t1", "-c1", f"-d{int(seconds)}s", "--latency", "-H", f"Host: {host}", url],
                       capture_output=True, text=True, timeout=seconds + 30)
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            v = parts[1]
            ms = float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
            out["p" + parts[0][:-1]] = ms
        if line.startswith("Requests/sec:"):
            out["rps"] = float(line.split()[1])
    return out


def bench_latency(rate: float, seconds: float, use_wrk: bool) -> None:
    d = Path(tempfile.mkdtemp(prefix="meshctl-bench-lat-"))
    state = str(d / "state")
    latency_mesh(d)
    mesh.up([str(d / "mesh.yaml")], state, timeout=60)
    bare = bare_pair(d)
    try:
        time.sleep(0.5)
        print(f"1. added latency (Python client, open loop at {rate:g} req/s for {seconds:g}s, one connection)")
        rows = {}
        paths = (("direct", (f"{A}.1", 8080, "app:8080")), ("mesh", (f"{A}.10", 15001, "app:8080")),
                 ("bare", (f"{A}.21", 17001, "app:8080")))
        # alternate the paths twice: the machine is shared and noisy
        for rnd in range(2):
            for name, (addr, port, host) in paths:
                rows.setdefault(name, []).extend(open_loop(addr, port, host, rate, seconds / 2))
        for name, lat in rows.items():
            print(f"   {name:<7} p50 {percentile(lat, .5):.3f} ms   p99 {percentile(lat, .99):.3f} ms   (n={len(lat)})")
        for name in ("mesh", "bare"):
            print(f"   added by {name:<5} p50 {percentile(rows[name], .5) - percentile(rows['direct'], .5):+.3f} ms   "
                  f"p99 {percentile(rows[name], .99) - percentile(rows['direct'], .99):+.3f} ms")
        print("   (bare: two plain Envoys with mTLS and nothing else, the floor for any Envoy sidecar pair)")
        if use_wrk:
            direct = wrk(f"http://{A}.1:8080/", "app:8080", seconds)
            via = wrk(f"http://{A}.10:15001/", "app:8080", seconds)
            floor = wrk(f"http://{A}.21:17001/", "app:8080", seconds)
            if direct and via and floor:
                print(f"   wrk -t1 -c1 -d{int(seconds)}s (closed loop, one connection):")
                for name, r in (("direct", direct), ("mesh", via), ("bare", floor)):
                    print(f"   {name:<7} p50 {r['p50']:.3f} ms   p99 {r['p99']:.3f} ms   {r.get('rps', 0):.0f} req/s")
                for name, r in (("mesh", via), ("bare", floor)):
                    print(f"   added by {name:<5} p50 {r['p50'] - direct['p50']:+.3f} ms   p99 {r['p99'] - direct['p99']:+.3f} ms")
            else:
                print("   wrk: not installed (apt-get install wrk)")
    finally:
        for p in bare:
            p.terminate()
            p.wait(timeout=10)
        mesh.down(state)
        shutil.rmtree(d, ignore_errors=True)


# --- 2 and 3. bookinfo: memory, up to SYNCED ------------------------------------------------------------

def smaps(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                out[parts[0][:-1]] = int(parts[1])
    return out


def bench_bookinfo(runs: int) -> None:
    d = Path(tempfile.mkdtemp(prefix="meshctl-bench-bookinfo-")) / "bookinfo-local"
    shutil.copytree(ROOT / "examples" / "bookinfo-local", d)
    for f in d.glob("*.yaml"):
        f.write_text(f.read_text().replace("127.0.10.", "127.252.10.").replace("127.0.100.1", "127.252.100.1"))
    state = str(d.parent / "state")
    cmd = [sys.executable, "-m", "meshctl", "local", "up", str(d), "--state-dir", state]
    times = []
    try:
        for i in range(runs):
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            times.append(time.perf_counter() - t0)
            if p.returncode != 0:
                raise SystemExit(p.stderr)
            if i < runs - 1:
                mesh.down(state)
        print(f"3. meshctl local up examples/bookinfo-local → all 7 proxies SYNCED and 6 workloads listening "
              f"(wall time of the command, {runs} runs)")
        print(f"   median {statistics.median(times):.2f} s   min {min(times):.2f} s   max {max(times):.2f} s")
        # memory once traffic has gone through every proxy
        data = mesh.status(state)
        ingress = data["ingress"][0]["address"]
        for _ in range(200):
            c = http.client.HTTPConnection(*ingress.split(":"), timeout=10)
            c.request("GET", "/productpage")
            c.getresponse().read()
            c.close()
        time.sleep(1.5)
        from meshctl.local.state import State

        pids = State(state).pids()["processes"]
        rows = []
        for name, rec in sorted(pids.items()):
            if name.startswith("proxy/") and rec.get("running"):
                m = smaps(rec["pid"])
                rows.append((name[6:], (m.get("Private_Dirty", 0) + m.get("Swap", 0)) / 1024, m.get("Rss", 0) / 1024))
        print("2. memory per proxy with bookinfo-local loaded, after 200 requests (MB)")
        for name, own, rss in rows:
            print(f"   {name:<26} Private_Dirty+Swap {own:6.1f}   RSS {rss:6.1f}")
        print(f"   mean                       Private_Dirty+Swap {statistics.mean(r[1] for r in rows):6.1f}   "
              f"RSS {statistics.mean(r[2] for r in rows):6.1f}   max own {max(r[1] for r in rows):.1f}")
    finally:
        mesh.down(state)
        shutil.rmtree(d.parent, ignore_errors=True)


# --- 4. render at scale ----------------------------------------------------------------------------------

def big_mesh(services: int = 200, per_service: int = 3) -> str:
    docs = []
    n = 0
    for s in range(services):
        name, ns = f"svc{s}", f"ns{s % 10}"
        docs.append(f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}.{ns}.svc.cluster.local]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: {name}}}}}""")
        docs.append(f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}
  trafficPolicy: {{connectionPool: {{http: {{http1MaxPendingRequests: 100}}}}, outlierDetection: {{consecutive5xxErrors: 5}}}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}""")
        if s % 2 == 0:
            docs.append(f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: {name}, subset: v2}}}}]
  - route:
    - {{destination: {{host: {name}, subset: v1}}, weight: 90}}
    - {{destination: {{host: {name}, subset: v3}}, weight: 10}}
    retries: {{attempts: 2}}
    timeout: 3s""")
        for v in range(per_service):
            a, b = divmod(n, 250)
            docs.append(f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-v{v + 1}, namespace: {ns}}}
spec: {{address: 127.253.{a}.{b + 1}, labels: {{app: {name}, version: v{v + 1}}}, serviceAccount: {name}}}""")
            n += 1
    docs.append("""apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}""")
    for i in range(10):
        docs.append(f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: ns-only, namespace: ns{i}}}
spec:
  rules:
  - from: [{{source: {{namespaces: [ns{i}, istio-system]}}}}]""")
    return "\n---\n".join(docs) + "\n"


RENDER_CHILD = """
import json, sys, time
from meshctl.loader import load_text
try:
    from meshctl.local.pipeline import render
except ImportError:  # a revision from before meshctl/local/pipeline.py
    from meshctl.local.mesh import render
loaded = load_text(open(sys.argv[1]).read(), "big.yaml", default_namespace="default")
assert not loaded.problems
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    _, configs = render(loaded.resources)
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times, "resources": len(loaded.resources), "proxies": len(configs),
                  "package": sys.modules[render.__module__].__file__}))
"""


def render_times(tree: Path, mesh_file: Path, runs: int) -> dict:
    """Model + translate of `mesh_file`, `runs` times in one process running the meshctl of `tree`."""
    p = subprocess.run([sys.executable, "-c", RENDER_CHILD, str(mesh_file), str(runs)], cwd=tree,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    data = json.loads(p.stdout)
    if not data["package"].startswith(str(tree)):
        raise SystemExit(f"the render ran {data['package']}, not the meshctl of {tree}")
    return data


def bench_render(runs: int, baseline: str | None = None) -> None:
    from meshctl.loader import load_text

    text = big_mesh()
    if baseline:
        compare_render(text, runs, baseline)
        return
    loaded = load_text(text, "big.yaml", default_namespace="default")
    assert not loaded.problems
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        _, configs = pipeline.render(loaded.resources)  # model + translate, as up and apply run them
        times.append(time.perf_counter() - t0)
    t1 = time.perf_counter()
    size = sum(len(json.dumps(f, separators=(",", ":"))) for c in configs.values() for f in c.files.values())
    ser = [time.perf_counter() - t1]
    print(f"4. render 200 services, 600 workloads ({len(loaded.resources)} resources → {len(configs)} proxies, "
          f"{size / 1e6:.0f} MB of JSON), {runs} runs")
    print(f"   model + translate: median {statistics.median(times):.3f} s   min {min(times):.3f} s   "
          f"max {max(times):.3f} s")
    print(f"   JSON of every proxy's files (what writing them costs on top, once): {ser[0]:.1f} s")


def compare_render(text: str, runs: int, baseline: str) -> None:
    """This checkout against git `baseline`: each round renders `runs` times in a fresh process
    of each tree, one after the other, so both see the same load."""
    tmp = Path(tempfile.mkdtemp(prefix="meshctl-bench-render-"))
    try:
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "archive", baseline, "meshctl"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        mesh_file = tmp / "big.yaml"
        mesh_file.write_text(text)
        trees = {"this checkout": ROOT, f"baseline {baseline}": base}
        times: dict[str, list[float]] = {name: [] for name in trees}
        shape = None
        for _ in range(3):
            for name, tree in trees.items():
                data = render_times(tree, mesh_file, runs)
                times[name].extend(data["times"])
                shape = (data["resources"], data["proxies"])
        print(f"4. render 200 services, 600 workloads ({shape[0]} resources → {shape[1]} proxies), "
              f"3 rounds of {runs} runs per tree, interleaved")
        for name, t in times.items():
            print(f"   {name:<24} model + translate: median {statistics.median(t):.3f} s   min {min(t):.3f} s   "
                  f"max {max(t):.3f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-wrk", action="store_true")
    ap.add_argument("--only", choices=("latency", "bookinfo", "render"), action="append",
                    help="run only these figures (repeatable; default: all)")
    ap.add_argument("--baseline", metavar="REF",
                    help="also render at git REF (e.g. main), interleaved with this checkout's render")
    args = ap.parse_args()
    only = set(args.only or ("latency", "bookinfo", "render"))
    print(f"meshctl local mesh bench, Envoy {envoy.binary()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if "latency" in only:
        bench_latency(args.rate, args.seconds, not args.skip_wrk)
    if "bookinfo" in only:
        bench_bookinfo(args.runs)
    if "render" in only:
        bench_render(args.runs, args.baseline)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

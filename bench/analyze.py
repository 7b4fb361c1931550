#!/usr/bin/env python3
"""Benchmark `meshctl analyze` end to end through the CLI (a new process per run).

    .venv/bin/python bench/analyze.py [--runs 3] [--sizes 2000,4000] [--gen PATH] [--profile]
                                      [--gateway-api [--baseline REF]]

Generates corpora with ../shared/bench/gen_corpus.py (2000 services ≈ 12,200 resources) into a
temporary directory, runs `meshctl analyze -R DIR -o json` on each, and prints the wall time
(median of --runs) and resources per second; then the wall time of analyzing a one-resource file.
Targets on a 2-core machine: 2000 services ≤ 3 s; 4000 services ≤ 2.2 × the 2000 time; one
resource ≤ 250 ms.

Python's bytecode cache is enabled for the runs (PYTHONDONTWRITEBYTECODE is removed from the
environment) as it is for users; a warm-up run fills it. --profile prints the top functions of
one in-process run of the largest corpus (cProfile).

--gateway-api also analyzes each corpus with Gateway API objects added (per service a mesh
HTTPRoute, the Gateway API form of its VirtualService; per namespace an ingress Gateway; for
every 10th service an ingress HTTPRoute and a GRPCRoute; a few deliberate mistakes: see
gateway_api_docs) and prints both figures and their ratio, measured in the same run, the runs
of the two interleaved; --baseline REF adds the corpus without them analyzed by the meshctl of
git revision REF (say, the commit before Gateway API support), interleaved too.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GEN = ROOT.parent / "shared" / "bench" / "gen_corpus.py"


def meshctl() -> list[str]:
    exe = Path(sys.executable).with_name("meshctl")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshctl"]


def env() -> dict:
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["NO_COLOR"] = "1"
    return e


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(args: list[str], tree: Path | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, process); `tree`: run the meshctl package found
    there (an older revision) instead of this checkout's."""
    c0 = _child_cpu()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "meshctl"] if tree is not None else meshctl()
    proc = subprocess.run(cmd + args, capture_output=True, env=env(), cwd=tree or ROOT)
    return time.perf_counter() - t0, _child_cpu() - c0, proc


def median_run(args: list[str], runs: int) -> tuple[float, list[float], float, subprocess.CompletedProcess]:
    """Median wall time, all wall times, median CPU time, last process."""
    times, cpus = [], []
    proc = None
    for _ in range(runs):
        t, c, proc = timed(args)
        if proc.returncode not in (0, 1):
            sys.exit(f"meshctl failed (exit {proc.returncode}): {proc.stderr.decode()[-500:]}")
        times.append(t)
        cpus.append(c)
    return statistics.median(times), times, statistics.median(cpus), proc


def count_resources(directory: Path) -> int:
    n = 0
    for f in directory.rglob("*.yaml"):
        n += sum(1 for line in f.read_text().splitlines() if line.startswith("kind:"))
    return n


def gateway_api_docs(ns: str, services: list[str]) -> list[dict]:
    """Gateway API objects for one namespace of the corpus (see --gateway-api): per service, the
    Gateway API form of the corpus's VirtualService (a mesh HTTPRoute attached to the Service: a
    header-match rule, then a 90/10 split with a timeout); per namespace an ingress Gateway with
    an HTTP and an HTTPS listener, and for every 10th service an ingress HTTPRoute with a header
    filter and a GRPCRoute. Every 25th service splits to a Service that does not exist and every
    50th has a path without its leading "/", so the analyzers have findings to report."""
    docs: list[dict] = [{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"gatewayClassName": "istio", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP", "hostname": f"*.{ns}.example.com",
             "allowedRoutes": {"namespaces": {"from": "Same"}}},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": f"*.{ns}.example.com",
             "tls": {"mode": "Terminate", "certificateRefs": [{"name": f"{ns}-cert"}]}},
        ]},
    }]
    for svc in services:
        i = int(svc.rsplit("-", 1)[1])
        other = f"missing-{i:05d}" if i % 25 == 0 else svc
        docs.append({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": svc, "namespace": ns},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": svc, "port": 80}],
                "rules": [
                    {"matches": [{"headers": [{"name": "canary", "value": "true"}]}],
                     "backendRefs": [{"name": svc, "port": 80}]},
                    {"backendRefs": [{"name": svc, "port": 80, "weight": 90},
                                     {"name": other, "port": 80, "weight": 10}],
                     "timeouts": {"request": "10s"}},
                ],
            },
        })
        if i % 10 == 0:
            docs.append({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": f"{svc}-ingress", "namespace": ns},
                "spec": {
                    "parentRefs": [{"name": "web", "sectionName": "https"}],
                    "hostnames": [f"{svc}.{ns}.example.com"],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "api" if i % 50 == 0 else "/api"}}],
                               "filters": [{"type": "RequestHeaderModifier",
                                            "requestHeaderModifier": {"set": [{"name": "x-team", "value": ns}]}}],
                               "backendRefs": [{"name": svc, "port": 80}]}],
                },
            })
            docs.append({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
                "metadata": {"name": f"{svc}-grpc", "namespace": ns},
                "spec": {"parentRefs": [{"name": "web", "sectionName": "https"}],
                         "hostnames": [f"grpc.{ns}.example.com"],
                         "rules": [{"matches": [{"method": {"service": "shop.Cart", "method": "Get"}}],
                                    "backendRefs": [{"name": svc, "port": 80}]}]},
            })
    return docs


def add_gateway_api(src: Path, dst: Path) -> None:
    """A copy of corpus `src` in `dst` with Gateway API objects added (one more file per namespace)."""
    import yaml

    shutil.copytree(src, dst)
    for f in sorted(src.glob("*.yaml")):
        ns = f.stem
        services = sorted(set(re.findall(r"^  name: (svc-\d+)$", f.read_text(), re.M)))
        (dst / f"{ns}-gateway-api.yaml").write_text(yaml.safe_dump_all(gateway_api_docs(ns, services), sort_keys=False))


def gateway_api_figures(tmp: Path, corpus: Path, resources: int, runs: int, baseline: Path | None) -> None:
    """The corpus with Gateway API objects added against the corpus without them (and, with a
    baseline tree, without them at that revision), the runs interleaved so that the machine's
    load weighs on both alike; medians and bests (the least disturbed runs)."""
    g = tmp / f"{corpus.name}-gateway-api"
    add_gateway_api(corpus, g)
    gres = count_resources(g)
    cases = [("without", corpus, None), ("with", g, None)] + ([("baseline", corpus, baseline)] if baseline else [])
    wall: dict[str, list[float]] = {c[0]: [] for c in cases}
    cpu: dict[str, list[float]] = {c[0]: [] for c in cases}
    findings = {}
    for _ in range(runs):
        for name, directory, tree in cases:
            t, c, proc = timed(["analyze", "-R", str(directory), "-o", "json"], tree)
            if proc.returncode not in (0, 1):
                sys.exit(f"meshctl failed (exit {proc.returncode}): {proc.stderr.decode()[-500:]}")
            wall[name].append(t)
            cpu[name].append(c)
            findings[name] = len(json.loads(proc.stdout))
    labels = {"without": f"{resources:>6} resources, this checkout",
              "with": f"{gres:>6} resources ({gres - resources} Gateway API objects), this checkout",
              "baseline": f"{resources:>6} resources, at the baseline revision"}
    for name, _, _ in cases:
        print(f"  {labels[name]:60} {findings[name]:>4} findings  wall median {statistics.median(wall[name]):5.2f} s "
              f"best {min(wall[name]):5.2f} s  cpu median {statistics.median(cpu[name]):5.2f} s best {min(cpu[name]):5.2f} s")
    for ref in ("without", "baseline"):
        if ref in wall:
            print(f"  with Gateway API objects / {ref}: wall {statistics.median(wall['with']) / statistics.median(wall[ref]):.2f}x "
                  f"(best {min(wall['with']) / min(wall[ref]):.2f}x), cpu {statistics.median(cpu['with']) / statistics.median(cpu[ref]):.2f}x "
                  f"(best {min(cpu['with']) / min(cpu[ref]):.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="2000,4000", help="services per corpus, comma-separated")
    ap.add_argument("--gen", default=str(DEFAULT_GEN), help="path of gen_corpus.py")
    ap.add_argument("--profile", action="store_true", help="cProfile one in-process run of the largest corpus")
    ap.add_argument("--gateway-api", action="store_true",
                    help="also analyze each corpus with Gateway API objects added, and print both")
    ap.add_argument("--baseline", metavar="REF",
                    help="with --gateway-api: also time the corpus without them at git REF (e.g. main), in the same runs")
    args = ap.parse_args()
    if not Path(args.gen).exists():
        sys.exit(f"corpus generator not found: {args.gen} (pass --gen)")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    tmp = Path(tempfile.mkdtemp(prefix="meshctl-bench-analyze-"))
    try:
        one = tmp / "one.yaml"
        one.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {a: b}\n")
        timed([*["analyze"], str(one)])  # warm-up: fills the bytecode cache
        baseline = None
        if args.baseline:
            baseline = tmp / "baseline"
            baseline.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline, "meshctl"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
            timed(["analyze", str(one)], baseline)
        results = {}
        for n in sizes:
            d = tmp / f"corpus-{n}"
            subprocess.run([sys.executable, args.gen, "--services", str(n), "--out", str(d)], check=True,
                           capture_output=True)
            resources = count_resources(d)
            med, times, cpu, proc = median_run(["analyze", "-R", str(d), "-o", "json"], args.runs)
            findings = len(json.loads(proc.stdout))
            results[n] = (med, cpu)
            print(f"{n:>5} services  {resources:>6} resources  {findings:>5} findings  "
                  f"wall {med:6.2f} s (median of {args.runs}: {', '.join(f'{t:.2f}' for t in times)})  "
                  f"cpu {cpu:5.2f} s  {resources / med:6.0f} resources/s")
            if args.gateway_api:
                gateway_api_figures(tmp, d, resources, args.runs, baseline)
        if len(sizes) >= 2:
            a, b = sizes[0], sizes[-1]
            print(f"scaling {b}/{a} services: {results[b][0] / results[a][0]:.2f}x the wall time, "
                  f"{results[b][1] / results[a][1]:.2f}x the CPU time for {b / a:.1f}x the input")
        n = max(args.runs, 5)
        med, times, cpu, _ = median_run(["analyze", str(one)], n)
        print(f"one resource: wall {med * 1000:.0f} ms, cpu {cpu * 1000:.0f} ms (median of {n})")
        med, times, cpu, _ = median_run(["--version"], n)
        print(f"meshctl --version: wall {med * 1000:.0f} ms, cpu {cpu * 1000:.0f} ms (interpreter and CLI start-up)")
        print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
              "(wall times above the CPU times mean the machine was busy)")
        if args.profile:
            profile(tmp / f"corpus-{sizes[-1]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def profile(directory: Path) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    from meshctl.analysis.pipeline import AnalyzeOptions, analyze

    prof = cProfile.Profile()
    prof.enable()
    analyze(AnalyzeOptions(paths=[str(directory)], recursive=True))
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()

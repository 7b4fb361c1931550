#!/usr/bin/env python3
"""Benchmark `meshctl analyze` end to end through the CLI (a new process per run, as users run it).

    .venv/bin/python bench/analyze.py [--runs 5] [--sizes 2000,8000] [--gen PATH] [--baseline REF]
                                      [--single] [--profile] [--gateway-api]

Generates corpora with ../shared/bench/gen_corpus.py (2000 services = 12,200 resources, 8000
services = 48,800) into a temporary directory and runs `meshctl analyze -R DIR -o json` on each.
Per corpus it prints the median over --runs of: wall time, CPU time (user + system, the process
and the processes it started), peak memory: ru_maxrss of the analyze process (the rusage that
resource.getrusage(RUSAGE_CHILDREN) sums up, taken per run from wait4; for a process tree it is
the largest process's, here the analyze process itself), and the peak of the summed proportional
set size (PSS) of the analyze process and its parse workers (sampled every 10 ms from /proc, so
that memory in workers is not hidden); and resources per second. (Linux carries a process's
high-water mark over exec, and a child starts as a copy of this script, so ru_maxrss cannot read
below this script's own size, about 20 MB: it is not printed for the small runs.) then the scaling ratio (time for the largest corpus / time for the smallest
one, against the input ratio: 4x for the defaults) and the wall time of analyzing a
one-resource file and of `meshctl --version`.

Configurations are measured in the same, interleaved runs, so that the load of a shared machine
weighs on all alike:
  this checkout       the default
  single process      with --single: this checkout with MESHCTL_WORKERS=1 (no parse pool)
  baseline REF        with --baseline REF: the meshctl of git revision REF (`git archive`)

Targets on a 2-core machine: 2000 services ≤ 1.2 s and ≤ 100 MB; 8000 services ≤ 5 s and ≤ 300 MB,
still linear (a scaling ratio near 4x); one resource ≤ 150 ms.

Python's bytecode cache is enabled for the runs (PYTHONDONTWRITEBYTECODE is removed from the
environment) as it is for users; a warm-up run fills it. --profile prints the top functions of
one in-process run of the largest corpus (cProfile).

--gateway-api also analyzes each corpus with Gateway API objects added (per service a mesh
HTTPRoute, the Gateway API form of its VirtualService; per namespace an ingress Gateway; for
every 10th service an ingress HTTPRoute and a GRPCRoute; a few deliberate mistakes: see
gateway_api_docs) and prints both figures and their ratio, measured in the same run, the runs
of the two interleaved (with --baseline, the corpus without them at REF too).
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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GEN = ROOT.parent / "shared" / "bench" / "gen_corpus.py"


def meshctl() -> list[str]:
    exe = Path(sys.executable).with_name("meshctl")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "meshctl"]


def env(extra: dict | None = None) -> dict:
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["NO_COLOR"] = "1"
    e.update(extra or {})
    return e


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_mb: float  # ru_maxrss of the process (the largest of its tree)
    tree_pss_mb: float  # peak of the sampled PSS sum over the process and its children
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""


def timed(args: list[str], tree: Path | None = None, extra_env: dict | None = None) -> Run:
    """Run meshctl once; `tree`: run the meshctl package found there (an older revision) instead
    of this checkout's."""
    cmd = [sys.executable, "-m", "meshctl"] if tree is not None else meshctl()
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd + args, stdout=out, stderr=err, env=env(extra_env), cwd=tree or ROOT)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], sum(_pss_kb(p) for p in _descendants(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, peak[0] / 1024, proc.returncode,
               out.read(), err.read())


@dataclass
class Config:
    name: str
    tree: Path | None = None
    extra_env: dict = field(default_factory=dict)


def interleaved(configs: list[Config], args: list[str], runs: int) -> dict[str, list[Run]]:
    """`runs` runs of each configuration, one of each in turn."""
    out: dict[str, list[Run]] = {c.name: [] for c in configs}
    for _ in range(runs):
        for c in configs:
            r = timed(args, c.tree, c.extra_env)
            if r.returncode not in (0, 1):
                sys.exit(f"meshctl ({c.name}) failed (exit {r.returncode}): {r.stderr.decode()[-500:]}")
            out[c.name].append(r)
    return out


def med(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


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
            r = timed(["analyze", "-R", str(directory), "-o", "json"], tree)
            if r.returncode not in (0, 1):
                sys.exit(f"meshctl failed (exit {r.returncode}): {r.stderr.decode()[-500:]}")
            wall[name].append(r.wall)
            cpu[name].append(r.cpu)
            findings[name] = len(json.loads(r.stdout))
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
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="2000,8000", help="services per corpus, comma-separated")
    ap.add_argument("--gen", default=str(DEFAULT_GEN), help="path of gen_corpus.py")
    ap.add_argument("--baseline", metavar="REF", help="also measure the meshctl of git REF (e.g. main), in the same runs")
    ap.add_argument("--single", action="store_true", help="also measure this checkout without the parse pool")
    ap.add_argument("--profile", action="store_true", help="cProfile one in-process run of the largest corpus")
    ap.add_argument("--gateway-api", action="store_true",
                    help="also analyze each corpus with Gateway API objects added, and print both")
    args = ap.parse_args()
    if not Path(args.gen).exists():
        sys.exit(f"corpus generator not found: {args.gen} (pass --gen)")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    tmp = Path(tempfile.mkdtemp(prefix="meshctl-bench-analyze-"))
    try:
        one = tmp / "one.yaml"
        one.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {a: b}\n")
        configs = [Config("this checkout")]
        if args.single:
            configs.append(Config("single process", extra_env={"MESHCTL_WORKERS": "1"}))
        baseline = None
        if args.baseline:
            baseline = tmp / "baseline"
            baseline.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline, "meshctl"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
            configs.append(Config(f"baseline {args.baseline}", tree=baseline))
        for c in configs:  # warm-up: fills the bytecode caches
            timed(["analyze", str(one)], c.tree, c.extra_env)
        print(f"{'':34} {'resources':>9} {'findings':>8} {'wall':>7} {'cpu':>7} {'ru_maxrss':>9} "
              f"{'tree PSS':>9} {'resources/s':>11}   (medians of {args.runs} interleaved runs)")
        results: dict[tuple[int, str], list[Run]] = {}
        for n in sizes:
            d = tmp / f"corpus-{n}"
            subprocess.run([sys.executable, args.gen, "--services", str(n), "--out", str(d)], check=True,
                           capture_output=True)
            resources = count_resources(d)
            by_config = interleaved(configs, ["analyze", "-R", str(d), "-o", "json"], args.runs)
            outputs = set()
            for c in configs:
                rs = by_config[c.name]
                results[(n, c.name)] = rs
                outputs.add(rs[-1].stdout)
                wall = med(rs, "wall")
                print(f"{n:>5} services, {c.name:<19} {resources:>9,} {len(json.loads(rs[-1].stdout)):>8} "
                      f"{wall:6.2f}s {med(rs, 'cpu'):6.2f}s {med(rs, 'maxrss_mb'):7.0f}MB {med(rs, 'tree_pss_mb'):7.0f}MB "
                      f"{resources / wall:11,.0f}   wall of each run: {', '.join(f'{r.wall:.2f}' for r in rs)}")
            if len(outputs) > 1:
                print("      the configurations' JSON outputs differ!")
            if args.gateway_api:
                gateway_api_figures(tmp, d, resources, args.runs, baseline)
        if len(sizes) >= 2:
            a, b = sizes[0], sizes[-1]
            for c in configs:
                ra, rb = results[(a, c.name)], results[(b, c.name)]
                print(f"scaling {b}/{a} services, {c.name}: {med(rb, 'wall') / med(ra, 'wall'):.2f}x the wall time, "
                      f"{med(rb, 'cpu') / med(ra, 'cpu'):.2f}x the CPU time, {med(rb, 'maxrss_mb') / med(ra, 'maxrss_mb'):.2f}x "
                      f"the peak memory for {b / a:.1f}x the input")
        n = max(args.runs, 9)
        for label, argv in (("one resource (analyze FILE)", ["analyze", str(one)]), ("meshctl --version", ["--version"])):
            by_config = interleaved(configs, argv, n)
            for c in configs:
                rs = by_config[c.name]
                print(f"{label}, {c.name}: wall {med(rs, 'wall') * 1000:.0f} ms, cpu {med(rs, 'cpu') * 1000:.0f} ms "
                      f"(median of {n})")
        print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
              "(wall times above the CPU times of a single process mean the machine was busy)")
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

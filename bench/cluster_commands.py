"""Benchmark: wall time of the cluster lifecycle commands against the fake API server (loopback HTTP).

Prints, over N runs each (median / min / max, milliseconds):
  - `meshctl --version`                         the CLI's own start-up floor
  - `meshctl verify-install` (whole process)    start-up, kubeconfig, ~45 GETs, render, compare
  - `meshctl install -y` again (whole process)  the idempotent re-run: ~90 requests, all unchanged
  - verify() in-process                         the cluster round trips and comparison alone
  - the client's start-up pieces, once per fresh interpreter:
      import kubernetes + kube.client()         what every cluster command pays
      first typed-API call (AppsV1Api)          what meshctl avoids by using the REST transport

The fake server runs in this process's threads, so it competes for the GIL with in-process
measurements but not with the subprocess ones. The machine's load shows up in wall times; the
CPU time of the whole processes (user+sys) is printed beside them.

    .venv/bin/python bench/cluster_commands.py [--runs 10] [--profile sidecar]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kube.fakeapi import FakeKube  # noqa: E402

MESHCTL = [sys.executable, "-m", "meshctl"]


def _stats(ms: list[float]) -> str:
    return f"median {statistics.median(ms):7.1f}  min {min(ms):7.1f}  max {max(ms):7.1f}"


def _process(args: list[str], runs: int, env: dict) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = subprocess.run(MESHCTL + args, capture_output=True, text=True, env=env)
        wall.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000)
        if out.returncode != 0:
            raise SystemExit(f"meshctl {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return wall, cpu


_PIECES = r"""
import sys, time
t0 = time.perf_counter()
from meshctl import kube
k = kube.client(sys.argv[1])
t1 = time.perf_counter()
k.get("apps/v1", "Deployment", "istiod", "istio-system")
t2 = time.perf_counter()
from kubernetes import client
client.AppsV1Api(k._api).read_namespaced_deployment("istiod", "istio-system")
t3 = time.perf_counter()
print(f"{(t1 - t0) * 1000:.1f} {(t2 - t1) * 1000:.1f} {(t3 - t2) * 1000:.1f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profile", default="sidecar")
    args = parser.parse_args()

    fake = FakeKube(tempfile.mkdtemp(prefix="meshctl-bench-")).start()
    try:
        env = {**os.environ, "NO_COLOR": "1", "KUBECONFIG": fake.kubeconfig}
        kc = ["--kubeconfig", fake.kubeconfig]
        subprocess.run(MESHCTL + ["install", "-y", "--profile", args.profile] + kc, check=True,
                       capture_output=True, env=env)
        print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.runs} runs each; "
              f"profile {args.profile}; {len(fake.objects())} objects in the fake cluster")
        rows = [
            ("meshctl --version", ["--version"]),
            ("meshctl verify-install", ["verify-install"] + kc),
            ("meshctl install -y (re-run, unchanged)", ["install", "-y", "--profile", args.profile] + kc),
        ]
        for label, argv in rows:
            wall, cpu = _process(argv, args.runs, env)
            print(f"{label:<42} wall {_stats(wall)}   cpu median {statistics.median(cpu):7.1f}")

        from meshctl import kube
        from meshctl.install import verify

        k = kube.client(fake.kubeconfig)
        verify.verify(k)  # warm: imports, render caches
        ms = []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = verify.verify(k)
            ms.append((time.perf_counter() - start) * 1000)
        assert result.ok
        requests_before = len(fake.requests)
        verify.verify(k)
        print(f"{'verify() in-process':<42} wall {_stats(ms)}   "
              f"({len(fake.requests) - requests_before} requests per run)")

        pieces = []
        for _ in range(max(3, args.runs // 2)):
            out = subprocess.run([sys.executable, "-c", _PIECES, fake.kubeconfig], capture_output=True, text=True,
                                 check=True, env=env)
            pieces.append([float(x) for x in out.stdout.split()])
        for i, label in enumerate(("import kubernetes + kube.client()", "first GET (REST transport)",
                                   "first typed AppsV1Api call (avoided)")):
            print(f"{label:<42} wall {_stats([p[i] for p in pieces])}")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()

"""Benchmark: `meshctl inject -f` on a file of 1,000 Deployments, wall time through the CLI.

    .venv/bin/python bench/inject.py [--count 1000] [--runs 3]

Prints the best and median wall time of the runs (target: ≤ 2 s for 1,000 Deployments) and
the CPU time the command used, which stays meaningful when other work shares the machine.
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


def deployment(i: int) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{i % 10}
  labels:
    app: app-{i}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: app-{i}
  template:
    metadata:
      labels:
        app: app-{i}
        version: v{i % 3}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9090"
    spec:
      serviceAccountName: app-{i}
      containers:
      - name: app
        image: registry.example.com/app-{i}:1.0
        ports:
        - name: http
          containerPort: 8080
        - name: metrics
          containerPort: 9090
        readinessProbe:
          httpGet:
            path: /ready
            port: http
        livenessProbe:
          tcpSocket:
            port: 8080
        resources:
          requests:
            cpu: 50m
            memory: 64Mi
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    meshctl = os.environ.get("MESHCTL") or os.path.join(os.path.dirname(sys.executable), "meshctl")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "deployments.yaml")
        with open(path, "w") as fh:
            fh.write("---\n".join(deployment(i) for i in range(args.count)))
        out = os.path.join(tmp, "out.yaml")
        times, cpu = [], []
        for _ in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run([meshctl, "inject", "-f", path, "-o", out], capture_output=True)
            times.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr.decode())
                return 1
        size = os.path.getsize(out)
    load = os.getloadavg()[0]
    print(f"meshctl inject: {args.count} Deployments, best {min(times):.2f} s, median "
          f"{statistics.median(times):.2f} s wall over {args.runs} runs; CPU (user+sys) best "
          f"{min(cpu):.2f} s; {size / 1e6:.1f} MB out; load average {load:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: wall time of `meshctl canary shift` against the fake API server (loopback HTTP).

Prints, for N runs each (median / min / max, milliseconds):
  - `meshctl --version`                      the CLI's own start-up floor
  - `meshctl canary shift -f FILE`           the GitOps path (no cluster, no kubernetes import)
  - `meshctl canary shift` on the cluster    the whole command: start-up, kubeconfig, GET/LIST, PUT
    (a VirtualService in `default`, an HTTPRoute over per-version Services in `shop`)
  - shift() over a ClusterTarget in-process  the cluster round trips alone
  - `import kubernetes` pieces               the client's import cost the command pays

    .venv/bin/python bench/canary.py [--runs 15]
"""
from __future__ import annotations

import argparse
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

from tests.kube.fakeapi import FakeKube  # noqa: E402
from tests.kube.test_canary_support import (crd, destination_rule, http_route, seed_crds, service,  # noqa: E402
                                            virtual_service)

MESHCTL = [sys.executable, "-m", "meshctl"]


def timed(cmd: list[str], runs: int, env: dict) -> list[float]:
    out = []
    for i in range(runs):
        t = time.perf_counter()
        p = subprocess.run([c.replace("{w}", str(10 + i % 2 * 10)).replace("{s}", str(90 - i % 2 * 10)) for c in cmd],
                           env=env, capture_output=True, text=True)
        out.append((time.perf_counter() - t) * 1000)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return out


def top_imports(stderr: str) -> list[tuple[str, int]]:
    """Cumulative import time per top-level package from `python -X importtime` output."""
    totals: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, raw = line[len("import time:"):].split("|")
        if not cumulative.strip().isdigit() or raw.startswith("  "):  # header, or nested in its parent
            continue
        package = raw.strip().split(".")[0]
        totals[package] = totals.get(package, 0) + int(cumulative)
    return sorted(totals.items(), key=lambda kv: -kv[1])


def row(label: str, ms: list[float]) -> None:
    print(f"  {label:<44} median {statistics.median(ms):7.1f}   min {min(ms):7.1f}   max {max(ms):7.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    env = dict(os.environ, NO_COLOR="1")
    env.pop("KUBECONFIG", None)
    tmp = Path(tempfile.mkdtemp(prefix="meshctl-bench-canary-"))
    fake = FakeKube(tmp / "kube").start()
    try:
        seed_crds(fake)
        fake.add(virtual_service())
        fake.add(destination_rule())
        fake.add(crd("HTTPRoute", "httproutes", "gateway.networking.k8s.io"))
        fake.add(http_route(("reviews-v1", "reviews-v2"), (100, 0), namespace="shop"))
        for name in ("reviews", "reviews-v1", "reviews-v2"):
            fake.add(service(name, namespace="shop"))
        manifest = tmp / "reviews.yaml"
        import yaml

        manifest.write_text(yaml.safe_dump(virtual_service(["v1", "v2"], [100, 0])) + "---\n"
                            + yaml.safe_dump(destination_rule()))
        print(f"meshctl canary shift, {args.runs} runs each (ms), fake API server at {fake.url}")
        row("meshctl --version", timed(MESHCTL + ["--version"], args.runs, env))
        row("meshctl canary shift reviews S/W -f FILE",
            timed(MESHCTL + ["canary", "shift", "reviews", "{s}/{w}", "--subsets", "v1,v2", "-f", str(manifest)],
                  args.runs, env))
        row("meshctl canary shift reviews S/W (cluster)",
            timed(MESHCTL + ["--kubeconfig", fake.kubeconfig, "canary", "shift", "reviews", "{s}/{w}",
                             "--subsets", "v1,v2"], args.runs, env))
        row("meshctl canary shift reviews S/W (HTTPRoute)",
            timed(MESHCTL + ["--kubeconfig", fake.kubeconfig, "canary", "shift", "reviews", "{s}/{w}", "-n", "shop",
                             "--subsets", "v1,v2"], args.runs, env))
        before = len(fake.requests)
        shift_cmd = MESHCTL + ["--kubeconfig", fake.kubeconfig, "canary", "shift", "reviews", "67/33",
                               "--subsets", "v1,v2"]
        p = subprocess.run([sys.executable, "-X", "importtime"] + shift_cmd[1:], env=env, capture_output=True,
                           text=True)
        print(f"  requests per cluster shift: {len(fake.requests) - before} "
              f"({', '.join(m + ' ' + p.rsplit('/', 1)[-1] for m, p in fake.requests[before:])})")
        print("  import time of one cluster shift, by top-level package (cumulative ms, -X importtime):")
        for name, us in top_imports(p.stderr)[:8]:
            print(f"    {name:<24} {us / 1000:7.1f}")

        from meshctl import kube
        from meshctl.canary import plan, shift, targets

        target = targets.ClusterTarget(kube.client(fake.kubeconfig), "default")
        shift.shift(target, plan.Shift("reviews", "default", ["v1", "v2"], [50, 50]))  # warm: discovery, connections
        ms = []
        for i in range(max(args.runs, 30)):
            t = time.perf_counter()
            shift.shift(target, plan.Shift("reviews", "default", ["v1", "v2"], [90 - i % 2 * 10, 10 + i % 2 * 10]))
            ms.append((time.perf_counter() - t) * 1000)
        row("shift() on the cluster in-process (round trips)", ms)

        for label, code in (("import kubernetes (package)", "import kubernetes"),
                            ("import kubernetes.client + config", "import kubernetes.client, kubernetes.config"),
                            ("meshctl.kube.client() (kubeconfig load)",
                             f"from meshctl import kube; kube.client({str(fake.kubeconfig)!r})")):
            row(label, timed([sys.executable, "-c", code], max(5, args.runs // 2), env))
        baseline = timed([sys.executable, "-c", "pass"], max(5, args.runs // 2), env)
        row("python -c pass (interpreter floor)", baseline)
    finally:
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

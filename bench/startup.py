#!/usr/bin/env python3
"""Start-up cost of the CLI as a user sees it: wall time of whole `meshctl` processes.

    .venv/bin/python bench/startup.py [--runs 20] [--keep-bytecode]

Measures the median (and min / p90) wall time over N runs of

    meshctl --version                            target < 100 ms
    meshctl manifest generate --profile ambient  target < 400 ms

in two set-ups, because bytecode matters here:

  source    meshctl's own modules as this environment runs them. With PYTHONDONTWRITEBYTECODE=1
            (set on the development machines) no .pyc is ever written for the editable checkout,
            so every run compiles meshctl's modules from source.
  compiled  after `python -m compileall` of the meshctl package, which is what `pip install`
            does for a user (third-party packages in the venv are compiled in both set-ups).
            The __pycache__ directories this creates are removed afterwards unless
            --keep-bytecode is given.

It also checks that `meshctl --version` imports none of kubernetes, httpx, jinja2, jsonschema.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "meshctl"
TARGETS_MS = {"--version": 100.0, "manifest generate --profile ambient": 400.0}
HEAVY = ("kubernetes", "httpx", "jinja2", "jsonschema")


def meshctl_path() -> str:
    here = Path(sys.executable).parent / "meshctl"
    if here.exists():
        return str(here)
    found = shutil.which("meshctl")
    if not found:
        sys.exit("meshctl is not installed next to this Python nor on PATH; run with the venv's python")
    return found


def time_runs(argv: list[str], runs: int, env: dict) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system of the child) milliseconds of each run. CPU time barely moves
    when other processes compete for the cores; wall time is what the user waits."""
    for _ in range(2):  # warm the OS file cache; not counted
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall.append((time.perf_counter() - t0) * 1000.0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000.0)
    return wall, cpu


def pycache_dirs() -> set[Path]:
    return {p for p in PACKAGE.rglob("__pycache__") if p.is_dir()}


def heavy_imports_of_version(env: dict) -> list[str]:
    code = ("import sys, runpy; sys.argv=['meshctl','--version']\n"
            "try:\n    runpy.run_module('meshctl', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return [m for m in last.split(",") if m and m in HEAVY]


BREAKDOWN = r"""
import time, sys, io
c = time.process_time
t0 = c(); import meshctl.cli
t1 = c(); import yaml, jinja2
t2 = c(); from meshctl.install import profiles, render
v = profiles.load_values("ambient")
t3 = c(); objs = render.render_objects(v)
t4 = c(); text = render.to_yaml(objs)
t5 = c()
print(f"{(t1-t0)*1e3:.1f} {(t2-t1)*1e3:.1f} {(t3-t2)*1e3:.1f} {(t4-t3)*1e3:.1f} {(t5-t4)*1e3:.1f}")
"""


def breakdown(env: dict, runs: int = 5) -> None:
    """CPU milliseconds of each stage of `manifest generate --profile ambient`, in one process."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", BREAKDOWN], env=env, capture_output=True, text=True, check=True)
        rows.append([float(x) for x in out.stdout.split()])
    med = [statistics.median(col) for col in zip(*rows)]
    names = ["import meshctl.cli (typer, root command)", "import yaml + jinja2",
             "load + validate values", "render (templates, CRDs)", "dump YAML"]
    for name, ms in zip(names, med):
        print(f"    {name:<46} {ms:7.1f} ms cpu")


def report(label: str, name: str, runs: tuple[list[float], list[float]]) -> None:
    samples = sorted(runs[0])
    cpu = statistics.median(runs[1])
    median = statistics.median(samples)
    p90 = samples[min(len(samples) - 1, int(round(0.9 * (len(samples) - 1))))]
    target = TARGETS_MS[name]
    verdict = "ok" if median < target else "OVER TARGET"
    print(f"  {label:<9} meshctl {name:<38} median {median:7.1f} ms   min {samples[0]:7.1f}   "
          f"p90 {p90:7.1f}   cpu median {cpu:7.1f} ms   target < {target:.0f} ms: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep-bytecode", action="store_true",
                        help="keep the __pycache__ directories compileall creates under meshctl/")
    args = parser.parse_args()

    exe = meshctl_path()
    env = dict(os.environ, NO_COLOR="1")
    env.pop("KUBECONFIG", None)
    commands = {name: [exe, *name.split()] for name in TARGETS_MS}

    print(f"meshctl: {exe}")
    print(f"python:  {sys.version.split()[0]}   cpus: {os.cpu_count()}   "
          f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!s}   runs per command: {args.runs}")

    heavy = heavy_imports_of_version(env)
    print(f"`meshctl --version` imports {', '.join(heavy) if heavy else 'none of ' + ', '.join(HEAVY)}")

    before = pycache_dirs()
    if before:
        print(f"note: {len(before)} __pycache__ directories already exist under meshctl/; "
              "the 'source' figures then include cached bytecode")
    print("\nsource (meshctl modules compiled on every run):")
    for name, argv in commands.items():
        report("source", name, time_runs(argv, args.runs, env))

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PACKAGE)], check=True,
                   env=dict(env, PYTHONDONTWRITEBYTECODE=""))
    try:
        print("\ncompiled (after `python -m compileall meshctl`, as pip install leaves it):")
        for name, argv in commands.items():
            report("compiled", name, time_runs(argv, args.runs, env))
        print("\n  where manifest generate spends its CPU (compiled, median of 5, in one process):")
        breakdown(env)
    finally:
        if not args.keep_bytecode:
            for d in sorted(pycache_dirs() - before, reverse=True):
                shutil.rmtree(d, ignore_errors=True)
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())

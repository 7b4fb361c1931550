#!/usr/bin/env python3
"""Schema validation throughput on a generated corpus.

    .venv/bin/python bench/schemas.py [--services 2000] [--corpus DIR] [--jsonschema]

Generates the corpus with ../shared/bench/gen_corpus.py when --corpus is not given, loads it
once, then times meshctl.schemas.validate over every object (Istio kinds are validated, the
rest are skipped quickly).  --jsonschema also times a plain jsonschema Draft 2020-12 validator
on the same spec schemas, for comparison.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=2000)
    ap.add_argument("--corpus", help="directory of YAML files (default: generate one)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jsonschema", action="store_true", help="also time jsonschema's validator")
    args = ap.parse_args()

    from meshctl.loader import load_paths
    from meshctl.schemas import KINDS, istio_kind, spec_schema
    from meshctl.schemas.validate import validate, validator_for

    corpus = args.corpus
    if corpus is None:
        corpus = tempfile.mkdtemp(prefix="meshctl-corpus-")
        gen = os.path.join(ROOT, "..", "shared", "bench", "gen_corpus.py")
        subprocess.run([sys.executable, gen, "--services", str(args.services), "--out", corpus],
                       check=True, stdout=subprocess.DEVNULL)
    resources = load_paths([corpus], recursive=True).resources
    istio = [r for r in resources if istio_kind(r.api_version, r.kind)]

    t = time.perf_counter()
    for k in KINDS:
        validator_for(k.kind)
    compile_s = time.perf_counter() - t
    print(f"compile 15 validators: {compile_s * 1000:.1f} ms")

    best = float("inf")
    errors = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        errors = sum(len(validate(r)) for r in resources)
        best = min(best, time.perf_counter() - t)
    print(f"meshctl validate: {len(resources)} objects ({len(istio)} Istio) in {best * 1000:.0f} ms "
          f"(best of {args.repeat}): {len(istio) / best:,.0f} Istio objects/s, {errors} errors")

    if args.jsonschema:
        import jsonschema

        validators = {k.kind: jsonschema.Draft202012Validator(spec_schema(k.kind)) for k in KINDS}
        t = time.perf_counter()
        n = sum(1 for r in istio for _ in validators[r.kind].iter_errors(r.spec))
        dt = time.perf_counter() - t
        print(f"jsonschema iter_errors (spec only): {len(istio)} objects in {dt * 1000:.0f} ms: "
              f"{len(istio) / dt:,.0f} objects/s, {n} errors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

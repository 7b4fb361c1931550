#!/usr/bin/env python3
"""The CEL libraries on PyPI, measured on the Gateway API CRDs' rules.

    .venv/bin/pip install cel-python common-expression-language   # the two meshctl does not ship
    .venv/bin/python bench/cel_libraries.py [--repeat 200]

For each library: import cost (`python -X importtime`, median of 3 fresh processes), how many of
the CRDs' rules it compiles (transition rules, which need `oldSelf`, left out) and how long that
takes, correctness (20 cases with known answers covering every CEL feature and Kubernetes
function the rules use, plus every rule on the values the Gateway API project's valid examples
give it, which must all hold), and evaluation time per rule on those values. Kubernetes'
`isIP`, and the `split`/`substring` string functions where a library lacks them, are supplied
as Python functions, as meshctl would have to. A library that is not installed is skipped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = [
    ("has(self.a) && self.a == 1", {"a": 1}, True),
    ("has(self.b)", {"a": 1}, False),
    ("self.all(x, x > 0)", [1, 2], True),
    ("self.all(p1, self.exists_one(p2, p1.name == p2.name))", [{"name": "a"}, {"name": "a"}], False),
    ("self.filter(f, f.type == 'A').size() <= 1", [{"type": "A"}, {"type": "A"}], False),
    ("size(self) == 2", [1, 2], True),
    ('self.value.matches(r"""^(\\*\\.)?[a-z0-9]+$""")', {"value": "*.abc"}, True),
    ('self.service.matches(r"""^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$""")', {"service": "Foo.Bar"}, True),
    ("self.all(key, key.split('/')[0].size() < 253)", {"example.com/x": "1"}, True),
    ("self.all(h, h.contains('*') ? (h.startsWith('*.') && h.substring(2).matches('^[a-z.]+$')) : true)",
     ["*.foo.com"], True),
    ("self.all(h, !isIP(h))", ["1.2.3.4"], False),
    ("self.all(h, !isIP(h))", ["foo.com"], True),
    ("!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s') && "
     "duration(self.backendRequest) > duration(self.request))", {"request": "10s", "backendRequest": "20s"}, False),
    ("!('*' in self && self.size() > 1)", ["*", "GET"], False),
    ("self.type in ['Exact','PathPrefix'] ? !self.value.endsWith('/..') : true", {"type": "Exact", "value": "/a/.."}, False),
    ("self.all(p1, has(p1.__namespace__))", [{"__namespace__": "x"}], True),
    ("(self.size() > 0 ? (has(self[0].matches) ? self[0].matches.size() : 0) : 0) <= 128", [{"matches": [1, 2]}], True),
    ("self.numerator <= self.denominator", {"numerator": 5, "denominator": 3}, False),
    ("self.all(l, l.protocol in ['HTTP', 'TCP', 'UDP'] ? !has(l.tls) : true)", [{"protocol": "HTTP", "tls": {}}], False),
    ("self.mode == 'Terminate' ? size(self.certificateRefs) > 0 || size(self.options) > 0 : true",
     {"mode": "Terminate", "certificateRefs": [], "options": {}}, False),
]

LIBRARIES = {
    "cel-expr-python": "cel_expr_python.cel",
    "common-expression-language": "cel",
    "cel-python": "celpy",
}


def _is_ip(s):
    from meshctl.schemas.cel import is_ip

    return is_ip(str(s))


def backend(name):
    """(compile(source) -> program, evaluate(program, value) -> result) for a library."""
    if name == "cel-expr-python":
        from cel_expr_python import cel
        from cel_expr_python.ext import ext_strings

        env = cel.NewEnv(variables={"self": cel.Type.DYN}, extensions=[ext_strings.ExtStrings()],
                         functions=[cel.FunctionDecl("isIP", [cel.Overload("isIP_string", cel.Type.BOOL,
                                                                               [cel.Type.STRING], impl=_is_ip)])])
        return env.compile, lambda p, v: p.eval(data={"self": v}).plain_value()
    if name == "common-expression-language":
        import cel

        fns = {"isIP": _is_ip, "split": lambda s, sep: s.split(sep),
               "substring": lambda s, i, j=None: s[i:j]}
        return cel.compile, lambda p, v: p.execute({"self": v, **fns})
    if name == "cel-python":
        import celpy
        from celpy import celtypes

        env = celpy.Environment()
        fns = {"isIP": lambda s: celtypes.BoolType(_is_ip(s)),
               "split": lambda s, sep: celtypes.ListType([celtypes.StringType(x) for x in str(s).split(str(sep))]),
               "substring": lambda s, i, j=None: celtypes.StringType(str(s)[int(i):None if j is None else int(j)])}
        return (lambda src: env.program(env.compile(src), functions=fns),
                lambda p, v: p.evaluate({"self": celpy.json_to_cel(v)}))
    raise KeyError(name)


def example_pairs() -> list[tuple[str, object]]:
    """(rule, self) for every rule of every node of the valid Gateway API examples, with
    defaults applied and property names escaped, as meshctl evaluates them."""
    import yaml

    from meshctl.schemas import gatewayapi
    from meshctl.schemas.cel import escaper, rules_of
    from meshctl.schemas.validate import defaulter

    pairs = []

    def walk(node, value):
        if not isinstance(node, dict) or value is None:
            return
        rules = rules_of(node)
        if rules:
            esc = escaper(node)
            v = esc(value) if esc else value
            pairs.extend((r.rule, v) for r in rules)
        if isinstance(value, dict):
            for k, sub in (node.get("properties") or {}).items():
                if k in value:
                    walk(sub, value[k])
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for item in value:
                walk(node["items"], item)

    for path in sorted((ROOT / "tests" / "data" / "gateway-api" / "examples" / "standard").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
                continue
            if gatewayapi.gateway_api_kind(str(doc.get("apiVersion")), str(doc.get("kind"))) is None:
                continue
            schema = gatewayapi.spec_schema(doc["kind"])
            d = defaulter(schema)
            walk(schema, d(doc["spec"]) if d else doc["spec"])
    return pairs


def all_rules() -> list[str]:
    from meshctl.schemas import gatewayapi
    from meshctl.schemas.cel import rules_of

    out = set()

    def walk(node):
        if isinstance(node, dict):
            out.update(r.rule for r in rules_of(node))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    for kind in gatewayapi.SUPPORTED:
        walk(gatewayapi.spec_schema(kind))
    return sorted(out)


def import_ms(module: str) -> float:
    times = []
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                              capture_output=True, text=True)
        last = [line for line in proc.stderr.splitlines() if line.startswith("import time:")][-1]
        times.append(int(last.split("|")[1]) / 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200, help="evaluations of each example pair")
    args = ap.parse_args()
    rules = all_rules()
    pairs = example_pairs()
    print(f"{len(rules)} distinct rules (transition rules left out); {len(pairs)} (rule, value) pairs "
          f"from the valid examples; {len(CASES)} feature cases")
    for name, module in LIBRARIES.items():
        try:
            compile_, evaluate = backend(name)
        except ImportError:
            print(f"{name:28} not installed")
            continue
        t = time.perf_counter()
        programs, broken = {}, []
        for r in rules:
            try:
                programs[r] = compile_(r)
            except Exception as exc:
                broken.append(f"{r[:50]}: {str(exc).splitlines()[0][:80]}")
        compile_ms = (time.perf_counter() - t) * 1000
        right = 0
        for src, value, want in CASES:
            try:
                right += evaluate(compile_(src), value) == want
            except Exception:
                pass
        held = 0
        for rule, value in pairs:
            try:
                held += rule in programs and evaluate(programs[rule], value) is True or \
                    (rule in programs and str(evaluate(programs[rule], value)) == "True")
            except Exception:
                pass
        usable = [(programs[r], v) for r, v in pairs if r in programs]
        repeat = max(1, args.repeat if name != "cel-python" else args.repeat // 20)
        t = time.perf_counter()
        for _ in range(repeat):
            for p, v in usable:
                try:
                    evaluate(p, v)
                except Exception:
                    pass
        per_eval = (time.perf_counter() - t) / (repeat * max(1, len(usable))) * 1e6
        print(f"{name:28} import {import_ms(module):6.1f} ms  compile {len(programs)}/{len(rules)} rules in "
              f"{compile_ms:5.0f} ms  cases {right}/{len(CASES)}  example rules holding {held}/{len(pairs)}  "
              f"eval {per_eval:7.1f} µs/rule")
        for b in broken:
            print(f"{'':28} cannot compile {b}")


if __name__ == "__main__":
    main()

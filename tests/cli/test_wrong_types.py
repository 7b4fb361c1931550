"""Every command that reads manifests, fed documents whose fields have the wrong type at every
depth (a mapping where a list belongs, a list where a string belongs, a number, null...), answers
with a result or a one-line error and a documented exit code (0, 1 or 2) — never an internal error
(exit 70), never a traceback.

The sweep is exhaustive over the fields of realistic documents, not random: each variant replaces
one field (at any depth) with one value of another type, so a failure names the field and value.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

# What a Python value looks like when printed as is: a repr of a list or dict, an object address.
PYTHON_REPR = re.compile(r"\['|\{'|object at 0x|<class |\bNoneType\b")
WRONG: tuple[Any, ...] = (None, 7, "text", ["x"], {"k": "v"}, [{"k": "v"}], True)

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "reviews-v2", "namespace": "shop", "labels": {"app": "reviews", "version": "v2"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "reviews", "version": "v2"}},
        "template": {
            "metadata": {"labels": {"app": "reviews", "version": "v2"},
                         "annotations": {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true",
                                         "traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}},
            "spec": {
                "serviceAccountName": "bookinfo-reviews",
                "containers": [{"name": "reviews", "image": "example/reviews:2",
                                "ports": [{"containerPort": 9080, "name": "http"}],
                                "env": [{"name": "LOG", "value": "1"}],
                                "readinessProbe": {"httpGet": {"path": "/health", "port": 9080}},
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    },
}
SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080, "targetPort": 9080}]},
}
VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {
        "hosts": ["reviews"], "gateways": ["mesh", "shop/web"],
        "http": [
            {"name": "canary", "match": [{"headers": {"end-user": {"exact": "jason"}}, "uri": {"prefix": "/"}}],
             "route": [{"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}}}]},
            {"name": "primary",
             "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                       {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}],
             "retries": {"attempts": 3, "perTryTimeout": "2s"}, "timeout": "10s",
             "fault": {"delay": {"percentage": {"value": 5}, "fixedDelay": "1s"}}},
        ],
    },
}
DESTINATION_RULE = {
    "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {
        "host": "reviews",
        "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"},
                          "connectionPool": {"http": {"http1MaxPendingRequests": 10}},
                          "outlierDetection": {"consecutive5xxErrors": 3, "interval": "10s"}},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
    },
}
OTHERS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}},
    {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "web", "namespace": "shop"},
     "spec": {"selector": {"istio": "ingressgateway"},
              "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}},
    {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
     "metadata": {"name": "default", "namespace": "shop"}, "spec": {"mtls": {"mode": "STRICT"}}},
    {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
     "metadata": {"name": "reviews", "namespace": "shop"},
     "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "action": "ALLOW",
              "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/productpage"]}}],
                         "to": [{"operation": {"methods": ["GET"], "paths": ["/reviews/*"]}}]}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
     "metadata": {"name": "api", "namespace": "shop"},
     "spec": {"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
              "resolution": "DNS", "location": "MESH_EXTERNAL"}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "ratings", "namespace": "shop", "labels": {"app": "ratings"},
                  "annotations": {"sidecar.istio.io/inject": "true"}},
     "spec": {"containers": [{"name": "ratings", "image": "example/ratings:1"}]}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
     "data": {"a": "b"}},
]
VALUES = {
    "hub": "registry.example/istio", "tag": "1.30.0",
    "meshConfig": {"accessLogFile": "/dev/stdout", "defaultConfig": {"holdApplicationUntilProxyStarts": True},
                   "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
    "global": {"proxy": {"resources": {"requests": {"cpu": "100m"}}}, "logging": {"level": "default:info"}},
    "components": {"cni": {"enabled": False}, "ingressGateways": [{"name": "istio-ingressgateway", "enabled": True}]},
}


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a field at any depth (not the document root itself)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _set(doc: Any, path: tuple, value: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def variants(doc: dict, skip: tuple = (("apiVersion",), ("kind",))) -> Iterator[tuple[str, dict]]:
    for path in _paths(doc):
        if path in skip:
            continue
        current = doc
        for key in path:
            current = current[key]
        for wrong in WRONG:
            if type(wrong) is type(current) or (wrong == current):
                continue
            yield f"{'.'.join(map(str, path))} = {json.dumps(wrong)}", _set(doc, path, wrong)


def _dump(docs: list) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def _problem(result, what: str) -> str | None:
    """None when the result is one of the documented outcomes, else what went wrong."""
    if result.exit_code not in (0, 1, 2):
        return f"{what}: exit {result.exit_code}: {result.stderr.strip()[-300:]}"
    if "Traceback" in result.stderr or "internal error" in result.stderr:
        return f"{what}: {result.stderr.strip()[-300:]}"
    python = PYTHON_REPR.search(result.stdout + result.stderr)
    if python:
        text = result.stdout + result.stderr
        line = next(ln for ln in text.splitlines() if python.group(0) in ln)
        return f"{what}: speaks Python: {line[:300]}"
    if result.exit_code == 2:
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
        if len(errors) != 1 or not result.stderr.startswith("error: "):
            return f"{what}: not one error line: {result.stderr[:300]!r}"
    return None


def _sweep(run, cases) -> None:
    problems = [p for p in (run(what, docs) for what, docs in cases) if p]
    assert not problems, f"{len(problems)} variant(s) end badly:\n" + "\n".join(problems[:400])


def test_analyze_never_fails_internally_on_wrong_types(cli, tmp_path):
    base = [DEPLOYMENT, SERVICE, VIRTUAL_SERVICE, DESTINATION_RULE, *OTHERS]
    f = tmp_path / "in.yaml"

    def run(what, docs):
        f.write_text(_dump(docs))
        return _problem(cli("analyze", str(f)), f"analyze [{what}]")

    cases = ((f"{doc['kind']}.{what}", [d if d is not doc else v for d in base])
             for doc in base for what, v in variants(doc))
    _sweep(run, cases)


def test_inject_never_fails_internally_on_wrong_types(cli, tmp_path):
    f = tmp_path / "in.yaml"
    out = tmp_path / "out.yaml"

    def run(what, docs):
        f.write_text(_dump(docs))
        if out.exists():
            out.unlink()
        r = cli("inject", "-f", str(f), "--output-file", str(out))
        if r.exit_code == 2 and out.exists():
            return f"inject [{what}]: exit 2 but {out.name} was written"
        return _problem(r, f"inject [{what}]")

    docs = [DEPLOYMENT, OTHERS[-2], OTHERS[-1], SERVICE]
    cases = ((f"{doc['kind']}.{what}", [v]) for doc in docs for what, v in variants(doc))
    _sweep(run, cases)


def test_canary_shift_files_never_fail_internally_on_wrong_types(cli, tmp_path):
    vs, dr = tmp_path / "vs.yaml", tmp_path / "dr.yaml"

    def run(what, docs):
        vs.write_text(_dump([docs[0]]))
        dr.write_text(_dump([docs[1]]))
        before = vs.read_text()
        r = cli("canary", "shift", "reviews", "80/20", "-n", "shop", "-f", str(vs), "-f", str(dr))
        if r.exit_code != 0 and vs.read_text() != before:
            return f"canary shift [{what}]: exit {r.exit_code} but the file was changed"
        return _problem(r, f"canary shift [{what}]")

    cases = [(f"VirtualService.{w}", [v, DESTINATION_RULE]) for w, v in variants(VIRTUAL_SERVICE)]
    cases += [(f"DestinationRule.{w}", [VIRTUAL_SERVICE, v]) for w, v in variants(DESTINATION_RULE)]
    _sweep(run, cases)


HTTP_ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
        "rules": [
            {"matches": [{"headers": [{"name": "end-user", "value": "jason"}], "path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "reviews-v2", "port": 9080}]},
            {"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": 90},
                             {"name": "reviews-v2", "port": 9080, "weight": 10}],
             "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "reviews-v2", "port": 9080},
                                                                     "percent": 5}}],
             "timeouts": {"request": "10s"}},
        ],
    },
}
VERSION_SERVICES = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"reviews-{v}", "namespace": "shop"},
                     "spec": {"selector": {"app": "reviews", "version": v}, "ports": [{"port": 9080}]}}
                    for v in ("v1", "v2")]


def test_canary_shift_of_httproute_files_never_fails_internally_on_wrong_types(cli, tmp_path):
    route, services = tmp_path / "route.yaml", tmp_path / "services.yaml"

    def run(what, docs):
        route.write_text(_dump([docs[0]]))
        services.write_text(_dump(docs[1:]))
        before = route.read_text()
        r = cli("canary", "shift", "reviews", "80/20", "--header", "x-user=beta", "-n", "shop", "-f", str(route),
                "-f", str(services))
        if r.exit_code != 0 and route.read_text() != before:
            return f"canary shift [{what}]: exit {r.exit_code} but the file was changed"
        return _problem(r, f"canary shift [{what}]")

    cases = [(f"HTTPRoute.{w}", [v, *VERSION_SERVICES]) for w, v in variants(HTTP_ROUTE)]
    cases += [(f"Service.{w}", [HTTP_ROUTE, v, VERSION_SERVICES[1]]) for w, v in variants(VERSION_SERVICES[0])]
    _sweep(run, cases)


def test_manifest_generate_never_fails_internally_on_wrong_types(cli, tmp_path):
    f = tmp_path / "values.yaml"

    def run(what, docs):
        f.write_text(_dump(docs))
        return _problem(cli("manifest", "generate", "--profile", "minimal", "-f", str(f)), f"manifest generate [{what}]")

    cases = ((w, [v]) for w, v in variants(VALUES, skip=()))
    _sweep(run, cases)

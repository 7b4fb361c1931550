"""Hostile and random input: analyze always ends with exit 0, 1 or 2 and either findings or a
one-line error, never a traceback or an internal error (exit 70)."""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [p.read_text() for p in sorted((ROOT / "examples" / "bookinfo").glob("*.yaml"))]

yaml_pieces = st.sampled_from(list("abc:-[]{}&*!|>'\"#%@`,?\n\t  0123456789.~/=") + ["---\n", "\x00", "é", "\ufeff",
                                                                                  "kind: ", "apiVersion: v1\n"])


def yaml_text(max_size: int):
    return st.lists(yaml_pieces, max_size=max_size).map("".join)


def _check(result) -> None:
    assert result.exit_code in (0, 1, 2), result
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert lines[0].startswith("error: ") and len(lines) <= 2, result  # error, and maybe a hint
    else:
        assert isinstance(json.loads(result.stdout), list)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes(cli, data):
    _check(cli("analyze", "-o", "json", "-", input=data))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=yaml_text(300))
def test_random_yaml_like_text(cli, text):
    _check(cli("analyze", "-o", "json", "-", input=text))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 5000), junk=yaml_text(20),
       drop=st.integers(0, 3000))
def test_mutated_manifests(cli, seed, cut, junk, drop):
    cut %= len(seed) + 1
    text = seed[:cut] + junk + seed[cut + drop % 40:]
    _check(cli("analyze", "-o", "json", "-", input=text))


def _values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.text(max_size=8),
                        st.floats(allow_nan=False, allow_infinity=False))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                        max_leaves=12)


FIELDS = ["hosts", "http", "tcp", "tls", "gateways", "exportTo", "subsets", "host", "trafficPolicy", "servers",
          "selector", "ports", "workloadSelector", "rules", "route", "match", "mirror", "containers", "labels"]


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar",
                             "AuthorizationPolicy", "Service", "Pod", "Deployment", "Namespace", "Secret",
                             "ConfigMap", "MutatingWebhookConfiguration", "EnvoyFilter", "Telemetry"]),
       spec=st.dictionaries(st.sampled_from(FIELDS), _values(), max_size=5),
       meta=st.dictionaries(st.sampled_from(["labels", "annotations", "namespace", "name"]), _values(), max_size=3))
def test_wrongly_typed_fields_never_crash_analyzers(cli, kind, spec, meta):
    group = {"Service": "v1", "Pod": "v1", "Namespace": "v1", "Secret": "v1", "ConfigMap": "v1",
             "Deployment": "apps/v1", "MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
             "AuthorizationPolicy": "security.istio.io/v1", "Telemetry": "telemetry.istio.io/v1",
             "EnvoyFilter": "networking.istio.io/v1alpha3"}.get(kind, "networking.istio.io/v1")
    doc = {"apiVersion": group, "kind": kind, "metadata": dict({"name": "x"}, **meta), "spec": spec}
    r = cli("analyze", "-o", "json", "-", input=json.dumps(doc))
    _check(r)
    assert all(m["code"] != "IST0001" for m in json.loads(r.stdout or "[]")), r.stdout


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 5000), junk=st.text(max_size=10))
def test_mutated_json_files(cli, tmp_path_factory, seed, cut, junk):
    import yaml

    text = json.dumps([d for d in yaml.safe_load_all(seed) if d], indent=1)
    cut %= len(text) + 1
    f = tmp_path_factory.mktemp("json") / "input.json"
    f.write_text(text[:cut] + junk + text[cut:])
    _check(cli("analyze", "-o", "json", str(f)))


GATEWAY_API_DOCS = []
for _p in sorted((ROOT / "tests" / "data" / "gateway-api" / "examples" / "standard").rglob("*.yaml")):
    import yaml as _yaml

    GATEWAY_API_DOCS += [d for d in _yaml.safe_load_all(_p.read_text())
                         if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("gateway.networking.k8s.io")]
WEIRD = st.sampled_from([None, 2 ** 70, -1, 1.5, "", "x" * 300, [], {}, [None], {"namespace": 3}, True, "ünï", [[[]]]])


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, path + (i,))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.sampled_from(GATEWAY_API_DOCS), picks=st.lists(st.tuples(st.integers(0, 10 ** 6), WEIRD), max_size=3))
def test_gateway_api_objects_with_wrong_values_anywhere(cli, doc, picks):
    # every CEL rule meets values of the wrong type, nulls, huge numbers: findings, never a crash
    import copy

    import yaml

    doc = copy.deepcopy(doc)
    for index, value in picks:
        paths = [p for p in _paths(doc) if len(p) > 1 and p[0] == "spec"]
        if not paths:
            break
        path = paths[index % len(paths)]
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = copy.deepcopy(value)
    _check(cli("analyze", "-o", "json", "-", input=yaml.safe_dump(doc)))

"""Install values: profiles, -f files, --set typing, schema errors with did-you-mean."""
from __future__ import annotations

import re

import pytest
import yaml

from meshctl.errors import InputError
from meshctl.install import profiles
from meshctl.install.profiles import apply_set, load_values, parse_path, parse_value
from meshctl.paths import profiles_dir

PROFILES = ("ambient", "minimal", "sidecar")


def test_list_profiles():
    assert profiles.list_profiles() == list(PROFILES)


def _keys_with_lines(path):
    """(dotted key, 1-based line, inside a list item) of every mapping key in a YAML file."""
    node = yaml.compose(path.read_text())
    out = []

    def walk(n, prefix, in_list):
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                name = f"{prefix}.{k.value}" if prefix else k.value
                out.append((name, k.start_mark.line + 1, in_list))
                walk(v, name, in_list)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, f"{prefix}[{i}]", True)

    walk(node, "", False)
    return out


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_key_is_commented(name):
    path = profiles_dir() / f"{name}.yaml"
    lines = path.read_text().splitlines()
    missing = []
    for key, line, in_list in _keys_with_lines(path):
        text = lines[line - 1]
        if "#" in text.split(":", 1)[-1]:
            continue  # inline comment
        prev = line - 2
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        above = lines[prev].strip() if prev >= 0 else ""
        if above.startswith("#"):
            continue
        missing.append(f"{key} (line {line})")
    assert not missing, f"keys without a comment in {path.name}: {missing}"


@pytest.mark.parametrize("name", PROFILES)
def test_profile_values_are_valid_and_complete(name):
    values = load_values(name)
    assert values["profile"] == name
    assert values["hub"] == "docker.io/istio"
    assert values["tag"].startswith("1.24.")
    assert values["revision"] == ""
    assert values["namespace"] == "istio-system"
    assert values["global"]["proxy"]["image"] == "proxyv2"
    # the three profiles share one shape: same keys, different switches
    def keys(d, prefix=""):
        return {prefix + k for k in d} | {x for k, v in d.items() if isinstance(v, dict) and k not in ("env", "labels", "proxyMetadata", "annotations")
                                          for x in keys(v, prefix + k + ".")}
    assert keys(values) == keys(load_values("sidecar"))


def test_profile_switches():
    c = {p: load_values(p)["components"] for p in PROFILES}
    on = {p: {k for k, v in comps.items() if v["enabled"]} for p, comps in c.items()}
    assert on["sidecar"] == {"base", "pilot", "ingressGateway"}
    assert on["ambient"] == {"base", "pilot", "cni", "ztunnel"}
    assert on["minimal"] == {"base", "pilot"}
    assert load_values("ambient")["meshConfig"]["defaultConfig"]["proxyMetadata"] == {"ISTIO_META_ENABLE_HBONE": "true"}


def test_unknown_profile_suggests():
    with pytest.raises(InputError) as e:
        load_values("sidcar")
    assert "unknown profile 'sidcar'" in e.value.message
    assert "did you mean 'sidecar'" in e.value.hint


def test_merge_order_profile_then_files_then_sets(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("tag: a-tag\ncomponents:\n  pilot:\n    replicas: 2\n    env: {A: '1'}\n")
    b.write_text("tag: b-tag\ncomponents:\n  pilot:\n    env: {B: '2'}\n")
    v = load_values("minimal", files=[str(a), str(b)])
    assert v["tag"] == "b-tag"  # later file wins
    assert v["components"]["pilot"]["replicas"] == 2  # earlier file kept where the later is silent
    assert v["components"]["pilot"]["env"] == {"A": "1", "B": "2"}  # mappings merge
    assert v["components"]["pilot"]["resources"]["requests"]["cpu"] == "500m"  # profile kept
    v = load_values("minimal", files=[str(a), str(b)], sets=["tag=set-tag", "components.pilot.replicas=4"])
    assert v["tag"] == "set-tag"
    assert v["components"]["pilot"]["replicas"] == 4
    v = load_values("minimal", sets=["tag=x", "tag=y"])
    assert v["tag"] == "y"  # later --set wins


def test_istioctl_values_prefix_in_set_is_accepted():
    v = load_values("sidecar", sets=["values.meshMTLS=PERMISSIVE", "values.components.pilot.replicas=3"])
    assert v["meshMTLS"] == "PERMISSIVE" and v["components"]["pilot"]["replicas"] == 3
    assert v == load_values("sidecar", sets=["meshMTLS=PERMISSIVE", "components.pilot.replicas=3"])
    with pytest.raises(InputError, match="unknown key global.nosuch"):
        load_values("sidecar", sets=["values.global.nosuch=1"])


def test_files_replace_lists(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text("components:\n  cni:\n    excludeNamespaces: [a, b]\n")
    assert load_values("ambient", files=[str(f)])["components"]["cni"]["excludeNamespaces"] == ["a", "b"]


def test_revision_argument_wins_over_values(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text("revision: from-file\n")
    assert load_values("sidecar", files=[str(f)])["revision"] == "from-file"
    assert load_values("sidecar", files=[str(f)], revision="canary")["revision"] == "canary"
    assert load_values("sidecar", files=[str(f)], revision="")["revision"] == ""


@pytest.mark.parametrize("text, expected", [
    ("3", 3), ("-2", -2), ("0.5", 0.5), ("1e3", 1000.0), ("true", True), ("False", False),
    ("null", None), ('"1.0"', "1.0"), ("'007'", "007"), ('"true"', "true"), ("1.24.0", "1.24.0"),
    ("hello world", "hello world"), ("[1, \"a\"]", [1, "a"]), ('{"a": 1}', {"a": 1}),
    ("0123abc", "0123abc"), ("", ""), ("on", "on"), ("yes", "yes"),
])
def test_set_value_typing(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_set_paths_and_lists():
    v = load_values("sidecar", sets=[
        "components.ingressGateway.service.ports[1].port=8080",
        "components.ingressGateway.service.ports[3].name=tcp",
        "components.ingressGateway.service.ports[3].port=31400",
        "components.pilot.env.PILOT_X=1",
        r"components.ingressGateway.service.annotations.cloud\.example\.com/lb=internal",
    ])
    ports = v["components"]["ingressGateway"]["service"]["ports"]
    assert ports[1] == {"name": "http2", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    assert ports[3] == {"name": "tcp", "port": 31400}
    assert v["components"]["pilot"]["env"] == {"PILOT_X": 1}
    assert v["components"]["ingressGateway"]["service"]["annotations"] == {"cloud.example.com/lb": "internal"}


def test_parse_path():
    assert parse_path("a.b[0].c") == ["a", "b", 0, "c"]
    assert parse_path("a[1][2]") == ["a", 1, 2]
    assert parse_path(r"x.k\.y") == ["x", "k.y"]
    for bad in ("", "a..b", "[0]", "a.[0]", "a[x]"):
        with pytest.raises(InputError):
            parse_path(bad)


@pytest.mark.parametrize("expr, message", [
    ("components.pilot.replicas", "has no '='"),
    ("components.ingressGateway.service.ports[9].port=1", "index 9 is past the end"),
    ("hub[0]=x", "hub: expected string, got a list"),  # --set may replace a value by a container
    ("components.pilot.replicas.x=1", "components.pilot.replicas: expected integer, got a mapping"),
    ("components.ingressGateway.service.ports.name=x", "components.ingressGateway.service.ports: expected a list, got a mapping"),
])
def test_set_errors(expr, message):
    with pytest.raises(InputError) as e:
        load_values("sidecar", sets=[expr])
    assert message in e.value.message


@pytest.mark.parametrize("sets, message", [
    (["components.pilot.replica=2"], "unknown key components.pilot.replica; did you mean components.pilot.replicas?"),
    (["meshConfig.acessLogFile=x"], "unknown key meshConfig.acessLogFile; did you mean meshConfig.accessLogFile?"),
    (["components.ingresGateway.enabled=false"],
     "unknown key components.ingresGateway; did you mean components.ingressGateway?"),
    (["components.pilot.replicas=two"], 'components.pilot.replicas: expected integer, got string "two"'),
    (["components.pilot.autoscale.enabled=1"], "components.pilot.autoscale.enabled: expected boolean, got number 1"),
    (["tag=1.0"], "tag: expected string, got number 1.0"),
    (["meshMTLS=STRIKT"], 'meshMTLS: string "STRIKT" is not one of "STRICT", "PERMISSIVE"'),
    (["components.ingressGateway.service.ports[0].port=70000"],
     "components.ingressGateway.service.ports[0].port: 70000 must be at most 65535"),
    (["revision=Canary_1"], "revision 'Canary_1' is not a valid name"),
])
def test_schema_errors_name_the_path(sets, message):
    with pytest.raises(InputError) as e:
        load_values("sidecar", sets=sets)
    assert e.value.message == message or e.value.message.startswith(message)
    assert "\n" not in e.value.message


def test_revision_default_is_the_control_plane_without_a_revision():
    assert load_values("sidecar", revision="default")["revision"] == ""
    assert load_values("sidecar", sets=["revision=default"])["revision"] == ""
    assert load_values("sidecar", revision="default") == load_values("sidecar")


def test_quoted_tag_is_a_string_and_hint_says_so():
    assert load_values("sidecar", sets=["tag=\"1.0\""])["tag"] == "1.0"
    with pytest.raises(InputError) as e:
        load_values("sidecar", sets=["tag=1.0"])
    assert "--set tag='\"1.0\"'" in e.value.hint


def test_unknown_key_without_close_match_lists_keys():
    with pytest.raises(InputError) as e:
        load_values("sidecar", sets=["zzz=1"])
    assert e.value.message == "unknown key zzz"
    assert "components" in e.value.hint and "meshConfig" in e.value.hint


@pytest.mark.parametrize("content, message", [
    ("a: [1,\n  b: 2\n", r"bad\.yaml:3: invalid YAML"),
    ("tag: x\n  bad: indent\n", r"bad\.yaml:2: invalid YAML"),
    ("- a\n- b\n", r"bad\.yaml:1: a values file must be a mapping"),
    ("a: 1\n---\nb: 2\n", r"bad\.yaml: holds 2 YAML documents"),
])
def test_bad_values_file(tmp_path, content, message):
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    with pytest.raises(InputError) as e:
        load_values("sidecar", files=[str(f)])
    assert re.search(message, e.value.message), e.value.message
    assert str(f) in e.value.message


def test_missing_and_empty_values_file(tmp_path):
    with pytest.raises(InputError) as e:
        load_values("sidecar", files=[str(tmp_path / "nope.yaml")])
    assert "nope.yaml: no such file" in e.value.message
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_values("sidecar", files=[str(empty)]) == load_values("sidecar")


def test_values_are_fresh_copies():
    a = load_values("sidecar")
    a["components"]["pilot"]["replicas"] = 99
    assert load_values("sidecar")["components"]["pilot"]["replicas"] == 1


def test_complete_profile():
    assert profiles.complete_profile("") == list(PROFILES)
    assert profiles.complete_profile("s") == ["sidecar"]
    assert profiles.complete_profile("x") == []


def test_apply_set_in_place():
    v = {"a": {"b": [1]}}
    apply_set(v, "a.b[1]=2")
    apply_set(v, "a.c[0].d=x")
    assert v == {"a": {"b": [1, 2], "c": [{"d": "x"}]}}


def _leaves(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, path + (k,))
        yield path + ("zz-unknown",), None
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _leaves(v, path + (i,))
    yield path, d


def test_schema_checker_agrees_with_jsonschema():
    """profiles.check (a small checker, cheap to import) and the jsonschema package agree on
    the built-in profiles and on every leaf replaced by values of other types."""
    import jsonschema

    schema = profiles.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    reference = jsonschema.Draft202012Validator(schema)
    cases = 0
    for name in PROFILES:
        assert not profiles.check(schema, load_values(name)) and reference.is_valid(load_values(name))
    for name in ("sidecar",):  # the profiles share one shape
        base = load_values(name)
        for path, _ in _leaves(base):
            if not path:
                continue
            node = base
            for step in path[:-1]:
                node = node[step]
            missing = object()
            original = node[path[-1]] if path[-1] in node or isinstance(node, list) else missing
            for replacement in ("x", -1, 2.5, True, None, [], "Bad_Name", 70000):
                node[path[-1]] = replacement
                mine = not profiles.check(schema, base)
                theirs = reference.is_valid(base)
                assert mine == theirs, (name, path, replacement, profiles.check(schema, base)[:1])
                cases += 1
            if original is missing:
                del node[path[-1]]
            else:
                node[path[-1]] = original
        assert base == load_values(name)
    assert cases > 1500


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_key = st.text(alphabet=st.characters(blacklist_characters="[]\\=", blacklist_categories=("Cs", "Cc")),
               min_size=1, max_size=8)
_path = st.lists(st.one_of(_key, st.integers(min_value=0, max_value=20)), min_size=1, max_size=6).filter(
    lambda p: isinstance(p[0], str))


@settings(max_examples=200, deadline=None)
@given(_path)
def test_set_path_round_trip(path):
    """Any path of keys (dots included) and indexes survives format_path → parse_path."""
    assert parse_path(profiles.format_path(path)) == path


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(min_value=-10**12, max_value=10**12), st.booleans(), st.none(),
                 st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)))
def test_set_value_round_trip(value):
    """A value written as --set would quote it comes back with its type: JSON-looking numbers and
    booleans are typed, quoted strings stay strings."""
    import json

    if isinstance(value, str):
        assert parse_value(f'"{value}"') == value
    else:
        assert parse_value(json.dumps(value)) == value


def test_an_istiooperator_file_is_refused_with_a_hint(tmp_path):
    f = tmp_path / "iop.yaml"
    f.write_text("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n"
                 "spec:\n  values:\n    global:\n      proxy: {image: me/proxy:2}\n")
    with pytest.raises(InputError) as e:
        load_values("sidecar", files=[str(f)])
    assert "is an IstioOperator" in e.value.message and "spec.values.global" in e.value.hint


def test_a_values_error_names_the_file_it_comes_from(tmp_path):
    good = tmp_path / "a.yaml"
    good.write_text("hub: registry.example/istio\n")
    bad = tmp_path / "b.yaml"
    bad.write_text("apiVersion: v1\n")
    with pytest.raises(InputError) as e:
        profiles.load_values("sidecar", files=[str(good), str(bad)])
    assert e.value.message == f"-f {bad}: unknown key apiVersion"

"""The kinds and versions meshctl knows per API group (meshctl.analysis.apigroups) agree with
the Kubernetes OpenAPI and Istio's CRDs, and explain what they do not serve."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshctl.analysis.apigroups import KUBERNETES_KINDS, builtin_groups, problem, with_crds

# kinds of the API's own machinery (options, discovery documents), never written in a manifest
NOT_OBJECTS = {"DeleteOptions", "WatchEvent", "Status", "APIGroup", "APIVersions", "APIResourceList"}


def _newest_kubernetes_kinds() -> dict[str, set[str]]:
    kv = pytest.importorskip("kubernetes_validate")
    root = Path(kv.__file__).parent / "kubernetes-json-schema"
    newest = max((d for d in root.iterdir() if d.name.endswith("-local")),
                 key=lambda d: tuple(int(x) for x in d.name[1:].split("-")[0].split(".")))
    data = json.loads((newest / "_definitions.json").read_text())
    out: dict[str, set[str]] = {}
    for definition in (data.get("$defs") or data.get("definitions") or {}).values():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            if not gvk["kind"].endswith("List") and gvk["kind"] not in NOT_OBJECTS:
                out.setdefault(gvk["group"], set()).add(gvk["kind"])
    return out


def test_every_kind_of_the_newest_kubernetes_is_known_in_the_groups_meshctl_checks():
    newest = _newest_kubernetes_kinds()
    for group, kinds in KUBERNETES_KINDS.items():
        missing = newest.get(group, set()) - kinds
        assert not missing, f"{group or 'core'}: add {sorted(missing)}"


def test_istio_kinds_and_versions_are_those_istio_crds_serve(shared_dir):
    import yaml

    crds = [d for d in yaml.safe_load_all((shared_dir / "conformance" / "istio-crds" / "crd-all.gen.yaml").read_text())
            if d]
    groups = builtin_groups()
    served = {(c["spec"]["group"], c["spec"]["names"]["kind"]): {v["name"] for v in c["spec"]["versions"] if v.get("served")}
              for c in crds}
    ours = {(g.name, k): set(v) for g in groups.values() if g.name.endswith(".istio.io") for k, v in g.kinds.items()}
    assert ours == served


@pytest.mark.parametrize("api_version,kind,field,says", [
    ("networking.istio.io/v1", "VirtualServce", "kind", 'did you mean "VirtualService"?'),
    ("networking.istio.io/v1", "virtualservice", "kind", 'did you mean "VirtualService"?'),
    ("gateway.networking.k8s.io/v1", "HTTPRoutes", "kind", 'did you mean "HTTPRoute"?'),
    ("apps/v1", "Deploymnet", "kind", 'did you mean "Deployment"?'),
    ("networking.istio.io/v1", "EnvoyFilter", "apiVersion", "serves EnvoyFilter as v1alpha3 only"),
    ("networking.istio.io/v2", "VirtualService", "apiVersion", "as v1, v1alpha3 or v1beta1"),
    ("networking.istio.io/v1", "AuthorizationPolicy", "apiVersion", "apiVersion: security.istio.io/v1"),
    ("v1", "Deployment", "apiVersion", "Deployment is a kind of apps (apiVersion: apps/v1)"),
    ("networkng.istio.io/v1", "VirtualService", "apiVersion", "did you mean apiVersion: networking.istio.io/v1?"),
    ("security.istio.io/v1", "Policy", "kind", "its kinds: AuthorizationPolicy, PeerAuthentication, RequestAuthentication"),
])
def test_what_a_group_does_not_serve_is_explained(api_version, kind, field, says):
    found = problem(api_version, kind, builtin_groups())
    assert found is not None and found[0] == field and says in found[1], found


@pytest.mark.parametrize("api_version,kind", [
    ("networking.istio.io/v1beta1", "VirtualService"), ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("v1", "Service"), ("v1", "List"), ("v1", "ConfigMapList"), ("apps/v1", "Deployment"),
    ("gateway.networking.k8s.io/v1alpha2", "TLSRoute"), ("example.com/v1", "Widget"),
    ("install.istio.io/v1alpha1", "IstioOperator"), ("batch/v1beta1", "CronJob"),
])
def test_what_a_group_serves_or_a_group_meshctl_does_not_know_passes(api_version, kind):
    assert problem(api_version, kind, builtin_groups()) is None


def test_crds_add_kinds_and_versions_to_known_groups():
    crd = {"spec": {"group": "networking.istio.io", "names": {"kind": "MeshRoute"},
                    "versions": [{"name": "v1alpha1", "served": True}, {"name": "v0", "served": False}]}}
    env = {"spec": {"group": "networking.istio.io", "names": {"kind": "EnvoyFilter"},
                    "versions": [{"name": "v1", "served": True}]}}
    groups = with_crds([crd, env])
    assert problem("networking.istio.io/v1alpha1", "MeshRoute", groups) is None
    assert problem("networking.istio.io/v0", "MeshRoute", groups)[0] == "apiVersion"
    assert problem("networking.istio.io/v1", "EnvoyFilter", groups) is None
    assert problem("networking.istio.io/v1alpha3", "EnvoyFilter", groups) is None
    assert problem("networking.istio.io/v1", "MeshRoute", builtin_groups()) is not None

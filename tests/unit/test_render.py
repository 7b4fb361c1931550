"""Install rendering: goldens, Kubernetes schema validity, Istio parity, security defaults, revisions."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_all(text):
    return yaml.load_all(text, Loader=_LOADER)


def _load(text):
    return yaml.load(text, Loader=_LOADER)

from meshctl.errors import MeshctlError
from meshctl.install import render as R
from meshctl.install.profiles import load_values
from meshctl.schemas import ISTIO_GROUPS, KINDS

PROFILES = ("sidecar", "ambient", "minimal")
K8S_124 = Path(__file__).resolve().parent / "data" / "k8s-openapi-1.24"

# What meshctl renders on purpose beyond Istio's charts (see docs/install.md):
# the namespace (istioctl creates it imperatively), the PeerAuthentication that sets the mesh-wide
# mTLS mode (meshMTLS), and PodDisruptionBudgets for istiod and the gateway (Istio 1.24's charts
# render them; its current charts only when more than one replica is asked for).
EXTRA = {
    "sidecar": {("Namespace", "istio-system", None), ("PeerAuthentication", "default", "istio-system"),
                ("PodDisruptionBudget", "istiod", "istio-system"),
                ("PodDisruptionBudget", "istio-ingressgateway", "istio-system")},
    "ambient": {("Namespace", "istio-system", None), ("PeerAuthentication", "default", "istio-system"),
                ("PodDisruptionBudget", "istiod", "istio-system")},
    "minimal": {("Namespace", "istio-system", None), ("PeerAuthentication", "default", "istio-system"),
                ("PodDisruptionBudget", "istiod", "istio-system")},
}
ISTIO_PROFILE = {"sidecar": "default", "ambient": "ambient", "minimal": "minimal"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    out = {p: R.render_objects(load_values(p)) for p in PROFILES}
    out["sidecar-canary"] = R.render_objects(load_values("sidecar", revision="canary"))
    out["ambient-canary"] = R.render_objects(load_values("ambient", revision="canary"))
    return out


def _ident(o: dict) -> tuple:
    return (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))


def _find(objs, kind, name):
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind} {name}: {len(hits)} found"
    return hits[0]


def _containers(o: dict):
    spec = o.get("spec", {}).get("template", {}).get("spec")
    if not spec:
        return []
    return [(spec, c) for c in spec.get("initContainers", []) + spec.get("containers", [])]


# --- goldens and determinism --------------------------------------------------------------------

def _golden_text(values: dict) -> str:
    """The manifest as `manifest generate` prints it, except that each CRD version's
    openAPIV3Schema (hundreds of KB, built by meshctl.schemas.crd_openapi and tested with it) is
    replaced by a placeholder naming its source; test_crd_schemas_come_from_meshctl_schemas checks
    that the real output carries exactly that schema."""
    objs = R.render_objects(values)
    for o in objs:
        if o["kind"] == "CustomResourceDefinition":
            for ver in o["spec"]["versions"]:
                ver["schema"]["openAPIV3Schema"] = {
                    "from": f"meshctl.schemas.crd_openapi({o['spec']['names']['kind']!r})"}
    return R.to_yaml(objs)


@pytest.mark.parametrize("profile", PROFILES)
def test_golden(profile, golden):
    golden(f"install/{profile}.yaml", _golden_text(load_values(profile)))


def test_golden_revision(golden):
    golden("install/sidecar-revision-canary.yaml", _golden_text(load_values("sidecar", revision="canary")))


def test_fast_yaml_equals_plain_dump(rendered):
    """to_yaml dumps each CRD schema once and splices it under every version: same text as a
    plain dump of every object."""
    for objs in rendered.values():
        assert R.to_yaml(objs) == "".join("---\n" + R._dump(o) for o in objs)
    assert list(_load_all(R.to_yaml(rendered["ambient"]))) == rendered["ambient"]


def test_golden_text_is_the_command_output_but_for_crd_schemas():
    values = load_values("minimal")
    full = list(_load_all(R.render_yaml(values)))
    digest = list(_load_all(_golden_text(values)))
    assert len(full) == len(digest)
    for a, b in zip(full, digest):
        if a["kind"] != "CustomResourceDefinition":
            assert a == b
    assert "&id" not in R.render_yaml(values) and "*id" not in R.render_yaml(values)


def test_render_is_deterministic():
    for p in PROFILES:
        assert R.render_yaml(load_values(p)) == R.render_yaml(load_values(p))
    assert R.to_json(R.render_objects(load_values("ambient"))) == R.to_json(R.render_objects(load_values("ambient")))


def test_render_returns_resources():
    res = R.render(load_values("minimal"))
    assert res[0].kind == "CustomResourceDefinition"
    assert all(r.name and r.api_version for r in res)
    ns_scoped = [r for r in res if r.kind in ("Deployment", "ConfigMap", "Service")]
    assert ns_scoped and all(r.namespace == "istio-system" for r in ns_scoped)


def test_render_accepts_partial_values():
    """Callers may pass partial values: the rest comes from the named profile."""
    objs = R.render_objects({"profile": "minimal", "revision": "x1"})
    assert _find(objs, "Deployment", "istiod-x1")
    assert not [o for o in objs if o["kind"] == "DaemonSet"]


def test_yaml_stream_shape():
    text = R.render_yaml(load_values("minimal"))
    assert text.startswith("---\n")
    docs = list(_load_all(text))
    assert [_ident(d) for d in docs] == [_ident(o) for o in R.render_objects(load_values("minimal"))]
    mesh = _find(docs, "ConfigMap", "istio")["data"]["mesh"]
    assert "mesh: |" in text and "trustDomain: cluster.local" in mesh


# --- order and labels ---------------------------------------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_order(profile, rendered):
    ranks = [R.KIND_ORDER.index(o["kind"]) if o["kind"] in R.KIND_ORDER else len(R.KIND_ORDER)
             for o in rendered[profile]]
    assert ranks == sorted(ranks)
    assert rendered[profile][0]["kind"] == "CustomResourceDefinition"
    kinds = [o["kind"] for o in rendered[profile]]
    assert kinds.index("Namespace") == 15
    assert kinds[-1] == "PeerAuthentication"  # Istio config last, once CRDs and istiod exist


@pytest.mark.parametrize("profile", list(PROFILES) + ["sidecar-canary"])
def test_labels(profile, rendered):
    rev = "canary" if profile.endswith("canary") else "default"
    for o in rendered[profile]:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "meshctl", _ident(o)
        assert labels["app.kubernetes.io/part-of"] == "meshctl", _ident(o)
        if o["kind"] == "Namespace":
            assert "istio.io/rev" not in labels  # it would turn injection on in istio-system
            continue
        shared = labels.get("meshctl.io/shared") == "true"
        assert labels["istio.io/rev"] == ("default" if shared else rev), _ident(o)


# --- Kubernetes schemas ---------------------------------------------------------------------------

def _unique_k8s_objects(rendered) -> list[dict]:
    seen, out = set(), []
    for objs in rendered.values():
        for o in objs:
            if o["apiVersion"].split("/")[0] in ISTIO_GROUPS:
                continue  # Istio kinds: checked by meshctl's own schemas, not Kubernetes'
            key = json.dumps(o, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(o)
    return out


def test_kubernetes_schema_newest(rendered):
    kv = pytest.importorskip("kubernetes_validate")
    newest = kv.latest_version()
    for o in _unique_k8s_objects(rendered):
        kv.validate(o, newest, strict=True)


def test_kubernetes_schema_oldest_shipped(rendered):
    """The oldest version the installed kubernetes-validate ships (1.25 with 1.37.x)."""
    kv = pytest.importorskip("kubernetes_validate")
    from kubernetes_validate.utils import all_versions

    oldest = all_versions()[0]
    for o in _unique_k8s_objects(rendered):
        kv.validate(o, oldest, strict=True)


def _registry_1_24():
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    defs = json.loads((K8S_124 / "_definitions.json").read_text())
    return Registry().with_resource("_definitions.json", DRAFT202012.create_resource(defs))


def test_kubernetes_schema_1_24(rendered):
    """Kubernetes 1.24, from the pruned strict schemas kept under data/ (validated the way
    kubernetes-validate does it: JSON Schema 2020-12 with the definitions as a registry)."""
    import jsonschema

    registry = _registry_1_24()
    validators = {}
    for o in _unique_k8s_objects(rendered):
        group_version = o["apiVersion"]
        group, _, version = group_version.rpartition("/")
        short = group.split(".")[0]
        name = f"{o['kind'].lower()}-{short + '-' if short else ''}{version}.json"
        if name not in validators:
            path = K8S_124 / name
            assert path.exists(), f"no 1.24 schema for {group_version} {o['kind']}"
            validators[name] = jsonschema.Draft202012Validator(json.loads(path.read_text()), registry=registry)
        errors = sorted(validators[name].iter_errors(o), key=lambda e: list(map(str, e.path)))
        assert not errors, f"{_ident(o)}: {errors[0].message[:300]} at {list(errors[0].path)}"


def test_1_24_check_catches_unknown_fields():
    """The 1.24 check is strict: a field Kubernetes does not know fails it."""
    import jsonschema

    registry = _registry_1_24()
    v = jsonschema.Draft202012Validator(json.loads((K8S_124 / "configmap-v1.json").read_text()), registry=registry)
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert not list(v.iter_errors(good))
    assert list(v.iter_errors({**good, "spec": {}}))


# --- Istio parity -------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_matches_istio_inventory(profile, rendered, shared_dir):
    inventory = json.loads((shared_dir / "conformance/istio-profiles/inventory.json").read_text())
    entry = inventory["profiles"][ISTIO_PROFILE[profile]]
    assert entry.get("meshctl_profile") in (profile, None)
    want = {(r["kind"], r["name"], r["namespace"]) for r in entry["resources"]}
    got = {_ident(o) for o in rendered[profile]}
    assert want - got == set(), "Istio renders these, meshctl does not"
    assert got - want == EXTRA[profile], "meshctl renders these beyond Istio (document any new one)"


def test_istio_objects_validate_with_meshctl_schemas(rendered):
    """Istio-kind objects (the mesh mTLS policy) are not Kubernetes kinds: meshctl's own schemas,
    the ones its CRDs are built from, check them."""
    validate = pytest.importorskip("meshctl.schemas.validate").validate
    from meshctl.resources import Resource

    istio_objects = [o for objs in rendered.values() for o in objs if o["apiVersion"].split("/")[0] in ISTIO_GROUPS]
    assert {o["kind"] for o in istio_objects} == {"PeerAuthentication"}
    for o in istio_objects:
        assert validate(Resource.from_dict(o)) == [], _ident(o)
    bad = copy.deepcopy(istio_objects[0])
    bad["spec"]["mtls"]["mode"] = "SOMETIMES"
    assert validate(Resource.from_dict(bad))


def test_crds(rendered):
    crds = [o for o in rendered["minimal"] if o["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == sorted(k.crd_name for k in KINDS)
    assert "trafficextensions.extensions.istio.io" in {c["metadata"]["name"] for c in crds}
    by_name = {k.crd_name: k for k in KINDS}
    for c in crds:
        k = by_name[c["metadata"]["name"]]
        versions = c["spec"]["versions"]
        assert sorted(v["name"] for v in versions) == sorted(k.versions)
        assert all(v["served"] for v in versions)
        assert [v["name"] for v in versions if v["storage"]] == [k.storage_version]
        assert c["spec"]["names"]["kind"] == k.kind and c["spec"]["group"] == k.group
        for v in versions:
            schema = v["schema"]["openAPIV3Schema"]
            assert schema["type"] == "object"


def test_crd_schemas_come_from_meshctl_schemas(rendered):
    import meshctl.schemas as schemas

    fn = getattr(schemas, "crd_openapi", None)
    for c in (o for o in rendered["minimal"] if o["kind"] == "CustomResourceDefinition"):
        for ver in c["spec"]["versions"]:
            expected = fn(c["spec"]["names"]["kind"]) if fn else R._PERMISSIVE
            assert ver["schema"]["openAPIV3Schema"] == expected


def test_istiod(rendered):
    objs = rendered["sidecar"]
    svc = _find(objs, "Service", "istiod")
    assert [p["port"] for p in svc["spec"]["ports"]] == [15010, 15012, 443, 15014]
    assert _find(objs, "Deployment", "istiod")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "docker.io/istio/pilot:1.24.0"
    hpa = _find(objs, "HorizontalPodAutoscaler", "istiod")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == "istiod"
    assert _find(objs, "PodDisruptionBudget", "istiod")["apiVersion"] == "policy/v1"
    assert _find(objs, "ConfigMap", "istio-sidecar-injector")["data"]["config"]
    vwh = _find(objs, "ValidatingWebhookConfiguration", "istio-validator-istio-system")
    assert vwh["webhooks"][0]["clientConfig"]["service"]["name"] == "istiod"
    mwh = _find(objs, "MutatingWebhookConfiguration", "istio-sidecar-injector")
    assert [w["name"] for w in mwh["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io", "rev.object.sidecar-injector.istio.io",
        "namespace.sidecar-injector.istio.io", "object.sidecar-injector.istio.io"]


def test_mesh_config_and_mtls():
    values = load_values("sidecar", sets=[
        "meshConfig.trustDomain=example.org", "meshConfig.accessLogFile=", "meshMTLS=PERMISSIVE",
        "meshConfig.defaultConfig.tracing.sampling=5", "meshConfig.defaultConfig.tracing.zipkin.address=jaeger:9411"])
    objs = R.render_objects(values)
    mesh = _load(_find(objs, "ConfigMap", "istio")["data"]["mesh"])
    assert mesh["trustDomain"] == "example.org"
    assert mesh["accessLogFile"] == ""
    assert mesh["rootNamespace"] == "istio-system"
    assert mesh["defaultConfig"]["tracing"] == {"sampling": 5, "zipkin": {"address": "jaeger:9411"}}
    assert mesh["defaultConfig"]["discoveryAddress"] == "istiod.istio-system.svc:15012"
    assert mesh["enableAutoMtls"] is True
    assert _find(objs, "PeerAuthentication", "default")["spec"] == {"mtls": {"mode": "PERMISSIVE"}}
    env = {e["name"]: e.get("value") for e in
           _find(objs, "Deployment", "istiod")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PILOT_TRACE_SAMPLING"] == "5"
    gw_env = {e["name"]: e.get("value") for e in
              _find(objs, "Deployment", "istio-ingressgateway")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert gw_env["TRUST_DOMAIN"] == "example.org"


def test_ambient(rendered):
    objs = rendered["ambient"]
    env = {e["name"]: e.get("value") for e in
           _find(objs, "Deployment", "istiod")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PILOT_ENABLE_AMBIENT"] == "true"
    assert env["CA_TRUSTED_NODE_ACCOUNTS"] == "istio-system/ztunnel"
    assert _find(objs, "DaemonSet", "istio-cni-node")["spec"]["template"]["spec"]["hostNetwork"] is True
    assert _find(objs, "ConfigMap", "istio-cni-config")["data"]["AMBIENT_ENABLED"] == "true"
    zt = _find(objs, "DaemonSet", "ztunnel")
    zenv = {e["name"]: e.get("value") for e in zt["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert zenv["XDS_ADDRESS"] == "istiod.istio-system.svc:15012"
    assert zt["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/istio/ztunnel:1.24.0"
    assert not [o for o in objs if "ingressgateway" in o["metadata"]["name"]]
    sidecar_env = {e["name"] for e in
                   _find(rendered["sidecar"], "Deployment", "istiod")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "PILOT_ENABLE_AMBIENT" not in sidecar_env
    assert not [o for o in rendered["sidecar"] if o["kind"] == "DaemonSet"]


def test_hub_and_tag():
    objs = R.render_objects(load_values("ambient", sets=["hub=registry.example/mesh", "tag=\"1.24.3\""]))
    images = sorted({c["image"] for o in objs for _, c in _containers(o)})
    assert images == ["registry.example/mesh/install-cni:1.24.3", "registry.example/mesh/pilot:1.24.3",
                      "registry.example/mesh/ztunnel:1.24.3"]
    injector = json.loads(_find(objs, "ConfigMap", "istio-sidecar-injector")["data"]["values"])
    assert injector["global"]["proxy"]["image"] == "registry.example/mesh/proxyv2:1.24.3"


def test_values_reach_objects():
    objs = R.render_objects(load_values("sidecar", sets=[
        "components.pilot.autoscale.enabled=false", "components.pilot.replicas=3",
        "components.ingressGateway.service.type=NodePort",
        "components.ingressGateway.service.annotations.example\\.com/x=a: b # c",
        "components.pilot.podDisruptionBudget.enabled=false"]))
    assert _find(objs, "Deployment", "istiod")["spec"]["replicas"] == 3
    assert not [o for o in objs if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "istiod"]
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "istiod"]
    svc = _find(objs, "Service", "istio-ingressgateway")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["metadata"]["annotations"] == {"example.com/x": "a: b # c"}  # YAML-special text survives


# --- security defaults --------------------------------------------------------------------------

# Node agents that need privileges: exactly what Istio grants them, nothing more.
PRIVILEGED = {
    ("istio-cni-node", "install-cni"): {"NET_ADMIN", "NET_RAW", "SYS_PTRACE", "SYS_ADMIN"},
    ("ztunnel", "istio-proxy"): {"NET_ADMIN", "SYS_ADMIN", "NET_RAW"},
}


@pytest.mark.parametrize("profile", list(PROFILES) + ["ambient-canary"])
def test_secure_by_default(profile, rendered):
    seen = 0
    for o in rendered[profile]:
        for pod, c in _containers(o):
            seen += 1
            where = f"{o['kind']} {o['metadata']['name']} container {c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                assert set(res.get(part, {})) >= {"cpu", "memory"}, f"{where}: {part}"
            sc = c.get("securityContext", {})
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            key = (o["metadata"]["name"], c["name"])
            if key in PRIVILEGED:
                assert set(sc["capabilities"].get("add", [])) == PRIVILEGED[key], where
                continue
            assert "add" not in sc["capabilities"], where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            non_root = sc.get("runAsNonRoot", pod.get("securityContext", {}).get("runAsNonRoot"))
            assert non_root is True, where
            assert not pod.get("hostNetwork"), where
    assert seen >= 1


# --- revisions ----------------------------------------------------------------------------------

def test_revision_names(rendered):
    objs = rendered["sidecar-canary"]
    names = {_ident(o) for o in objs}
    for ident in [("Deployment", "istiod-canary", "istio-system"), ("Service", "istiod-canary", "istio-system"),
                  ("ServiceAccount", "istiod-canary", "istio-system"), ("ConfigMap", "istio-canary", "istio-system"),
                  ("ConfigMap", "istio-sidecar-injector-canary", "istio-system"),
                  ("MutatingWebhookConfiguration", "istio-sidecar-injector-canary", None),
                  ("ValidatingWebhookConfiguration", "istio-validator-canary-istio-system", None),
                  ("ClusterRole", "istiod-clusterrole-canary-istio-system", None),
                  ("Role", "istiod-canary", "istio-system")]:
        assert ident in names, ident
    assert not {n for n in names if n[1] == "istiod"}
    dep = _find(objs, "Deployment", "istiod-canary")
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "istiod", "istio.io/rev": "canary"}
    assert dep["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] == "canary"
    assert _find(objs, "Service", "istiod-canary")["spec"]["selector"] == {"app": "istiod", "istio.io/rev": "canary"}
    zt = _find(rendered["ambient-canary"], "DaemonSet", "ztunnel")
    zenv = {e["name"]: e.get("value") for e in zt["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert zenv["XDS_ADDRESS"] == zenv["CA_ADDRESS"] == "istiod-canary.istio-system.svc:15012"
    assert zt["metadata"]["labels"]["istio.io/rev"] == "canary"
    mwh = _find(objs, "MutatingWebhookConfiguration", "istio-sidecar-injector-canary")
    assert [w["name"] for w in mwh["webhooks"]] == ["rev.namespace.sidecar-injector.istio.io",
                                                    "rev.object.sidecar-injector.istio.io"]
    assert mwh["webhooks"][0]["clientConfig"]["service"]["name"] == "istiod-canary"
    assert mwh["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["canary"]
    vwh = _find(objs, "ValidatingWebhookConfiguration", "istio-validator-canary-istio-system")
    assert vwh["webhooks"][0]["objectSelector"]["matchExpressions"][0]["values"] == ["canary"]
    mesh = _load(_find(objs, "ConfigMap", "istio-canary")["data"]["mesh"])
    assert mesh["defaultConfig"]["discoveryAddress"] == "istiod-canary.istio-system.svc:15012"
    # the default control plane's selector does not pick the canary's pods
    default_dep = _find(rendered["sidecar"], "Deployment", "istiod")
    assert default_dep["spec"]["selector"]["matchLabels"] == {"app": "istiod", "istio": "pilot"}
    assert dep["spec"]["template"]["metadata"]["labels"]["istio"] != "pilot"


def test_revision_shared_objects_identical(rendered):
    """Cluster-wide shared objects (CRDs, namespace, reader account, mesh mTLS policy) are the
    same whatever the revision, so applying a revision never changes them."""
    for base, rev in (("sidecar", "sidecar-canary"), ("ambient", "ambient-canary")):
        shared = lambda objs: {_ident(o): o for o in objs  # noqa: E731
                               if o["metadata"]["labels"].get("meshctl.io/shared") == "true"}
        a, b = shared(rendered[base]), shared(rendered[rev])
        assert len(a) == 15 + 3
        assert a == b
        # and nothing else collides with the default revision's objects, except node agents
        # and the gateway, which a revision upgrades in place as Istio does
        clash = {i for i in {_ident(o) for o in rendered[rev]} & {_ident(o) for o in rendered[base]} if i not in a}
        assert {k for k, _, _ in clash} <= {"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                            "ConfigMap", "Deployment", "Service", "Role", "RoleBinding",
                                            "HorizontalPodAutoscaler", "PodDisruptionBudget"}
        assert all("istiod" not in n and n not in ("istio", "values", "istio-sidecar-injector") for _, n, _ in clash)


# --- failures -----------------------------------------------------------------------------------

def _broken_templates(tmp_path, monkeypatch, name: str, text: str):
    import meshctl.paths

    root = tmp_path / "templates"
    shutil.copytree(meshctl.paths.templates_dir(), root)
    (root / "install" / name).write_text(text)
    monkeypatch.setattr(meshctl.paths, "templates_dir", lambda: root)
    R._environment.cache_clear()


@pytest.fixture
def restore_env():
    yield
    R._environment.cache_clear()


@pytest.mark.parametrize("name, text, message", [
    ("pilot/service.yaml.j2", "kind: {{ nope.value }}\n", "template install/pilot/service.yaml.j2: 'nope' is undefined"),
    ("pilot/service.yaml.j2", "{% if %}\n", "template install/pilot/service.yaml.j2:1:"),
    ("pilot/service.yaml.j2", "a: [\n", "rendered invalid YAML"),
    ("pilot/service.yaml.j2", "a: 1\n", "not a Kubernetes object"),
    ("pilot/service.yaml.j2", "kind: A\nmetadata: {}\n---{{ 'kind' }}: B\n", "broken document separator at line 3"),
])
def test_template_errors(tmp_path, monkeypatch, restore_env, name, text, message):
    _broken_templates(tmp_path, monkeypatch, name, text)
    with pytest.raises(MeshctlError) as e:
        R.render_yaml(load_values("minimal"))
    assert message in e.value.message
    assert "\n" not in e.value.message


# What istiod hands the templates of ConfigMap istio-sidecar-injector (Istio 1.24):
# SidecarTemplateData for injection, the deployment controller's input for gateways/waypoints.
_POD_DATA = {"DeploymentMeta": {"Name", "Namespace"}, "TypeMeta": {"APIVersion", "Kind"},
             "ObjectMeta": {"Labels", "Annotations", "Name", "Namespace"}, "Spec": {"Containers"}}
_POD_TOP = {"TypeMeta", "DeploymentMeta", "ObjectMeta", "Spec", "ProxyConfig", "MeshConfig", "Values", "Revision",
            "ProxyImage", "ProxyUID", "ProxyGID", "InboundTrafficPolicyMode", "CompliancePolicy"}
_GATEWAY_TOP = {"Name", "Namespace", "UID", "ObjectMeta", "Spec", "DeploymentName", "ServiceAccount", "Ports",
                "ServiceType", "ClusterID", "KubeVersion", "Revision", "ProxyUID", "ProxyGID", "CompliancePolicy",
                "InfrastructureLabels", "InfrastructureAnnotations", "GatewayNameLabel", "ProxyImage", "ProxyConfig",
                "MeshConfig", "Values"}
_GO_FUNCS = {
    # Istio's injection functions
    "formatDuration", "isset", "excludeInboundPort", "includeInboundPorts", "applicationPorts", "annotation",
    "valueOrDefault", "toJSON", "fromJSON", "structToJSON", "protoToJSON", "toYaml", "indent", "directory",
    "contains", "toLower", "env", "omit", "strdict", "toJsonMap", "mergeMaps",
    # text/template built-ins
    "if", "else", "end", "range", "with", "define", "template", "and", "or", "not", "eq", "ne", "ge", "gt", "le",
    "lt", "index", "len", "print", "printf", "block",
    # sprig functions used
    "default", "quote", "list", "nindent",
}


@pytest.mark.parametrize("name, top", [("sidecar", _POD_TOP), ("waypoint", _GATEWAY_TOP),
                                       ("kube-gateway", _GATEWAY_TOP)])
def test_injector_templates_refer_to_what_istiod_provides(rendered, name, top):
    """istiod executes these Go templates. Without Go at hand, check what can be checked
    statically: balanced actions and blocks, only functions istiod provides, only fields of the
    data it passes, and `.Values` paths that exist in the ConfigMap's `values`."""
    import re

    cm = _find(rendered["ambient"], "ConfigMap", "istio-sidecar-injector")
    values = json.loads(cm["data"]["values"])
    config = _load(cm["data"]["config"])
    assert config["defaultTemplates"] == ["sidecar"] and config["policy"] == "enabled"
    text = config["templates"][name]
    actions = re.findall(r"\{\{-?\s*(.*?)\s*-?\}\}", text, re.S)
    assert text.count("{{") == len(actions)  # (a literal "}}" can close YAML flow mappings)
    blocks: list[str] = []  # inside range/with the dot is another value: fields are not checked
    for a in actions:
        if a.startswith("/*"):
            continue
        a = re.sub(r"`[^`]*`|\"[^\"]*\"", "''", a)
        for word in re.findall(r"(?:^|[|(]\s*|\b(?:if|else if|with|range)\s+)([a-zA-Z]\w*)", a):
            assert word in _GO_FUNCS, f"unknown function {word!r} in {{{{ {a} }}}}"
        head = a.split()[0] if a.split() else ""
        if head == "end":
            blocks.pop()
            continue
        if not any(b in ("range", "with") for b in blocks) or head in ("range", "with"):
            for field in re.findall(r"(?:^|[\s(|])\.([A-Z]\w*)", a):
                assert field in top, f"{name}: .{field} is not in the data istiod passes"
        if head in ("if", "range", "with", "define"):
            blocks.append(head)
    assert not blocks
    for parent, sub in re.findall(r"\.(DeploymentMeta|TypeMeta|ObjectMeta)\.(\w+)", text):
        assert sub in _POD_DATA[parent], f".{parent}.{sub}"
    assert not re.search(r"toJSON \.Values", text)  # toJSON takes map[string]string; use structToJSON
    for path in set(re.findall(r"\.Values((?:\.\w+)+)", text)):
        node = values
        for step in path.strip(".").split("."):
            assert isinstance(node, dict) and step in node, f".Values{path} is not in the injector values"
            node = node[step]


def test_every_combination_of_components_renders():
    import itertools

    names = ("base", "pilot", "ingressGateway", "cni", "ztunnel")
    for switches in itertools.product((False, True), repeat=len(names)):
        sets = [f"components.{n}.enabled={str(on).lower()}" for n, on in zip(names, switches)]
        objs = R.render_objects(load_values("minimal", sets=sets))
        kinds = {o["kind"] for o in objs}
        assert ("CustomResourceDefinition" in kinds) == switches[0]
        assert (("Deployment", "istiod", "istio-system") in {_ident(o) for o in objs}) == switches[1]
        assert ("DaemonSet" in kinds) == (switches[3] or switches[4])
        assert objs[0]["kind"] in ("CustomResourceDefinition", "Namespace")


def test_caches(tmp_path, monkeypatch, restore_env):
    """Compiled templates and CRD schema YAML are cached per user; output is the same either way."""
    monkeypatch.setenv("MESHCTL_CACHE_DIR", "off")
    R._environment.cache_clear()
    values = load_values("minimal")
    uncached = R.render_yaml(values)
    monkeypatch.setenv("MESHCTL_CACHE_DIR", str(tmp_path))
    R._environment.cache_clear()
    first = R.render_yaml(values)
    assert len(list((tmp_path / "crd-yaml").glob("*.yaml"))) == 15
    assert list((tmp_path / "jinja2").iterdir())
    R._environment.cache_clear()
    assert R.render_yaml(values) == first == uncached
    (tmp_path / "blocked").write_text("")  # a cache folder that cannot be created: no cache, no error
    monkeypatch.setenv("MESHCTL_CACHE_DIR", str(tmp_path / "blocked"))
    R._environment.cache_clear()
    assert R.render_yaml(values) == uncached


def test_docs_table_matches_render(rendered):
    """docs/install.md lists what each profile renders; keep it true."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "install.md").read_text()
    table = {}
    for kind, name, *cells in re.findall(r"^\| (\w+) \| (`[^`]+`|the 15 Istio CRDs) \| (✓?) \| (✓?) \| (✓?) \|$",
                                        doc, re.M):
        table[(kind, name.strip("`"))] = {p for p, c in zip(PROFILES, cells) if c}
    assert table
    for profile in PROFILES:
        listed = {k for k, ps in table.items() if profile in ps}
        actual = {(o["kind"], "the 15 Istio CRDs" if o["kind"] == "CustomResourceDefinition" else o["metadata"]["name"])
                  for o in rendered[profile]}
        assert listed == actual, profile


def test_other_namespace():
    values = load_values("ambient", sets=["namespace=mesh-system"])
    assert values["global"]["istioNamespace"] == "mesh-system"  # follows namespace
    objs = R.render_objects(values)
    namespaced = [o for o in objs if o["metadata"].get("namespace")]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"mesh-system"}
    names = {_ident(o) for o in objs}
    assert ("Namespace", "mesh-system", None) in names
    assert ("MutatingWebhookConfiguration", "istio-sidecar-injector-mesh-system", None) in names
    assert ("ValidatingWebhookConfiguration", "istio-validator-mesh-system", None) in names
    assert ("ClusterRole", "istiod-clusterrole-mesh-system", None) in names
    mesh = _load(_find(objs, "ConfigMap", "istio")["data"]["mesh"])
    assert mesh["rootNamespace"] == "mesh-system"
    assert mesh["defaultConfig"]["discoveryAddress"] == "istiod.mesh-system.svc:15012"
    zenv = {e["name"]: e.get("value") for e in
            _find(objs, "DaemonSet", "ztunnel")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert zenv["XDS_ADDRESS"] == "istiod.mesh-system.svc:15012"
    injector = json.loads(_find(objs, "ConfigMap", "istio-sidecar-injector")["data"]["values"])
    assert injector["global"]["istioNamespace"] == "mesh-system"
    for o in objs:
        for subject in o.get("subjects", []):
            assert subject.get("namespace") in (None, "mesh-system"), _ident(o)


def test_namespace_and_istio_namespace_must_agree():
    from meshctl.errors import InputError

    with pytest.raises(InputError) as e:
        load_values("sidecar", sets=["namespace=a", "global.istioNamespace=b"])
    assert e.value.message == "namespace 'a' and global.istioNamespace 'b' differ"
    assert load_values("sidecar", sets=["namespace=a", "global.istioNamespace=a"])["global"]["istioNamespace"] == "a"

"""The fake API server itself, checked with the real clients: the kubernetes 37.x typed API (which
validates response shapes strictly) and, where it is installed, kubectl."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.kube.fakeapi import FakeKube, json_patch, parse_selector, selector_matches

pytestmark = pytest.mark.kube


@pytest.mark.parametrize("selector,labels,expected", [
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),
    ("a!=b", {"a": "b"}, False),
    ("e in (x, y)", {"e": "y"}, True),
    ("e in (x,y)", {}, False),
    ("e notin (x,y)", {}, True),
    ("e notin (x,y)", {"e": "x"}, False),
    ("f", {"f": ""}, True),
    ("!f", {"f": "1"}, False),
    ("a=b,c!=d,e in (x,y),!f", {"a": "b", "c": "z", "e": "x"}, True),
    ("a=b,c!=d,e in (x,y),!f", {"a": "b", "c": "d", "e": "x"}, False),
])
def test_label_selectors(selector, labels, expected):
    assert selector_matches(labels, parse_selector(selector)) is expected


def test_bad_selector_is_rejected():
    with pytest.raises(ValueError):
        parse_selector("a=b,,c")


def test_json_patch_operations():
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/b/c"},
                           {"op": "replace", "path": "/a/0", "value": 0}, {"op": "copy", "from": "/a", "path": "/d"},
                           {"op": "test", "path": "/d/2", "value": 3}])
    assert out == {"a": [0, 2, 3], "b": {}, "d": [0, 2, 3]}
    with pytest.raises(ValueError):
        json_patch(doc, [{"op": "replace", "path": "/nope", "value": 1}])


@pytest.fixture
def typed(kube_api):
    """The kubernetes client's typed APIs pointed at the fake (they check response shapes strictly)."""
    from kubernetes import client, config

    api = config.new_client_from_config(kube_api.kubeconfig, persist_config=False)
    yield client, api
    api.close()


def test_typed_client_accepts_the_fakes_answers(typed, kube_api):
    client, api = typed
    assert client.VersionApi(api).get_code().git_version == "v1.30.0"
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap",
                                                            "metadata": {"name": "c"}, "data": {"k": "v"}})
    assert created.metadata.resource_version
    svc = core.create_namespaced_service("default", {"apiVersion": "v1", "kind": "Service",
                                                     "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    assert svc.metadata.name == "s"
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c"]
    deleted = core.delete_namespaced_service("s", "default")  # the real server returns the Service
    assert deleted.metadata.name == "s"
    status = core.delete_namespaced_config_map("c", "default")  # and a Status for a ConfigMap
    assert status["kind"] == "Status" and status["status"] == "Success"
    apps = client.AppsV1Api(api)
    dep = apps.create_namespaced_deployment("default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    assert dep.status.ready_replicas == 1 and dep.status.observed_generation == 1
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
         "spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}}})
    assert review.status.allowed is True
    with pytest.raises(client.exceptions.ApiException) as info:
        core.read_namespaced_config_map("c", "default")
    assert info.value.status == 404


def test_discovery_follows_crds(kube_api):
    import httpx

    headers = {"Authorization": "Bearer fake-token"}
    groups = httpx.get(f"{kube_api.url}/apis", headers=headers).json()
    names = {g["name"] for g in groups["groups"]}
    assert {"apps", "apiextensions.k8s.io", "rbac.authorization.k8s.io"} <= names
    assert "example.com" not in names
    core = httpx.get(f"{kube_api.url}/api/v1", headers=headers).json()
    assert {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": ["ns"]} in core["resources"]
    kube_api.add({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                  "metadata": {"name": "widgets.example.com"},
                  "spec": {"group": "example.com", "scope": "Namespaced",
                           "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                           "versions": [{"name": "v1", "served": True, "storage": True}]}})
    kube_api.add({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}})
    gv = httpx.get(f"{kube_api.url}/apis/example.com/v1", headers=headers).json()
    assert [r["kind"] for r in gv["resources"]] == ["Widget"]
    listed = httpx.get(f"{kube_api.url}/apis/example.com/v1/widgets", headers=headers).json()
    assert listed["kind"] == "WidgetList" and listed["metadata"]["resourceVersion"]
    assert listed["items"][0]["kind"] == "Widget"  # custom resources keep kind on items
    httpx.delete(f"{kube_api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
                 headers=headers)
    assert httpx.get(f"{kube_api.url}/apis/example.com/v1", headers=headers).status_code == 404
    assert kube_api.objects("Widget") == []


def test_namespace_deletion_cascades_and_workload_readiness(kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    kube_api.add({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cni", "namespace": "team"},
                  "spec": {}})
    ds = kube_api.get("apps/v1", "DaemonSet", "cni", "team")
    assert ds["status"]["numberReady"] == ds["status"]["desiredNumberScheduled"] == 1
    kube_api.not_ready("DaemonSet", "cni", "team")
    assert kube_api.get("apps/v1", "DaemonSet", "cni", "team")["status"]["numberReady"] == 0
    kube_api.remove("v1", "Namespace", "team")
    assert kube_api.objects("DaemonSet") == []


kubectl = shutil.which("kubectl")


@pytest.mark.skipif(kubectl is None, reason="kubectl is not installed")
def test_kubectl_cross_check(kube_api, tmp_path):
    """kubectl, a second real client, applies, reads, patches and deletes through the fake."""
    manifest = tmp_path / "objs.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo, labels: {app: web, tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: demo, labels: {app: web}}
data: {a: "1"}
""")

    def run(*args: str) -> str:
        out = subprocess.run([kubectl, "--kubeconfig", kube_api.kubeconfig, "--cache-dir", str(tmp_path / "cache"),
                              *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    # kubectl's client-side schema validation needs /openapi, which the fake does not serve
    applied = run("apply", "--server-side", "--validate=false", "-f", str(manifest))
    assert "deployment.apps/web serverside-applied" in applied
    dep = kube_api.get("apps/v1", "Deployment", "web", "demo")
    assert [m["manager"] for m in dep["metadata"]["managedFields"]] == ["kubectl"]
    got = json.loads(run("get", "deploy", "web", "-n", "demo", "-o", "json"))
    assert got["spec"]["replicas"] == 2 and got["status"]["readyReplicas"] == 2
    listed = json.loads(run("get", "cm", "-A", "-l", "app in (web),tier notin (back)", "-o", "json"))
    assert [i["metadata"]["name"] for i in listed["items"]] == ["cfg"]
    run("patch", "deploy", "web", "-n", "demo", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    assert kube_api.get("apps/v1", "Deployment", "web", "demo")["metadata"]["generation"] == 2
    # client-side apply: GET, then a strategic merge patch carrying the last-applied annotation
    assert "deployment.apps/web configured" in run("apply", "--validate=false", "-f", str(manifest))
    dep = kube_api.get("apps/v1", "Deployment", "web", "demo")
    assert dep["spec"]["replicas"] == 2 and dep["metadata"]["generation"] == 3
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    run("patch", "deploy", "web", "-n", "demo", "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/replicas", "value": 4}]')
    assert kube_api.get("apps/v1", "Deployment", "web", "demo")["spec"]["replicas"] == 4
    run("delete", "cm", "cfg", "-n", "demo")
    run("delete", "deploy", "web", "-n", "demo")
    assert kube_api.get("v1", "ConfigMap", "cfg", "demo") is None
    assert run("auth", "can-i", "create", "deployments", "-n", "demo").strip() == "yes"
    kube_api.deny("create", "deployments", "apps")
    denied = subprocess.run([kubectl, "--kubeconfig", kube_api.kubeconfig, "auth", "can-i", "create",
                             "deployments", "-n", "demo"], capture_output=True, text=True, timeout=60)
    assert denied.stdout.strip() == "no" and denied.returncode == 1
    assert "v1.30.0" in run("version", "-o", "json")
    # custom resources: kubectl finds a CRD's kind through discovery, as with a real server
    from meshctl import kube

    k = kube.client(kube_api.kubeconfig)
    k.apply({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
             "metadata": {"name": "virtualservices.networking.istio.io"},
             "spec": {"group": "networking.istio.io", "scope": "Namespaced",
                      "names": {"plural": "virtualservices", "singular": "virtualservice", "kind": "VirtualService",
                                "shortNames": ["vs"]},
                      "versions": [{"name": "v1", "served": True, "storage": True}]}})
    k.apply({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "r", "namespace": "demo"}, "spec": {"hosts": ["r"]}})
    got = json.loads(run("get", "vs", "-A", "-o", "json"))
    assert [(i["kind"], i["metadata"]["name"]) for i in got["items"]] == [("VirtualService", "r")]


def test_fake_kube_standalone(tmp_path):
    server = FakeKube(tmp_path).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.get("v1", "Namespace", "kube-system")["status"]["phase"] == "Active"
    finally:
        server.stop()

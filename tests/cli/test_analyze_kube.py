"""`meshctl analyze --use-kube` against the fake API server: the cluster's objects, -n / -A,
and files replacing the cluster's objects of the same identity."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.kube


def crd(kind: str, plural: str, group: str = "networking.istio.io") -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def vs(name: str, namespace: str, host: str) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"hosts": [name], "http": [{"route": [{"destination": {"host": host}}]}]}}


def ns(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
                                                                  "labels": {"istio-injection": "enabled"}}}


@pytest.fixture
def cluster(kube_api):
    kube_api.add(crd("VirtualService", "virtualservices"))
    for n in ("default", "shop"):
        kube_api.add(ns(n))
    kube_api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
                  "spec": {"ports": [{"name": "http", "port": 9080}], "selector": {"app": "reviews"}}})
    kube_api.add(vs("reviews", "shop", "reviewz"))
    kube_api.add(vs("ratings", "default", "ratingz"))
    return kube_api


def _origins(r) -> set[tuple[str, str]]:
    return {(m["code"], m["origin"]) for m in json.loads(r.stdout)}


def test_namespace_and_all_namespaces(cli, cluster):
    r = cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "shop", "-o", "json")
    assert r.exit_code == 1, r
    found = _origins(r)
    assert ("IST0101", "VirtualService shop/reviews") in found
    assert ("IST0101", "VirtualService default/ratings") not in found
    # cluster objects carry no file reference
    assert all(m["reference"] == "" for m in json.loads(r.stdout))
    r = cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-A", "-o", "json")
    assert {("IST0101", "VirtualService shop/reviews"), ("IST0101", "VirtualService default/ratings")} <= _origins(r)


def test_file_replaces_the_cluster_object(cli, cluster, tmp_path):
    fixed = tmp_path / "reviews.yaml"
    fixed.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
                     "  namespace: shop\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n"
                     "    - destination: {host: reviews}\n")
    r = cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "shop", "-o", "json", str(fixed))
    assert ("IST0101", "VirtualService shop/reviews") not in _origins(r), r.stdout
    assert r.exit_code == 0, r
    assert "with the cluster's" in cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "shop",
                                       str(fixed)).stderr


def test_mesh_config_from_the_cluster(cli, cluster):
    cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
    cluster.add({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
                 "data": {"values": json.dumps({"global": {"hub": "hub", "tag": "1.0", "proxy": {"image": "proxyv2"}}})}})
    cluster.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "shop"},
                 "spec": {"containers": [{"name": "istio-proxy", "image": "hub/proxyv2:1.0-distroless"}]}})
    args = ("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-A", "-o", "json")
    assert ("IST0158", "Namespace shop") in _origins(cli(*args))
    # the cluster's mesh config says distroless images are the default: no mismatch any more
    cluster.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
                 "data": {"mesh": "defaultConfig:\n  image:\n    imageType: distroless\n"}})
    assert ("IST0158", "Namespace shop") not in _origins(cli(*args))


def test_unreachable_cluster_is_exit_3(cli, tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\n"
                   "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
                   "users:\n- name: u\n  user: {token: t}\n")
    r = cli("analyze", "--use-kube", "--kubeconfig", str(cfg))
    assert r.exit_code == 3, r
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_context_namespace_and_system_namespaces(cli, cluster, tmp_path):
    import yaml

    for name in ("kube-system", "kube-public", "plain"):
        cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    config = yaml.safe_load(open(cluster.kubeconfig))
    for c in config["contexts"]:
        c["context"]["namespace"] = "shop"
    kubeconfig = tmp_path / "kubeconfig-shop"
    kubeconfig.write_text(yaml.safe_dump(config))
    found = _origins(cli("analyze", "--use-kube", "--kubeconfig", str(kubeconfig), "-o", "json"))
    # without -n, the context's namespace is analyzed, as kubectl would read it
    assert ("IST0101", "VirtualService shop/reviews") in found
    assert ("IST0101", "VirtualService default/ratings") not in found
    # namespaces that analysis ignores are not reported as "not enabled for injection"
    assert ("IST0102", "Namespace plain") in found
    assert not [o for c, o in found if o in ("Namespace kube-system", "Namespace kube-public")]


def test_gateway_api_objects_from_the_cluster(cli, kube_api, tmp_path):
    group = "gateway.networking.k8s.io"
    for kind, plural in (("Gateway", "gateways"), ("HTTPRoute", "httproutes"), ("GatewayClass", "gatewayclasses"),
                         ("ReferenceGrant", "referencegrants")):
        c = crd(kind, plural, group)
        if kind == "GatewayClass":
            c["spec"]["scope"] = "Cluster"
        if kind == "ReferenceGrant":
            c["spec"]["versions"][0]["name"] = "v1beta1"
        kube_api.add(c)
    kube_api.add(ns("shop"))
    kube_api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
                  "spec": {"ports": [{"name": "http", "port": 9080}]}})
    kube_api.add({"apiVersion": f"{group}/v1", "kind": "GatewayClass", "metadata": {"name": "istio"},
                  "spec": {"controllerName": "istio.io/gateway-controller"}})
    kube_api.add({"apiVersion": f"{group}/v1", "kind": "Gateway", "metadata": {"name": "web", "namespace": "shop"},
                  "spec": {"gatewayClassName": "istio",
                           "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"}]}})
    kube_api.add({"apiVersion": f"{group}/v1", "kind": "HTTPRoute", "metadata": {"name": "reviews", "namespace": "shop"},
                  "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["reviews.example.org"],
                           "rules": [{"matches": [{"path": {"value": "reviews"}}],
                                      "backendRefs": [{"name": "reviews", "port": 9080}, {"name": "gone", "port": 80}]}]}})
    r = cli("analyze", "--use-kube", "--kubeconfig", kube_api.kubeconfig, "-n", "shop", "-o", "json")
    assert r.exit_code == 1, r
    found = {(m["code"], m["origin"], m["message"]) for m in json.loads(r.stdout)}
    assert ("MSH0202", "HTTPRoute shop/reviews") in {(c, o) for c, o, _ in found}
    assert ("IST0101", "HTTPRoute shop/reviews", 'Referenced service not found: "shop/gone"') in found
    assert any(c == "IST0106" and "spec.rules[0].matches[0].path: value must be an absolute path" in m for c, _, m in found)
    # a file fixes the route: it replaces the cluster's object of the same identity
    fixed = tmp_path / "route.yaml"
    fixed.write_text(f"apiVersion: {group}/v1\nkind: HTTPRoute\nmetadata: {{name: reviews, namespace: shop}}\n"
                     "spec:\n  parentRefs: [{name: web}]\n  hostnames: [reviews.example.com]\n"
                     "  rules:\n  - backendRefs: [{name: reviews, port: 9080}]\n")
    r = cli("analyze", "--use-kube", "--kubeconfig", kube_api.kubeconfig, "-n", "shop", "-o", "sarif", str(fixed))
    assert r.exit_code == 0, r
    sarif = json.loads(r.stdout)
    assert [x for x in sarif["runs"][0]["results"] if x["level"] != "note"] == []

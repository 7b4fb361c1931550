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
    assert "MSH0002" not in r.stdout  # replacing the cluster's copy is the point, not a duplicate
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
    # only namespace shop's findings: not those of Namespace plain
    assert ("IST0102", "Namespace plain") not in found
    # namespaces that analysis ignores are not reported as "not enabled for injection"
    found = _origins(cli("analyze", "--use-kube", "--kubeconfig", str(kubeconfig), "-A", "-o", "json"))
    assert ("IST0102", "Namespace plain") in found
    assert not [o for c, o in found if o in ("Namespace kube-system", "Namespace kube-public")]


# --- the README tour on a healthy install: what -n reads and what it reports ---------------------

ROUTES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def _shop_workloads(kube_api, ambient: bool) -> None:
    """The reviews service of the tour: a Service, two Deployments and their running pods
    (in the ambient data plane, or with an injected sidecar)."""
    kube_api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
                  "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}})
    for version in ("v1", "v2"):
        labels = {"app": "reviews", "version": version}
        kube_api.add({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": f"reviews-{version}", "namespace": "shop", "labels": labels},
                      "spec": {"selector": {"matchLabels": labels},
                               "template": {"metadata": {"labels": labels},
                                            "spec": {"containers": [{"name": "reviews", "image": "reviews:1"}]}}}})
        containers = [{"name": "reviews", "image": "reviews:1"}]
        annotations = {"ambient.istio.io/redirection": "enabled"} if ambient else {"sidecar.istio.io/status": "{}"}
        if not ambient:
            containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.27.0"})
        kube_api.add({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": f"reviews-{version}-7d9f8", "namespace": "shop",
                                   "labels": {**labels, "security.istio.io/tlsMode": "istio"},
                                   "annotations": annotations},
                      "spec": {"containers": containers}})


@pytest.mark.parametrize("profile,mode", [("ambient", "ambient"), ("sidecar", "sidecar")])
def test_readme_tour_analyze_step_is_clean_on_a_healthy_install(cli, kube_api, tmp_path, profile, mode):
    k = ("--kubeconfig", kube_api.kubeconfig)
    assert cli("install", "--profile", profile, "-y", *k).exit_code == 0
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    assert cli("dataplane", "enroll", "shop", "--mode", mode, *k).exit_code == 0
    _shop_workloads(kube_api, ambient=mode == "ambient")
    pr = tmp_path / "pr"
    pr.mkdir()
    (pr / "routes.yaml").write_text(ROUTES)
    r = cli("analyze", "--use-kube", "-n", "shop", str(pr / "routes.yaml"), *k)
    # istiod's Service and the mesh-wide STRICT PeerAuthentication live in istio-system: seen
    assert "IST0139" not in r.stdout and "MSH0101" not in r.stdout, r
    assert r.exit_code == 0, r
    # only findings about namespace shop (and cluster-scoped objects) are reported
    found = _origins(cli("analyze", "--use-kube", "-n", "shop", "-o", "json", str(pr / "routes.yaml"), *k))
    assert all(" istio-system/" not in o and " default/" not in o and o != "Namespace default" for _, o in found), found


def test_namespace_filter_is_on_the_output_not_on_what_is_read(cli, cluster):
    # a VirtualService in shop routing to a Service of another namespace: that Service is read
    cluster.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ratings", "namespace": "default"},
                 "spec": {"ports": [{"name": "http", "port": 9080}], "selector": {"app": "ratings"}}})
    cluster.add(vs("ratings", "shop", "ratings.default.svc.cluster.local"))
    found = _origins(cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "shop", "-o", "json"))
    assert ("IST0101", "VirtualService shop/ratings") not in found
    assert ("IST0101", "VirtualService shop/reviews") in found
    # findings about other namespaces are not reported, and do not fail the run
    assert ("IST0101", "VirtualService default/ratings") not in found
    assert ("IST0102", "Namespace default") not in found
    r = cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "default", "-o", "json")
    assert ("IST0101", "VirtualService default/ratings") in _origins(r)
    assert ("IST0101", "VirtualService shop/reviews") not in _origins(r)


def test_cluster_scoped_findings_are_kept_with_a_namespace(cli, cluster):
    cluster.add({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                 "metadata": {"name": "istio-sidecar-injector"},
                 "webhooks": [{"name": "sidecar-injector.istio.io",
                               "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system",
                                                            "path": "/inject"}},
                               "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})
    found = _origins(cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "shop", "-o", "json"))
    assert ("IST0139", "MutatingWebhookConfiguration istio-sidecar-injector") in found


def test_a_namespace_that_does_not_exist_is_an_error(cli, cluster):
    r = cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "nosuchns")
    assert r.exit_code == 2, r
    assert r.stdout == ""
    err = r.stderr.splitlines()
    assert err[0] == "error: namespace 'nosuchns' not found in the cluster", r.stderr
    assert err[1].startswith("hint: ") and "-A" in err[1]


def test_a_namespace_the_files_create_is_not_an_error(cli, cluster, tmp_path):
    f = tmp_path / "new.yaml"
    f.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: payments\n  labels: {istio-injection: enabled}\n"
                 "---\n" + ROUTES.replace("shop", "payments"))
    r = cli("analyze", "--use-kube", "--kubeconfig", cluster.kubeconfig, "-n", "payments", "-o", "json", str(f))
    assert r.exit_code in (0, 1), r
    assert ("IST0101", "VirtualService payments/reviews") in _origins(r)  # no Service reviews there


def test_files_without_a_namespace_take_the_context_namespace(cli, cluster, tmp_path):
    import yaml

    config = yaml.safe_load(open(cluster.kubeconfig))
    for c in config["contexts"]:
        c["context"]["namespace"] = "shop"
    kubeconfig = tmp_path / "kubeconfig-shop"
    kubeconfig.write_text(yaml.safe_dump(config))
    fixed = tmp_path / "reviews.yaml"
    fixed.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
                     "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n")
    # as kubectl apply would: the file's VirtualService replaces shop/reviews, which routes to reviewz
    r = cli("analyze", "--use-kube", "--kubeconfig", str(kubeconfig), "-o", "json", str(fixed))
    assert ("IST0101", "VirtualService shop/reviews") not in _origins(r), r
    assert r.exit_code == 0, r


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

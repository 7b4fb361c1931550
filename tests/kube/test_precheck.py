"""meshctl precheck against the fake API server: versions, RBAC answers and existing installs varied."""
from __future__ import annotations

import json
import socket

import pytest


def _precheck(cli, kube_api, *args):
    return cli("precheck", "--kubeconfig", str(kube_api.kubeconfig), *args)


def _ns(name, **labels):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _deploy(name, ns, labels=None, pod_spec=None):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": pod_spec or {"containers": [{"name": "c", "image": "x"}]}}}}


def _pod(name, ns, spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_clean_cluster_passes(cli, kube_api):
    kube_api.add(_ns("default"))
    r = _precheck(cli, kube_api)
    assert r.exit_code == 0, r
    assert "Kubernetes API\n--------------\n✔ can query the Kubernetes API" in r.stdout
    assert "✔ is running Kubernetes 1.24 or newer" in r.stdout
    assert "✔ can manage customresourcedefinitions" in r.stdout
    assert r.stdout.rstrip().endswith("Status check results are ✔")
    assert "Ambient" not in r.stdout  # ambient checks only with --profile ambient


def test_old_kubernetes_is_fatal_and_stops_the_run(cli, kube_api):
    kube_api.set_version("1", "23")
    r = _precheck(cli, kube_api)
    assert r.exit_code == 1
    assert "✖ is running Kubernetes 1.24 or newer" in r.stdout
    assert "older than the minimum supported 1.24" in r.stdout
    assert "docs/checks.md#k8s-version" in r.stdout
    assert "Permissions" not in r.stdout


def test_missing_rbac_is_reported_per_resource(cli, kube_api):
    kube_api.deny("create", "customresourcedefinitions", group="apiextensions.k8s.io")
    kube_api.deny("delete", "deployments", group="apps", namespace="istio-system")
    r = _precheck(cli, kube_api, "-o", "json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["success"] is False
    perms = {c["id"]: c for cat in data["categories"] if cat["categoryName"] == "Permissions" for c in cat["checks"]}
    assert perms["perm-customresourcedefinitions"]["result"] == "error"
    assert "create customresourcedefinitions" in perms["perm-customresourcedefinitions"]["error"]
    assert "delete deployments in namespace istio-system" in perms["perm-deployments"]["error"]
    assert perms["perm-configmaps"]["result"] == "success"


def test_existing_installations(cli, kube_api):
    kube_api.add(_ns("istio-system"))
    kube_api.add(_ns("linkerd"))
    kube_api.add(_deploy("istiod", "istio-system", {"app": "istiod", "istio.io/rev": "default"}))
    kube_api.add(_deploy("linkerd-destination", "linkerd",
                         {"app": "x", "linkerd.io/control-plane-component": "destination"}))
    r = _precheck(cli, kube_api)
    assert r.exit_code == 1
    assert "✖ no conflicting Istio control plane" in r.stdout
    assert "install beside it with --revision NAME" in r.stdout
    assert "✖ Linkerd is not installed" in r.stdout
    assert "linkerd/linkerd-destination" in r.stdout
    # a revisioned install beside the existing control plane is only a warning
    r = _precheck(cli, kube_api, "--revision", "canary")
    assert "‼ no conflicting Istio control plane" in r.stdout


def test_namespace_labels_and_kube_system(cli, kube_api):
    kube_api.add(_ns("shop", **{"istio-injection": "enabled", "istio.io/rev": "canary"}))
    kube_api.add(_ns("kube-system", **{"istio-injection": "enabled"}))
    r = _precheck(cli, kube_api)
    assert r.exit_code == 1
    assert "shop: istio-injection=enabled, istio.io/rev=canary" in r.stdout
    assert "✖ system namespaces are not enrolled in the mesh" in r.stdout


def test_workloads_that_cannot_join(cli, kube_api):
    kube_api.add(_ns("apps"))
    kube_api.add(_pod("hostnet", "apps", {"hostNetwork": True, "containers": [{"name": "c", "image": "x"}]}))
    kube_api.add(_pod("uid", "apps", {"securityContext": {"runAsUser": 1337},
                                      "containers": [{"name": "c", "image": "x"}]}))
    kube_api.add(_pod("ports", "apps", {"containers": [{"name": "c", "image": "x",
                                                         "ports": [{"containerPort": 15000}]}]}))
    r = _precheck(cli, kube_api)
    assert r.exit_code == 1  # UID 1337 is an error, the others are warnings
    assert "‼ no pods use the host network" in r.stdout and "apps/hostnet" in r.stdout
    assert "✖ no containers run as UID 1337" in r.stdout and "apps/uid container c" in r.stdout
    assert "‼ no containers use the proxy's ports 15000-15090" in r.stdout and "port 15000" in r.stdout
    assert r.stdout.rstrip().endswith("Status check results are ✖ (1 failure, 2 warnings)")


def test_warnings_alone_do_not_end_in_a_green_tick(cli, kube_api):
    kube_api.add(_ns("default"))
    kube_api.add(_ns("apps"))
    kube_api.add(_pod("hostnet", "apps", {"hostNetwork": True, "containers": [{"name": "c", "image": "x"}]}))
    r = _precheck(cli, kube_api)
    assert r.exit_code == 0, r
    assert r.stdout.rstrip().endswith("Status check results are ‼ (1 warning)")


def test_ambient_cni_and_nodes(cli, kube_api):
    kube_api.add(_ns("kube-system"))
    kube_api.add({"apiVersion": "apps/v1", "kind": "DaemonSet",
                  "metadata": {"name": "cilium", "namespace": "kube-system"},
                  "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}},
                           "template": {"metadata": {"labels": {"k8s-app": "cilium"}},
                                        "spec": {"containers": [{"name": "cilium-agent", "image": "cilium"}]}}}})
    kube_api.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": "kube-system"},
                  "data": {"cni-exclusive": "true"}})
    kube_api.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                  "status": {"nodeInfo": {"operatingSystem": "linux", "kernelVersion": "4.4.0-210-generic",
                                          "osImage": "Ubuntu 16.04"}}})
    r = _precheck(cli, kube_api, "--profile", "ambient")
    assert r.exit_code == 1
    assert "✖ the CNI supports ambient mode" in r.stdout
    assert "set cni.exclusive=false" in r.stdout
    assert "‼ nodes can run ztunnel (Linux, recent kernel)" in r.stdout
    assert "n1: kernel 4.4.0-210-generic" in r.stdout
    kube_api.edit("v1", "ConfigMap", "cilium-config", "kube-system", {"data": {"cni-exclusive": "false"}})
    r = _precheck(cli, kube_api, "--profile", "ambient")
    assert "✔ the CNI supports ambient mode (Cilium)" in r.stdout


def test_unreachable_cluster_exits_3(cli, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    r = cli("precheck", "--kubeconfig", str(kubeconfig))
    assert r.exit_code == 3, r
    assert r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr


def test_meshctls_own_install_of_the_same_revision_is_an_upgrade_not_another_control_plane(cli, kube_api):
    assert cli("install", "-y", "--no-wait", "--kubeconfig", kube_api.kubeconfig).exit_code == 0
    r = _precheck(cli, kube_api)
    assert r.exit_code == 0, r
    assert ("✔ no conflicting Istio control plane (meshctl's revision 'default' is installed; installing again "
            "upgrades it in place)") in r.stdout
    # beside it, another revision still sees it as another control plane
    r = _precheck(cli, kube_api, "--revision", "canary")
    assert "‼ no conflicting Istio control plane" in r.stdout
    assert "istiod revision 'default' in istio-system (meshctl)" in r.stdout


def _gateway_api_crd(plural, kind, bundle="v1.6.1", versions=("v1",), scope="Namespaced"):
    group = "gateway.networking.k8s.io"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}", "annotations": {f"{group}/bundle-version": bundle}},
            "spec": {"group": group, "scope": scope,
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": v, "served": True, "storage": i == 0,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}
                                  for i, v in enumerate(versions)]}}


INSTALL = ("kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/"
           "v1.6.1/standard-install.yaml")


def test_ambient_needs_gateway_api_crds_and_says_how_to_install_them(cli, kube_api):
    kube_api.add(_ns("default"))
    r = _precheck(cli, kube_api, "--profile", "ambient")
    assert r.exit_code == 1
    assert "✖ the Gateway API CRDs waypoints need are installed and recent enough" in r.stdout
    assert "gateways.gateway.networking.k8s.io is not installed" in r.stdout
    assert INSTALL in r.stdout
    kube_api.add(_gateway_api_crd("gatewayclasses", "GatewayClass", scope="Cluster"))
    kube_api.add(_gateway_api_crd("gateways", "Gateway", versions=("v1beta1",)))
    kube_api.add(_gateway_api_crd("httproutes", "HTTPRoute"))
    r = _precheck(cli, kube_api, "--profile", "ambient")
    assert "gateways.gateway.networking.k8s.io serves v1beta1, not v1" in r.stdout


def test_old_gateway_api_crds_are_too_old_or_older(cli, kube_api):
    kube_api.add(_ns("default"))
    kube_api.add(_gateway_api_crd("gatewayclasses", "GatewayClass", scope="Cluster"))
    kube_api.add(_gateway_api_crd("gateways", "Gateway", bundle="v1.4.0"))
    kube_api.add(_gateway_api_crd("httproutes", "HTTPRoute"))
    r = _precheck(cli, kube_api, "--profile", "ambient", "-o", "json")
    checks = {c["id"]: c for cat in json.loads(r.stdout)["categories"] for c in cat["checks"]}
    assert checks["ambient-gateway-api"]["result"] == "warning"
    kube_api.add(_gateway_api_crd("tcproutes", "TCPRoute", bundle="v1.5.1", versions=("v1alpha2",)))
    r = _precheck(cli, kube_api, "--profile", "ambient")
    assert "✖ the Gateway API CRDs waypoints need are installed and recent enough" in r.stdout
    assert "tcproutes.gateway.networking.k8s.io is v1.5.1; Istio ignores it below v1.6.0" in r.stdout
    assert INSTALL in r.stdout
    for plural, kind in (("gateways", "Gateway"), ("tcproutes", "TCPRoute")):
        kube_api.remove("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"{plural}.gateway.networking.k8s.io")
        kube_api.add(_gateway_api_crd(plural, kind))
    r = _precheck(cli, kube_api, "--profile", "ambient")
    assert "✔ the Gateway API CRDs waypoints need are installed and recent enough" in r.stdout

"""`meshctl waypoint apply|list|status|delete` against the fake API server, with golden outputs.
istiod's part (programming a waypoint: the Gateway's Programmed condition) is played by the test."""
from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

pytestmark = pytest.mark.kube

GROUP = "gateway.networking.k8s.io"


def crd(kind: str, plural: str, group: str, version: str = "v1", scope: str = "Namespaced") -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}", "annotations": {f"{GROUP}/bundle-version": "v1.6.1"}},
            "spec": {"group": group, "scope": scope,
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def gateway_api(kube_api) -> None:
    kube_api.add(crd("GatewayClass", "gatewayclasses", GROUP, scope="Cluster"))
    kube_api.add(crd("Gateway", "gateways", GROUP))
    kube_api.add(crd("HTTPRoute", "httproutes", GROUP))


def programmed(kube_api, namespace: str, name: str, status: str = "True", reason: str = "Programmed") -> None:
    kube_api.edit(f"{GROUP}/v1", "Gateway", name, namespace,
                  {"status": {"addresses": [{"type": "IPAddress", "value": "10.96.0.20"}],
                              "conditions": [{"type": "Programmed", "status": status, "reason": reason,
                                              "message": "" if status == "True" else "Deployment is not ready"}]}})


@pytest.fixture
def run(cli, kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop",
                                                                        "labels": {"istio.io/dataplane-mode": "ambient"}}})

    def go(*args: str, **kw):
        return cli(*args, "--kubeconfig", kube_api.kubeconfig, **kw)

    return go


def test_dry_run_prints_the_manifests_without_a_cluster(cli, golden):
    r = cli("waypoint", "apply", "-n", "shop", "--enroll-namespace", "--for", "all", "--revision", "canary",
            "--dry-run", "--kubeconfig", "/nonexistent")
    assert r.exit_code == 0, r
    golden("waypoint/apply-dry-run.yaml", r.stdout)
    docs = list(yaml.safe_load_all(r.stdout))
    assert docs[0]["spec"] == {"gatewayClassName": "istio-waypoint",
                               "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}
    assert docs[1]["metadata"]["labels"] == {"istio.io/use-waypoint": "waypoint"}


def test_apply_without_gateway_api_crds_says_how_to_install_them(run, kube_api):
    r = run("waypoint", "apply", "-n", "shop")
    assert r.exit_code == 3, r
    assert "Gateway API CRDs are not installed" in r.stderr
    assert ("hint: install them: kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/"
            "releases/download/v1.6.1/standard-install.yaml") in r.stderr
    assert not [m for m, _ in kube_api.requests if m not in ("GET",)]


def test_apply_enrolls_and_waits_for_programmed(run, kube_api, golden):
    gateway_api(kube_api)
    kube_api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
                  "spec": {"ports": [{"port": 9080}]}})

    def istiod():  # programs the waypoint a moment after it appears
        for _ in range(200):
            if kube_api.get(f"{GROUP}/v1", "Gateway", "waypoint", "shop"):
                time.sleep(0.3)
                programmed(kube_api, "shop", "waypoint")
                return
            time.sleep(0.05)

    threading.Thread(target=istiod, daemon=True).start()
    r = run("waypoint", "apply", "-n", "shop", "--enroll-namespace", "--enroll-service", "reviews", "--wait")
    assert r.exit_code == 0, r
    golden("waypoint/apply.txt", r.stdout)
    assert "waypoint shop/waypoint: Programmed=True" in r.stderr
    gw = kube_api.get(f"{GROUP}/v1", "Gateway", "waypoint", "shop")
    assert gw["spec"]["gatewayClassName"] == "istio-waypoint"
    assert gw["metadata"]["labels"] == {"istio.io/waypoint-for": "service"}
    assert kube_api.get("v1", "Namespace", "shop")["metadata"]["labels"]["istio.io/use-waypoint"] == "waypoint"
    assert kube_api.get("v1", "Service", "reviews", "shop")["metadata"]["labels"] == {"istio.io/use-waypoint": "waypoint"}
    # applying again changes nothing and says it is ready at once
    again = json.loads(run("waypoint", "apply", "-n", "shop", "-o", "json").stdout)
    assert again["created"] is False and again["programmed"]["status"] == "True"


def test_wait_times_out_with_the_reason(run, kube_api):
    gateway_api(kube_api)
    kube_api.add({"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "waypoint", "namespace": "shop"},
                  "spec": {"gatewayClassName": "istio-waypoint",
                           "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
                  "status": {"conditions": [{"type": "Programmed", "status": "False", "reason": "Pending",
                                             "message": "Deployment is not ready"}]}})
    r = run("waypoint", "apply", "-n", "shop", "--wait", "--timeout", "1")
    assert r.exit_code == 3, r
    assert ("error: waypoint shop/waypoint is not programmed after 1s (Pending: Deployment is not ready)"
            in r.stderr)


def test_apply_refuses_a_gateway_that_is_not_a_waypoint_and_missing_things(run, kube_api):
    gateway_api(kube_api)
    kube_api.add({"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "web", "namespace": "shop"},
                  "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    writes = lambda: sum(1 for m, _ in kube_api.requests if m != "GET")  # noqa: E731
    before = writes()
    r = run("waypoint", "apply", "-n", "shop", "--name", "web")
    assert r.exit_code == 2 and "Gateway shop/web exists and is not a waypoint (its class is 'istio')" in r.stderr
    r = run("waypoint", "apply", "-n", "nowhere")
    assert r.exit_code == 2 and "namespace 'nowhere' not found" in r.stderr
    r = run("waypoint", "apply", "-n", "shop", "--enroll-service", "ghost")
    assert r.exit_code == 2 and "service shop/ghost not found" in r.stderr
    assert writes() == before


def seed_mesh(kube_api) -> None:
    gateway_api(kube_api)
    kube_api.add(crd("AuthorizationPolicy", "authorizationpolicies", "security.istio.io"))
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "front", "labels": {
        "istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint",
        "istio.io/use-waypoint-namespace": "shop"}}})
    kube_api.edit("v1", "Namespace", "shop", None, {"metadata": {"labels": {"istio.io/use-waypoint": "waypoint"}}})
    for ns, name, labels in (("shop", "reviews", {}), ("shop", "ratings", {"istio.io/use-waypoint": "none"}),
                             ("front", "web", {})):
        kube_api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
                      "spec": {"ports": [{"port": 80}]}})
    kube_api.add({"apiVersion": f"{GROUP}/v1", "kind": "Gateway",
                  "metadata": {"name": "waypoint", "namespace": "shop", "labels": {"istio.io/waypoint-for": "all"}},
                  "spec": {"gatewayClassName": "istio-waypoint",
                           "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}})
    programmed(kube_api, "shop", "waypoint")
    kube_api.add({"apiVersion": f"{GROUP}/v1", "kind": "Gateway",
                  "metadata": {"name": "billing", "namespace": "shop", "labels": {"istio.io/rev": "canary"}},
                  "spec": {"gatewayClassName": "istio-waypoint",
                           "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}})
    programmed(kube_api, "shop", "billing", status="False", reason="Pending")
    kube_api.add({"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "web", "namespace": "shop"},
                  "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    kube_api.add({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "reviews-v1-5d9c7-abcde", "namespace": "shop",
                               "labels": {"app": "reviews", "pod-template-hash": "5d9c7"},
                               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                    "name": "reviews-v1-5d9c7", "uid": "1"}]},
                  "spec": {"containers": [{"name": "app", "image": "reviews"}]}, "status": {"phase": "Running"}})
    kube_api.add({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                  "metadata": {"name": "reviews-get", "namespace": "shop"},
                  "spec": {"targetRefs": [{"kind": "Service", "group": "", "name": "reviews"}],
                           "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}})
    kube_api.add({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                  "metadata": {"name": "all-through-waypoint", "namespace": "shop"},
                  "spec": {"targetRefs": [{"kind": "Gateway", "group": GROUP, "name": "waypoint"}], "action": "DENY",
                           "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}})
    kube_api.add({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                  "metadata": {"name": "by-selector", "namespace": "shop"},
                  "spec": {"selector": {"matchLabels": {"app": "reviews"}},
                           "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}})
    kube_api.add({"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": "reviews", "namespace": "shop"},
                  "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews"}],
                           "rules": [{"backendRefs": [{"name": "reviews", "port": 80}]}]}})


def test_list_and_list_all_namespaces(run, kube_api, golden):
    seed_mesh(kube_api)
    r = run("waypoint", "list", "-n", "shop")
    assert r.exit_code == 0, r
    golden("waypoint/list.txt", r.stdout)
    r = run("waypoint", "list", "-A", "-o", "json")
    golden("waypoint/list.json", r.stdout)
    assert [w["name"] for w in json.loads(r.stdout)] == ["billing", "waypoint"]  # not the ingress Gateway
    assert run("waypoint", "list", "-n", "front").stdout == "no waypoints found in namespace front\n"
    assert run("waypoint", "status", "-n", "front").stdout == "no waypoints found in namespace front\n"
    assert json.loads(run("waypoint", "status", "-n", "front", "-o", "json").stdout) == []


def test_status_says_who_uses_each_waypoint_and_what_it_enforces(run, kube_api, golden):
    seed_mesh(kube_api)
    r = run("waypoint", "status", "-n", "shop", "waypoint")
    assert r.exit_code == 0, r
    golden("waypoint/status.txt", r.stdout)
    assert "AuthorizationPolicy shop/by-selector uses HTTP attributes (paths) but selects workloads" in r.stderr
    data = json.loads(run("waypoint", "status", "-n", "shop", "-o", "json").stdout)
    golden("waypoint/status.json", json.dumps(data, indent=2) + "\n")
    [wp] = [w for w in data if w["name"] == "waypoint"]
    assert wp["namespaces"] == ["front", "shop"]
    assert wp["services"] == ["front/web", "shop/reviews"]  # ratings opted out
    assert wp["workloads"] == ["shop/Deployment reviews-v1"]
    assert wp["policies"] == ["AuthorizationPolicy shop/all-through-waypoint",
                              "AuthorizationPolicy shop/reviews-get (via Service shop/reviews)"]
    assert wp["routes"] == ["HTTPRoute shop/reviews (Service shop/reviews)"]
    r = run("waypoint", "status", "-n", "shop", "nope")
    assert r.exit_code == 2 and "no waypoint 'nope' in namespace shop" in r.stderr


def test_delete_by_name_and_all(run, kube_api, golden):
    seed_mesh(kube_api)
    r = run("waypoint", "delete", "-n", "shop", "web")
    assert r.exit_code == 2 and "Gateway shop/web is not a waypoint" in r.stderr
    r = run("waypoint", "delete", "-n", "shop", "waypoint")
    assert r.exit_code == 0, r
    golden("waypoint/delete.txt", r.stdout)
    assert "warning: namespace front still uses waypoint waypoint: kubectl label namespace front istio.io/use-waypoint-" in r.stderr
    assert kube_api.get(f"{GROUP}/v1", "Gateway", "waypoint", "shop") is None
    r = run("waypoint", "delete", "-n", "shop", "--all")
    assert r.stdout == "waypoint shop/billing deleted\n"
    assert kube_api.get(f"{GROUP}/v1", "Gateway", "web", "shop") is not None  # the ingress stays
    assert run("waypoint", "delete", "-n", "shop").exit_code == 2


def test_dataplane_status_shows_the_waypoint_of_each_namespace(run, kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "front", "labels": {
        "istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint",
        "istio.io/use-waypoint-namespace": "shop"}}})
    kube_api.edit("v1", "Namespace", "shop", None, {"metadata": {"labels": {"istio.io/use-waypoint": "waypoint"}}})
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}})
    data = json.loads(run("dataplane", "status", "-o", "json").stdout)
    waypoints = {n["namespace"]: n["waypoint"] for n in data["namespaces"]}
    assert waypoints["front"] == "shop/waypoint" and waypoints["shop"] == "waypoint" and waypoints["plain"] is None
    text = run("dataplane", "status").stdout
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["NAMESPACE"] == ["NAMESPACE", "MODE", "WAYPOINT", "PODS"]
    assert lines["front"][:3] == ["front", "ambient", "shop/waypoint"] and lines["plain"][2] == "-"

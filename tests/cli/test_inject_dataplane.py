"""`meshctl dataplane enroll|status` and `meshctl inject --use-kube` against the fake API server."""
from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.kube

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example/web:1}]
"""


def namespace(name, labels=None):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def ns_labels(kube_api, name):
    """The namespace's labels, without the one the API server adds to every namespace."""
    labels = kube_api.get("v1", "Namespace", name)["metadata"].get("labels") or {}
    return {k: v for k, v in labels.items() if k != "kubernetes.io/metadata.name"}


def pod(name, ns, sidecar=False, annotations=None, labels=None):
    containers = [{"name": "app", "image": "example/app:1"}]
    init = [{"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always"}] if sidecar else []
    spec = {"containers": containers}
    if init:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "annotations": annotations or {}},
            "spec": spec, "status": {"phase": "Running"}}


def test_enroll_ambient_relabels_the_namespace_and_names_pods_to_restart(cli, kube_api):
    kube_api.add(namespace("shop", {"istio-injection": "enabled", "team": "a"}))
    kube_api.add(pod("old", "shop", sidecar=True))
    kube_api.add(pod("plain", "shop"))
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "ambient")
    assert r.exit_code == 0, r
    assert ns_labels(kube_api, "shop") == {"team": "a", "istio.io/dataplane-mode": "ambient"}
    assert r.stdout == "namespace shop: sidecar → ambient\n"
    assert "pod shop/old" in r.stderr and "restart" in r.stderr
    assert "shop/plain" not in r.stderr


def test_enroll_sidecar_warns_about_pods_without_a_sidecar(cli, kube_api):
    kube_api.add(namespace("shop", {"istio.io/dataplane-mode": "ambient"}))
    kube_api.add(pod("a", "shop"))
    kube_api.add(pod("b", "shop", sidecar=True))
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "sidecar", "-o", "json")
    assert r.exit_code == 0, r
    result = json.loads(r.stdout)
    assert result["previous"] == "ambient" and result["mode"] == "sidecar"
    assert [p["pod"] for p in result["restart"]] == ["a"]
    assert ns_labels(kube_api, "shop") == {"istio-injection": "enabled"}


def test_enroll_sidecar_with_a_revision_and_none(cli, kube_api):
    kube_api.add(namespace("shop", {"istio-injection": "enabled"}))
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "sidecar", "-r", "canary")
    assert r.exit_code == 0, r
    assert ns_labels(kube_api, "shop") == {"istio.io/rev": "canary"}
    assert r.stdout == "namespace shop: sidecar → sidecar (revision canary)\n"
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "sidecar", "-r", "stable")
    assert r.stdout == "namespace shop: sidecar (revision canary) → sidecar (revision stable)\n"
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "sidecar", "-r", "canary")
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "sidecar", "-r", "canary")
    assert r.stdout == "namespace shop: already sidecar (revision canary) (unchanged)\n"
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "none")
    assert r.exit_code == 0, r
    assert ns_labels(kube_api, "shop") == {}


def test_enroll_refuses_unknown_modes_and_missing_namespaces(cli, kube_api):
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "mesh")
    assert r.exit_code == 2 and "unknown data-plane mode" in r.stderr
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "nowhere")
    assert r.exit_code == 2 and "nowhere" in r.stderr


def test_status_lists_modes_and_pods_that_differ(cli, kube_api):
    kube_api.add(namespace("shop", {"istio.io/dataplane-mode": "ambient"}))
    kube_api.add(namespace("web", {"istio-injection": "enabled"}))
    kube_api.add(namespace("plain"))
    kube_api.add(pod("ok", "shop", annotations={"ambient.istio.io/redirection": "enabled"}))
    kube_api.add(pod("stale", "shop", sidecar=True))
    kube_api.add(pod("fine", "web", sidecar=True))
    kube_api.add(pod("missing", "web"))
    kube_api.add(pod("optout", "web", labels={"sidecar.istio.io/inject": "false"}))
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "status", "-o", "json")
    assert r.exit_code == 0, r
    result = json.loads(r.stdout)
    modes = {n["namespace"]: n["mode"] for n in result["namespaces"]}
    assert modes["shop"] == "ambient" and modes["web"] == "sidecar" and modes["plain"] == "none"
    assert [(p["namespace"], p["pod"], p["expected"], p["actual"]) for p in result["mismatched"]] == [
        ("shop", "stale", "ambient", "sidecar"), ("web", "missing", "sidecar", "none")]
    text = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "status")
    assert text.exit_code == 0
    assert "NAMESPACE" in text.stdout and "stale" in text.stdout and "missing" in text.stdout
    one = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "status", "-n", "web", "-o", "json")
    assert [n["namespace"] for n in json.loads(one.stdout)["namespaces"]] == ["web"]


def test_unreachable_cluster_exits_3(cli, tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "users": [{"name": "x", "user": {}}]}))
    r = cli("--kubeconfig", str(cfg), "dataplane", "status")
    assert r.exit_code == 3 and r.stdout == ""


def _injector(kube_api, suffix="", values=None, mesh="trustDomain: corp.example\n"):
    kube_api.add(namespace("istio-system"))
    kube_api.add({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"istio-sidecar-injector{suffix}", "namespace": "istio-system"},
                  "data": {"values": json.dumps(values or {}), "config": "policy: enabled\n"}})
    kube_api.add({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"istio{suffix}", "namespace": "istio-system"}, "data": {"mesh": mesh}})


def test_use_kube_reads_the_injector_and_mesh_config_maps(cli, kube_api):
    _injector(kube_api, values={"global": {"hub": "registry.corp/istio", "tag": "1.30.0"},
                                "pilot": {"cni": {"enabled": True}}})
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0, r
    spec = yaml.safe_load(r.stdout)["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["istio-validation", "istio-proxy"]
    proxy = spec["initContainers"][1]
    assert proxy["image"] == "registry.corp/istio/proxyv2:1.30.0"
    assert {e["name"]: e.get("value") for e in proxy["env"]}["TRUST_DOMAIN"] == "corp.example"


def test_use_kube_with_a_revision_reads_its_config_maps(cli, kube_api):
    _injector(kube_api, suffix="-canary", values={"global": {"hub": "h", "tag": "t"}, "revision": "canary"})
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "--revision", "canary", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0, r
    proxy = yaml.safe_load(r.stdout)["spec"]["template"]["spec"]["initContainers"][1]
    assert {e["name"]: e.get("value") for e in proxy["env"]}["CA_ADDR"] == "istiod-canary.istio-system.svc:15012"


def test_use_kube_without_a_control_plane_exits_3(cli, kube_api):
    kube_api.add(namespace("istio-system"))
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert r.exit_code == 3 and r.stdout == ""
    assert "istio-sidecar-injector" in r.stderr
    kube_api.remove("v1", "Namespace", "istio-system")
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert r.exit_code == 2 and "namespace istio-system does not exist" in r.stderr


def test_enroll_without_permission_exits_3_and_changes_nothing(cli, kube_api):
    kube_api.add(namespace("shop", {"istio-injection": "enabled"}))
    kube_api.deny("patch", "namespaces")
    r = cli("--kubeconfig", kube_api.kubeconfig, "dataplane", "enroll", "shop", "--mode", "ambient")
    assert r.exit_code == 3, r
    assert r.stdout == ""
    assert ns_labels(kube_api, "shop") == {"istio-injection": "enabled"}


def test_use_kube_on_a_cluster_older_than_1_29_gives_classic_sidecars(cli, kube_api):
    _injector(kube_api, values={"global": {"hub": "h", "tag": "t"}})
    kube_api.set_version("1", "28")
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0, r
    spec = yaml.safe_load(r.stdout)["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["web", "istio-proxy"]
    kube_api.set_version("1", "30")
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert [c["name"] for c in yaml.safe_load(r.stdout)["spec"]["template"]["spec"]["initContainers"]] == [
        "istio-init", "istio-proxy"]


@pytest.mark.parametrize("which", ["values", "mesh"])
@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "[" * 1_500 + "]" * 1_500,
                                  "a: &a [x, x, x, x, x, x, x, x, x]\n" + "\n".join(
                                      f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefg", "bcdefgh"))])
def test_use_kube_with_hostile_injector_config_maps_is_an_input_error(cli, kube_api, which, text):
    _injector(kube_api)
    name = "istio-sidecar-injector" if which == "values" else "istio"
    cm = kube_api.get("v1", "ConfigMap", name, "istio-system")
    cm["data"][which] = text
    kube_api.add(cm)
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert r.exit_code == 2, r
    assert r.stdout == ""
    error = r.stderr.splitlines()[0]
    assert error.startswith(f"error: ConfigMap istio-system/{name}") and f"data.{which}" in error
    assert "nests deeper than 500 levels" in error or "too many aliases" in error
    assert len(error) < 300


def test_use_kube_with_a_namespace_that_does_not_exist_says_so(cli, kube_api):
    _injector(kube_api)
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "--istio-namespace", "nosuchns", "-f", "-",
            input=DEPLOY)
    assert r.exit_code == 2, r
    assert r.stderr.startswith("error: namespace nosuchns does not exist") and "--istio-namespace" in r.stderr


def test_inject_follows_an_ambient_install(cli, kube_api):
    _injector(kube_api, values={"global": {"hub": "h", "tag": "t"}})
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0 and "istio-proxy" in r.stdout, "no ztunnel: sidecars"
    kube_api.add({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ztunnel", "namespace": "istio-system"},
                  "spec": {"selector": {"matchLabels": {"app": "ztunnel"}}, "template": {
                      "metadata": {"labels": {"app": "ztunnel"}}, "spec": {"containers": [{"name": "z", "image": "z"}]}}}})
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0, r
    labels = yaml.safe_load(r.stdout)["spec"]["template"]["metadata"]["labels"]
    assert labels.get("istio.io/dataplane-mode") == "ambient" and "istio-proxy" not in r.stdout
    assert "ambient mode" in r.stderr and "--mode sidecar" in r.stderr
    r = cli("--kubeconfig", kube_api.kubeconfig, "inject", "--use-kube", "--mode", "sidecar", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0 and "istio-proxy" in r.stdout and r.stderr == ""


def test_inject_with_the_ambient_profile_labels_for_ambient(cli):
    r = cli("inject", "--profile", "ambient", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0, r
    assert yaml.safe_load(r.stdout)["spec"]["template"]["metadata"]["labels"]["istio.io/dataplane-mode"] == "ambient"

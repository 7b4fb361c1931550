"""install / verify-install / uninstall through the CLI against the fake API server."""
from __future__ import annotations

import json
import socket

import pytest
import yaml

pytestmark = pytest.mark.kube

NS = "istio-system"


def rendered(profile: str = "sidecar") -> list[dict]:
    from meshctl.install import profiles, render

    return render.render_objects(profiles.load_values(profile))


SIDECAR = rendered()
N = len(SIDECAR)  # objects a sidecar install renders; the install record makes one more
CRDS = sum(1 for o in SIDECAR if o["kind"] == "CustomResourceDefinition")
KINDS = {k: sum(1 for o in SIDECAR if o["kind"] == k) for k in {o["kind"] for o in SIDECAR}}


@pytest.fixture
def run(cli, kube_api):
    def go(*args: str, **kw):
        return cli(*args, "--kubeconfig", kube_api.kubeconfig, **kw)

    return go


def managed(kube_api) -> list[dict]:
    return [o for o in kube_api.objects()
            if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "meshctl"]


def test_install_applies_everything_labelled_and_records_it(run, kube_api):
    r = run("install", "--profile", "sidecar", "-y")
    assert r.exit_code == 0, r
    assert f"✔ installed: {N + 1} objects ({N + 1} created), workloads ready" in r.stdout
    assert "CustomResourceDefinition" in r.stdout and "CREATED" in r.stdout
    assert "created    Deployment istio-system/istiod" in r.stderr  # progress goes to stderr
    objs = managed(kube_api)
    assert len(objs) == N + 1
    assert all(o["metadata"]["labels"].get("istio.io/rev") for o in objs if o["kind"] != "Namespace")
    dep = kube_api.get("apps/v1", "Deployment", "istiod", NS)
    assert [m["manager"] for m in dep["metadata"]["managedFields"]] == ["meshctl"]
    record = kube_api.get("v1", "ConfigMap", "meshctl-install", NS)
    assert record["data"]["profile"] == "sidecar"
    assert yaml.safe_load(record["data"]["values.yaml"])["profile"] == "sidecar"
    assert record["data"]["meshctlVersion"] and record["data"]["installedAt"].endswith("Z")
    # CRDs before namespaces before namespaced objects; the record is the last write
    writes = [p for m, p in kube_api.requests if m == "PATCH"]
    assert "customresourcedefinitions" in writes[0] and writes[CRDS].endswith("/namespaces/istio-system")
    assert all("customresourcedefinitions" in w for w in writes[:CRDS])
    assert writes[-1].endswith("/configmaps/meshctl-install")


def test_reinstall_converges_and_reports_unchanged(run, kube_api):
    assert run("install", "-y").exit_code == 0
    installed_at = kube_api.get("v1", "ConfigMap", "meshctl-install", NS)["data"]["installedAt"]
    r = run("install", "-y")
    assert r.exit_code == 0, r
    assert f"✔ installed: {N + 1} objects ({N + 1} unchanged), workloads ready" in r.stdout
    assert kube_api.get("v1", "ConfigMap", "meshctl-install", NS)["data"]["installedAt"] == installed_at
    # a changed value configures exactly the objects it touches
    r = run("install", "-y", "--set", "components.pilot.env.FOO=bar")
    assert r.exit_code == 0, r
    assert "configured Deployment istio-system/istiod" in r.stderr
    assert "configured ConfigMap istio-system/meshctl-install" in r.stderr


def test_install_refuses_without_confirmation_off_a_terminal(run, kube_api, monkeypatch):
    r = run("install")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: refusing to install without confirmation: stdin is not a terminal\n")
    assert "hint: pass -y/--yes" in r.stderr
    assert managed(kube_api) == []
    from meshctl.cli import lifecycle

    monkeypatch.setattr(lifecycle, "_interactive", lambda: True)
    r = run("install", input="n\n")
    assert r.exit_code == 1 and "install cancelled" in r.stderr and managed(kube_api) == []
    r = run("install", input="y\n")
    assert r.exit_code == 0 and f"Install profile sidecar (revision default, {N} objects)" in r.stderr


@pytest.mark.parametrize("flag,mode", [("--dry-run", "client"), ("--dry-run=client", "client"),
                                       ("--dry-run=server", "server"), ("--server-dry-run", "server")])
def test_dry_run_writes_nothing(run, kube_api, flag, mode):
    r = run("install", flag)
    assert r.exit_code == 0, r
    assert f"dry run ({mode}): {N + 1} objects checked ({N + 1} would create); nothing was changed" \
        in r.stdout
    assert "would create Deployment istio-system/istiod" in r.stderr
    assert managed(kube_api) == []
    assert run("install", "-y").exit_code == 0
    r = run("install", flag, "--set", "components.pilot.env.FOO=bar")
    assert r.exit_code == 0, r
    assert "would configure Deployment istio-system/istiod" in r.stderr
    assert "would keep Service istio-system/istiod" in r.stderr
    env = kube_api.get("apps/v1", "Deployment", "istiod", NS)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "FOO" not in {e["name"] for e in env}


def test_failure_midway_says_what_was_applied_and_a_rerun_finishes(run, kube_api):
    kube_api.fail_writes_after(20)
    r = run("install", "-y")
    assert r.exit_code == 3, r
    assert f"applied 20 of {N} objects; not applied: " in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and err[0].startswith("error: install stopped at ")
    assert "500" in err[0]
    assert kube_api.get("v1", "ConfigMap", "meshctl-install", NS) is None  # no record of a partial install
    assert run("verify-install").exit_code == 1  # and verify-install says nothing is installed
    kube_api.fail_writes_after(None)
    r = run("install", "-y")
    assert r.exit_code == 0, r
    assert f"installed: {N + 1} objects (20 unchanged, {N + 1 - 20} created)" in r.stdout
    assert kube_api.get("v1", "ConfigMap", "meshctl-install", NS) is not None
    assert run("verify-install").exit_code == 0


def test_permission_denied_is_exit_3_with_an_rbac_hint(run, kube_api):
    kube_api.deny("patch", "deployments", "apps")
    r = run("install", "-y")
    assert r.exit_code == 3
    assert "error: not allowed to patch deployments.apps -n istio-system; nothing was changed" in r.stderr
    assert "hint: ask a cluster administrator for these permissions (check with: kubectl auth can-i patch " \
        "deployments.apps -n istio-system)" in r.stderr


def test_wait_times_out_on_a_workload_that_never_gets_ready(run, kube_api):
    kube_api.not_ready("Deployment", "istio-ingressgateway", NS)
    r = run("install", "-y", "--timeout", "1s")
    assert r.exit_code == 3, r
    assert "error: timed out after 1s waiting for Deployment istio-system/istio-ingressgateway (0/1 ready)" \
        in r.stderr
    assert "waiting    Deployment istio-system/istio-ingressgateway: 0/1 ready" in r.stderr
    assert kube_api.get("v1", "ConfigMap", "meshctl-install", NS) is not None  # everything was applied
    v = run("verify-install")
    assert v.exit_code == 1
    assert "✖ Deployment istio-system/istio-ingressgateway: not-ready: 0/1 ready" in v.stdout
    r = run("install", "-y", "--no-wait")
    assert r.exit_code == 0
    assert f"✔ installed: {N + 1} objects ({N + 1} unchanged) (not waiting for workloads to be ready)" in r.stdout


def test_crds_must_be_established_before_custom_resources(run, kube_api):
    kube_api.not_established("peerauthentications.security.istio.io")
    r = run("install", "-y", "--timeout", "1s")
    assert r.exit_code == 3
    assert "waiting for CRD peerauthentications.security.istio.io to be Established" in r.stderr
    assert kube_api.objects("PeerAuthentication") == []


def test_invalid_values_fail_before_touching_the_cluster(run, kube_api):
    r = run("install", "-y", "--profile", "nope")
    assert r.exit_code == 2 and "unknown profile 'nope'" in r.stderr
    r = run("install", "-y", "--timeout", "soon")
    assert r.exit_code == 2 and "--timeout 'soon' is not a duration" in r.stderr
    assert [m for m, _ in kube_api.requests if m != "GET"] == []


def test_reinstall_with_another_profile_prunes_what_is_no_longer_rendered(run, kube_api):
    assert run("install", "-y", "--profile", "sidecar").exit_code == 0
    r = run("install", "-y", "--profile", "minimal")
    assert r.exit_code == 0, r
    assert "pruned     Deployment istio-system/istio-ingressgateway" in r.stderr
    assert kube_api.get("apps/v1", "Deployment", "istio-ingressgateway", NS) is None
    assert kube_api.get("apps/v1", "Deployment", "istiod", NS) is not None
    assert run("verify-install").exit_code == 0


def test_verify_install_clean(run, kube_api):
    assert run("install", "-y").exit_code == 0
    r = run("verify-install")
    assert r.exit_code == 0, r
    assert f"✔ CustomResourceDefinition: {CRDS} as installed" in r.stdout
    assert f"✔ Deployment: {KINDS['Deployment']} as installed and ready" in r.stdout
    assert r.stdout.rstrip().endswith(f"✔ verified: {N} objects as installed, workloads ready")
    data = json.loads(run("verify-install", "-o", "json").stdout)
    assert data["ok"] is True and data["profile"] == "sidecar" and data["summary"]["objects"] == N


def test_verify_install_finds_drift_and_missing_objects(run, kube_api):
    assert run("install", "-y").exit_code == 0
    kube_api.edit("apps/v1", "Deployment", "istiod", NS,
                  {"spec": {"template": {"metadata": {"labels": {"app": "hijacked"}}}}})
    kube_api.edit("v1", "ConfigMap", "istio", NS, {"data": {"mesh": "trustDomain: evil.example\n"}})
    kube_api.remove("v1", "Service", "istio-ingressgateway", NS)
    # fields the server or another controller adds are not drift
    kube_api.edit("v1", "Service", "istiod", NS, {"spec": {"clusterIP": "10.0.0.7"},
                                                  "metadata": {"annotations": {"x": "y"}}})
    r = run("verify-install")
    assert r.exit_code == 1, r
    assert ('✖ Deployment istio-system/istiod: drifted: spec.template.metadata.labels.app: installed "istiod", '
            'now "hijacked"') in r.stdout
    assert "✖ ConfigMap istio-system/istio: drifted: data.mesh" in r.stdout
    assert "✖ Service istio-system/istio-ingressgateway: missing" in r.stdout
    assert f"✔ Service: {KINDS['Service'] - 1} of {KINDS['Service']} as installed" in r.stdout
    assert f"✖ 3 of {N} objects differ from the install: 1 missing, 2 drifted, 0 not ready" in r.stdout
    data = json.loads(run("verify-install", "-o", "json").stdout)
    bad = {(o["kind"], o["name"]): o["status"] for o in data["objects"] if o["status"] != "ok"}
    assert bad == {("Deployment", "istiod"): "drifted", ("ConfigMap", "istio"): "drifted",
                   ("Service", "istio-ingressgateway"): "missing"}
    assert run("install", "-y").exit_code == 0  # installing again repairs it
    assert run("verify-install").exit_code == 0


def test_verify_install_shows_the_values_of_a_drifted_label_with_dots_in_its_key(run, kube_api):
    assert run("install", "-y").exit_code == 0
    kube_api.edit("apps/v1", "Deployment", "istiod", NS, {"metadata": {"labels": {"istio.io/rev": "other"}}})
    r = run("verify-install")
    assert r.exit_code == 1, r
    assert ('✖ Deployment istio-system/istiod: drifted: metadata.labels.istio.io/rev: installed "default", '
            'now "other"') in r.stdout


def test_uninstalling_a_second_revision_keeps_the_objects_the_first_one_also_installed(run, kube_api):
    # both revisions render the ingress gateway under one name: the canary install takes it over,
    # and removing the canary must not take it from the default install
    assert run("install", "-y").exit_code == 0
    assert run("install", "-y", "--revision", "canary").exit_code == 0
    r = run("uninstall", "-y", "--revision", "canary")
    assert r.exit_code == 0, r
    assert "warning: keeping 7 objects that the install of revision default also made" in r.stderr
    assert "Deployment istio-system/istio-ingressgateway" in r.stderr
    assert kube_api.get("apps/v1", "Deployment", "istio-ingressgateway", NS) is not None
    assert kube_api.get("apps/v1", "Deployment", "istiod-canary", NS) is None
    assert run("install", "-y").exit_code == 0  # the default install makes them its own again
    assert run("verify-install").exit_code == 0
    assert run("uninstall", "-y").exit_code == 0
    assert kube_api.get("apps/v1", "Deployment", "istio-ingressgateway", NS) is None


def test_install_refuses_to_take_over_an_istio_installed_by_another_tool(run, kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})  # made beforehand: fine
    kube_api.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "istiod", "namespace": NS, "labels": {"app": "istiod", "operator.istio.io/component": "Pilot"}},
        "spec": {"selector": {"matchLabels": {"app": "istiod"}}, "template": {
            "metadata": {"labels": {"app": "istiod"}},
            "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.20.0"}]}}}})
    kube_api.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": NS},
                  "data": {"mesh": "{}"}})
    for args in (("--dry-run",), ()):
        writes = len([m for m, _ in kube_api.requests if m != "GET"])
        r = run("install", "-y", *args)
        assert r.exit_code == 1, r
        assert ("error: 2 object(s) this install would change exist already and were not installed by meshctl "
                "(made by istioctl or the Istio operator): ConfigMap istio-system/istio, "
                "Deployment istio-system/istiod; nothing was changed") in r.stderr
        assert "--take-over" in r.stderr and "Traceback" not in r.stderr
        assert len([m for m, _ in kube_api.requests if m != "GET"]) == writes  # nothing was written
    dep = kube_api.get("apps/v1", "Deployment", "istiod", NS)
    assert "app.kubernetes.io/managed-by" not in dep["metadata"]["labels"]
    # and so uninstall --purge leaves the other installation alone
    assert run("uninstall", "-y", "--purge").exit_code == 0
    assert kube_api.get("apps/v1", "Deployment", "istiod", NS) is not None
    # --take-over makes them meshctl's
    r = run("install", "-y", "--take-over")
    assert r.exit_code == 0, r
    assert "configured Deployment istio-system/istiod" in r.stderr
    dep = kube_api.get("apps/v1", "Deployment", "istiod", NS)
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshctl"
    assert run("install", "-y").exit_code == 0  # now it is meshctl's, no flag needed


@pytest.mark.parametrize("minor,warned", [("23", True), ("24", False), ("33", False)])
def test_install_warns_on_a_kubernetes_version_older_than_supported(run, kube_api, minor, warned):
    kube_api.set_version("1", minor)
    r = run("install", "-y", "--no-wait")
    assert r.exit_code == 0, r
    warning = f"warning: Kubernetes v1.{minor}.0 is older than the minimum supported 1.24"
    assert (warning in r.stderr) is warned


def test_ctrl_c_during_install_says_what_was_applied(run, kube_api):
    kube_api.interrupt_client(nth=20)  # Ctrl-C while the 20th object is being applied
    r = run("install", "-y")
    assert r.exit_code == 130, r
    assert f"applied 19 of {N} objects; not applied: " in r.stderr
    assert "error: install stopped at " in r.stderr and ": interrupted" in r.stderr
    assert "hint: run the same command again to finish" in r.stderr
    assert run("install", "-y").exit_code == 0


def test_ctrl_c_while_waiting_for_workloads_says_everything_is_applied(run, kube_api):
    kube_api.not_ready("Deployment", "istiod", "istio-system")
    # Ctrl-C while asking whether istiod is ready, once every object is applied
    kube_api.interrupt_client(method="GET", path="/deployments/istiod", after_writes=N + 1)
    r = run("install", "-y")
    assert r.exit_code == 130, r
    assert f"✖ applied {N + 1} objects ({N + 1} created); readiness not known" in r.stdout
    assert "error: interrupted while waiting for the workloads to be ready" in r.stderr
    assert "hint: everything is applied; check with: meshctl verify-install" in r.stderr


def test_ctrl_c_while_pruning_says_so(run, kube_api):
    assert run("install", "-y").exit_code == 0
    kube_api.interrupt_client(method="DELETE")  # Ctrl-C at the first object pruned
    r = run("install", "-y", "--profile", "minimal")
    assert r.exit_code == 130, r
    assert "error: install stopped at " in r.stderr and "istio-ingressgateway: interrupted" in r.stderr
    assert "applied all " in r.stderr


def test_ctrl_c_during_uninstall_says_what_is_left(run, kube_api):
    assert run("install", "-y").exit_code == 0
    kube_api.interrupt_client(method="DELETE", nth=4)
    r = run("uninstall", "-y")
    assert r.exit_code == 130, r
    assert "deleted 3 of " in r.stderr and "error: uninstall stopped at " in r.stderr
    assert ": interrupted" in r.stderr


def test_pruning_leaves_the_objects_another_revision_took_over(run, kube_api):
    assert run("install", "-y").exit_code == 0
    assert run("install", "-y", "--revision", "canary").exit_code == 0  # takes the gateway over
    r = run("install", "-y", "--profile", "minimal")  # the default revision stops rendering the gateway
    assert r.exit_code == 0, r
    assert "pruned" not in r.stderr
    assert "kept       Deployment istio-system/istio-ingressgateway (it belongs to revision canary now)" in r.stderr
    assert kube_api.get("apps/v1", "Deployment", "istio-ingressgateway", NS) is not None
    assert run("verify-install", "--revision", "canary").exit_code == 0


def test_a_missing_permission_stops_install_before_anything_is_written(run, kube_api):
    kube_api.deny("patch", "clusterroles", "rbac.authorization.k8s.io")
    r = run("install", "-y")
    assert r.exit_code == 3, r
    assert "error: not allowed to patch clusterroles.rbac.authorization.k8s.io; nothing was changed" in r.stderr
    assert "kubectl auth can-i patch clusterroles.rbac.authorization.k8s.io" in r.stderr
    assert [m for m, _ in kube_api.requests if m in ("PATCH", "PUT", "DELETE")] == []
    assert managed(kube_api) == []


def test_a_missing_permission_stops_uninstall_before_anything_is_deleted(run, kube_api):
    assert run("install", "-y").exit_code == 0
    kube_api.deny("delete", "clusterroles", "rbac.authorization.k8s.io")
    for args in (("--dry-run",), ()):
        r = run("uninstall", "-y", *args)
        assert r.exit_code == 3, r
        assert "error: not allowed to delete clusterroles.rbac.authorization.k8s.io; nothing was deleted" in r.stderr
    assert not [m for m, _ in kube_api.requests if m == "DELETE"]
    assert run("verify-install").exit_code == 0


def test_waiting_for_a_crd_says_so_once_not_once_per_poll(run, kube_api):
    kube_api.not_established("peerauthentications.security.istio.io")
    r = run("install", "-y", "--timeout", "2s")
    assert r.exit_code == 3, r
    assert r.stderr.count("waiting    for 1 CRD(s) to be Established: peerauthentications.security.istio.io") == 1
    assert "timed out after 2s waiting for CRD peerauthentications.security.istio.io" in r.stderr


def test_verify_install_when_nothing_is_installed(run):
    r = run("verify-install")
    assert r.exit_code == 1
    assert r.stderr.startswith("error: no meshctl installation of the default revision found: ConfigMap "
                               "istio-system/meshctl-install is missing\n")
    r = run("verify-install", "--revision", "canary")
    assert "revision 'canary'" in r.stderr and "meshctl-install-canary" in r.stderr


def test_revisions_install_and_uninstall_independently(run, kube_api):
    assert run("install", "-y", "--profile", "minimal").exit_code == 0
    r = run("install", "-y", "--profile", "minimal", "--revision", "canary")
    assert r.exit_code == 0, r
    assert kube_api.get("v1", "ConfigMap", "meshctl-install-canary", NS)["data"]["revision"] == "canary"
    assert run("verify-install", "--revision", "canary").exit_code == 0
    r = run("uninstall", "--revision", "canary", "-y")
    assert r.exit_code == 0, r
    assert "deleted    Deployment istio-system/istiod-canary" in r.stderr
    assert kube_api.get("apps/v1", "Deployment", "istiod-canary", NS) is None
    assert kube_api.get("apps/v1", "Deployment", "istiod", NS) is not None
    assert run("verify-install").exit_code == 0  # the default revision is untouched


def test_uninstall_keeps_shared_objects_unless_purge_and_is_idempotent(run, kube_api):
    assert run("install", "-y").exit_code == 0
    kube_api.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine", "namespace": NS}})
    r = run("uninstall", "-y")
    assert r.exit_code == 0, r
    lines = [line.split(None, 1) for line in r.stderr.splitlines() if line.startswith("  deleted")]
    order = [rest.split()[0] for _, rest in lines]
    assert order[0] == "ConfigMap" and "meshctl-install" in lines[0][1]  # the record goes first
    assert order.index("MutatingWebhookConfiguration") < order.index("Deployment") < order.index("ServiceAccount")
    assert kube_api.objects("Deployment") == []
    left = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in managed(kube_api)
                  if o["kind"] != "CustomResourceDefinition")
    assert left == ["Namespace/istio-system", "PeerAuthentication/default",
                    "ServiceAccount/istio-reader-service-account"]
    assert len(kube_api.objects("CustomResourceDefinition")) == CRDS
    r = run("uninstall", "-y")
    assert r.exit_code == 0 and "nothing to uninstall" in r.stdout
    r = run("uninstall", "--purge", "-y")
    assert r.exit_code == 0, r
    assert managed(kube_api) == [] and kube_api.objects("CustomResourceDefinition") == []
    assert kube_api.get("v1", "Namespace", NS) is None  # and the user's ConfigMap in it with it


def test_uninstall_confirmation_and_dry_run(run, kube_api):
    assert run("install", "-y", "--profile", "minimal").exit_code == 0
    before = len(managed(kube_api))
    r = run("uninstall")
    assert r.exit_code == 2 and "refusing to uninstall without confirmation" in r.stderr
    r = run("uninstall", "--dry-run")
    assert r.exit_code == 0 and "would delete" in r.stdout
    assert len(managed(kube_api)) == before
    r = run("uninstall", "--purge", "--revision", "x", "-y")
    assert r.exit_code == 2 and "cannot be combined" in r.stderr


def _closed_kubeconfig(tmp_path) -> tuple[str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = f"https://127.0.0.1:{port}"
    path = tmp_path / "closed"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}], "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path), server


@pytest.mark.parametrize("args", [("install", "-y"), ("install", "--dry-run"), ("install", "--server-dry-run"),
                                  ("verify-install",),
                                  ("uninstall", "-y"), ("uninstall", "--purge", "-y")])
def test_unreachable_cluster_is_exit_3_in_one_line(cli, tmp_path, args):
    kubeconfig, server = _closed_kubeconfig(tmp_path)
    r = cli(*args, "--kubeconfig", kubeconfig)
    assert r.exit_code == 3, r
    assert r.stderr.splitlines()[0] == f"error: cannot reach the Kubernetes API server at {server}: connection refused"
    assert r.stderr.splitlines()[1].startswith("hint: ")
    assert "Traceback" not in r.stderr


def test_missing_kubeconfig_is_exit_3_with_a_hint(cli, tmp_path):
    r = cli("verify-install", "--kubeconfig", str(tmp_path / "none"))
    assert r.exit_code == 3 and "no kubeconfig at" in r.stderr and "--kubeconfig" in r.stderr


def test_install_json_output(run, kube_api):
    r = run("install", "-y", "--profile", "minimal", "-o", "json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["profile"] == "minimal"
    assert {o["action"] for o in data["objects"]} == {"created"}
    assert data["counts"]["CustomResourceDefinition"] == {"created": CRDS}


def test_ambient_profile_waits_for_daemonsets(run, kube_api):
    kube_api.nodes = 3
    r = run("install", "-y", "--profile", "ambient")
    assert r.exit_code == 0, r
    assert kube_api.get("apps/v1", "DaemonSet", "ztunnel", NS)["status"]["numberReady"] == 3
    kube_api.not_ready("DaemonSet", "ztunnel", NS)
    v = run("verify-install")
    assert v.exit_code == 1
    assert "✖ DaemonSet istio-system/ztunnel: not-ready: 0/3 pods ready" in v.stdout
    assert "✔ DaemonSet: 1 of 2 as installed and ready" in v.stdout


def test_install_right_after_purge_waits_for_terminating_objects(run, kube_api):
    assert run("install", "-y", "--profile", "minimal").exit_code == 0
    kube_api.deletion_delay = 1.0  # deleted namespaces and CRDs stay Terminating for a second
    assert run("uninstall", "--purge", "-y").exit_code == 0
    assert kube_api.get("v1", "Namespace", NS)["status"]["phase"] == "Terminating"
    r = run("install", "-y", "--profile", "minimal")
    assert r.exit_code == 0, r
    assert "waiting    for CustomResourceDefinition" in r.stderr
    assert "created    Namespace istio-system" in r.stderr  # gone by then, so created afresh
    assert kube_api.get("v1", "Namespace", NS)["status"]["phase"] == "Active"
    assert run("verify-install").exit_code == 0


def test_verify_install_notes_a_different_meshctl_version(run, kube_api):
    assert run("install", "-y", "--profile", "minimal").exit_code == 0
    kube_api.edit("v1", "ConfigMap", "meshctl-install", NS, {"data": {"meshctlVersion": "0.0.1"}})
    r = run("verify-install")
    assert r.exit_code == 0
    assert "‼ installed by meshctl 0.0.1, checked with meshctl" in r.stdout


def test_wait_timeout_says_why_from_the_pods(run, kube_api):
    kube_api.not_ready("Deployment", "istiod", NS)
    istiod = next(o for o in SIDECAR if o["kind"] == "Deployment" and o["metadata"]["name"] == "istiod")
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube_api.add({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "istiod-7f9c-abcde", "namespace": NS,
                               "labels": istiod["spec"]["selector"]["matchLabels"]},
                  "status": {"phase": "Pending", "containerStatuses": [{
                      "name": "discovery", "ready": False, "restartCount": 0,
                      "state": {"waiting": {"reason": "ImagePullBackOff",
                                            "message": 'Back-off pulling image "docker.io/istio/pilot:9.9"'}}}]}})
    r = run("install", "-y", "--timeout", "1s")
    assert r.exit_code == 3, r
    assert ("waiting for Deployment istio-system/istiod (0/1 ready; pod istiod-7f9c-abcde: ImagePullBackOff "
            '(Back-off pulling image "docker.io/istio/pilot:9.9"))') in r.stderr


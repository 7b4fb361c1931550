"""meshctl.install.apply: ordering, drift comparison, readiness, durations, and apply_objects with
small object lists against the fake API server."""
from __future__ import annotations

import pytest

from meshctl import kube
from meshctl.install import apply
from meshctl.install import verify
from meshctl.install import uninstall
from meshctl.install import record
from meshctl.install import readiness
from meshctl.install import objects
from meshctl.install.drift import diff_subset
from meshctl.install.objects import Ref
from meshctl.install.readiness import workload_status


def test_order_puts_crds_then_namespaces_first_and_keeps_the_rest():
    objs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"}},
            {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "c"}}]
    assert [o["kind"] for o in objects.order_objects(objs)] == \
        ["CustomResourceDefinition", "Namespace", "ConfigMap", "Deployment"]


@pytest.mark.parametrize("want,live,expected", [
    ({"a": 1}, {"a": 1, "b": 2}, []),                                    # server-added fields are fine
    ({"a": {"b": "x"}}, {"a": {"b": "y"}}, ["a.b"]),
    ({"l": [{"n": 1}]}, {"l": [{"n": 1, "default": True}]}, []),
    ({"l": [1, 2]}, {"l": [1]}, ["l"]),
    ({"e": [], "m": {}, "f": False, "z": 0, "s": ""}, {}, []),          # empty values the server drops
    ({"cpu": "2000m", "mem": "1024Mi"}, {"cpu": "2", "mem": "1Gi"}, []),  # canonical quantities
    ({"cpu": "100m"}, {"cpu": "200m"}, ["cpu"]),
    ({"b": True}, {"b": 1}, ["b"]),
    ({"missing": "x"}, {}, ["missing"]),
])
def test_diff_subset(want, live, expected):
    assert diff_subset(want, live) == expected


def test_diff_ignores_fields_the_control_plane_rewrites():
    want = {"webhooks": [{"name": "v", "failurePolicy": "Ignore", "clientConfig": {"caBundle": ""}}]}
    live = {"webhooks": [{"name": "v", "failurePolicy": "Fail", "clientConfig": {"caBundle": "Q0E="}}]}
    assert diff_subset(want, live, "ValidatingWebhookConfiguration") == []
    assert diff_subset(want, live, "MutatingWebhookConfiguration") == ["webhooks[0].failurePolicy"]


def _dep(want=2, **status):
    return {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": want},
            "status": {"observedGeneration": 2, **status}}


@pytest.mark.parametrize("obj,expected", [
    (_dep(), "0/2 replicas updated"),
    (_dep(updatedReplicas=2, replicas=2, readyReplicas=2, availableReplicas=2), None),
    (_dep(updatedReplicas=2, replicas=3, readyReplicas=2, availableReplicas=2), "1 old replica(s) pending termination"),
    (_dep(updatedReplicas=2, replicas=2, readyReplicas=1, availableReplicas=1), "1/2 ready"),
    ({"kind": "Deployment", "metadata": {"generation": 3}, "spec": {}, "status": {"observedGeneration": 2}},
     "rollout not yet observed by its controller"),
    (_dep(want=0), None),
    ({"kind": "DaemonSet", "metadata": {"generation": 1}, "status": {
        "observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberReady": 2,
        "numberAvailable": 2}}, "2/3 pods ready"),
    ({"kind": "StatefulSet", "metadata": {}, "spec": {"replicas": 1}, "status": {
        "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"}}, "rolling update in progress"),
])
def test_workload_status(obj, expected):
    assert workload_status(obj) == expected




def test_ref_lines_round_trip():
    for ref in (Ref("v1", "ConfigMap", "c", "ns"), Ref("rbac.authorization.k8s.io/v1", "ClusterRole", "r")):
        assert Ref.parse(ref.line()) == ref


def test_record_keeps_its_time_when_nothing_changed():
    values = {"profile": "minimal", "revision": "", "namespace": "istio-system"}
    refs = [Ref("v1", "ConfigMap", "c", "istio-system")]
    first = record.record_object(values, refs)
    assert first["metadata"]["name"] == "meshctl-install"
    first["data"]["installedAt"] = "2020-01-01T00:00:00Z"
    assert record.record_object(values, refs, first)["data"]["installedAt"] == "2020-01-01T00:00:00Z"
    changed = record.record_object({**values, "tag": "x"}, refs, first)
    assert changed["data"]["installedAt"] != "2020-01-01T00:00:00Z"
    assert record.record_object({**values, "revision": "canary"}, refs)["metadata"]["name"] == "meshctl-install-canary"


def test_apply_objects_with_a_small_list(kube_api):
    k = kube.client(kube_api.kubeconfig)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    objs = [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "demo"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "demo"},
             "data": {"a": "1"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}, crd]
    report = apply.apply_objects(k, objs)
    assert report.ok
    assert [(o.ref.kind, o.action) for o in report.outcomes] == [
        ("CustomResourceDefinition", "created"), ("Namespace", "created"), ("Widget", "created"),
        ("ConfigMap", "created")]
    assert {o.action for o in apply.apply_objects(k, objs).outcomes} == {"unchanged"}
    objs[1]["data"]["a"] = "2"
    kube_api.fail_writes_after(3)  # the CRD's, Namespace's and Widget's writes pass; the ConfigMap's fails
    report = apply.apply_objects(k, objs)
    assert not report.ok and report.failed == Ref("v1", "ConfigMap", "c", "demo")
    assert [str(r) for r in report.pending] == ["ConfigMap demo/c"]
    assert isinstance(report.error, kube.ClusterError) and report.error.exit_code == 3


def test_client_dry_run_reads_only(kube_api):
    k = kube.client(kube_api.kubeconfig)
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "demo"}}]
    report = apply.apply_objects(k, objs, dry_run="client")
    assert [o.action for o in report.outcomes] == ["would create", "would create"]
    assert {m for m, _ in kube_api.requests} == {"GET"}


def test_install_verify_uninstall_as_functions(kube_api):
    from meshctl.errors import CheckFailed
    from meshctl.install import profiles, render

    k = kube.client(kube_api.kubeconfig)
    values = profiles.load_values("minimal", revision="blue")
    objects = render.render(values)  # Resources work as well as dicts
    report = apply.install(k, objects, values, timeout=5)
    assert report.ok and report.not_ready == {}
    assert report.record.ref == Ref("v1", "ConfigMap", "meshctl-install-blue", "istio-system")
    result = verify.verify(k, revision="blue")
    assert result.ok and result.profile == "minimal" and result.revision == "blue"
    owned = uninstall.owned_objects(k, revision="blue")
    assert owned[0].name == "meshctl-install-blue"
    assert all(r.kind != "CustomResourceDefinition" for r in owned)
    gone = uninstall.uninstall(k, owned)
    assert gone.error is None and len(gone.deleted) == len(owned)
    with pytest.raises(CheckFailed):
        verify.verify(k, revision="blue")
    assert uninstall.owned_objects(k, revision="blue") == []


def test_install_labels_objects_the_renderer_left_unlabelled(kube_api):
    k = kube.client(kube_api.kubeconfig)
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "istio-system"}}]
    report = apply.install(k, objs, {"profile": "test", "revision": "blue"}, wait=False)
    assert report.ok
    assert kube_api.get("v1", "ConfigMap", "c", "istio-system")["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "meshctl", "istio.io/rev": "blue"}
    assert kube_api.get("v1", "Namespace", "istio-system")["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "meshctl", "kubernetes.io/metadata.name": "istio-system"}
    assert "labels" not in objs[1]["metadata"]  # the caller's objects are left alone
    # a namespace carries no revision: only --purge removes it
    assert [str(r) for r in uninstall.owned_objects(k, revision="blue")] == [
        "ConfigMap istio-system/meshctl-install-blue", "ConfigMap istio-system/c"]
    assert "Namespace istio-system" in [str(r) for r in uninstall.owned_objects(k, purge=True)]


@pytest.mark.parametrize("status,expected", [
    ({"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]}, None),
    ({"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                             "lastState": {"terminated": {"exitCode": 1}}}]}, "pod p: CrashLoopBackOff (back-off)"),
    ({"initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]},
     "pod p: container init exited with code 2 (Error)"),
    ({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/1 nodes are available: 1 Insufficient cpu."}]},
     "pod p: not scheduled (0/1 nodes are available: 1 Insufficient cpu.)"),
])
def test_pod_problem(kube_api, status, expected):
    kube_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default",
                                                                  "labels": {"app": "x"}}, "status": status})
    k = kube.client(kube_api.kubeconfig)
    workload = {"kind": "Deployment", "metadata": {"namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "x"}}}}
    assert readiness.pod_problem(k, workload) == expected

"""`meshctl dataplane enroll` against the fake API server: what it refuses, what it leaves alone."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.kube


@pytest.fixture
def run(cli, kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})

    def go(*args: str, **kw):
        return cli(*args, "--kubeconfig", kube_api.kubeconfig, **kw)

    return go


def writes(kube_api) -> int:
    return sum(1 for method, _ in kube_api.requests if method != "GET")


def test_enrolling_again_writes_nothing_and_says_so(run, kube_api):
    assert run("dataplane", "enroll", "shop").exit_code == 0
    before = writes(kube_api)
    r = run("dataplane", "enroll", "shop")
    assert r.exit_code == 0, r
    assert "namespace shop: already ambient (unchanged)" in r.stdout
    assert writes(kube_api) == before
    data = json.loads(run("dataplane", "enroll", "shop", "-o", "json").stdout)
    assert data["changed"] is False and data["mode"] == "ambient"


@pytest.mark.parametrize("mode", ["ambient", "sidecar"])
def test_system_namespaces_are_refused(run, kube_api, mode):
    r = run("dataplane", "enroll", "kube-system", "--mode", mode)
    assert r.exit_code == 2, r
    assert "error: namespace 'kube-system' is a system namespace and is never part of the mesh" in r.stderr
    assert writes(kube_api) == 0
    assert run("dataplane", "enroll", "kube-system", "--mode", "none").exit_code == 0  # undoing is fine


def test_revision_only_with_sidecar_mode(run, kube_api):
    r = run("dataplane", "enroll", "shop", "--revision", "canary")
    assert r.exit_code == 2, r
    assert "error: --revision applies to --mode sidecar, not ambient" in r.stderr
    assert writes(kube_api) == 0


def test_sidecar_mode_warns_when_the_revision_has_no_injector(run, kube_api):
    r = run("dataplane", "enroll", "shop", "--mode", "sidecar", "--revision", "canary")
    assert r.exit_code == 0, r
    assert "warning: no sidecar injector of revision canary is installed" in r.stderr
    ns = kube_api.get("v1", "Namespace", "shop")
    assert ns["metadata"]["labels"]["istio.io/rev"] == "canary"
    kube_api.add({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                  "metadata": {"name": "istio-sidecar-injector-canary", "labels": {"istio.io/rev": "canary"}},
                  "webhooks": []})
    r = run("dataplane", "enroll", "shop", "--mode", "sidecar", "--revision", "canary")
    assert r.exit_code == 0 and "no sidecar injector" not in r.stderr, r

"""install → verify-install → uninstall on a real cluster (opt-in).

Runs only when MESHCTL_E2E_KUBECONFIG names a kubeconfig (e.g. a kind cluster:
`kind get kubeconfig --name meshctl-e2e > /tmp/kc && MESHCTL_E2E_KUBECONFIG=/tmp/kc pytest -m e2e tests/e2e`).
It installs the mesh into that cluster and removes it again with --purge: use a throwaway cluster.
MESHCTL_E2E_PROFILE picks the profile (default: minimal, which needs only istiod's image).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

KUBECONFIG = os.environ.get("MESHCTL_E2E_KUBECONFIG")
PROFILE = os.environ.get("MESHCTL_E2E_PROFILE", "minimal")
NS = "istio-system"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not KUBECONFIG, reason="set MESHCTL_E2E_KUBECONFIG to run against a real cluster"),
    pytest.mark.timeout(1200),
]


def meshctl(*args: str, check: int | None = 0, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("KUBECONFIG", None)
    out = subprocess.run([sys.executable, "-m", "meshctl", *args, "--kubeconfig", KUBECONFIG],
                         capture_output=True, text=True, timeout=timeout, env=env)
    if check is not None:
        assert out.returncode == check, f"meshctl {' '.join(args)} → {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def k():
    from meshctl import kube

    return kube.client(KUBECONFIG)


@pytest.fixture(scope="module")
def installed(k):
    """A fresh install of PROFILE for the tests of this module; purged at the end."""
    meshctl("uninstall", "--purge", "-y")
    r = meshctl("install", "--profile", PROFILE, "-y", "--timeout", "10m")
    assert "✔ installed:" in r.stdout
    yield r
    meshctl("uninstall", "--purge", "-y")


def test_client_basics(k):
    v = k.version()
    assert v["major"] and v["gitVersion"].startswith("v")
    assert k.can_i("list", "namespaces")
    name = f"meshctl-e2e-{int(time.time())}"
    try:
        k.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": name},
              "data": {"a": "1"}}
        first = k.apply(cm)
        assert k.apply(cm)["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        assert [i["kind"] for i in k.list("v1", "ConfigMap", namespace=name, label_selector="!absent")
                if i["metadata"]["name"] == "c"] == ["ConfigMap"]
        from meshctl import kube

        with pytest.raises(kube.Conflict):
            k.replace({**first, "data": {"a": "2"}, "metadata": {**first["metadata"], "resourceVersion": "1"}})
        assert k.delete("v1", "ConfigMap", "c", name) is True
        assert k.delete("v1", "ConfigMap", "c", name) is False
    finally:
        k.delete("v1", "Namespace", name)


def test_verify_after_install(installed):
    r = meshctl("verify-install")
    assert r.stdout.rstrip().splitlines()[-1].startswith("✔ verified:")
    data = json.loads(meshctl("verify-install", "-o", "json").stdout)
    assert data["ok"] and data["profile"] == PROFILE


def test_reinstall_creates_nothing(installed):
    r = meshctl("install", "--profile", PROFILE, "-y")
    assert " created " not in r.stderr, r.stderr  # istiod may flip its validating webhook's failurePolicy


def test_port_forward_reaches_istiod(installed, k):
    pods = [p for p in k.list("v1", "Pod", namespace=NS, label_selector="app=istiod")
            if (p.get("status") or {}).get("phase") == "Running"]
    assert pods, "no running istiod pod"
    with k.port_forward(NS, pods[0]["metadata"]["name"], 15014) as port:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "pilot_" in body or "istiod" in body or "go_goroutines" in body


def test_drift_is_found_and_repaired(installed, k):
    k.patch("v1", "ConfigMap", "istio", NS, {"data": {"mesh": "trustDomain: drifted.example\n"}})
    r = meshctl("verify-install", check=1)
    assert "✖ ConfigMap istio-system/istio: drifted: data.mesh" in r.stdout
    meshctl("install", "--profile", PROFILE, "-y")
    meshctl("verify-install")


def test_uninstall_then_nothing_is_installed(installed, k):
    r = meshctl("uninstall", "-y")
    assert "✔ deleted" in r.stdout
    r = meshctl("verify-install", check=1)
    assert "no meshctl installation" in r.stderr
    assert "nothing to uninstall" in meshctl("uninstall", "-y").stdout
    assert k.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                 "virtualservices.networking.istio.io") is not None  # shared objects stay without --purge
    meshctl("uninstall", "--purge", "-y")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # deletion of a CRD finishes asynchronously
        crd = k.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "virtualservices.networking.istio.io")
        if crd is None or crd["metadata"].get("deletionTimestamp"):
            break
        time.sleep(2)
    else:
        pytest.fail("the VirtualService CRD is still there after uninstall --purge")

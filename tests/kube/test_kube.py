"""meshctl.kube against the fake API server: the dict API, error mapping, and import cost."""
from __future__ import annotations

import ast
import base64
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from meshctl import kube
from meshctl.errors import ClusterError, InputError

pytestmark = pytest.mark.kube

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default",
                                                          "labels": {"app": "demo"}}, "data": {"a": "1"}}


def vs_crd() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "virtualservices.networking.istio.io"},
        "spec": {"group": "networking.istio.io", "scope": "Namespaced",
                 "names": {"plural": "virtualservices", "singular": "virtualservice", "kind": "VirtualService",
                           "listKind": "VirtualServiceList", "shortNames": ["vs"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


@pytest.fixture
def k(kube_api):
    return kube.client(kube_api.kubeconfig)


def test_version_and_context_namespace(k, kube_api):
    kube_api.set_version("1", "29")
    v = k.version()
    assert (v["major"], v["minor"], v["gitVersion"]) == ("1", "29", "v1.29.0")
    assert k.namespace == "default" and k.context == "fake" and k.server == kube_api.url


def test_get_list_create_and_already_exists(k):
    assert k.get("v1", "ConfigMap", "cfg", "default") is None
    created = k.create(CM)
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    with pytest.raises(kube.AlreadyExists) as info:
        k.create(CM)
    assert isinstance(info.value, kube.Conflict) and info.value.exit_code == 3
    assert k.get("v1", "ConfigMap", "cfg")["data"] == {"a": "1"}  # the context's namespace
    items = k.list("v1", "ConfigMap", label_selector="app in (demo,other),!missing")
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in items] == [("ConfigMap", "v1", "cfg")]
    assert k.list("v1", "ConfigMap", label_selector="app!=demo") == []
    assert k.list("v1", "ConfigMap", namespace="kube-system") == []
    assert [i["metadata"]["name"] for i in k.list("v1", "Namespace")] == \
        ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_replace_with_stale_resource_version_conflicts(k):
    first = k.create(CM)
    updated = k.replace({**first, "data": {"a": "2"}})
    assert int(updated["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(kube.Conflict) as info:
        k.replace({**first, "data": {"a": "3"}})
    assert "has been modified" in info.value.message
    assert k.get("v1", "ConfigMap", "cfg", "default")["data"] == {"a": "2"}


def test_patch_merge_json_and_strategic(k):
    k.create(CM)
    out = k.patch("v1", "ConfigMap", "cfg", "default", {"data": {"b": "2", "a": None}})
    assert out["data"] == {"b": "2"}
    out = k.patch("v1", "ConfigMap", "cfg", "default", [{"op": "add", "path": "/data/c", "value": "3"}],
                  patch_type="json")
    assert out["data"] == {"b": "2", "c": "3"}
    with pytest.raises(kube.NotFound):
        k.patch("v1", "ConfigMap", "nope", "default", {"data": {}})


def test_server_side_apply_creates_merges_prunes_and_is_idempotent(k, kube_api):
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default", "labels": {"a": "1", "b": "2"}},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}}
    first = k.apply(obj)
    assert first["status"]["readyReplicas"] == 2
    assert [m["manager"] for m in first["metadata"]["managedFields"]] == ["meshctl"]
    again = k.apply(obj)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    # another client adds a label; our next apply keeps it but drops the label we stopped applying
    kube_api.edit("apps/v1", "Deployment", "web", "default", {"metadata": {"labels": {"other": "x"}}})
    obj["metadata"]["labels"] = {"a": "1"}
    third = k.apply(obj)
    assert third["metadata"]["labels"] == {"a": "1", "other": "x"}
    assert third["metadata"]["generation"] == 1  # metadata changes leave the generation alone
    obj["spec"]["replicas"] = 3
    assert k.apply(obj)["metadata"]["generation"] == 2
    dry = k.apply({**obj, "spec": {**obj["spec"], "replicas": 9}}, dry_run=True)
    assert dry["spec"]["replicas"] == 9
    assert kube_api.get("apps/v1", "Deployment", "web", "default")["spec"]["replicas"] == 3


def test_delete_reports_whether_something_was_deleted(k):
    k.create(CM)
    k.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})
    assert k.delete("v1", "ConfigMap", "cfg", "default") is True
    assert k.delete("v1", "ConfigMap", "cfg", "default") is False
    assert k.delete("v1", "Service", "svc") is True
    assert k.delete("example.com/v1", "Unknown", "x", "default") is False


def test_missing_namespace_is_not_found(k):
    with pytest.raises(kube.NotFound) as info:
        k.apply({**CM, "metadata": {"name": "cfg", "namespace": "istio-system"}})
    assert 'namespaces "istio-system" not found' in info.value.message


def test_custom_resources_follow_their_crd(k):
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "r", "namespace": "default"}, "spec": {"hosts": ["r"]}}
    assert not k.served("networking.istio.io/v1", "VirtualService")
    assert k.list("networking.istio.io/v1", "VirtualService") == []
    assert k.get("networking.istio.io/v1", "VirtualService", "r", "default") is None
    crd = k.apply(vs_crd())
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    assert k.served("networking.istio.io/v1", "VirtualService")
    k.apply(vs)
    assert [i["kind"] for i in k.list("networking.istio.io/v1", "VirtualService")] == ["VirtualService"]
    assert k.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "virtualservices.networking.istio.io")
    assert not k.served("networking.istio.io/v1", "VirtualService")


def test_unknown_kinds_are_found_by_discovery(k):
    crd = vs_crd()
    crd["metadata"]["name"] = "widgets.example.com"
    crd["spec"].update(group="example.com", scope="Cluster",
                       names={"plural": "widgets", "singular": "widget", "kind": "Widget"})
    with pytest.raises(kube.NotFound) as info:
        k.apply({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert "no resource type Widget" in info.value.message
    k.apply(crd)
    made = k.apply({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1}})
    assert "namespace" not in made["metadata"]  # cluster-scoped, learnt from discovery
    assert k.get("example.com/v1", "Widget", "w")["spec"] == {"x": 1}


def test_can_i_and_forbidden_requests(k, kube_api):
    assert k.can_i("create", "deployments", "apps", "default")
    kube_api.deny("create", "deployments", "apps")
    kube_api.deny("list", "secrets", namespace="kube-system")
    assert not k.can_i("create", "deployments", "apps", "default")
    assert k.can_i("list", "secrets", namespace="default")
    assert not k.can_i("list", "secrets", namespace="kube-system")
    with pytest.raises(ClusterError) as info:
        k.list("v1", "Secret", namespace="kube-system")
    assert info.value.exit_code == 3
    assert "forbidden" in info.value.message and kube_api.url in info.value.message
    assert "RBAC" in info.value.hint


def test_injected_write_failure_is_a_cluster_error(k, kube_api):
    kube_api.fail_writes_after(1)
    k.create(CM)
    with pytest.raises(ClusterError) as info:
        k.create({**CM, "metadata": {"name": "cfg2", "namespace": "default"}})
    assert "500" in info.value.message and info.value.exit_code == 3
    kube_api.fail_writes_after(None)
    k.create({**CM, "metadata": {"name": "cfg2", "namespace": "default"}})


def _kubeconfig(tmp_path, server: str, token: str = "fake-token", name: str = "kc") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_naming_it(tmp_path):
    server = f"https://127.0.0.1:{_closed_port()}"
    k = kube.client(_kubeconfig(tmp_path, server))
    start = time.monotonic()
    with pytest.raises(ClusterError) as info:
        k.version()
    assert time.monotonic() - start < 5
    assert info.value.message == f"cannot reach the Kubernetes API server at {server}: connection refused"
    assert "--context" in info.value.hint and info.value.exit_code == 3


def test_unresolvable_host(tmp_path):
    k = kube.client(_kubeconfig(tmp_path, "https://no-such-host.invalid:6443"), timeout=5)
    with pytest.raises(ClusterError) as info:
        k.version()
    assert "no-such-host.invalid" in info.value.message and "\n" not in info.value.message


def test_timeout(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts (in the kernel) but never answers
    try:
        k = kube.client(_kubeconfig(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}"), timeout=0.5)
        with pytest.raises(ClusterError) as info:
            k.version()
        assert "did not answer within 0.5s" in info.value.message
    finally:
        silent.close()


def test_rejected_credentials(kube_api, tmp_path):
    k = kube.client(_kubeconfig(tmp_path, kube_api.url, token="wrong"))
    with pytest.raises(ClusterError) as info:
        k.list("v1", "Namespace")
    assert "rejected our credentials (401" in info.value.message and kube_api.url in info.value.message


def test_kubeconfig_problems(tmp_path, kube_api, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ClusterError) as info:
        kube.client(str(tmp_path / "absent"))
    assert "no kubeconfig at" in info.value.message and "--kubeconfig" in info.value.hint
    with pytest.raises(ClusterError) as info:
        kube.client()
    assert ".kube/config" in info.value.message
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed\n")
    with pytest.raises(InputError) as info:  # an invalid file is exit 2, not "unreachable"
        kube.client(str(bad))
    assert info.value.message.startswith(f"invalid kubeconfig {bad}:2: ")
    with pytest.raises(ClusterError) as info:
        kube.client(kube_api.kubeconfig, context="prod")
    assert info.value.message == f"context 'prod' not found in kubeconfig {kube_api.kubeconfig}"
    assert info.value.hint == "available contexts: fake"
    monkeypatch.setenv("KUBECONFIG", kube_api.kubeconfig)
    assert kube.client().server == kube_api.url
    no_current = tmp_path / "no-current"
    config = yaml.safe_load(open(kube_api.kubeconfig))
    del config["current-context"]
    no_current.write_text(yaml.safe_dump(config))
    with pytest.raises(ClusterError) as info:
        kube.client(str(no_current))
    assert info.value.message == f"kubeconfig {no_current} sets no current context"
    assert info.value.hint == "pass --context NAME (available contexts: fake)"
    assert kube.client(str(no_current), context="fake").server == kube_api.url
    # several files, as in KUBECONFIG=a:b
    other = tmp_path / "other"
    other.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": [
        {"name": "second", "context": {"cluster": "fake", "user": "fake", "namespace": "team"}}]}))
    both = f"{kube_api.kubeconfig}{os.pathsep}{other}"
    assert kube.client(both, context="second").namespace == "team"


def test_port_forward_reaches_the_pod_port(k, kube_api):
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(4)

    def serve():
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"echo:" + data)

    threading.Thread(target=serve, daemon=True).start()
    kube_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "istiod-1", "namespace": "default"},
                  "status": {"phase": "Running"}})
    kube_api.forward_pod_port("default", "istiod-1", 15014, echo.getsockname()[1])
    try:
        with k.port_forward("default", "istiod-1", 15014) as port:
            for word in (b"one", b"two"):  # each connection gets its own stream
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.sendall(word)
                    assert c.recv(1024) == b"echo:" + word
    finally:
        echo.close()
    with pytest.raises(kube.NotFound):
        with k.port_forward("default", "missing", 80):
            pass
    kube_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending", "namespace": "default"},
                  "status": {"phase": "Pending"}})
    with pytest.raises(ClusterError) as info:
        with k.port_forward("default", "pending", 80):
            pass
    assert "is Pending, not Running" in info.value.message
    kube_api.deny("create", "pods/portforward", namespace="default")
    with pytest.raises(ClusterError) as info:
        with k.port_forward("default", "istiod-1", 15014):
            pass
    assert "forbidden" in info.value.message and "pods/portforward" in info.value.hint


def test_importing_meshctl_kube_does_not_import_the_client():
    code = "import sys, meshctl.kube; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _kubernetes_imports(tree: ast.AST) -> list[tuple[int, bool]]:
    """(line, inside a function) of each import of the kubernetes package."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and not child.level:
                names = [child.module or ""]
            if any(n == "kubernetes" or n.startswith("kubernetes.") for n in names):
                found.append((child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


def test_only_the_meshctl_kube_package_imports_the_client_and_only_inside_functions():
    root = Path(kube.__file__).parent.parent
    inside, wrong = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        for line, in_function in _kubernetes_imports(ast.parse(path.read_text(), rel)):
            if rel.startswith("meshctl/kube/") and in_function:
                inside.append(f"{rel}:{line}")
            else:
                wrong.append(f"{rel}:{line}")
    assert wrong == []
    assert inside  # the check sees the package's own (lazy) imports


def test_in_cluster_service_account_when_no_kubeconfig(tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token")
    ca.write_text("not a real certificate")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    k = kube.client()
    assert (k.server, k.context) == ("https://10.96.0.1:443", "in-cluster")
    assert k.configuration.api_key["BearerToken"].endswith("sa-token")
    token.unlink()
    with pytest.raises(ClusterError) as info:
        kube.client()
    assert "in-cluster service account" in info.value.message


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    from tests.kube.fakeapi import make_tls

    return make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def https_api(tmp_path, tls_files):
    from tests.kube.fakeapi import FakeKube

    server = FakeKube(tmp_path / "https").start(tls=tls_files)
    yield server
    server.stop()


def test_https_with_the_kubeconfigs_certificate_authority(https_api, tmp_path, tls_files):
    k = kube.client(https_api.kubeconfig)
    assert k.server.startswith("https://127.0.0.1:")
    assert k.version()["gitVersion"] == "v1.30.0"
    k.apply(CM)
    assert k.get("v1", "ConfigMap", "cfg", "default")["data"] == {"a": "1"}
    # a certificate the kubeconfig's CA did not sign: one line naming the server
    wrong = yaml.safe_load(open(https_api.kubeconfig))
    with open(tls_files.cert, "rb") as fh:  # the server's own certificate is not a CA
        wrong["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(fh.read()).decode()
    (tmp_path / "wrong").write_text(yaml.safe_dump(wrong))
    with pytest.raises(ClusterError) as info:
        kube.client(str(tmp_path / "wrong")).version()
    assert info.value.message.startswith(f"TLS handshake with the Kubernetes API server at {https_api.url} failed")
    assert "\n" not in info.value.message and "certificate-authority" in info.value.hint
    # insecure-skip-tls-verify is honoured, quietly
    skip = yaml.safe_load(open(https_api.kubeconfig))
    del skip["clusters"][0]["cluster"]["certificate-authority-data"]
    skip["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    (tmp_path / "skip").write_text(yaml.safe_dump(skip))
    assert kube.client(str(tmp_path / "skip")).get("v1", "ConfigMap", "cfg", "default") is not None


def test_port_forward_over_https(https_api):
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(1)

    def serve():
        conn, _ = echo.accept()
        with conn:
            conn.sendall(b"hello " + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    https_api.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}})
    https_api.forward_pod_port("default", "p", 8080, echo.getsockname()[1])
    k = kube.client(https_api.kubeconfig)
    try:
        with k.port_forward("default", "p", 8080) as port:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"tls")
                assert c.recv(100) == b"hello tls"
    finally:
        echo.close()


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe binary", "not UTF-8 text"),
    (b"apiVersion: v1\nkind: Config\nclusters: 5\n", "clusters must be a list of entries with a name and a cluster"),
    (b"- a\n- b\n", "not a mapping of clusters, users and contexts"),
    (b"current-context: [a]\n", "current-context must be a string"),
])
def test_an_invalid_kubeconfig_is_exit_2_in_plain_words(cli, tmp_path, content, message):
    bad = tmp_path / "kubeconfig"
    bad.write_bytes(content)
    r = cli("--kubeconfig", str(bad), "proxy-status")
    assert r.exit_code == 2, r
    assert r.stderr.startswith(f"error: invalid kubeconfig {bad}") and message in r.stderr
    assert "codec" not in r.stderr and "object" not in r.stderr


def test_a_missing_credential_plugin_is_one_error_line_exit_3(cli, tmp_path, kube_api):
    config = yaml.safe_load(open(kube_api.kubeconfig))
    config["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                           "command": "no-such-credential-plugin", "interactiveMode": "Never"}}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    r = cli("--kubeconfig", str(path), "proxy-status")
    assert r.exit_code == 3, r
    assert r.stderr.startswith(f"error: cannot get credentials from kubeconfig {path}: ")
    assert "no-such-credential-plugin" in r.stderr
    assert "ERROR:root" not in r.stderr and not [m for m, _ in kube_api.requests], "went on unauthenticated"

"""`meshctl inject` as a user runs it: files, stdin, -o, errors, passthrough, modes."""
from __future__ import annotations

import json
import os

import yaml

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example/web:1
"""
SERVICE = """\
# the web service
apiVersion: v1
kind: Service
metadata:
  name: web   # keep me
spec:
  ports: [{port: 80}]
"""
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1"}
"""


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def test_inject_a_file_passes_other_documents_through_in_order(cli, tmp_path):
    f = tmp_path / "app.yaml"
    f.write_text(SERVICE + "---\n" + DEPLOY + "---\n" + CONFIG)
    r = cli("inject", "-f", str(f))
    assert r.exit_code == 0, r
    out = docs(r.stdout)
    assert [d["kind"] for d in out] == ["Service", "Deployment", "ConfigMap"]
    assert r.stdout.startswith(SERVICE)  # untouched documents are copied as written, comments included
    assert CONFIG in r.stdout
    assert [c["name"] for c in pod_spec(out[1])["initContainers"]] == ["istio-init", "istio-proxy"]


def test_inject_from_stdin(cli):
    r = cli("inject", "-f", "-", input=DEPLOY)
    assert r.exit_code == 0, r
    assert "sidecar.istio.io/status" in r.stdout


def test_inject_a_directory(cli, tmp_path):
    (tmp_path / "a.yaml").write_text(DEPLOY)
    (tmp_path / "b.yaml").write_text(SERVICE)
    r = cli("inject", "-f", str(tmp_path))
    assert r.exit_code == 0, r
    assert [d["kind"] for d in docs(r.stdout)] == ["Deployment", "Service"]


def test_output_file_is_written_atomically(cli, tmp_path):
    out = tmp_path / "out.yaml"
    out.write_text("old\n")
    r = cli("inject", "-f", "-", "--output-file", str(out), input=DEPLOY)
    assert r.exit_code == 0, r
    assert r.stdout == ""
    assert docs(out.read_text())[0]["kind"] == "Deployment"
    assert sorted(os.listdir(tmp_path)) == ["out.yaml"]  # no temporary file left behind


def test_invalid_annotation_exits_2_with_empty_stdout_and_keeps_the_output_file(cli, tmp_path):
    bad = DEPLOY.replace("      labels: {app: web}\n",
                         "      labels: {app: web}\n      annotations:\n"
                         "        traffic.sidecar.istio.io/excludeOutboundIPRanges: \"10.0.0.0/8,banana\"\n")
    out = tmp_path / "out.yaml"
    out.write_text("old\n")
    r = cli("inject", "-f", "-", "--output-file", str(out), input=DEPLOY + "---\n" + bad)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "traffic.sidecar.istio.io/excludeOutboundIPRanges" in r.stderr and "banana" in r.stderr
    assert r.stderr.startswith("error: ")
    assert out.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["out.yaml"]


def test_broken_yaml_and_missing_file_are_input_errors(cli, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(DEPLOY + "---\nkind: [unclosed\n")
    r = cli("inject", "-f", str(f))
    assert r.exit_code == 2 and r.stdout == ""
    assert f"{f}:" in r.stderr
    r = cli("inject", "-f", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_native_sidecar_false_gives_a_classic_sidecar(cli):
    r = cli("inject", "-f", "-", "--native-sidecar=false", input=DEPLOY)
    assert r.exit_code == 0, r
    spec = pod_spec(docs(r.stdout)[0])
    assert [c["name"] for c in spec["containers"]] == ["web", "istio-proxy"]
    assert [c["name"] for c in spec["initContainers"]] == ["istio-init"]


def test_cni_from_set_and_from_the_ambient_profile(cli):
    for args in (["--set", "components.cni.enabled=true"], ["--profile", "ambient", "--mode", "sidecar"]):
        r = cli("inject", "-f", "-", *args, input=DEPLOY)
        assert r.exit_code == 0, r
        assert [c["name"] for c in pod_spec(docs(r.stdout)[0])["initContainers"]] == ["istio-validation", "istio-proxy"]


def test_values_file_and_mesh_config(cli, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("hub: registry.example.com/mesh\ntag: 9.9.9\n")
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("trustDomain: example.org\ndefaultConfig:\n  proxyMetadata: {FOO: bar}\n")
    r = cli("inject", "-f", "-", "--values", str(values), "--mesh-config", str(mesh), input=DEPLOY)
    assert r.exit_code == 0, r
    proxy = next(c for c in pod_spec(docs(r.stdout)[0])["initContainers"] if c["name"] == "istio-proxy")
    assert proxy["image"] == "registry.example.com/mesh/proxyv2:9.9.9"
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["TRUST_DOMAIN"] == "example.org" and env["FOO"] == "bar"


def test_injecting_twice_changes_nothing_and_remove_restores_the_input(cli, tmp_path):
    once = cli("inject", "-f", "-", input=DEPLOY)
    twice = cli("inject", "-f", "-", input=once.stdout)
    assert twice.exit_code == 0 and twice.stdout == once.stdout
    removed = cli("inject", "--remove", "-f", "-", input=once.stdout)
    assert removed.exit_code == 0
    assert docs(removed.stdout) == docs(DEPLOY)


def test_ambient_mode_labels_pod_templates_without_containers(cli):
    labelled = DEPLOY.replace("labels: {app: web}\n    spec", "labels: {app: web, sidecar.istio.io/inject: \"true\"}\n    spec")
    r = cli("inject", "--mode", "ambient", "-f", "-", input=labelled + "---\n" + SERVICE)
    assert r.exit_code == 0, r
    dep, svc = docs(r.stdout)
    meta = dep["spec"]["template"]["metadata"]
    assert meta["labels"] == {"app": "web", "istio.io/dataplane-mode": "ambient"}
    assert [c["name"] for c in pod_spec(dep)["containers"]] == ["web"] and "initContainers" not in pod_spec(dep)
    assert svc["kind"] == "Service"
    back = cli("inject", "--mode", "ambient", "--remove", "-f", "-", input=r.stdout)
    assert docs(back.stdout)[0]["spec"]["template"]["metadata"]["labels"] == {"app": "web"}


def test_ambient_mode_takes_an_injected_sidecar_out(cli):
    injected = cli("inject", "-f", "-", input=DEPLOY).stdout
    r = cli("inject", "--mode", "ambient", "-f", "-", input=injected)
    dep = docs(r.stdout)[0]
    assert [c["name"] for c in pod_spec(dep)["containers"]] == ["web"]
    assert "sidecar.istio.io/status" not in (dep["spec"]["template"]["metadata"].get("annotations") or {})


def test_bad_flags_are_usage_errors(cli):
    assert cli("inject", "-f", "-", "--mode", "mesh", input=DEPLOY).exit_code == 2
    r = cli("inject", "-f", "-", "--native-sidecar=maybe", input=DEPLOY)
    assert r.exit_code == 2 and "--native-sidecar" in r.stderr
    assert cli("inject", "-f", "-", "--profile", "nope", input=DEPLOY).exit_code == 2


def test_host_network_workload_is_passed_through_with_a_warning(cli):
    host = DEPLOY.replace("      containers:", "      hostNetwork: true\n      containers:")
    r = cli("inject", "-f", "-", input=host)
    assert r.exit_code == 0
    assert r.stdout == host
    assert "host networking" in r.stderr


def test_json_input_documents(cli, tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps(yaml.safe_load(DEPLOY)))
    r = cli("inject", "-f", str(f))
    assert r.exit_code == 0, r
    assert "istio-proxy" in r.stdout


def test_a_failed_write_leaves_the_old_output_and_no_temporary_file(cli, tmp_path, monkeypatch):
    out = tmp_path / "out.yaml"
    out.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    r = cli("inject", "-f", "-", "--output-file", str(out), input=DEPLOY)
    assert r.exit_code == 2 and "No space left on device" in r.stderr
    assert out.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["out.yaml"]


def test_output_into_a_missing_directory_is_an_input_error(cli, tmp_path):
    r = cli("inject", "-f", "-", "--output-file", str(tmp_path / "nope" / "out.yaml"), input=DEPLOY)
    assert r.exit_code == 2 and r.stdout == ""


def test_windows_line_endings_and_document_end_markers(cli):
    text = (DEPLOY + "...\n---\n" + SERVICE).replace("\n", "\r\n")
    r = cli("inject", "-f", "-", input=text)
    assert r.exit_code == 0, r
    assert [d["kind"] for d in docs(r.stdout)] == ["Deployment", "Service"]


def test_set_accepts_istioctl_values_prefix(cli):
    r = cli("inject", "-f", "-", "--set", "values.global.proxy.logLevel=debug", input=DEPLOY)
    assert r.exit_code == 0, r
    proxy = next(c for c in pod_spec(docs(r.stdout)[0])["initContainers"] if c["name"] == "istio-proxy")
    assert "--proxyLogLevel=debug" in proxy["args"]


def test_comments_above_an_injected_document_are_kept(cli):
    # what `helm template` prints: a `# Source:` comment heading every document
    text = "---\n# Source: shop/templates/deploy.yaml\n# owner: team-shop\n" + DEPLOY
    r = cli("inject", "-f", "-", input=text)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("# Source: shop/templates/deploy.yaml\n# owner: team-shop\napiVersion: apps/v1\n")
    assert "istio-proxy" in r.stdout
    back = cli("inject", "--remove", "-f", "-", input=r.stdout)
    assert back.exit_code == 0 and back.stdout.startswith("# Source: shop/templates/deploy.yaml\n# owner: team-shop\n")
    assert yaml.safe_load(back.stdout) == yaml.safe_load(DEPLOY)


def test_a_comment_on_the_separator_line_heads_the_next_document(cli):
    text = SERVICE + "--- # Source: shop/templates/deploy.yaml\n" + DEPLOY
    r = cli("inject", "-f", "-", input=text)
    assert r.exit_code == 0, r.stderr
    first, second = r.stdout.split("---\n")
    assert yaml.safe_load(first) == yaml.safe_load(SERVICE)
    assert second.startswith("# Source: shop/templates/deploy.yaml\napiVersion: apps/v1\n")


def test_output_means_the_format_as_in_every_other_command(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("inject", "-f", "-", "-o", "json", input=DEPLOY)
    assert r.exit_code == 0, r
    assert json.loads(r.stdout)["kind"] == "Deployment"
    assert not (tmp_path / "json").exists(), "-o json wrote a file named json"
    r = cli("inject", "-f", "-", "-o", "yaml", input=DEPLOY + "---\n" + DEPLOY.replace("name: web", "name: api"))
    assert r.exit_code == 0 and r.stdout.count("kind: Deployment") == 2
    r = cli("inject", "-f", "-", "-o", "json", input=DEPLOY + "---\n" + DEPLOY.replace("name: web", "name: api"))
    assert json.loads(r.stdout)["kind"] == "List" and len(json.loads(r.stdout)["items"]) == 2
    r = cli("inject", "-f", "-", "-o", "out.yaml", input=DEPLOY)
    assert r.exit_code == 2 and r.stdout == ""
    assert "--output-file out.yaml" in r.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_output_file_writes_through_a_symbolic_link(cli, tmp_path):
    real = tmp_path / "shared" / "app.yaml"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "app.yaml"
    link.symlink_to(real)
    r = cli("inject", "-f", "-", "--output-file", str(link), input=DEPLOY)
    assert r.exit_code == 0, r
    assert link.is_symlink(), "the link was replaced by a copy"
    assert "istio-proxy" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640

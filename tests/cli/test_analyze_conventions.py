"""The spellings users paste from istioctl and kubectl: -o log, --use-kube=false|true,
-f/--filename; -o's values shown in --help and offered by shell completion."""
from __future__ import annotations

import pytest

from tests.cli.test_completion import _complete

VS_TYPO = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
           "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviewz}\n")
SVC = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: ratings\nspec:\n  selector: {app: ratings}\n"
       "  ports:\n  - {name: http, port: 9080}\n")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "vs.yaml").write_text(VS_TYPO)
    (tmp_path / "svc.yaml").write_text(SVC)
    return tmp_path


@pytest.mark.parametrize("spelling", ["log", "LOG", "text"])
def test_o_log_is_istioctls_name_for_the_text_format(cli, files, spelling):
    default = cli("analyze", str(files / "vs.yaml"))
    r = cli("analyze", "-o", spelling, str(files / "vs.yaml"))
    assert (r.exit_code, r.stdout, r.stderr) == (default.exit_code, default.stdout, default.stderr)
    assert "Referenced host not found" in r.stdout


def test_an_unknown_format_lists_the_formats(cli, files):
    r = cli("analyze", "-o", "xml", str(files))
    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["error: unknown output format 'xml'",
                                     "hint: use one of: text, json, yaml, sarif, junit"]


def test_use_kube_false_analyzes_the_files_only(cli, files, tmp_path):
    missing = tmp_path / "no-kubeconfig"
    r = cli("analyze", "--use-kube=false", "--kubeconfig", str(missing), str(files / "vs.yaml"))
    assert r.exit_code == 1 and "Referenced host not found" in r.stdout, r
    # the last spelling wins, as with Go flags
    r = cli("analyze", "--use-kube", "--use-kube=False", "--kubeconfig", str(missing), str(files / "vs.yaml"))
    assert r.exit_code == 1, r


@pytest.mark.kube
def test_use_kube_true_reads_the_cluster(cli, files, kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    kube_api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviewz", "namespace": "default"},
                  "spec": {"ports": [{"name": "http", "port": 9080}]}})
    for flag in ("--use-kube=true", "--use-kube=1", "--use-kube"):
        r = cli("analyze", flag, "--kubeconfig", kube_api.kubeconfig, str(files / "vs.yaml"))
        assert "Referenced host not found" not in r.stdout and r.exit_code == 0, (flag, r)


def test_use_kube_with_another_value_is_a_usage_error(cli, files):
    r = cli("analyze", "--use-kube=maybe", str(files))
    assert r.exit_code == 2, r
    assert r.stderr.splitlines()[0] == "error: invalid value for --use-kube: 'maybe' (use true or false)"
    # a path that only looks like the flag after "--" is a path
    r = cli("analyze", "--", "--use-kube=maybe")
    assert r.exit_code == 2 and "--use-kube=maybe: no such file or directory" in r.stderr, r


def test_f_and_filename_take_inputs_like_paths(cli, files):
    positional = cli("analyze", "-o", "json", str(files / "vs.yaml"), str(files / "svc.yaml"))
    for args in (("-f", str(files / "vs.yaml"), "-f", str(files / "svc.yaml")),
                 ("--filename", str(files / "vs.yaml"), str(files / "svc.yaml")),
                 ("-f", str(files))):
        r = cli("analyze", "-o", "json", *args)
        assert (r.exit_code, r.stdout) == (positional.exit_code, positional.stdout), args


def test_help_shows_zero_or_more_paths_and_the_formats(cli):
    r = cli("analyze", "--help")
    assert "meshctl analyze [OPTIONS] [PATH]..." in r.stdout
    text = " ".join(r.stdout.replace("│", " ").split())
    assert "Output format: text (default), json, yaml, sarif, junit; log means text." in text


def test_o_completes_the_formats_not_file_names():
    assert _complete("meshctl analyze -o ") == ["text", "json", "yaml", "sarif", "junit"]
    assert _complete("meshctl analyze -o s") == ["sarif"]
    assert _complete("meshctl analyze --output j") == ["json", "junit"]

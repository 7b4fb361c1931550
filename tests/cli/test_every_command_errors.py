"""Every command, fed bad flags, missing or unreadable files, or an unreachable cluster or proxy,
answers with one `error:` line (and maybe one `hint:` line) and its documented exit code —
never a traceback."""
from __future__ import annotations

import socket

import pytest
from typer.main import get_command

from meshctl.cli import app


def _leaf_commands() -> list[tuple[str, ...]]:
    out = []

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                walk(cmd.get_command(None, name), path + (name,))
        else:
            out.append(path)

    walk(get_command(app), ())
    return out


def _assert_one_line_error(r, code: int) -> None:
    assert r.exit_code == code, r
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), r
    assert len(lines) <= 2 and all(line.startswith(("error: ", "hint: ")) for line in lines), r
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def dead_kubeconfig(tmp_path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{_closed_port()}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: default}}}}]
current-context: x
""")
    return str(path)


COMMANDS = _leaf_commands()


def test_the_command_tree_is_what_the_tests_below_cover():
    assert len(COMMANDS) >= 25
    assert ("analyze",) in COMMANDS and ("canary", "shift") in COMMANDS and ("proxy-config", "log") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unknown_flag(cli, command):
    r = cli(*command, "--no-such-flag")
    _assert_one_line_error(r, 2)
    assert "--no-such-flag" in r.stderr
    assert r.stdout == ""


MISSING = [
    ("analyze", "{missing}"),
    ("inject", "-f", "{missing}"),
    ("manifest", "generate", "-p", "minimal", "-f", "{missing}"),
    ("profile", "dump", "sidecar", "-f", "{missing}"),
    ("install", "-p", "minimal", "-f", "{missing}", "-y"),
    ("canary", "shift", "reviews", "90/10", "-f", "{missing}"),
    ("analyze", "--mesh-config", "{missing}", "{manifest}"),
    ("inject", "-f", "{manifest}", "--mesh-config", "{missing}"),
]


@pytest.mark.parametrize("args", MISSING, ids=lambda a: " ".join(a[:3]))
def test_missing_file(cli, tmp_path, args):
    manifest = tmp_path / "ok.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    missing = str(tmp_path / "nope.yaml")
    r = cli(*[a.format(missing=missing, manifest=manifest) for a in args])
    _assert_one_line_error(r, 2)
    assert "nope.yaml" in r.stderr


BINARY = [
    ("inject", "-f", "{bad}"),
    ("manifest", "generate", "-p", "minimal", "-f", "{bad}"),
    ("profile", "dump", "sidecar", "-f", "{bad}"),
    ("canary", "shift", "reviews", "90/10", "-f", "{bad}"),
    ("analyze", "--mesh-config", "{bad}", "{manifest}"),
    ("inject", "-f", "{manifest}", "--values", "{bad}"),
    ("inject", "-f", "{manifest}", "--mesh-config", "{bad}"),
    ("install", "-p", "minimal", "-f", "{bad}", "-y"),
    ("proxy-status", "--kubeconfig", "{bad}"),
    ("canary", "status", "reviews", "--kubeconfig", "{bad}"),
]


@pytest.mark.parametrize("args", BINARY, ids=lambda a: " ".join(a[:3]))
def test_unreadable_file(cli, tmp_path, args):
    manifest = tmp_path / "ok.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\x00\xff\xfe binary \x00")
    r = cli(*[a.format(bad=bad, manifest=manifest) for a in args])
    _assert_one_line_error(r, 2)
    assert "bad.yaml" in r.stderr
    assert "codec" not in r.stderr and "byte 0x" not in r.stderr.split("(")[0]


def test_unreadable_file_in_analyze_is_a_finding(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\x00\xff\xfe binary \x00")
    r = cli("analyze", str(bad))
    assert r.exit_code == 1
    assert "MSH0001" in r.stdout and "binary" in r.stdout


CLUSTER = [
    ("install", "-p", "minimal", "-y"),
    ("verify-install",),
    ("uninstall", "-y"),
    ("precheck",),
    ("analyze", "--use-kube"),
    ("inject", "-f", "{manifest}", "--use-kube"),
    ("dataplane", "enroll", "shop", "--mode", "ambient"),
    ("dataplane", "status"),
    ("proxy-status",),
    ("proxy-config", "clusters", "productpage-v1-123.default"),
    ("canary", "shift", "reviews", "90/10"),
    ("canary", "status", "reviews"),
    ("canary", "promote", "reviews"),
    ("canary", "abort", "reviews"),
    ("canary", "run", "reviews", "--to", "v2", "--proxy-admin", "127.0.0.1:1"),
]


@pytest.mark.parametrize("args", CLUSTER, ids=lambda a: " ".join(a[:2]))
def test_unreachable_cluster(cli, tmp_path, dead_kubeconfig, args):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: a}]}\n")
    r = cli(*[a.format(manifest=manifest) for a in args], "--kubeconfig", dead_kubeconfig)
    _assert_one_line_error(r, 3)
    assert "127.0.0.1" in r.stderr


def test_unreachable_proxy(cli):
    address = f"127.0.0.1:{_closed_port()}"
    r = cli("proxy-config", "clusters", address)
    _assert_one_line_error(r, 3)
    r = cli("proxy-config", "log", address, "--level", "debug")
    _assert_one_line_error(r, 3)
    r = cli("proxy-status", "--admin", address)  # one unreachable proxy is a row, not a failure
    assert r.exit_code == 0 and "UNREACHABLE" in r.stdout
    r = cli("proxy-status", "--admin", address, "--fail-on-unhealthy")
    assert r.exit_code == 1

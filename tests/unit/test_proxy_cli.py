"""proxy-status / proxy-config flag handling: one-line errors and documented exit codes (no proxy needed)."""
from __future__ import annotations


def test_bad_admin_address_is_exit_2(cli):
    r = cli("proxy-status", "--admin", "not-an-address")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0] == "error: invalid admin address 'not-an-address'"


def test_bad_output_format_is_exit_2(cli):
    r = cli("proxy-status", "--admin", "127.0.0.1:1", "-o", "xml")
    assert r.exit_code == 2 and "error: unknown output format 'xml'" in r.stderr


def test_bad_concurrency_is_exit_2(cli):
    r = cli("proxy-status", "--admin", "127.0.0.1:1", "--concurrency", "0")
    assert r.exit_code == 2 and r.stderr.startswith("error: ")


def test_no_cluster_is_exit_3(cli, tmp_path):
    r = cli("--kubeconfig", str(tmp_path / "missing"), "proxy-status")
    assert r.exit_code == 3, r
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_proxy_config_target_checks(cli):
    r = cli("proxy-config", "routes", "127.0.0.1:1", "--admin", "127.0.0.1:2")
    assert r.exit_code == 2 and "either POD_OR_ADDRESS or --admin" in r.stderr
    r = cli("proxy-config", "log", "127.0.0.1:1", "--logger", "upstream")
    assert r.exit_code == 2 and "--logger needs --level" in r.stderr

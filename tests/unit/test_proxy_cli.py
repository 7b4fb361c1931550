"""proxy-status / proxy-config flag handling: one-line errors and documented exit codes (no proxy needed)."""
from __future__ import annotations


def test_bad_admin_address_is_exit_2(cli):
    r = cli("proxy-status", "--admin", "not an address")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0] == "error: invalid admin address 'not an address'"


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


def _web_server(body: bytes):
    """A plain web server on 127.0.0.1 answering every request 200 text/html; returns (address, stop)."""
    import socket
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def loop():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))

    threading.Thread(target=loop, daemon=True).start()
    return f"127.0.0.1:{sock.getsockname()[1]}", sock.close


def test_log_against_a_web_server_is_exit_3_not_an_empty_table(cli):
    addr, stop = _web_server(b"<html><body>Sign in: user: <input></body></html>")
    try:
        for extra in ((), ("--level", "debug")):
            r = cli("proxy-config", "log", addr, *extra)
            assert r.exit_code == 3, r
            assert r.stdout == ""
            assert r.stderr.startswith(f"error: proxy {addr} unreachable: answer is not Envoy's logger list")
    finally:
        stop()


def test_admin_address_without_port_means_the_admin_port_15000(cli):
    from meshctl.proxy.admin import parse_address

    assert parse_address("127.0.0.1", default_port=15000) == "127.0.0.1:15000"
    assert parse_address("[::1]", default_port=15000) == "[::1]:15000"
    assert parse_address("http://envoy.local/", default_port=15000) == "envoy.local:15000"
    # nothing listens on 127.0.0.2:15000 (port 15000 is not bound on that loopback address)
    r = cli("proxy-status", "--admin", "127.0.0.2", "--timeout", "1", "-o", "json")
    assert r.exit_code == 0, r
    assert '"address": "127.0.0.2:15000"' in r.stdout
    r = cli("proxy-config", "clusters", "127.0.0.2", "--timeout", "1")   # an IP, not pod "127" in namespace "0.0.2"
    assert r.exit_code == 3 and r.stderr.startswith("error: proxy 127.0.0.2:15000 unreachable"), r


def test_the_same_admin_address_twice_is_one_proxy(cli):
    r = cli("proxy-status", "--admin", "127.0.0.2:9", "--admin", "http://127.0.0.2:9/", "--timeout", "1", "-o", "json")
    assert r.exit_code == 0, r
    assert r.stdout.count('"address": "127.0.0.2:9"') == 1


def test_admin_with_all_namespaces_is_refused_not_ignored(cli):
    r = cli("proxy-status", "--admin", "127.0.0.2:9", "-A")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("error: --admin and --all-namespaces exclude each other"), r


def test_o_lists_and_completes_the_formats(cli):
    from tests.cli.test_completion import _complete

    assert _complete("meshctl proxy-status -o ") == ["table", "wide", "json", "yaml"]
    assert _complete("meshctl proxy-status -o w") == ["wide"]
    assert _complete("meshctl proxy-config clusters --output ") == ["table", "json", "yaml"]
    assert _complete("meshctl proxy-config log -o y") == ["yaml"]
    text = " ".join(cli("proxy-status", "--help").stdout.replace("│", " ").split())
    assert "Output format: table (default), wide, json, yaml." in text
    r = cli("proxy-status", "--admin", "127.0.0.2:9", "-o", "JSON", "--timeout", "1")
    assert r.exit_code == 0 and r.stdout.startswith("{"), r

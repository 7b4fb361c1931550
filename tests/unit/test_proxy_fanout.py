"""proxy-status's fan-out against scripted admin endpoints: the concurrency bound, and the same
rows with or without uvloop and orjson."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest

from meshctl.proxy import fanout, report
from meshctl.proxy.status import ProxyTarget, StatusResult
from tests.reports import render

BUILD = {"configs": [{"bootstrap": {"node": {"id": "n", "metadata": {"ISTIO_VERSION": "1.24.1"},
                                             "user_agent_build_version": {"version": {"major_number": 1,
                                                                                      "minor_number": 40}}}}}]}
STATS = {"stats": [{"name": "server.state", "value": 0},
                   {"name": "cluster.static.membership_healthy", "value": 1},
                   {"name": "cluster.static.membership_total", "value": 1}]}


def _answer(path: bytes) -> bytes:
    if path.startswith(b"/config_dump"):
        body = json.dumps(BUILD).encode()
    elif path.startswith(b"/stats"):
        body = json.dumps(STATS).encode()
    else:
        body = b'{"certificates": []}'
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def _probe_all(count: int, concurrency: int) -> tuple[list, int, int]:
    """Probe `count` admin endpoints; returns (rows, most connections open at once, connections)."""
    open_now = {"now": 0, "max": 0, "total": 0}

    async def handle(reader, writer):
        open_now["now"] += 1
        open_now["total"] += 1
        open_now["max"] = max(open_now["max"], open_now["now"])
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(0.01)
                writer.write(_answer(head.split(b" ")[1]))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now["now"] -= 1
            writer.close()

    servers = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(count)]
    targets = [ProxyTarget(name=f"p{i}", address=f"127.0.0.1:{s.sockets[0].getsockname()[1]}")
               for i, s in enumerate(servers)]
    rows = await fanout.collect(targets, timeout=2, concurrency=concurrency)
    for s in servers:
        s.close()
    return rows, open_now["max"], open_now["total"]


def test_concurrency_counts_proxies_each_over_one_connection():
    rows, most, total = asyncio.run(_probe_all(12, concurrency=3))
    assert [r.status for r in rows] == ["STATIC"] * 12
    assert [r.version for r in rows] == ["1.24.1"] * 12
    assert most <= 3, "at most --concurrency proxies are probed at once"
    assert total == 12, "one kept-alive connection a proxy for its three reads"


def _threaded_admin():
    """An admin endpoint served from a thread (for fanout.run, which runs its own loop)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Admin(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            self.wfile.write(_answer(self.path.encode()))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_same_rows_with_asyncios_own_loop(monkeypatch):
    pytest.importorskip("uvloop")
    server = _threaded_admin()
    try:
        targets = [ProxyTarget(name="a", address=f"127.0.0.1:{server.server_address[1]}"),
                   ProxyTarget(name="gone", address="127.0.0.1:9")]
        assert fanout._loop_factory() is not None
        with_uvloop = [r.to_dict() for r in fanout.run(targets, timeout=2)]
        monkeypatch.setitem(sys.modules, "uvloop", None)  # as where it is not installed (Windows)
        assert fanout._loop_factory() is None
        assert [r.to_dict() for r in fanout.run(targets, timeout=2)] == with_uvloop
        assert [(r["status"], r["reasons"]) for r in with_uvloop] == [
            ("STATIC", []), ("UNREACHABLE", ["connection refused"])]
    finally:
        server.shutdown()


def _result_with_reason(reason: str) -> StatusResult:
    from meshctl.proxy.status import unreachable

    return StatusResult([unreachable(ProxyTarget(name="a", address="127.0.0.1:1"), reason)])


def test_json_is_the_json_modules_bytes_with_or_without_orjson(monkeypatch):
    from meshctl.output import to_json

    for reason in ("connection refused", "listener x: unknown field « é »"):
        result = _result_with_reason(reason)
        out, _ = render(report.write, result, "json")
        assert out == to_json(result.to_dict())
        monkeypatch.setitem(sys.modules, "orjson", None)
        assert render(report.write, result, "json")[0] == out
        monkeypatch.delitem(sys.modules, "orjson")

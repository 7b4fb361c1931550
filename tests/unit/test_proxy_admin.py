"""The admin client's HTTP/1.1 transport against scripted servers: bodies, keep-alive, failures."""
from __future__ import annotations

import asyncio

import pytest

from meshctl.proxy.admin import AdminClient, AdminUnreachable


def serve(handler):
    """Run `handler(reader, writer)` per connection on 127.0.0.1; returns (server, address, counter)."""
    conns = {"n": 0}

    async def start():
        async def on_conn(reader, writer):
            conns["n"] += 1
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    return start, conns


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    return head.split(b" ")[1].decode()


def run(coro):
    return asyncio.run(coro)


def test_content_length_chunked_and_keep_alive():
    async def handler(reader, writer):
        while True:
            path = await read_request(reader)
            if path.startswith("/chunked"):
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n"
                             b"4\r\n{\"a\"\r\n3;ext=1\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{\"b\": 2}\n")
            await writer.drain()

    start, conns = serve(handler)

    async def main():
        server, addr = await start()
        async with AdminClient(timeout=2) as admin:
            a = await admin.get_json(addr, "/chunked", {"filter": "x|y"})
            b = await admin.get_json(addr, "/plain")
            c = await admin.get_json(addr, "/chunked")
        server.close()
        return a, b, c

    assert run(main()) == ({"a": 1}, {"b": 2}, {"a": 1})
    assert conns["n"] == 1  # one kept-alive connection for the three requests


def test_closed_idle_connection_is_retried_once():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()  # then close: the client's idle connection is dead

    start, conns = serve(handler)

    async def main():
        server, addr = await start()
        async with AdminClient(timeout=2) as admin:
            first = await admin.get_json(addr, "/x")
            await asyncio.sleep(0.05)
            second = await admin.get_json(addr, "/x")
        server.close()
        return first, second

    assert run(main()) == ({}, {})
    assert conns["n"] == 2


def test_not_http_and_error_status_and_timeout():
    async def garbage(reader, writer):
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async def failing(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 12\r\n\r\nPRE_INIT\nxx\n")
        await writer.drain()

    async def closing(reader, writer):
        await read_request(reader)  # then close without answering (a port-forward to a closed port)

    async def silent(reader, writer):
        await read_request(reader)
        await asyncio.sleep(5)

    async def main():
        out = []
        for handler in (garbage, failing, closing, silent):
            start, _ = serve(handler)
            server, addr = await start()
            async with AdminClient(timeout=0.3) as admin:
                try:
                    await admin.get_json(addr, "/server_info")
                except AdminUnreachable as e:
                    out.append(e.reason)
            server.close()
        return out

    reasons = run(main())
    assert reasons == ["not an HTTP admin endpoint (malformed answer)", "HTTP 503: PRE_INIT",
                       "connection closed without an answer", "timed out"]


def test_ready_accepts_503_and_concurrency_bound():
    active = {"now": 0, "max": 0}

    async def handler(reader, writer):
        while True:
            await read_request(reader)
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
            await asyncio.sleep(0.02)
            active["now"] -= 1
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 12\r\n\r\nINITIALIZING")
            await writer.drain()

    start, _ = serve(handler)

    async def main():
        server, addr = await start()
        async with AdminClient(timeout=2, concurrency=3) as admin:
            results = await asyncio.gather(*(admin.ready(addr) for _ in range(12)))
        server.close()
        return results

    assert run(main()) == [(False, "INITIALIZING")] * 12
    assert active["max"] == 3


def test_client_checks_its_arguments():
    from meshctl.errors import InputError

    with pytest.raises(InputError):
        AdminClient(concurrency=0)
    with pytest.raises(InputError):
        AdminClient(timeout=0)


def test_a_web_server_is_not_an_admin_endpoint():
    async def web(reader, writer):
        await read_request(reader)
        page = b"<!DOCTYPE HTML>\n<html>not found</html>"
        writer.write(b"HTTP/1.0 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: %d\r\n\r\n%s" % (len(page), page))
        await writer.drain()

    start, _ = serve(web)

    async def main():
        server, addr = await start()
        async with AdminClient(timeout=1) as admin:
            try:
                await admin.build_info(addr)
            except AdminUnreachable as e:
                return str(e), addr
            finally:
                server.close()

    message, addr = run(main())
    assert message == f"proxy {addr} unreachable: HTTP 404 (not an Envoy admin endpoint?) (/server_info)"

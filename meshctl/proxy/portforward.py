"""Pods' admin ports through the API server's port-forward, as asyncio streams.

proxy-status reaches each mesh pod's Envoy admin port (bound to 127.0.0.1 inside the pod, as
Istio's sidecars are) the way `kubectl port-forward` does: `GET /api/v1/namespaces/NS/pods/
NAME/portforward?ports=15000` upgraded to a websocket (subprotocol v4.channel.k8s.io), whose
binary frames start with a channel byte: 0 carries the pod port's bytes, 1 the errors, and the
first frame of each names the port. The admin client's HTTP/1.1 runs straight over it: one
connection to the API server a pod, no local port, no thread. (Kube.port_forward's local port,
relayed by threads through the kubernetes client's forwarder in meshctl.kube.portforward, needs
three threads and six file descriptors a pod, and that forwarder's select() fails once descriptors
pass 1,024, which 128 open forwards do.) The request path and the wording of refusals come from
meshctl.kube.portforward, which both port-forwards share.

RBAC: `create` on pods/portforward (SPDY; and the websocket GET since Kubernetes 1.35, `get`
before), as kubectl port-forward and istioctl proxy-config need.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from typing import Any, Callable, Iterable, Optional

from meshctl.kube.portforward import forward_path, refusal
from meshctl.proxy.admin import Route, TransportFailure, connect_reason, direct_route

PROTOCOL = "v4.channel.k8s.io"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DATA, ERROR = 0, 1


def _frame(payload: bytes, opcode: int = 2) -> bytes:
    """A client frame: final, masked (RFC 6455 requires it of clients)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    if not n:
        return head + key
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


class _Writer:
    """What the admin client writes to: each write a data frame on channel 0."""

    def __init__(self, writer: asyncio.StreamWriter, pump: asyncio.Task):
        self._writer = writer
        self._pump = pump  # reads the server's frames while the stream is open

    def write(self, data: bytes) -> None:
        self._writer.write(_frame(b"\x00" + data))

    def close(self) -> None:
        if not self._writer.is_closing():
            try:
                self._writer.write(_frame(b"\x03\xe8", opcode=8))  # close, 1000: normal
            except (ConnectionError, RuntimeError):
                pass
            self._writer.close()
        self._pump.cancel()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamReader, writer: asyncio.StreamWriter,
                what: str) -> None:
    """Read the server's frames: channel 0's bytes go to `sink`, channel 1's text ends it with
    that error; a close frame or the connection's end ends it."""
    seen: set[int] = set()
    message = b""
    try:
        while True:
            b0, b1 = await source.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await source.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await source.readexactly(8))[0]
            key = await source.readexactly(4) if b1 & 0x80 else b""
            payload = await source.readexactly(n)
            if key:
                payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 8:
                break
            if opcode == 9:
                writer.write(_frame(payload, opcode=10))
                continue
            if opcode not in (0, 1, 2):
                continue
            message += payload
            if not b0 & 0x80:  # more fragments follow
                continue
            channel, data, message = message[0] if message else -1, message[1:], b""
            if channel not in seen:  # the first frame of a channel names its port
                seen.add(channel)
                continue
            if channel == DATA and data:
                sink.feed_data(data)
            elif channel == ERROR and data:
                sink.set_exception(TransportFailure(f"{what} failed: {data.decode(errors='replace').strip()}"))
                return
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass
    sink.feed_eof()


async def _upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str,
                   headers: dict) -> tuple[int, bytes, dict]:
    """Send the websocket upgrade; (status, body, headers) of the answer."""
    key = base64.b64encode(os.urandom(16))
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13",
             f"Sec-WebSocket-Protocol: {PROTOCOL}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name:
            fields[name.strip().lower()] = value.strip()
    body = b""
    if status != 101 and fields.get("content-length"):
        body = await reader.readexactly(int(fields["content-length"]))
    elif status == 101:
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        if fields.get("sec-websocket-accept") != accept:
            raise ValueError("the websocket upgrade was not accepted")
    return status, body, fields


async def open_forward(conn: Any, namespace: str, pod: str, port: int) -> tuple[asyncio.StreamReader, _Writer]:
    """A stream to `port` of the pod, through the API server (`conn`: meshctl.kube.Connection).
    Raises TransportFailure ("port-forward to POD:PORT failed: …")."""
    what = f"port-forward to {pod}:{port}"
    path = f"{forward_path(namespace, pod)}?ports={port}"
    try:
        reader, writer = await asyncio.open_connection(conn.host, conn.port, ssl=conn.ssl,
                                                       server_hostname=conn.server_hostname if conn.ssl else None)
    except TimeoutError:
        raise
    except OSError as e:
        raise TransportFailure(f"{what} failed: cannot reach the Kubernetes API server at {conn.server}: "
                               f"{connect_reason(e)}") from None
    try:
        host = f"{conn.host}:{conn.port}"
        status, body, _ = await _upgrade(reader, writer, host, path, conn.headers)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError, IndexError) as e:
        writer.close()
        raise TransportFailure(f"{what} failed: the Kubernetes API server at {conn.server} broke off the "
                               f"upgrade ({type(e).__name__})") from None
    except BaseException:
        writer.close()
        raise
    if status != 101:
        writer.close()
        raise TransportFailure(f"{what} failed: {refusal(status, body, conn.server, namespace, pod)}")
    stream = asyncio.StreamReader(limit=2 ** 20)
    return stream, _Writer(writer, asyncio.get_running_loop().create_task(_pump(reader, stream, writer, what)))


def routes(conn: Any, pods: Iterable[tuple[str, str, str]], port: int,
           fallback: Callable[[str], Route] = direct_route) -> Callable[[str], Route]:
    """An AdminClient route: each (address, namespace, pod) of `pods` through a port-forward to
    `port` of the pod, other addresses directly."""
    where = {address: (namespace, pod) for address, namespace, pod in pods}

    def route(address: str) -> Route:
        found: Optional[tuple[str, str]] = where.get(address)
        if found is None:
            return fallback(address)
        namespace, pod = found
        return Route("127.0.0.1", port, key=("port-forward", namespace, pod),
                     connect=lambda: open_forward(conn, namespace, pod, port))

    return route

"""Probe stage: an async client for the Envoy admin interface (default port 15000).

Every request goes through `AdminClient`: kept-alive HTTP/1.1 connections per proxy over asyncio
streams, bounded by a semaphore (`concurrency` requests in flight at most) and a per-request
timeout. A proxy that cannot be reached, times out, or answers something that is not Envoy's
admin API raises `AdminUnreachable` (a `ProxyError`, exit code 3) naming the address and the path.

Reusable pieces (the canary gates read request counts and latency histograms with them):

    from meshctl.proxy.admin import fetch_stats, fetch_stats_sync
    stats = await fetch_stats("127.0.0.1:15000", filter=r"^cluster\\.reviews\\.upstream_rq_")
    stats["cluster.reviews.upstream_rq_2xx"]          # -> 1234 (counters and gauges: numbers)
    stats["cluster.reviews.upstream_rq_time"]         # -> Histogram (quantiles in ms)

Addresses are "host:port" strings (IPv6 as "[::1]:15000"); `parse_address` normalises them.
"""
from __future__ import annotations

import asyncio
import functools
import json
import re
import socket
from typing import Any, Awaitable, Callable, NamedTuple, Optional
from urllib.parse import urlencode

from meshctl.errors import InputError, ProxyError
from meshctl.proxy.parse import BUILD_INFO_MASK, Histogram, build_info_from_dump, build_info_from_server_info, \
    parse_stats

__all__ = ["ADMIN_PORT", "DEFAULT_TIMEOUT", "DEFAULT_CONCURRENCY", "LOG_LEVELS", "AdminUnreachable", "AdminClient",
           "Route", "Response", "TransportFailure", "Histogram", "parse_stats", "parse_address", "info_from_server_info",
           "fetch_stats", "fetch_stats_sync"]

ADMIN_PORT = 15000
DEFAULT_TIMEOUT = 3.0
DEFAULT_CONCURRENCY = 128  # proxies probed at once (one connection each)

LOG_LEVELS = ("trace", "debug", "info", "warning", "warn", "error", "critical", "off")

_HOSTPORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.%\w]+)\]|(?P<host>[A-Za-z0-9_.\-]+)):(?P<port>\d{1,5})$")


class AdminUnreachable(ProxyError):
    """An admin endpoint could not be reached, timed out, or did not answer like Envoy (exit 3)."""

    def __init__(self, address: str, path: str, reason: str):
        super().__init__(f"proxy {address} unreachable: {reason} ({path})")
        self.address = address
        self.path = path
        self.reason = reason


def parse_address(text: str, default_port: int | None = None) -> str:
    """Normalise "host:port" (also "http://host:port/", "[::1]:15000") or raise InputError (exit 2)."""
    value = text.strip()
    for scheme in ("http://", "https://"):
        if value.startswith(scheme):
            value = value[len(scheme):]
    value = value.rstrip("/")
    m = _HOSTPORT.match(value)
    bracketed = value.startswith("[") and value.endswith("]")
    if not m and default_port is not None and value and (bracketed or ":" not in value):
        m = _HOSTPORT.match(f"{value}:{default_port}")
    if not m:
        raise InputError(f"invalid admin address {text!r}", hint="use HOST:PORT, e.g. 127.0.0.1:15000")
    port = int(m.group("port"))
    if not 0 < port < 65536:
        raise InputError(f"invalid port in admin address {text!r}", hint="ports are 1-65535")
    host = f"[{m.group('v6')}]" if m.group("v6") else m.group("host")
    return f"{host}:{port}"



class Response(NamedTuple):
    """An admin answer: status code, lower-cased headers, body."""

    status_code: int
    headers: list
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Route(NamedTuple):
    """Where the requests for an address go: a connection to host:port (TLS with `ssl`), or one
    that `connect()` opens (a port-forward: it returns a reader and a writer), each path prefixed
    with `prefix` and sent with `headers` (raw "name: value\\r\\n" lines). The default route
    connects to the address itself."""

    host: str
    port: int
    prefix: str = ""
    headers: bytes = b""
    ssl: Any = None
    shared: bool = False  # connections serve many addresses (kept when one address is released)
    key: Any = None  # what connections are kept by (default: host, port and TLS context)
    connect: Optional[Callable[[], Awaitable[tuple]]] = None

    def pool_key(self) -> Any:
        return self.key if self.key is not None else (self.host, self.port, id(self.ssl))


@functools.lru_cache(maxsize=256)
def _query(items: tuple) -> str:
    """A query string, encoded once: proxy-status sends the same long stats filter to every proxy."""
    return urlencode(items)


def direct_route(address: str) -> Route:
    host, _, port = address.rpartition(":")
    return Route(host.strip("[]"), int(port))


class TransportFailure(Exception):
    """A connection could not be opened or broke: `reason` is what proxy-status shows."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def connect_reason(e: OSError) -> str:
    """What proxy-status says of a connection that could not be opened."""
    if isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower():
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return "unknown host"
    text = str(e).strip()
    return text.splitlines()[0] if text else "connection failed"


class _Connections:
    """HTTP/1.1 over asyncio streams, made for Envoy admin endpoints: kept-alive connections per
    host:port, Content-Length and chunked bodies, a deadline for every exchange, one retry when a
    reused connection turns out closed. (httpx's client did the same at three times the CPU a
    request, most of it re-parsing and re-quoting URLs: measured with bench/proxy_status.py.)"""

    MAX_IDLE = 64

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.idle: dict[tuple, list] = {}

    async def exchange(self, route: Route, method: str, target: str) -> Response:
        idle = self.idle.setdefault(route.pool_key(), [])
        host = f"[{route.host}]" if ":" in route.host else route.host
        head = (b"%s %s HTTP/1.1\r\nhost: %s:%d\r\naccept: */*\r\ncontent-length: 0\r\n%s\r\n" % (
            method.encode(), (route.prefix + target).encode(), host.encode(), route.port, route.headers))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for attempt in (0, 1):
            reused = bool(idle)
            try:
                async with asyncio.timeout_at(deadline) as limit:
                    if reused:
                        reader, writer = idle.pop()
                    else:
                        reader, writer = await self._open(route)
                        if route.connect is not None:  # a port-forward's set-up has its own --timeout
                            deadline = loop.time() + self.timeout
                            limit.reschedule(deadline)
                    try:
                        return await self._roundtrip(reader, writer, head, method, idle)
                    except BaseException:
                        writer.close()
                        raise
            except TimeoutError:
                raise TransportFailure("timed out") from None
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                if reused and attempt == 0:
                    continue  # the proxy closed an idle connection: once more on a fresh one
                raise TransportFailure("connection reset" if isinstance(e, ConnectionError)
                                       else "connection closed without an answer") from None
            except (asyncio.LimitOverrunError, ValueError, IndexError):
                raise TransportFailure("not an HTTP admin endpoint (malformed answer)") from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _open(route: Route):
        if route.connect is not None:
            return await route.connect()
        try:
            return await asyncio.open_connection(route.host, route.port, ssl=route.ssl,
                                                 server_hostname=route.host if route.ssl else None)
        except TimeoutError:
            raise
        except OSError as e:  # refused, unknown host, no route, TLS handshake
            raise TransportFailure(connect_reason(e)) from None

    @staticmethod
    async def _roundtrip(reader, writer, head: bytes, method: str, idle: list) -> Response:
        writer.write(head)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, status_text = lines[0].split(" ", 2)[:2]
        if not version.startswith("HTTP/1."):
            raise ValueError(lines[0][:40])
        status = int(status_text)
        headers, length, chunked, close = [], None, False, version == "HTTP/1.0"
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            else:
                if name == "connection":
                    close = close or value.lower() == "close"
                headers.append((name, value))
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    break
                parts.append((await reader.readexactly(size + 2))[:-2])
            content = b"".join(parts)
        elif length is not None:
            content = await reader.readexactly(length)
        elif status in (204, 304) or method == "HEAD":
            content = b""
        else:
            content = await reader.read()
            close = True
        if close or len(idle) >= _Connections.MAX_IDLE:
            writer.close()
        else:
            idle.append((reader, writer))
        return Response(status, headers, content)

    def release(self, route: Route) -> None:
        for _, writer in self.idle.pop(route.pool_key(), []):
            writer.close()

    def close(self) -> None:
        for conns in self.idle.values():
            for _, writer in conns:
                writer.close()
        self.idle.clear()


class AdminClient:
    """Bounded, timed, async access to many Envoy admin endpoints.

    Use as `async with AdminClient(timeout=2, concurrency=64) as admin: await admin.server_info(addr)`.
    `route(address)` says where an address's requests go (default: a connection to the address).
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY,
                 route: Optional[Callable[[str], Route]] = None):
        if concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        if timeout <= 0:
            raise InputError("--timeout must be positive")
        self.timeout = timeout
        self.concurrency = concurrency
        self._route = route or direct_route
        self._sem = asyncio.Semaphore(concurrency)
        self._conns: Optional[_Connections] = None

    async def __aenter__(self) -> "AdminClient":
        self._conns = _Connections(self.timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._conns is not None:
            conns, self._conns = self._conns, None
            conns.close()

    async def release(self, address: str) -> None:
        """Close the kept-alive connections to one proxy (when done with it)."""
        if self._conns is not None:
            route = self._route(address)
            if not route.shared:
                self._conns.release(route)

    async def request(self, address: str, path: str, params: Optional[dict] = None,
                      method: str = "GET", ok: tuple[int, ...] = (200,)) -> Response:
        """One admin request; returns the Response. Transport problems → AdminUnreachable."""
        assert self._conns is not None, "use AdminClient as an async context manager"
        target = f"{path}?{_query(tuple(params.items()))}" if params else path
        async with self._sem:
            try:
                response = await self._conns.exchange(self._route(address), method, target)
            except TransportFailure as e:
                raise AdminUnreachable(address, path, e.reason) from None
        if response.status_code not in ok:
            body = response.text.strip().splitlines()
            if response.status_code == 404:
                detail = " (not an Envoy admin endpoint?)"
            elif body and not body[0].lstrip().startswith("<"):
                detail = f": {body[0][:200]}"
            else:
                detail = ""
            raise AdminUnreachable(address, path, f"HTTP {response.status_code}{detail}")
        return response

    async def get_json(self, address: str, path: str, params: Optional[dict] = None) -> Any:
        response = await self.request(address, path, params)
        try:
            return response.json()
        except ValueError:
            raise AdminUnreachable(address, path, "answer is not JSON (not an Envoy admin endpoint?)") from None

    # --- the endpoints meshctl reads ---------------------------------------------------------

    async def server_info(self, address: str) -> dict:
        data = await self.get_json(address, "/server_info")
        if not isinstance(data, dict) or "version" not in data:
            raise AdminUnreachable(address, "/server_info", "answer is not Envoy's server_info")
        return data

    async def build_info(self, address: str) -> dict:
        """Version, node metadata and xDS sources of a proxy, without /server_info.

        {"version": "1.40.0", "revision": sha, "node_id", "metadata", "ads_cluster": name | None,
         "dynamic": bool, "stats_filtered": bool}. /server_info carries the node's list of every
        compiled-in extension (≈120 KB a proxy); a field-masked /config_dump answers in a few
        hundred bytes. Falls back to /server_info when the proxy does not support the mask."""
        try:
            return build_info_from_dump(await self.get_json(address, "/config_dump", {"mask": BUILD_INFO_MASK}))
        except AdminUnreachable as e:
            if not e.reason.startswith("HTTP 4"):
                raise
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        return build_info_from_server_info(await self.server_info(address))

    async def ready(self, address: str) -> tuple[bool, str]:
        """(ready, state): /ready answers 200 "LIVE" when ready, 503 with the state otherwise."""
        response = await self.request(address, "/ready", ok=(200, 503))
        return response.status_code == 200, response.text.strip()

    async def stats(self, address: str, filter: Optional[str] = None, histogram_buckets: bool = False) -> dict:
        params = {"format": "json"}
        if filter:
            params["filter"] = filter
        if histogram_buckets:
            params["histogram_buckets"] = "cumulative"
        data = await self.get_json(address, "/stats", params)
        try:
            return parse_stats(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AdminUnreachable(address, "/stats", "answer is not Envoy stats JSON") from None

    async def config_dump(self, address: str, resource: Optional[str] = None, include_eds: bool = False) -> dict:
        params = {}
        if resource:
            params["resource"] = resource
        if include_eds:
            params["include_eds"] = ""
        return await self.get_json(address, "/config_dump", params or None)

    async def certs(self, address: str) -> dict:
        return await self.get_json(address, "/certs")

    async def clusters(self, address: str) -> dict:
        return await self.get_json(address, "/clusters", {"format": "json"})

    async def set_log_level(self, address: str, level: str, logger: Optional[str] = None) -> str:
        """POST /logging?level=L (all loggers) or ?<logger>=L; returns Envoy's listing of levels."""
        if level not in LOG_LEVELS:
            raise InputError(f"unknown log level {level!r}", hint=f"use one of: {', '.join(LOG_LEVELS)}")
        level = "warning" if level == "warn" else level
        params = {logger: level} if logger else {"level": level}
        response = await self.request(address, "/logging", params, method="POST", ok=(200, 400))
        if response.status_code == 400:
            raise InputError(f"proxy {address} has no logger named {logger!r}",
                             hint="list the loggers with 'meshctl proxy-config log ADDRESS'")
        return response.text

    async def log_levels(self, address: str) -> str:
        response = await self.request(address, "/logging", method="POST")
        return response.text


info_from_server_info = build_info_from_server_info  # the name callers know


async def fetch_stats(address: str, filter: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT,
                      histogram_buckets: bool = False, client: Optional[AdminClient] = None) -> dict:
    """Read one proxy's /stats as {name: value}. `filter` is an RE2 regex applied by Envoy.

    Counters/gauges → int, text readouts → str, histograms → Histogram. Raises AdminUnreachable.
    Pass `client` to share one AdminClient (and its concurrency bound) across many calls.
    """
    address = parse_address(address)
    if client is not None:
        return await client.stats(address, filter, histogram_buckets)
    async with AdminClient(timeout=timeout) as admin:
        return await admin.stats(address, filter, histogram_buckets)


def fetch_stats_sync(address: str, filter: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT,
                     histogram_buckets: bool = False) -> dict:
    """Blocking form of fetch_stats (runs its own event loop; do not call from inside one)."""
    return asyncio.run(fetch_stats(address, filter, timeout=timeout, histogram_buckets=histogram_buckets))

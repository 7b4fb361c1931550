"""Probe stage: an async client for the Envoy admin interface (default port 15000).

Every request goes through one `httpx.AsyncClient` (over `_AdminTransport`, a small HTTP/1.1
transport with kept-alive connections per proxy), bounded by a semaphore (`concurrency`
requests in flight at most) and a per-request timeout. A proxy that cannot be reached, times
out, or answers something that is not Envoy's admin API raises `AdminUnreachable` (a
`ProxyError`, exit code 3) naming the address and the path.

Reusable pieces (the canary gates read request counts and latency histograms with them):

    from meshctl.proxy.admin import fetch_stats, fetch_stats_sync
    stats = await fetch_stats("127.0.0.1:15000", filter=r"^cluster\\.reviews\\.upstream_rq_")
    stats["cluster.reviews.upstream_rq_2xx"]          # -> 1234 (counters and gauges: numbers)
    stats["cluster.reviews.upstream_rq_time"]         # -> Histogram (quantiles in ms)

Addresses are "host:port" strings (IPv6 as "[::1]:15000"); `parse_address` normalises them.
"""
from __future__ import annotations

import asyncio
import re
import socket
from typing import Any, Optional
from urllib.parse import urlencode

from meshctl.errors import InputError, ProxyError
from meshctl.proxy.parse import (BUILD_INFO_MASK, Histogram, build_info_from_dump,  # noqa: F401 - re-exported
                                 build_info_from_server_info, parse_stats)

ADMIN_PORT = 15000
DEFAULT_TIMEOUT = 3.0
DEFAULT_CONCURRENCY = 64

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


def _reason(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__cause__ or exc.__context__
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            if isinstance(cause, socket.gaierror):
                return "unknown host"
            cause = cause.__cause__ or cause.__context__
        text = str(exc) or "connection failed"
        if "refused" in text.lower():
            return "connection refused"
        if "all connection attempts failed" in text.lower():
            return "connection failed"
        return text.splitlines()[0]
    if isinstance(exc, httpx.RemoteProtocolError):
        return str(exc).splitlines()[0] if str(exc) else "protocol error"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text


class _AdminTransport:
    """A small HTTP/1.1 transport for httpx.AsyncClient, made for Envoy admin endpoints.

    Kept-alive connections per proxy over asyncio streams, Content-Length and chunked bodies,
    a deadline for every exchange, one retry when a reused connection turns out closed. It does
    what httpcore does for this one use at half the CPU a request (measured with
    bench/proxy_status.py), which is what lets proxy-status probe hundreds of proxies in a
    second or two. Failures surface as httpx exceptions, so callers see httpx's error types.
    """

    MAX_IDLE = 4

    def __init__(self, timeout: float):
        import httpx

        self.timeout = timeout
        self.idle: dict[tuple, list] = {}
        self._httpx = httpx

    async def handle_async_request(self, request):
        httpx = self._httpx
        key = (request.url.host, request.url.port or 80)
        idle = self.idle.setdefault(key, [])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for attempt in (0, 1):
            reused = bool(idle)
            if reused:
                reader, writer = idle.pop()
            else:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(*key),
                                                            max(deadline - loop.time(), 0.001))
                except asyncio.TimeoutError:
                    raise httpx.ConnectTimeout("timed out", request=request) from None
                except OSError as e:
                    raise httpx.ConnectError(str(e) or type(e).__name__, request=request) from e
            try:
                return await asyncio.wait_for(self._exchange(request, reader, writer, idle),
                                              max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                writer.close()
                raise httpx.ReadTimeout("timed out", request=request) from None
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                writer.close()
                if reused and attempt == 0:
                    continue  # the proxy closed an idle connection: once more on a fresh one
                what = "connection reset" if isinstance(e, ConnectionError) else "connection closed without an answer"
                raise httpx.RemoteProtocolError(what, request=request) from None
            except (asyncio.LimitOverrunError, ValueError):
                writer.close()
                raise httpx.RemoteProtocolError("not an HTTP admin endpoint (malformed answer)",
                                                request=request) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, request, reader, writer, idle):
        body = request.content or b""
        writer.write(b"%s %s HTTP/1.1\r\nhost: %s\r\naccept: */*\r\ncontent-length: %d\r\n\r\n%s" % (
            request.method.encode(), request.url.raw_path, request.url.netloc, len(body), body))
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
        elif status in (204, 304) or request.method == "HEAD":
            content = b""
        else:
            content = await reader.read()
            close = True
        if close or len(idle) >= self.MAX_IDLE:
            writer.close()
        else:
            idle.append((reader, writer))
        return self._httpx.Response(status, headers=headers, content=content, request=request)

    def release(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        for _, writer in self.idle.pop((host.strip("[]"), int(port)), []):
            writer.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for conns in self.idle.values():
            for _, writer in conns:
                writer.close()
        self.idle.clear()


class AdminClient:
    """Bounded, timed, async access to many Envoy admin endpoints.

    Use as `async with AdminClient(timeout=2, concurrency=64) as admin: await admin.server_info(addr)`.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY):
        if concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        if timeout <= 0:
            raise InputError("--timeout must be positive")
        self.timeout = timeout
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._client = None
        self._transport = None

    async def __aenter__(self) -> "AdminClient":
        import httpx

        self._transport = _AdminTransport(self.timeout)
        self._client = httpx.AsyncClient(transport=self._transport, timeout=self.timeout, trust_env=False,
                                         follow_redirects=False)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def release(self, address: str) -> None:
        """Close the kept-alive connections to one proxy (when done with it)."""
        if self._client is not None:
            self._transport.release(address)

    async def request(self, address: str, path: str, params: Optional[dict] = None,
                      method: str = "GET", ok: tuple[int, ...] = (200,)):
        """One admin request; returns the httpx.Response. Transport problems → AdminUnreachable."""
        import httpx

        assert self._client is not None, "use AdminClient as an async context manager"
        url = f"http://{address}{path}"
        if params:  # encoded here: httpx's own params merging costs twice as much per request
            url += "?" + urlencode(params)
        async with self._sem:
            try:
                response = await self._client.request(method, url)
            except (httpx.HTTPError, OSError) as e:
                raise AdminUnreachable(address, path, _reason(e)) from None
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

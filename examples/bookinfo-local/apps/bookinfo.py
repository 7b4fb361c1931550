"""Istio's bookinfo as four small JSON services (standard library only).

    python3 bookinfo.py productpage|details|reviews|ratings [VERSION]

Listens on $HOST:$PORT (the local mesh sets them from the WorkloadEntry). Calls to other
services go through the sidecar: $HTTP_PROXY, with the service's name as the host, as an
application in Kubernetes would call http://reviews:9080/.

- productpage  GET /productpage → {"details": {...}, "reviews": {...}}; a call that failed appears
               in place of its part as {"error": "..."} and the page still answers 200.
               Gives reviews 3 s and one retry, details 3 s (as bookinfo's productpage).
- details      GET /details/ID
- reviews      GET /reviews/ID → {"version": v1|v2|v3, ...}; v2 and v3 call ratings (10 s),
               v1 does not; v2 shows black stars, v3 red.
- ratings      GET /ratings/ID
Every app propagates `end-user` and the trace headers (x-request-id, traceparent, tracestate,
b3, x-b3-*) to the calls it makes, and answers GET /health.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = sys.argv[1] if len(sys.argv) > 1 else "productpage"
VERSION = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("SERVICE_VERSION", "v1")
PROPAGATE = ("end-user", "x-request-id", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
             "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-ot-span-context", "user")

_local = threading.local()


def call(host: str, path: str, headers: dict, timeout: float, tries: int = 1) -> dict:
    """GET http://HOST:9080PATH through $HTTP_PROXY; JSON, or {"error": ...} on any failure."""
    proxy = urllib.parse.urlsplit(os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "")
    target_host, target_port = (proxy.hostname, proxy.port or 80) if proxy.hostname else (host, 9080)
    url = f"http://{host}:9080{path}" if proxy.hostname else path
    error = "not called"
    for _ in range(tries):
        conns = getattr(_local, "conns", None)
        if conns is None:
            conns = _local.conns = {}
        conn = conns.get((target_host, target_port))
        if conn is None:
            conn = conns[(target_host, target_port)] = http.client.HTTPConnection(target_host, target_port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request("GET", url, headers={**headers, "Host": f"{host}:9080"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status >= 400:
                error = f"{host} answered {resp.status}: {body[:200].decode(errors='replace').strip()}"
                continue
            return json.loads(body)
        except (OSError, http.client.HTTPException, ValueError) as e:
            conn.close()
            conns.pop((target_host, target_port), None)
            error = f"{host} timed out after {timeout:g}s" if isinstance(e, socket.timeout) else f"{host} unreachable: {type(e).__name__}: {e}"
    return {"error": error}


def details(book: int) -> dict:
    return {"id": book, "author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200,
            "publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"}


def ratings(book: int) -> dict:
    return {"id": book, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}


def reviews(book: int, headers: dict) -> dict:
    out = {"id": str(book), "version": VERSION, "podname": os.environ.get("POD_NAME", ""), "reviews": [
        {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
        {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."}]}
    if VERSION in ("v2", "v3"):
        out["ratings"] = call("ratings", f"/ratings/{book}", headers, timeout=10.0)
        out["color"] = "black" if VERSION == "v2" else "red"
    return out


def productpage(headers: dict) -> dict:
    return {"details": call("details", "/details/0", headers, timeout=3.0),
            "reviews": call("reviews", "/reviews/0", headers, timeout=3.0, tries=2)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"bookinfo-{SERVICE}/{VERSION}"

    def log_message(self, fmt, *args):  # the sidecar keeps the access log
        pass

    def setup(self):
        super().setup()
        # headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm holds
        # the body until the peer's delayed ACK (40 ms a request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def answer(self, status: int, data: dict) -> None:
        body = (json.dumps(data) + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - the http.server API
        path = urllib.parse.urlsplit(self.path).path
        headers = {k: v for k, v in self.headers.items() if k.lower() in PROPAGATE}
        parts = [p for p in path.split("/") if p]
        book = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if path == "/health":
            return self.answer(200, {"status": "ok", "service": SERVICE, "version": VERSION})
        if SERVICE == "productpage" and path in ("/", "/productpage"):
            return self.answer(200, productpage(headers))
        if SERVICE == "details" and parts[:1] == ["details"]:
            return self.answer(200, details(book))
        if SERVICE == "reviews" and parts[:1] == ["reviews"]:
            return self.answer(200, reviews(book, headers))
        if SERVICE == "ratings" and parts[:1] == ["ratings"]:
            return self.answer(200, ratings(book))
        return self.answer(404, {"error": f"{SERVICE} has no {path}"})


def main() -> None:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "9080"))
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"{SERVICE} {VERSION} listening on {host}:{port}; calls go through {os.environ.get('HTTP_PROXY') or 'no proxy'}",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A test workload: answers JSON describing the request it got (standard library only).

    python3 echo.py NAME [--status CODE] [--fail-every N] [--delay SECONDS]

{"name", "method", "path", "query", "headers"}; --status answers every request with CODE;
--fail-every N answers 503 to every Nth request (1st, N+1th, ...: a flaky upstream);
--delay waits before answering. Listens on $HOST:$PORT.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("name")
parser.add_argument("--status", type=int, default=200)
parser.add_argument("--fail-every", type=int, default=0)
parser.add_argument("--delay", type=float, default=0.0)
ARGS = parser.parse_args()
COUNTER = itertools.count()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        # headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm holds
        # the body until the peer's delayed ACK (40 ms a request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        with LOCK:
            n = next(COUNTER)
        status = ARGS.status
        if ARGS.fail_every and n % ARGS.fail_every == 0:
            status = 503
        if ARGS.delay:
            time.sleep(ARGS.delay)
        parts = urllib.parse.urlsplit(self.path)
        body = json.dumps({"name": ARGS.name, "method": self.command, "path": parts.path, "query": parts.query,
                           "headers": {k.lower(): v for k, v in self.headers.items()}, "n": n}).encode() + b"\n"
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))), Handler)
server.daemon_threads = True
server.serve_forever()

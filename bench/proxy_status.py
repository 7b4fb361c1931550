"""Benchmark: proxy-status over many Envoy admin endpoints.

A few real Envoys (static, file-based xDS, TLS with a certificate) plus a light asyncio server,
in a separate process, that replays those Envoys' recorded admin answers with 20 ms latency on
many 127.0.0.1 ports (loopback only). Prints the wall time of probing 100, 500 and 2000
endpoints: the collect stage (and its CPU time), and the whole `meshctl proxy-status --admin …`
command with the default table and with `-o json` (pretty-printed JSON costs ≈0.3 s at 500).

    .venv/bin/python bench/proxy_status.py [--sizes 100,500,2000] [--latency 0.02] [--concurrency 64]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshctl.proxy.status import STATS_FILTER  # noqa: E402

PATHS = ["/config_dump?mask=bootstrap.node.user_agent_build_version,bootstrap.node.metadata,bootstrap.node.id",
         "/ready", "/certs", "/clusters?format=json",
         "/stats?" + urllib.parse.urlencode({"format": "json", "filter": STATS_FILTER})]


def record(admin: str) -> dict[str, tuple[int, bytes]]:
    """Recorded answers of one real Envoy, keyed by path without the query string."""
    out = {}
    for path in PATHS:
        try:
            with urllib.request.urlopen(f"http://{admin}{path}", timeout=5) as r:
                out[path.split("?")[0]] = (r.status, r.read())
        except urllib.error.HTTPError as e:
            out[path.split("?")[0]] = (e.code, e.read())
    return out


def serve(answers: dict, count: int, latency: float, conn) -> None:
    """Child process: `count` listening sockets on 127.0.0.1, HTTP/1.1 keep-alive, fixed latency."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode().split("?")[0]
                await asyncio.sleep(latency)
                status, body = answers.get(path, (404, b"not found"))
                reason = b"OK" if status == 200 else b"Service Unavailable" if status == 503 else b"Not Found"
                writer.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                             % (status, reason, len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers, ports = [], []
        for _ in range(count):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(128)
            s.setblocking(False)
            servers.append(await asyncio.start_server(handle, sock=s))
            ports.append(s.getsockname()[1])
        conn.send(ports)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,500,2000")
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from meshctl.proxy import status
    from tests.envoy.envoyproc import EnvoyProcess, file_xds_bootstrap, make_cert, static_bootstrap, tls_bootstrap

    work = Path(tempfile.mkdtemp(prefix="meshctl-bench-"))
    cert, key = make_cert(work, dt.timedelta(days=30))
    envoys = [EnvoyProcess.start(static_bootstrap(), work / "e1", name="static"),
              EnvoyProcess.start(file_xds_bootstrap(work / "xds"), work / "e2", name="xds"),
              EnvoyProcess.start(tls_bootstrap(cert, key), work / "e3", name="tls")]
    parent, child = mp.Pipe()
    server = None
    try:
        answers = record(envoys[1].admin)
        answers["/certs"] = record(envoys[2].admin)["/certs"]
        need = max(sizes) - len(envoys)
        server = mp.Process(target=serve, args=(answers, need, args.latency, child), daemon=True)
        server.start()
        ports = parent.recv()
        real = [e.admin for e in envoys]
        fake = [f"127.0.0.1:{p}" for p in ports]
        print(f"{len(real)} real Envoys + replay server ({len(fake)} ports, {args.latency * 1000:.0f} ms latency), "
              f"concurrency {args.concurrency}, {os.cpu_count()} CPUs")
        print(f"{'endpoints':>9}  {'collect (s)':>11}  {'client CPU (s)':>14}  {'CLI (s)':>11}  {'CLI -o json (s)':>15}  "
          "statuses")
        for n in sizes:
            addrs = real + fake[: n - len(real)]
            targets = [status.ProxyTarget(name=a, address=a) for a in addrs]
            t0, c0 = time.perf_counter(), time.process_time()
            rows = status.run(targets, timeout=args.timeout, concurrency=args.concurrency)
            collect, cpu = time.perf_counter() - t0, time.process_time() - c0
            counts: dict[str, int] = {}
            for r in rows:
                counts[r.status] = counts.get(r.status, 0) + 1
            cli = {}
            for fmt in ("table", "json"):
                cmd = [str(ROOT / ".venv/bin/meshctl"), "proxy-status", "-o", fmt, "--timeout", str(args.timeout),
                       "--concurrency", str(args.concurrency)]
                for a in addrs:
                    cmd += ["--admin", a]
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                cli[fmt] = time.perf_counter() - t0
                if proc.returncode != 0:
                    counts[f"{fmt} exit {proc.returncode}"] = proc.stderr.strip()[:200]
            print(f"{n:>9}  {collect:>11.2f}  {cpu:>14.2f}  {cli['table']:>11.2f}  {cli['json']:>15.2f}  {counts}")
            sys.stdout.flush()
    finally:
        parent.send("stop")
        if server is not None:
            server.join(timeout=5)
            if server.is_alive():
                server.terminate()
        for e in envoys:
            e.stop()


if __name__ == "__main__":
    main()

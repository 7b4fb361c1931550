"""Local meshes for tests: generated Istio files on loopback addresses of their own, started with
`meshctl local up` in a temporary state directory and stopped by `down` in a finaliser.

Each mesh gets its own 127.N.0.0/16 (N from the xdist worker and a counter), so meshes of two
test processes never share an address.
"""
from __future__ import annotations

import http.client
import itertools
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Optional

ECHO = Path(__file__).resolve().parent / "apps" / "echo.py"
ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count()


def next_net() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker[2:].isdigit() else 0
    return 30 + (n % 4) * 50 + next(_counter) % 50


def service(name: str, port: int = 8080, namespace: str = "default", app: Optional[str] = None) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata:
          name: {name}
          namespace: {namespace}
        spec:
          hosts: [{name}.{namespace}.svc.cluster.local]
          location: MESH_INTERNAL
          ports:
          - {{number: {port}, name: http, protocol: HTTP}}
          resolution: STATIC
          workloadSelector:
            labels: {{app: {app or name}}}
        """)


def workload(name: str, address: str, app: Optional[str], version: str = "v1", sa: Optional[str] = None,
             args: str = "", namespace: str = "default", command: bool = True) -> str:
    lines = ["apiVersion: networking.istio.io/v1", "kind: WorkloadEntry", "metadata:", f"  name: {name}",
             f"  namespace: {namespace}"]
    if command:
        lines += ["  annotations:", f'    local.meshctl.io/command: "{sys.executable} {ECHO} {name} {args}"']
    labels = f"{{app: {app}, version: {version}}}" if app else f"{{role: {name}}}"
    lines += ["spec:", f"  address: {address}", f"  labels: {labels}", f"  serviceAccount: {sa or name}"]
    return "\n".join(lines) + "\n"


def write(directory: Path, name: str, *docs: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("---\n".join(textwrap.dedent(d) for d in docs))
    return path


class Client:
    """HTTP through a sidecar's outbound listener (what an application's HTTP_PROXY does), on one
    kept-alive connection."""

    def __init__(self, address: str, port: int = 15001, timeout: float = 10.0):
        self.address, self.port, self.timeout = address, port, timeout
        self.conn: Optional[http.client.HTTPConnection] = None

    def request(self, host: str, path: str = "/", method: str = "GET", headers: Optional[dict] = None,
                timeout: Optional[float] = None) -> tuple[int, dict, dict]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.address, self.port, timeout=timeout or self.timeout)
            try:
                self.conn.request(method, path, headers={"Host": host, **(headers or {})})
                resp = self.conn.getresponse()
                body = resp.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise
        if resp.getheader("connection", "").lower() == "close":
            self.close()
        try:
            data = json.loads(body)
        except ValueError:
            data = {"text": body.decode(errors="replace")}
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def stats(admin: str, flt: str = "") -> dict:
    import urllib.parse
    import urllib.request

    url = f"http://{admin}/stats?format=json" + (f"&filter={urllib.parse.quote(flt)}" if flt else "")
    with urllib.request.urlopen(url, timeout=3) as r:
        data = json.loads(r.read())
    return {s["name"]: s.get("value") for s in data["stats"] if "name" in s}

"""`meshctl canary` on the local mesh: shift, a full progressive rollout promoted on healthy
metrics, a rollback on a failing canary (metric gates read from the local proxies' stats), status,
promote and abort — under real traffic through real sidecars."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from tests.local.harness import Client, next_net, service, workload, write

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


@pytest.fixture(scope="module")
def canary_mesh(start_mesh, tmp_path_factory):
    net = next_net()
    d = tmp_path_factory.mktemp("canary")
    a = f"127.{net}.0"
    write(d, "mesh.yaml", service("shop"),
          workload("shop-v1", f"{a}.1", "shop", "v1"), workload("shop-v2", f"{a}.2", "shop", "v2"),
          workload("shop-v3", f"{a}.3", "shop", "v3", args="--status 500"),
          workload("buyer", f"{a}.10", None, command=False), """\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: shop, namespace: default}
        spec:
          host: shop
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
          - {name: v3, labels: {version: v3}}
        """, """\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: shop, namespace: default}
        spec:
          hosts: [shop]
          http:
          - route:
            - destination: {host: shop, subset: v1}
              weight: 100
        """)
    state_dir = start_mesh([d])
    return {"dir": d, "state": state_dir, "buyer": f"{a}.10"}


class Traffic:
    """Steady requests through the buyer's sidecar while a rollout runs (bounded: stops itself)."""

    def __init__(self, address: str, limit: int = 200000, seconds: float = 120):
        self.address, self.limit, self.seconds = address, limit, seconds
        self.results: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        c = Client(self.address)
        end = time.monotonic() + self.seconds
        while not self.stop.is_set() and len(self.results) < self.limit and time.monotonic() < end:
            status, _, body = c.request("shop:8080", "/")
            self.results.append((status, body.get("name", "")))
            time.sleep(0.002)
        c.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def split(address: str, n: int = 400) -> Counter:
    c = Client(address)
    out = Counter(c.request("shop:8080", "/")[2].get("name") for _ in range(n))
    c.close()
    return out


def canary(cli, mesh, *args):
    return cli("canary", *args, "--local", "--state-dir", mesh["state"])


def start_from(cli, mesh, stable: str, canary_subset: str) -> None:
    """100% to `stable` (tests may run in any order, on any worker, on the module's mesh)."""
    r = canary(cli, mesh, "shift", "shop", "100/0", "--subsets", f"{stable},{canary_subset}")
    assert r.exit_code == 0, r


def test_shift_changes_the_running_split(canary_mesh, cli):
    start_from(cli, canary_mesh, "v1", "v2")
    r = canary(cli, canary_mesh, "shift", "shop", "50/50", "--subsets", "v1,v2", "-o", "json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert data["before"] == {"v1": 100, "v2": 0} and data["after"] == {"v1": 50, "v2": 50}
    counts = split(canary_mesh["buyer"])
    assert counts["shop-v1"] > 120 and counts["shop-v2"] > 120
    r = canary(cli, canary_mesh, "shift", "shop", "100/0", "--subsets", "v1,v2")
    assert r.exit_code == 0, r
    assert split(canary_mesh["buyer"], 100) == {"shop-v1": 100}


def test_run_promotes_a_healthy_canary(canary_mesh, cli):
    start_from(cli, canary_mesh, "v1", "v2")
    with Traffic(canary_mesh["buyer"]) as traffic:
        r = canary(cli, canary_mesh, "run", "shop", "--to", "v2", "--steps", "20,50", "--interval", "1s",
                   "--max-p99", "1s", "-o", "json")
    assert r.exit_code == 0, r
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["action"] for x in records if x["action"] in ("advance", "promote", "promoted")][-1] == "promoted"
    measured = [x["metrics"] for x in records if x.get("metrics")]
    assert measured and all(m["requests"] > 0 and m["successRate"] == 100.0 for m in measured)
    assert [s for s, _ in traffic.results if s != 200] == []
    assert split(canary_mesh["buyer"], 100) == {"shop-v2": 100}
    r = canary(cli, canary_mesh, "status", "shop", "-o", "json")
    status = json.loads(r.stdout)
    assert status["phase"] == "Succeeded" and status["weights"] == {"v1": 0, "v2": 100}


def test_run_rolls_back_a_failing_canary_then_abort_and_promote_by_hand(canary_mesh, cli):
    start_from(cli, canary_mesh, "v2", "v3")
    with Traffic(canary_mesh["buyer"]):
        r = canary(cli, canary_mesh, "run", "shop", "--to", "v3", "--steps", "20,50", "--interval", "1s",
                   "--threshold", "2", "-o", "json")
    assert r.exit_code == 1, r
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert records[-1]["action"] == "rolled-back" and records[-1]["phase"] == "Failed"
    assert any(x["metrics"] and x["metrics"]["successRate"] < 99 for x in records if x.get("metrics"))
    assert split(canary_mesh["buyer"], 100) == {"shop-v2": 100}
    r = canary(cli, canary_mesh, "abort", "shop")
    assert r.exit_code == 0, r
    assert split(canary_mesh["buyer"], 50) == {"shop-v2": 50}
    r = canary(cli, canary_mesh, "promote", "shop")
    assert r.exit_code == 0, r
    assert split(canary_mesh["buyer"], 50) == {"shop-v3": 50}
    r = canary(cli, canary_mesh, "abort", "shop")
    assert r.exit_code == 1 and "already succeeded" in r.stderr


def test_server_dry_run_on_the_local_mesh_is_refused_clearly(canary_mesh, cli):
    """The local mesh has no API server to dry-run a change: refused with a one-line error (it
    was an internal error), while a client dry run prints the diff and changes nothing."""
    start_from(cli, canary_mesh, "v1", "v2")
    r = canary(cli, canary_mesh, "shift", "shop", "50/50", "--subsets", "v1,v2", "--dry-run=server")
    assert r.exit_code == 2, r
    assert r.stderr.startswith("error: --dry-run=server needs a cluster: this command works on the local mesh here")
    r = canary(cli, canary_mesh, "shift", "shop", "50/50", "--subsets", "v1,v2", "--dry-run")
    assert r.exit_code == 0, r
    assert "+      weight: 50" in r.stdout and "dry run: nothing was changed" in r.stderr
    assert split(canary_mesh["buyer"], 50) == {"shop-v1": 50}

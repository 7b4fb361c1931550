"""`meshctl local` results in every format (golden files under tests/golden/local/)."""
from __future__ import annotations

import json

import pytest
import yaml

from meshctl.local import report
from meshctl.local.mesh import ApplyResult, DownResult, UpResult
from tests.reports import render

UP = UpResult("/home/me/shop/.meshctl/local", 7, 6, 1.6912,
              ["ServiceEntry default/payments (mesh.yaml:12): payments.example.com has no local endpoints "
               "(resolution DNS); requests to it answer 503"],
              [{"gateway": "default/bookinfo-gateway", "port": 80, "address": "127.0.100.1:8080"}])
APPLY = ApplyResult([("VirtualService default/reviews", "configured"), ("DestinationRule default/reviews", "unchanged"),
                     ("WorkloadEntry default/reviews-v4", "created")],
                    ["productpage-v1.default", "reviews-v1.default"], ["reviews-v4.default"], [])
DELETE = ApplyResult([("WorkloadEntry default/reviews-v4", "deleted"), ("VirtualService default/ratings", "not found")],
                     [], [], ["reviews-v4.default"])
UNCHANGED = ApplyResult([("VirtualService default/reviews", "unchanged")], [], [], [])
STATUS = {"stateDir": "/home/me/shop/.meshctl/local", "running": True,
          "proxies": [{"name": "productpage-v1", "namespace": "default", "kind": "sidecar", "status": "SYNCED",
                       "admin": "127.0.10.1:15000", "pid": 4242, "restarts": 0, "lastExit": None, "reasons": [],
                       "inbound": "127.0.10.1:15006",
                       "identity": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"},
                      {"name": "reviews-v2", "namespace": "default", "kind": "sidecar", "status": "STALE",
                       "admin": "127.0.10.4:15000", "pid": 4246, "restarts": 2, "lastExit": -9,
                       "reasons": ["LDS 1 rejected update(s) since start, kept version 3f2a9c1d0e11",
                                   "RDS http_proxy: initial fetch timed out"],
                       "inbound": "127.0.10.4:15006",
                       "identity": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"},
                      {"name": "bookinfo-gateway", "namespace": "default", "kind": "gateway", "status": "SYNCED",
                       "admin": "127.0.100.1:15000", "pid": 4250, "restarts": 0, "lastExit": None, "reasons": []}],
          "ingress": [{"gateway": "default/bookinfo-gateway", "port": 80, "address": "127.0.100.1:8080"}],
          "workloads": [{"name": "productpage-v1", "namespace": "default", "address": "127.0.10.1:9080",
                         "pid": 4243, "status": "Running", "restarts": 0, "lastExit": None},
                        {"name": "reviews-v2", "namespace": "default", "address": "127.0.10.4:9080",
                         "pid": None, "status": "Failed", "restarts": 5, "lastExit": 1}]}
STOPPED = {"stateDir": "/home/me/shop/.meshctl/local", "running": False,
           "proxies": [{"name": "client", "namespace": "default", "kind": "sidecar", "status": "UNREACHABLE",
                        "admin": "127.0.9.1:15000", "pid": None, "restarts": 0, "lastExit": 0,
                        "reasons": ["admin 127.0.9.1:15000 unreachable: connection refused"], "inbound": None,
                        "identity": "spiffe://cluster.local/ns/default/sa/client"}],
           "ingress": [], "workloads": []}
DOWN = DownResult("/home/me/shop/.meshctl/local", True, 13, [])
NOTHING = DownResult("/home/me/shop/.meshctl/local", False, 0, [])

CASES = [("up", UP, report.FORMATS), ("apply", APPLY, report.FORMATS), ("apply-unchanged", UNCHANGED, report.FORMATS),
         ("delete", DELETE, report.FORMATS), ("status", STATUS, report.STATUS_FORMATS),
         ("status-stopped", STOPPED, report.STATUS_FORMATS), ("down", DOWN, report.FORMATS),
         ("down-nothing", NOTHING, report.FORMATS)]


@pytest.mark.parametrize("name,result,formats", CASES, ids=[c[0] for c in CASES])
def test_local_report(golden, name, result, formats):
    for fmt in formats.names:
        out, err = render(report.write, result, fmt)
        golden(f"local/{name}.{fmt}", out + (f"--- stderr\n{err}" if err else ""))


def test_machine_output_is_the_result_and_nothing_else():
    for result in (UP, APPLY, STATUS, DOWN):
        out, _ = render(report.write, result, "json")
        data = json.loads(out)
        assert data == (result if isinstance(result, dict) else result.to_dict())
        assert yaml.safe_load(render(report.write, result, "yaml")[0]) == data


def test_up_warnings_go_to_stderr_in_every_format():
    for fmt in report.FORMATS.names:
        out, err = render(report.write, UP, fmt)
        assert err == f"warning: {UP.warnings[0]}\n" and "warning:" not in out


def test_status_formats_accept_text_for_the_table():
    assert report.STATUS_FORMATS.check("text") == "table" and report.STATUS_FORMATS.check(None) == "table"
    assert report.FORMATS.complete("y") == ["yaml"]

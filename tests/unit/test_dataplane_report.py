"""dataplane enroll and status reports in every format (golden files under tests/golden/dataplane/)."""
from __future__ import annotations

import pytest

from meshctl.inject import report
from tests.reports import render

ENROLL = {"namespace": "shop", "mode": "ambient", "previous": "sidecar", "changed": True, "revision": None,
          "previousRevision": "canary", "labels": {"istio.io/dataplane-mode": "ambient", "istio.io/rev": None},
          "restart": [{"namespace": "shop", "pod": "reviews-v1-7d9f8", "expected": "ambient", "actual": "sidecar"}],
          "warnings": []}
UNCHANGED = {**ENROLL, "mode": "sidecar", "changed": False, "revision": "canary", "restart": [],
             "warnings": ["no sidecar injector of revision canary is installed"]}
STATUS = {"namespaces": [{"namespace": "shop", "mode": "ambient", "waypoint": "waypoint", "pods": 4},
                         {"namespace": "billing", "mode": "sidecar", "waypoint": None, "pods": 2}],
          "mismatched": [{"namespace": "billing", "pod": "ledger-0", "expected": "sidecar", "actual": "none"}]}


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
@pytest.mark.parametrize("name,result", [("enroll", ENROLL), ("enroll-unchanged", UNCHANGED), ("status", STATUS)])
def test_dataplane_report(golden, name, result, fmt):
    out, err = render(report.write, result, fmt)
    golden(f"dataplane/{name}.{fmt}", out + (f"--- stderr\n{err}" if err else ""))

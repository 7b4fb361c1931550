"""precheck's report in every format (golden files under tests/golden/precheck/)."""
from __future__ import annotations

import pytest

from meshctl.precheck import report
from meshctl.precheck.checks import Check, Outcome, Result
from tests.reports import render


def _check(cid, category, description, fatal=False):
    return Check(cid, category, description, run=lambda ctx: Result.ok(), fatal=fatal)


RESULT = report.PrecheckResult([
    Outcome(_check("k8s-api", "Kubernetes API", "can query the Kubernetes API", fatal=True), Result.ok()),
    Outcome(_check("k8s-version", "Kubernetes API", "is running Kubernetes 1.24 or newer"), Result.ok("1.30")),
    Outcome(_check("perm-crds", "Permissions", "can manage customresourcedefinitions"),
            Result.error("missing permissions", ["create customresourcedefinitions.apiextensions.k8s.io"])),
    Outcome(_check("hostnet", "Workloads", "no pods use the host network"),
            Result.warn("2 pods use the host network", [f"apps/pod-{i}" for i in range(22)])),
])


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
def test_precheck_report(golden, fmt):
    out, err = render(report.write, RESULT, fmt)
    golden(f"precheck/report.{fmt}", out)
    assert err == ""


def test_streamed_text_is_the_same_as_written_text():
    from tests.reports import console

    streamed = console()
    printer = report.Printer(streamed)
    for o in RESULT.outcomes:
        printer(o)
    report.write(RESULT, "text", streamed, None, streamed=True)
    assert streamed.file.getvalue() == render(report.write, RESULT, "text")[0]


def test_the_summary_counts_failures_and_warnings():
    out, _ = render(report.write, report.PrecheckResult(RESULT.outcomes[:2]), "text")
    assert out.rstrip().endswith("Status check results are ✔")
    out, _ = render(report.write, report.PrecheckResult(RESULT.outcomes[:2] + RESULT.outcomes[3:]), "text")
    assert out.rstrip().endswith("Status check results are ‼ (1 warning)")
    out, _ = render(report.write, RESULT, "text")
    assert out.rstrip().endswith("Status check results are ✖ (1 failure, 1 warning)")

"""canary's report in every format (golden files under tests/golden/canary/): a shift's result,
a rollout's status (also what promote and abort show), and a run's steps as lines, JSON lines and
the live table."""
from __future__ import annotations

import json

import pytest

from meshctl.canary import report
from meshctl.canary.shift import ShiftResult
from meshctl.canary.state import RunResult, State, Status
from tests.reports import console, render

DIFF = """\
--- VirtualService default/reviews (cluster)
+++ VirtualService default/reviews (shifted)
@@ -12,4 +12,5 @@
       - destination:
           host: reviews
           subset: v1
-        weight: 100
+        weight: 90
+      - destination:
+          host: reviews
+          subset: v2
+        weight: 10
"""

SHIFTS = {
    "shift-cluster": ShiftResult(
        target="VirtualService default/reviews", route="VirtualService default/reviews", host="reviews",
        before=[("v1", 100)], after=[("v1", 80), ("v2", 10), ("v3", 10)], changed=True, attempts=3,
        header=("x-user", "beta"), mirror=5.0,
        notes=["a rollout of reviews to v2 is progressing: its next step rewrites these weights (end it with "
               "'meshctl canary abort|promote reviews')"]),
    "shift-file-httproute": ShiftResult(
        target="deploy/[prod]/reviews.yaml", route="HTTPRoute shop/reviews", kind="HTTPRoute", host="reviews",
        before=[("reviews-v1", 100), ("reviews-v2", 0)], after=[("reviews-v1", 90), ("reviews-v2", 10)],
        changed=True, mirror=0.0),
    "shift-unchanged": ShiftResult(
        target="HTTPRoute shop/reviews", route="HTTPRoute shop/reviews", kind="HTTPRoute", host="reviews",
        before=[("reviews-v1", 50), ("reviews-v2", 50)], after=[("reviews-v1", 50), ("reviews-v2", 50)],
        changed=False),
    "shift-created": ShiftResult(
        target="VirtualService default/reviews", route="VirtualService default/reviews", host="reviews", before=[],
        after=[("v1", 90), ("v2", 10)], changed=True,
        created=["DestinationRule default/reviews", "VirtualService default/reviews"]),
    "shift-dry-run": ShiftResult(
        target="VirtualService default/reviews", route="VirtualService default/reviews", host="reviews",
        before=[("v1", 100)], after=[("v1", 90), ("v2", 10)], changed=True, dry_run=True, diff=DIFF),
}

ANALYSIS = {"steps": [10, 20, 30, 40, 50], "threshold": 3, "interval": 60.0, "maxWeight": 50}


def _state(**kw) -> State:
    base = dict(phase="Progressing", stable="reviews-v1", canary="reviews-v2", weight=30, failures=1, step=2,
                started="2026-01-01T12:00:00Z", lastTransition="2026-01-01T12:01:00Z",
                heartbeat="2026-01-01T12:03:00Z", runner="ci-runner/4242/0badcafe",
                message="failed check 1/3: 97.00% of 200 requests succeeded (min 99%)", analysis=dict(ANALYSIS),
                metrics={"requests": 200, "errors": 6, "successRate": 97.0, "p99Ms": 41.25})
    base.update(kw)
    return State(**base)


STATUSES = {
    "status-none": Status(host="reviews", kind="VirtualService", route="VirtualService default/reviews",
                          weights=[("v1", 100)]),
    "status-stopped": Status(host="reviews", kind="HTTPRoute", route="HTTPRoute shop/reviews",
                             weights=[("reviews-v1", 70), ("reviews-v2", 30)], state=_state(), heartbeat_age=3725.04),
    "status-running": Status(host="reviews", kind="VirtualService", route="VirtualService default/reviews",
                             weights=[("v1", 70), ("v2", 30)], running=True, heartbeat_age=12.0,
                             state=_state(stable="v1", canary="v2", metrics={"requests": 0, "errors": 0,
                                                                            "successRate": None, "p99Ms": None})),
    "promoted": Status(host="reviews", kind="VirtualService", route="VirtualService default/reviews",
                       weights=[("v1", 0), ("v2", 100)], heartbeat_age=0.4,
                       state=_state(stable="v1", canary="v2", phase="Succeeded", weight=100, metrics={},
                                    message="v2 promoted by hand")),
}


def _record(time, phase, action, step, weight, failures=0, metrics=None, checks=(), message=""):
    return {"time": f"2026-01-01T12:{time}Z", "host": "reviews", "phase": phase, "action": action, "step": step,
            "steps": 3, "stable": "v1", "canary": "v2", "weights": {"v1": 100 - weight, "v2": weight},
            "failures": failures, "threshold": 2, "metrics": metrics, "checks": list(checks), "message": message}


GOOD = {"requests": 200, "errors": 1, "successRate": 99.5, "p99Ms": 40.0}
BAD = {"requests": 150, "errors": 30, "successRate": 80.0, "p99Ms": None}
SR_OK = {"name": "success-rate", "ok": True, "value": 99.5, "threshold": 99.0,
         "message": "99.50% of 200 requests succeeded (min 99%)"}
SR_BAD = {"name": "success-rate", "ok": False, "value": 80.0, "threshold": 99.0,
          "message": "80.00% of 150 requests succeeded (min 99%)"}
RUN = RunResult(host="reviews", phase="Failed", events=[
    _record("00:00", "Initializing", "start", 0, 0, message="rolling v2 out over v1: steps 10/25/50% every 60s; "
                                                            "metrics from Prometheus http://prometheus:9090"),
    _record("00:01", "Progressing", "advance", 1, 10, message="shifted 10% to v2"),
    _record("01:01", "Progressing", "advance", 2, 25, metrics=GOOD, checks=[SR_OK],
            message="analysis passed: 25% to v2"),
    _record("02:01", "Progressing", "hold", 2, 25, metrics={"requests": 0, "errors": 0, "successRate": None,
                                                           "p99Ms": None},
            message="no requests to the canary in this interval: holding"),
    _record("03:01", "Progressing", "fail", 2, 25, failures=1, metrics=BAD, checks=[SR_BAD],
            message="failed check 1/2: 80.00% of 150 requests succeeded (min 99%)"),
    _record("04:01", "RollingBack", "rollback", 2, 0, failures=2, metrics=BAD, checks=[SR_BAD],
            message="rolled back after 2 failed checks: 80.00% of 150 requests succeeded (min 99%)"),
    _record("04:02", "Failed", "rolled-back", 2, 0, failures=2,
            message="rolled back after 2 failed checks: 80.00% of 150 requests succeeded (min 99%)"),
])


def _both(out: str, err: str) -> str:
    return out + (f"[stderr]\n{err}" if err else "")


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_shift_report(golden, name, fmt):
    golden(f"canary/{name}.{fmt}", _both(*render(report.write, SHIFTS[name], fmt)))


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
@pytest.mark.parametrize("name", sorted(STATUSES))
def test_status_report(golden, name, fmt):
    out, err = render(report.write, STATUSES[name], fmt)
    golden(f"canary/{name}.{fmt}", out)
    assert err == ""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_run_report(golden, fmt):
    out, err = render(report.write, RUN, fmt)
    golden(f"canary/run.{fmt}", out)
    assert err == ""
    if fmt == "json":
        assert [json.loads(line) for line in out.splitlines()] == RUN.events


def test_run_live_table(golden):
    out = console(width=120)
    out.print(report.step_table(RUN.events, caption="next check in 42s"))
    golden("canary/run.table", out.file.getvalue())


def test_streamed_steps_are_the_written_ones_and_nothing_follows():
    for fmt in ("text", "json"):
        streamed = console()
        printer = report.RunPrinter(fmt, streamed, live=False)
        for record in RUN.events:
            printer(record)
        report.write(RUN, fmt, streamed, console(), streamed=True)
        assert streamed.file.getvalue() == render(report.write, RUN, fmt)[0]


def test_the_live_table_keeps_the_last_rows():
    rows = [_record(f"{i // 60:02d}:{i % 60:02d}", "Progressing", "hold", 1, 10) for i in range(30)]
    out = console(width=160)
    out.print(report.step_table(rows))
    text = out.file.getvalue()
    assert "12:00:09" not in text and "12:00:10" in text and "12:00:29" in text


def test_formats_are_declared_for_help_and_completion():
    assert report.SHIFT_FORMATS.complete("") == ["text", "json", "yaml"]
    assert report.RUN_FORMATS.complete("") == ["text", "json"]
    assert report.STATUS_FORMATS.check("YAML") == "yaml"

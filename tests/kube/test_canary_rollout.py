"""`meshctl canary run|status|promote|abort` against the fake API server, metrics from a tiny
Prometheus; a run killed with SIGKILL and resumed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.kube.test_canary_support import (FakePrometheus, Webhook, annotations, json_lines, seed, wait_for,
                                            weights)

pytestmark = pytest.mark.kube

PREFIX = "canary.meshctl.io/"


def run_args(kube_api, prom, *extra):
    return ("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews", "--to", "v2", "--interval", "0.1s",
            "--prometheus", prom.url, "-o", "json", *extra)


def test_healthy_canary_is_promoted(cli, kube_api):
    seed(kube_api)
    with FakePrometheus(requests=200, errors=1, p99=40) as prom:
        r = cli(*run_args(kube_api, prom, "--steps", "10,25,50", "--threshold", "2"))
    assert r.exit_code == 0, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "advance", "advance", "advance", "promote", "promoted"]
    assert [x["weights"]["v2"] for x in lines] == [0, 10, 25, 50, 100, 100]
    assert [x["phase"] for x in lines] == ["Initializing", "Progressing", "Progressing", "Progressing", "Promoting",
                                           "Succeeded"]
    assert lines[2]["metrics"] == {"requests": 200, "errors": 1, "successRate": 99.5, "p99Ms": 40.0}
    assert {c["name"]: c["ok"] for c in lines[2]["checks"]} == {"success-rate": True, "p99": True}
    assert weights(kube_api) == [("v1", 0), ("v2", 100)]
    ann = annotations(kube_api)
    assert ann[PREFIX + "phase"] == "Succeeded" and ann[PREFIX + "canary"] == "v2" and ann[PREFIX + "stable"] == "v1"
    # Istio's standard series, for the canary's version, over the interval's window
    q = [x for x in prom.queries if "istio_requests_total" in x][0]
    assert 'destination_service="reviews.default.svc.cluster.local"' in q and 'destination_version="v2"' in q
    assert "[1s]" in q and 'reporter="destination"' in q
    assert any(x.startswith("histogram_quantile(0.99") for x in prom.queries)


def test_failing_canary_is_rolled_back_at_threshold(cli, kube_api):
    seed(kube_api)
    with FakePrometheus(requests=100, errors=20, p99=40) as prom:
        r = cli(*run_args(kube_api, prom, "--step", "20", "--threshold", "2"))
    assert r.exit_code == 1, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "advance", "fail", "rollback", "rolled-back"]
    assert lines[-1]["phase"] == "Failed" and lines[-1]["failures"] == 2
    assert "80.00% of 100 requests succeeded (min 99%)" in lines[2]["message"]
    assert weights(kube_api) == [("v1", 100), ("v2", 0)]
    assert annotations(kube_api)[PREFIX + "phase"] == "Failed"


def test_slow_canary_is_rolled_back(cli, kube_api):
    seed(kube_api)
    with FakePrometheus(requests=100, errors=0, p99=900) as prom:
        r = cli(*run_args(kube_api, prom, "--threshold", "1", "--max-p99", "0.8s"))
    assert r.exit_code == 1, r
    fail = [x for x in json_lines(r.stdout) if x["action"] == "rollback"][0]
    assert {c["name"]: c["ok"] for c in fail["checks"]} == {"success-rate": True, "p99": False}
    assert fail["checks"][1]["threshold"] == 800.0
    with FakePrometheus(requests=100, errors=0, p99=900) as prom:  # a bare number is milliseconds
        r = cli(*run_args(kube_api, prom, "--threshold", "1", "--max-p99", "850"))
    assert r.exit_code == 1, r
    assert json_lines(r.stdout)[-2]["checks"][1]["threshold"] == 850.0


def test_no_traffic_holds_without_failing(cli, kube_api):
    seed(kube_api)
    # no data for the first two intervals, then healthy traffic
    with FakePrometheus(requests=lambda n: None if n <= 2 else 50, errors=0, p99=5) as prom:
        r = cli(*run_args(kube_api, prom, "--steps", "10,50", "--threshold", "1"))
    assert r.exit_code == 0, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "advance", "hold", "hold", "advance", "promote", "promoted"]
    assert all(x["failures"] == 0 for x in lines)
    assert lines[2]["weights"]["v2"] == 10 and lines[3]["weights"]["v2"] == 10


def test_webhooks(cli, kube_api):
    seed(kube_api)
    with FakePrometheus() as prom, Webhook(200) as pre, Webhook(lambda n: 500 if n == 1 else 200) as step, \
            Webhook(200) as post:
        r = cli(*run_args(kube_api, prom, "--steps", "20,40", "--threshold", "2", "--pre-rollout", pre.url,
                          "--rollout", step.url, "--post-rollout", post.url))
    assert r.exit_code == 0, r
    actions = [x["action"] for x in json_lines(r.stdout)]
    assert actions == ["start", "advance", "fail", "advance", "promote", "promoted"], actions
    assert [c["type"] for c in pre.calls] == ["pre-rollout"] and pre.calls[0]["canary"] == "v2"
    assert len(step.calls) == 3 and step.calls[0]["type"] == "rollout"
    assert [c["type"] for c in post.calls] == ["post-rollout"] and post.calls[0]["phase"] == "Succeeded"


def test_failed_pre_rollout_aborts_before_shifting(cli, kube_api):
    seed(kube_api)
    rv_weights = weights(kube_api)
    with FakePrometheus() as prom, Webhook(503) as pre:
        r = cli(*run_args(kube_api, prom, "--pre-rollout", pre.url))
    assert r.exit_code == 1, r
    lines = json_lines(r.stdout)
    assert [x["action"] for x in lines] == ["start", "rollback"]
    assert "pre-rollout check failed" in lines[-1]["message"] and "answered 503" in lines[-1]["message"]
    assert annotations(kube_api)[PREFIX + "phase"] == "Failed"
    assert [w for _, w in weights(kube_api)][0] == 100 and rv_weights == [("v1", 100)]


def test_run_errors(cli, kube_api):
    seed(kube_api)
    base = ("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews")
    r = cli(*base)
    assert r.exit_code == 2 and "no rollout of reviews to resume" in r.stderr and "--to" in r.stderr
    r = cli(*base, "--to", "v9", "--proxy-admin", "127.0.0.1:1")
    assert r.exit_code == 2 and "subset 'v9' is not defined" in r.stderr
    assert "pick an existing one with --to" in r.stderr, "run has no --subsets flag"
    r = cli(*base, "--to", "v2,v3")
    assert r.exit_code == 2 and "names several subsets" in r.stderr
    r = cli(*base, "--to", "v1", "--proxy-admin", "127.0.0.1:1")   # v1 is the stable subset
    assert r.exit_code == 2 and r.stderr == ("error: v1 already takes all traffic of reviews: it is the stable "
                                             "subset, not a canary\nhint: roll out another subset with --to (v2, v3)\n")
    r = cli(*base, "--to", "v2", "--steps", "50,10")
    assert r.exit_code == 2 and "must increase" in r.stderr
    r = cli(*base, "--to", "v2", "--interval", "soon")
    assert r.exit_code == 2 and "not a duration" in r.stderr
    r = cli(*base, "--to", "v2", "--prometheus", "http://127.0.0.1:1")
    assert r.exit_code == 3 and "Prometheus http://127.0.0.1:1 unreachable" in r.stderr
    r = cli(*base, "--to", "v2", "--proxy-admin", "127.0.0.1:1")
    assert r.exit_code == 3 and "127.0.0.1:1" in r.stderr
    r = cli(*base, "--to", "v2")
    assert r.exit_code == 2 and "no pod with an istio-proxy sidecar" in r.stderr
    assert annotations(kube_api) == {}, "nothing written before metrics are reachable"
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "promote", "reviews")
    assert r.exit_code == 2 and "no rollout recorded" in r.stderr


def _spawn(kube_api, prom, *extra) -> subprocess.Popen:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("KUBECONFIG", None)
    cmd = [sys.executable, "-m", "meshctl", "--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews",
           *extra, "--prometheus", prom.url, "-o", "json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def test_killed_run_resumes_where_it_stopped(cli, kube_api):
    seed(kube_api)
    with FakePrometheus(requests=100, errors=0, p99=10) as prom:
        proc = _spawn(kube_api, prom, "--to", "v2", "--interval", "0.5s", "--steps", "10,20,30,40,50")
        try:
            assert wait_for(lambda: annotations(kube_api).get(PREFIX + "phase") == "Progressing"
                            and int(annotations(kube_api).get(PREFIX + "weight")) >= 20, timeout=30), \
                annotations(kube_api)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        ann = annotations(kube_api)
        assert ann[PREFIX + "phase"] == "Progressing"
        killed_at = int(ann[PREFIX + "weight"])
        assert killed_at >= 20 and dict(weights(kube_api))["v2"] == killed_at, "weights and state agree"

        r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "status", "reviews", "-o", "json")
        assert r.exit_code == 0, r
        status = json.loads(r.stdout)
        assert status["phase"] == "Progressing" and status["weight"] == killed_at and status["canary"] == "v2"
        assert status["running"] is False, "the process that drove it is gone"
        r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "status", "reviews")
        assert "Progressing (stopped)" in r.stdout and "resume with: meshctl canary run reviews" in r.stdout

        r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews", "--interval", "0.1s", "-o", "json")
    assert r.exit_code == 0, r
    lines = json_lines(r.stdout)
    assert lines[0]["action"] == "resume" and lines[0]["weights"]["v2"] == killed_at
    advanced = [x["weights"]["v2"] for x in lines if x["action"] == "advance"]
    assert advanced == [w for w in (10, 20, 30, 40, 50) if w > killed_at], "no step is repeated"
    assert lines[-1]["phase"] == "Succeeded" and weights(kube_api) == [("v1", 0), ("v2", 100)]


def test_abort_and_promote_a_running_or_stopped_rollout(cli, kube_api):
    seed(kube_api)
    base = ("--kubeconfig", kube_api.kubeconfig, "canary")
    with FakePrometheus(requests=100, errors=0, p99=10) as prom:
        proc = _spawn(kube_api, prom, "--to", "v2", "--interval", "1s", "--steps", "10,20,30,40,50")
        try:
            assert wait_for(lambda: annotations(kube_api).get(PREFIX + "phase") == "Progressing", timeout=30)
            r = cli(*base, "abort", "reviews")
            assert r.exit_code == 0, r
            assert "phase:" in r.stdout and "Failed" in r.stdout and "v1 100% / v2 0%" in r.stdout
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, (out, err)
        last = json_lines(out)[-1]
        assert last["action"] == "stopped" and last["phase"] == "Failed", last
        assert weights(kube_api) == [("v1", 100), ("v2", 0)]
        r = cli(*base, "abort", "reviews")  # already rolled back: still fine
        assert r.exit_code == 0

        # a new rollout, killed, then promoted by hand
        proc = _spawn(kube_api, prom, "--to", "v2", "--interval", "1s", "--steps", "10,20,30,40,50")
        try:
            assert wait_for(lambda: annotations(kube_api).get(PREFIX + "phase") == "Progressing", timeout=30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    r = cli(*base, "status", "reviews")
    assert r.exit_code == 0 and "Progressing" in r.stdout
    r = cli(*base, "promote", "reviews", "-o", "json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert data["phase"] == "Succeeded" and data["weights"] == {"v1": 0, "v2": 100}
    r = cli(*base, "abort", "reviews")
    assert r.exit_code == 1 and "already succeeded" in r.stderr
    r = cli(*base, "run", "reviews", "--to", "v2", "--proxy-admin", "127.0.0.1:1")
    assert r.exit_code == 2 and "v2 already takes all traffic of reviews" in r.stderr


def test_a_second_rollout_to_another_subset_is_refused_while_one_is_active(cli, kube_api):
    seed(kube_api)
    with FakePrometheus() as prom:
        proc = _spawn(kube_api, prom, "--to", "v2", "--interval", "1s", "--steps", "10,20,30,40,50")
        try:
            assert wait_for(lambda: annotations(kube_api).get(PREFIX + "phase") == "Progressing", timeout=30)
            r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews", "--to", "v3",
                    "--prometheus", prom.url)
            assert r.exit_code == 2 and "a rollout of reviews to v2 is progressing" in r.stderr, r
        finally:
            proc.kill()
            proc.wait()


def test_human_output_of_run_and_status(cli, kube_api):
    seed(kube_api)
    with FakePrometheus(requests=100, errors=0, p99=12) as prom:
        r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "run", "reviews", "--to", "v2", "--interval", "0.1s",
                "--prometheus", prom.url, "--steps", "10,50")
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and r.stderr == ""
    assert "Progressing" in lines[2] and "v1 50% / v2 50%" in lines[2] and "success 100.00%" in lines[2]
    assert "p99 12.0ms" in lines[2] and "failures 0/3" in lines[2]
    assert "Succeeded" in lines[-1] and "v1 0% / v2 100%" in lines[-1]
    r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "status", "reviews")
    assert r.exit_code == 0, r
    assert r.stdout.startswith("VirtualService default/reviews (reviews): v1 0% / v2 100%\n")
    assert "phase:            Succeeded (finished)" in r.stdout and "step:             2/2 (10/50)" in r.stdout


def test_shift_during_a_rollout_warns(cli, kube_api):
    seed(kube_api)
    with FakePrometheus() as prom:
        proc = _spawn(kube_api, prom, "--to", "v2", "--interval", "5s", "--steps", "10,20")
        try:
            assert wait_for(lambda: annotations(kube_api).get(PREFIX + "phase") == "Progressing", timeout=30)
            r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "status", "reviews", "-o", "json")
            assert json.loads(r.stdout)["running"] is True
            r = cli("--kubeconfig", kube_api.kubeconfig, "canary", "shift", "reviews", "70/30")
            assert r.exit_code == 0, r
            assert "warning: a rollout of reviews to v2 is progressing" in r.stderr
        finally:
            proc.kill()
            proc.wait()


def test_ctrl_c_leaves_consistent_weights_and_says_how_to_resume(kube_api):
    seed(kube_api)
    with FakePrometheus() as prom:
        proc = _spawn(kube_api, prom, "--to", "v2", "--interval", "5s", "--steps", "10,20")
        try:
            assert wait_for(lambda: annotations(kube_api).get(PREFIX + "phase") == "Progressing", timeout=30)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, (out, err)
    assert err.startswith("error: interrupted: the rollout of reviews stays Progressing at v1 90% / v2 10%"), err
    assert "resume with 'meshctl canary run reviews'" in err and "Traceback" not in err
    assert annotations(kube_api)[PREFIX + "weight"] == "10" and dict(weights(kube_api))["v2"] == 10


def test_a_second_run_takes_over_instead_of_doubling_steps(cli, kube_api):
    seed(kube_api)
    with FakePrometheus() as prom:
        first = _spawn(kube_api, prom, "--to", "v2", "--interval", "2s", "--steps", "10,20,30,40,50")
        try:
            assert wait_for(lambda: annotations(kube_api).get(PREFIX + "phase") == "Progressing", timeout=30)
            second = _spawn(kube_api, prom, "--interval", "0.5s")
            out2, err2 = second.communicate(timeout=60)
            out1, err1 = first.communicate(timeout=20)
        finally:
            for p in (first,):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    assert second.returncode == 0, err2
    assert first.returncode == 1, err1
    assert "took this rollout over" in json_lines(out1)[-1]["message"]
    second_steps = [x["weights"]["v2"] for x in json_lines(out2) if x["action"] == "advance"]
    assert second_steps == sorted(second_steps) and len(set(second_steps)) == len(second_steps)
    assert weights(kube_api) == [("v1", 0), ("v2", 100)]

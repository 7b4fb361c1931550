"""The rollout state machine against an in-memory API (resourceVersion checked on replace) and a
scripted metric source: properties over any sequence of healthy, failing and idle intervals."""
from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from meshctl import kube
from meshctl.canary import gates, plan, rollout

NET = "networking.istio.io/v1"


class MemoryKube:
    """get/list/replace over dicts, with resourceVersion preconditions like the API server."""

    namespace = "default"

    def __init__(self, objects):
        self.store = {(o["kind"], o["metadata"]["name"]): dict(copy.deepcopy(o)) for o in objects}
        for o in self.store.values():
            o["metadata"]["resourceVersion"] = "1"
        self.rv = 1
        self.writes: list[dict] = []

    def get(self, api_version, kind, name, namespace=None):
        o = self.store.get((kind, name))
        return copy.deepcopy(o) if o else None

    def list(self, api_version, kind, namespace=None, label_selector=None):
        return [copy.deepcopy(o) for (k, _), o in self.store.items() if k == kind]

    def replace(self, obj):
        key = (obj["kind"], obj["metadata"]["name"])
        if obj["metadata"].get("resourceVersion") != self.store[key]["metadata"]["resourceVersion"]:
            raise kube.Conflict("stale")
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.store[key] = obj
        self.writes.append(copy.deepcopy(obj))
        return copy.deepcopy(obj)


class Scripted:
    """One Metrics per interval from a script: "good", "bad" (5xx), "slow" (p99), "idle" (no traffic)."""

    def __init__(self, script):
        self.script = list(script)
        self.i = 0

    def describe(self):
        return "script"

    def start(self):
        pass

    def measure(self):
        kind = self.script[self.i] if self.i < len(self.script) else "good"
        self.i += 1
        return {"good": gates.Metrics(100, 0, 10.0), "bad": gates.Metrics(100, 30, 10.0),
                "slow": gates.Metrics(100, 0, 900.0), "idle": gates.Metrics(0, 0, None)}[kind]


def objects():
    vs = {"apiVersion": NET, "kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "default"},
          "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}}
    dr = {"apiVersion": NET, "kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "default"},
          "spec": {"host": "reviews", "subsets": [{"name": "v1"}, {"name": "v2"}]}}
    return [vs, dr]


@settings(max_examples=150, deadline=None)
@given(script=st.lists(st.sampled_from(["good", "bad", "slow", "idle"]), max_size=30),
       step=st.integers(min_value=1, max_value=100), max_weight=st.integers(min_value=1, max_value=100),
       threshold=st.integers(min_value=1, max_value=5))
def test_rollout_invariants(script, step, max_weight, threshold):
    k = MemoryKube(objects())
    records: list[dict] = []
    r = rollout.Rollout(k, "reviews", "default", observer=records.append, sleep=lambda s: None)
    opts = rollout.Options(canary="v2", step=step, max_weight=max_weight, interval=1, threshold=threshold,
                           min_success_rate=99, max_p99_ms=500)
    phase = r.run(opts, lambda spec, state, dr: Scripted(script))
    schedule = plan.step_schedule(step, None, max_weight)

    # every object written routes exactly 100% between stable and canary, with state to match
    for obj in k.writes:
        w = dict(plan.current_weights(obj, "reviews", "default"))
        assert sum(w.values()) == 100
        state = rollout.State.of(obj)
        if w.get("v2", 0) not in (0, 100):
            assert state.phase == "Progressing" and w["v2"] in schedule and w["v2"] <= max_weight
        assert w.get("v2", 0) == state.weight or state.phase == "Initializing"
    progressing = [x["weights"]["v2"] for x in records if x["phase"] == "Progressing"]
    assert progressing == sorted(progressing), "the canary's weight never goes down while progressing"

    # the outcome follows the script: promotion after one passed analysis per step, rollback at
    # `threshold` failed checks, idle intervals count for nothing
    passed = failed = 0
    expected = None
    for kind in script + ["good"] * (len(schedule) + 1):
        if kind == "good":
            passed += 1
            if passed == len(schedule):
                expected = "Succeeded"
                break
        elif kind in ("bad", "slow"):
            failed += 1
            if failed == threshold:
                expected = "Failed"
                break
    assert phase == expected
    final = dict(plan.current_weights(k.store[("VirtualService", "reviews")], "reviews", "default"))
    assert final == ({"v1": 0, "v2": 100} if phase == "Succeeded" else {"v1": 100, "v2": 0})
    assert [x["action"] for x in records].count("fail") == failed - (1 if phase == "Failed" else 0)


def test_promote_and_abort_end_a_stopped_rollout():
    k = MemoryKube(objects())
    r = rollout.Rollout(k, "reviews", "default", sleep=lambda s: None)

    class Interrupt(Exception):
        pass

    class Stop(Scripted):
        def measure(self):
            if self.i == 2:
                raise Interrupt()
            return super().measure()

    try:
        r.run(rollout.Options(canary="v2", steps=[10, 20, 30], interval=1), lambda *a: Stop([]))
    except Interrupt:
        pass
    status = r.status().to_dict()
    assert status["phase"] == "Progressing" and status["weights"] == {"v1": 70, "v2": 30}
    assert r.abort().to_dict()["weights"] == {"v1": 100, "v2": 0}
    assert rollout.State.of(k.store[("VirtualService", "reviews")]).phase == "Failed"
    # resuming an aborted rollout is not possible; a new one starts from the first step
    records: list[dict] = []
    r.observer = records.append
    assert r.run(rollout.Options(canary="v2", steps=[10, 20, 30], interval=1),
                 lambda *a: Scripted([])) == "Succeeded"
    assert [x["weights"]["v2"] for x in records if x["action"] == "advance"] == [10, 20, 30]


def test_a_long_interval_counts_down_on_a_terminal():
    from meshctl.canary.report import countdown

    now = [100.0]
    seen = []

    def sleep(s):
        now[0] += s

    countdown(3.5, seen.append, clock=lambda: now[0], sleep=sleep)
    assert seen == [4, 3, 2, 1, 0]
    assert now[0] == 103.5

"""The progressive rollout state machine (Flagger's canary analysis, run from the CLI).

Phases (state.py):  Initializing → Progressing → Promoting → Succeeded
                                              ↘ RollingBack → Failed
Each interval: measure the canary (gates), then advance one step, hold (no traffic) or count a
failed check; at `threshold` failures roll back to 100% stable; after a successful analysis at the
last step (≤ max weight) promote: 100% canary.

The state lives in annotations on the route (`canary.meshctl.io/*` on the VirtualService or
HTTPRoute), written in the same read-modify-write as the weights, so the object is always
consistent: `canary status` reads it from anywhere, an interrupted `canary run` resumes where it
stopped, and `canary promote|abort` work whether or not a run is active (an active run notices at
its next write and stops).

Domain code does not print: each step reaches `observer(record)` (one dict per step, the JSON
line `canary run -o json` prints), warnings reach `warn(text)`.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from meshctl.canary import gates, plan
from meshctl.canary.shift import update
from meshctl.canary.state import (ACTIVE, FAILED, INITIALIZING, PROGRESSING, PROMOTING, ROLLING_BACK, SUCCEEDED,
                                  Options, RunResult, Spec, State, Status, now_iso)
from meshctl.canary.targets import ClusterTarget
from meshctl.errors import EXIT_INTERRUPTED, CheckFailed, InputError, MeshctlError
from meshctl import hosts

__all__ = ["Options", "Rollout", "RunResult", "State", "Status", "SUCCEEDED", "FAILED"]


class Preempted(Exception):
    """Another actor (canary promote/abort, or a new run) changed the rollout meanwhile."""


@dataclass
class _Run:
    """One run's bookkeeping: the route, the analysis, who drives it, its metric source."""

    found: plan.Found
    spec: Spec
    runner: str
    source: Any
    ident: str = ""          # the `started` time of the rollout this run drives
    timeout: float = 10.0

    @property
    def spec_d(self) -> dict:
        return asdict(self.spec)

    def mine(self, *phases: str) -> Callable[[State], bool]:
        """The state is still this run's, in one of `phases` (else it was preempted)."""
        return lambda s: s.started == self.ident and s.runner == self.runner and s.phase in phases


@dataclass
class Rollout:
    """A rollout of one host, on one cluster (or the local mesh). `observer(record)` receives
    one dict per step; `warn(text)` a warning; `kind` picks the route API when the host has both."""

    k: Any
    host: str
    namespace: str
    observer: Callable[[dict], None] = lambda record: None
    sleep: Callable[[float], None] = time.sleep
    kind: Optional[str] = None
    warn: Callable[[str], None] = lambda text: None
    events: list[dict] = field(default_factory=list)

    @property
    def target(self) -> ClusterTarget:
        return ClusterTarget(self.k, self.namespace)

    # --- reading -------------------------------------------------------------------------------
    def _find(self) -> plan.Found:
        found = self.target.find(self.host, self.kind)
        if found.route is None:
            raise self.target.missing(found, self.host,
                                      hint="create one (meshctl canary shift HOST 100/0 --create) or check -n")
        return found

    def status(self) -> Status:
        return Status.of(self.host, self._find())

    # --- writing -------------------------------------------------------------------------------
    def _write(self, found: plan.Found, expect: Callable[[State], bool], change: Callable[[State], None],
               weights: Optional[tuple[int, int]] = None) -> State:
        """One read-modify-write of the state (and the weights stable/canary, when given).
        Raises Preempted when `expect(current state)` is false."""
        preempted: list[State] = []
        result: list[State] = []

        def mutate(obj: dict) -> Optional[dict]:
            st = State.of(obj)
            if not expect(st):
                preempted.append(st)
                return None
            prev_phase = st.phase
            change(st)
            st.heartbeat = now_iso()
            if st.phase != prev_phase:
                st.lastTransition = st.heartbeat
            if weights is not None:
                obj = plan.apply_shift(obj, plan.Shift(self.host, self.namespace, [st.stable, st.canary],
                                                       list(weights)))
            st.write_to(obj)
            result.append(st)
            return obj

        from meshctl import kube
        from meshctl.errors import ClusterError

        for attempt in range(4):  # a transient API error should not end an hour-long rollout
            try:
                update(self.target, found, mutate)
                break
            except (kube.NotFound, kube.Invalid):
                raise
            except ClusterError:
                if attempt == 3:
                    raise
                self.sleep(0.5 * 2 ** attempt)
        if preempted and not result:
            raise Preempted(preempted[-1].phase)
        return result[-1]

    def _emit(self, st: State, action: str, metrics: gates.Metrics | None = None,
              checks: list[gates.Check] = (), message: str = "") -> dict:
        steps = st.analysis.get("steps") or []
        record = {
            "time": now_iso(), "host": self.host, "phase": st.phase, "action": action,
            "step": st.step + 1 if st.step >= 0 else 0, "steps": len(steps),
            "stable": st.stable, "canary": st.canary,
            "weights": {st.stable: 100 - st.weight, st.canary: st.weight},
            "failures": st.failures, "threshold": st.analysis.get("threshold"),
            "metrics": metrics.to_dict() if metrics else None,
            "checks": [c.to_dict() for c in checks],
            "message": message or st.message,
        }
        self.events.append(record)
        self.observer(record)
        return record

    def _payload(self, st: State, phase: str) -> dict:
        return {"name": hosts.short_name(self.host), "namespace": self.namespace, "host": self.host,
                "phase": phase, "stable": st.stable, "canary": st.canary, "weight": st.weight,
                "metadata": {"step": str(st.step + 1), "failures": str(st.failures)}}

    def _hooks(self, urls: list[str], kind: str, st: State, phase: str, timeout: float) -> list[gates.Check]:
        return [gates.call_webhook(u, kind, self._payload(st, phase), timeout) for u in urls]

    def _post_rollout(self, st: State, spec: dict, timeout: float) -> list[gates.Check]:
        checks = self._hooks(spec.get("postRollout") or [], "post-rollout", st, st.phase, timeout)
        for c in checks:
            if not c.ok:
                self.warn(f"post-rollout webhook failed: {c.message}")
        return checks

    # --- run -----------------------------------------------------------------------------------
    def run(self, opts: Options, make_source: Callable[[Spec, State, plan.Found], Any]) -> str:
        """Run (or resume) the rollout until it succeeds or fails; returns the final phase."""
        try:
            return self._run(opts, make_source)
        except KeyboardInterrupt:
            last = self.events[-1] if self.events else {}
            weights = " / ".join(f"{k} {v}%" for k, v in (last.get("weights") or {}).items())
            raise MeshctlError(f"interrupted: the rollout of {self.host} stays {last.get('phase', 'as it was')}"
                               + (f" at {weights}" if weights else ""),
                               hint=f"resume with 'meshctl canary run {self.host}', or end it with "
                                    f"'meshctl canary promote|abort {self.host}'", exit_code=EXIT_INTERRUPTED) from None

    def result(self, phase: str) -> RunResult:
        return RunResult(host=self.host, phase=phase, events=list(self.events))

    def _run(self, opts: Options, make_source: Callable[[Spec, State, plan.Found], Any]) -> str:
        for note in self.target.notes(self.host):
            self.warn(note)
        found = self._find()
        st, spec = self._plan(found, opts)
        resumed = st.phase in ACTIVE
        run = _Run(found, spec, f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}",
                   make_source(spec, st, found), ident=st.started if resumed else "", timeout=opts.webhook_timeout)
        run.source.start()  # unreachable metrics: stop here, before any change
        try:
            st = self._resume(run, st) if resumed else self._start(run, st)
            run.ident = st.started
            if st.phase == INITIALIZING:
                st = self._initialize(run, st)
            elif st.phase == PROGRESSING:  # make sure the weights match the recorded step
                st = self._write(found, run.mine(PROGRESSING), lambda s: None, (100 - st.weight, st.weight))
            while st.phase == PROGRESSING:
                st = self._analyse(run, st)
            return self._finish(run, st).phase
        except Preempted:
            return self._stopped(run).phase

    def _plan(self, found: plan.Found, opts: Options) -> tuple[State, Spec]:
        """The state to start from and the analysis: a rollout to resume, else a new one from the
        route's stable version (the one with most weight) to the canary."""
        st = State.of(found.route)
        canary = found.api.resolve_name(found, self.host, opts.canary) if opts.canary else None
        if st.phase in ACTIVE:
            if canary and canary != st.canary:
                raise InputError(f"a rollout of {self.host} to {st.canary} is {st.phase.lower()} "
                                 f"(weight {st.weight}%)",
                                 hint=f"resume it with 'meshctl canary run {self.host}', or end it first "
                                      f"with 'meshctl canary promote|abort {self.host}'")
            return st, Spec.resolve(st.analysis, opts)
        if not canary:
            raise InputError(f"no rollout of {self.host} to resume", hint="start one with --to SUBSET")
        spec = Spec.resolve({}, opts)
        weights = plan.current_weights(found.route, self.host, self.namespace)
        others = [(w, s) for s, w in weights if s and s != canary and w > 0]
        if not others and any(s == canary and w > 0 for s, w in weights):
            choices = [x for x in found.api.defined(found) if x != canary]
            raise InputError(f"{canary} already takes all traffic of {self.host}: it is the stable "
                             f"{found.api.VERSION_WORD}, not a canary",
                             hint=f"roll out another {found.api.VERSION_WORD} with --to" + (f" ({', '.join(choices)})" if choices else ""))
        if not others:
            raise InputError(f"cannot tell the stable {found.api.VERSION_WORD} of {self.host}: its default route sends "
                             f"nothing to another {found.api.VERSION_WORD} than {canary}",
                             hint=f"route it to the stable {found.api.VERSION_WORD} first: meshctl canary shift {self.host} "
                                  f"100/0 --subsets STABLE,{canary}")
        stable = max(others, key=lambda ws: ws[0])[1]
        found.api.resolve(found, plan.Shift(self.host, self.namespace, [stable, canary], [100, 0]), flag="--to")
        return State(phase="", stable=stable, canary=canary), spec

    def _start(self, run: _Run, st: State) -> State:
        started = now_iso()

        def init(s: State) -> None:
            s.phase, s.stable, s.canary = INITIALIZING, st.stable, st.canary
            s.weight, s.failures, s.step, s.started = 0, 0, -1, started
            s.analysis, s.metrics, s.message = run.spec_d, {}, "pre-rollout checks"
            s.runner = run.runner

        st = self._write(run.found, lambda s: s.phase not in ACTIVE, init)
        self._emit(st, "start", message=f"rolling {st.canary} out over {st.stable}: steps "
                                        f"{'/'.join(map(str, run.spec.steps))}% every {run.spec.interval:g}s; "
                                        f"metrics from {run.source.describe()}")
        return st

    def _resume(self, run: _Run, st: State) -> State:
        steps = run.spec.steps

        def refresh(s: State) -> None:
            s.analysis, s.runner = run.spec_d, run.runner  # a later run takes over from an earlier one
            if s.step >= len(steps) or (s.step >= 0 and steps[s.step] != s.weight):
                below = [i for i, w in enumerate(steps) if w <= s.weight]
                s.step = below[-1] if below else 0

        st = self._write(run.found, lambda s: s.phase == st.phase and s.started == st.started, refresh)
        self._emit(st, "resume", message=f"resumed at {st.weight}% (step {st.step + 1}/{len(steps)}, "
                                         f"{st.failures} failed checks)")
        return st

    def _initialize(self, run: _Run, st: State) -> State:
        """Pre-rollout webhooks, then the first step (or Failed, before any traffic moves)."""
        hooks = self._hooks(run.spec.preRollout, "pre-rollout", st, INITIALIZING, run.timeout)
        if not all(c.ok for c in hooks):
            msg = "; ".join(c.message for c in hooks if not c.ok)

            def fail(s: State) -> None:
                s.phase, s.message = FAILED, f"pre-rollout check failed: {msg}"

            st = self._write(run.found, run.mine(INITIALIZING), fail, (100, 0))
            self._emit(st, "rollback", checks=hooks)
            self._post_rollout(st, run.spec_d, run.timeout)
            return st
        first = run.spec.steps[0]

        def advance(s: State) -> None:
            s.phase, s.step, s.weight = PROGRESSING, 0, first
            s.message = f"shifted {first}% to {s.canary}"

        st = self._write(run.found, run.mine(INITIALIZING), advance, (100 - first, first))
        self._emit(st, "advance", checks=hooks)
        run.source.start()
        return st

    def _analyse(self, run: _Run, st: State) -> State:
        """One interval: wait, measure, call the step webhooks, then step."""
        spec = run.spec
        self.sleep(spec.interval)
        metrics = run.source.measure()
        verdict, checks = gates.evaluate(metrics, gates.Thresholds(spec.minSuccessRate, spec.maxP99Ms))
        hooks = self._hooks(spec.rollout, "rollout", st, PROGRESSING, run.timeout)
        if not all(c.ok for c in hooks):
            verdict = "fail"
        return self._step(run, st, verdict, metrics, checks + hooks)

    def _finish(self, run: _Run, st: State) -> State:
        """Promoting → Succeeded (100% canary), RollingBack → Failed (100% stable)."""
        if st.phase not in (PROMOTING, ROLLING_BACK):
            return st
        promoting = st.phase == PROMOTING

        def end(s: State) -> None:
            s.phase = SUCCEEDED if promoting else FAILED
            s.message = f"{s.canary} promoted: 100% of traffic" if promoting else (s.message or "rolled back")

        st = self._write(run.found, run.mine(st.phase), end, (0, 100) if promoting else (100, 0))
        self._emit(st, "promoted" if promoting else "rolled-back")
        self._post_rollout(st, run.spec_d, run.timeout)
        return st

    def _stopped(self, run: _Run) -> State:
        st = State.of(self._find().route)
        if not run.ident:
            message = (f"another 'meshctl canary run' changed the rollout meanwhile: "
                       f"{st.phase} to {st.canary} ({st.runner})")
        elif st.phase in ACTIVE and st.started == run.ident:
            message = f"another 'meshctl canary run' ({st.runner}) took this rollout over"
        else:
            message = f"the rollout was ended elsewhere: {st.phase} ({st.message})"
        self._emit(st, "stopped", message=message)
        return st

    def _step(self, run: _Run, st: State, verdict: str, metrics: gates.Metrics, checks: list[gates.Check]) -> State:
        spec, mine = run.spec, run.mine(PROGRESSING)
        summary = "; ".join(c.message for c in checks if c.message)
        weights: Optional[tuple[int, int]] = None
        if verdict == "hold":
            action = "hold"

            def change(s: State) -> None:
                s.metrics, s.message = metrics.to_dict(), summary
        elif verdict == "fail" and st.failures + 1 >= spec.threshold:
            action, weights, failures = "rollback", (100, 0), st.failures + 1

            def change(s: State) -> None:
                s.failures, s.phase, s.metrics, s.weight = failures, ROLLING_BACK, metrics.to_dict(), 0
                s.message = f"rolled back after {failures} failed checks: {summary}"
        elif verdict == "fail":
            action, failures = "fail", st.failures + 1

            def change(s: State) -> None:
                s.failures, s.metrics = failures, metrics.to_dict()
                s.message = f"failed check {failures}/{spec.threshold}: {summary}"
        elif st.step + 1 >= len(spec.steps):
            action, weights = "promote", (0, 100)

            def change(s: State) -> None:
                s.phase, s.weight, s.metrics = PROMOTING, 100, metrics.to_dict()
                s.message = f"analysis passed at {spec.steps[-1]}%: promoting {s.canary}"
        else:
            nxt = st.step + 1
            action, weights = "advance", (100 - spec.steps[nxt], spec.steps[nxt])

            def change(s: State) -> None:
                s.step, s.weight, s.metrics = nxt, spec.steps[nxt], metrics.to_dict()
                s.message = f"analysis passed: {spec.steps[nxt]}% to {s.canary}"
        st = self._write(run.found, mine, change, weights)
        self._emit(st, action, metrics, checks)
        return st

    # --- manual ends ---------------------------------------------------------------------------
    def _end(self, target: str, action: str) -> Status:
        found = self._find()
        st = State.of(found.route)
        if not st.phase:
            raise InputError(f"no rollout recorded for {self.host} in namespace {self.namespace}",
                             hint=f"start one with 'meshctl canary run {self.host} --to SUBSET', "
                                  "or shift weights with 'meshctl canary shift'")
        if target == FAILED and st.phase == SUCCEEDED:
            raise CheckFailed(f"the rollout of {self.host} to {st.canary} already succeeded",
                              hint=f"shift back with 'meshctl canary shift {self.host} 100/0 "
                                   f"--subsets {st.stable},{st.canary}'")
        started = st.started
        weights = (0, 100) if target == SUCCEEDED else (100, 0)

        def end(s: State) -> None:
            s.phase = target
            s.weight = weights[1]
            s.message = (f"{s.canary} promoted by hand" if target == SUCCEEDED
                         else f"aborted by hand: back to 100% {s.stable}")

        st = self._write(found, lambda s: s.started == started, end, weights)
        self._emit(st, action)
        self._post_rollout(st, st.analysis, 10.0)
        return self.status()

    def promote(self) -> Status:
        return self._end(SUCCEEDED, "promoted")

    def abort(self) -> Status:
        return self._end(FAILED, "aborted")

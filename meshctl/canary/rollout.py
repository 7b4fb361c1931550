"""The progressive rollout state machine (Flagger's canary analysis, run from the CLI).

Phases:  Initializing → Progressing → Promoting → Succeeded
                                   ↘ RollingBack → Failed
Each interval: measure the canary (gates), then advance one step, hold (no traffic) or count a
failed check; at `threshold` failures roll back to 100% stable; after a successful analysis at the
last step (≤ max weight) promote: 100% canary.

The state lives in annotations on the VirtualService (`canary.meshctl.io/*`), written in the same
read-modify-write as the weights, so the object is always consistent: `canary status` reads it
from anywhere, an interrupted `canary run` resumes where it stopped, and `canary promote|abort`
work whether or not a run is active (an active run notices at its next write and stops).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from meshctl.loader import json_loads
from meshctl.canary import gates, plan
from meshctl.canary.shift import NET_API, find_on_cluster, update
from meshctl.errors import CheckFailed, InputError
from meshctl import hosts

PREFIX = "canary.meshctl.io/"
INITIALIZING, PROGRESSING, PROMOTING, SUCCEEDED = "Initializing", "Progressing", "Promoting", "Succeeded"
ROLLING_BACK, FAILED = "RollingBack", "Failed"
ACTIVE = (INITIALIZING, PROGRESSING, PROMOTING, ROLLING_BACK)
FINAL = (SUCCEEDED, FAILED)

DEFAULTS = {"step": 10, "maxWeight": 50, "interval": 60.0, "threshold": 3,
            "minSuccessRate": 99.0, "maxP99Ms": 500.0}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(iso: str | None) -> Optional[float]:
    if not iso:
        return None
    try:
        t = _dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    return (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()


def _runner_alive(runner: str) -> bool:
    """False when the run that last wrote was on this machine and its process is gone."""
    host, _, rest = runner.partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only the heartbeat tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@dataclass
class Options:
    """`canary run` flags; None means "not given" (a resumed run keeps its stored value)."""

    canary: Optional[str] = None
    step: Optional[int] = None
    steps: Optional[list[int]] = None
    max_weight: Optional[int] = None
    interval: Optional[float] = None
    threshold: Optional[int] = None
    min_success_rate: Optional[float] = None
    max_p99_ms: Optional[float] = None
    pre_rollout: list[str] = field(default_factory=list)
    rollout: list[str] = field(default_factory=list)
    post_rollout: list[str] = field(default_factory=list)
    prometheus: Optional[str] = None
    proxy_admin: list[str] = field(default_factory=list)
    webhook_timeout: float = 10.0


@dataclass
class Spec:
    """The resolved analysis, stored as JSON in `canary.meshctl.io/analysis`."""

    steps: list[int]
    maxWeight: int
    interval: float
    threshold: int
    minSuccessRate: Optional[float]
    maxP99Ms: Optional[float]
    preRollout: list[str] = field(default_factory=list)
    rollout: list[str] = field(default_factory=list)
    postRollout: list[str] = field(default_factory=list)
    prometheus: Optional[str] = None
    proxyAdmin: list[str] = field(default_factory=list)

    @classmethod
    def resolve(cls, stored: dict, o: Options) -> "Spec":
        def pick(given, key):
            if given is not None:
                return given
            return stored.get(key, DEFAULTS.get(key))

        max_weight = int(pick(o.max_weight, "maxWeight"))
        if o.steps is not None or o.step is not None or o.max_weight is not None or not stored.get("steps"):
            steps = plan.step_schedule(o.step if o.step is not None else (None if o.steps else DEFAULTS["step"]),
                                       o.steps, max_weight)
        else:
            steps = list(stored["steps"])
        interval = float(pick(o.interval, "interval"))
        if interval <= 0:
            raise InputError(f"--interval {interval:g}s must be positive", hint="e.g. --interval 1m")
        threshold = int(pick(o.threshold, "threshold"))
        if threshold < 1:
            raise InputError(f"--threshold {threshold} must be at least 1")
        return cls(steps=steps, maxWeight=max_weight, interval=interval, threshold=threshold,
                   minSuccessRate=pick(o.min_success_rate, "minSuccessRate"),
                   maxP99Ms=pick(o.max_p99_ms, "maxP99Ms"),
                   preRollout=o.pre_rollout or stored.get("preRollout") or [],
                   rollout=o.rollout or stored.get("rollout") or [],
                   postRollout=o.post_rollout or stored.get("postRollout") or [],
                   prometheus=o.prometheus or stored.get("prometheus"),
                   proxyAdmin=o.proxy_admin or stored.get("proxyAdmin") or [])


@dataclass
class State:
    phase: str = ""
    stable: str = ""
    canary: str = ""
    weight: int = 0
    failures: int = 0
    step: int = -1
    started: str = ""
    lastTransition: str = ""
    heartbeat: str = ""
    runner: str = ""
    message: str = ""
    analysis: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    _INTS = ("weight", "failures", "step")
    _JSON = ("analysis", "metrics")

    @classmethod
    def of(cls, obj: dict | None) -> "State":
        ann = ((obj or {}).get("metadata") or {}).get("annotations") or {}
        st = cls()
        for key in asdict(st):
            raw = ann.get(PREFIX + _dash(key))
            if raw is None:
                continue
            try:
                if key in cls._INTS:
                    setattr(st, key, int(raw))
                elif key in cls._JSON:
                    value = json_loads(raw)
                    setattr(st, key, value if isinstance(value, dict) else {})
                else:
                    setattr(st, key, str(raw))
            except (ValueError, TypeError):
                pass
        return st

    def write_to(self, obj: dict) -> None:
        ann = obj.setdefault("metadata", {}).get("annotations")
        if not isinstance(ann, dict):
            ann = obj["metadata"]["annotations"] = {}
        for key, value in asdict(self).items():
            if key in self._JSON:
                ann[PREFIX + _dash(key)] = json.dumps(value, sort_keys=True, separators=(",", ":"))
            else:
                ann[PREFIX + _dash(key)] = str(value)

    def to_dict(self) -> dict:
        return asdict(self)


def _dash(key: str) -> str:
    out = "".join("-" + c.lower() if c.isupper() else c for c in key)
    return out


class Preempted(Exception):
    """Another actor (canary promote/abort, or a new run) changed the rollout meanwhile."""


@dataclass
class Rollout:
    """A rollout of one host, on one cluster. `report(record)` receives one dict per step."""

    k: Any
    host: str
    namespace: str
    report: Callable[[dict], None] = lambda record: None
    sleep: Callable[[float], None] = time.sleep

    # --- reading -------------------------------------------------------------------------------
    def _find(self) -> tuple[dict, dict | None]:
        vs, dr = find_on_cluster(self.k, self.host, self.namespace)
        if vs is None:
            raise InputError(f"no VirtualService serves {self.host} in namespace {self.namespace}",
                             hint="create one (meshctl canary shift HOST 100/0 --create) or check -n")
        return vs, dr

    def status(self) -> dict:
        vs, _ = self._find()
        st = State.of(vs)
        weights = plan.current_weights(vs, self.host, self.namespace)
        out = {"host": self.host, "virtualService": plan.ref(vs), "weights": {s: w for s, w in weights}}
        if not st.phase:
            out["phase"] = None
            out["message"] = "no rollout recorded on this VirtualService"
            return out
        d = st.to_dict()
        interval = float(st.analysis.get("interval") or DEFAULTS["interval"])
        age = _age(st.heartbeat)
        running = st.phase in ACTIVE and age is not None and age <= 2 * interval + 15 and _runner_alive(st.runner)
        d["running"] = running
        d["heartbeatAgeSeconds"] = round(age, 1) if age is not None else None
        d["steps"] = st.analysis.get("steps") or []
        d["threshold"] = st.analysis.get("threshold")
        out.update(d)
        return out

    # --- writing -------------------------------------------------------------------------------
    def _write(self, vs_name: str, vs_ns: str, expect: Callable[[State], bool], change: Callable[[State], None],
               weights: Optional[tuple[int, int]] = None) -> tuple[dict, State]:
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
                shift = plan.Shift(self.host, self.namespace, [st.stable, st.canary], list(weights))
                obj = plan.apply_shift(obj, shift)
            st.write_to(obj)
            result.append(st)
            return obj

        from meshctl import kube
        from meshctl.errors import ClusterError

        for attempt in range(4):  # a transient API error should not end an hour-long rollout
            try:
                _, written, _ = update(self.k, NET_API, "VirtualService", vs_name, vs_ns, mutate)
                break
            except (kube.NotFound, kube.Invalid):
                raise
            except ClusterError:
                if attempt == 3:
                    raise
                self.sleep(0.5 * 2 ** attempt)
        if preempted and not result:
            raise Preempted(preempted[-1].phase)
        return written, result[-1]

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
        self.report(record)
        return record

    def _payload(self, st: State, phase: str) -> dict:
        return {"name": hosts.short_name(self.host), "namespace": self.namespace, "host": self.host,
                "phase": phase, "stable": st.stable, "canary": st.canary, "weight": st.weight,
                "metadata": {"step": str(st.step + 1), "failures": str(st.failures)}}

    def _post_rollout(self, st: State, spec: dict, timeout: float) -> list[gates.Check]:
        checks = [gates.call_webhook(u, "post-rollout", self._payload(st, st.phase), timeout)
                  for u in spec.get("postRollout") or []]
        for c in checks:
            if not c.ok:
                from meshctl.output import warn

                warn(f"post-rollout webhook failed: {c.message}")
        return checks

    # --- run -----------------------------------------------------------------------------------
    def run(self, opts: Options, make_source: Callable[[Spec, State, dict | None], Any]) -> str:
        """Run (or resume) the rollout until it succeeds or fails; returns the final phase."""
        vs, dr = self._find()
        name, vs_ns = vs["metadata"]["name"], vs["metadata"].get("namespace") or self.namespace
        st = State.of(vs)
        resumed = st.phase in ACTIVE
        if resumed:
            if opts.canary and opts.canary != st.canary:
                raise InputError(f"a rollout of {self.host} to {st.canary} is {st.phase.lower()} "
                                 f"(weight {st.weight}%)",
                                 hint=f"resume it with 'meshctl canary run {self.host}', or end it first "
                                      f"with 'meshctl canary promote|abort {self.host}'")
            spec = Spec.resolve(st.analysis, opts)
        else:
            if not opts.canary:
                raise InputError(f"no rollout of {self.host} to resume", hint="start one with --to SUBSET")
            spec = Spec.resolve({}, opts)
            weights = plan.current_weights(vs, self.host, self.namespace)
            others = [(w, s) for s, w in weights if s and s != opts.canary and w > 0]
            if not others and any(s == opts.canary and w > 0 for s, w in weights):
                choices = [x for x in plan.dr_subsets(dr) if x != opts.canary]
                raise InputError(f"{opts.canary} already takes all traffic of {self.host}: it is the stable "
                                 "subset, not a canary",
                                 hint=f"roll out another subset with --to"
                                      + (f" ({', '.join(choices)})" if choices else ""))
            if not others:
                raise InputError(f"cannot tell the stable subset of {self.host}: its default route sends "
                                 f"nothing to another subset than {opts.canary}",
                                 hint=f"route it to the stable subset first: meshctl canary shift {self.host} "
                                      f"100/0 --subsets STABLE,{opts.canary}")
            stable = max(others, key=lambda ws: ws[0])[1]
            plan.resolve_subsets(vs, dr, self.host, self.namespace, [100, 0], [stable, opts.canary],
                                 f" in namespace {self.namespace}", flag="--to")
            st = State(phase="", stable=stable, canary=opts.canary)
        spec_d = asdict(spec)
        runner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        source = make_source(spec, st, dr)
        source.start()  # unreachable metrics: stop here, before any change
        timeout = opts.webhook_timeout

        ident = st.started if resumed else ""

        def mine(phases: tuple[str, ...]) -> Callable[[State], bool]:
            return lambda s: s.started == ident and s.runner == runner and s.phase in phases

        try:
            if not resumed:
                started = now_iso()

                def init(s: State) -> None:
                    s.phase, s.stable, s.canary = INITIALIZING, st.stable, st.canary
                    s.weight, s.failures, s.step, s.started = 0, 0, -1, started
                    s.analysis, s.metrics, s.message = spec_d, {}, "pre-rollout checks"
                    s.runner = runner

                _, st = self._write(name, vs_ns, lambda s: s.phase not in ACTIVE, init)
                self._emit(st, "start", message=f"rolling {st.canary} out over {st.stable}: steps "
                                                f"{'/'.join(map(str, spec.steps))}% every {spec.interval:g}s; "
                                                f"metrics from {source.describe()}")
            else:
                def refresh(s: State) -> None:
                    s.analysis, s.runner = spec_d, runner  # a later run takes over from an earlier one
                    if s.step >= len(spec.steps) or (s.step >= 0 and spec.steps[s.step] != s.weight):
                        below = [i for i, w in enumerate(spec.steps) if w <= s.weight]
                        s.step = below[-1] if below else 0

                _, st = self._write(name, vs_ns, lambda s: s.phase == st.phase and s.started == st.started, refresh)
                self._emit(st, "resume", message=f"resumed at {st.weight}% (step {st.step + 1}/{len(spec.steps)}, "
                                                 f"{st.failures} failed checks)")
            ident = st.started
            if st.phase == INITIALIZING:
                hooks = [gates.call_webhook(u, "pre-rollout", self._payload(st, INITIALIZING), timeout)
                         for u in spec.preRollout]
                if not all(c.ok for c in hooks):
                    msg = "; ".join(c.message for c in hooks if not c.ok)

                    def fail(s: State) -> None:
                        s.phase, s.message = FAILED, f"pre-rollout check failed: {msg}"

                    _, st = self._write(name, vs_ns, mine((INITIALIZING,)), fail, (100, 0))
                    self._emit(st, "rollback", checks=hooks)
                    self._post_rollout(st, spec_d, timeout)
                    return st.phase

                def first(s: State) -> None:
                    s.phase, s.step, s.weight = PROGRESSING, 0, spec.steps[0]
                    s.message = f"shifted {spec.steps[0]}% to {s.canary}"

                _, st = self._write(name, vs_ns, mine((INITIALIZING,)), first, (100 - spec.steps[0], spec.steps[0]))
                self._emit(st, "advance", checks=hooks)
                source.start()
            elif st.phase == PROGRESSING:  # make sure the weights match the recorded step
                _, st = self._write(name, vs_ns, mine((PROGRESSING,)), lambda s: None, (100 - st.weight, st.weight))

            while st.phase == PROGRESSING:
                self.sleep(spec.interval)
                metrics = source.measure()
                verdict, checks = gates.evaluate(metrics, gates.Thresholds(spec.minSuccessRate, spec.maxP99Ms))
                hooks = [gates.call_webhook(u, "rollout", self._payload(st, PROGRESSING), timeout)
                         for u in spec.rollout]
                checks = checks + hooks
                if not all(c.ok for c in hooks):
                    verdict = "fail"
                st = self._step(name, vs_ns, mine((PROGRESSING,)), st, spec, verdict, metrics, checks)

            if st.phase == PROMOTING:
                _, st = self._write(name, vs_ns, mine((PROMOTING,)),
                                    lambda s: (setattr(s, "phase", SUCCEEDED),
                                               setattr(s, "message", f"{s.canary} promoted: 100% of traffic")),
                                    (0, 100))
                self._emit(st, "promoted")
                self._post_rollout(st, spec_d, timeout)
            elif st.phase == ROLLING_BACK:
                _, st = self._write(name, vs_ns, mine((ROLLING_BACK,)),
                                    lambda s: (setattr(s, "phase", FAILED),
                                               setattr(s, "message", s.message or "rolled back")),
                                    (100, 0))
                self._emit(st, "rolled-back")
                self._post_rollout(st, spec_d, timeout)
        except Preempted:
            vs, _ = self._find()
            st = State.of(vs)
            if not ident:
                self._emit(st, "stopped", message=f"another 'meshctl canary run' changed the rollout meanwhile: "
                                                  f"{st.phase} to {st.canary} ({st.runner})")
            elif st.phase in ACTIVE and st.started == ident:
                self._emit(st, "stopped", message=f"another 'meshctl canary run' ({st.runner}) took this rollout over")
            else:
                self._emit(st, "stopped", message=f"the rollout was ended elsewhere: {st.phase} ({st.message})")
        return st.phase

    def _step(self, name: str, vs_ns: str, mine: Callable[[State], bool], st: State, spec: Spec, verdict: str,
              metrics: gates.Metrics, checks: list[gates.Check]) -> State:
        summary = "; ".join(c.message for c in checks if c.message)
        if verdict == "hold":
            def hold(s: State) -> None:
                s.metrics, s.message = metrics.to_dict(), summary
            _, st = self._write(name, vs_ns, mine, hold)
            self._emit(st, "hold", metrics, checks)
            return st
        if verdict == "fail":
            failures = st.failures + 1
            if failures >= spec.threshold:
                def back(s: State) -> None:
                    s.failures, s.phase, s.metrics = failures, ROLLING_BACK, metrics.to_dict()
                    s.weight = 0
                    s.message = f"rolled back after {failures} failed checks: {summary}"
                _, st = self._write(name, vs_ns, mine, back, (100, 0))
                self._emit(st, "rollback", metrics, checks)
                return st

            def failed(s: State) -> None:
                s.failures, s.metrics = failures, metrics.to_dict()
                s.message = f"failed check {failures}/{spec.threshold}: {summary}"
            _, st = self._write(name, vs_ns, mine, failed)
            self._emit(st, "fail", metrics, checks)
            return st
        if st.step + 1 >= len(spec.steps):
            def promote(s: State) -> None:
                s.phase, s.weight, s.metrics = PROMOTING, 100, metrics.to_dict()
                s.message = f"analysis passed at {spec.steps[-1]}%: promoting {s.canary}"
            _, st = self._write(name, vs_ns, mine, promote, (0, 100))
            self._emit(st, "promote", metrics, checks)
            return st
        nxt = st.step + 1

        def advance(s: State) -> None:
            s.step, s.weight, s.metrics = nxt, spec.steps[nxt], metrics.to_dict()
            s.message = f"analysis passed: {spec.steps[nxt]}% to {s.canary}"
        _, st = self._write(name, vs_ns, mine, advance, (100 - spec.steps[nxt], spec.steps[nxt]))
        self._emit(st, "advance", metrics, checks)
        return st

    # --- manual ends ---------------------------------------------------------------------------
    def _end(self, target: str, action: str) -> dict:
        vs, _ = self._find()
        st = State.of(vs)
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
        vs_name, vs_ns = vs["metadata"]["name"], vs["metadata"].get("namespace") or self.namespace

        def end(s: State) -> None:
            s.phase = target
            s.weight = weights[1]
            s.message = (f"{s.canary} promoted by hand" if target == SUCCEEDED
                         else f"aborted by hand: back to 100% {s.stable}")

        _, st = self._write(vs_name, vs_ns, lambda s: s.started == started, end, weights)
        self._emit(st, action)
        self._post_rollout(st, st.analysis, 10.0)
        return self.status()

    def promote(self) -> dict:
        return self._end(SUCCEEDED, "promoted")

    def abort(self) -> dict:
        return self._end(FAILED, "aborted")

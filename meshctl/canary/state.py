"""A rollout's vocabulary, defined once: its phases, the `canary run` options, the resolved
analysis, and the state kept in annotations (`canary.meshctl.io/*`) on the route it shifts.

Phases:  Initializing → Progressing → Promoting → Succeeded
                                   ↘ RollingBack → Failed
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Optional

from meshctl.canary import plan
from meshctl.errors import InputError
from meshctl.loader import json_loads

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
    import socket

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
    kind: Optional[str] = None

    @classmethod
    def parse(cls, to: str | None = None, step: int | None = None, steps: str | None = None,
              max_weight: int | None = None, interval: str | None = None, threshold: int | None = None,
              min_success_rate: str | None = None, max_p99: str | None = None, prometheus: str | None = None,
              proxy_admin: list[str] | None = None, pre_rollout: list[str] | None = None,
              rollout: list[str] | None = None, post_rollout: list[str] | None = None,
              kind: str | None = None) -> "Options":
        """The options `meshctl canary run` flags ask for, each flag checked."""
        from meshctl import durations

        canary = plan.parse_subsets(to) if to else None
        if canary and len(canary) > 1:
            raise InputError(f"--to {to!r} names several subsets", hint="roll out one canary subset at a time")
        opts = cls(
            canary=canary[0] if canary else None,
            step=step, steps=plan.parse_steps(steps) if steps else None, max_weight=max_weight,
            interval=durations.parse(interval, "--interval", allow_zero=False) if interval else None,
            threshold=threshold,
            min_success_rate=plan.parse_percent(min_success_rate, "--min-success-rate") if min_success_rate else None,
            max_p99_ms=milliseconds(max_p99) if max_p99 else None,
            pre_rollout=pre_rollout or [], rollout=rollout or [], post_rollout=post_rollout or [],
            prometheus=prometheus, proxy_admin=proxy_admin or [], kind=plan.parse_kind(kind))
        if step is not None and steps:
            raise InputError("--step and --steps exclude each other", hint="give one of them")
        if opts.steps or step is not None or max_weight is not None:
            plan.step_schedule(step, opts.steps, max_weight if max_weight is not None else DEFAULTS["maxWeight"])
        return opts


def milliseconds(text: str) -> float:
    """--max-p99: a duration (500ms, 1s) or a bare number of milliseconds (as Flagger's thresholds)."""
    from meshctl import durations

    raw = str(text).strip()
    if raw.replace(".", "", 1).isdigit():
        return float(raw)
    return durations.parse(raw, "--max-p99") * 1000


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


@dataclass(kw_only=True)
class RunResult:
    """How a `canary run` ended: its final phase, and every step it reported."""

    host: str
    phase: str
    events: list[dict] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.phase == SUCCEEDED


ROUTE_KEYS = {plan.VIRTUAL_SERVICE: "virtualService", plan.HTTP_ROUTE: "httpRoute"}


@dataclass(kw_only=True)
class Status:
    """What `canary status` (and promote, abort) shows: the route's weights and its rollout's
    state, if one was recorded. `running`: its heartbeat is recent and, when it was driven from
    this machine, its process lives."""

    host: str
    kind: str
    route: str                      # "VirtualService default/reviews"
    weights: list[tuple[str, int]]
    state: Optional[State] = None
    running: bool = False
    heartbeat_age: Optional[float] = None

    @classmethod
    def of(cls, host: str, found: plan.Found) -> "Status":
        st = State.of(found.route)
        weights = plan.current_weights(found.route, host, found.namespace)
        out = cls(host=host, kind=found.api.KIND, route=found.ref, weights=weights, state=st if st.phase else None)
        if st.phase:
            interval = float(st.analysis.get("interval") or DEFAULTS["interval"])
            age = _age(st.heartbeat)
            out.heartbeat_age = age
            out.running = st.phase in ACTIVE and age is not None and age <= 2 * interval + 15 \
                and _runner_alive(st.runner)
        return out

    @property
    def activity(self) -> str:
        """running, stopped (an active phase nobody drives: resumable) or finished."""
        if self.state is None or self.state.phase not in ACTIVE:
            return "finished"
        return "running" if self.running else "stopped"

    def to_dict(self) -> dict:
        out = {"host": self.host, ROUTE_KEYS.get(self.kind, "route"): self.route,
               "weights": {s: w for s, w in self.weights}}
        if self.state is None:
            out["phase"] = None
            out["message"] = f"no rollout recorded on this {self.kind}"
            return out
        out.update(self.state.to_dict())
        out["running"] = self.running
        out["heartbeatAgeSeconds"] = round(self.heartbeat_age, 1) if self.heartbeat_age is not None else None
        out["steps"] = self.state.analysis.get("steps") or []
        out["threshold"] = self.state.analysis.get("threshold")
        return out

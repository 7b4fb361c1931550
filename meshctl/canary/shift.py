"""The mutate stage of `meshctl canary shift`: one Shift, applied to a host's route on a target.

    result = shift(ClusterTarget(k, "shop"), plan.Shift.parse("reviews", "90/10"))

The target (targets.py) is the cluster, the local mesh or manifest files; the route is the
host's VirtualService or HTTPRoute, whichever it has. Every write is a read-modify-write
(`update`): on the cluster it carries the resourceVersion it read, and on a conflict (someone
else wrote in between) the route is read again and the same change re-applied, so two operators
shifting at once lose nothing; in files it happens under a lock.
"""
from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from meshctl.canary import plan, state
from meshctl.errors import ClusterError

MAX_ATTEMPTS = 200


@dataclass(kw_only=True)
class ShiftResult:
    target: str                 # "VirtualService ns/name", or the file path
    route: str = ""             # "HTTPRoute ns/name": the route changed
    kind: str = plan.VIRTUAL_SERVICE
    host: str
    before: list[tuple[str, int]]
    after: list[tuple[str, int]]
    changed: bool
    dry_run: bool = False
    diff: str = ""
    created: list[str] = field(default_factory=list)
    attempts: int = 1
    header: Optional[tuple[str, str]] = None
    mirror: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {
            "target": self.target, "route": self.route or self.target, "kind": self.kind, "host": self.host,
            "before": {s: w for s, w in self.before}, "after": {s: w for s, w in self.after},
            "changed": self.changed, "dryRun": self.dry_run, "attempts": self.attempts,
        }
        if self.created:
            out["created"] = self.created
        if self.header:
            out["header"] = {"name": self.header[0], "value": self.header[1]}
        if self.mirror is not None:
            out["mirrorPercent"] = self.mirror
        if self.dry_run:
            out["diff"] = self.diff
        return out


def update(target, found: plan.Found, mutate: Callable[[dict], Optional[dict]],
           first: Optional[dict] = None) -> tuple[dict, dict, int]:
    """Read-modify-write with optimistic concurrency. `mutate(obj)` returns the new object (or
    None for no change) and is called again on the fresh object after each conflict; `first`
    is the route as just read, used for the first attempt. Returns (object read, object written
    or read, attempts)."""
    delay = 0.005
    for attempt in range(1, MAX_ATTEMPTS + 1):
        current = first if attempt == 1 and first is not None else target.read(found)
        new = mutate(copy.deepcopy(current))
        if new is None or new == current:
            return current, current, attempt
        try:
            written = target.write(found, current, new)
        except ClusterError as e:
            from meshctl import kube  # only a cluster conflicts (files are locked)

            if not isinstance(e, kube.Conflict) or isinstance(e, kube.AlreadyExists):
                raise
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.2)
            continue
        return current, written, attempt
    raise ClusterError(f"{found.ref} kept changing: gave up after {MAX_ATTEMPTS} conflicting writes",
                       hint="another controller may be rewriting it; check its managedFields")


def rollout_note(route: dict, host: str) -> Optional[str]:
    """A warning when a rollout drives the route: its next step rewrites the weights."""
    st = state.State.of(route)
    if st.phase not in state.ACTIVE:
        return None
    return (f"a rollout of {host} to {st.canary} is {st.phase.lower()}: its next step rewrites these weights "
            f"(end it with 'meshctl canary abort|promote {host}')")


def shift(target, change: plan.Shift, also: Optional[Callable[[dict], None]] = None) -> ShiftResult:
    """Shift the weights of HOST's route on `target` (targets.ClusterTarget or FileTarget).
    `also(obj)` (optional) changes the route further inside the same read-modify-write (e.g.
    bookkeeping annotations)."""
    with target.locked():
        found = target.find(change.host, change.kind)
        if found.route is None:
            if not change.create:
                raise target.missing(found, change.host)
            from meshctl.canary import create

            result = create.create(target, found, change, also)
            result.notes.extend(target.notes(change.host))
            return result
        resolved = change.resolved(found.api.resolve(found, change), found.namespace)

        def mutate(obj: dict) -> dict:
            new = plan.apply_shift(obj, resolved)
            if also:
                also(new)
            return new

        notes = target.notes(change.host) + [n for n in (rollout_note(found.route, change.host),) if n]
        common = dict(target=found.ref if not target.in_files else found.handle.doc[0], route=found.ref,
                      kind=found.api.KIND, host=change.host, header=change.header, mirror=change.mirror, notes=notes)
        weights = lambda obj: plan.current_weights(obj, change.host, found.namespace)  # noqa: E731
        if target.dry_run:
            new = mutate(copy.deepcopy(found.route))
            return ShiftResult(before=weights(found.route), after=weights(new), changed=new != found.route,
                               dry_run=True, diff=target.preview(found, new), **common)
        before, after, attempts = update(target, found, mutate, first=found.route)
        if not target.in_files:
            common["target"] = plan.ref(after, found.namespace)
        return ShiftResult(before=weights(before), after=weights(after), changed=after is not before,
                           attempts=attempts, **common)

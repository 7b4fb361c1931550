"""verify-install: render the recorded values again and compare with the cluster: missing
objects, drifted fields, workloads not ready."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from meshctl.errors import CheckFailed
from meshctl.install.drift import _value_at, diff_subset, wanted_fields
from meshctl.install.objects import WORKLOAD_KINDS, Ref, order_objects, record_name
from meshctl.install.readiness import pod_problem, workload_status
from meshctl.install.record import read_record, recorded_values

# --- verify --------------------------------------------------------------------------------------

@dataclass
class Check:
    ref: Ref
    status: str  # ok | missing | drifted | not-ready
    detail: str = ""
    fields: list[str] = field(default_factory=list)


@dataclass
class Verification:
    profile: str
    revision: str
    record: Ref
    installed_at: str
    meshctl_version: str
    checks: list[Check]

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "missing": 0, "drifted": 0, "not-ready": 0}
        for c in self.checks:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "profile": self.profile, "revision": self.revision or "default",
            "record": str(self.record), "installedAt": self.installed_at, "meshctlVersion": self.meshctl_version,
            "summary": {"objects": len(self.checks), **self.counts()},
            "objects": [{"apiVersion": c.ref.api_version, "kind": c.ref.kind, "namespace": c.ref.namespace,
                         "name": c.ref.name, "status": c.status, "detail": c.detail, "fields": c.fields}
                        for c in self.checks],
        }


def verify(k, revision: Optional[str] = None, namespace: str = "istio-system",
           render: Optional[Callable[[dict], list]] = None) -> Verification:
    """Compare the cluster with what the recorded install renders. Raises CheckFailed when
    nothing was installed (no record)."""
    record = read_record(k, revision, namespace)
    if record is None:
        which = f"revision {revision!r}" if revision else "the default revision"
        raise CheckFailed(f"no meshctl installation of {which} found: ConfigMap {namespace}/"
                          f"{record_name(revision)} is missing",
                          hint="install with 'meshctl install', or name the revision (--revision) or the "
                               "namespace (--istio-namespace) it was installed with")
    values = recorded_values(record)
    if render is None:
        from meshctl.install.render import render_objects as render
    bodies = order_objects(render(values))
    checks = []
    hpa_targets = {((b.get("spec") or {}).get("scaleTargetRef") or {}).get("name")
                   for b in bodies if b.get("kind") == "HorizontalPodAutoscaler"}
    for body in bodies:
        ref = Ref.of(body)
        live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
        if live is None:
            checks.append(Check(ref, "missing", "not found in the cluster"))
            continue
        want = wanted_fields(body)
        if ref.kind == "Deployment" and ref.name in hpa_targets:
            (want.get("spec") or {}).pop("replicas", None)  # the autoscaler owns it
        drift = diff_subset(want, live, ref.kind)
        if drift:
            first = drift[0]
            detail = f"{first}: installed {_short(_value_at(want, first))}, now {_short(_value_at(live, first))}"
            if len(drift) > 1:
                detail += f" (and {len(drift) - 1} more field{'s' if len(drift) > 2 else ''})"
            checks.append(Check(ref, "drifted", detail, drift))
            continue
        if ref.kind in WORKLOAD_KINDS:
            why = workload_status(live)
            if why:
                problem = pod_problem(k, live)
                checks.append(Check(ref, "not-ready", f"{why}; {problem}" if problem else why))
                continue
        checks.append(Check(ref, "ok"))
    data = record.get("data") or {}
    return Verification(profile=str(values.get("profile") or data.get("profile") or ""),
                        revision=str(values.get("revision") or ""), record=Ref.of(record),
                        installed_at=str(data.get("installedAt") or ""),
                        meshctl_version=str(data.get("meshctlVersion") or ""), checks=checks)


def _short(value: Any) -> str:
    import json

    text = "absent" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."

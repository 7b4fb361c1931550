"""Server-side apply of rendered objects: a safe order (CRDs, then namespaces, then the rest
as rendered), CRDs Established before their custom resources, each object reported created /
configured / unchanged; a failure stops the run and says what was applied and what was not.
`install` = permission review + apply + prune what a previous install made and no longer renders
+ the install record (last) + optionally wait for workloads."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from meshctl import durations
from meshctl.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, ClusterError, MeshctlError
from meshctl.install.drift import diff_subset, wanted_fields
from meshctl.install.objects import (
    FIELD_MANAGER,
    MANAGED_BY,
    MANAGED_BY_KEY,
    REV_LABEL,
    Progress,
    Ref,
    order_objects,
    owned,
    rev_value,
    significant,
)
from meshctl.install.readiness import wait_for_workloads
from meshctl.install.record import install_namespace, read_record, record_object, recorded_refs

# --- apply ---------------------------------------------------------------------------------------

@dataclass
class Outcome:
    ref: Ref
    action: str  # created | configured | unchanged | pruned (dry runs: "would ...")


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    pending: list[Ref] = field(default_factory=list)  # not applied because the run stopped
    failed: Optional[Ref] = None
    error: Optional[MeshctlError] = None
    not_ready: dict[Ref, str] = field(default_factory=dict)
    record: Optional[Outcome] = None
    waited: bool = False  # whether readiness was waited for
    profile: str = ""
    revision: str = ""
    dry_run: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def counts(self) -> dict[str, dict[str, int]]:
        """{kind: {action: n}} in the order kinds were first applied."""
        out: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            per = out.setdefault(o.ref.kind, {})
            per[o.action] = per.get(o.action, 0) + 1
        return out

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.action] = out.get(o.action, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "profile": self.profile, "revision": self.revision or "default", "dryRun": self.dry_run,
            "ok": self.ok,
            "objects": [{"apiVersion": o.ref.api_version, "kind": o.ref.kind, "namespace": o.ref.namespace,
                         "name": o.ref.name, "action": o.action} for o in self.outcomes],
            "counts": self.counts(),
            "notApplied": [str(r) for r in self.pending],
            "notReady": {str(r): why for r, why in self.not_ready.items()},
            "error": self.error.message if self.error else None,
        }


def _crd_kinds(crd: dict) -> tuple[str, str]:
    spec = crd.get("spec") or {}
    return spec.get("group", ""), (spec.get("names") or {}).get("kind", "")


def crd_established(crd: Optional[dict]) -> bool:
    for cond in ((crd or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Established" and cond.get("status") == "True":
            return True
    return False


def wait_for_crds(k, names: list[str], timeout: float, progress: Progress,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(names)
    said: list[str] = []
    while waiting:
        waiting = [n for n in waiting
                   if not crd_established(k.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", n))]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out after {durations.format(timeout)} waiting for CRD {waiting[0]} to be "
                               f"Established" + (f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""),
                               hint=f"check it with: kubectl get crd {waiting[0]} -o yaml")
        if waiting != said:  # one line per change, not one per poll
            progress.note(f"  waiting    for {len(waiting)} CRD(s) to be Established: {', '.join(waiting[:3])}"
                          + (f" (and {len(waiting) - 3} more)" if len(waiting) > 3 else ""))
            said = list(waiting)
        sleep(0.5)


def apply_objects(k, objects: Iterable[Any], *, dry_run: Optional[str] = None, progress: Optional[Progress] = None,
                  field_manager: str = FIELD_MANAGER, crd_timeout: float = 60.0,
                  known: Optional[dict] = None) -> ApplyReport:
    """Apply objects in order; stop at the first failure (the report says what was and was not
    applied). dry_run: None, "client" (read-only comparison) or "server" (the server's dry run).
    known: {Ref.key: live object or None} already read, so it is not read again."""
    progress = progress or Progress()
    bodies = order_objects(objects)
    report = ApplyReport()
    installed_crds: dict[tuple[str, str], str] = {}  # (group, kind) -> CRD name, applied in this run
    established: set[str] = set()
    progress.start(len(bodies), "applying")
    try:
        for i, body in enumerate(bodies):
            ref = Ref.of(body)
            try:
                wanted = installed_crds.get((ref.group, ref.kind))
                if wanted and wanted not in established and not dry_run:
                    pending_crds = [n for n in installed_crds.values() if n not in established]
                    wait_for_crds(k, pending_crds, crd_timeout, progress)
                    established.update(pending_crds)
                action = _apply_one(k, body, ref, dry_run, field_manager, crd_timeout, progress,
                                    live=(known or {}).get(ref.key, _UNREAD))
            except (MeshctlError, KeyboardInterrupt) as e:
                report.failed = ref
                report.error = interrupted_error() if isinstance(e, KeyboardInterrupt) else e
                report.pending = [Ref.of(b) for b in bodies[i:]]
                return report
            if ref.kind == "CustomResourceDefinition":
                installed_crds[_crd_kinds(body)] = ref.name
            report.outcomes.append(Outcome(ref, action))
            progress.object(ref, action)
    finally:
        progress.done()
    return report


_UNREAD: Any = object()


def _apply_one(k, body: dict, ref: Ref, dry_run: Optional[str], field_manager: str, timeout: float = 60.0,
               progress: Optional[Progress] = None, sleep: Callable[[float], None] = time.sleep,
               live: Any = _UNREAD) -> str:
    if live is _UNREAD:
        live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    if live is not None and (live.get("metadata") or {}).get("deletionTimestamp") and not dry_run:
        # Still being deleted (a namespace or CRD right after an uninstall --purge): applying now
        # would be lost with it, and a terminating namespace refuses new objects. Wait it out.
        if progress is not None:
            progress.note(f"  waiting    for {ref} to finish terminating")
        deadline = time.monotonic() + timeout
        while live is not None and (live.get("metadata") or {}).get("deletionTimestamp"):
            if time.monotonic() >= deadline:
                raise ClusterError(f"{ref} is still being deleted after {durations.format(timeout)}",
                                   hint="wait for the deletion to finish "
                                        f"(kubectl get {ref.kind.lower()} {ref.name}), then install again")
            sleep(0.5)
            live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    if dry_run == "client":
        if live is None:
            return "would create"
        return "would keep" if not diff_subset(wanted_fields(body), live, ref.kind) else "would configure"
    try:
        result = k.apply(body, field_manager=field_manager, force=True, dry_run=dry_run == "server")
    except ClusterError as e:
        # A server dry run of an object whose namespace or CRD this run would create first
        if dry_run and live is None and type(e).__name__ == "NotFound":
            return "would create"
        raise
    prefix = "would " if dry_run else ""
    if live is None:
        return f"{prefix}create" if dry_run else "created"
    if significant(result) == significant(live):
        return "would keep" if dry_run else "unchanged"
    return f"{prefix}configure" if dry_run else "configured"


def interrupted_error() -> MeshctlError:
    """Ctrl-C between two writes: the run stops like on a failure, saying what was done."""
    return MeshctlError("interrupted", hint="run the same command again to finish", exit_code=EXIT_INTERRUPTED)


# --- install -------------------------------------------------------------------------------------

_UNKNOWN_OWNER = "another tool or by hand"


def forbidden(k, wanted: Iterable[tuple[str, Ref]]) -> list[str]:
    """The (verb, Ref) pairs the user may not do, asked once per verb, kind and namespace with
    SelfSubjectAccessReview, as `kubectl auth can-i` arguments ("delete clusterroles.rbac...").
    Kinds the server cannot name and failed reviews are left to the real request."""
    out: list[str] = []
    asked: set[tuple] = set()
    for verb, ref in wanted:
        try:
            rt = k.resource_type(ref.api_version, ref.kind)
        except MeshctlError:
            continue
        ns = ref.namespace if rt.namespaced else None
        key = (verb, rt.group, rt.plural, ns)
        if key in asked:
            continue
        asked.add(key)
        try:
            allowed = k.can_i(verb, rt.plural, rt.group, ns)
        except MeshctlError:
            continue
        if not allowed:
            resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            out.append(f"{verb} {resource}" + (f" -n {ns}" if ns else ""))
    return out


def permission_error(denied: list[str], what: str) -> ClusterError:
    shown = ", ".join(denied[:4]) + (f" (and {len(denied) - 4} more)" if len(denied) > 4 else "")
    return ClusterError(f"not allowed to {shown}; {what}",
                        hint=f"ask a cluster administrator for these permissions (check with: kubectl auth can-i "
                             f"{denied[0]})")


def _owner_of(obj: dict) -> str:
    """Who installed an object meshctl did not, as far as its labels tell."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if any(key.startswith(("operator.istio.io/", "install.operator.istio.io/")) for key in labels):
        return "istioctl or the Istio operator"
    if labels.get(MANAGED_BY_KEY):
        return labels[MANAGED_BY_KEY]
    return _UNKNOWN_OWNER


def foreign_objects(live: dict, bodies: list[dict]) -> list[tuple[Ref, str]]:
    """Rendered objects that exist in the cluster without meshctl's label, with who made them.
    Namespaces and CRDs are left out: they are commonly made beforehand and applying over them
    is harmless."""
    out = []
    for body in bodies:
        ref = Ref.of(body)
        obj = live.get(ref.key)
        if obj is None or ref.kind in ("Namespace", "CustomResourceDefinition"):
            continue
        if ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_KEY) != MANAGED_BY:
            out.append((ref, _owner_of(obj)))
    return out


def install(k, objects: Iterable[Any], values: dict, *, dry_run: Optional[str] = None, wait: bool = True,
            timeout: float = 300.0, progress: Optional[Progress] = None,
            sleep: Callable[[float], None] = time.sleep, take_over: bool = False) -> ApplyReport:
    """Apply, prune what a previous install of this revision made and no longer renders, record the
    install, and (with wait) wait for Deployments/DaemonSets/StatefulSets to be ready.

    Refuses (before writing anything) to apply over objects another tool installed, unless
    take_over: meshctl would label them as its own and a later uninstall would delete them."""
    progress = progress or Progress()
    revision = values.get("revision") or ""
    bodies = [owned(b, revision) for b in order_objects(objects)]
    namespace = install_namespace(values)
    previous = read_record(k, revision, namespace)
    live = {}
    for body in bodies:
        ref = Ref.of(body)
        live[ref.key] = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    foreign = foreign_objects(live, bodies)
    if foreign and not take_over:
        refs = [r for r, _ in foreign]
        owner = next((o for _, o in foreign if o != _UNKNOWN_OWNER), _UNKNOWN_OWNER)
        shown = ", ".join(str(r) for r in refs[:5]) + (f" (and {len(refs) - 5} more)" if len(refs) > 5 else "")
        raise MeshctlError(
            f"{len(refs)} object(s) this install would change exist already and were not installed by meshctl "
            f"(made by {owner}): {shown}; nothing was changed",
            hint="install beside them with --revision NAME, remove the other installation first, or pass "
                 "--take-over to make them meshctl's (a later 'meshctl uninstall' then deletes them)",
            exit_code=EXIT_FINDINGS)
    # ask before writing, so that a missing permission does not leave the install half applied
    wanted = [(verb, Ref.of(b)) for b in bodies
              for verb in (("patch",) if live.get(Ref.of(b).key) is not None else ("create", "patch"))]
    denied = forbidden(k, wanted)
    if denied:
        raise permission_error(denied, "nothing was changed")
    report = apply_objects(k, bodies, dry_run=dry_run, progress=progress, crd_timeout=min(timeout, 120.0),
                           known=live)
    report.profile, report.revision, report.dry_run = str(values.get("profile") or ""), revision, dry_run
    if not report.ok:
        return report
    refs = [Ref.of(b) for b in bodies]
    # prune: objects the previous install of this revision made that are not rendered any more
    current = {r.key for r in refs}
    for old in reversed(recorded_refs(previous)):
        if old.key in current:
            continue
        try:
            live = k.get(old.api_version, old.kind, old.name, old.namespace)
            labels = (live or {}).get("metadata", {}).get("labels") or {}
            if live is None or labels.get(MANAGED_BY_KEY) != MANAGED_BY:
                continue
            if labels.get(REV_LABEL, rev_value(revision)) != rev_value(revision):
                # another revision's install took it over since (the ingress gateway): it is theirs now
                progress.note(f"  kept       {old} (it belongs to revision {labels[REV_LABEL]} now)")
                continue
            if dry_run:
                report.outcomes.append(Outcome(old, "would prune"))
                progress.object(old, "would prune")
                continue
            k.delete(old.api_version, old.kind, old.name, old.namespace)
        except (MeshctlError, KeyboardInterrupt) as e:
            report.failed, report.error = old, interrupted_error() if isinstance(e, KeyboardInterrupt) else e
            return report
        report.outcomes.append(Outcome(old, "pruned"))
        progress.object(old, "pruned")
    record = record_object(values, refs, previous)
    rref = Ref.of(record)
    if dry_run:
        report.record = Outcome(rref, "would create" if previous is None else "would record")
        report.outcomes.append(report.record)
        return report
    if previous is not None and previous.get("data") == record["data"]:
        report.record = Outcome(rref, "unchanged")
    else:
        try:
            k.apply(record, field_manager=FIELD_MANAGER, force=True)
        except MeshctlError as e:
            report.failed, report.error, report.pending = rref, e, [rref]
            return report
        report.record = Outcome(rref, "created" if previous is None else "configured")
    report.outcomes.append(report.record)
    progress.object(rref, report.record.action)
    if wait:
        report.waited = True
        try:
            report.not_ready = wait_for_workloads(k, bodies, timeout, progress, sleep=sleep)
        except KeyboardInterrupt:
            report.error = MeshctlError("interrupted while waiting for the workloads to be ready", exit_code=EXIT_INTERRUPTED,
                                        hint="everything is applied; check with: meshctl verify-install")
            return report
        if report.not_ready:
            first, why = next(iter(report.not_ready.items()))
            more = f" and {len(report.not_ready) - 1} more" if len(report.not_ready) > 1 else ""
            report.error = ClusterError(
                f"timed out after {durations.format(timeout)} waiting for {first} ({why}){more}",
                hint=f"everything is applied; see why with: kubectl -n {first.namespace or namespace} get pods, "
                     "then check with: meshctl verify-install")
    return report

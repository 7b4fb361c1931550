"""The cluster half of install: apply rendered objects, wait for them, verify them, uninstall them.

- `apply_objects` applies objects with server-side apply (field manager `meshctl`) in a safe order
  (CRDs, then namespaces, then the rest as rendered), waits for CRDs to be Established before any
  custom resource of theirs, and reports each object as created / configured / unchanged. A
  failure stops the run and the report says what was applied and what was not.
- `install` = apply + prune objects a previous install made that are no longer rendered + write
  the install record (ConfigMap `meshctl-install[-<rev>]`) + optionally wait for workloads.
  The record is the last write, so it exists only once every object has been applied.
- `verify` renders the recorded values again and compares with the cluster: missing objects,
  drifted fields (only the fields meshctl sets; server defaults are ignored), workloads not ready.
- `uninstall` deletes what meshctl owns (label `app.kubernetes.io/managed-by=meshctl` and the
  revision) in reverse order; shared objects (CRDs, the namespace, ...) only with purge.

Objects are plain dicts. `k` is a meshctl.kube.Kube.
"""
from __future__ import annotations

import copy
import datetime as _dt
import re
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Optional

from meshctl import durations
from meshctl.errors import CheckFailed, ClusterError, InputError, MeshctlError

FIELD_MANAGER = "meshctl"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = "meshctl"
REV_LABEL = "istio.io/rev"
SHARED_LABEL = "meshctl.io/shared"
RECORD_COMPONENT = "install-record"
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")

# Every kind an install may create, in install order (uninstall walks it backwards).
INSTALL_KINDS: tuple[tuple[str, str], ...] = (
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("telemetry.istio.io/v1", "Telemetry"),
    ("networking.istio.io/v1", "Gateway"),
)
_KIND_RANK = {kind: i for i, (_, kind) in enumerate(INSTALL_KINDS)}


# --- identities ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    name: str
    namespace: Optional[str] = None

    @classmethod
    def of(cls, obj: dict) -> "Ref":
        meta = obj.get("metadata") or {}
        return cls(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), str(meta.get("name", "")),
                   meta.get("namespace") or None)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.group, self.kind, self.namespace or "", self.name)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def line(self) -> str:
        """`apiVersion kind namespace name`, one object per line in the install record."""
        return f"{self.api_version} {self.kind} {self.namespace or '-'} {self.name}"

    @classmethod
    def parse(cls, line: str) -> Optional["Ref"]:
        parts = line.split()
        if len(parts) != 4:
            return None
        return cls(parts[0], parts[1], parts[3], None if parts[2] == "-" else parts[2])


def _as_dict(obj: Any) -> dict:
    """Accept meshctl.resources.Resource or a plain dict."""
    body = getattr(obj, "body", obj)
    if not isinstance(body, dict):
        raise InputError(f"cannot apply {obj!r}: not a Kubernetes object")
    return body


def record_name(revision: Optional[str]) -> str:
    return f"meshctl-install-{revision}" if revision and revision != "default" else "meshctl-install"


def rev_value(revision: Optional[str]) -> str:
    return revision if revision else "default"


# --- progress ------------------------------------------------------------------------------------

class Progress:
    """Receives events; the default does nothing. See ConsoleProgress."""

    def start(self, total: int, what: str) -> None: ...
    def object(self, ref: Ref, action: str) -> None: ...
    def note(self, text: str) -> None: ...
    def waiting(self, pending: dict[Ref, str]) -> None: ...
    def done(self) -> None: ...


class ConsoleProgress(Progress):
    """Progress on stderr: a live bar and spinner on a terminal, plain lines otherwise."""

    def __init__(self, stream=None, verbose: bool = True):
        from meshctl import output

        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.console = output.console(stderr=True) if self.tty else None
        self.verbose = verbose
        self._live = None
        self._task = None
        self._last_wait: dict[Ref, str] = {}

    def _plain(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, total: int, what: str) -> None:
        self.done()
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn, \
                TextColumn

            self._live = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), console=self.console, transient=True)
            self._live.start()
            self._task = self._live.add_task(what, total=total)

    def object(self, ref: Ref, action: str) -> None:
        if self._live is not None:
            self._live.update(self._task, advance=1, description=f"{action} {ref}")
            if self.verbose:
                self._live.console.print(f"  {action:<10} {ref}", highlight=False)
        elif self.verbose:
            self._plain(f"  {action:<10} {ref}")

    def note(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, highlight=False)
        else:
            self._plain(text)

    def waiting(self, pending: dict[Ref, str]) -> None:
        if self._live is not None:
            first = next(iter(pending.items()), None)
            desc = f"waiting for {len(pending)} workload(s)" + (f": {first[0]} {first[1]}" if first else "")
            self._live.update(self._task, description=desc,
                              completed=(self._live.tasks[0].total or 0) - len(pending))
            return
        for ref, why in pending.items():
            if self._last_wait.get(ref) != why:
                self._plain(f"  waiting    {ref}: {why}")
        self._last_wait = dict(pending)

    def done(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
            self._task = None


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
            "ok": self.ok,
            "objects": [{"apiVersion": o.ref.api_version, "kind": o.ref.kind, "namespace": o.ref.namespace,
                         "name": o.ref.name, "action": o.action} for o in self.outcomes],
            "counts": self.counts(),
            "notApplied": [str(r) for r in self.pending],
            "notReady": {str(r): why for r, why in self.not_ready.items()},
            "error": self.error.message if self.error else None,
        }


def order_objects(objects: Iterable[Any]) -> list[dict]:
    """CRDs first, then namespaces, then everything else in the given order (stable)."""
    bodies = [_as_dict(o) for o in objects]

    def phase(body: dict) -> int:
        kind = body.get("kind")
        return 0 if kind == "CustomResourceDefinition" else 1 if kind == "Namespace" else 2

    return sorted(bodies, key=phase)


def owned(body: dict, revision: str = "") -> dict:
    """The object labelled as meshctl's (a copy when labels had to be added): managed-by, and
    the revision unless the renderer set one (shared objects carry `default`; namespaces none,
    since istio.io/rev on a namespace turns on injection)."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    need_rev = REV_LABEL not in labels and body.get("kind") != "Namespace"
    if labels.get(MANAGED_BY_KEY) == MANAGED_BY and not need_rev:
        return body
    body = copy.deepcopy(body)
    labels = body.setdefault("metadata", {}).setdefault("labels", {})
    labels[MANAGED_BY_KEY] = MANAGED_BY
    if need_rev:
        labels[REV_LABEL] = rev_value(revision)
    return body


def _significant(obj: Optional[dict]) -> Optional[dict]:
    """An object without what changes on its own (status, resourceVersion, managedFields)."""
    if obj is None:
        return None
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for k in ("resourceVersion", "managedFields", "generation"):
        meta.pop(k, None)
    out["metadata"] = meta
    return out


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
                report.error = _interrupted() if isinstance(e, KeyboardInterrupt) else e
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
        return "would keep" if not diff_subset(_wanted_fields(body), live, ref.kind) else "would configure"
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
    if _significant(result) == _significant(live):
        return "would keep" if dry_run else "unchanged"
    return f"{prefix}configure" if dry_run else "configured"


def _interrupted() -> MeshctlError:
    """Ctrl-C between two writes: the run stops like on a failure, saying what was done."""
    return MeshctlError("interrupted", hint="run the same command again to finish", exit_code=130)


# --- the install record --------------------------------------------------------------------------

def install_namespace(values: dict) -> str:
    return (values.get("namespace") or (values.get("global") or {}).get("istioNamespace") or "istio-system")


def record_object(values: dict, refs: list[Ref], previous: Optional[dict] = None) -> dict:
    """The ConfigMap recording an install: profile, merged values, meshctl version, time, objects."""
    import yaml

    from meshctl import __version__

    revision = values.get("revision") or ""
    data = {
        "profile": str(values.get("profile") or ""),
        "revision": revision,
        "values.yaml": yaml.safe_dump(values, sort_keys=True, default_flow_style=False),
        "meshctlVersion": __version__,
        "objects": "".join(r.line() + "\n" for r in refs),
    }
    old = (previous or {}).get("data") or {}
    same = all(old.get(k) == v for k, v in data.items())
    data["installedAt"] = old.get("installedAt") if same and old.get("installedAt") else \
        _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": record_name(revision), "namespace": install_namespace(values),
            "labels": {MANAGED_BY_KEY: MANAGED_BY, "app.kubernetes.io/component": RECORD_COMPONENT,
                       REV_LABEL: rev_value(revision)},
        },
        "data": data,
    }


def read_record(k, revision: Optional[str], namespace: str = "istio-system") -> Optional[dict]:
    return k.get("v1", "ConfigMap", record_name(revision), namespace)


def recorded_values(record: dict) -> dict:
    import yaml

    from meshctl.loader import safe_load

    text = (record.get("data") or {}).get("values.yaml") or ""
    try:
        values = safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"the install record {Ref.of(record)} holds unreadable values: {e}",
                         hint="re-run meshctl install to rewrite it") from None
    if not isinstance(values, dict):
        raise InputError(f"the install record {Ref.of(record)} holds no values",
                         hint="re-run meshctl install to rewrite it")
    return values


def recorded_refs(record: Optional[dict]) -> list[Ref]:
    text = ((record or {}).get("data") or {}).get("objects") or ""
    return [r for r in (Ref.parse(line) for line in text.splitlines()) if r is not None]


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


def _permission_error(denied: list[str], what: str) -> ClusterError:
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
            exit_code=1)
    # ask before writing, so that a missing permission does not leave the install half applied
    wanted = [(verb, Ref.of(b)) for b in bodies
              for verb in (("patch",) if live.get(Ref.of(b).key) is not None else ("create", "patch"))]
    denied = forbidden(k, wanted)
    if denied:
        raise _permission_error(denied, "nothing was changed")
    report = apply_objects(k, bodies, dry_run=dry_run, progress=progress, crd_timeout=min(timeout, 120.0),
                           known=live)
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
            report.failed, report.error = old, _interrupted() if isinstance(e, KeyboardInterrupt) else e
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
            report.error = MeshctlError("interrupted while waiting for the workloads to be ready", exit_code=130,
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


# --- readiness -----------------------------------------------------------------------------------

def workload_status(obj: dict) -> Optional[str]:
    """None when a Deployment/DaemonSet/StatefulSet is ready, else why not (e.g. "0/1 ready")."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or int(observed) < int(generation)):
        return "rollout not yet observed by its controller"
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        available = int(status.get("numberAvailable") or 0)
        if updated < desired:
            return f"{updated}/{desired} pods updated"
        if min(ready, available) < desired:
            return f"{min(ready, available)}/{desired} pods ready"
        return None
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    ready = int(status.get("readyReplicas") or 0)
    if kind == "Deployment":
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        if updated < want:
            return f"{updated}/{want} replicas updated"
        if total > updated:
            return f"{total - updated} old replica(s) pending termination"
        if min(ready, available) < want:
            return f"{min(ready, available)}/{want} ready"
        return None
    if kind == "StatefulSet":
        if ready < want:
            return f"{ready}/{want} ready"
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return "rolling update in progress"
        return None
    return None


_STARTING = {"ContainerCreating", "PodInitializing"}


def pod_problem(k, workload: dict) -> Optional[str]:
    """Why a workload's pods are not ready, as kubectl would show it: the first container waiting
    for a reason other than starting (ImagePullBackOff, CrashLoopBackOff...), a container that
    exited, or a pod that cannot be scheduled. None when nothing stands out."""
    selector = (((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    if not selector:
        return None
    namespace = (workload.get("metadata") or {}).get("namespace")
    try:
        pods = k.list("v1", "Pod", namespace, label_selector=",".join(f"{a}={b}" for a, b in selector.items()))
    except MeshctlError:
        return None
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in _STARTING:
                message = " ".join(str(waiting.get("message") or "").split())
                return f"pod {name}: {waiting['reason']}" + (f" ({message[:100]})" if message else "")
            last = (cs.get("lastState") or {}).get("terminated") or state.get("terminated") or {}
            if last.get("exitCode") not in (None, 0):
                return f"pod {name}: container {cs.get('name')} exited with code {last['exitCode']}" + \
                    (f" ({last['reason']})" if last.get("reason") else "")
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                message = " ".join(str(cond.get("message") or cond.get("reason") or "").split())
                return f"pod {name}: not scheduled ({message[:100]})"
    return None


def wait_for_workloads(k, objects: Iterable[dict], timeout: float, progress: Progress,
                       sleep: Callable[[float], None] = time.sleep, interval: float = 1.0) -> dict[Ref, str]:
    """Poll until every workload is ready or the timeout passes; return the ones still not ready."""
    refs = [Ref.of(o) for o in objects if o.get("kind") in WORKLOAD_KINDS]
    if not refs:
        return {}
    deadline = time.monotonic() + timeout
    progress.start(len(refs), "waiting for workloads")
    try:
        while True:
            pending: dict[Ref, str] = {}
            for ref in refs:
                live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                why = "missing" if live is None else workload_status(live)
                if why:
                    pending[ref] = why
            progress.waiting(pending)
            if not pending:
                return pending
            if time.monotonic() >= deadline:
                for ref in pending:  # say why, from the pods, once it is over
                    live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                    problem = pod_problem(k, live) if live else None
                    if problem:
                        pending[ref] = f"{pending[ref]}; {problem}"
                return pending
            sleep(min(interval, max(deadline - time.monotonic(), 0.05)))
    finally:
        progress.done()


# --- drift ---------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {None: 1, "m": Decimal("0.001"), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15,
           "E": 10 ** 18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def _quantity(value: Any) -> Optional[Decimal]:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    m = _QUANTITY.match(str(value))
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2)
    if suffix and suffix[0] in "eE":
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * Decimal(_SUFFIX[suffix])


def _same_scalar(want: Any, live: Any) -> bool:
    if isinstance(want, bool) or isinstance(live, bool):
        return type(want) is type(live) and want == live
    if want == live:
        return True
    if isinstance(want, (str, int, float)) and isinstance(live, (str, int, float)) \
            and (isinstance(want, str) or isinstance(live, str)):
        a, b = _quantity(want), _quantity(live)  # the server writes 2000m as 2 and 1024Mi as 1Gi
        return a is not None and a == b
    return False


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == [] or value == "" or value is False or value == 0


# Fields the control plane itself rewrites after install: never drift.
_IGNORED = {
    "ValidatingWebhookConfiguration": (re.compile(r"^webhooks\[\d+\]\.failurePolicy$"),
                                       re.compile(r"^webhooks\[\d+\]\.clientConfig\.caBundle$")),
    "MutatingWebhookConfiguration": (re.compile(r"^webhooks\[\d+\]\.clientConfig\.caBundle$"),),
}


def diff_subset(want: Any, live: Any, kind: str = "", path: str = "") -> list[str]:
    """Paths of the fields in `want` whose live value differs. Fields only the server set are
    ignored (this is a subset comparison); empty wanted values match absent live ones."""
    ignored = _IGNORED.get(kind, ())
    if path and any(p.match(path) for p in ignored):
        return []
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return [] if _empty(want) and _empty(live) else [path or "."]
        out: list[str] = []
        for key, value in want.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in live:
                if not _empty(value) and not (ignored and any(p.match(sub) for p in ignored)):
                    out.append(sub)
                continue
            out.extend(diff_subset(value, live[key], kind, sub))
        return out
    if isinstance(want, list):
        if not isinstance(live, list) or len(want) != len(live):
            return [] if _empty(want) and _empty(live) else [path]
        out = []
        for i, (w, v) in enumerate(zip(want, live)):
            out.extend(diff_subset(w, v, kind, f"{path}[{i}]"))
        return out
    if live is None and _empty(want):
        return []
    return [] if _same_scalar(want, live) else [path]


def _wanted_fields(body: dict) -> dict:
    """What meshctl sets on an object: everything but status and identity bookkeeping."""
    want = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("status", "apiVersion", "kind")}
    meta = want.get("metadata") or {}
    want["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    return want


def _value_at(obj: Any, path: str) -> Any:
    """The value at a diff_subset path. Keys may hold dots (label keys such as istio.io/rev), so
    at each mapping the longest key that the rest of the path starts with wins."""
    node, rest = obj, path
    while rest:
        if rest.startswith("["):
            m = re.match(r"\[(\d+)\]", rest)
            if not m or not isinstance(node, list) or int(m.group(1)) >= len(node):
                return None
            node, rest = node[int(m.group(1))], rest[m.end():]
        else:
            rest = rest[1:] if rest.startswith(".") else rest
            if not isinstance(node, dict):
                return None
            keys = [k for k in node if isinstance(k, str) and rest.startswith(k)
                    and (len(rest) == len(k) or rest[len(k)] in ".[")]
            if not keys:
                return None
            key = max(keys, key=len)
            node, rest = node[key], rest[len(key):]
        if node is None:
            return None
    return node


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
        want = _wanted_fields(body)
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


# --- uninstall -----------------------------------------------------------------------------------

def owned_objects(k, revision: Optional[str] = None, purge: bool = False) -> list[Ref]:
    """meshctl's objects of a revision (or, with purge, of every revision plus the shared ones),
    in uninstall order (the reverse of install order)."""
    selector = f"{MANAGED_BY_KEY}={MANAGED_BY}"
    if not purge:
        selector += f",{REV_LABEL}={rev_value(revision)},{SHARED_LABEL}!=true"
    kinds = list(INSTALL_KINDS)
    found: dict[tuple, Ref] = {}
    for api_version, kind in kinds:
        for obj in k.list(api_version, kind, namespace=None, label_selector=selector):
            ref = Ref.of({**obj, "apiVersion": api_version, "kind": kind})
            found[ref.key] = ref
    if purge:  # records name the objects an install made, including kinds not listed above
        for record in k.list("v1", "ConfigMap", label_selector=f"{MANAGED_BY_KEY}={MANAGED_BY},"
                                                              f"app.kubernetes.io/component={RECORD_COMPONENT}"):
            for ref in recorded_refs(record):
                if ref.key not in found and ref.kind not in _KIND_RANK:
                    live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                    if live and ((live.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_KEY) == MANAGED_BY:
                        found[ref.key] = ref
    refs = list(found.values())
    # records first (an interrupted uninstall must not look like a complete install), then the
    # reverse of install order
    return sorted(refs, key=lambda r: (0 if r.kind == "ConfigMap" and r.name.startswith("meshctl-install") else 1,
                                       -_KIND_RANK.get(r.kind, len(_KIND_RANK)), r.namespace or "", r.name))


def claimed_by_other_revisions(k, refs: list[Ref], revision: Optional[str] = None) -> dict[Ref, str]:
    """Of `refs` (a revision's objects), those the install record of another revision also lists,
    with that revision: objects both installs render under one name (the ingress gateway), which
    the later install took over. Deleting them would take them from the other install too."""
    mine = rev_value(revision)
    wanted = {r.key: r for r in refs}
    out: dict[Ref, str] = {}
    for record in k.list("v1", "ConfigMap", namespace=None,
                         label_selector=f"{MANAGED_BY_KEY}={MANAGED_BY},app.kubernetes.io/component={RECORD_COMPONENT}"):
        other = ((record.get("metadata") or {}).get("labels") or {}).get(REV_LABEL) or \
            rev_value((record.get("data") or {}).get("revision"))
        if other == mine:
            continue
        for ref in recorded_refs(record):
            if ref.key in wanted and wanted[ref.key] not in out:
                out[wanted[ref.key]] = other
    return out


@dataclass
class UninstallReport:
    deleted: list[Ref] = field(default_factory=list)
    gone: list[Ref] = field(default_factory=list)
    pending: list[Ref] = field(default_factory=list)
    error: Optional[MeshctlError] = None


def uninstall(k, refs: list[Ref], progress: Optional[Progress] = None, dry_run: bool = False) -> UninstallReport:
    progress = progress or Progress()
    report = UninstallReport()
    # ask before deleting, so that a missing permission does not leave the uninstall half done
    denied = forbidden(k, [("delete", r) for r in refs])
    if denied:
        raise _permission_error(denied, "nothing was deleted")
    progress.start(len(refs), "deleting")
    try:
        for i, ref in enumerate(refs):
            try:
                existed = k.delete(ref.api_version, ref.kind, ref.name, ref.namespace, dry_run=dry_run)
            except (MeshctlError, KeyboardInterrupt) as e:
                report.error = _interrupted() if isinstance(e, KeyboardInterrupt) else e
                report.pending = refs[i:]
                return report
            (report.deleted if existed else report.gone).append(ref)
            progress.object(ref, ("would delete" if dry_run else "deleted") if existed else "gone")
    finally:
        progress.done()
    return report

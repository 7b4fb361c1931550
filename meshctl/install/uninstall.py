"""uninstall: delete what meshctl owns (label app.kubernetes.io/managed-by=meshctl and the
revision) in reverse install order; shared objects (CRDs, the namespace) only with purge."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from meshctl.errors import MeshctlError
from meshctl.install.apply import forbidden, interrupted_error, permission_error
from meshctl.install.objects import (
    INSTALL_KINDS,
    KIND_RANK,
    MANAGED_BY,
    MANAGED_BY_KEY,
    RECORD_COMPONENT,
    REV_LABEL,
    SHARED_LABEL,
    Progress,
    Ref,
    rev_value,
)
from meshctl.install.record import recorded_refs

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
                if ref.key not in found and ref.kind not in KIND_RANK:
                    live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                    if live and ((live.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_KEY) == MANAGED_BY:
                        found[ref.key] = ref
    refs = list(found.values())
    # records first (an interrupted uninstall must not look like a complete install), then the
    # reverse of install order
    return sorted(refs, key=lambda r: (0 if r.kind == "ConfigMap" and r.name.startswith("meshctl-install") else 1,
                                       -KIND_RANK.get(r.kind, len(KIND_RANK)), r.namespace or "", r.name))


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
class UninstallPlan:
    """What an uninstall deletes (in order), and what it keeps because another revision took it over."""

    refs: list[Ref]
    kept: dict[Ref, str]
    revision: Optional[str] = None
    purge: bool = False
    target: str = ""

    @property
    def which(self) -> str:
        return "every revision and the shared objects" if self.purge else f"revision {self.revision or 'default'}"

    @property
    def crds(self) -> int:
        return sum(1 for r in self.refs if r.kind == "CustomResourceDefinition")


def plan(k, revision: Optional[str] = None, purge: bool = False, target: str = "") -> UninstallPlan:
    """The objects to delete: meshctl's of the revision (or all, with purge), less those another
    revision's install took over since."""
    refs = owned_objects(k, revision=revision, purge=purge)
    kept = claimed_by_other_revisions(k, refs, revision) if not purge and refs else {}
    return UninstallPlan([r for r in refs if r not in kept], kept, revision, purge, target)


@dataclass
class UninstallReport:
    plan: Optional[UninstallPlan] = None
    dry_run: bool = False
    deleted: list[Ref] = field(default_factory=list)
    gone: list[Ref] = field(default_factory=list)
    pending: list[Ref] = field(default_factory=list)
    error: Optional[MeshctlError] = None

    def to_dict(self) -> dict:
        p = self.plan
        return {"revision": (p.revision or "default") if p and not p.purge else None, "purge": bool(p and p.purge),
                "dryRun": self.dry_run, "deleted": [str(r) for r in self.deleted], "gone": [str(r) for r in self.gone],
                "notDeleted": [str(r) for r in self.pending],
                "kept": {str(r): rev for r, rev in (p.kept.items() if p else ())},
                "error": self.error.message if self.error else None}


def uninstall(k, refs: "list[Ref] | UninstallPlan", progress: Optional[Progress] = None,
              dry_run: bool = False) -> UninstallReport:
    progress = progress or Progress()
    the_plan = refs if isinstance(refs, UninstallPlan) else None
    refs = the_plan.refs if the_plan is not None else refs
    report = UninstallReport(plan=the_plan, dry_run=dry_run)
    # ask before deleting, so that a missing permission does not leave the uninstall half done
    denied = forbidden(k, [("delete", r) for r in refs])
    if denied:
        raise permission_error(denied, "nothing was deleted")
    progress.start(len(refs), "deleting")
    try:
        for i, ref in enumerate(refs):
            try:
                existed = k.delete(ref.api_version, ref.kind, ref.name, ref.namespace, dry_run=dry_run)
            except (MeshctlError, KeyboardInterrupt) as e:
                report.error = interrupted_error() if isinstance(e, KeyboardInterrupt) else e
                report.pending = refs[i:]
                return report
            (report.deleted if existed else report.gone).append(ref)
            progress.object(ref, ("would delete" if dry_run else "deleted") if existed else "gone")
    finally:
        progress.done()
    return report

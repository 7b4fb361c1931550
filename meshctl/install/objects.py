"""What an install is made of: the kinds it may create and their order, object identities
(Ref), the labels meshctl puts on what it owns, and the progress events of a long operation."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from meshctl.errors import InputError
from meshctl.kinds import REVISION_LABEL

FIELD_MANAGER = "meshctl"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = "meshctl"
REV_LABEL = REVISION_LABEL
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
KIND_RANK = {kind: i for i, (_, kind) in enumerate(INSTALL_KINDS)}


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


def significant(obj: Optional[dict]) -> Optional[dict]:
    """An object without what changes on its own (status, resourceVersion, managedFields)."""
    if obj is None:
        return None
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for k in ("resourceVersion", "managedFields", "generation"):
        meta.pop(k, None)
    out["metadata"] = meta
    return out


# --- progress ------------------------------------------------------------------------------------

class Progress:
    """Receives events; the default does nothing. See ConsoleProgress."""

    def start(self, total: int, what: str) -> None: ...
    def object(self, ref: Ref, action: str) -> None: ...
    def note(self, text: str) -> None: ...
    def waiting(self, pending: dict[Ref, str]) -> None: ...
    def done(self) -> None: ...

"""Workload lookups shared by analyzers: pods and pod templates by namespace and label, label
selectors, mesh membership (sidecar or ambient).

Every index is built once per run through `ctx.index`, so selecting the pods of a policy costs
the size of the smallest label bucket, not a scan of every pod.
"""
from __future__ import annotations

from typing import Any

from meshctl.analysis.framework import Context, as_dict, dig
from meshctl.resources import Resource
from meshctl.kinds import (AMBIENT_REDIRECTION, CONTROLLER_KINDS, DATAPLANE_MODE_LABEL, INJECTION_LABEL,  # noqa: F401
                           POD_TEMPLATE_PATHS, PROXY_CONTAINER, REVISION_LABEL, SIDECAR_INJECT)
from meshctl.selectors import LabelIndex, label_map

INJECT_LABEL = SIDECAR_INJECT
REV_LABEL = REVISION_LABEL
# Kinds that run pods (Pods aside), and where their pod template lives.
WORKLOAD_KINDS: dict[str, tuple[str, ...]] = {k: POD_TEMPLATE_PATHS[k] for k in CONTROLLER_KINDS}


def pods(ctx: Context) -> LabelIndex:
    """Every Pod, by namespace and label."""
    return ctx.index("workloads.pods", lambda c: LabelIndex(c.of_kind("Pod")))


def template(r: Resource) -> dict:
    """The pod template of a workload (the Pod itself for a Pod)."""
    if r.kind == "Pod":
        return r.body
    path = WORKLOAD_KINDS.get(r.kind)
    return as_dict(dig(r.body, *path)) if path else {}


def template_labels(r: Resource) -> dict[str, str]:
    return label_map(dig(template(r), "metadata", "labels"))


def template_annotations(r: Resource) -> dict[str, str]:
    return label_map(dig(template(r), "metadata", "annotations"))


def workloads(ctx: Context) -> LabelIndex:
    """Pods and every pod-running workload, by namespace and by the labels of the pods they run."""
    def build(c: Context) -> LabelIndex:
        return LabelIndex((r for kind in ("Pod", *WORKLOAD_KINDS) for r in c.of_kind(kind)), labels_of=template_labels)

    return ctx.index("workloads.all", build)


def namespace_object(ctx: Context, name: str | None) -> Resource | None:
    return ctx.resources.get("Namespace", None, name or "")


def pod_in_ambient(pod: Resource | None) -> bool:
    return pod is not None and pod.annotations.get(AMBIENT_REDIRECTION) == "enabled"


def namespace_in_ambient(ns: Resource | None) -> bool:
    if ns is None:
        return False
    labels = ns.labels
    if labels.get(INJECTION_LABEL) == "enabled":
        return False
    if labels.get(REV_LABEL):
        return False
    return labels.get(DATAPLANE_MODE_LABEL) == "ambient"


def _has_proxy(containers: Any) -> bool:
    for c in containers if isinstance(containers, list) else []:
        if isinstance(c, dict) and c.get("name") == PROXY_CONTAINER:
            return bool(c.get("image"))
    return False


def in_mesh(ctx: Context, r: Resource) -> bool:
    """Whether a Pod (or a workload's pod template) gets a sidecar: it has one, or its inject
    label/annotation says so, or its namespace is labelled `istio-injection=enabled`."""
    tmpl = template(r)
    spec = as_dict(tmpl.get("spec"))
    containers = list(spec.get("containers") or []) if isinstance(spec.get("containers"), list) else []
    if r.kind == "Pod" and isinstance(spec.get("initContainers"), list):
        containers += spec["initContainers"]
    if _has_proxy(containers):
        return True
    labels = label_map(dig(tmpl, "metadata", "labels"))
    if INJECT_LABEL in labels:
        return labels[INJECT_LABEL] == "true"
    annotations = label_map(dig(tmpl, "metadata", "annotations"))
    if INJECT_LABEL in annotations:
        return annotations[INJECT_LABEL] == "true"
    ns = namespace_object(ctx, r.namespace)
    if ns is not None:
        return ns.labels.get(INJECTION_LABEL) == "enabled"
    return False

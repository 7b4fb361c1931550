"""Workload lookups shared by analyzers: pods and pod templates by namespace and label, label
selectors, mesh membership (sidecar or ambient).

Every index is built once per run through `ctx.index`, so selecting the pods of a policy costs
the size of the smallest label bucket, not a scan of every pod.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from meshctl.analysis.framework import Context, as_dict, dig
from meshctl.resources import Resource, yaml_text
from meshctl.kinds import (AMBIENT_REDIRECTION, CONTROLLER_KINDS, DATAPLANE_MODE_LABEL, INJECTION_LABEL,  # noqa: F401
                           POD_TEMPLATE_PATHS, PROXY_CONTAINER, REVISION_LABEL, SIDECAR_INJECT)

INJECT_LABEL = SIDECAR_INJECT
REV_LABEL = REVISION_LABEL
# Kinds that run pods (Pods aside), and where their pod template lives.
WORKLOAD_KINDS: dict[str, tuple[str, ...]] = {k: POD_TEMPLATE_PATHS[k] for k in CONTROLLER_KINDS}


def selector_string(labels: Mapping[str, Any] | None) -> str:
    """A map selector as Kubernetes prints it: `k1=v1,k2=v2`, keys sorted."""
    return ",".join(f"{k}={v}" for k, v in sorted(str_labels(labels).items()))


def str_labels(labels: Any) -> dict[str, str]:
    return {yaml_text(k): "" if v is None else yaml_text(v) for k, v in as_dict(labels).items()}


def matches(labels: Mapping[str, str], selector: Mapping[str, Any] | None) -> bool:
    """Equality selector; an empty selector matches everything."""
    for k, v in as_dict(selector).items():
        if labels.get(yaml_text(k)) != ("" if v is None else yaml_text(v)):
            return False
    return True


class LabelIndex:
    """Objects of one kind per namespace, and per (namespace, label key, label value)."""

    def __init__(self, items: Iterable[tuple[Resource, dict[str, str]]]):
        self.by_ns: dict[str, list[tuple[Resource, dict[str, str]]]] = {}
        self.by_label: dict[tuple[str, str, str], list[tuple[Resource, dict[str, str]]]] = {}
        for r, labels in items:
            ns = r.namespace or ""
            entry = (r, labels)
            self.by_ns.setdefault(ns, []).append(entry)
            for k, v in labels.items():
                self.by_label.setdefault((ns, k, v), []).append(entry)

    def select(self, namespace: str | None, selector: Mapping[str, Any] | None) -> list[Resource]:
        """Objects in `namespace` whose labels match `selector` (all of the namespace when empty)."""
        ns = namespace or ""
        sel = str_labels(selector)
        if not sel:
            return [r for r, _ in self.by_ns.get(ns, [])]
        buckets = [self.by_label.get((ns, k, v), []) for k, v in sel.items()]
        smallest = min(buckets, key=len)
        return [r for r, labels in smallest if matches(labels, sel)]

    def select_anywhere(self, selector: Mapping[str, Any] | None) -> list[Resource]:
        out: list[Resource] = []
        for ns in self.by_ns:
            out.extend(self.select(ns, selector))
        return out

    def namespaces(self) -> list[str]:
        return list(self.by_ns)


def pods(ctx: Context) -> LabelIndex:
    """Every Pod, by namespace and label."""
    return ctx.index("workloads.pods", lambda c: LabelIndex((p, str_labels(p.labels)) for p in c.of_kind("Pod")))


def template(r: Resource) -> dict:
    """The pod template of a workload (the Pod itself for a Pod)."""
    if r.kind == "Pod":
        return r.body
    path = WORKLOAD_KINDS.get(r.kind)
    return as_dict(dig(r.body, *path)) if path else {}


def template_labels(r: Resource) -> dict[str, str]:
    return str_labels(dig(template(r), "metadata", "labels"))


def template_annotations(r: Resource) -> dict[str, str]:
    return str_labels(dig(template(r), "metadata", "annotations"))


def workloads(ctx: Context) -> LabelIndex:
    """Pods and every pod-running workload, by namespace and by the labels of the pods they run."""
    def build(c: Context) -> LabelIndex:
        items = []
        for kind in ("Pod", *WORKLOAD_KINDS):
            for r in c.of_kind(kind):
                items.append((r, template_labels(r)))
        return LabelIndex(items)

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
    labels = str_labels(dig(tmpl, "metadata", "labels"))
    if INJECT_LABEL in labels:
        return labels[INJECT_LABEL] == "true"
    annotations = str_labels(dig(tmpl, "metadata", "annotations"))
    if INJECT_LABEL in annotations:
        return annotations[INJECT_LABEL] == "true"
    ns = namespace_object(ctx, r.namespace)
    if ns is not None:
        return ns.labels.get(INJECTION_LABEL) == "enabled"
    return False

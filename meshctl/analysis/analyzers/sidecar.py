"""Sidecar resources: selectors that select nothing, overlapping selections, several default
Sidecars in a namespace, and Sidecars that cannot apply to ambient workloads."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, dig
from meshctl.analysis.helpers import (
    WORKLOAD_KINDS,
    namespace_in_ambient,
    namespace_object,
    pod_in_ambient,
    pods,
    workloads,
)
from meshctl.resources import yaml_text
from meshctl.selectors import selector_string


@analyzer("sidecar.SelectorAnalyzer",
          "Validates that sidecars that define a workload selector match at least one pod, "
                   "and that there aren't multiple sidecar resources that select overlapping pods",
          inputs=("Sidecar", "Pod", "Namespace", *WORKLOAD_KINDS))
def selector(ctx: Context) -> None:
    index = pods(ctx)
    by_pod: dict[int, tuple[object, list]] = {}
    defaults: dict[str, list] = {}
    for sc in ctx.of_kind("Sidecar"):
        labels = as_dict(dig(sc.spec, "workloadSelector", "labels"))
        if not labels:
            defaults.setdefault(sc.namespace or "", []).append(sc)
            continue
        selected = index.select(labels, sc.namespace)
        if not selected:
            # a Deployment (or other workload) in the input stands for the pods it will run
            if workloads(ctx).select(labels, sc.namespace):
                continue
            first = min(yaml_text(k) for k in labels)
            ctx.report("IST0101", sc, "selector", selector_string(labels),
                       path=("spec", "workloadSelector", "labels", first))
            continue
        for pod in selected:
            by_pod.setdefault(id(pod), (pod, []))[1].append(sc)

    reported: set[int] = set()
    for pod, sidecars in by_pod.values():
        ambient = pod_in_ambient(pod)
        if len(sidecars) == 1 and not ambient:
            continue
        names = sorted(s.name for s in sidecars)
        for sc in sidecars:
            if ambient:
                if id(sc) not in reported:
                    reported.add(id(sc))
                    ctx.report("IST0167", sc, "selected workload is in ambient mode, the policy has no impact",
                               path=("spec", "workloadSelector"))
                continue
            ctx.report("IST0110", sc, names, pod.namespace or "", pod.name, path=("metadata", "name"))

    for ns, sidecars in defaults.items():
        if namespace_in_ambient(namespace_object(ctx, ns)):
            for sc in sidecars:
                if id(sc) not in reported:
                    reported.add(id(sc))
                    ctx.report("IST0167", sc, "namespace is in ambient mode, the policy has no impact",
                               path=("metadata", "namespace"))
            continue
        if len(sidecars) > 1:
            names = sorted(s.name for s in sidecars)
            for sc in sidecars:
                ctx.report("IST0111", sc, names, ns, path=("metadata", "name"))

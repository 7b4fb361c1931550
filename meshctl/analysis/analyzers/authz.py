"""AuthorizationPolicy checks: policies that select no workload, source namespaces that do not exist."""
from __future__ import annotations

from meshctl.analysis.framework import Analyzer, Context, as_dict, as_list, dig, register
from meshctl.analysis.helpers import (
    INJECT_LABEL,
    INJECTION_LABEL,
    REV_LABEL,
    WORKLOAD_KINDS,
    in_mesh,
    namespace_in_ambient,
    namespace_object,
    pod_in_ambient,
    template_annotations,
    template_labels,
)
from meshctl.resources import yaml_text
from meshctl.selectors import LabelIndex, selector_string


def _namespace_enrolls(ctx: Context, workload) -> bool:
    """Whether a workload's namespace puts its pods in the mesh although neither the template nor
    `istio-injection` says so: a revision label (`istio.io/rev`), ambient mode, or a namespace the
    input does not describe (its labels are unknown, so the workload is given the benefit of the
    doubt unless it opts out)."""
    ns = namespace_object(ctx, workload.namespace)
    opt_out = {**template_annotations(workload), **template_labels(workload)}.get(INJECT_LABEL) == "false"
    if ns is None:
        return not opt_out
    if namespace_in_ambient(ns):
        return True
    return bool(ns.labels.get(REV_LABEL)) and ns.labels.get(INJECTION_LABEL) != "disabled" and not opt_out


def mesh_pods(ctx: Context) -> LabelIndex:
    """Pods in the mesh (sidecar or ambient), by namespace and label; namespaces with pods are
    present even when none of their pods is in the mesh. Analyzing manifests rather than a
    cluster, the pods a workload (Deployment, StatefulSet, ...) will run count as well: its
    template's labels, when the template gets a sidecar or its namespace is ambient."""
    def build(c: Context) -> LabelIndex:
        index = LabelIndex(())
        for pod in (*c.of_kind("Pod"), *(r for kind in WORKLOAD_KINDS for r in c.of_kind(kind))):
            ns = pod.namespace or ""
            index.by_ns.setdefault(ns, [])
            if pod.kind == "Pod":
                member = in_mesh(c, pod) or pod_in_ambient(pod)
            else:
                member = in_mesh(c, pod) or _namespace_enrolls(c, pod)
            if member:
                index.add(pod, template_labels(pod))
        return index

    return ctx.index("authz.mesh_pods", build)


def namespace_pattern_matches(pattern: str, names: set[str], lowered: set[str]) -> bool:
    """Whether an AuthorizationPolicy namespace expression (`*`, `prefix*`, `*suffix`, exact,
    case-insensitive) matches one of the namespaces."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return any(n.endswith(suffix) for n in names)
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return any(n.startswith(prefix) for n in names)
    return pattern.lower() in lowered


@register
class AuthorizationPoliciesAnalyzer(Analyzer):
    name = "auth.AuthorizationPoliciesAnalyzer"
    description = "Checks the validity of authorization policies"
    inputs = ("AuthorizationPolicy", "Namespace", "Pod", *WORKLOAD_KINDS)

    def analyze(self, ctx: Context) -> None:
        policies = ctx.of_kind("AuthorizationPolicy")
        if not policies:
            return
        index = mesh_pods(ctx)
        root = yaml_text(ctx.mesh_config.get("rootNamespace") or ctx.istio_namespace)
        names = {r.name for r in ctx.of_kind("Namespace")}
        lowered = {n.lower() for n in names}
        known: dict[str, bool] = {}  # pattern → matches a namespace (wildcards scan the names once)

        def exists(pattern: str) -> bool:
            if pattern not in known:
                known[pattern] = namespace_pattern_matches(pattern, names, lowered)
            return known[pattern]

        for ap in policies:
            self.no_matching_workloads(ctx, ap, index, root)
            self.unknown_namespaces(ctx, ap, exists)

    @staticmethod
    def no_matching_workloads(ctx: Context, ap, index: LabelIndex, root: str) -> None:
        selector = ap.spec.get("selector")
        labels = as_dict(dig(selector, "matchLabels"))
        path = ("spec", "selector") if selector is not None else ("metadata", "name")
        if (ap.namespace or "") == root:
            if selector is not None and not index.select(labels):
                ctx.report("IST0127", ap, selector_string(labels), path=path)
            return
        if selector is None:
            if not index.by_ns.get(ap.namespace or ""):
                ctx.report("IST0127", ap, "", path=path)
            return
        if not index.select(labels, ap.namespace):
            ctx.report("IST0127", ap, selector_string(labels), path=path)

    @staticmethod
    def unknown_namespaces(ctx: Context, ap, exists) -> None:
        for i, rule in enumerate(as_list(ap.spec.get("rules"))):
            for j, frm in enumerate(as_list(as_dict(rule).get("from"))):
                source = as_dict(as_dict(frm).get("source"))
                for field in ("namespaces", "notNamespaces"):
                    for k, ns in enumerate(as_list(source.get(field))):
                        ns = yaml_text(ns)
                        if not exists(ns):
                            ctx.report("IST0101", ap, "namespace", ns,
                                       path=("spec", "rules", i, "from", j, "source", field, k))

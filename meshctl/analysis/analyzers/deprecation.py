"""Deprecated Istio types and fields still in use."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_list, dig
from meshctl.resources import yaml_text

# Istio custom resource types that were removed (their CRDs are no longer installed).
REMOVED_TYPES = frozenset({
    ("rbac.istio.io", "ClusterRbacConfig"), ("rbac.istio.io", "RbacConfig"),
    ("rbac.istio.io", "ServiceRole"), ("rbac.istio.io", "ServiceRoleBinding"),
})


@analyzer("deprecation.DeprecationAnalyzer",
          "Checks for deprecated Istio types and fields",
          inputs=("VirtualService", "Sidecar", "CustomResourceDefinition"))
def deprecation(ctx: Context) -> None:
    for vs in ctx.of_kind("VirtualService"):
        for i, route in enumerate(as_list(vs.spec.get("http"))):
            delay = dig(route, "fault", "delay")
            percent = dig(delay, "percent")
            if isinstance(percent, (int, float)) and not isinstance(percent, bool) and percent > 0:
                ctx.report("IST0002", vs,
                           "HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage",
                           path=("spec", "http", i, "fault", "delay", "percent"))
    for sc in ctx.of_kind("Sidecar"):
        if dig(sc.spec, "outboundTrafficPolicy", "egressProxy") is not None:
            ctx.report("IST0002", sc, "OutboundTrafficPolicy.EgressProxy ignored",
                       path=("spec", "outboundTrafficPolicy", "egressProxy"))
    for crd in ctx.of_kind("CustomResourceDefinition"):
        group = yaml_text(crd.spec.get("group") or "")
        kind = yaml_text(dig(crd.spec, "names", "kind") or "")
        if (group, kind) in REMOVED_TYPES:
            ctx.report("IST0002", crd, f"Custom resource type {group} {kind} is removed",
                       path=("spec", "names", "kind"))

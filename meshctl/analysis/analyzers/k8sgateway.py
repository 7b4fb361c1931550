"""Kubernetes Gateway API: policies that select gateway pods by label, CRDs that are too old."""
from __future__ import annotations

import re

from meshctl.analysis.framework import Context, analyzer, as_dict, dig
from meshctl.resources import yaml_text
from meshctl.schemas.gatewayapi import BUNDLE_VERSION_ANNOTATION as BUNDLE_VERSION
from meshctl.schemas.gatewayapi import MINIMUM_CRD_VERSIONS
from meshctl.selectors import label_map, matches

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
POLICY_KINDS = ("AuthorizationPolicy", "RequestAuthentication", "Telemetry", "WasmPlugin")
_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")


@analyzer("k8sgateway.SelectorAnalyzer",
          "Check that selectors are effective for Kubernetes gateway",
          inputs=(*POLICY_KINDS, "Pod"))
def selector(ctx: Context) -> None:
    # distinct label sets of gateway pods, per namespace (replicas share theirs)
    gateway_pods: dict[str, dict[tuple, dict[str, str]]] = {}
    for pod in ctx.of_kind("Pod"):
        if GATEWAY_NAME_LABEL in pod.labels:
            labels = label_map(pod.labels)
            gateway_pods.setdefault(pod.namespace or "", {})[tuple(sorted(labels.items()))] = labels
    if not gateway_pods:
        return
    for kind in POLICY_KINDS:
        for r in ctx.of_kind(kind):
            spec = r.spec
            if spec.get("targetRef") is not None or spec.get("targetRefs"):
                continue
            selector = spec.get("selector")
            if selector is None:
                continue
            wanted = as_dict(dig(selector, "matchLabels"))
            seen: set[str] = set()
            for labels in gateway_pods.get(r.namespace or "", {}).values():
                gateway = labels[GATEWAY_NAME_LABEL]
                if gateway not in seen and matches(labels, wanted):
                    seen.add(gateway)
                    ctx.report("IST0166", r, gateway, path=("spec", "selector"))


def _version(text: str) -> tuple[tuple[int, int, int], str] | None:
    m = _SEMVER.match(text.strip())
    if not m:
        return None
    major, minor, patch = (int(g) if g else 0 for g in m.group(1, 2, 3))
    printed = f"{major}.{minor}.{patch}" + (f"-{m.group(4)}" if m.group(4) else "") + (f"+{m.group(5)}" if m.group(5) else "")
    return (major, minor, patch), printed


@analyzer("k8sgateway.CRDVersionAnalyzer",
          "Checks Gateway API CRDs are at the minimum version required by this Istio version",
          inputs=("CustomResourceDefinition",))
def crd_version(ctx: Context) -> None:
    for crd in ctx.of_kind("CustomResourceDefinition"):
        minimum = MINIMUM_CRD_VERSIONS.get(crd.name)
        bundle = crd.annotations.get(BUNDLE_VERSION)
        if minimum is None or bundle is None:
            continue
        parsed = _version(yaml_text(bundle))
        if parsed is None:
            continue
        version, printed = parsed
        if version < minimum:
            ctx.report("IST0176", crd, crd.name, printed, ".".join(map(str, minimum)),
                       path=("metadata", "annotations", BUNDLE_VERSION))

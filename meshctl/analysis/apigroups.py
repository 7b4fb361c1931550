"""The API groups whose kinds meshctl knows, so that a kind no such group serves is a finding
(kubectl apply would refuse it: "no matches for kind") rather than a document silently analyzed
as nothing.

- Istio's groups (networking, security, telemetry, extensions .istio.io): the kinds and served
  versions of meshctl.schemas.KINDS, the same ones `meshctl install` creates CRDs for.
- The Kubernetes Gateway API (gateway.networking.k8s.io): its kinds; versions are not checked,
  they depend on the CRD bundle installed.
- Kubernetes' built-in groups that manifests use: their kinds (tests/unit/test_apigroups.py checks
  them against the OpenAPI of the newest Kubernetes that kubernetes-validate knows); versions are
  not checked, they depend on the cluster's version.

CustomResourceDefinitions among the analyzed objects (files, or the cluster's with --use-kube)
add their kinds and versions to these groups: a newer CRD bundle is never contradicted.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

GATEWAY_API_GROUP = "gateway.networking.k8s.io"

GATEWAY_API_KINDS = frozenset({
    "Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute", "ReferenceGrant",
    "BackendTLSPolicy", "BackendLBPolicy", "BackendTrafficPolicy", "ListenerSet",
})

# Kinds of the built-in Kubernetes groups, including kinds of versions a 1.24+ cluster may
# still serve (PodSecurityPolicy until 1.25). The core group is "".
KUBERNETES_KINDS: dict[str, frozenset[str]] = {
    "": frozenset({
        "Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node",
        "PersistentVolume", "PersistentVolumeClaim", "Pod", "PodTemplate", "ReplicationController",
        "ResourceQuota", "Secret", "Service", "ServiceAccount", "List",
    }),
    "apps": frozenset({"ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"}),
    "batch": frozenset({"CronJob", "Job"}),
    "autoscaling": frozenset({"HorizontalPodAutoscaler", "Scale"}),
    "policy": frozenset({"Eviction", "PodDisruptionBudget", "PodSecurityPolicy"}),
    "networking.k8s.io": frozenset({"IPAddress", "Ingress", "IngressClass", "NetworkPolicy", "ServiceCIDR",
                                    "ClusterCIDR"}),
    "rbac.authorization.k8s.io": frozenset({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}),
    "admissionregistration.k8s.io": frozenset({
        "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration",
    }),
    "apiextensions.k8s.io": frozenset({"CustomResourceDefinition"}),
    "discovery.k8s.io": frozenset({"EndpointSlice"}),
}


@dataclass(frozen=True)
class Group:
    name: str
    kinds: dict[str, frozenset[str] | None]  # kind → served versions (None: not checked)

    def api_version(self, kind: str) -> str:
        versions = self.kinds.get(kind)
        version = _preferred(versions) if versions else "v1"
        return f"{self.name}/{version}" if self.name else version


def _preferred(versions: frozenset[str]) -> str:
    """The version to suggest: v1 when served, else the most stable-looking one."""
    def rank(v: str) -> tuple:
        stage = 2 if "alpha" not in v and "beta" not in v else (1 if "beta" in v else 0)
        return (stage, v)

    return max(versions, key=rank)


@lru_cache(maxsize=1)
def builtin_groups() -> dict[str, Group]:
    from meshctl.schemas import KINDS

    groups: dict[str, dict[str, frozenset[str] | None]] = {}
    for k in KINDS:
        groups.setdefault(k.group, {})[k.kind] = frozenset(k.versions)
    groups[GATEWAY_API_GROUP] = dict.fromkeys(GATEWAY_API_KINDS)
    for name, kinds in KUBERNETES_KINDS.items():
        groups[name] = dict.fromkeys(kinds)
    return {name: Group(name, kinds) for name, kinds in groups.items()}


def with_crds(crds) -> dict[str, Group]:
    """The built-in groups, plus the kinds and versions that CustomResourceDefinitions (bodies as
    dicts) declare in those groups."""
    groups = builtin_groups()
    extra: dict[str, dict[str, frozenset[str] | None]] = {}
    for body in crds:
        spec = body.get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict) or spec.get("group") not in groups:
            continue
        names = spec.get("names")
        kind = names.get("kind") if isinstance(names, dict) else None
        if not isinstance(kind, str):
            continue
        versions = frozenset(str(v.get("name")) for v in spec.get("versions") or []
                             if isinstance(v, dict) and v.get("name") and v.get("served", True) is not False)
        kinds = extra.setdefault(spec["group"], dict(groups[spec["group"]].kinds))
        if kind in kinds and kinds[kind] is None:
            continue
        kinds[kind] = (kinds.get(kind) or frozenset()) | versions if versions else None
    if not extra:
        return groups
    out = dict(groups)
    for name, kinds in extra.items():
        out[name] = Group(name, kinds)
    return out


def _quote(s: str) -> str:
    return f'"{s}"'


def problem(api_version: str, kind: str, groups: dict[str, Group]) -> tuple[str, str] | None:
    """Why `apiVersion`/`kind` is not served by a group meshctl knows, as (field, explanation),
    `field` being "kind" or "apiVersion"; None when it is served, or its group is not one meshctl
    knows (a custom resource)."""
    group_name, _, version = api_version.rpartition("/")
    group = groups.get(group_name)
    if group is None:
        return _unknown_group(group_name, version, kind, groups)
    if kind in group.kinds:
        versions = group.kinds[kind]
        if versions is None or version in versions:
            return None
        served = sorted(versions)
        where = served[0] if len(served) == 1 else ", ".join(served[:-1]) + " or " + served[-1]
        return "apiVersion", (f"{group_name} serves {kind} as {where}"
                              + (" only" if len(served) == 1 else "")
                              + f" (apiVersion: {group.api_version(kind)}).")
    if kind.endswith("List") and (kind[:-4] in group.kinds or kind == "List"):
        return None  # a list of objects (kubectl get -o yaml) that has no items
    elsewhere = sorted(g.name or "core" for g in groups.values() if kind in g.kinds and g is not group)
    if elsewhere:
        g = groups["" if elsewhere[0] == "core" else elsewhere[0]]
        return "apiVersion", f"{kind} is a kind of {elsewhere[0]} (apiVersion: {g.api_version(kind)})."
    close = difflib.get_close_matches(kind, list(group.kinds), n=1, cutoff=0.6)
    if not close:
        lower = {k.lower(): k for k in group.kinds}
        close = [lower[kind.lower()]] if kind.lower() in lower else []
    label = group_name or "the core group (v1)"
    if close:
        return "kind", f"did you mean {_quote(close[0])}?"
    kinds = sorted(group.kinds)
    if len(kinds) <= 12:
        return "kind", f"{label} has no such kind (its kinds: {', '.join(kinds)})."
    return "kind", f"{label} has no such kind (see kubectl api-resources --api-group={group_name})."


def _unknown_group(group_name: str, version: str, kind: str, groups: dict[str, Group]) -> tuple[str, str] | None:
    """A misspelt group: one close to a known group that has this very kind."""
    if not group_name:
        return None
    candidates = [g for g in groups if g and kind in groups[g].kinds]
    close = difflib.get_close_matches(group_name, candidates, n=1, cutoff=0.85)
    if not close:
        return None
    g = groups[close[0]]
    return "apiVersion", f"there is no API group {group_name}; did you mean apiVersion: {g.api_version(kind)}?"

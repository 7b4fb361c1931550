"""Workloads that run as UID 1337, the sidecar proxy's user."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, as_list, dig
from meshctl.analysis.helpers import is_control_plane

PROXY_UID = 1337
EXEMPT_CONTAINERS = ("istio-proxy", "istio-operator")


def offending_path(spec: dict, prefix: tuple) -> tuple | None:
    """Path of the first runAsUser: 1337 in a pod spec (pod level, then containers)."""
    if dig(spec, "securityContext", "runAsUser") == PROXY_UID:
        return (*prefix, "securityContext", "runAsUser")
    for i, c in enumerate(as_list(spec.get("containers"))):
        c = as_dict(c)
        if c.get("name") in EXEMPT_CONTAINERS:
            continue
        if dig(c, "securityContext", "runAsUser") == PROXY_UID:
            return (*prefix, "containers", i, "securityContext", "runAsUser")
    return None


@analyzer("applicationUID.Analyzer", "Checks invalid application UID", inputs=("Pod", "Deployment"))
def application_uid(ctx: Context) -> None:
    for kind, prefix in (("Pod", ("spec",)), ("Deployment", ("spec", "template", "spec"))):
        for r in ctx.of_kind(kind):
            if is_control_plane(r):
                continue
            path = offending_path(as_dict(dig(r.body, *prefix)), prefix)
            if path is not None:
                ctx.report("IST0144", r, path=path)

"""Status conditions that say a resource is not working (written by Istio or a Gateway controller)."""
from __future__ import annotations

from meshctl.analysis.apigroups import GATEWAY_API_GROUP
from meshctl.analysis.framework import Context, analyzer, as_dict, as_list
from meshctl.resources import yaml_text

WAYPOINT = {"istio.io/WaypointBound": "False"}
GATEWAY_API = {"Accepted": "False", "Programmed": "False", "ResolvedRefs": "False"}
# (kind, API group or None for any) → condition type → the status that is negative
NEGATIVE: dict[tuple[str, str | None], dict[str, str]] = {
    ("Service", ""): WAYPOINT,
    ("ServiceEntry", "networking.istio.io"): WAYPOINT,
    ("WorkloadEntry", "networking.istio.io"): WAYPOINT,
    ("AuthorizationPolicy", "security.istio.io"): {"ZtunnelAccepted": "False", "WaypointAccepted": "False"},
    ("Gateway", GATEWAY_API_GROUP): GATEWAY_API,
    ("HTTPRoute", GATEWAY_API_GROUP): GATEWAY_API,
    ("GRPCRoute", GATEWAY_API_GROUP): GATEWAY_API,
}
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


def _status_text(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return yaml_text(value)


def _conditions(r) -> list[tuple[tuple, dict]]:
    """(path, condition) of the conditions in the status (a route's per parent)."""
    status = as_dict(r.body.get("status"))
    if r.kind in ROUTE_KINDS:
        out = []
        for i, parent in enumerate(as_list(status.get("parents"))):
            for j, cond in enumerate(as_list(as_dict(parent).get("conditions"))):
                out.append((("status", "parents", i, "conditions", j), as_dict(cond)))
        return out
    return [(("status", "conditions", i), as_dict(c)) for i, c in enumerate(as_list(status.get("conditions")))]


@analyzer("conditions.ConditionAnalyzer",
          "Checks for negative status conditions on resources",
          inputs=("Service", "ServiceEntry", "WorkloadEntry", "AuthorizationPolicy", "Gateway", "HTTPRoute", "GRPCRoute"))
def condition(ctx: Context) -> None:
    for (kind, group), negative in NEGATIVE.items():
        for r in ctx.of_kind(kind):
            if group is not None and r.group != group:
                continue
            for path, cond in _conditions(r):
                ctype = yaml_text(cond.get("type") or "")
                status = _status_text(cond.get("status"))
                reason = yaml_text(cond.get("reason") or "")
                args = (ctype, reason, yaml_text(cond.get("message") or ""))
                if ctype in negative and negative[ctype] == status:
                    ctx.report("IST0171", r, *args, path=path)
                elif kind == "AuthorizationPolicy" and ctype == "WaypointAccepted" and reason == "PartiallyInvalid":
                    # accepted, but part of the policy was dropped
                    ctx.report("IST0171", r, *args, path=path)

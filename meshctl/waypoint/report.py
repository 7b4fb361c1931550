"""Report stage of `meshctl waypoint`: text for people, json and yaml for machines (stdout), and
warnings on stderr. `--dry-run` writes the YAML that would be applied."""
from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any, Optional, TextIO

from meshctl.output import OutputFormats
from meshctl.waypoint.cluster import ApplyResult, DeleteResult, Waypoint, WaypointStatus

FORMATS = OutputFormats(("text", "json", "yaml"), default="text")


def _programmed(state: tuple[str, str, str]) -> str:
    status, reason, _ = state
    return status if not reason or status == "True" else f"{status} ({reason})"


def _waypoint_dict(w: Waypoint) -> dict:
    status, reason, message = w.programmed
    return {"namespace": w.namespace, "name": w.name, "for": w.traffic_for, "revision": w.revision or None,
            "programmed": {"status": status, "reason": reason or None, "message": message or None},
            "addresses": w.addresses}


def data(result: Any) -> Any:
    """The machine form of a result (what -o json|yaml prints)."""
    if isinstance(result, ApplyResult):
        status, reason, message = result.programmed
        return {"namespace": result.namespace, "name": result.name, "for": result.traffic_for,
                "dryRun": result.dry_run, "created": result.created, "enrolled": result.enrolled,
                "programmed": {"status": status, "reason": reason or None, "message": message or None},
                "warnings": result.warnings, "objects": result.documents}
    if isinstance(result, DeleteResult):
        return asdict(result)
    if isinstance(result, list) and all(isinstance(r, WaypointStatus) for r in result):
        return [{**_waypoint_dict(s.waypoint), "namespaces": s.namespaces, "services": s.services,
                 "workloads": s.workloads, "policies": s.policies, "routes": s.routes, "warnings": s.warnings}
                for s in result]
    if isinstance(result, list):
        return [_waypoint_dict(w) for w in result]
    raise TypeError(type(result).__name__)


def write(result: Any, fmt: str, out: Optional[TextIO] = None, err: Optional[TextIO] = None,
          all_namespaces: bool = False, namespace: Optional[str] = None) -> None:
    """`namespace`: the one a list or status was asked of (None: every namespace), named when
    nothing is found there."""
    out = out or sys.stdout
    err = err or sys.stderr
    if isinstance(result, ApplyResult) and result.dry_run:
        from meshctl.output import to_json, to_yaml

        if fmt == "json":
            out.write(to_json(result.documents[0] if len(result.documents) == 1 else
                              {"apiVersion": "v1", "kind": "List", "items": result.documents}))
        else:  # text and yaml: the manifests, ready for kubectl apply -f -
            out.write("---\n".join(to_yaml(d) for d in result.documents))
        out.flush()
        return
    if fmt in ("json", "yaml"):
        from meshctl.output import emit

        emit(data(result), fmt, out)
    elif isinstance(result, ApplyResult):
        _apply_text(result, out)
    elif isinstance(result, DeleteResult):
        for name in result.deleted:
            out.write(f"waypoint {result.namespace}/{name} deleted\n")
        if not result.deleted:
            out.write(f"no waypoint in namespace {result.namespace}\n")
    elif isinstance(result, list) and result and isinstance(result[0], WaypointStatus):
        _status_text(result, out)
    elif isinstance(result, list) and not result:
        out.write("no waypoints found" + (f" in namespace {namespace}" if namespace else "") + "\n")
    elif isinstance(result, list):
        _list_text(result, out, all_namespaces)
    out.flush()
    for warning in getattr(result, "warnings", None) or []:
        err.write(f"warning: {warning}\n")
    if isinstance(result, list):
        for st in result:
            for warning in getattr(st, "warnings", None) or []:
                err.write(f"warning: {st.waypoint.namespace}/{st.waypoint.name}: {warning}\n")
    err.flush()


def _apply_text(r: ApplyResult, out: TextIO) -> None:
    verb = "created" if r.created else "applied (unchanged or updated)"
    out.write(f"waypoint {r.namespace}/{r.name} {verb}: Gateway of class istio-waypoint, {r.traffic_for} traffic\n")
    for what in r.enrolled:
        out.write(f"{what} now uses waypoint {r.name}\n")
    status, reason, message = r.programmed
    if status == "True":
        out.write(f"waypoint {r.namespace}/{r.name} is ready (Programmed)\n")
    elif r.waited:
        out.write(f"waypoint {r.namespace}/{r.name} is not ready: Programmed={status}"
                  + (f" ({reason}: {message})" if reason else "") + "\n")
    else:
        out.write(f"waypoint {r.namespace}/{r.name} is not ready yet; run with --wait, or: "
                  f"meshctl waypoint status -n {r.namespace} {r.name}\n")


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("   ".join(v.ljust(widths[i]) if i < len(r) - 1 else v for i, v in enumerate(r)).rstrip() + "\n")


def _list_text(waypoints: list[Waypoint], out: TextIO, all_namespaces: bool) -> None:
    header = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "FOR", "REVISION", "PROGRAMMED"]
    rows = [header]
    for w in waypoints:
        rows.append(([w.namespace] if all_namespaces else []) + [w.name, w.traffic_for, w.revision or "default",
                                                                  _programmed(w.programmed)])
    _table(rows, out)


def _status_text(statuses: list[WaypointStatus], out: TextIO) -> None:
    for i, st in enumerate(statuses):
        w = st.waypoint
        if i:
            out.write("\n")
        status, reason, message = w.programmed
        out.write(f"waypoint {w.namespace}/{w.name} ({w.traffic_for} traffic, revision {w.revision or 'default'}): "
                  f"{'ready' if status == 'True' else 'not ready'}, Programmed={status}"
                  + (f" ({reason}: {message})" if status != "True" and (reason or message) else "") + "\n")
        if w.addresses:
            out.write(f"  addresses: {', '.join(w.addresses)}\n")
        for title, items in (("namespaces", st.namespaces), ("services", st.services), ("workloads", st.workloads),
                             ("policies", st.policies), ("routes", st.routes)):
            out.write(f"  {title}:{' none' if not items else ''}\n")
            for item in items:
                out.write(f"    {item}\n")

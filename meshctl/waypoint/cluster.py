"""Waypoints on a cluster: apply, list, status, delete. Results are plain dataclasses the report
writes; progress while waiting goes to an observer (`on_event(text)`), never to the terminal."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from meshctl.errors import ClusterError, InputError, MeshctlError
from meshctl.schemas.gatewayapi import GROUP, install_command
from meshctl.waypoint import render
from meshctl.waypoint.render import GATEWAY_API_VERSION, USE_WAYPOINT, USE_WAYPOINT_NAMESPACE

POLICY_KINDS = (("security.istio.io/v1", "AuthorizationPolicy"), ("security.istio.io/v1", "RequestAuthentication"),
                ("telemetry.istio.io/v1", "Telemetry"), ("extensions.istio.io/v1alpha1", "WasmPlugin"))
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")
Observer = Callable[[str], None]


def _meta(obj: dict) -> dict:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _labels(obj: dict) -> dict:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def _ns(obj: dict) -> str:
    return str(_meta(obj).get("namespace") or "")


def _name(obj: dict) -> str:
    return str(_meta(obj).get("name") or "")


def require_gateway_api(client: Any) -> None:
    """The Gateway API CRDs must be installed for a waypoint to exist (exit 3 with the command
    that installs them otherwise)."""
    if not client.served(GATEWAY_API_VERSION, "Gateway"):
        raise ClusterError("the cluster does not serve Gateway API Gateways (gateway.networking.k8s.io/v1): "
                           "the Gateway API CRDs are not installed",
                           hint=f"install them: {install_command()}")


def _namespace(client: Any, namespace: str) -> dict:
    ns = client.get("v1", "Namespace", namespace)
    if ns is None:
        raise InputError(f"namespace {namespace!r} not found", hint=f"create it first: kubectl create namespace {namespace}")
    return ns


# --- apply ----------------------------------------------------------------------------------------

@dataclass
class ApplyResult:
    namespace: str
    name: str
    traffic_for: str
    documents: list[dict]                     # what was (or, with dry_run, would be) applied
    dry_run: bool = False
    created: bool = False                     # the Gateway did not exist before
    enrolled: list[str] = field(default_factory=list)    # "namespace shop", "service shop/reviews"
    programmed: tuple[str, str, str] = ("Unknown", "", "")
    waited: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.programmed[0] == "True"


def plan(namespace: str, name: str = render.DEFAULT_NAME, traffic_for: str = "service",
         revision: Optional[str] = None, enroll_namespace: bool = False) -> ApplyResult:
    """What `apply` would write, without a cluster (for --dry-run)."""
    docs = [render.gateway(namespace, name, traffic_for, revision)]
    if enroll_namespace:
        docs.append(render.enrolled_namespace(namespace, name))
    return ApplyResult(namespace, name, traffic_for, docs, dry_run=True,
                       enrolled=[f"namespace {namespace}"] if enroll_namespace else [])


def apply(client: Any, namespace: str, name: str = render.DEFAULT_NAME, traffic_for: str = "service",
          revision: Optional[str] = None, enroll_namespace: bool = False, enroll_services: tuple[str, ...] = (),
          wait: bool = False, timeout: float = 90.0, interval: float = 1.0,
          on_event: Optional[Observer] = None) -> ApplyResult:
    """Create or update the waypoint (server-side apply), label what should use it, and, with
    `wait`, wait until its Gateway is Programmed. Everything is checked before the first write:
    the CRDs, the namespace, the Services to enrol, an existing Gateway of that name."""
    gw = render.gateway(namespace, name, traffic_for, revision)
    require_gateway_api(client)
    _namespace(client, namespace)
    services = []
    for svc_name in enroll_services:
        svc = client.get("v1", "Service", svc_name, namespace)
        if svc is None:
            raise InputError(f"service {namespace}/{svc_name} not found", hint=f"kubectl get services -n {namespace}")
        services.append(svc)
    existing = client.get(GATEWAY_API_VERSION, "Gateway", name, namespace)
    if existing is not None and not render.is_waypoint(existing):
        cls = (existing.get("spec") or {}).get("gatewayClassName")
        raise InputError(f"Gateway {namespace}/{name} exists and is not a waypoint (its class is {cls!r})",
                         hint="choose another --name")
    result = ApplyResult(namespace, name, traffic_for, [gw], created=existing is None)
    applied = client.apply(gw)
    if enroll_namespace:
        client.patch("v1", "Namespace", namespace, None,
                      {"metadata": {"labels": render.use_labels(name, namespace, namespace)}})
        result.enrolled.append(f"namespace {namespace}")
    for svc in services:
        client.patch("v1", "Service", _name(svc), namespace,
                     {"metadata": {"labels": render.use_labels(name, namespace, namespace)}})
        result.enrolled.append(f"service {namespace}/{_name(svc)}")
    if traffic_for == "workload" and services:
        result.warnings.append("the waypoint takes workload traffic only (--for workload): traffic addressed to "
                               "the enrolled Services does not go through it; use --for service or all")
    result.programmed = render.condition(applied or {}, "Programmed")
    if wait and not result.ready:
        result.programmed = wait_programmed(client, namespace, name, timeout, interval, on_event)
        result.waited = True
    return result


def wait_programmed(client: Any, namespace: str, name: str, timeout: float, interval: float = 1.0,
                    on_event: Optional[Observer] = None) -> tuple[str, str, str]:
    """Poll the Gateway until its Programmed condition is True; ClusterError (exit 3) after `timeout`."""
    deadline = time.monotonic() + timeout
    last: tuple[str, str, str] | None = None
    while True:
        gw = client.get(GATEWAY_API_VERSION, "Gateway", name, namespace)
        state = render.condition(gw or {}, "Programmed")
        if state != last and on_event is not None:
            on_event(f"waypoint {namespace}/{name}: Programmed={state[0]}" + (f" ({state[1]})" if state[1] else ""))
        last = state
        if state[0] == "True":
            return state
        if time.monotonic() >= deadline:
            why = f"{state[1]}: {state[2]}" if state[1] or state[2] else "no Programmed condition yet"
            raise ClusterError(f"waypoint {namespace}/{name} is not programmed after {timeout:g}s ({why})",
                               hint=f"kubectl describe gateway -n {namespace} {name}; is istiod running with "
                                    "ambient mode (meshctl install --profile ambient)?")
        time.sleep(interval)


# --- list -----------------------------------------------------------------------------------------

@dataclass
class Waypoint:
    namespace: str
    name: str
    traffic_for: str
    revision: str
    programmed: tuple[str, str, str]
    addresses: list[str] = field(default_factory=list)


def _waypoint(gw: dict) -> Waypoint:
    addresses = [str(a.get("value")) for a in ((gw.get("status") or {}).get("addresses") or [])
                 if isinstance(a, dict) and a.get("value")]
    return Waypoint(_ns(gw), _name(gw), render.traffic_type(gw), str(_labels(gw).get(render.REV) or ""),
                    render.condition(gw, "Programmed"), addresses)


def list_waypoints(client: Any, namespace: Optional[str]) -> list[Waypoint]:
    """The waypoints of a namespace, or of every namespace (namespace None)."""
    require_gateway_api(client)
    gws = client.list(GATEWAY_API_VERSION, "Gateway", namespace=namespace)
    return sorted((_waypoint(g) for g in gws if render.is_waypoint(g)), key=lambda w: (w.namespace, w.name))


# --- status ---------------------------------------------------------------------------------------

@dataclass
class WaypointStatus:
    waypoint: Waypoint
    namespaces: list[str] = field(default_factory=list)   # namespaces enrolled as a whole
    services: list[str] = field(default_factory=list)     # ns/name of Services whose traffic it takes
    workloads: list[str] = field(default_factory=list)    # ns/kind/name of workloads whose traffic it takes
    policies: list[str] = field(default_factory=list)     # "AuthorizationPolicy ns/name (via Service ns/x)"
    routes: list[str] = field(default_factory=list)       # "HTTPRoute ns/name (Service ns/x)"
    warnings: list[str] = field(default_factory=list)     # what is meant for it but not enforced


def _uses(obj_labels: dict, ns_labels: dict, own_ns: str, wp: Waypoint) -> Optional[str]:
    """'own' when the object's label names the waypoint, 'namespace' when its namespace's does
    (and the object does not opt out), else None."""
    own = obj_labels.get(USE_WAYPOINT)
    if own:
        if own == wp.name and (obj_labels.get(USE_WAYPOINT_NAMESPACE) or own_ns) == wp.namespace:
            return "own"
        return None
    via = ns_labels.get(USE_WAYPOINT)
    if via and via == wp.name and (ns_labels.get(USE_WAYPOINT_NAMESPACE) or own_ns) == wp.namespace:
        return "namespace"
    return None


def _workload_of(pod: dict) -> str:
    """`Deployment reviews-v1` from a pod's owner (a ReplicaSet's name without its hash), else `Pod name`."""
    for ref in _meta(pod).get("ownerReferences") or []:
        if not isinstance(ref, dict):
            continue
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        template_hash = _labels(pod).get("pod-template-hash")
        if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
            return f"Deployment {name[:-len(template_hash) - 1]}"
        if kind and name:
            return f"{kind} {name}"
    return f"Pod {_name(pod)}"


def _ambient(pod: dict, ns_labels: dict) -> bool:
    mode = _labels(pod).get("istio.io/dataplane-mode")
    if mode:
        return mode == "ambient"
    ann = _meta(pod).get("annotations") or {}
    return ann.get("ambient.istio.io/redirection") == "enabled" or ns_labels.get("istio.io/dataplane-mode") == "ambient"


def _list(client: Any, api_version: str, kind: str) -> list[dict]:
    try:
        return client.list(api_version, kind)
    except MeshctlError:
        return []


def status(client: Any, namespace: Optional[str] = None, name: Optional[str] = None) -> list[WaypointStatus]:
    """Each waypoint (of a namespace, or all; or one by name) with what uses it, the policies
    and routes it enforces, and what is meant for it but will not be enforced."""
    waypoints = list_waypoints(client, namespace)
    if name is not None:
        waypoints = [w for w in waypoints if w.name == name]
        if not waypoints:
            raise InputError(f"no waypoint {name!r} in namespace {namespace or 'any'}",
                             hint="meshctl waypoint list -A")
    if not waypoints:
        return []
    ns_labels = {_name(n): _labels(n) for n in client.list("v1", "Namespace")}
    services = client.list("v1", "Service")
    pods = [p for p in client.list("v1", "Pod") if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    policies = [(kind, p) for api, kind in POLICY_KINDS for p in _list(client, api, kind)]
    routes = [(kind, r) for kind in ROUTE_KINDS for r in _list(client, f"{GROUP}/v1", kind)]
    out = []
    for wp in waypoints:
        st = WaypointStatus(wp)
        st.namespaces = sorted(n for n, labels in ns_labels.items() if _uses({}, labels, n, wp))
        takes_services = wp.traffic_for in ("service", "all")
        takes_workloads = wp.traffic_for in ("workload", "all")
        used_services: set[tuple[str, str]] = set()
        for svc in services:
            how = _uses(_labels(svc), ns_labels.get(_ns(svc), {}), _ns(svc), wp)
            if how is None:
                continue
            if takes_services:
                used_services.add((_ns(svc), _name(svc)))
            elif how == "own":
                st.warnings.append(f"Service {_ns(svc)}/{_name(svc)} is labelled to use this waypoint, which takes "
                                   f"{wp.traffic_for} traffic only ({render.WAYPOINT_FOR}: {wp.traffic_for})")
        st.services = sorted(f"{n}/{s}" for n, s in used_services)
        if takes_workloads:
            workloads = set()
            for pod in pods:
                labels = ns_labels.get(_ns(pod), {})
                how = _uses(_labels(pod), labels, _ns(pod), wp)
                if how is None:
                    continue
                if not _ambient(pod, labels):
                    st.warnings.append(f"Pod {_ns(pod)}/{_name(pod)} is meant to use this waypoint but is not in "
                                       "ambient mode, so its traffic does not reach it")
                    continue
                workloads.add(f"{_ns(pod)}/{_workload_of(pod)}")
            st.workloads = sorted(workloads)
        for kind, pol in policies:
            via = _policy_target(pol, wp, used_services)
            if via is not None:
                st.policies.append(f"{kind} {_ns(pol)}/{_name(pol)}" + (f" (via {via})" if via else ""))
        st.policies.sort()
        for kind, route in routes:
            via = _route_parent(route, wp, used_services)
            if via is not None:
                st.routes.append(f"{kind} {_ns(route)}/{_name(route)} ({via})")
        st.routes.sort()
        st.warnings += _unenforced(policies, st, ns_labels, wp)
        out.append(st)
    return out


def _policy_target(pol: dict, wp: Waypoint, used_services: set[tuple[str, str]]) -> Optional[str]:
    """"" when the policy targets the waypoint itself, "Service ns/x" when it targets a Service
    using it, None otherwise."""
    spec = pol.get("spec") or {}
    targets = [t for t in (spec.get("targetRefs") or []) if isinstance(t, dict)]
    if isinstance(spec.get("targetRef"), dict):
        targets.append(spec["targetRef"])
    ns = _ns(pol)
    for t in targets:
        group, kind, tname = str(t.get("group") or ""), str(t.get("kind") or ""), str(t.get("name") or "")
        if group == GROUP and kind == "Gateway" and tname == wp.name and ns == wp.namespace:
            return ""
        if group == "" and kind == "Service" and (ns, tname) in used_services:
            return f"Service {ns}/{tname}"
    return None


def _route_parent(route: dict, wp: Waypoint, used_services: set[tuple[str, str]]) -> Optional[str]:
    ns = _ns(route)
    for ref in ((route.get("spec") or {}).get("parentRefs") or []):
        if not isinstance(ref, dict):
            continue
        group = ref.get("group")
        group = GROUP if group is None else str(group)
        kind = str(ref.get("kind") or "Gateway")
        pns = str(ref.get("namespace") or ns)
        pname = str(ref.get("name") or "")
        if group == "" and kind == "Service" and (pns, pname) in used_services:
            return f"Service {pns}/{pname}"
        if group == GROUP and kind == "Gateway" and (pns, pname) == (wp.namespace, wp.name):
            return "the waypoint"
    return None


def _unenforced(policies: list[tuple[str, dict]], st: WaypointStatus, ns_labels: dict, wp: Waypoint) -> list[str]:
    """AuthorizationPolicies with HTTP rules that select workloads in the namespaces this waypoint
    serves: ztunnel enforces them, without their HTTP rules, and the waypoint never sees them."""
    from meshctl.analysis.analyzers.gatewayapi import l7_attributes
    from meshctl.resources import Resource

    served = set(st.namespaces) | {s.split("/")[0] for s in st.services} | {w.split("/")[0] for w in st.workloads}
    out = []
    for kind, pol in policies:
        spec = pol.get("spec") or {}
        if kind != "AuthorizationPolicy" or _ns(pol) not in served or spec.get("targetRefs") or spec.get("targetRef"):
            continue
        attrs = sorted({a for a, _ in l7_attributes(Resource.from_dict(pol))})
        if attrs:
            out.append(f"AuthorizationPolicy {_ns(pol)}/{_name(pol)} uses HTTP attributes ({', '.join(attrs)}) but "
                       f"selects workloads, so this waypoint does not enforce it and ztunnel cannot: target the "
                       f"waypoint with spec.targetRefs instead")
    return out


# --- delete ---------------------------------------------------------------------------------------

@dataclass
class DeleteResult:
    namespace: str
    deleted: list[str]
    warnings: list[str] = field(default_factory=list)


def delete(client: Any, namespace: str, names: tuple[str, ...] = (), every: bool = False) -> DeleteResult:
    """Delete waypoints by name, or every waypoint of the namespace (`every`). Names that are not
    waypoints are refused before anything is deleted. Objects still labelled to use a deleted
    waypoint are reported (their traffic is not captured by any waypoint until relabelled)."""
    require_gateway_api(client)
    if every == bool(names):
        raise InputError("give waypoint names or --all, not both" if every else "which waypoint? give its name or --all",
                         hint="meshctl waypoint list")
    gws = {_name(g): g for g in client.list(GATEWAY_API_VERSION, "Gateway", namespace=namespace)}
    if every:
        targets = sorted(n for n, g in gws.items() if render.is_waypoint(g))
    else:
        for n in names:
            if n not in gws:
                raise InputError(f"waypoint {namespace}/{n} not found", hint=f"meshctl waypoint list -n {namespace}")
            if not render.is_waypoint(gws[n]):
                raise InputError(f"Gateway {namespace}/{n} is not a waypoint (its class is "
                                 f"{(gws[n].get('spec') or {}).get('gatewayClassName')!r}); meshctl deletes waypoints only")
        targets = list(dict.fromkeys(names))
    result = DeleteResult(namespace, [])
    for n in targets:
        client.delete(GATEWAY_API_VERSION, "Gateway", n, namespace)
        result.deleted.append(n)
    if targets:
        gone = set(targets)
        for ns in client.list("v1", "Namespace"):
            labels = _labels(ns)
            if labels.get(USE_WAYPOINT) in gone and (labels.get(USE_WAYPOINT_NAMESPACE) or _name(ns)) == namespace:
                result.warnings.append(f"namespace {_name(ns)} still uses waypoint {labels[USE_WAYPOINT]}: "
                                       f"kubectl label namespace {_name(ns)} {USE_WAYPOINT}-")
        for svc in client.list("v1", "Service"):
            labels = _labels(svc)
            if labels.get(USE_WAYPOINT) in gone and (labels.get(USE_WAYPOINT_NAMESPACE) or _ns(svc)) == namespace:
                result.warnings.append(f"service {_ns(svc)}/{_name(svc)} still uses waypoint {labels[USE_WAYPOINT]}: "
                                       f"kubectl label service -n {_ns(svc)} {_name(svc)} {USE_WAYPOINT}-")
    return result

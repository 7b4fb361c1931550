"""Kubernetes Gateway API across objects: what routes attach to, what they send traffic to,
which waypoints are used, and which policies ambient mode cannot enforce as written.

- routes (HTTPRoute, GRPCRoute, TCPRoute, TLSRoute) whose `parentRefs` name a Gateway, listener or
  Service that is not in the input (IST0101), or a Gateway none of whose listeners accepts them:
  namespace or route kind not allowed (MSH0201), no hostname in common (MSH0202);
- `backendRefs` to a Service or port that is not in the input (IST0101), references into another
  namespace that no ReferenceGrant allows (MSH0203), backends whose weights are all zero (MSH0204),
  two routes claiming the same hostname, match and parent with different backends (MSH0205);
- `istio.io/use-waypoint` naming a waypoint that is not in the input (IST0101);
- AuthorizationPolicies with HTTP attributes selecting ambient workloads, which ztunnel cannot
  enforce (MSH0206), or targeting a Gateway that Istio does not program (MSH0207).
"""
from __future__ import annotations

from typing import Any, Iterator

from meshctl.analysis.framework import Analyzer, Context, analyzer, as_dict, as_list, dig, register
from meshctl.analysis.helpers import WORKLOAD_KINDS, namespace_in_ambient, namespace_object, of_group, workloads
from meshctl.resources import Resource
from meshctl.selectors import matches_label_selector

GROUP = "gateway.networking.k8s.io"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")
USE_WAYPOINT = "istio.io/use-waypoint"
USE_WAYPOINT_NAMESPACE = "istio.io/use-waypoint-namespace"
DATAPLANE_MODE = "istio.io/dataplane-mode"
WAYPOINT_CLASS = "istio-waypoint"
# Gateway classes istiod programs, and the controllers of classes a user may define for it.
ISTIO_CLASSES = frozenset({"istio", "istio-waypoint", "istio-east-west", "istio-remote"})
ISTIO_CONTROLLERS = frozenset({"istio.io/gateway-controller", "istio.io/mesh-controller",
                               "istio.io/unmanaged-gateway"})
# Route kinds a listener accepts when it does not list them (by protocol), as Istio implements them.
DEFAULT_ROUTE_KINDS = {
    "HTTP": ("HTTPRoute", "GRPCRoute"), "HTTPS": ("HTTPRoute", "GRPCRoute"),
    "TLS": ("TLSRoute", "TCPRoute"), "TCP": ("TCPRoute",), "UDP": ("UDPRoute",),
}


def routes(ctx: Context) -> list[Resource]:
    return ctx.index("gatewayapi.routes", lambda c: [r for k in ROUTE_KINDS for r in of_group(c, k, GROUP)])


def gateways(ctx: Context) -> dict[tuple[str, str], Resource]:
    """Gateway API Gateways by (namespace, name)."""
    return ctx.index("gatewayapi.gateways",
                     lambda c: {(g.namespace or "", g.name): g for g in of_group(c, "Gateway", GROUP)})


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _ref(ref: dict, default_group: str, default_kind: str, namespace: str) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name) of an object reference, with the Gateway API defaults."""
    group = ref.get("group")
    return (default_group if group is None else _str(group), _str(ref.get("kind"), default_kind),
            _str(ref.get("namespace")) or namespace, _str(ref.get("name")))


def _service(ctx: Context, namespace: str, name: str) -> Resource | None:
    svc = ctx.resources.get("Service", namespace, name)
    return svc if svc is not None and svc.group == "" else None


def _service_ports(svc: Resource) -> set[int]:
    return {p.get("port") for p in as_list(svc.spec.get("ports")) if isinstance(p, dict)}


def check_service_ref(ctx: Context, route: Resource, group: str, kind: str, namespace: str, name: str,
                      port: Any, path: tuple) -> None:
    """IST0101 for a reference to a Service (or its port) or a ServiceEntry not in the input;
    other kinds are not checked."""
    if group == "" and kind == "Service":
        svc = _service(ctx, namespace, name)
        if svc is None:
            ctx.report("IST0101", route, "service", f"{namespace}/{name}", path=path + ("name",))
        elif isinstance(port, int) and port not in _service_ports(svc):
            ctx.report("IST0101", route, "service port", f"{namespace}/{name}:{port}", path=path + ("port",))
    elif group == "networking.istio.io" and kind == "ServiceEntry":
        if ctx.resources.get("ServiceEntry", namespace, name, group="networking.istio.io") is None:
            ctx.report("IST0101", route, "service entry", f"{namespace}/{name}", path=path + ("name",))


def _grants(ctx: Context) -> dict[str, list[Resource]]:
    return ctx.index("gatewayapi.grants", lambda c: _by_namespace(of_group(c, "ReferenceGrant", GROUP)))


def _by_namespace(items: list[Resource]) -> dict[str, list[Resource]]:
    out: dict[str, list[Resource]] = {}
    for r in items:
        out.setdefault(r.namespace or "", []).append(r)
    return out


def granted(ctx: Context, from_group: str, from_kind: str, from_ns: str,
            to_group: str, to_kind: str, to_ns: str, to_name: str) -> bool:
    """Whether a ReferenceGrant in `to_ns` lets objects of a kind in `from_ns` refer to the target."""
    for grant in _grants(ctx).get(to_ns, ()):
        spec = grant.spec
        froms = [f for f in as_list(spec.get("from")) if isinstance(f, dict)]
        tos = [t for t in as_list(spec.get("to")) if isinstance(t, dict)]
        if not any(_str(f.get("group")) == from_group and f.get("kind") == from_kind
                   and f.get("namespace") == from_ns for f in froms):
            continue
        if any(_str(t.get("group")) == to_group and t.get("kind") == to_kind
               and (not t.get("name") or t.get("name") == to_name) for t in tos):
            return True
    return False


# --- hostnames ----------------------------------------------------------------------------------

def hostnames_intersect(a: str, b: str) -> bool:
    """Whether two Gateway API hostnames (a leading `*.` wildcard allowed) can name the same host."""
    if a == b:
        return True
    aw, bw = a.startswith("*."), b.startswith("*.")
    if aw and bw:
        return a.endswith(b[1:]) or b.endswith(a[1:])
    if aw:
        return b.endswith(a[1:]) and len(b) > len(a) - 1
    if bw:
        return a.endswith(b[1:]) and len(a) > len(b) - 1
    return False


# --- parents --------------------------------------------------------------------------------------

def _allowed_kinds(listener: dict) -> tuple[str, ...] | None:
    """Route kinds a listener accepts; None when meshctl cannot tell (a protocol it does not know)."""
    kinds = dig(listener, "allowedRoutes", "kinds")
    if isinstance(kinds, list) and kinds:
        return tuple(_str(k.get("kind")) for k in kinds
                     if isinstance(k, dict) and _str(k.get("group"), GROUP) == GROUP)
    return DEFAULT_ROUTE_KINDS.get(_str(listener.get("protocol")))


def _namespace_allowed(ctx: Context, listener: dict, gateway: Resource, route_ns: str) -> bool | None:
    """Whether the listener accepts routes from `route_ns`; None when the namespace's labels are
    not in the input."""
    namespaces = as_dict(dig(listener, "allowedRoutes", "namespaces"))
    source = _str(namespaces.get("from"), "Same")
    if source == "All":
        return True
    if source == "Same":
        return route_ns == (gateway.namespace or "")
    if source == "Selector":
        ns = namespace_object(ctx, route_ns)
        if ns is None:
            return None
        labels = {**ns.labels, "kubernetes.io/metadata.name": route_ns}
        return matches_label_selector(namespaces.get("selector"), labels)
    return None


def _route_hostnames(route: Resource) -> list[str]:
    return [h for h in as_list(route.spec.get("hostnames")) if isinstance(h, str)]


@register
class RouteParentAnalyzer(Analyzer):
    name = "gatewayapi.RouteParentAnalyzer"
    description = ("Checks that the parents of Gateway API routes exist and that a listener of each "
                   "parent Gateway accepts the route (namespace, kind, hostname)")
    inputs = ROUTE_KINDS + ("Gateway", "Service", "ServiceEntry", "Namespace")

    def analyze(self, ctx: Context) -> None:
        gws = gateways(ctx)
        for route in routes(ctx):
            ns = route.namespace or ""
            for i, ref in enumerate(as_list(route.spec.get("parentRefs"))):
                if not isinstance(ref, dict) or not ref.get("name"):
                    continue
                group, kind, pns, pname = _ref(ref, GROUP, "Gateway", ns)
                path = ("spec", "parentRefs", i)
                if group == GROUP and kind == "Gateway":
                    gw = gws.get((pns, pname))
                    if gw is None:
                        ctx.report("IST0101", route, "gateway", f"{pns}/{pname}", path=path + ("name",))
                    else:
                        self._listeners(ctx, route, gw, ref, path)
                else:
                    check_service_ref(ctx, route, group, kind, pns, pname, ref.get("port"), path)

    def _listeners(self, ctx: Context, route: Resource, gw: Resource, ref: dict, path: tuple) -> None:
        listeners = [l for l in as_list(gw.spec.get("listeners")) if isinstance(l, dict)]
        section = ref.get("sectionName")
        if isinstance(section, str) and section:
            listeners = [l for l in listeners if l.get("name") == section]
            if not listeners:
                ctx.report("IST0101", route, "gateway listener", f"{gw.full_name}/{section}",
                           path=path + ("sectionName",))
                return
        if isinstance(ref.get("port"), int):
            listeners = [l for l in listeners if l.get("port") == ref["port"]]
        if not listeners:
            return
        ns = route.namespace or ""
        by_kind, by_ns = [], []
        for listener in listeners:
            kinds = _allowed_kinds(listener)
            kind_ok = kinds is None or route.kind in kinds
            ns_ok = _namespace_allowed(ctx, listener, gw, ns) is not False
            if kind_ok and ns_ok:
                host = _str(listener.get("hostname"))
                wanted = _route_hostnames(route)
                if not host or not wanted or any(hostnames_intersect(host, h) for h in wanted):
                    return  # accepted
            elif not kind_ok:
                by_kind.append(listener)
            else:
                by_ns.append(listener)
        target = f"Gateway {gw.full_name}" + (f" listener {section}" if isinstance(section, str) and section else "")
        if by_kind or by_ns:
            reason = (f"its listeners do not accept {route.kind} (allowedRoutes.kinds or protocol)" if not by_ns
                      else f"its listeners do not accept routes from namespace {ns} (allowedRoutes.namespaces)")
            ctx.report("MSH0201", route, target, reason, path=path)
        else:
            hosts = sorted({_str(l.get("hostname")) for l in listeners})
            ctx.report("MSH0202", route, target, ", ".join(_route_hostnames(route)), ", ".join(hosts),
                       path=("spec", "hostnames"))


# --- backends -------------------------------------------------------------------------------------

def _backend_refs(route: Resource) -> Iterator[tuple[int, int, dict]]:
    for i, rule in enumerate(as_list(route.spec.get("rules"))):
        for j, ref in enumerate(as_list(dig(rule, "backendRefs"))):
            if isinstance(ref, dict) and ref.get("name"):
                yield i, j, ref


@analyzer("gatewayapi.RouteBackendAnalyzer",
          "Checks that the backends of Gateway API routes exist, that references into "
                   "other namespaces are allowed by a ReferenceGrant, and that weights are not all zero",
          inputs=ROUTE_KINDS + ("Gateway", "Service", "ServiceEntry", "ReferenceGrant"))
def route_backend(ctx: Context) -> None:
    for route in routes(ctx):
        ns = route.namespace or ""
        for i, j, ref in _backend_refs(route):
            group, kind, bns, bname = _ref(ref, "", "Service", ns)
            path = ("spec", "rules", i, "backendRefs", j)
            check_service_ref(ctx, route, group, kind, bns, bname, ref.get("port"), path)
            if bns != ns and not granted(ctx, GROUP, route.kind, ns, group, kind, bns, bname):
                ctx.report("MSH0203", route, f"{kind} {bns}/{bname}", bns, route.kind, ns,
                           path=path + ("namespace",))
        for i, rule in enumerate(as_list(route.spec.get("rules"))):
            refs = [r for r in as_list(dig(rule, "backendRefs")) if isinstance(r, dict)]
            if refs and all(r.get("weight", 1) == 0 for r in refs):
                ctx.report("MSH0204", route, i, path=("spec", "rules", i, "backendRefs"))
    for gw in gateways(ctx).values():
        ns = gw.namespace or ""
        for i, listener in enumerate(as_list(gw.spec.get("listeners"))):
            for j, ref in enumerate(as_list(dig(listener, "tls", "certificateRefs"))):
                if not isinstance(ref, dict) or not ref.get("name"):
                    continue
                group, kind, sns, sname = _ref(ref, "", "Secret", ns)
                if sns != ns and not granted(ctx, GROUP, "Gateway", ns, group, kind, sns, sname):
                    ctx.report("MSH0203", gw, f"{kind} {sns}/{sname}", sns, "Gateway", ns,
                               path=("spec", "listeners", i, "tls", "certificateRefs", j, "namespace"))


# --- conflicting routes ---------------------------------------------------------------------------

def _match_key(match: Any) -> tuple:
    m = as_dict(match)
    path = as_dict(m.get("path")) if "path" in m else {"type": "PathPrefix", "value": "/"}
    headers = tuple(sorted((_str(h.get("type"), "Exact"), _str(h.get("name")).lower(), str(h.get("value")))
                           for h in as_list(m.get("headers")) if isinstance(h, dict)))
    query = tuple(sorted((_str(q.get("type"), "Exact"), _str(q.get("name")), str(q.get("value")))
                         for q in as_list(m.get("queryParams")) if isinstance(q, dict)))
    return (_str(path.get("type"), "PathPrefix"), _str(path.get("value"), "/"), _str(m.get("method")), headers, query)


def _describe_match(key: tuple) -> str:
    ptype, value, method, headers, query = key
    parts = [f"{ptype} {value}"] + ([f"method {method}"] if method else [])
    parts += [f"header {n}={v}" for _, n, v in headers] + [f"query {n}={v}" for _, n, v in query]
    return ", ".join(parts)


@analyzer("gatewayapi.ConflictingRouteAnalyzer",
          "Checks that no two HTTPRoutes claim the same hostname, match and parent with different backends",
          inputs=("HTTPRoute",))
def conflicting_route(ctx: Context) -> None:
    # every (parent, hostname, match) a route claims; backends are compared only where two
    # routes claim the same one
    claims: dict[tuple, list[tuple[Resource, int, int]]] = {}
    for route in of_group(ctx, "HTTPRoute", GROUP):
        ns = route.namespace or ""
        spec = route.spec
        parents = [_ref(ref, GROUP, "Gateway", ns) + (_str(ref.get("sectionName")), str(ref.get("port", "")))
                   for ref in as_list(spec.get("parentRefs")) if isinstance(ref, dict) and ref.get("name")]
        if not parents:
            continue
        hosts = _route_hostnames(route) or [""]
        for i, rule in enumerate(as_list(spec.get("rules"))):
            for j, match in enumerate(as_list(dig(rule, "matches")) or [{}]):
                mkey = _match_key(match)
                for parent in parents:
                    for host in hosts:
                        claims.setdefault((parent, host, mkey), []).append((route, i, j))
    for (parent, host, mkey), claimants in claims.items():
        if len({id(r) for r, _, _ in claimants}) < 2:
            continue
        # Gateway API precedence: the oldest route, then the first by namespace/name
        claimants.sort(key=lambda c: (_str(c[0].metadata.get("creationTimestamp"), "~"),
                                      c[0].namespace or "", c[0].name, c[1], c[2]))
        first, fi, _ = claimants[0]
        first_backends = _backends(first, fi)
        reported: set[int] = {id(first)}
        for route, i, j in claimants[1:]:
            if id(route) in reported or _backends(route, i) == first_backends:
                continue
            reported.add(id(route))
            where = ("spec", "rules", i, "matches", j) if dig(route.spec, "rules", i, "matches") else ("spec", "rules", i)
            ctx.report("MSH0205", route, first.origin, host or "any hostname", _describe_match(mkey),
                       f"{parent[1]} {parent[2]}/{parent[3]}", path=where)


def _backends(route: Resource, rule: int) -> tuple:
    ns = route.namespace or ""
    return tuple(sorted((_ref(b, "", "Service", ns), str(b.get("port")), b.get("weight", 1))
                        for b in as_list(dig(route.spec, "rules", rule, "backendRefs")) if isinstance(b, dict)))


# --- waypoints ------------------------------------------------------------------------------------

@analyzer("gatewayapi.WaypointReferenceAnalyzer",
          "Checks that the waypoints named by istio.io/use-waypoint labels exist",
          inputs=("Namespace", "Service", "ServiceEntry", "Pod", "Gateway"))
def waypoint_reference(ctx: Context) -> None:
    gws = gateways(ctx)
    for kind in ("Namespace", "Service", "ServiceEntry", "Pod"):
        for r in ctx.of_kind(kind):
            name = r.labels.get(USE_WAYPOINT)
            if not isinstance(name, str) or not name or name == "none":
                continue
            home = r.name if kind == "Namespace" else (r.namespace or "")
            ns = r.labels.get(USE_WAYPOINT_NAMESPACE) or home
            if (str(ns), name) not in gws:
                ctx.report("IST0101", r, "waypoint", f"{ns}/{name}", path=("metadata", "labels", USE_WAYPOINT))


# --- ambient authorization -------------------------------------------------------------------------

_L4_WHEN = frozenset({"source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"})
_L7_OPERATION = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")
_L7_SOURCE = ("requestPrincipals", "notRequestPrincipals", "remoteIpBlocks", "notRemoteIpBlocks")


def l7_attributes(policy: Resource) -> list[tuple[str, tuple]]:
    """(attribute, path) of every HTTP attribute in an AuthorizationPolicy's rules: what ztunnel,
    which sees connections and not requests, cannot match."""
    out = []
    for i, rule in enumerate(as_list(policy.spec.get("rules"))):
        for j, to in enumerate(as_list(dig(rule, "to"))):
            op = as_dict(dig(to, "operation"))
            out += [(k, ("spec", "rules", i, "to", j, "operation", k)) for k in _L7_OPERATION if op.get(k)]
        for j, frm in enumerate(as_list(dig(rule, "from"))):
            src = as_dict(dig(frm, "source"))
            out += [(k, ("spec", "rules", i, "from", j, "source", k)) for k in _L7_SOURCE if src.get(k)]
        for j, when in enumerate(as_list(dig(rule, "when"))):
            key = dig(when, "key")
            if isinstance(key, str) and key not in _L4_WHEN:
                out.append((key, ("spec", "rules", i, "when", j, "key")))
    return out


def _ambient_workloads(ctx: Context, policy: Resource) -> list[Resource]:
    """The workloads a selector policy applies to that run in ambient mode (ztunnel)."""
    ns = policy.namespace or ""
    ns_obj = namespace_object(ctx, ns)
    ns_ambient = namespace_in_ambient(ns_obj)
    selector = dig(policy.spec, "selector", "matchLabels")
    out = []
    for w in workloads(ctx).select(selector if isinstance(selector, dict) else None, ns):
        mode = _str(dig(w.body, "metadata", "labels", DATAPLANE_MODE)) if w.kind == "Pod" else \
            _str(dig(w.body, *WORKLOAD_KINDS[w.kind], "metadata", "labels", DATAPLANE_MODE))
        if mode == "ambient" or (ns_ambient and mode != "none"):
            out.append(w)
    return out


def _ambient_namespaces(ctx: Context) -> set[str]:
    """Namespaces that may run ambient workloads: labelled for ambient, or with a workload whose
    pods are (built once per run, so policies elsewhere cost nothing)."""
    def build(c: Context) -> set[str]:
        out = {ns.name for ns in c.of_kind("Namespace") if namespace_in_ambient(ns)}
        # pods (and pod templates) labelled for ambient, from the shared workload index
        out.update(ns for (ns, key, value) in workloads(c).by_label if key == DATAPLANE_MODE and value == "ambient")
        return out
    return ctx.index("gatewayapi.ambient-namespaces", build)


def _gateway_is_istio(ctx: Context, gw: Resource) -> bool:
    cls = _str(gw.spec.get("gatewayClassName"))
    if cls in ISTIO_CLASSES:
        return True
    gc = ctx.resources.get("GatewayClass", None, cls, group=GROUP)
    return gc is not None and _str(gc.spec.get("controllerName")) in ISTIO_CONTROLLERS


@analyzer("gatewayapi.AmbientPolicyAnalyzer",
          "Checks that AuthorizationPolicies with HTTP rules on ambient workloads are enforced "
                   "by a waypoint, and that policies target Gateways Istio programs",
          inputs=("AuthorizationPolicy", "Namespace", "Pod", *WORKLOAD_KINDS, "Gateway", "GatewayClass"))
def ambient_policy(ctx: Context) -> None:
    gws = gateways(ctx)
    ambient_namespaces = _ambient_namespaces(ctx)
    for policy in ctx.of_kind("AuthorizationPolicy"):
        if policy.group != "security.istio.io":
            continue
        spec = policy.spec
        targets = [t for t in as_list(spec.get("targetRefs")) if isinstance(t, dict)]
        target_path = "targetRefs"
        if isinstance(spec.get("targetRef"), dict):
            targets, target_path = [spec["targetRef"]], "targetRef"
        if targets:
            for i, t in enumerate(targets):
                group, kind, _, name = _ref(t, "", "", policy.namespace or "")
                if group != GROUP or kind != "Gateway" or not name:
                    continue
                path = ("spec", target_path) + ((i,) if target_path == "targetRefs" else ())
                gw = gws.get((policy.namespace or "", name))
                if gw is None:
                    ctx.report("IST0101", policy, "gateway", f"{policy.namespace}/{name}", path=path + ("name",))
                elif not _gateway_is_istio(ctx, gw):
                    ctx.report("MSH0207", policy, gw.full_name, _str(gw.spec.get("gatewayClassName")), path=path)
            continue
        if (policy.namespace or "") not in ambient_namespaces or _str(spec.get("action"), "ALLOW") not in ("ALLOW", "DENY"):
            continue
        attributes = l7_attributes(policy)
        if not attributes:
            continue
        ambient = _ambient_workloads(ctx, policy)
        if not ambient:
            continue
        names = sorted(dict.fromkeys(a for a, _ in attributes))
        action = _str(spec.get("action"), "ALLOW")
        effect = ("its rules that use them never match, so it allows less than written" if action == "ALLOW"
                  else "it is enforced without them, so it denies more than written")
        waypoint = _waypoint_for(ctx, policy.namespace or "")
        fix = (f"target the waypoint instead of selecting workloads: spec.targetRefs: [{{kind: Gateway, "
               f"group: gateway.networking.k8s.io, name: {waypoint}}}]" if waypoint else
               f"deploy a waypoint ('meshctl waypoint apply -n {policy.namespace} --enroll-namespace') and "
               "target it with spec.targetRefs instead of spec.selector")
        sample = ", ".join(sorted(f"{w.kind} {w.name}" for w in ambient)[:3]) + (", ..." if len(ambient) > 3 else "")
        ctx.report("MSH0206", policy, ", ".join(names), f"{len(ambient)} ambient workload(s) ({sample})", effect, fix,
                   path=attributes[0][1])


def _waypoint_for(ctx: Context, namespace: str) -> str | None:
    ns = namespace_object(ctx, namespace)
    name = ns.labels.get(USE_WAYPOINT) if ns is not None else None
    return name if isinstance(name, str) and name and name != "none" else None

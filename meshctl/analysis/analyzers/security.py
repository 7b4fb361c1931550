"""meshctl's own posture checks (MSH01xx): mutual TLS, authorization defaults, TLS toward mesh
hosts, HTTPS redirects, JWT enforcement, and route settings that surprise people.

All analyzers here are named `security.*`, so `--analyzers security` selects them together.
Each builds its indexes once and looks workloads up by label, so a run stays linear.
"""
from __future__ import annotations

import ipaddress

from meshctl.analysis.framework import Analyzer, Context, analyzer, as_dict, as_list, dig, register
from meshctl.analysis.helpers import (
    INJECT_LABEL,
    INJECTION_LABEL,
    WORKLOAD_KINDS,
    namespace_object,
    template_annotations,
    template_labels,
    workloads,
)
from meshctl.resources import Resource, yaml_text
from meshctl.selectors import selector_string

MAX_NAMES = 3


def _root(ctx: Context) -> str:
    return yaml_text(ctx.mesh_config.get("rootNamespace") or ctx.istio_namespace)


def _names(items: list[Resource]) -> str:
    names = sorted(f"{r.kind} {r.name}" for r in items)
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _opted_out(ctx: Context, r: Resource) -> bool:
    """Workloads explicitly kept out of the mesh (no sidecar, so mesh policy does not apply)."""
    if template_labels(r).get(INJECT_LABEL) == "false" or template_annotations(r).get(INJECT_LABEL) == "false":
        return True
    ns = namespace_object(ctx, r.namespace)
    return ns is not None and ns.labels.get(INJECTION_LABEL) == "disabled"


GATEWAY_TEMPLATES = "inject.istio.io/templates"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def _gateway(r: Resource, gateway_selectors: list[dict[str, str]]) -> bool:
    """A gateway workload (ingress, egress, Gateway API or waypoint): injected with the gateway
    template, deployed for a Gateway API gateway, or selected by an Istio Gateway. Its listeners
    face clients outside the mesh, so the mesh's mTLS and default-deny advice is not for it."""
    if "gateway" in (t.strip() for t in template_annotations(r).get(GATEWAY_TEMPLATES, "").split(",")):
        return True
    labels = template_labels(r)
    if GATEWAY_NAME_LABEL in labels:
        return True
    return any(all(labels.get(k) == v for k, v in sel.items()) for sel in gateway_selectors)


def _app_namespaces(ctx: Context) -> dict[str, list[Resource]]:
    """Workloads that should be in the mesh, per namespace, outside Istio's own and the root
    namespace (control plane and gateways live there), gateways elsewhere left out too."""
    def build(c: Context) -> dict[str, list[Resource]]:
        skip = {c.istio_namespace, _root(c)}
        out: dict[str, list[Resource]] = {}
        index = workloads(c)
        gateway_selectors = [sel for g in c.of_kind("Gateway") if g.group == "networking.istio.io"
                             for sel in [{yaml_text(k): yaml_text(v) for k, v in as_dict(g.spec.get("selector")).items()}]
                             if sel]
        for ns, entries in index.by_ns.items():
            if ns in skip:
                continue
            chosen = [r for r, _ in entries if not _opted_out(c, r) and not _owned_pod(c, r)
                      and not _gateway(r, gateway_selectors)]
            if chosen:
                out[ns] = chosen
        return out

    return ctx.index("security.app_namespaces", build)


def _owned_pod(ctx: Context, r: Resource) -> bool:
    """A Pod whose controller (Deployment via its ReplicaSet, StatefulSet, ...) is in the set and
    stands for it."""
    if r.kind != "Pod":
        return False
    for ref in as_list(r.metadata.get("ownerReferences")):
        ref = as_dict(ref)
        kind, name = yaml_text(ref.get("kind") or ""), yaml_text(ref.get("name") or "")
        if ctx.resources.get(kind, r.namespace, name) is not None:
            return True
        if kind == "ReplicaSet" and ctx.resources.get("Deployment", r.namespace, name.rsplit("-", 1)[0]) is not None:
            return True
    return False


def _namespace_anchor(ctx: Context, ns: str, items: list[Resource]) -> tuple[Resource, tuple]:
    """Where to report a finding about a namespace: its Namespace object, else its first workload."""
    obj = namespace_object(ctx, ns)
    if obj is not None:
        return obj, ("metadata", "name")
    first = min(items, key=lambda r: (r.source or "", r.line, r.kind, r.name))
    return first, ("metadata", "namespace")


def _selector(spec: dict) -> dict | None:
    sel = spec.get("selector")
    return as_dict(dig(sel, "matchLabels")) if sel is not None else None


def _has_target(spec: dict) -> bool:
    return spec.get("targetRef") is not None or bool(as_list(spec.get("targetRefs")))


# --- mutual TLS -------------------------------------------------------------------------------

def _mode(pa: Resource) -> str:
    return yaml_text(dig(pa.spec, "mtls", "mode") or "UNSET").upper()


@analyzer("security.PeerAuthenticationAnalyzer",
          "Checks that workloads require mutual TLS (PeerAuthentication mode STRICT)",
          inputs=("PeerAuthentication", "Pod", "Gateway", "Namespace", *WORKLOAD_KINDS))
def peer_authentication(ctx: Context) -> None:
    root = _root(ctx)
    mesh_mode = "UNSET"
    ns_policy: dict[str, Resource] = {}
    selected: list[Resource] = []
    for pa in ctx.of_kind("PeerAuthentication"):
        if _has_target(pa.spec):
            continue
        sel = _selector(pa.spec)
        ns = pa.namespace or ""
        if sel:
            selected.append(pa)
        elif ns == root:
            mesh_mode = _mode(pa)
            if mesh_mode in ("PERMISSIVE", "DISABLE"):
                ctx.report("MSH0102", pa, mesh_mode, path=("spec", "mtls", "mode"))
        else:
            ns_policy[ns] = pa

    apps = _app_namespaces(ctx)
    index = workloads(ctx)
    # workload-level policies override the namespace's mode for what they select
    override: dict[int, str] = {}
    for pa in selected:
        mode = _mode(pa)
        if mode == "UNSET":
            continue
        for r in index.select(_selector(pa.spec), pa.namespace):
            override.setdefault(id(r), mode)

    mesh_effective = mesh_mode if mesh_mode != "UNSET" else "PERMISSIVE"
    for ns, items in sorted(apps.items()):
        policy = ns_policy.get(ns)
        ns_mode = _mode(policy) if policy is not None else "UNSET"
        effective = ns_mode if ns_mode != "UNSET" else mesh_effective
        weak = [r for r in items if override.get(id(r), effective) != "STRICT"]
        if not weak:
            continue
        modes = sorted({override.get(id(r), effective) for r in weak})
        shown = "/".join(modes)
        if mesh_mode == "UNSET" and ns_mode == "UNSET" and modes == ["PERMISSIVE"]:
            shown = "PERMISSIVE (the default)"
        if policy is not None and ns_mode in ("PERMISSIVE", "DISABLE"):
            anchor, path = policy, ("spec", "mtls", "mode")
        else:
            anchor, path = _namespace_anchor(ctx, ns, weak)
        ctx.report("MSH0101", anchor, shown, len(weak), ns, _names(weak), ns, root, path=path)


# --- authorization ------------------------------------------------------------------------------

def _action(ap: Resource) -> str:
    return yaml_text(ap.spec.get("action") or "ALLOW").upper()


@analyzer("security.AuthorizationPolicyAnalyzer",
          "Checks for ALLOW policies that allow everything and workloads without a default deny",
          inputs=("AuthorizationPolicy", "Pod", "Gateway", "Namespace", *WORKLOAD_KINDS))
def authorization_policy(ctx: Context) -> None:
    root = _root(ctx)
    mesh_wide = False
    ns_wide: set[str] = set()
    selected: list[Resource] = []
    for ap in ctx.of_kind("AuthorizationPolicy"):
        if _action(ap) != "ALLOW":
            continue
        for i, rule in enumerate(as_list(ap.spec.get("rules"))):
            rule = as_dict(rule)
            if not any(as_list(rule.get(k)) for k in ("from", "to", "when")):
                ctx.report("MSH0103", ap, i, path=("spec", "rules", i))
        if _has_target(ap.spec):
            continue
        sel = _selector(ap.spec)
        if sel:
            selected.append(ap)
        elif (ap.namespace or "") == root:
            mesh_wide = True
        else:
            ns_wide.add(ap.namespace or "")
    if mesh_wide:
        return

    index = workloads(ctx)
    covered: set[int] = set()
    for ap in selected:
        covered.update(id(r) for r in index.select(_selector(ap.spec), ap.namespace))
    for ns, items in sorted(_app_namespaces(ctx).items()):
        if ns in ns_wide:
            continue
        open_ = [r for r in items if id(r) not in covered]
        if open_:
            anchor, path = _namespace_anchor(ctx, ns, open_)
            ctx.report("MSH0104", anchor, len(open_), ns, _names(open_), ns, root, path=path)


def _requires_principal(ap: Resource) -> bool:
    """Whether an ALLOW/DENY policy makes a request principal (a valid token) necessary."""
    action = _action(ap)
    for rule in as_list(ap.spec.get("rules")):
        rule = as_dict(rule)
        for frm in as_list(rule.get("from")):
            source = as_dict(as_dict(frm).get("source"))
            if action == "ALLOW" and as_list(source.get("requestPrincipals")):
                return True
            if action == "DENY" and as_list(source.get("notRequestPrincipals")):
                return True
        if action == "ALLOW":
            for cond in as_list(rule.get("when")):
                if yaml_text(as_dict(cond).get("key") or "").startswith("request.auth."):
                    return True
    return False


def _targets(spec: dict) -> frozenset:
    refs = as_list(spec.get("targetRefs")) or ([spec["targetRef"]] if isinstance(spec.get("targetRef"), dict) else [])
    return frozenset((yaml_text(as_dict(r).get("kind")), yaml_text(as_dict(r).get("name"))) for r in refs)


@register
class RequestAuthenticationAnalyzer(Analyzer):
    name = "security.RequestAuthenticationAnalyzer"
    description = "Checks that RequestAuthentication is paired with an AuthorizationPolicy requiring a token"
    inputs = ("RequestAuthentication", "AuthorizationPolicy")

    def analyze(self, ctx: Context) -> None:
        ras = ctx.of_kind("RequestAuthentication")
        if not ras:
            return
        root = _root(ctx)
        by_ns: dict[str, list[Resource]] = {}
        for ap in ctx.of_kind("AuthorizationPolicy"):
            if _requires_principal(ap):
                by_ns.setdefault(ap.namespace or "", []).append(ap)
        mesh_wide = any(_selector(ap.spec) is None and not _has_target(ap.spec) for ap in by_ns.get(root, []))
        for ra in ras:
            ns = ra.namespace or ""
            sel = _selector(ra.spec)
            targets = _targets(ra.spec)
            if mesh_wide and not targets:
                continue
            if self.enforced(sel, targets, by_ns.get(ns, [])):
                continue
            if targets:
                scope = "the targeted " + ", ".join(f"{k} {n}" for k, n in sorted(targets))
                path = ("spec", "targetRefs") if ra.spec.get("targetRefs") else ("spec", "targetRef")
            elif sel:
                scope = f"the workloads selected by {selector_string(sel)}"
                path = ("spec", "selector")
            else:
                scope = "the mesh" if ns == root else f"the workloads of namespace {ns}"
                path = ("metadata", "name")
            ctx.report("MSH0107", ra, scope, path=path)

    @staticmethod
    def enforced(sel: dict | None, targets: frozenset, candidates: list[Resource]) -> bool:
        for ap in candidates:
            if targets:
                if _targets(ap.spec) == targets:
                    return True
                continue
            if _has_target(ap.spec):
                continue
            ap_sel = _selector(ap.spec)
            if not ap_sel:  # the whole namespace
                return True
            # the policy selects at least every workload the RequestAuthentication selects
            if sel and all(yaml_text(sel.get(k)) == yaml_text(v) and k in sel for k, v in ap_sel.items()):
                return True
        return False


# --- TLS toward mesh hosts ---------------------------------------------------------------------

def _service_hosts(ctx: Context) -> set[str]:
    def build(c: Context) -> set[str]:
        domain = yaml_text(c.mesh_config.get("clusterDomain") or "cluster.local")
        return {f"{s.name}.{s.namespace or 'default'}.svc.{domain}" for s in c.of_kind("Service")}

    return ctx.index("security.service_hosts", build)


def mesh_host(ctx: Context, host: str, namespace: str | None) -> bool:
    """Whether a DestinationRule host is a Kubernetes service of the mesh."""
    host = host.strip().lower()
    if not host or host == "*":
        return False
    domain = yaml_text(ctx.mesh_config.get("clusterDomain") or "cluster.local")
    if host.endswith(f".svc.{domain}") or host.endswith(".svc"):
        return True
    parts = host.split(".")
    services = _service_hosts(ctx)
    if len(parts) == 1:
        return f"{host}.{namespace or 'default'}.svc.{domain}" in services
    if len(parts) == 2:
        return f"{host}.svc.{domain}" in services
    return False


def _tls_disabled(policy: dict, prefix: tuple):
    """Paths of tls.mode DISABLE in a traffic policy (and its port-level settings)."""
    if yaml_text(dig(policy, "tls", "mode") or "").upper() == "DISABLE":
        yield (*prefix, "tls", "mode")
    for i, pls in enumerate(as_list(policy.get("portLevelSettings"))):
        if yaml_text(dig(pls, "tls", "mode") or "").upper() == "DISABLE":
            yield (*prefix, "portLevelSettings", i, "tls", "mode")


@analyzer("security.DestinationRuleTLSAnalyzer",
          "Checks for DestinationRules that turn TLS off toward hosts inside the mesh",
          inputs=("DestinationRule",))
def destination_rule_tls(ctx: Context) -> None:
    for dr in ctx.of_kind("DestinationRule"):
        host = yaml_text(dr.spec.get("host") or "")
        paths = list(_tls_disabled(as_dict(dr.spec.get("trafficPolicy")), ("spec", "trafficPolicy")))
        for j, subset in enumerate(as_list(dr.spec.get("subsets"))):
            paths += _tls_disabled(as_dict(as_dict(subset).get("trafficPolicy")),
                                   ("spec", "subsets", j, "trafficPolicy"))
        if paths and mesh_host(ctx, host, dr.namespace):
            for path in paths:
                ctx.report("MSH0105", dr, host, path=path)


# --- gateways -----------------------------------------------------------------------------------

LOCAL_SUFFIXES = (".local", ".localhost", ".internal", ".svc", ".test", ".example", ".invalid", ".lan", ".home.arpa")
HTTP_PROTOCOLS = ("HTTP", "HTTP2")
TLS_PROTOCOLS = ("HTTPS", "TLS")


def _bare_host(host: str) -> str:
    """A Gateway host without its `namespace/` prefix."""
    return host.split("/", 1)[1] if "/" in host else host


def public_host(host: str) -> bool:
    """A DNS name reachable from outside: dotted, not a wildcard-only host, not a local or
    reserved name, not a private address."""
    h = host.lower().rstrip(".")
    if h in ("*", "localhost") or "." not in h or h.endswith(LOCAL_SUFFIXES):
        return False
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return True
    return ip.is_global


class _HostSet:
    """Hosts served over HTTPS by gateways of one selector: exact names, wildcards, suffixes."""

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.suffixes: set[str] = set()  # every parent domain of an exact host
        self.star = False

    def add(self, host: str) -> None:
        h = host.lower()
        if h == "*":
            self.star = True
            return
        self.exact.add(h)
        parts = h.lstrip("*.").split(".")
        for i in range(len(parts)):
            self.suffixes.add(".".join(parts[i:]))

    def overlaps(self, host: str) -> bool:
        h = host.lower()
        if self.star or h in self.exact:
            return True
        if h == "*":
            return bool(self.exact)
        if h.startswith("*."):
            return h[2:] in self.suffixes
        parts = h.split(".")
        return any("*." + ".".join(parts[i:]) in self.exact for i in range(1, len(parts)))


def _external_hosts(ctx: Context) -> set[str]:
    """Hosts that ServiceEntries declare outside the mesh (location MESH_EXTERNAL, the default)."""
    def build(c: Context) -> set[str]:
        return {yaml_text(h).lower().rstrip(".") for se in c.of_kind("ServiceEntry")
                if yaml_text(se.spec.get("location") or "MESH_EXTERNAL").upper() != "MESH_INTERNAL"
                for h in as_list(se.spec.get("hosts"))}

    return ctx.index("security.external_hosts", build)


def _external(host: str, external: set[str]) -> bool:
    """Whether a gateway host is (or falls under a wildcard of) a host outside the mesh."""
    h = host.lower().rstrip(".")
    if h in external:
        return True
    parts = h.lstrip("*.").split(".")
    return any("*." + ".".join(parts[i:]) in external for i in range(1, len(parts)))


@analyzer("security.GatewayHTTPSRedirectAnalyzer",
          "Checks that Gateway servers serving plain HTTP redirect to HTTPS",
          inputs=("Gateway", "ServiceEntry"))
def gateway_https_redirect(ctx: Context) -> None:
    gateways = [g for g in ctx.of_kind("Gateway") if g.group == "networking.istio.io"]
    https: dict[str, _HostSet] = {}
    for g in gateways:
        key = selector_string(g.spec.get("selector"))
        for server in as_list(g.spec.get("servers")):
            server = as_dict(server)
            if yaml_text(dig(server, "port", "protocol") or "").upper() in TLS_PROTOCOLS:
                hosts = https.setdefault(key, _HostSet())
                for h in as_list(server.get("hosts")):
                    hosts.add(_bare_host(yaml_text(h)))
    external = _external_hosts(ctx)
    for g in gateways:
        key = selector_string(g.spec.get("selector"))
        secured = https.get(key)
        for i, server in enumerate(as_list(g.spec.get("servers"))):
            server = as_dict(server)
            if yaml_text(dig(server, "port", "protocol") or "").upper() not in HTTP_PROTOCOLS:
                continue
            if dig(server, "tls", "httpsRedirect") is True:
                continue
            # A host a ServiceEntry puts outside the mesh is served by an egress gateway: its
            # clients are the mesh's own workloads, and TLS is usually originated past it.
            hosts = [h for h in (_bare_host(yaml_text(h)) for h in as_list(server.get("hosts")))
                     if not _external(h, external)]
            finding = next(((h, "the host is also served over HTTPS") for h in hosts
                            if secured is not None and secured.overlaps(h)), None)
            if finding is None:
                finding = next(((h, "the host is a public name") for h in hosts if public_host(h)), None)
            if finding is not None:
                ctx.report("MSH0106", g, i, finding[0], finding[1], path=("spec", "servers", i, "port", "protocol"))


# --- routes -------------------------------------------------------------------------------------

def _weight(dest: dict):
    w = dest.get("weight")
    return w if isinstance(w, int) and not isinstance(w, bool) else None


@analyzer("security.RouteWeightAnalyzer",
          "Checks that the destination weights of each route add up to 100",
          inputs=("VirtualService",))
def route_weight(ctx: Context) -> None:
    for vs in ctx.of_kind("VirtualService"):
        for kind in ("http", "tcp", "tls"):
            for i, route in enumerate(as_list(vs.spec.get(kind))):
                dests = [as_dict(d) for d in as_list(as_dict(route).get("route"))]
                weights = [_weight(d) for d in dests]
                if not any(w is not None for w in weights):
                    continue
                total = sum(w or 0 for w in weights)
                if total != 100:
                    ctx.report("MSH0108", vs, f"{kind}[{i}]", total, path=("spec", kind, i, "route"))


@analyzer("security.RetryTimeoutAnalyzer",
          "Checks that routes with retries set a per-try timeout",
          inputs=("VirtualService",))
def retry_timeout(ctx: Context) -> None:
    for vs in ctx.of_kind("VirtualService"):
        for i, route in enumerate(as_list(vs.spec.get("http"))):
            retries = as_dict(as_dict(route).get("retries"))
            attempts = retries.get("attempts")
            if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts > 0 \
                    and not retries.get("perTryTimeout"):
                ctx.report("MSH0109", vs, f"Route http[{i}]", attempts, path=("spec", "http", i, "retries"))

"""The HTTPRoute rewrite (Kubernetes Gateway API): weights over per-version Services.

A canary with the Gateway API splits a rule's `backendRefs` between one Service per version
(`reviews-v1`, `reviews-v2`), as Flagger and Argo Rollouts do, instead of the subsets of a
DestinationRule. The route of a host is the HTTPRoute whose `parentRefs` name the host's Service
(a mesh route, GAMMA), else one whose `hostnames` hold the host (an ingress route), else the one
named like it.

The *weighted rule* is the first rule that matches every request (no `matches`, or a match of
path prefix `/`: the API server's default) and sends it to Services; `shift` rewrites its
`backendRefs` (and its RequestMirror filter). Other rules stay as they are, except the A/B rule
meshctl itself manages (`--header NAME=VALUE`): one match on that header, to the canary. Gateway
API ranks rules by their matches, not their order (more header matches win over the catch-all),
so the header rule works wherever it stands; it is put just before the weighted rule, as with a
VirtualService, for readers.

Weights of backendRefs are relative (default 1); `current_weights` gives the effective
percentages, and `apply_shift` writes the percentages asked for (summing to 100).

Same module interface as `virtualservice` (KIND, find, versions, resolve, current_weights,
apply_shift, metric_subject). Pure functions over dicts.
"""
from __future__ import annotations

import copy
from typing import Any, Optional

from meshctl.canary.plan import Found, Shift, choose, copy_with_list, namespace_of, ref
from meshctl.errors import InputError
from meshctl.hosts import service_fqdn, short_name
from meshctl.resources import as_dict, as_list

KIND = "HTTPRoute"
GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GROUP}/v1"
VERSIONS_KIND = ("v1", "Service")  # what defines the versions a route splits between
VERSION_WORD = "backend Service"
MIRROR = "RequestMirror"


# --- references ------------------------------------------------------------------------------
def _is_service(backend: Any) -> bool:
    """A backendRef (or parentRef with kind given) to a core Service."""
    return (isinstance(backend, dict) and backend.get("group", "") in ("", None)
            and backend.get("kind", "Service") == "Service" and isinstance(backend.get("name"), str))


def backend_name(backend: dict, route_ns: str | None) -> str:
    """How a backend Service is named in weights: its name, `ns/name` in another namespace."""
    ns = backend.get("namespace")
    return f"{ns}/{backend['name']}" if isinstance(ns, str) and ns and ns != route_ns else backend["name"]


def serves_host(route: dict, host: str, namespace: str | None) -> bool:
    route_ns = namespace_of(route, namespace)
    want = service_fqdn(host, namespace or route_ns)
    spec = as_dict(route.get("spec"))
    for parent in as_list(spec.get("parentRefs")):
        if (isinstance(parent, dict) and parent.get("kind") == "Service" and parent.get("group") in ("", None)
                and isinstance(parent.get("name"), str)):
            ns = parent.get("namespace") if isinstance(parent.get("namespace"), str) else route_ns
            if service_fqdn(f"{parent['name']}.{ns}", None) == want:
                return True
    wanted = host.strip().lower().rstrip(".")
    return any(isinstance(h, str) and h.lower() == wanted for h in as_list(spec.get("hostnames")))


def _rules(route: dict) -> list:
    return as_list(as_dict(route.get("spec")).get("rules"))


def _matches_everything(rule: dict) -> bool:
    """No `matches` (the API server then writes a path prefix `/`), or one match of prefix `/`."""
    matches = rule.get("matches")
    if matches is None or matches == []:
        return True
    for m in as_list(matches):
        if isinstance(m, dict) and set(m) <= {"path"}:
            path = as_dict(m.get("path"))
            if path.get("type", "PathPrefix") == "PathPrefix" and path.get("value", "/") == "/":
                return True
    return False


def _service_backends(rule: dict) -> list:
    refs = as_list(rule.get("backendRefs"))
    return refs if refs and all(_is_service(b) for b in refs) else []


def weighted_rule_index(route: dict) -> int | None:
    """The first rule that takes every request to Services."""
    for i, rule in enumerate(_rules(route)):
        if isinstance(rule, dict) and _matches_everything(rule) and _service_backends(rule):
            return i
    return None


def find(items: list[dict], host: str, namespace: str | None) -> dict | None:
    """The HTTPRoute (among `items`) for `host`: by parentRefs or hostnames, else by name."""
    return choose(items, KIND, host, namespace, serves_host, lambda r, h, ns: weighted_rule_index(r) is not None)


def versions(items: list[dict], host: str, namespace: str | None) -> list[dict]:
    """The Services among `items` in the namespace: the versions a route may split between."""
    return [s for s in items if isinstance(s, dict) and s.get("kind") == "Service"
            and namespace_of(s, namespace) == namespace and isinstance(as_dict(s.get("metadata")).get("name"), str)]


def _service_names(found: Found) -> list[str]:
    return [s["metadata"]["name"] for s in found.versions]


def defined(found: Found) -> list[str]:
    """The versions the route may split between: the Services known (in files, also the
    backends the route names)."""
    names = _service_names(found)
    if found.in_files and found.route is not None:
        names += [n for n, _ in current_weights(found.route, "", found.namespace) if n not in names]
    return names


def metric_subject(found: Found, host: str, canary: str) -> tuple[str, str, Optional[str]]:
    """(FQDN, subset, version label) whose metrics measure the canary: the canary Service's FQDN
    without subset (Envoy clusters `outbound|PORT||FQDN` on sidecars, `inbound-vip|PORT|http|FQDN`
    on waypoints); Prometheus selects it by `destination_service` alone."""
    ns, _, name = canary.rpartition("/")
    return service_fqdn(name, ns or found.namespace), "", None


# --- weights ---------------------------------------------------------------------------------
def _weight(backend: dict) -> int:
    w = backend.get("weight", 1)
    return w if isinstance(w, int) and not isinstance(w, bool) and w >= 0 else 0


def percentages(weights: list[int]) -> list[int]:
    """Relative weights as whole percentages summing to 100 (largest remainders round up);
    all zero stays all zero."""
    total = sum(weights)
    if total in (0, 100):
        return list(weights)
    from fractions import Fraction

    exact = [Fraction(100 * w, total) for w in weights]
    out = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in by_remainder[:100 - sum(out)]:
        out[i] += 1
    return out


def current_weights(route: dict, host: str, namespace: str | None) -> list[tuple[str, int]]:
    """[(backend Service, percentage)] of the weighted rule."""
    idx = weighted_rule_index(route)
    if idx is None:
        return []
    route_ns = namespace_of(route, namespace)
    backends = [b for b in _service_backends(_rules(route)[idx])]
    shares = percentages([_weight(b) for b in backends])
    return [(backend_name(b, route_ns), w) for b, w in zip(backends, shares)]


# --- resolving the names given ---------------------------------------------------------------
def resolve_name(found: Found, host: str, name: str) -> str:
    """A version as the user named it: a Service the route may use (`reviews-v2`), or its
    suffix after the host's name (`v2` for `reviews-v2`), so `--to v2` reads as with subsets."""
    known = defined(found)
    prefixed = f"{short_name(host)}-{name}"
    return prefixed if name not in known and prefixed in known else name


def resolve(found: Found, shift: Shift, flag: str = "--subsets") -> list[str]:
    """The backend Services `shift` applies to: --subsets (Service names, or version suffixes
    of the host's name), else the weighted rule's own; each must be a Service the target knows
    (on a cluster: exists in the route's namespace)."""
    known = defined(found)
    host = short_name(shift.host)
    current = [n for n, _ in current_weights(found.route, shift.host, found.namespace)] if found.route else []
    if shift.subsets is not None:
        subsets = [resolve_name(found, shift.host, n) for n in shift.subsets]
    elif len(current) == len(shift.weights):
        subsets = current
    else:
        raise InputError(
            f"{len(shift.weights)} weights given but cannot tell which Services of {shift.host} they apply to",
            hint=f"name them with {flag} (the route's backends: {', '.join(current) or 'none'}; "
                 f"Services: {', '.join(known) or 'none'})")
    if len(subsets) != len(shift.weights):
        raise InputError(f"{len(shift.weights)} weights for {len(subsets)} Services ({','.join(subsets)})",
                         hint=f"give one weight per Service, e.g. 90/10 with {flag} {host}-v1,{host}-v2")
    if len(set(subsets)) != len(subsets):
        raise InputError(f"{flag} names the Service {next(s for s in subsets if subsets.count(s) > 1)} twice")
    missing = [s if s.startswith(f"{host}-") else f"{s} (nor {host}-{s})" for s in subsets if s not in known]
    if missing:
        where = "in the files" if found.in_files else f"in namespace {found.namespace}"
        raise InputError(
            f"no Service {', '.join(missing)} {where} for {ref(found.route, found.namespace) if found.route else KIND} "
            f"to send traffic to (Services: {', '.join(known) or 'none'})",
            hint=("pass the file holding it with another -f" if found.in_files else
                  "create the Service for that version") + f", or pick an existing one with {flag}")
    return subsets


# --- the rewrite -----------------------------------------------------------------------------
def _port(route: dict, rule: Optional[dict]) -> Any:
    """The port new backendRefs get: that of the rule's backends, else of any backend in the
    route, else of the Service the route is attached to."""
    candidates = as_list((rule or {}).get("backendRefs")) + [b for r in _rules(route) if isinstance(r, dict)
                                                           for b in as_list(r.get("backendRefs"))]
    candidates += [p for p in as_list(as_dict(route.get("spec")).get("parentRefs")) if isinstance(p, dict)
                   and p.get("kind") == "Service"]
    return next((b.get("port") for b in candidates if isinstance(b, dict) and b.get("port") is not None), None)


def _backend(name: str, port: Any, route: dict) -> dict:
    if port is None:
        raise InputError(f"{ref(route)}: cannot tell the port of Service {name} (no backendRef or Service parent "
                         "of the route gives one)",
                         hint="add a backendRef with its port to the route's rule once, then shift again")
    ns, _, short = name.rpartition("/")
    out = {"name": short, "port": port}
    if ns:
        out["namespace"] = ns
    return out


def apply_shift(route: dict, shift: Shift) -> dict:
    """A copy of the HTTPRoute with the weighted rule's backendRefs set to the weights (a rule is
    appended when none takes every request), plus the header rule and mirror asked for."""
    new, rules = copy_with_list(route, "rules")
    route_ns = namespace_of(new, shift.namespace)
    idx = weighted_rule_index(new)
    old = _service_backends(rules[idx]) if idx is not None else []
    port = _port(new, rules[idx] if idx is not None else None)
    by_name = {backend_name(b, route_ns): b for b in old}
    refs = []
    for name, weight in zip(shift.subsets, shift.weights):
        b = copy.deepcopy(by_name[name]) if name in by_name else _backend(name, port, new)
        b["weight"] = weight
        refs.append(b)
    if idx is None:
        # two rules matching every request: the first one takes them, an appended one never would
        blocking = next((i for i, r in enumerate(rules) if isinstance(r, dict) and _matches_everything(r)), None)
        if blocking is not None:
            raise InputError(
                f"{ref(route)}: spec.rules[{blocking}] matches every request but does not send it to Services, so "
                f"a weighted rule added after it would never be reached",
                hint="give that rule Service backendRefs (or matches), then shift again")
        rules.append({"backendRefs": refs})
        idx = len(rules) - 1
    else:
        rules[idx]["backendRefs"] = refs
    versions = set(by_name) | set(shift.subsets)
    if shift.mirror is not None:
        _mirror(rules[idx], shift, refs[-1], versions, route_ns)
    if shift.header is not None:
        _header_rule(rules, idx, shift, refs[-1], versions, route_ns)
    return new


def _mirror_percent(value: float) -> dict:
    if value == int(value):
        return {"percent": int(value)}
    from fractions import Fraction

    f = Fraction(value).limit_denominator(100000) / 100
    return {"fraction": {"numerator": f.numerator, "denominator": f.denominator}}


def _mirror(rule: dict, shift: Shift, canary: dict, versions: set, route_ns: str | None) -> None:
    """Mirror `shift.mirror` percent of the rule's requests to the canary (RequestMirror); 0
    removes meshctl's mirror (one to a version Service)."""
    filters = [f for f in as_list(rule.get("filters"))]
    ours = [f for f in filters if isinstance(f, dict) and f.get("type") == MIRROR
            and _is_service(as_dict(f.get("requestMirror")).get("backendRef"))
            and backend_name(f["requestMirror"]["backendRef"], route_ns) in versions]
    kept = [f for f in filters if not any(f is o for o in ours)]
    if shift.mirror > 0:
        amount = _mirror_percent(shift.mirror)
        same = next((f for f in ours if backend_name(f["requestMirror"]["backendRef"], route_ns) == shift.canary
                     and {k: v for k, v in f["requestMirror"].items() if k in ("percent", "fraction")} == amount),
                    None)
        kept.append(same if same is not None else {"type": MIRROR, "requestMirror": {
            "backendRef": {k: v for k, v in canary.items() if k in ("name", "namespace", "port")}, **amount}})
    if kept:
        rule["filters"] = kept
    else:
        rule.pop("filters", None)


def _header_of(rule: dict, route_ns: str | None, versions: set) -> Optional[dict]:
    """The header match of a rule meshctl manages: one match on one exact header (and at most the
    default path prefix `/`), to version Services only."""
    matches = rule.get("matches")
    if not (isinstance(matches, list) and len(matches) == 1 and isinstance(matches[0], dict)):
        return None
    m = matches[0]
    headers = m.get("headers")
    if set(m) - {"headers", "path"} or not _matches_everything({"matches": [{"path": m.get("path", {})}]}):
        return None
    if not (isinstance(headers, list) and len(headers) == 1 and isinstance(headers[0], dict)
            and headers[0].get("type", "Exact") == "Exact" and isinstance(headers[0].get("name"), str)):
        return None
    backends = _service_backends(rule)
    if not backends or any(backend_name(b, route_ns) not in versions for b in backends):
        return None
    return headers[0]


def _header_rule(rules: list, idx: int, shift: Shift, canary: dict, versions: set, route_ns: str | None) -> None:
    """The A/B rule sending requests with the header to the canary: the one meshctl made before
    for this header name (its value and backend set), else a new one before the weighted rule."""
    name, value = shift.header
    backend = {k: v for k, v in canary.items() if k in ("name", "namespace", "port")}
    for i, rule in enumerate(rules):
        if i == idx or not isinstance(rule, dict):
            continue
        header = _header_of(rule, route_ns, versions)
        if header is None or header["name"].lower() != name.lower():
            continue
        header["value"] = value
        current = _service_backends(rule)
        if not (len(current) == 1 and backend_name(current[0], route_ns) == shift.canary):
            rule["backendRefs"] = [backend]
        return
    rules.insert(idx, {"matches": [{"headers": [{"name": name, "value": value}]}], "backendRefs": [backend]})


def new_route(name: str, namespace: str, port: int) -> dict:
    """An HTTPRoute for the Service `name` (a mesh route: its parent is the Service, on `port`)."""
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": name, "port": port}], "rules": []}}

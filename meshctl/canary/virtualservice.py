"""The VirtualService rewrite (Istio's API): weights over the subsets of a DestinationRule.

The *default route* of a VirtualService for a host is its first `http` entry without `match`
that routes to the host (the catch-all, evaluated last by Istio when it is last). `shift`
rewrites only its destinations (and mirror); routes with a `match` (header routes, URI routes)
stay as they are, except the A/B header route meshctl itself manages (`--header NAME=VALUE`).

Pure functions over dicts, with the same module interface as `httproute` (KIND, find,
versions, resolve, current_weights, apply_shift, metric_subject), so shift and rollout treat
both APIs alike.
"""
from __future__ import annotations

import copy
from typing import Any

from meshctl.canary.plan import Found, Shift, choose, copy_with_list, namespace_of, ref
from meshctl.errors import InputError
from meshctl.hosts import service_fqdn, short_name
from meshctl.resources import as_dict, as_list

KIND = "VirtualService"
API_VERSION = "networking.istio.io/v1"
VERSIONS_KIND = (API_VERSION, "DestinationRule")  # what defines the versions a route splits between
VERSION_WORD = "subset"


def serves_host(vs: dict, host: str, namespace: str | None) -> bool:
    ns = namespace_of(vs, namespace)
    want = service_fqdn(host, namespace or ns)
    return any(isinstance(h, str) and service_fqdn(h, ns) == want for h in as_list(as_dict(vs.get("spec")).get("hosts")))


def routes_to_host(dest_host: Any, host: str, namespace: str | None, vs_ns: str | None) -> bool:
    return isinstance(dest_host, str) and service_fqdn(dest_host, vs_ns or namespace) == service_fqdn(host, namespace)


def find_virtual_service(items: list[dict], host: str, namespace: str | None) -> dict | None:
    """The VirtualService (among `items`) serving `host`: by spec.hosts, else by name.
    Several candidates: the one with a default route to the host, else an error."""
    return choose(items, KIND, host, namespace, serves_host,
                  lambda v, h, ns: default_route_index(v, h, ns) is not None)


find = find_virtual_service


def find_destination_rule(items: list[dict], host: str, namespace: str | None) -> dict | None:
    for d in items:
        if not isinstance(d, dict) or d.get("kind") != "DestinationRule":
            continue
        h = as_dict(d.get("spec")).get("host")
        if isinstance(h, str) and service_fqdn(h, namespace_of(d, namespace)) == service_fqdn(host, namespace):
            return d
    return None


def versions(items: list[dict], host: str, namespace: str | None) -> list[dict]:
    """The DestinationRule for the host among `items`, as a list (empty when there is none)."""
    dr = find_destination_rule(items, host, namespace)
    return [dr] if dr is not None else []


def dr_subsets(dr: dict | None) -> list[str]:
    if not dr:
        return []
    return [s.get("name") for s in as_list(as_dict(dr.get("spec")).get("subsets"))
            if isinstance(s, dict) and isinstance(s.get("name"), str) and s.get("name")]


def defined(found: Found) -> list[str]:
    """The versions the route may split between: the DestinationRule's subsets."""
    return dr_subsets(found.versions[0] if found.versions else None)


def subset_labels(dr: dict | None, subset: str) -> dict:
    for s in as_list(as_dict(dr.get("spec")).get("subsets")) if dr else []:
        if isinstance(s, dict) and s.get("name") == subset:
            return as_dict(s.get("labels"))
    return {}


def metric_subject(found: Found, host: str, canary: str) -> tuple[str, str, str]:
    """(FQDN, subset, version label) whose metrics measure the canary: the host's FQDN and the
    subset (Envoy clusters `outbound|PORT|SUBSET|FQDN`), Prometheus' `destination_version`."""
    dr = found.versions[0] if found.versions else None
    return (service_fqdn(host, found.namespace), canary,
            str(subset_labels(dr, canary).get("version") or canary))


# --- routes ----------------------------------------------------------------------------------
def _http(vs: dict) -> list:
    return as_list(as_dict(vs.get("spec")).get("http"))


def _destination(route: Any) -> dict:
    return as_dict(route.get("destination")) if isinstance(route, dict) else {}


def _route_hosts(entry: dict) -> list:
    return [_destination(r).get("host") for r in as_list(entry.get("route")) if isinstance(r, dict)]


def default_route_index(vs: dict, host: str, namespace: str | None) -> int | None:
    vs_ns = namespace_of(vs)
    for i, entry in enumerate(_http(vs)):
        if not isinstance(entry, dict) or entry.get("match"):
            continue
        hosts = _route_hosts(entry)
        if hosts and all(routes_to_host(h, host, namespace, vs_ns) for h in hosts):
            return i
    return None


def current_weights(vs: dict, host: str, namespace: str | None) -> list[tuple[str, int]]:
    """[(subset, weight)] of the default route; a lone destination without weight has 100."""
    idx = default_route_index(vs, host, namespace)
    if idx is None:
        return []
    routes = [r for r in as_list(_http(vs)[idx].get("route")) if isinstance(r, dict)]
    out = []
    for r in routes:
        subset = _destination(r).get("subset")
        w = r.get("weight")
        if w is None:
            w = 100 if len(routes) == 1 else 0
        out.append((subset if isinstance(subset, str) else "",
                    int(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else 0))
    return out


def resolve_subsets(vs: dict | None, dr: dict | None, host: str, namespace: str | None,
                    weights: list[int], given: list[str] | None, where: str = "", flag: str = "--subsets",
                    no_rule_hint: str = "create one with subsets for each version, or use --create") -> list[str]:
    """The subsets the weights apply to: --subsets, else those of the current default route,
    else the DestinationRule's; each must be defined in the DestinationRule for the host."""
    defined_subsets = dr_subsets(dr)
    if given is not None:
        subsets = given
    else:
        current = [s for s, _ in current_weights(vs, host, namespace)] if vs else []
        if len(current) == len(weights) and all(current):
            subsets = current
        elif len(defined_subsets) == len(weights):
            subsets = defined_subsets
        else:
            raise InputError(
                f"{len(weights)} weights given but cannot tell which subsets of {host} they apply to",
                hint=f"name them with --subsets (defined: {', '.join(defined_subsets) or 'none'})")
    if len(subsets) != len(weights):
        raise InputError(f"{len(weights)} weights for {len(subsets)} subsets ({','.join(subsets)})",
                         hint="give one weight per subset, e.g. 90/10 with --subsets v1,v2")
    if dr is None:
        raise InputError(f"no DestinationRule for host {host}{where} defines subsets",
                         hint=no_rule_hint)
    missing = [s for s in subsets if s not in defined_subsets]
    if missing:
        raise InputError(
            f"subset {', '.join(repr(m) for m in missing)} is not defined in {ref(dr)} "
            f"(subsets: {', '.join(defined_subsets) or 'none'})",
            hint=f"add the subset to the DestinationRule, or pick an existing one with {flag}")
    return subsets


def resolve(found: Found, shift: Shift, flag: str = "--subsets") -> list[str]:
    """The subsets `shift` applies to on the found VirtualService (see resolve_subsets)."""
    hint = ("give the file holding it with another -f, or add one with a subset for each version" if found.in_files
            else "create one with subsets for each version, or use --create")
    return resolve_subsets(found.route, found.versions[0] if found.versions else None, shift.host, found.namespace,
                           shift.weights, shift.subsets, found.where, flag, hint)


def resolve_name(found: Found, host: str, name: str) -> str:
    """A subset as the user named it (subsets are named as they are)."""
    return name


def apply_shift(vs: dict, shift: Shift) -> dict:
    """A copy of the VirtualService with the default route's destinations set to the weights
    (a default route is appended when none exists), plus the header route and mirror asked for."""
    new, http = copy_with_list(vs, "http")
    vs_ns = namespace_of(new, shift.namespace)
    idx = default_route_index(new, shift.host, shift.namespace)
    old_routes = http[idx].get("route") if idx is not None else []
    dest_host = shift.host
    port = None
    for r in old_routes or []:
        d = (r or {}).get("destination") or {}
        if routes_to_host(d.get("host"), shift.host, shift.namespace, vs_ns):
            dest_host = d.get("host")
            port = port or d.get("port")
    by_subset = {((r or {}).get("destination") or {}).get("subset"): r for r in old_routes or []}
    routes = []
    for subset, weight in zip(shift.subsets, shift.weights):
        old = by_subset.get(subset)
        if isinstance(old, dict):
            r = copy.deepcopy(old)
            r["weight"] = weight
        else:
            dest = {"host": dest_host, "subset": subset}
            if port:
                dest["port"] = copy.deepcopy(port)
            r = {"destination": dest, "weight": weight}
        routes.append(r)
    if idx is None:
        # Istio takes the first matching entry: after a catch-all (an entry without `match`) a
        # new default route would never be reached.
        catch_all = next((i for i, e in enumerate(http) if isinstance(e, dict) and not e.get("match")), None)
        if catch_all is not None:
            hosts = ", ".join(sorted({str(h) for h in _route_hosts(http[catch_all]) if h})) or "no destination"
            raise InputError(
                f"{ref(vs)}: spec.http[{catch_all}] has no match, so it takes every request, and it routes to "
                f"{hosts}, not only to {shift.host}; a default route added after it would never be reached",
                hint=f"fix that route's destinations (a host typo?) so that they all go to {shift.host}, then shift again")
        http.append({"route": routes})
        idx = len(http) - 1
    else:
        http[idx]["route"] = routes
    entry = http[idx]
    if shift.mirror is not None:
        if shift.mirror > 0:
            entry["mirror"] = {"host": dest_host, "subset": shift.canary}
            entry["mirrorPercentage"] = {"value": shift.mirror}
        else:
            entry.pop("mirror", None)
            entry.pop("mirrorPercentage", None)
    if shift.header is not None:
        _header_route(http, idx, shift, dest_host, port, vs_ns)
    return new


def _header_route(http: list, idx: int, shift: Shift, dest_host: str, port: Any, vs_ns: str | None) -> None:
    """The A/B route sending requests with the header to the canary: the one meshctl made
    before for this header name (replaced), else a new one just before the default route."""
    name, value = shift.header
    route = [{"destination": {"host": dest_host, "subset": shift.canary, **({"port": port} if port else {})}}]
    match = [{"headers": {name: {"exact": value}}}]
    for i, e in enumerate(http):
        if i == idx or not isinstance(e, dict):
            continue
        m = e.get("match")
        if (isinstance(m, list) and len(m) == 1 and isinstance(m[0], dict)
                and set(m[0]) == {"headers"} and list((m[0].get("headers") or {})) == [name]
                and all(routes_to_host(h, shift.host, shift.namespace, vs_ns) for h in _route_hosts(e))):
            e["match"] = match
            e["route"] = route
            return
    http.insert(idx, {"match": match, "route": route})


# --- creation from pods' version labels ------------------------------------------------------
def versions_of(pods: list[dict]) -> list[str]:
    seen = []
    for p in pods:
        v = as_dict(as_dict(p.get("metadata")).get("labels")).get("version")
        if isinstance(v, str) and v and v not in seen:
            seen.append(v)
    return sorted(seen)


def new_destination_rule(host: str, namespace: str, versions: list[str]) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "DestinationRule",
        "metadata": {"name": short_name(host), "namespace": namespace},
        "spec": {"host": host, "subsets": [{"name": v, "labels": {"version": v}} for v in versions]},
    }


def new_virtual_service(host: str, namespace: str) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": short_name(host), "namespace": namespace},
        "spec": {"hosts": [host], "http": []},
    }

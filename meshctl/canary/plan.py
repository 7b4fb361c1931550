"""Pure planning: weight parsing ("90/10"), step schedules, durations, and the VirtualService rewrite.

Nothing here talks to a cluster or a file: each function takes plain dicts (objects as the API
server sends them) and returns new ones, so the same rewrite serves the cluster and GitOps files.

The *default route* of a VirtualService for a host is its first `http` entry without `match`
that routes to the host (the catch-all, evaluated last by Istio when it is last). `shift`
rewrites only its destinations (and mirror); routes with a `match` (header routes, URI routes)
stay as they are, except the A/B header route meshctl itself manages (`--header NAME=VALUE`).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from meshctl.errors import InputError
from meshctl.hosts import service_fqdn, short_name

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


# --- parsing ---------------------------------------------------------------------------------
def parse_weights(text: str) -> list[int]:
    """"90/10" → [90, 10]; "80/10/10" → [80, 10, 10]. Integers 0..100 summing to 100."""
    raw = str(text).strip()
    parts = raw.split("/")
    if len(parts) < 2:
        if raw.rstrip("%").strip() == "100":
            raise InputError(f"weights {raw!r} name one subset; a split needs two or more",
                             hint="to send everything to one subset, write 100/0 with --subsets THAT,OTHER")
        raise InputError(f"weights {raw!r} must be N/M (e.g. 90/10) or N/M/K", hint="the weights must sum to 100")
    weights = []
    for p in parts:
        p = p.strip().rstrip("%")
        if not p.isdigit():
            raise InputError(f"weights {raw!r}: {p!r} is not a whole number", hint="write e.g. 90/10")
        weights.append(int(p))
    if any(w > 100 for w in weights):
        raise InputError(f"weights {raw!r}: a weight exceeds 100", hint="each weight is a percentage")
    total = sum(weights)
    if total != 100:
        raise InputError(f"weights {raw!r} sum to {total}, not 100", hint="e.g. 90/10 or 80/10/10")
    return weights


def parse_subsets(text: str | None) -> list[str] | None:
    if text is None:
        return None
    subsets = [s.strip() for s in str(text).split(",") if s.strip()]
    if not subsets:
        raise InputError("--subsets is empty", hint="e.g. --subsets v1,v2")
    for s in subsets:
        if not _NAME.match(s):
            raise InputError(f"subset name {s!r} is not valid", hint="subset names are DNS labels, e.g. v1")
    if len(set(subsets)) != len(subsets):
        raise InputError(f"--subsets {text!r} names a subset twice")
    return subsets


def parse_header(text: str | None) -> tuple[str, str] | None:
    """"x-user=beta" → ("x-user", "beta")."""
    if text is None:
        return None
    name, sep, value = str(text).partition("=")
    name = name.strip()
    if not sep or not name or not value:
        raise InputError(f"--header {text!r} must be NAME=VALUE", hint="e.g. --header x-user=beta")
    if not _HEADER.match(name):
        raise InputError(f"--header {text!r}: {name!r} is not a valid header name")
    return name.lower(), value


def parse_percent(text: Any, what: str) -> float:
    raw = str(text).strip().rstrip("%")
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{what} {text!r} is not a number", hint="a percentage between 0 and 100") from None
    if not 0 <= value <= 100 or value != value:
        raise InputError(f"{what} {text!r} is outside 0..100", hint="a percentage between 0 and 100")
    return value


def parse_steps(text: str) -> list[int]:
    parts = [p.strip().rstrip("%") for p in str(text).split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise InputError(f"--steps {text!r} must be a list of weights", hint="e.g. --steps 5,10,25,50")
    return [int(p) for p in parts]


def step_schedule(step: int | None = None, steps: Iterable[int] | None = None, max_weight: int = 50) -> list[int]:
    """The canary weights of a rollout, step by step: strictly increasing, each in 1..max_weight.
    After a successful analysis at the last one, the canary is promoted (100%)."""
    if not 1 <= max_weight <= 100:
        raise InputError(f"--max-weight {max_weight} is outside 1..100")
    if steps:
        weights = list(steps)
        if any(w < 1 or w > 100 for w in weights):
            raise InputError(f"--steps {','.join(map(str, weights))}: each step must be within 1..100")
        if any(b <= a for a, b in zip(weights, weights[1:])):
            raise InputError(f"--steps {','.join(map(str, weights))} must increase", hint="e.g. --steps 5,10,25,50")
        capped = [w for w in weights if w <= max_weight]
        if not capped:
            raise InputError(f"--steps {','.join(map(str, weights))}: every step exceeds --max-weight {max_weight}")
        return capped
    step = 10 if step is None else step
    if not 1 <= step <= 100:
        raise InputError(f"--step {step} is outside 1..100")
    schedule = list(range(step, max_weight + 1, step))
    if not schedule:
        return [max_weight]
    return schedule


def _meta(obj: dict) -> dict:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(obj: dict) -> dict:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def ref(obj: dict) -> str:
    from meshctl.resources import yaml_text

    m = _meta(obj)
    return f"{yaml_text(obj.get('kind', '?'))} {yaml_text(m.get('namespace') or 'default')}/{yaml_text(m.get('name', '?'))}"


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def check_shape(obj: dict, line_of: Callable[[tuple], str] | None = None) -> None:
    """Refuse a VirtualService or DestinationRule that does not match its schema (a field of the
    wrong type, a missing spec), naming the field, before the shift reads it: kubectl and
    Istio's validation refuse such objects too. `line_of(path)` gives a `file:line: ` prefix."""
    from meshctl.resources import Resource
    from meshctl.schemas.validate import validate

    errors = validate(Resource.from_dict(obj))
    if not errors:
        return
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    where = line_of(first.path) if line_of else ""
    raise InputError(f"{where}{ref(obj)}: {first.message}{more}",
                     hint="fix it (the API server and Istio would refuse it too), then shift again")


def serves_host(vs: dict, host: str, namespace: str | None) -> bool:
    ns = _meta(vs).get("namespace") or namespace
    want = service_fqdn(host, namespace or ns)
    return any(isinstance(h, str) and service_fqdn(h, ns) == want for h in _list(_spec(vs).get("hosts")))


def routes_to_host(dest_host: Any, host: str, namespace: str | None, vs_ns: str | None) -> bool:
    return isinstance(dest_host, str) and service_fqdn(dest_host, vs_ns or namespace) == service_fqdn(host, namespace)


def find_virtual_service(items: list[dict], host: str, namespace: str | None) -> dict | None:
    """The VirtualService (among `items`) serving `host`: by spec.hosts, else by name.
    Several candidates: the one with a default route to the host, else an error."""
    vss = [v for v in items if isinstance(v, dict) and v.get("kind") == "VirtualService"]
    matches = [v for v in vss if serves_host(v, host, namespace)]
    if not matches:  # by name; a qualified host must name the VirtualService's own namespace
        matches = [v for v in vss if _meta(v).get("name") == short_name(host)
                   and (namespace is None or _meta(v).get("namespace") in (None, namespace))
                   and ("." not in host or service_fqdn(host, namespace) == service_fqdn(short_name(host),
                                                                         _meta(v).get("namespace") or namespace))]
    if len(matches) > 1:
        with_route = [v for v in matches if default_route_index(v, host, namespace) is not None]
        if len(with_route) == 1:
            return with_route[0]
        names = ", ".join(sorted(ref(v) for v in matches))
        raise InputError(f"several VirtualServices serve {host}: {names}",
                         hint="keep one VirtualService per host, or pass the file holding the right one")
    return matches[0] if matches else None


def find_destination_rule(items: list[dict], host: str, namespace: str | None) -> dict | None:
    drs = [d for d in items if d.get("kind") == "DestinationRule"]
    for d in drs:
        h = _spec(d).get("host")
        if isinstance(h, str) and service_fqdn(h, _meta(d).get("namespace") or namespace) == service_fqdn(host, namespace):
            return d
    return None


def dr_subsets(dr: dict | None) -> list[str]:
    if not dr:
        return []
    return [s.get("name") for s in _list(_spec(dr).get("subsets"))
            if isinstance(s, dict) and isinstance(s.get("name"), str) and s.get("name")]


def subset_labels(dr: dict | None, subset: str) -> dict:
    for s in _list(_spec(dr).get("subsets")) if dr else []:
        if isinstance(s, dict) and s.get("name") == subset:
            labels = s.get("labels")
            return labels if isinstance(labels, dict) else {}
    return {}


# --- routes ----------------------------------------------------------------------------------
def _http(vs: dict) -> list:
    http = _spec(vs).get("http")
    return http if isinstance(http, list) else []


def _destination(route: Any) -> dict:
    d = route.get("destination") if isinstance(route, dict) else None
    return d if isinstance(d, dict) else {}


def _route_hosts(entry: dict) -> list:
    return [_destination(r).get("host") for r in _list(entry.get("route")) if isinstance(r, dict)]


def default_route_index(vs: dict, host: str, namespace: str | None) -> int | None:
    vs_ns = _meta(vs).get("namespace")
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
    routes = [r for r in _list(_http(vs)[idx].get("route")) if isinstance(r, dict)]
    out = []
    for r in routes:
        subset = _destination(r).get("subset")
        w = r.get("weight")
        if w is None:
            w = 100 if len(routes) == 1 else 0
        out.append((subset if isinstance(subset, str) else "",
                    int(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else 0))
    return out


@dataclass
class Shift:
    """One change of a host's routing: weights over subsets, an optional A/B header route to the
    canary (the last subset), and an optional mirror percentage to the canary (0 removes it)."""

    host: str
    namespace: str | None
    subsets: list[str]
    weights: list[int]
    header: Optional[tuple[str, str]] = None
    mirror: Optional[float] = None

    @property
    def canary(self) -> str:
        return self.subsets[-1]


def resolve_subsets(vs: dict | None, dr: dict | None, host: str, namespace: str | None,
                    weights: list[int], given: list[str] | None, where: str = "", flag: str = "--subsets",
                    no_rule_hint: str = "create one with subsets for each version, or use --create") -> list[str]:
    """The subsets the weights apply to: --subsets, else those of the current default route,
    else the DestinationRule's; each must be defined in the DestinationRule for the host."""
    defined = dr_subsets(dr)
    if given is not None:
        subsets = given
    else:
        current = [s for s, _ in current_weights(vs, host, namespace)] if vs else []
        if len(current) == len(weights) and all(current):
            subsets = current
        elif len(defined) == len(weights):
            subsets = defined
        else:
            raise InputError(
                f"{len(weights)} weights given but cannot tell which subsets of {host} they apply to",
                hint=f"name them with --subsets (defined: {', '.join(defined) or 'none'})")
    if len(subsets) != len(weights):
        raise InputError(f"{len(weights)} weights for {len(subsets)} subsets ({','.join(subsets)})",
                         hint="give one weight per subset, e.g. 90/10 with --subsets v1,v2")
    if dr is None:
        raise InputError(f"no DestinationRule for host {host}{where} defines subsets",
                         hint=no_rule_hint)
    missing = [s for s in subsets if s not in defined]
    if missing:
        raise InputError(
            f"subset {', '.join(repr(m) for m in missing)} is not defined in {ref(dr)} "
            f"(subsets: {', '.join(defined) or 'none'})",
            hint=f"add the subset to the DestinationRule, or pick an existing one with {flag}")
    return subsets


def apply_shift(vs: dict, shift: Shift) -> dict:
    """A copy of the VirtualService with the default route's destinations set to the weights
    (a default route is appended when none exists), plus the header route and mirror asked for."""
    new = copy.deepcopy(vs)
    spec = new.setdefault("spec", {})
    if not isinstance(spec.get("http"), list):
        spec["http"] = []
    http = spec["http"]
    vs_ns = _meta(new).get("namespace") or shift.namespace
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
        name, value = shift.header
        route = [{"destination": {"host": dest_host, "subset": shift.canary, **({"port": port} if port else {})}}]
        found = None
        for i, e in enumerate(http):
            if i == idx or not isinstance(e, dict):
                continue
            match = e.get("match")
            if (isinstance(match, list) and len(match) == 1 and isinstance(match[0], dict)
                    and set(match[0]) == {"headers"} and list((match[0].get("headers") or {})) == [name]
                    and all(routes_to_host(h, shift.host, shift.namespace, vs_ns) for h in _route_hosts(e))):
                found = i
                break
        header_entry = {"match": [{"headers": {name: {"exact": value}}}], "route": route}
        if found is not None:
            e = http[found]
            e["match"] = header_entry["match"]
            e["route"] = route
        else:
            http.insert(idx, header_entry)
    return new


def weights_text(weights: Iterable[tuple[str, int]]) -> str:
    pairs = list(weights)
    return "/".join(str(w) for _, w in pairs) + " (" + ",".join(s for s, _ in pairs) + ")"


# --- creation from pods' version labels ------------------------------------------------------
def versions_of(pods: list[dict]) -> list[str]:
    seen = []
    for p in pods:
        v = ((_meta(p).get("labels") or {}).get("version"))
        if isinstance(v, str) and v and v not in seen:
            seen.append(v)
    return sorted(seen)


def new_destination_rule(host: str, namespace: str, versions: list[str]) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": short_name(host), "namespace": namespace},
        "spec": {"host": host, "subsets": [{"name": v, "labels": {"version": v}} for v in versions]},
    }


def new_virtual_service(host: str, namespace: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": short_name(host), "namespace": namespace},
        "spec": {"hosts": [host], "http": []},
    }

"""Pure planning: weight parsing ("90/10"), step schedules, the Shift value, and the choice of
route API (VirtualService or HTTPRoute) an object belongs to.

Nothing here talks to a cluster or a file: each function takes plain dicts (objects as the API
server sends them) and returns new ones, so the same rewrite serves the cluster and GitOps files.
The rewrites themselves live beside their API: `virtualservice.py` (subsets of a DestinationRule)
and `httproute.py` (per-version Services as backendRefs). `current_weights` and `apply_shift`
here pick the right one from the object's kind.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Callable, Iterable, Optional

from meshctl.errors import InputError
from meshctl.resources import as_dict, dig
from meshctl.hosts import service_fqdn, short_name

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

VIRTUAL_SERVICE, HTTP_ROUTE = "VirtualService", "HTTPRoute"
ROUTE_KINDS = (VIRTUAL_SERVICE, HTTP_ROUTE)


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


def parse_kind(text: str | None) -> str | None:
    """--kind: which route API to act on (any case; `vs` for short), or None for "whichever
    the host has"."""
    if text is None:
        return None
    by_name = {k.lower(): k for k in ROUTE_KINDS}
    by_name.update({"vs": VIRTUAL_SERVICE, "virtualservices": VIRTUAL_SERVICE, "httproutes": HTTP_ROUTE})
    kind = by_name.get(str(text).strip().lower())
    if kind is None:
        raise InputError(f"--kind {text!r} is not a route kind", hint=f"use {' or '.join(ROUTE_KINDS)}")
    return kind


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


# --- the change ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shift:
    """One change of a host's routing: weights over versions (subsets of a DestinationRule, or
    per-version Services of an HTTPRoute), an optional A/B header route to the canary (the last
    one), and an optional mirror percentage to the canary (0 removes it).

    `subsets` None means "the route's own, else those defined" (resolved against the route);
    `create` asks for the route to be made when the host has none; `kind` picks the route API
    when the host could have either."""

    host: str
    namespace: str | None
    subsets: Optional[list[str]]
    weights: list[int]
    header: Optional[tuple[str, str]] = None
    mirror: Optional[float] = None
    create: bool = False
    kind: Optional[str] = None

    @classmethod
    def parse(cls, host: str, weights: str, subsets: str | None = None, header: str | None = None,
              mirror: str | None = None, create: bool = False, kind: str | None = None,
              namespace: str | None = None) -> "Shift":
        """The change `meshctl canary shift` flags ask for, each flag checked."""
        return cls(host=host, namespace=namespace, subsets=parse_subsets(subsets), weights=parse_weights(weights),
                   header=parse_header(header),
                   mirror=parse_percent(mirror, "--mirror") if mirror is not None else None,
                   create=create, kind=parse_kind(kind))

    @property
    def canary(self) -> str:
        return self.subsets[-1]

    def resolved(self, subsets: list[str], namespace: str | None = None) -> "Shift":
        """The same change over named subsets (and the namespace the route was found in)."""
        return replace(self, subsets=list(subsets), namespace=namespace or self.namespace)


def weights_text(weights: Iterable[tuple[str, int]]) -> str:
    pairs = list(weights)
    return "/".join(str(w) for _, w in pairs) + " (" + ",".join(s for s, _ in pairs) + ")"


# --- objects ---------------------------------------------------------------------------------
def namespace_of(obj: dict, default: str | None = None) -> str | None:
    ns = dig(obj, "metadata", "namespace")
    return ns if isinstance(ns, str) and ns else default


def ref(obj: dict, namespace: str | None = None) -> str:
    """`Kind namespace/name` of an object (its own namespace, else `namespace`, else default)."""
    from meshctl.resources import yaml_text

    m = as_dict(obj.get("metadata"))
    ns = m.get("namespace") or namespace or "default"
    return f"{yaml_text(obj.get('kind', '?'))} {yaml_text(ns)}/{yaml_text(m.get('name', '?'))}"


def check_shape(obj: dict, line_of: Callable[[tuple], str] | None = None) -> None:
    """Refuse a route or the object defining its versions when it does not match its schema (a
    field of the wrong type, a missing spec), naming the field, before the shift reads it:
    kubectl, the API server and Istio's validation refuse such objects too. `line_of(path)`
    gives a `file:line: ` prefix."""
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


def copy_with_list(obj: dict, key: str) -> tuple[dict, list]:
    """A deep copy of `obj`, and its `spec[key]` list (made an empty list when missing)."""
    new = copy.deepcopy(obj)
    spec = new.setdefault("spec", {})
    if not isinstance(spec.get(key), list):
        spec[key] = []
    return new, spec[key]


def named_like(obj: dict, host: str, namespace: str | None) -> bool:
    """A route named like the host's service (a qualified host must name the route's own
    namespace): how a route is found when none names the host."""
    obj_ns = namespace_of(obj)
    return (dig(obj, "metadata", "name") == short_name(host)
            and (namespace is None or obj_ns in (None, namespace))
            and ("." not in host or service_fqdn(host, namespace) == service_fqdn(short_name(host),
                                                                                 obj_ns or namespace)))


def choose(items: list, kind: str, host: str, namespace: str | None,
           serves: Callable[[dict, str, str | None], bool],
           has_default: Callable[[dict, str, str | None], bool]) -> dict | None:
    """The route of `kind` (among `items`) for `host`: the one that `serves` it, else the one
    named like it. Several candidates: the one with a default route to the host, else an error."""
    routes = [o for o in items if isinstance(o, dict) and o.get("kind") == kind]
    matches = [o for o in routes if serves(o, host, namespace)]
    if not matches:
        matches = [o for o in routes if named_like(o, host, namespace)]
    if len(matches) > 1:
        with_route = [o for o in matches if has_default(o, host, namespace)]
        if len(with_route) == 1:
            return with_route[0]
        names = ", ".join(sorted(ref(o) for o in matches))
        raise InputError(f"several {kind}s serve {host}: {names}",
                         hint=f"keep one {kind} per host, or pass the file holding the right one")
    return matches[0] if matches else None


@dataclass
class Found:
    """A host's route as a target read it: the route (None when the host has none), the objects
    that define its versions (the DestinationRule, or the Services an HTTPRoute can split
    between), the namespace it was looked for in and where that is (" in namespace shop", " in
    a.yaml"), for messages. `handle` is the target's own bookkeeping (a file's text, its document)."""

    api: ModuleType
    route: Optional[dict]
    versions: list[dict]
    namespace: Optional[str]
    where: str
    in_files: bool = False
    handle: Any = None
    searched: tuple[str, ...] = ROUTE_KINDS  # the route kinds a missing route is reported as

    @property
    def ref(self) -> str:
        return ref(self.route, self.namespace) if self.route is not None else ""


# --- the API of an object --------------------------------------------------------------------
def route_api(kind_or_obj: str | dict) -> ModuleType:
    """The module that reads and rewrites routes of this kind (`virtualservice`, `httproute`)."""
    from meshctl.canary import httproute, virtualservice

    kind = kind_or_obj.get("kind") if isinstance(kind_or_obj, dict) else kind_or_obj
    return httproute if kind == HTTP_ROUTE else virtualservice


def current_weights(route: dict, host: str, namespace: str | None) -> list[tuple[str, int]]:
    """[(version, weight)] of the route's default (weighted) route for the host."""
    return route_api(route).current_weights(route, host, namespace)


def apply_shift(route: dict, shift: Shift) -> dict:
    """A copy of the route with the weights, header route and mirror of `shift` applied."""
    return route_api(route).apply_shift(route, shift)

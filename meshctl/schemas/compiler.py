"""JSON Schema compiled into a tree of small closures: each keyword family becomes a check once,
so validating thousands of objects dispatches nothing at run time. The compiler supports the
keywords meshctl's schemas use and raises on anything else (see meshctl.schemas.validate for the
annotations that extend JSON Schema)."""
from __future__ import annotations

import re
from typing import Any

from meshctl.schemas import spec_schema
from meshctl.schemas.errors import (
    TYPE_NAMES,
    TYPE_TESTS,
    Check,
    Probe,
    SchemaError,
    describe,
    did_you_mean,
    err,
    format_path,
    is_number,
    show,
)
from meshctl.schemas.formats import duration_ns, host_ok, ip_version, regex_problem, scoped_host_problem

_KNOWN = frozenset({
    "$schema", "$id", "$defs", "$comment", "title", "description", "type", "properties",
    "additionalProperties", "required", "enum", "const", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "items", "minItems", "maxItems",
    "uniqueItems", "propertyNames", "minProperties", "maxProperties", "oneOf", "anyOf", "allOf",
    "not", "$ref", "format", "default", "x-meshctl-regex", "x-meshctl-format", "x-meshctl-message",
    "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "if", "then", "else",
    "x-meshctl-unique-by", "x-meshctl-required",
})

_INT32 = (-(2 ** 31), 2 ** 31 - 1)


def _size_check(of: type, lo: int, hi: int | None, what: str) -> Check:
    """min/maxProperties (`of` dict, "entries") and min/maxItems (`of` list, "items")."""
    def size_check(v, p, e):
        if isinstance(v, of):
            if len(v) < lo:
                err(e, p, "must not be empty" if lo == 1 else f"must have at least {lo} {what}")
            elif hi is not None and len(v) > hi:
                err(e, p, f"has {len(v)} {what}, at most {hi} are allowed")
    return size_check


def _required_only(branch: Any) -> list[str] | None:
    if isinstance(branch, dict) and set(branch) == {"required"} and len(branch["required"]) == 1:
        return list(branch["required"])
    return None


def _present(value: dict, names: list[str]) -> list[str]:
    return [n for n in names if n in value]


def join_names(names: list[str]) -> str:
    return ", ".join(names)


class Compiler:
    """`cel`: evaluate the nodes' CEL rules (x-kubernetes-validations); off for Istio's schemas,
    which state their rules as JSON Schema as well."""

    def __init__(self, root: dict, cel: bool = False):
        self.root = root
        self.refs: dict[str, list] = {}
        self.cel = cel

    def ref(self, ref: str) -> Check:
        cell = self.refs.get(ref)
        if cell is None:
            if not ref.startswith("#/"):
                raise ValueError(f"unsupported $ref {ref!r}")
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            cell = [None]
            self.refs[ref] = cell
            cell[0] = self.compile(target)

        def check_ref(v, p, e, cell=cell):
            cell[0](v, p, e)
        return check_ref if cell[0] is None else cell[0]

    def compile(self, node: Any) -> Check:
        check = self._compile(node)
        if self.cel and isinstance(node, dict) and node.get("x-kubernetes-validations"):
            from meshctl.schemas.cel import NodeRules, escaper, rules_of, uses_escapes

            rules = rules_of(node)
            if rules:
                return _with_cel(check, NodeRules(rules), escaper(node) if uses_escapes(node) else None)
        return check

    def _compile(self, node: Any) -> Check:
        """One node's checks, keyword family by keyword family."""
        if node is True or node == {}:
            return lambda v, p, e: None
        if node is False:
            return lambda v, p, e: err(e, p, "no value is allowed here")
        unknown = set(node) - _KNOWN
        if unknown:
            raise ValueError(f"schema keyword(s) not supported by the compiler: {sorted(unknown)}")
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(self.ref(node["$ref"]))

        types = node.get("type")
        type_check, expected = self._type_check(node, types)
        nullable = isinstance(types, list) and "null" in types
        message = node.get("x-meshctl-message")
        checks += self._string_checks(node, message)
        checks += self._number_checks(node)
        checks += self._object_checks(node)
        checks += self._array_checks(node)
        checks += self._combinator_checks(node, message)
        if types in ("object", "array") and checks:
            return self._fused(types, expected, checks)
        return self._assemble(type_check, checks, nullable)

    def _type_check(self, node: dict, types: Any) -> tuple[Check | None, str]:
        """The node's `type`, checked first: the rest of the node only runs when it holds."""
        type_check: Check | None = None
        expected = ""
        if types is not None:
            tlist = [types] if isinstance(types, str) else list(types)
            tests = [TYPE_TESTS[t] for t in tlist]
            expected = " or ".join(TYPE_NAMES[t] for t in tlist if t != "null") or "null"
            if node.get("x-meshctl-format") == "duration":
                expected += ' (a duration such as "10s" or "500ms")'
            if len(tests) == 1:
                t0 = tests[0]

                def type_check(v, p, e, t0=t0, expected=expected):
                    if not t0(v):
                        err(e, p, f"expected {expected}, got {describe(v)}")
                        return False
                    return True
            else:
                def type_check(v, p, e, tests=tests, expected=expected):
                    for t in tests:
                        if t(v):
                            return True
                    err(e, p, f"expected {expected}, got {describe(v)}")
                    return False

        return type_check, expected

    def _string_checks(self, node: dict, message: str | None) -> list[Check]:
        """enum/const, pattern, lengths, and meshctl's string formats."""
        checks: list[Check] = []
        if "enum" in node or "const" in node:
            allowed = list(node["enum"]) if "enum" in node else [node["const"]]
            allowed_set = set(a for a in allowed if isinstance(a, (str, int, float, bool)) or a is None)
            shown = join_names([show(a) if not isinstance(a, str) else a for a in allowed])

            def enum_check(v, p, e, allowed_set=allowed_set, allowed=allowed, shown=shown):
                try:
                    ok = v in allowed_set and not (isinstance(v, bool) and not any(a is v for a in allowed))
                except TypeError:
                    ok = False
                if not ok:
                    if type(e) is Probe:
                        e.append(None)
                        return
                    hint = did_you_mean(v, [a for a in allowed if isinstance(a, str)]) if isinstance(v, str) else ""
                    if len(allowed) == 1:
                        err(e, p, f"{show(v)} is not allowed here (must be {shown}){hint}")
                    else:
                        err(e, p, f"{show(v)} is not one of {shown}{hint}")
            checks.append(enum_check)
        if "pattern" in node:
            rx = re.compile(node["pattern"])
            pat = node["pattern"]

            def pattern_check(v, p, e, search=rx.search, pat=pat, message=message):
                if isinstance(v, str) and search(v) is None:
                    err(e, p, f"{show(v)} {message}" if message else f"{show(v)} does not match the pattern {pat}")
                    return False
                return True
            if node.get("x-meshctl-format") == "duration":
                def duration_check(v, p, e, pattern_check=pattern_check):
                    if pattern_check(v, p, e) and isinstance(v, str) and duration_ns(v) < 1e6:
                        err(e, p, f"{show(v)} is too short: durations must be at least 1ms")
                checks.append(duration_check)
            else:
                checks.append(pattern_check)
        if "minLength" in node or "maxLength" in node:
            lo = node.get("minLength", 0)
            hi = node.get("maxLength")

            def length_check(v, p, e, lo=lo, hi=hi, message=message):
                if isinstance(v, str):
                    n = len(v)
                    if n < lo:
                        err(e, p, "must not be empty" if lo == 1 else f"must be at least {lo} characters long")
                    elif hi is not None and n > hi:
                        if message:
                            err(e, p, f"{show(v)} {message}" if hi else message)
                        else:
                            err(e, p, f"must be at most {hi} characters long")
            checks.append(length_check)
        if node.get("x-meshctl-regex"):
            def regex_check(v, p, e):
                if isinstance(v, str):
                    problem = regex_problem(v)
                    if problem:
                        err(e, p, f"invalid regular expression {show(v)}: {problem}")
            checks.append(regex_check)
        if node.get("x-meshctl-format") in ("gateway-host", "sidecar-host"):
            gateway = node["x-meshctl-format"] == "gateway-host"
            what = "gateway host" if gateway else "egress host"

            def scoped_host_check(v, p, e, gateway=gateway, what=what):
                if isinstance(v, str):
                    problem = scoped_host_problem(v, gateway)
                    if problem:
                        err(e, p, f"{show(v)} is not a valid {what}: {problem}")
            checks.append(scoped_host_check)
        if node.get("x-meshctl-format") == "ip":
            def ip_check(v, p, e):
                if isinstance(v, str) and not ip_version(v):
                    err(e, p, f"{show(v)} is not an IP address")
            checks.append(ip_check)
        if node.get("x-meshctl-format") == "host":
            def host_check(v, p, e):
                if isinstance(v, str) and not host_ok(v):
                    err(e, p, f"{show(v)} is not a valid host name (a DNS name such as \"reviews\", "
                               "\"reviews.prod.svc.cluster.local\" or \"*.example.com\", without scheme, "
                               "port or path)")
            checks.append(host_check)

        return checks

    def _number_checks(self, node: dict) -> list[Check]:
        """Ranges, int32, and the IP address formats."""
        checks: list[Check] = []
        lo = node.get("minimum")
        hi = node.get("maximum")
        xlo = node.get("exclusiveMinimum")
        xhi = node.get("exclusiveMaximum")
        big = None
        if node.get("format") == "int32":
            big = _INT32
        if node.get("format") in ("ipv4", "ipv6"):
            version = 4 if node["format"] == "ipv4" else 6

            def ip_format(v, p, e, version=version):
                if isinstance(v, str) and ip_version(v) != version:
                    err(e, p, f"{show(v)} is not an IPv{version} address")
            checks.append(ip_format)
        if lo is not None or hi is not None or xlo is not None or xhi is not None or big:
            def range_check(v, p, e, lo=lo, hi=hi, xlo=xlo, xhi=xhi, big=big):
                if not is_number(v):
                    return
                bad = (lo is not None and v < lo) or (hi is not None and v > hi) or \
                      (xlo is not None and v <= xlo) or (xhi is not None and v >= xhi)
                if bad:
                    if lo is not None and hi is not None:
                        err(e, p, f"{show(v)} is out of range {lo}–{hi}")
                    elif lo is not None:
                        err(e, p, f"{show(v)} must be at least {lo}")
                    elif hi is not None:
                        err(e, p, f"{show(v)} must be at most {hi}")
                    elif xlo is not None:
                        err(e, p, f"{show(v)} must be greater than {xlo}")
                    else:
                        err(e, p, f"{show(v)} must be less than {xhi}")
                elif big is not None and not big[0] <= v <= big[1]:
                    err(e, p, f"{show(v)} does not fit in a 32-bit integer")
            checks.append(range_check)

        return checks

    def _object_checks(self, node: dict) -> list[Check]:
        """properties, additionalProperties, propertyNames, required, min/maxProperties."""
        checks: list[Check] = []
        props = node.get("properties")
        addl = node.get("additionalProperties", True)
        if props is not None or addl is not True or "propertyNames" in node:
            prop_checks = {k: self.compile(s) for k, s in (props or {}).items()}
            names = sorted(prop_checks)
            addl_check = self.compile(addl) if isinstance(addl, dict) else None
            closed = addl is False
            pn_check = self.compile(node["propertyNames"]) if "propertyNames" in node else None

            def object_check(v, p, e, prop_checks=prop_checks, addl_check=addl_check, closed=closed,
                             names=names, pn_check=pn_check):
                if not isinstance(v, dict):
                    return
                get = prop_checks.get
                for k, sub in v.items():
                    key = k if isinstance(k, str) else str(k)
                    c = get(key)
                    if c is not None:
                        c(sub, p + (key,), e)
                        continue
                    if pn_check is not None:
                        before = len(e)
                        pn_check(key, p + (key,), e)
                        if len(e) > before:
                            for i in range(before, len(e)):
                                e[i] = SchemaError(e[i].path, f"{format_path(e[i].path)}: invalid key: {e[i].detail}")
                    if closed:
                        err(e, p + (key,), "unknown field" + did_you_mean(key, names))
                    elif addl_check is not None:
                        addl_check(sub, p + (key,), e)
            checks.append(object_check)
        if "required" in node:
            req = list(node["required"])

            def required_check(v, p, e, req=req):
                if isinstance(v, dict):
                    for r in req:
                        if r not in v:
                            err(e, p + (r,), "required field missing")
            checks.append(required_check)
        if "minProperties" in node or "maxProperties" in node:
            checks.append(_size_check(dict, node.get("minProperties", 0), node.get("maxProperties"), "entries"))

        return checks

    def _array_checks(self, node: dict) -> list[Check]:
        """items, min/maxItems, uniqueItems."""
        checks: list[Check] = []
        if "items" in node:
            item_check = self.compile(node["items"])

            def items_check(v, p, e, item_check=item_check):
                if isinstance(v, list):
                    for i, item in enumerate(v):
                        item_check(item, p + (i,), e)
            checks.append(items_check)
        if "minItems" in node or "maxItems" in node:
            checks.append(_size_check(list, node.get("minItems", 0), node.get("maxItems"), "items"))
        if node.get("uniqueItems"):
            def unique_check(v, p, e):
                if isinstance(v, list):
                    seen = []
                    for i, item in enumerate(v):
                        if item in seen:
                            err(e, p + (i,), f"duplicate item {show(item)}")
                        else:
                            seen.append(item)
            checks.append(unique_check)

        return checks

    def _combinator_checks(self, node: dict, message: str | None) -> list[Check]:
        """oneOf/anyOf/allOf, not, if/then/else, and the list types (map keys, sets)."""
        checks: list[Check] = []
        for kw in ("oneOf", "anyOf", "allOf"):
            if kw in node:
                checks.append(self.combinator(kw, node[kw]))
        if "not" in node:
            checks.append(self.negation(node["not"], message))
        if "if" in node:
            checks.append(self.conditional(node, message))
        key_sets = []
        if "x-meshctl-unique-by" in node:
            key_sets.append((node["x-meshctl-unique-by"],))
        if node.get("x-kubernetes-list-type") == "map" and node.get("x-kubernetes-list-map-keys"):
            key_sets.append(tuple(node["x-kubernetes-list-map-keys"]))
        if key_sets:
            def unique_by(v, p, e, key_sets=tuple(key_sets)):
                if not isinstance(v, list):
                    return
                for keys in key_sets:
                    seen: dict = {}
                    for i, item in enumerate(v):
                        if not isinstance(item, dict) or not all(k in item for k in keys):
                            continue
                        value = tuple(item[k] for k in keys)
                        try:
                            first = seen.setdefault(value, i)
                        except TypeError:
                            continue
                        if first != i:
                            if len(keys) == 1:
                                err(e, p + (i, keys[0]),
                                     f"duplicate {keys[0]} {show(value[0])} (also in item {first})")
                            else:
                                err(e, p + (i,), f"duplicate {', '.join(keys)} (also in item {first})")
            checks.append(unique_by)
        if node.get("x-kubernetes-list-type") == "set":
            def unique_items(v, p, e):
                if isinstance(v, list):
                    seen: dict = {}
                    for i, item in enumerate(v):
                        try:
                            first = seen.setdefault(item, i)
                        except TypeError:
                            continue
                        if first != i:
                            err(e, p + (i,), f"duplicate item {show(item)} (also item {first})")
            checks.append(unique_items)

        return checks

    @staticmethod
    def _fused(types: str, expected: str, checks: list) -> Check:
        """A non-nullable object or list node: the type test folded into the node's own function
        (the common case, so it saves a call per node)."""
        pytype = dict if types == "object" else list
        first, rest = checks[0], tuple(checks[1:])
        if not rest:
            def fused1(v, p, e, pytype=pytype, first=first, expected=expected):
                if isinstance(v, pytype):
                    first(v, p, e)
                else:
                    err(e, p, f"expected {expected}, got {describe(v)}")
            return fused1

        def fused(v, p, e, pytype=pytype, first=first, rest=rest, expected=expected):
            if isinstance(v, pytype):
                first(v, p, e)
                for c in rest:
                    c(v, p, e)
            else:
                err(e, p, f"expected {expected}, got {describe(v)}")
        return fused

    @staticmethod
    def _assemble(type_check, checks: list, nullable: bool) -> Check:
        if type_check is None:
            if len(checks) == 1:
                return checks[0]

            def run(v, p, e, checks=tuple(checks)):
                for c in checks:
                    c(v, p, e)
            return run
        if not checks:
            return type_check
        if len(checks) == 1:
            c0 = checks[0]

            def run_t1(v, p, e, type_check=type_check, c0=c0, nullable=nullable):
                if type_check(v, p, e) and not (nullable and v is None):
                    c0(v, p, e)
            return run_t1

        def run_tn(v, p, e, type_check=type_check, checks=tuple(checks), nullable=nullable):
            if type_check(v, p, e) and not (nullable and v is None):
                for c in checks:
                    c(v, p, e)
        return run_tn

    def combinator(self, kw: str, branches: list) -> Check:
        req = [_required_only(b) for b in branches]
        # "exactly one of": oneOf: [{required: [a]}, {required: [b]}, ...]
        if kw == "oneOf" and all(req):
            names = [r[0] for r in req]

            def exactly_one(v, p, e, names=names):
                if isinstance(v, dict):
                    found = _present(v, names)
                    if not found:
                        err(e, p, f"one of {join_names(names)} must be set")
                    elif len(found) > 1:
                        err(e, p, f"only one of {join_names(names)} may be set (found {join_names(found)})")
            return exactly_one
        # "at most one of": oneOf: [{not: {anyOf: [{required: [a]}, ...]}}, {required: [a]}, ...]
        if kw == "oneOf" and not req[0] and all(req[1:]) and isinstance(branches[0], dict) \
                and set(branches[0]) == {"not"} and isinstance(branches[0]["not"], dict) \
                and set(branches[0]["not"]) == {"anyOf"} \
                and [_required_only(b) for b in branches[0]["not"]["anyOf"]] == req[1:]:
            names = [r[0] for r in req[1:]]

            def at_most_one(v, p, e, names=names):
                if isinstance(v, dict):
                    found = _present(v, names)
                    if len(found) > 1:
                        err(e, p, f"only one of {join_names(names)} may be set (found {join_names(found)})")
            return at_most_one
        # "at least one of": anyOf: [{required: [a]}, ...]
        if kw == "anyOf" and all(req):
            names = [r[0] for r in req]

            def at_least_one(v, p, e, names=names):
                if isinstance(v, dict) and not _present(v, names):
                    err(e, p, f"one of {join_names(names)} must be set")
            return at_least_one
        # "these pairs exclude each other": allOf: [{not: {required: [a, b]}}, ...] in one pass
        if kw == "allOf" and all(isinstance(b, dict) and set(b) == {"not"} and isinstance(b["not"], dict)
                                 and set(b["not"]) == {"required"} for b in branches):
            groups = tuple(tuple(b["not"]["required"]) for b in branches)

            def exclusive(v, p, e, groups=groups):
                if isinstance(v, dict):
                    for g in groups:
                        for n in g:
                            if n not in v:
                                break
                        else:
                            err(e, p, f"{' and '.join(g)} cannot be set together")
            return exclusive
        subs = [self.compile(b) for b in branches]
        if kw == "allOf":
            def all_of(v, p, e, subs=tuple(subs)):
                for s in subs:
                    s(v, p, e)
            return all_of

        def count_ok(v, p, probe):
            n = 0
            first_errors = None
            for s in subs:
                tmp: list = Probe() if probe else []
                s(v, p, tmp)
                if not tmp:
                    n += 1
                elif first_errors is None:
                    first_errors = tmp
            return n, first_errors

        def detail(errs) -> str:
            return f" ({errs[0].detail})" if errs and errs[0] is not None else ""

        if kw == "anyOf":
            def any_of(v, p, e):
                n, errs = count_ok(v, p, type(e) is Probe)
                if n == 0:
                    err(e, p, "does not match any of the allowed forms" + detail(errs))
            return any_of

        def one_of(v, p, e):
            n, errs = count_ok(v, p, type(e) is Probe)
            if n != 1:
                err(e, p, "must match exactly one of the allowed forms"
                     + (f" (matches {n})" if n else detail(errs)))
        return one_of

    def conditional(self, node: dict, message: str | None) -> Check:
        """if/then/else; with `x-meshctl-message`, a failing branch is reported as that one line."""
        cond = self.compile(node["if"])
        then = self.compile(node["then"]) if "then" in node else None
        other = self.compile(node["else"]) if "else" in node else None

        def if_then(v, p, e):
            tmp = Probe()
            cond(v, p, tmp)
            branch = then if not tmp else other
            if branch is None:
                return
            if message is None:
                branch(v, p, e)
                return
            out = Probe()
            branch(v, p, out)
            if out:
                err(e, p, message)
        return if_then

    def negation(self, sub: Any, message: str | None = None) -> Check:
        if isinstance(sub, dict) and set(sub) == {"required"}:
            names = list(sub["required"])

            def not_together(v, p, e, names=names):
                if isinstance(v, dict) and all(n in v for n in names):
                    err(e, p, f"{' and '.join(names)} cannot be set together")
            return not_together
        if isinstance(sub, dict) and set(sub) == {"const"}:
            bad = sub["const"]

            def not_const(v, p, e, bad=bad, message=message or "is not allowed here"):
                if v == bad and type(v) is type(bad):
                    err(e, p, f"{show(v)} {message}")
            return not_const
        inner = self.compile(sub)

        def negate(v, p, e, message=message):
            tmp = Probe()
            inner(v, p, tmp)
            if not tmp:
                err(e, p, f"{show(v)} {message}" if message else f"{show(v)} is not allowed here")
        return negate


# Set while a validator runs on a value all of whose CEL rules are known to hold: the nodes skip
# their rules (validation runs in one thread; see gateway_api_validator).
RULES_HOLD = [False]


def _with_cel(check: Check, rules, escape) -> Check:
    """A node's checks, then its CEL rules when the value (and everything below it) passed
    them: as in the API server, a rule sees a well-typed value, and a wrong type is reported
    once, by the schema."""

    def cel_check(v, p, e, check=check, rules=rules, escape=escape, hold=RULES_HOLD):
        before = len(e)
        check(v, p, e)
        if hold[0] or len(e) != before or v is None:
            return
        for rule, reason, index in rules.failures(escape(v) if escape is not None else v):
            if type(e) is Probe:
                e.append(None)
                return
            where = p + ((index,) if index is not None else ()) + rule.field_path
            err(e, where, rule.message + (f" (the rule cannot be evaluated: {reason})" if reason else ""))
    return cel_check


_validators: dict[str, Check] = {}


def validator_for(kind: str) -> Check:
    """The compiled `spec` validator of an Istio kind: `check(value, path, errors)` (cached)."""
    v = _validators.get(kind)
    if v is None:
        schema = spec_schema(kind)
        v = _validators[kind] = Compiler(schema).compile(schema)
    return v



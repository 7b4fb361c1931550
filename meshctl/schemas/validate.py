"""Schema validation of Istio objects (the check behind `analyze`'s IST0106 SchemaValidationError).

The schemas are JSON Schema (Draft 2020-12) documents, one per kind.  They are compiled once,
on first use, into a tree of small Python closures: analysis validates thousands of objects
per run, and a general-purpose validator spends most of its time dispatching keywords that a
compiled tree resolves up front.  The compiler supports the keywords our schemas use (it
raises on anything else, so a schema cannot silently lose a check) and produces one-line
messages a person can act on: the path of the field, what is wrong, and a suggestion where
one is obvious (`did you mean "attempts"?`, `use e.g. "1s"`).

Annotations extending standard JSON Schema:

- `x-meshctl-regex: true` on a string: the value must be a regular expression Envoy's RE2
  engine accepts (checked by rewriting RE2-only syntax for Python's `re` and refusing the
  constructs RE2 lacks, see `regex_problem`).
- `x-meshctl-format: duration`: beyond the syntax `pattern`, the duration must be at least 1ms;
  `x-meshctl-format: host`: a host name as Istio accepts it (`host_ok`); `gateway-host`,
  `sidecar-host`: a `namespace/host` entry of a Gateway server or Sidecar egress listener.
- `x-meshctl-required: true` at the root of a spec schema: the object must have a `spec`.
- `x-meshctl-message`: the message used when the node's `pattern`, `maxLength`, `not` or
  `if`/`then` check fails.
- `x-meshctl-unique-by: <field>`: the items of a list must differ in that field; Kubernetes'
  `x-kubernetes-list-type: map` (by its `x-kubernetes-list-map-keys`) and `set` are enforced too.

The test-suite checks the compiled validators against `jsonschema` on the same schemas.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from meshctl.schemas import BY_KIND, istio_kind, spec_schema

Check = Callable[[Any, tuple, list], None]

__all__ = ["SchemaError", "validate", "validate_spec", "format_path", "validator_for", "regex_problem",
           "host_ok", "scoped_host_problem"]


@dataclass(frozen=True)
class SchemaError:
    """One problem: `path` from the object root (keys and list indexes) and a one-line message
    that starts with the dotted path (`spec.http[0].timeout: ...`)."""

    path: tuple
    message: str

    @property
    def detail(self) -> str:
        """The message without its leading path."""
        prefix = format_path(self.path) + ": "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.message


_PLAIN_KEY = re.compile(r"\A[A-Za-z_][A-Za-z0-9_\-]*\Z")  # \Z: "$" would let a key end in a newline


def format_path(path: tuple) -> str:
    """("spec", "http", 0, "timeout") → `spec.http[0].timeout`; odd keys are quoted."""
    out = []
    for step in path:
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif _PLAIN_KEY.match(str(step)):
            out.append(("." if out else "") + str(step))
        else:
            out.append(f"[{_quote(str(step))}]")
    return "".join(out) or "(root)"


def _quote(text: str) -> str:
    """A double-quoted string on one line (quotes, backslashes and control characters escaped)."""
    return json.dumps(text, ensure_ascii=False)


class _Probe(list):
    """Error sink of a sub-check whose errors are only counted (`if`, `not`, `oneOf` branches)."""


def _err(errors: list, path: tuple, text: str) -> None:
    if type(errors) is _Probe:
        errors.append(None)
        return
    errors.append(SchemaError(path, f"{format_path(path)}: {text}"))


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, str):
        s = value if len(value) <= limit else value[: limit - 1] + "…"
        return _quote(s)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return type(value).__name__


_TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "a boolean (true/false)",
               "null": "null"}


def _describe(value: Any) -> str:
    if value is None:
        return "null (remove the key or give it a value)"
    if isinstance(value, bool):
        return f"a boolean ({_show(value)})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value!s})"


def _is_integer(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (
        isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _did_you_mean(word: str, choices) -> str:
    import difflib  # only when there is an error to explain

    choices = [str(c) for c in choices]
    if not choices:
        return ""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f' (did you mean "{lowered[word.lower()]}"?)'
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f' (did you mean "{close[0]}"?)' if close else ""


# --- regular expressions and durations --------------------------------------------------------

_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_FLAG_GROUP = re.compile(r"\(\?([a-zA-Z]*(?:-[a-zA-Z]*)?)([):])")
_regex_cache: dict[str, str | None] = {}


class _RE2Error(Exception):
    pass


def _re2_to_python(pattern: str) -> str:
    """Rewrite RE2 syntax Python's `re` lacks into an equivalent for a syntax check (\\pL, \\z,
    \\Q..\\E, POSIX classes, flag groups anywhere, (?<name>...)); raise _RE2Error for what RE2
    itself refuses (lookaround, backreferences, atomic groups, possessive repeats, comments,
    conditionals, \\Z, unknown flags, repeat counts above 1000)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise _RE2Error("trailing backslash at end of expression")
            d = pattern[i + 1]
            if d == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append("".join("\\" + ch if not ch.isalnum() else ch for ch in literal))
                i = n if end < 0 else end + 2
                continue
            if d in "pP" or (d == "x" and pattern.startswith("{", i + 2)):
                if i + 2 < n and pattern[i + 2] == "{":
                    end = pattern.find("}", i + 3)
                    if end < 0:
                        raise _RE2Error(f"missing }} after \\{d}{{")
                    i = end + 1
                else:
                    i += 3
                out.append("a")
                continue
            if d.isdigit() and d != "0" and not in_class:
                raise _RE2Error("uses backreferences, which RE2 does not support")
            if d == "Z":
                raise _RE2Error("\\Z is not RE2 syntax (use \\z or $)")
            out.append({"z": "\\Z", "C": "."}.get(d, pattern[i:i + 2]))
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    out.append("a")
                    i = end + 2
                    continue
            if c == "]":
                in_class = False
            out.append("\\[" if c == "[" else c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if pattern.startswith("(?", i):
            rest = pattern[i + 2:i + 4]
            if rest.startswith(("=", "!", "<=", "<!")):
                raise _RE2Error("uses lookaround assertions, which RE2 does not support")
            for lead, what in ((">", "atomic groups"), ("#", "comments"), ("(", "conditionals"),
                               ("P=", "backreferences"), ("P>", "recursion"), ("R", "recursion")):
                if rest.startswith(lead):
                    raise _RE2Error(f"uses {what}, which RE2 does not support")
            if rest.startswith("<"):
                out.append("(?P<")
                i += 3
                continue
            m = _FLAG_GROUP.match(pattern, i)
            if m and not pattern.startswith("(?P", i):
                bad = set(m.group(1)) - set("imsU-")
                if bad:
                    raise _RE2Error(f"unknown flag {sorted(bad)[0]!r} (RE2 knows i, m, s and U)")
                out.append("" if m.group(2) == ")" else "(?:")
                i = m.end()
                continue
        if c in "*+?}" and i + 1 < n and pattern[i + 1] == "+":
            raise _RE2Error("uses possessive repetition, which RE2 does not support")
        if c == "{":
            m = _REPEAT.match(pattern, i)
            if m and any(x and int(x) > 1000 for x in m.groups()):
                raise _RE2Error("repeat count above 1000")
        out.append(c)
        i += 1
    return "".join(out)


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable RE2 expression (the engine Envoy runs), or None (cached)."""
    try:
        return _regex_cache[pattern]
    except KeyError:
        pass
    import warnings

    problem = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(_re2_to_python(pattern))
    except _RE2Error as exc:
        problem = str(exc)
    except re.error as exc:
        problem = str(exc)
    except (OverflowError, RecursionError, ValueError) as exc:  # pragma: no cover - pathological
        problem = str(exc) or type(exc).__name__
    if len(_regex_cache) < 10000:
        _regex_cache[pattern] = problem
    return problem


_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")
_HOST_FIRST_LABEL = re.compile(r"^(\*|(\*|\*-)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)$")


def host_ok(host: str) -> bool:
    """A host as Istio accepts it in VirtualService/DestinationRule/ServiceEntry hosts: a DNS name
    whose first label may be a wildcard (`*`, `*.example.com`, `*-foo.example.com`), or an IP."""
    if not host or len(host) > 255:
        return False
    if host.startswith("outbound_"):  # auto-generated SNI names (outbound_.80_._.reviews.default...)
        return True
    return _dns_host_ok(host) or _ip_ok(host)


def _dns_host_ok(host: str) -> bool:
    first, _, rest = host.partition(".")
    if len(first) > 63 or not _HOST_FIRST_LABEL.match(first):
        return False
    if not rest:
        return True
    labels = rest.split(".")
    if labels[-1] == "":  # a trailing dot: `istio.io.`
        labels = labels[:-1]
    if not labels or labels[-1].isdigit():
        return False
    return all(len(label) <= 63 and _HOST_LABEL.match(label) for label in labels)


def scoped_host_problem(value: str, gateway: bool) -> str | None:
    """Why `value` is not a `namespace/host` entry of a Gateway server (`gateway`; the namespace
    part may be left out there) or of a Sidecar egress listener; None when it is fine."""
    if not value:
        return "must not be empty"
    if "://" in value:
        return "a host takes no scheme (use \"example.com\" or \"namespace/example.com\")"
    ns, slash, host = value.partition("/")
    if not slash:
        if not gateway:
            return "must be namespace/host (e.g. \"./*\", \"istio-system/*\" or \"*/api.example.com\")"
        ns, host = "", value
    elif not ns or not host:
        return "namespace and host may not be empty"
    elif gateway and ns not in ("*", ".") and not _DNS1123_LABEL.match(ns):
        return f"{_show(ns)} is not a namespace (use a namespace name, \".\" or \"*\")"
    elif not gateway and ns.lstrip("~") not in ("", "*", ".") and not _DNS1123_LABEL.match(ns.lstrip("~")):
        return f"{_show(ns)} is not a namespace (use a namespace name, \".\", \"*\" or \"~\")"
    if host != "*" and "." not in host:
        return "short names are not allowed (use a fully qualified name such as \"reviews.default.svc.cluster.local\")"
    if "*" in host and host != "*" and not host.startswith("*."):
        return "a wildcard must be the whole first label (\"*.example.com\")"
    if len(host) <= 255 and _dns_host_ok(host):
        return None
    if gateway and _ip_ok(host):
        return None
    return "is not a DNS name (no scheme, port or path)"


def _ip_version(text: str) -> int:
    """4 or 6 for an IP address in its usual notation, else 0."""
    import ipaddress

    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return 0


def _ip_ok(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(h|ms|m|s|us|µs|ns)")
_UNIT_NS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "µs": 1e3, "ns": 1.0}


def duration_ns(text: str) -> float:
    """Nanoseconds of a Go/Istio duration string already known to be well-formed."""
    return sum(float(n) * _UNIT_NS[u] for n, u in _DURATION_PART.findall(text))


# --- the compiler -----------------------------------------------------------------------------

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


def _required_only(branch: Any) -> list[str] | None:
    if isinstance(branch, dict) and set(branch) == {"required"} and len(branch["required"]) == 1:
        return list(branch["required"])
    return None


def _present(value: dict, names: list[str]) -> list[str]:
    return [n for n in names if n in value]


def _join(names: list[str]) -> str:
    return ", ".join(names)


class _Compiler:
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

    def _compile(self, node: Any) -> Check:  # noqa: C901 - one dispatch over keywords
        if node is True or node == {}:
            return lambda v, p, e: None
        if node is False:
            return lambda v, p, e: _err(e, p, "no value is allowed here")
        unknown = set(node) - _KNOWN
        if unknown:
            raise ValueError(f"schema keyword(s) not supported by the compiler: {sorted(unknown)}")
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(self.ref(node["$ref"]))

        # type (checked first; the rest of the node only runs when the type is right)
        types = node.get("type")
        type_check: Check | None = None
        if types is not None:
            tlist = [types] if isinstance(types, str) else list(types)
            tests = [_TYPE_TESTS[t] for t in tlist]
            expected = " or ".join(_TYPE_NAMES[t] for t in tlist if t != "null") or "null"
            if node.get("x-meshctl-format") == "duration":
                expected += ' (a duration such as "10s" or "500ms")'
            if len(tests) == 1:
                t0 = tests[0]

                def type_check(v, p, e, t0=t0, expected=expected):
                    if not t0(v):
                        _err(e, p, f"expected {expected}, got {_describe(v)}")
                        return False
                    return True
            else:
                def type_check(v, p, e, tests=tests, expected=expected):
                    for t in tests:
                        if t(v):
                            return True
                    _err(e, p, f"expected {expected}, got {_describe(v)}")
                    return False
        nullable = isinstance(types, list) and "null" in types

        # strings
        if "enum" in node or "const" in node:
            allowed = list(node["enum"]) if "enum" in node else [node["const"]]
            allowed_set = set(a for a in allowed if isinstance(a, (str, int, float, bool)) or a is None)
            shown = _join([_show(a) if not isinstance(a, str) else a for a in allowed])

            def enum_check(v, p, e, allowed_set=allowed_set, allowed=allowed, shown=shown):
                try:
                    ok = v in allowed_set and not (isinstance(v, bool) and not any(a is v for a in allowed))
                except TypeError:
                    ok = False
                if not ok:
                    if type(e) is _Probe:
                        e.append(None)
                        return
                    hint = _did_you_mean(v, [a for a in allowed if isinstance(a, str)]) if isinstance(v, str) else ""
                    if len(allowed) == 1:
                        _err(e, p, f"{_show(v)} is not allowed here (must be {shown}){hint}")
                    else:
                        _err(e, p, f"{_show(v)} is not one of {shown}{hint}")
            checks.append(enum_check)
        message = node.get("x-meshctl-message")
        if "pattern" in node:
            rx = re.compile(node["pattern"])
            pat = node["pattern"]

            def pattern_check(v, p, e, search=rx.search, pat=pat, message=message):
                if isinstance(v, str) and search(v) is None:
                    _err(e, p, f"{_show(v)} {message}" if message else f"{_show(v)} does not match the pattern {pat}")
                    return False
                return True
            if node.get("x-meshctl-format") == "duration":
                def duration_check(v, p, e, pattern_check=pattern_check):
                    if pattern_check(v, p, e) and isinstance(v, str) and duration_ns(v) < 1e6:
                        _err(e, p, f"{_show(v)} is too short: durations must be at least 1ms")
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
                        _err(e, p, "must not be empty" if lo == 1 else f"must be at least {lo} characters long")
                    elif hi is not None and n > hi:
                        if message:
                            _err(e, p, f"{_show(v)} {message}" if hi else message)
                        else:
                            _err(e, p, f"must be at most {hi} characters long")
            checks.append(length_check)
        if node.get("x-meshctl-regex"):
            def regex_check(v, p, e):
                if isinstance(v, str):
                    problem = regex_problem(v)
                    if problem:
                        _err(e, p, f"invalid regular expression {_show(v)}: {problem}")
            checks.append(regex_check)
        if node.get("x-meshctl-format") in ("gateway-host", "sidecar-host"):
            gateway = node["x-meshctl-format"] == "gateway-host"
            what = "gateway host" if gateway else "egress host"

            def scoped_host_check(v, p, e, gateway=gateway, what=what):
                if isinstance(v, str):
                    problem = scoped_host_problem(v, gateway)
                    if problem:
                        _err(e, p, f"{_show(v)} is not a valid {what}: {problem}")
            checks.append(scoped_host_check)
        if node.get("x-meshctl-format") == "ip":
            def ip_check(v, p, e):
                if isinstance(v, str) and not _ip_version(v):
                    _err(e, p, f"{_show(v)} is not an IP address")
            checks.append(ip_check)
        if node.get("x-meshctl-format") == "host":
            def host_check(v, p, e):
                if isinstance(v, str) and not host_ok(v):
                    _err(e, p, f"{_show(v)} is not a valid host name (a DNS name such as \"reviews\", "
                               "\"reviews.prod.svc.cluster.local\" or \"*.example.com\", without scheme, "
                               "port or path)")
            checks.append(host_check)

        # numbers
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
                if isinstance(v, str) and _ip_version(v) != version:
                    _err(e, p, f"{_show(v)} is not an IPv{version} address")
            checks.append(ip_format)
        if lo is not None or hi is not None or xlo is not None or xhi is not None or big:
            def range_check(v, p, e, lo=lo, hi=hi, xlo=xlo, xhi=xhi, big=big):
                if not _is_number(v):
                    return
                bad = (lo is not None and v < lo) or (hi is not None and v > hi) or \
                      (xlo is not None and v <= xlo) or (xhi is not None and v >= xhi)
                if bad:
                    if lo is not None and hi is not None:
                        _err(e, p, f"{_show(v)} is out of range {lo}–{hi}")
                    elif lo is not None:
                        _err(e, p, f"{_show(v)} must be at least {lo}")
                    elif hi is not None:
                        _err(e, p, f"{_show(v)} must be at most {hi}")
                    elif xlo is not None:
                        _err(e, p, f"{_show(v)} must be greater than {xlo}")
                    else:
                        _err(e, p, f"{_show(v)} must be less than {xhi}")
                elif big is not None and not big[0] <= v <= big[1]:
                    _err(e, p, f"{_show(v)} does not fit in a 32-bit integer")
            checks.append(range_check)

        # objects
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
                        _err(e, p + (key,), "unknown field" + _did_you_mean(key, names))
                    elif addl_check is not None:
                        addl_check(sub, p + (key,), e)
            checks.append(object_check)
        if "required" in node:
            req = list(node["required"])

            def required_check(v, p, e, req=req):
                if isinstance(v, dict):
                    for r in req:
                        if r not in v:
                            _err(e, p + (r,), "required field missing")
            checks.append(required_check)
        if "minProperties" in node or "maxProperties" in node:
            lo_p = node.get("minProperties", 0)
            hi_p = node.get("maxProperties")

            def nprops_check(v, p, e, lo_p=lo_p, hi_p=hi_p):
                if isinstance(v, dict):
                    if len(v) < lo_p:
                        _err(e, p, "must not be empty" if lo_p == 1 else f"must have at least {lo_p} entries")
                    elif hi_p is not None and len(v) > hi_p:
                        _err(e, p, f"has {len(v)} entries, at most {hi_p} are allowed")
            checks.append(nprops_check)

        # arrays
        if "items" in node:
            item_check = self.compile(node["items"])

            def items_check(v, p, e, item_check=item_check):
                if isinstance(v, list):
                    for i, item in enumerate(v):
                        item_check(item, p + (i,), e)
            checks.append(items_check)
        if "minItems" in node or "maxItems" in node:
            lo_i = node.get("minItems", 0)
            hi_i = node.get("maxItems")

            def nitems_check(v, p, e, lo_i=lo_i, hi_i=hi_i):
                if isinstance(v, list):
                    if len(v) < lo_i:
                        _err(e, p, "must not be empty" if lo_i == 1 else f"must have at least {lo_i} items")
                    elif hi_i is not None and len(v) > hi_i:
                        _err(e, p, f"has {len(v)} items, at most {hi_i} are allowed")
            checks.append(nitems_check)
        if node.get("uniqueItems"):
            def unique_check(v, p, e):
                if isinstance(v, list):
                    seen = []
                    for i, item in enumerate(v):
                        if item in seen:
                            _err(e, p + (i,), f"duplicate item {_show(item)}")
                        else:
                            seen.append(item)
            checks.append(unique_check)

        # combinators
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
                                _err(e, p + (i, keys[0]),
                                     f"duplicate {keys[0]} {_show(value[0])} (also in item {first})")
                            else:
                                _err(e, p + (i,), f"duplicate {', '.join(keys)} (also in item {first})")
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
                            _err(e, p + (i,), f"duplicate item {_show(item)} (also item {first})")
            checks.append(unique_items)

        if types in ("object", "array") and checks:
            return self._fused(types, expected, checks)
        return self._assemble(type_check, checks, nullable)

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
                    _err(e, p, f"expected {expected}, got {_describe(v)}")
            return fused1

        def fused(v, p, e, pytype=pytype, first=first, rest=rest, expected=expected):
            if isinstance(v, pytype):
                first(v, p, e)
                for c in rest:
                    c(v, p, e)
            else:
                _err(e, p, f"expected {expected}, got {_describe(v)}")
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
                        _err(e, p, f"one of {_join(names)} must be set")
                    elif len(found) > 1:
                        _err(e, p, f"only one of {_join(names)} may be set (found {_join(found)})")
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
                        _err(e, p, f"only one of {_join(names)} may be set (found {_join(found)})")
            return at_most_one
        # "at least one of": anyOf: [{required: [a]}, ...]
        if kw == "anyOf" and all(req):
            names = [r[0] for r in req]

            def at_least_one(v, p, e, names=names):
                if isinstance(v, dict) and not _present(v, names):
                    _err(e, p, f"one of {_join(names)} must be set")
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
                            _err(e, p, f"{' and '.join(g)} cannot be set together")
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
                tmp: list = _Probe() if probe else []
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
                n, errs = count_ok(v, p, type(e) is _Probe)
                if n == 0:
                    _err(e, p, "does not match any of the allowed forms" + detail(errs))
            return any_of

        def one_of(v, p, e):
            n, errs = count_ok(v, p, type(e) is _Probe)
            if n != 1:
                _err(e, p, "must match exactly one of the allowed forms"
                     + (f" (matches {n})" if n else detail(errs)))
        return one_of

    def conditional(self, node: dict, message: str | None) -> Check:
        """if/then/else; with `x-meshctl-message`, a failing branch is reported as that one line."""
        cond = self.compile(node["if"])
        then = self.compile(node["then"]) if "then" in node else None
        other = self.compile(node["else"]) if "else" in node else None

        def if_then(v, p, e):
            tmp = _Probe()
            cond(v, p, tmp)
            branch = then if not tmp else other
            if branch is None:
                return
            if message is None:
                branch(v, p, e)
                return
            out = _Probe()
            branch(v, p, out)
            if out:
                _err(e, p, message)
        return if_then

    def negation(self, sub: Any, message: str | None = None) -> Check:
        if isinstance(sub, dict) and set(sub) == {"required"}:
            names = list(sub["required"])

            def not_together(v, p, e, names=names):
                if isinstance(v, dict) and all(n in v for n in names):
                    _err(e, p, f"{' and '.join(names)} cannot be set together")
            return not_together
        if isinstance(sub, dict) and set(sub) == {"const"}:
            bad = sub["const"]

            def not_const(v, p, e, bad=bad, message=message or "is not allowed here"):
                if v == bad and type(v) is type(bad):
                    _err(e, p, f"{_show(v)} {message}")
            return not_const
        inner = self.compile(sub)

        def negate(v, p, e, message=message):
            tmp = _Probe()
            inner(v, p, tmp)
            if not tmp:
                _err(e, p, f"{_show(v)} {message}" if message else f"{_show(v)} is not allowed here")
        return negate


# Set while a validator runs on a value all of whose CEL rules are known to hold: the nodes skip
# their rules (validation runs in one thread; see gateway_api_validator).
_RULES_HOLD = [False]


def _with_cel(check: Check, rules, escape) -> Check:
    """A node's checks, then its CEL rules when the value (and everything below it) passed
    them: as in the API server, a rule sees a well-typed value, and a wrong type is reported
    once, by the schema."""

    def cel_check(v, p, e, check=check, rules=rules, escape=escape, hold=_RULES_HOLD):
        before = len(e)
        check(v, p, e)
        if hold[0] or len(e) != before or v is None:
            return
        for rule, reason, index in rules.failures(escape(v) if escape is not None else v):
            if type(e) is _Probe:
                e.append(None)
                return
            where = p + ((index,) if index is not None else ()) + rule.field_path
            _err(e, where, rule.message + (f" (the rule cannot be evaluated: {reason})" if reason else ""))
    return cel_check


def _defaults_change_checks(node: Any) -> bool:
    """Whether defaulting can change what the schema checks report: a required field or a
    list-map key with a default."""
    if not isinstance(node, dict):
        return False
    props = node.get("properties") or {}
    for name in node.get("required") or ():
        if isinstance(props.get(name), dict) and "default" in props[name]:
            return True
    items = node.get("items")
    if isinstance(items, dict):
        item_props = items.get("properties") or {}
        for key in node.get("x-kubernetes-list-map-keys") or ():
            if isinstance(item_props.get(key), dict) and "default" in item_props[key]:
                return True
    return (any(_defaults_change_checks(sub) for sub in props.values()) or _defaults_change_checks(items)
            or _defaults_change_checks(node.get("additionalProperties")))


def defaulter(node: Any) -> Callable[[Any], Any] | None:
    """A function applying the schema's `default`s to a value as the API server does before it
    validates (missing or null fields get their default, then defaulting goes on below, into
    defaulted values too), returning a new value and leaving the given one untouched; None
    when no node below has a default."""
    if not isinstance(node, dict):
        return None
    props = node.get("properties") or {}
    defaults = {k: sub["default"] for k, sub in props.items() if isinstance(sub, dict) and "default" in sub}
    subs = {k: f for k, f in ((k, defaulter(sub)) for k, sub in props.items()) if f is not None}
    items = defaulter(node["items"]) if isinstance(node.get("items"), dict) else None
    values = defaulter(node["additionalProperties"]) if isinstance(node.get("additionalProperties"), dict) else None
    if not defaults and not subs and items is None and values is None:
        return None
    # Defaults are inserted as they are, already defaulted themselves, and shared between values:
    # the defaulted value is only read (by the validator and the CEL rules), never changed.
    prepared = tuple((k, subs[k](d) if k in subs and isinstance(d, (dict, list)) else d) for k, d in defaults.items())
    sub_items = tuple(subs.items())

    def apply_list(v):
        out = None
        for i, x in enumerate(v):
            y = items(x)
            if y is not x:
                if out is None:
                    out = list(v)
                out[i] = y
        return v if out is None else out

    def apply(v):
        """Copy-on-write: the value itself when no default applies anywhere below."""
        if type(v) is list:
            return apply_list(v) if items is not None else v
        if type(v) is not dict:
            return v
        out = None
        inserted = ()
        for k, d in prepared:
            if v.get(k) is None:
                if out is None:
                    out = dict(v)
                    inserted = []
                out[k] = d
                inserted.append(k)
        src = v if out is None else out
        if values is None:
            for k, f in sub_items:
                x = src.get(k)
                if x is not None and k not in inserted:
                    y = f(x)
                    if y is not x:
                        if out is None:
                            out = src = dict(v)
                        out[k] = y
        else:
            for k, x in list(src.items()):
                f = subs.get(k) if k in props else values
                if f is not None:
                    y = f(x)
                    if y is not x:
                        if out is None:
                            out = src = dict(v)
                        out[k] = y
        return v if out is None else out
    return apply


_validators: dict[str, Check] = {}


def validator_for(kind: str) -> Check:
    """The compiled `spec` validator of an Istio kind: `check(value, path, errors)` (cached)."""
    v = _validators.get(kind)
    if v is None:
        schema = spec_schema(kind)
        v = _validators[kind] = _Compiler(schema).compile(schema)
    return v


# --- whole objects ----------------------------------------------------------------------------

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
_METADATA_FIELDS = (
    "name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "finalizers", "ownerReferences", "managedFields", "selfLink",
)


def _check_metadata(body: dict, errors: list) -> None:
    meta = body.get("metadata")
    if meta is None:
        _err(errors, ("metadata",), "required field missing (set metadata.name)")
        return
    if not isinstance(meta, dict):
        _err(errors, ("metadata",), f"expected an object, got {_describe(meta)}")
        return
    for k in meta:
        if str(k) not in _METADATA_FIELDS:
            _err(errors, ("metadata", str(k)), "unknown field" + _did_you_mean(str(k), _METADATA_FIELDS))
    name = meta.get("name")
    if name is None or name == "":
        if not meta.get("generateName"):
            _err(errors, ("metadata", "name"), "required field missing")
    elif not isinstance(name, str):
        _err(errors, ("metadata", "name"), f"expected a string, got {_describe(name)}")
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        _err(errors, ("metadata", "name"),
             f"{_show(name)} is not a valid name: use lowercase letters, digits, '-' and '.', "
             "starting and ending with a letter or digit (at most 253 characters)")
    ns = meta.get("namespace")
    if ns is not None:
        if not isinstance(ns, str):
            _err(errors, ("metadata", "namespace"), f"expected a string, got {_describe(ns)}")
        elif len(ns) > 63 or not _DNS1123_LABEL.match(ns):
            _err(errors, ("metadata", "namespace"),
                 f"{_show(ns)} is not a valid namespace: use lowercase letters, digits and '-', "
                 "starting and ending with a letter or digit (at most 63 characters)")
    for field in ("labels", "annotations"):
        m = meta.get(field)
        if m is None:
            continue
        if not isinstance(m, dict):
            _err(errors, ("metadata", field), f"expected an object, got {_describe(m)}")
            continue
        for k, v in m.items():
            key = str(k)
            if not _label_key_ok(key):
                _err(errors, ("metadata", field, key),
                     f"{_show(key)} is not a valid key: an optional DNS prefix and '/', then at most 63 "
                     "letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
            if not isinstance(v, str):
                _err(errors, ("metadata", field, key),
                     f"expected a string, got {_describe(v)} (quote the value)")
            elif field == "labels" and (len(v) > 63 or not _LABEL_VALUE.match(v)):
                _err(errors, ("metadata", field, key),
                     f"{_show(v)} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', "
                     "starting and ending with a letter or digit")


def _label_key_ok(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and _LABEL_NAME.match(name) is not None


def validate_spec(kind: str, spec: Any, path: tuple = ("spec",)) -> list[SchemaError]:
    """Errors in the `spec` of an object of `kind` (an Istio kind name)."""
    errors: list[SchemaError] = []
    validator_for(kind)(spec, path, errors)
    return errors


_gateway_api: dict[str, tuple] = {}


def gateway_api_validator(kind: str) -> Check:
    """A `spec` validator of a Gateway API kind: defaults applied, then the schema and the CEL
    rules (cached). All the rules of a kind are first evaluated as one program (one call for a
    valid object); only when that does not hold does the validator evaluate them node by node,
    to say which field breaks which rule."""
    hit = _gateway_api.get(kind)
    if hit is None:
        from meshctl.schemas import gatewayapi
        from meshctl.schemas.cel import WholeRules

        schema = gatewayapi.spec_schema(kind)
        full = _Compiler(schema, cel=True).compile(schema)
        whole = WholeRules(schema)
        apply_defaults = defaulter(schema)

        def structural(v, p, e):
            """The schema checks alone (the rules are known to hold)."""
            _RULES_HOLD[0] = True
            try:
                full(v, p, e)
            finally:
                _RULES_HOLD[0] = False
        # the schema checks of a value without nulls come out the same before and after defaulting
        # (defaults are valid, and no required field or list key has one), so a value whose rules
        # are known to hold skips defaulting
        raw_ok = not _defaults_change_checks(schema)

        def check(v, p, e):
            key, known = whole.lookup(v) if whole.usable else (None, None)
            if known is True and raw_ok:
                structural(v, p, e)
                return
            if apply_defaults is not None:
                v = apply_defaults(v)
            ok = known if known is not None else (whole.usable and whole.holds(v, key))
            (structural if ok else full)(v, p, e)
        hit = _gateway_api[kind] = (check,)
    return hit[0]


def _validate_object(resource, kind, check: Check, spec_required: bool) -> list[SchemaError]:
    """apiVersion, top-level fields, metadata, then `spec` with `check`. `kind`: an IstioKind or a
    GatewayAPIKind (its served versions)."""
    body = resource.body
    errors: list[SchemaError] = []
    if resource.version not in kind.versions:
        _err(errors, ("apiVersion",),
             f"{_show(resource.api_version)} is not a served version of {kind.kind} "
             f"(use {_join(kind.api_versions())})")
    for k in body:
        if k not in _TOP_LEVEL:
            _err(errors, (str(k),), "unknown field" + _did_you_mean(str(k), _TOP_LEVEL))
    _check_metadata(body, errors)
    if "spec" in body:
        check(body["spec"], ("spec",), errors)
    elif spec_required:
        _err(errors, ("spec",), "required field missing")
    return errors


def validate(resource) -> list[SchemaError]:
    """Schema errors of one object (a meshctl.resources.Resource): Istio kinds and the Gateway
    API kinds; [] for other kinds."""
    ik = istio_kind(resource.api_version, resource.kind)
    if ik is None:
        if resource.group == "gateway.networking.k8s.io":
            from meshctl.schemas.gatewayapi import gateway_api_kind

            gk = gateway_api_kind(resource.api_version, resource.kind)
            if gk is not None:
                from meshctl.schemas import gatewayapi

                return _validate_object(resource, gk, gateway_api_validator(gk.kind),
                                        bool(gatewayapi.spec_schema(gk.kind).get("x-meshctl-required")))
        known = BY_KIND.get(resource.kind)
        if known is not None and resource.api_version == known.group:  # the version left out
            return [SchemaError(("apiVersion",), f"apiVersion: {_quote(resource.api_version)} has no version "
                                                 f"(use {_join(known.api_versions())})")]
        return []
    return _validate_object(resource, ik, validator_for(ik.kind), bool(spec_schema(ik.kind).get("x-meshctl-required")))

"""The formats meshctl's schemas check beyond JSON Schema: RE2 regular expressions (as Envoy reads
them), host names as Istio accepts them, IP addresses, Go durations."""
from __future__ import annotations

import re

from meshctl.schemas.errors import show

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


DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
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
    elif gateway and ns not in ("*", ".") and not DNS1123_LABEL.match(ns):
        return f"{show(ns)} is not a namespace (use a namespace name, \".\" or \"*\")"
    elif not gateway and ns.lstrip("~") not in ("", "*", ".") and not DNS1123_LABEL.match(ns.lstrip("~")):
        return f"{show(ns)} is not a namespace (use a namespace name, \".\", \"*\" or \"~\")"
    if host != "*" and "." not in host:
        return "short names are not allowed (use a fully qualified name such as \"reviews.default.svc.cluster.local\")"
    if "*" in host and host != "*" and not host.startswith("*."):
        return "a wildcard must be the whole first label (\"*.example.com\")"
    if len(host) <= 255 and _dns_host_ok(host):
        return None
    if gateway and _ip_ok(host):
        return None
    return "is not a DNS name (no scheme, port or path)"


def ip_version(text: str) -> int:
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



"""CEL rules of CRD schemas (`x-kubernetes-validations`), evaluated as the API server does.

The rules are evaluated with cel-expr-python (the CEL project's Python binding of its C++
implementation, with the `strings` extension Kubernetes enables) plus the Kubernetes library
functions the CRDs use (`isIP`). The library is imported on the first rule evaluated, so only
an analysis that meets a Gateway API object pays for it. `bench/cel_libraries.py` holds the
measurements behind the choice.

As in the API server:
- `self` is the value of the schema node, with defaults applied;
- property names that are CEL keywords or hold `_`, `.`, `-` or `/` are escaped
  (`namespace` → `__namespace__`, `a-b` → `a__dash__b`);
- transition rules (those naming `oldSelf`) apply to updates only and are skipped;
- a rule that fails, or cannot be evaluated, is an error with the rule's `message`.

The rules of one node are joined into one program (`r1 && r2 && ...`), so a valid value costs
one evaluation; only when it is not true are the rules evaluated one by one to name the failing one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Rule", "NodeRules", "rules_of", "escape_key", "needs_escape", "is_ip"]

# Kubernetes' escaping of property names in CEL (apiextensions-apiserver, cel/escaping)
_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
})
_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def needs_escape(name: str) -> bool:
    return name in _RESERVED or "__" in name or not _SIMPLE.match(name)


def escape_key(name: str) -> str:
    """A property name as CEL rules see it (`namespace` → `__namespace__`)."""
    if name in _RESERVED:
        return f"__{name}__"
    return (name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__")
            .replace("/", "__slash__"))


def is_ip(value: str) -> bool:
    """Kubernetes' `isIP(string)`: an IPv4 or IPv6 address; no zone, no IPv4-mapped IPv6
    address, no leading zeros in IPv4 octets."""
    import ipaddress

    if not isinstance(value, str) or "%" in value:
        return False
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (ip.version == 6 and ip.ipv4_mapped is not None)


@dataclass(frozen=True)
class Rule:
    rule: str
    message: str
    field_path: tuple = ()


def _field_path(text: str | None) -> tuple:
    """`.spec.foo['bar'][0]`-style fieldPath → path steps (keys and indexes)."""
    if not text:
        return ()
    out: list = []
    for m in re.finditer(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\['([^']*)'\]", text):
        key, index, quoted = m.groups()
        out.append(int(index) if index is not None else (key if key is not None else quoted))
    return tuple(out)


def rules_of(node: dict) -> list[Rule]:
    """The rules of a schema node that apply to a new object (not transition rules)."""
    out = []
    for r in node.get("x-kubernetes-validations") or ():
        text = r.get("rule", "")
        if re.search(r"\boldSelf\b", text):
            continue
        out.append(Rule(text, r.get("message") or f"failed rule: {' '.join(text.split())}",
                        _field_path(r.get("fieldPath"))))
    return out


_env = None


def _environment():
    """The CEL environment: `self` of any type, the strings extension, Kubernetes' isIP."""
    global _env
    if _env is None:
        from cel_expr_python import cel
        from cel_expr_python.ext import ext_strings

        is_ip_decl = cel.FunctionDecl("isIP", [cel.Overload("isIP_string", cel.Type.BOOL, [cel.Type.STRING],
                                                             impl=is_ip)])
        _env = cel.NewEnv(variables={"self": cel.Type.DYN}, extensions=[ext_strings.ExtStrings()],
                          functions=[is_ip_decl])
    return _env


class NodeRules:
    """The rules of one schema node, compiled on first use. `failures(value)` → the rules the
    value breaks, each with a one-line reason."""

    __slots__ = ("rules", "_all", "_each")

    def __init__(self, rules: list[Rule]):
        self.rules = rules
        self._all = None
        self._each: list | None = None

    def _compile(self) -> None:
        env = _environment()
        each = []
        for r in self.rules:
            try:
                each.append(env.compile(r.rule))
            except Exception as exc:  # a rule the library cannot compile: reported once, never silently passed
                each.append(_Broken(str(exc).splitlines()[0]))
        self._each = each
        good = [r.rule for r, p in zip(self.rules, each) if not isinstance(p, _Broken)]
        self._all = env.compile(" && ".join(f"({g})" for g in good)) if len(good) == len(each) and len(good) > 1 \
            else (each[0] if len(each) == 1 and not isinstance(each[0], _Broken) else None)

    def failures(self, value: Any) -> list[tuple[Rule, str | None, int | None]]:
        """(rule, why it could not be evaluated or None, index of the offending list item or
        None) for each rule `value` breaks. A rule `self.all(x, ...)` over a list is tried on
        each item alone, to name the item that breaks it (rules relating items to each other,
        such as uniqueness, stay on the list)."""
        if self._each is None:
            self._compile()
        if self._all is not None and _evaluate(self._all, value)[0] is True:
            return []
        out: list[tuple[Rule, str | None, int | None]] = []
        for rule, prog in zip(self.rules, self._each):
            if isinstance(prog, _Broken):
                out.append((rule, f"rule cannot be compiled: {prog.reason}", None))
                continue
            result, reason = _evaluate(prog, value)
            if result is True:
                continue
            items = []
            if isinstance(value, list) and value and _PER_ITEM.match(rule.rule):
                items = [i for i, item in enumerate(value) if _evaluate(prog, [item])[0] is not True]
            out.extend((rule, reason, i) for i in items or [None])
        return out


_PER_ITEM = re.compile(r"^\s*self\.all\(\s*\w+\s*,")


def _evaluate(program, value) -> tuple[Any, str | None]:
    """(result, None) or (None, the evaluation error's first line)."""
    try:
        result = program.eval(data={"self": value}).plain_value()
    except Exception as exc:  # pragma: no cover - the binding reports errors as values
        return None, str(exc).splitlines()[0]
    if isinstance(result, bool):
        return result, None
    return None, str(result).splitlines()[0]


class _Broken:
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def escaper(node: Any) -> Callable[[Any], Any] | None:
    """A function returning `value` with the property names of this schema node's objects
    escaped as CEL sees them, or None when no property below needs it (the common case)."""
    if not isinstance(node, dict):
        return None
    props = node.get("properties") or {}
    subs = {k: escaper(v) for k, v in props.items()}
    renames = {k: escape_key(k) for k in props if needs_escape(k)}
    items = escaper(node["items"]) if isinstance(node.get("items"), dict) else None
    values = escaper(node["additionalProperties"]) if isinstance(node.get("additionalProperties"), dict) else None
    if not renames and not items and not values and not any(subs.values()):
        return None
    def escape(v):
        if isinstance(v, list):
            return [items(x) for x in v] if items else v
        if not isinstance(v, dict):
            return v
        out = {}
        for k, x in v.items():
            f = subs[k] if k in subs else values
            out[renames.get(k, k)] = f(x) if f is not None else x
        return out
    return escape

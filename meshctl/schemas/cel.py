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


# --- regular expressions ---------------------------------------------------------------------------
# The binding compiles the RE2 pattern of `matches()` on every evaluation (28 us for the CRDs'
# path pattern, against 5 us for the rest of that rule). A rule whose pattern is a literal that
# means the same to Python's `re` as to RE2 calls `reMatches` instead, which compiles it once;
# other patterns keep `matches()`.

_MATCHES_CALL = re.compile(r"""\.matches\(\s*(r?)("""  + '"""' + r"""|'''|"|')""")
_RE2_SAME = re.compile(r"^[^\\]*(?:\\[.\-/*+?()\[\]{}^$|\\dswDSW][^\\]*)*$")
_searchers: dict[str, Callable[[str], Any]] = {}


def _python_pattern(pattern: str) -> str | None:
    """`pattern` for Python's `re` with RE2's meaning, or None when meshctl cannot be sure it is
    the same (escapes other than of punctuation and \\d \\s \\w, POSIX classes, \\p, \\z, \\Q,
    flags other than (?i))."""
    if not _RE2_SAME.match(pattern) or "[:" in pattern or "(?P" in pattern or "(?<" in pattern:
        return None
    if pattern.startswith("^(?i)"):
        pattern = "(?i)^" + pattern[5:]  # the same, in the place Python wants global flags
    for flags in re.findall(r"\(\?([a-zA-Z-]*)[:)]", pattern):
        if flags not in ("", "i") or (flags == "i" and not pattern.startswith("(?i)")):
            return None
    out, in_class, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern.startswith("]", i + 1) or pattern.startswith("^]", i + 1):
                return None
        elif c == "$":
            c = r"\Z"  # RE2's $ is the end of the text; Python's also matches before a final newline
        out.append(c)
        i += 1
    try:
        re.compile("".join(out))
    except re.error:
        return None
    return "".join(out)


def _re_matches(text: str, pattern: str) -> bool:
    search = _searchers.get(pattern)
    if search is None:
        search = _searchers[pattern] = re.compile(_python_pattern(pattern) or "(?!)").search
    return search(text) is not None


def _literal(text: str, start: int, quote: str, raw: bool) -> tuple[int, str] | None:
    """(index after the closing quote, value) of a CEL string literal whose opening quote ends
    at `start`; None for escapes other than a doubled backslash in a non-raw literal."""
    value, i = [], start
    while i < len(text):
        if text.startswith(quote, i):
            return i + len(quote), "".join(value)
        c = text[i]
        if c == "\\" and not raw:
            if text[i + 1:i + 2] != "\\":
                return None
            value.append("\\")
            i += 2
            continue
        value.append(c)
        i += 1
    return None


def fast_regex(rule: str) -> str:
    """`rule` with `X.matches(LITERAL)` as `X.reMatches(LITERAL)` where the pattern means the
    same to Python's `re` (see _python_pattern)."""
    out, pos = [], 0
    for m in _MATCHES_CALL.finditer(rule):
        if m.start() < pos:
            continue
        found = _literal(rule, m.end(), m.group(2), bool(m.group(1)))
        if found is None:
            continue
        after, value = found
        if not rule[after:].lstrip().startswith(")") or _python_pattern(value) is None:
            continue
        out.append(rule[pos:m.start()] + ".reMatches(")
        pos = m.start() + len(".matches(")
    out.append(rule[pos:])
    return "".join(out)


_env = None


def _environment():
    """The CEL environment: `self` of any type, the strings extension, Kubernetes' isIP, and
    reMatches (see fast_regex)."""
    global _env
    if _env is None:
        from cel_expr_python import cel
        from cel_expr_python.ext import ext_strings

        string = cel.Type.STRING
        functions = [
            cel.FunctionDecl("isIP", [cel.Overload("isIP_string", cel.Type.BOOL, [string], impl=is_ip)]),
            cel.FunctionDecl("reMatches", [cel.Overload("reMatches_string_string", cel.Type.BOOL, [string, string],
                                                        is_member=True, impl=_re_matches)]),
        ]
        _env = cel.NewEnv(variables={"self": cel.Type.DYN}, extensions=[ext_strings.ExtStrings()],
                          functions=functions)
    return _env


def _compile(text: str):
    # parsed, not type-checked: `self` is dynamic anyway, and checking the 10 KB program of
    # HTTPRoute's rules costs more than the evaluations of a typical run
    return _environment().compile(fast_regex(text), disable_check=True)


class NodeRules:
    """The rules of one schema node, compiled on first use. `failures(value)` → the rules the
    value breaks, each with a one-line reason."""

    __slots__ = ("rules", "_all", "_each")

    def __init__(self, rules: list[Rule]):
        self.rules = rules
        self._all = None
        self._each: list | None = None

    def _compile(self) -> None:
        each = []
        for r in self.rules:
            try:
                each.append(_compile(r.rule))
            except Exception as exc:  # a rule the library cannot compile: reported once, never silently passed
                each.append(_Broken(str(exc).splitlines()[0]))
        self._each = each
        good = [r.rule for r, p in zip(self.rules, each) if not isinstance(p, _Broken)]
        self._all = _compile(" && ".join(f"({g})" for g in good)) if len(good) == len(each) and len(good) > 1 \
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


def uses_escapes(node: Any) -> bool:
    """Whether the rules of a schema node name escaped properties (`__namespace__`): only then
    must the value's property names be escaped before the rules see it."""
    return isinstance(node, dict) and any("__" in r.rule for r in rules_of(node))


def partial_escaper(node: Any) -> Callable[[Any], Any] | None:
    """Like `escaper`, for a whole object: escapes below the nodes whose rules use escaped names,
    copies only the objects on the way to them, and is None when no rule uses them."""
    if not isinstance(node, dict):
        return None
    if uses_escapes(node):
        return escaper(node)
    props = node.get("properties") or {}
    subs = {k: f for k, f in ((k, partial_escaper(v)) for k, v in props.items()) if f is not None}
    items = partial_escaper(node["items"]) if isinstance(node.get("items"), dict) else None
    values = partial_escaper(node["additionalProperties"]) if isinstance(node.get("additionalProperties"), dict) else None
    if not subs and items is None and values is None:
        return None

    def escape(v):
        if isinstance(v, list):
            return [items(x) for x in v] if items is not None else v
        if not isinstance(v, dict):
            return v
        out = dict(v)
        for k, x in v.items():
            f = subs.get(k) if k in props else values
            if f is not None:
                out[k] = f(x)
        return out
    return escape


def escaper(node: Any) -> Callable[[Any], Any] | None:
    """A function returning `value` with the property names of this schema node's objects
    escaped as CEL sees them, or None when no property below needs it."""
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


def whole_expression(node: Any, var: str = "self", depth: int = 0) -> str | None:
    """One CEL expression that holds when every rule of every node below `node` holds on the
    value at `var`: each node's rules bound to `self` by a one-item comprehension
    (`[v].all(self, r1 && r2)`), optional fields guarded by `has()`, lists and maps walked with
    `all()`. None when no node has rules, or when a property on the way needs escaping."""
    if not isinstance(node, dict):
        return None
    parts = []
    rules = rules_of(node)
    if rules:
        body = " && ".join(f"({r.rule})" for r in rules)
        parts.append(body if var == "self" else f"[{var}].all(self, {body})")
    for name, sub in (node.get("properties") or {}).items():
        if not _has_rules_below(sub):
            continue
        if needs_escape(name):
            raise _Unsupported(name)
        inner = whole_expression(sub, f"{var}.{name}", depth + 1)
        if inner is not None:
            parts.append(f"(!has({var}.{name}) || {inner})")
    if isinstance(node.get("items"), dict) and _has_rules_below(node["items"]):
        item = f"zz{depth}"
        inner = whole_expression(node["items"], item, depth + 1)
        if inner is not None:
            parts.append(f"{var}.all({item}, {inner})")
    if isinstance(node.get("additionalProperties"), dict) and _has_rules_below(node["additionalProperties"]):
        key = f"zz{depth}"
        inner = whole_expression(node["additionalProperties"], f"{var}[{key}]", depth + 1)
        if inner is not None:
            parts.append(f"{var}.all({key}, {inner})")
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"


class _Unsupported(Exception):
    pass


def _has_rules_below(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    if rules_of(node):
        return True
    return (any(_has_rules_below(s) for s in (node.get("properties") or {}).values())
            or _has_rules_below(node.get("items")) or _has_rules_below(node.get("additionalProperties")))


# --- memo ---------------------------------------------------------------------------------------
# Objects of one kind often differ only in names: a route per Service, each with its own name
# and backend names. A property whose value no rule can read (its name appears in no rule of
# its node or above, and no rule lives below it) does not change the rules' outcome, so the
# outcome is remembered per value with such strings masked, and routes that differ only in
# them are evaluated once.

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# an operand that is a whole object (`a == b`, `a in list`) would see every property
_BARE_OPERAND = re.compile(
    r"(?<![\w.'\"])(?!true\b|false\b|null\b)[A-Za-z_]\w*\s*(?:==|!=|\bin\b)|"
    r"(?:==|!=)\s*(?!true\b|false\b|null\b)[A-Za-z_]\w*(?![\w.\[(])")
_MASK = ("\x00masked",)


def _words(rules: list[Rule]) -> frozenset:
    out = set()
    for r in rules:
        for w in _WORD.findall(r.rule):
            out.add(w)
            if w.startswith("__") and w.endswith("__") and len(w) > 4:
                out.add(w[2:-2])
    return frozenset(out)


class _Null(Exception):
    """A null in a value: defaulting may replace it, so such values are not remembered."""


def _plain(v):
    """A hashable form of a value (types kept apart: True is not 1)."""
    t = type(v)
    if t is str:
        return v
    if v is None:
        raise _Null
    if t is dict:
        return ("d",) + tuple((k, _plain(x)) for k, x in v.items())
    if t is list:
        return ("l",) + tuple(_plain(x) for x in v)
    return (t.__name__, v)


def _freezer(node: Any, seen: frozenset) -> Callable[[Any], Any] | None:
    """A function giving the memo key of a value of this schema node, or None when nothing
    below can be masked (then `_plain` is the key)."""
    if not isinstance(node, dict):
        return None
    words = seen | _words(rules_of(node))
    props = node.get("properties") or {}
    masked = frozenset(k for k, sub in props.items() if k not in words and not _has_rules_below(sub))
    subs = {k: f for k, f in ((k, _freezer(sub, words)) for k, sub in props.items() if k not in masked)
            if f is not None}
    items = _freezer(node.get("items"), words)
    values = _freezer(node.get("additionalProperties"), words)
    if not masked and not subs and items is None and values is None:
        return None

    def freeze(v):
        t = type(v)
        if v is None:
            raise _Null
        if t is dict:
            out = ["d"]
            for k, x in v.items():
                if k in masked and type(x) is str:
                    out.append((k, _MASK))
                    continue
                f = subs.get(k) if k in props else values
                out.append((k, f(x) if f is not None else _plain(x)))
            return tuple(out)
        if t is list:
            return ("l",) + tuple(items(x) for x in v) if items is not None else _plain(v)
        return _plain(v)
    return freeze


class WholeRules:
    """Every rule of a schema as one program (see whole_expression), compiled on first use:
    `holds(value)` is True only when all of them hold on the (defaulted) value, so a valid
    object costs one evaluation; otherwise (False or an error) the caller checks node by node."""

    __slots__ = ("_text", "_program", "_escape", "_key", "_memo")
    MEMO_SIZE = 4096

    def __init__(self, schema: dict):
        try:
            self._text = whole_expression(schema)
        except _Unsupported:
            self._text = None
        self._escape = partial_escaper(schema)
        self._program = None
        every_rule = _all_rules(schema)
        self._key = None if any(_BARE_OPERAND.search(r.rule) for r in every_rule) else \
            (_freezer(schema, frozenset()) or _plain)
        self._memo: dict = {}

    @property
    def usable(self) -> bool:
        return self._text is not None

    def lookup(self, value: Any) -> tuple[Any, bool | None]:
        """(memo key, remembered outcome or None) of a value; the key is None when the value
        cannot be remembered (it holds a null, or something unhashable)."""
        if self._key is None:
            return None, None
        try:
            key = self._key(value)
            return key, self._memo.get(key)
        except (TypeError, _Null):
            return None, None

    def holds(self, value: Any, key: Any = None) -> bool:
        """Whether every rule holds on `value` (defaulted); remembered under `key` (from lookup,
        taken on the value before defaulting: the outcome depends on nothing else)."""
        if self._text is None:
            return False
        if self._program is None:
            try:
                self._program = _compile(self._text)
            except Exception:  # pragma: no cover - then every object is checked node by node
                self._text = None
                return False
        result = _evaluate(self._program, self._escape(value) if self._escape else value)[0] is True
        if key is not None and len(self._memo) < self.MEMO_SIZE:
            self._memo[key] = result
        return result


def _all_rules(node: Any) -> list[Rule]:
    if not isinstance(node, dict):
        return []
    out = list(rules_of(node))
    for sub in (node.get("properties") or {}).values():
        out += _all_rules(sub)
    out += _all_rules(node.get("items")) + _all_rules(node.get("additionalProperties"))
    return out

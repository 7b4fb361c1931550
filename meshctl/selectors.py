"""Label selectors and label indexes, defined once for every command.

Kubernetes labels are strings. A label or selector value written as another YAML type
(`version: 1`, `sidecar.istio.io/inject: true`) is matched as its YAML text ("1", "true") —
what its author meant, and what `kubectl` would make of it after quoting — while the schema
checks of analyze report the wrong type. Every selector in meshctl reads labels this way.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from meshctl.resources import yaml_text

ANY_NAMESPACE = object()  # LabelIndex: match in every namespace


def label_text(value: Any) -> str:
    """A label (or selector) value as text: its YAML text for another type, "" for null."""
    return "" if value is None else yaml_text(value)


def label_map(value: Any) -> dict[str, str]:
    """A label map with text keys and values ({} when it is not a mapping)."""
    if not isinstance(value, dict):
        return {}
    return {label_text(k): label_text(v) for k, v in value.items()}


def matches(labels: Mapping[Any, Any] | None, selector: Mapping[Any, Any] | None) -> bool:
    """Equality selector (a map of labels): every pair present; an empty selector matches all."""
    if not selector:
        return True
    have = labels or {}
    for k, v in selector.items():
        key = label_text(k)
        if key in have:
            if label_text(have[key]) != label_text(v):
                return False
        elif k in have:
            if label_text(have[k]) != label_text(v):
                return False
        else:
            return False
    return True


def matches_label_selector(selector: Any, labels: Mapping[str, Any] | None) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions with In, NotIn, Exists,
    DoesNotExist). A missing selector selects everything; a malformed one selects nothing
    (In/NotIn without values, unknown operators), as the API server would refuse it."""
    if selector is None:
        return True
    if not isinstance(selector, dict):
        return False
    have = label_map(labels)
    match_labels = selector.get("matchLabels")
    if isinstance(match_labels, dict) and not matches(have, match_labels):
        return False
    expressions = selector.get("matchExpressions")
    for expr in expressions if isinstance(expressions, list) else ():
        if not isinstance(expr, dict):
            return False
        key, op = label_text(expr.get("key")), expr.get("operator")
        raw = expr.get("values") or []
        values = [label_text(v) for v in raw] if isinstance(raw, list) else []
        if op == "In":
            if not values or have.get(key) not in values:
                return False
        elif op == "NotIn":
            if not values or (key in have and have[key] in values):
                return False
        elif op == "Exists":
            if key not in have:
                return False
        elif op == "DoesNotExist":
            if key in have:
                return False
        else:
            return False
    return True


def selector_string(selector: Mapping[Any, Any] | None) -> str:
    """A map selector as Kubernetes prints it: `k1=v1,k2=v2`, keys sorted; "" when empty."""
    labels = label_map(selector)
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


class LabelIndex:
    """Objects by namespace and by (namespace, label key, label value), so a map selector finds
    its matches in the smallest label bucket instead of scanning every object."""

    def __init__(self, items: Iterable[Any] = (), labels_of: Callable[[Any], Any] | None = None):
        self.by_ns: dict[str, list[tuple[Any, dict[str, str]]]] = {}
        self.by_label: dict[tuple[str, str, str], list[tuple[Any, dict[str, str]]]] = {}
        labels_of = labels_of or (lambda r: r.labels)
        for r in items:
            self.add(r, label_map(labels_of(r)))

    def add(self, r: Any, labels: dict[str, str]) -> None:
        ns = getattr(r, "namespace", None) or ""
        entry = (r, labels)
        self.by_ns.setdefault(ns, []).append(entry)
        for k, v in labels.items():
            self.by_label.setdefault((ns, k, v), []).append(entry)

    def namespaces(self) -> list[str]:
        return list(self.by_ns)

    def _select(self, ns: str, selector: dict[str, str]) -> list[Any]:
        if not selector:
            return [r for r, _ in self.by_ns.get(ns, [])]
        buckets = [self.by_label.get((ns, k, v), []) for k, v in selector.items()]
        smallest = min(buckets, key=len)
        return [r for r, labels in smallest if matches(labels, selector)]

    def select(self, selector: Mapping[Any, Any] | None, namespace: Any = ANY_NAMESPACE) -> list[Any]:
        """Objects whose labels match `selector` (everything when it is empty), in `namespace`
        ("" or None: cluster-scoped objects) or, by default, in every namespace."""
        sel = label_map(selector)
        if namespace is ANY_NAMESPACE:
            out: list[Any] = []
            for ns in self.by_ns:
                out.extend(self._select(ns, sel))
            return out
        return self._select(namespace or "", sel)

    def any(self, selector: Mapping[Any, Any] | None, namespace: Any = ANY_NAMESPACE) -> bool:
        """Whether anything matches."""
        sel = label_map(selector)
        spaces = self.by_ns if namespace is ANY_NAMESPACE else (namespace or "",)
        for ns in spaces:
            if not sel:
                if self.by_ns.get(ns):
                    return True
                continue
            buckets = [self.by_label.get((ns, k, v), []) for k, v in sel.items()]
            smallest = min(buckets, key=len)
            if len(buckets) == 1 and smallest:
                return True
            if any(matches(labels, sel) for _, labels in smallest):
                return True
        return False

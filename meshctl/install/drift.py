"""Drift: compare only the fields meshctl sets with the live object (server defaults and
equal quantities such as 1000m and 1 are not drift)."""
from __future__ import annotations

import copy
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

# --- drift ---------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {None: 1, "m": Decimal("0.001"), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15,
           "E": 10 ** 18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def _quantity(value: Any) -> Optional[Decimal]:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    m = _QUANTITY.match(str(value))
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2)
    if suffix and suffix[0] in "eE":
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * Decimal(_SUFFIX[suffix])


def _same_scalar(want: Any, live: Any) -> bool:
    if isinstance(want, bool) or isinstance(live, bool):
        return type(want) is type(live) and want == live
    if want == live:
        return True
    if isinstance(want, (str, int, float)) and isinstance(live, (str, int, float)) \
            and (isinstance(want, str) or isinstance(live, str)):
        a, b = _quantity(want), _quantity(live)  # the server writes 2000m as 2 and 1024Mi as 1Gi
        return a is not None and a == b
    return False


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == [] or value == "" or value is False or value == 0


# Fields the control plane itself rewrites after install: never drift.
_IGNORED = {
    "ValidatingWebhookConfiguration": (re.compile(r"^webhooks\[\d+\]\.failurePolicy$"),
                                       re.compile(r"^webhooks\[\d+\]\.clientConfig\.caBundle$")),
    "MutatingWebhookConfiguration": (re.compile(r"^webhooks\[\d+\]\.clientConfig\.caBundle$"),),
}


def diff_subset(want: Any, live: Any, kind: str = "", path: str = "") -> list[str]:
    """Paths of the fields in `want` whose live value differs. Fields only the server set are
    ignored (this is a subset comparison); empty wanted values match absent live ones."""
    ignored = _IGNORED.get(kind, ())
    if path and any(p.match(path) for p in ignored):
        return []
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return [] if _empty(want) and _empty(live) else [path or "."]
        out: list[str] = []
        for key, value in want.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in live:
                if not _empty(value) and not (ignored and any(p.match(sub) for p in ignored)):
                    out.append(sub)
                continue
            out.extend(diff_subset(value, live[key], kind, sub))
        return out
    if isinstance(want, list):
        if not isinstance(live, list) or len(want) != len(live):
            return [] if _empty(want) and _empty(live) else [path]
        out = []
        for i, (w, v) in enumerate(zip(want, live)):
            out.extend(diff_subset(w, v, kind, f"{path}[{i}]"))
        return out
    if live is None and _empty(want):
        return []
    return [] if _same_scalar(want, live) else [path]


def wanted_fields(body: dict) -> dict:
    """What meshctl sets on an object: everything but status and identity bookkeeping."""
    want = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("status", "apiVersion", "kind")}
    meta = want.get("metadata") or {}
    want["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    return want


def _value_at(obj: Any, path: str) -> Any:
    """The value at a diff_subset path. Keys may hold dots (label keys such as istio.io/rev), so
    at each mapping the longest key that the rest of the path starts with wins."""
    node, rest = obj, path
    while rest:
        if rest.startswith("["):
            m = re.match(r"\[(\d+)\]", rest)
            if not m or not isinstance(node, list) or int(m.group(1)) >= len(node):
                return None
            node, rest = node[int(m.group(1))], rest[m.end():]
        else:
            rest = rest[1:] if rest.startswith(".") else rest
            if not isinstance(node, dict):
                return None
            keys = [k for k in node if isinstance(k, str) and rest.startswith(k)
                    and (len(rest) == len(k) or rest[len(k)] in ".[")]
            if not keys:
                return None
            key = max(keys, key=len)
            node, rest = node[key], rest[len(key):]
        if node is None:
            return None
    return node

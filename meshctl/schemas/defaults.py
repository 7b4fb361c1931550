"""Defaults of a CRD schema applied to an object, as the API server applies them before it checks
the object (Gateway API's CEL rules read defaulted fields)."""
from __future__ import annotations

from typing import Any, Callable


def defaults_change_checks(node: Any) -> bool:
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
    return (any(defaults_change_checks(sub) for sub in props.values()) or defaults_change_checks(items)
            or defaults_change_checks(node.get("additionalProperties")))


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



"""The undo record of an injection: what injection changed in a pod template, kept in the
annotation `inject.meshctl.io/undo` so that `meshctl inject --remove` restores the original
exactly (labels, annotations, containers, volumes, key order), and so that injecting again first
goes back to the original.

Record (JSON): {"v": 1,
  "labels"/"annotations": {"absent": true} | {"added": [keys]} | {"orig": {the original map}},
  "spec": {key: {"absent": true} | {"value": original} |
                {"names": [original item names], "changed": {name: {"item": original} |
                 {"fields": {field: original}, "added": [fields], "order": [fields]?}}}},
  "spec_order": [original spec keys]?, "metadata_absent": true?}
"""
from __future__ import annotations

import json
from typing import Any

from meshctl.inject.merge import copy
from meshctl.loader import json_loads

UNDO = "inject.meshctl.io/undo"
_NAMED_LISTS = ("containers", "initContainers", "volumes", "imagePullSecrets")


def _map_record(orig: Any, final: Any, absent: bool, ignore: tuple[str, ...] = ()) -> dict | None:
    final = {k: v for k, v in (final or {}).items() if k not in ignore}
    if absent:
        return {"absent": True} if final else None
    orig = orig or {}
    if orig == final:
        return None
    if any(k not in final or final[k] != v for k, v in orig.items()):
        return {"orig": orig}
    return {"added": [k for k in final if k not in orig]}


def _spec_record(orig: dict, final: dict) -> dict:
    rec: dict = {}
    for key in list(orig) + [k for k in final if k not in orig]:
        if key in orig and key in final and orig[key] == final[key]:
            continue
        if key not in orig:
            rec[key] = {"absent": True}
        elif key in _NAMED_LISTS and isinstance(orig[key], list) and isinstance(final.get(key), list):
            by_name = {i.get("name"): i for i in final[key] if isinstance(i, dict)}
            names = [i.get("name") if isinstance(i, dict) else None for i in orig[key]]
            if None in names or len(set(names)) != len(names):
                rec[key] = {"value": orig[key]}
                continue
            changed = {}
            for item in orig[key]:
                now = by_name.get(item["name"])
                if now == item:
                    continue
                if isinstance(now, dict) and all(k in now for k in item):
                    # only fields changed or added: keep the originals of the changed ones
                    entry = {"fields": {k: v for k, v in item.items() if now[k] != v},
                             "added": [k for k in now if k not in item]}
                    if list(item) != [k for k in now if k in item]:
                        entry["order"] = list(item)
                    changed[item["name"]] = entry
                else:
                    changed[item["name"]] = {"item": item}
            rec[key] = {"names": names, "changed": changed}
        else:
            rec[key] = {"value": orig[key]}
    return rec


def _apply_map_record(meta: dict, key: str, rec: dict | None) -> None:
    if not rec:
        return
    if rec.get("absent"):
        meta.pop(key, None)
    elif "orig" in rec:
        meta[key] = rec["orig"]
    else:
        current = meta.get(key) or {}
        for k in rec.get("added", []):
            current.pop(k, None)
        meta[key] = current


def _apply_spec_record(spec: dict, rec: dict) -> dict:
    out = dict(spec)
    for key, r in rec.items():
        if r.get("absent"):
            out.pop(key, None)
        elif "names" in r:
            by_name = {i.get("name"): i for i in out.get(key) or [] if isinstance(i, dict)}
            changed = r.get("changed") or {}
            items = []
            for n in r["names"]:
                c = changed.get(n)
                if c is None:
                    if n in by_name:
                        items.append(by_name[n])
                elif "item" in c:
                    items.append(c["item"])
                elif n in by_name:
                    item = {k: v for k, v in by_name[n].items() if k not in c.get("added", ())}
                    item.update(c.get("fields") or {})
                    if c.get("order"):
                        item = {k: item[k] for k in c["order"] if k in item}
                    items.append(item)
            out[key] = items
        else:
            out[key] = r.get("value")
    return out


def record(orig_meta: dict, orig_spec: dict, final_meta: dict, final_spec: dict) -> str:
    rec: dict = {"v": 1}
    labels = _map_record(orig_meta.get("labels"), final_meta.get("labels"), "labels" not in orig_meta)
    annotations = _map_record(orig_meta.get("annotations"), final_meta.get("annotations"),
                              "annotations" not in orig_meta, ignore=(UNDO,))
    if labels:
        rec["labels"] = labels
    if annotations:
        rec["annotations"] = annotations
    spec = _spec_record(orig_spec, final_spec)
    if spec:
        rec["spec"] = spec
    if list(orig_spec) != [k for k in final_spec if k in orig_spec]:
        rec["spec_order"] = list(orig_spec)
    return json.dumps(rec, separators=(",", ":"), default=str)


def record_of(meta: dict) -> dict:
    try:
        rec = json_loads((meta.get("annotations") or {}).get(UNDO) or "{}")
    except ValueError:
        return {}
    return rec if isinstance(rec, dict) else {}


def restore(meta: dict, spec: dict) -> tuple[dict, dict] | None:
    """The pod (metadata, spec) before meshctl injected it, or None without a usable record."""
    text = (meta.get("annotations") or {}).get(UNDO)
    if not text:
        return None
    try:
        rec = json_loads(text)
    except ValueError:
        return None
    if not isinstance(rec, dict) or rec.get("v") != 1:
        return None
    meta = copy(meta)
    meta.get("annotations", {}).pop(UNDO, None)
    _apply_map_record(meta, "labels", rec.get("labels"))
    _apply_map_record(meta, "annotations", rec.get("annotations"))
    if "annotations" in meta and not meta["annotations"] and (rec.get("annotations") or {}).get("absent"):
        meta.pop("annotations")
    spec = _apply_spec_record(copy(spec), rec.get("spec") or {})
    order = rec.get("spec_order")
    if isinstance(order, list):
        spec = {**{k: spec[k] for k in order if k in spec}, **{k: v for k, v in spec.items() if k not in order}}
    return meta, spec

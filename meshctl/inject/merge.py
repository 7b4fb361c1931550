"""Kubernetes strategic-merge patch for Pod objects (the subset injection needs).

Lists that Kubernetes merges by key (containers by name, env by name, volumeMounts by
mountPath, ports by containerPort, ...) are merged item by item; other lists are replaced; maps
are merged recursively; a null in the patch deletes the key. The order of a merged list follows
the API server's rule: items of the patch in patch order, with items only in the original
placed after them unless the original placed them earlier than a patched item.
"""
from __future__ import annotations

from typing import Any

# path of a list (parent key names, with "*" for list items) → merge key
_MERGE_KEYS: dict[str, str] = {
    "spec.containers": "name",
    "spec.initContainers": "name",
    "spec.ephemeralContainers": "name",
    "spec.volumes": "name",
    "spec.imagePullSecrets": "name",
    "spec.hostAliases": "ip",
    "spec.securityContext.sysctls": "",  # replaced
    "metadata.ownerReferences": "uid",
}
_CONTAINER_LIST_KEYS = {
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "volumeDevices": "devicePath",
    "resizePolicy": "resourceName",
}
_CONTAINER_LISTS = ("spec.containers", "spec.initContainers", "spec.ephemeralContainers")
# lists of scalars merged as sets (patchStrategy merge)
_MERGED_SCALAR_LISTS = {"metadata.finalizers"}
# volumes use retainKeys: a patched volume keeps only the keys the patch names
_RETAIN_KEYS = {"spec.volumes"}


def _merge_key(path: str) -> str | None:
    key = _MERGE_KEYS.get(path)
    if key is not None:
        return key or None
    for prefix in _CONTAINER_LISTS:
        if path.startswith(prefix + ".*."):
            return _CONTAINER_LIST_KEYS.get(path[len(prefix) + 3:])
    return None


def copy(obj: Any) -> Any:
    """A deep copy of plain JSON-like data (much faster than copy.deepcopy)."""
    if isinstance(obj, dict):
        return {k: copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [copy(v) for v in obj]
    return obj


def merge(original: Any, patch: Any, path: str = "", share: bool = False) -> Any:
    """Return `original` with `patch` applied (neither argument is modified). With `share`, parts
    of `patch` are used in the result without copying (the caller gives up the patch)."""
    cp = _same if share else copy
    if not isinstance(patch, dict) or not isinstance(original, dict):
        return cp(patch)
    out = dict(original)
    for key, value in patch.items():
        child = f"{path}.{key}" if path else key
        if value is None:
            out.pop(key, None)
            continue
        current = original.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge(current, value, child, share)
        elif isinstance(value, list) and isinstance(current, list):
            out[key] = _merge_list(current, value, child, share)
        else:
            out[key] = cp(value)
    return out


def _same(obj: Any) -> Any:
    return obj


def _merge_list(original: list, patch: list, path: str, share: bool = False) -> list:
    cp = _same if share else copy
    if path in _MERGED_SCALAR_LISTS:
        return list(original) + [v for v in patch if v not in original]
    key = _merge_key(path)
    if key is None:
        return cp(patch)
    if not patch:
        return list(original)
    item_path = path + ".*"
    index = {}
    for i, item in enumerate(original):
        if isinstance(item, dict) and key in item:
            index.setdefault(item[key], i)
    merged = list(original)
    appended: list = []
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            appended.append(cp(item))
            continue
        i = index.get(item[key])
        if i is None:
            appended.append(cp(item))
        else:
            base = merged[i]
            if path in _RETAIN_KEYS:
                base = {k: v for k, v in base.items() if k in item}
            merged[i] = merge(base, item, item_path, share)
    merged.extend(appended)
    # order: patch items in patch order, server-only items kept before a patched item only
    # when the original had them earlier
    patch_keys = [it.get(key) for it in patch if isinstance(it, dict)]
    patch_set = set(patch_keys)
    server_order = {it.get(key): i for i, it in enumerate(original) if isinstance(it, dict)}
    by_key = {}
    for it in merged:
        if isinstance(it, dict):
            by_key.setdefault(it.get(key), it)
    patch_items = [by_key[k] for k in dict.fromkeys(patch_keys) if k in by_key]
    server_only = [it for it in merged if isinstance(it, dict) and it.get(key) not in patch_set]
    others = [it for it in merged if not isinstance(it, dict)]
    result = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if i >= len(server_only):
            result.append(patch_items[j]); j += 1  # noqa: E702
        elif j >= len(patch_items):
            result.append(server_only[i]); i += 1  # noqa: E702
        else:
            li = server_order.get(server_only[i].get(key), -1)
            ri = server_order.get(patch_items[j].get(key), -1)
            if li >= 0 and ri >= 0 and li < ri:
                result.append(server_only[i]); i += 1  # noqa: E702
            else:
                result.append(patch_items[j]); j += 1  # noqa: E702
    return result + others

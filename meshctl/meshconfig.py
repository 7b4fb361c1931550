"""MeshConfig, read one way everywhere: from a file (a MeshConfig, or the `istio` ConfigMap that
holds one under data.mesh), or from the cluster's `istio[-<revision>]` ConfigMap.

One failure policy: mesh config that cannot be read (not UTF-8, broken or hostile YAML, not a
mapping) is an input error (exit 2) naming where it came from — a file and line, or the
ConfigMap — never a silent fall-back to the defaults.
"""
from __future__ import annotations

from typing import Any, Optional

from meshctl.errors import InputError

# istiod's defaults for the fields meshctl reads (analyze's stand-in resources, inject's proxy).
DEFAULTS: dict = {
    "ingressService": "istio-ingressgateway",
    "ingressControllerMode": "STRICT",
    "ingressSelector": "ingressgateway",
    "rootNamespace": "istio-system",
    "trustDomain": "cluster.local",
    "enableAutoMtls": True,
    "defaultConfig": {},
}
_HINT = "pass a MeshConfig file or the istio ConfigMap (data.mesh)"


def merged(user: Optional[dict]) -> dict:
    """The defaults with the user's top-level fields over them."""
    mesh = dict(DEFAULTS)
    if user:
        mesh.update(user)
    return mesh


def configmap_name(revision: Optional[str] = None) -> str:
    """The ConfigMap istiod reads its MeshConfig from: `istio`, or `istio-<revision>`."""
    return f"istio-{revision}" if revision and revision != "default" else "istio"


def parse(text: str, where: str, hint: str = _HINT) -> dict:
    """A MeshConfig mapping from YAML text (None/empty → {})."""
    import yaml

    from meshctl.loader import safe_load

    try:
        data = safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None and ":" not in where.split(" ")[0] else where
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(f"{at}: mesh config is not valid YAML: {problem}", hint=hint) from None
    except (ValueError, TypeError, OverflowError) as e:
        raise InputError(f"{where}: mesh config cannot be read: {e}", hint=hint) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{where}: mesh config must be a mapping, not {_kind(data)}", hint=hint)
    return data


def from_configmap(cm: dict, where: str, hint: str = _HINT) -> dict:
    """The MeshConfig under an `istio` ConfigMap's data.mesh ({} when it has none)."""
    data = cm.get("data")
    mesh = data.get("mesh") if isinstance(data, dict) else None
    if mesh is None:
        return {}
    if not isinstance(mesh, str):
        raise InputError(f"{where}: data.mesh must be YAML text, not {_kind(mesh)}", hint=hint)
    return parse(mesh, f"{where} (data.mesh)", hint)


def read_file(path: str) -> dict:
    """A MeshConfig file, or the `istio` ConfigMap holding one under data.mesh (`-` reads stdin)."""
    from meshctl.loader import read_source

    raw = read_source(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: mesh config is not UTF-8 text", hint=_HINT) from None
    doc = parse(text, path)
    if doc.get("kind") == "ConfigMap":
        if not isinstance(doc.get("data"), dict) or "mesh" not in doc["data"]:
            raise InputError(f"{path}: ConfigMap has no data.mesh", hint="the istio ConfigMap keeps MeshConfig under data.mesh")
        return from_configmap(doc, path)
    return doc


def read_cluster(client: Any, namespace: str, revision: Optional[str] = None) -> Optional[dict]:
    """The control plane's MeshConfig from its ConfigMap; None when there is no such ConfigMap."""
    name = configmap_name(revision)
    cm = client.get("v1", "ConfigMap", name, namespace)
    if cm is None:
        return None
    return from_configmap(cm, f"ConfigMap {namespace}/{name}", hint="fix the ConfigMap, or reinstall the control plane")


def _kind(value: Any) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")

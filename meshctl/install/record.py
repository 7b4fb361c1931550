"""The install record: the ConfigMap `meshctl-install[-<rev>]` holding the profile, the merged
values and every object an install made (written last, so it exists only for complete installs)."""
from __future__ import annotations

import datetime as _dt
from typing import Optional

from meshctl.errors import InputError
from meshctl.install.objects import (
    MANAGED_BY,
    MANAGED_BY_KEY,
    RECORD_COMPONENT,
    REV_LABEL,
    Ref,
    record_name,
    rev_value,
)

# --- the install record --------------------------------------------------------------------------

def install_namespace(values: dict) -> str:
    return (values.get("namespace") or (values.get("global") or {}).get("istioNamespace") or "istio-system")


def record_object(values: dict, refs: list[Ref], previous: Optional[dict] = None) -> dict:
    """The ConfigMap recording an install: profile, merged values, meshctl version, time, objects."""
    import yaml

    from meshctl import __version__

    revision = values.get("revision") or ""
    data = {
        "profile": str(values.get("profile") or ""),
        "revision": revision,
        "values.yaml": yaml.safe_dump(values, sort_keys=True, default_flow_style=False),
        "meshctlVersion": __version__,
        "objects": "".join(r.line() + "\n" for r in refs),
    }
    old = (previous or {}).get("data") or {}
    same = all(old.get(k) == v for k, v in data.items())
    data["installedAt"] = old.get("installedAt") if same and old.get("installedAt") else \
        _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": record_name(revision), "namespace": install_namespace(values),
            "labels": {MANAGED_BY_KEY: MANAGED_BY, "app.kubernetes.io/component": RECORD_COMPONENT,
                       REV_LABEL: rev_value(revision)},
        },
        "data": data,
    }


def read_record(k, revision: Optional[str], namespace: str = "istio-system") -> Optional[dict]:
    return k.get("v1", "ConfigMap", record_name(revision), namespace)


def recorded_values(record: dict) -> dict:
    import yaml

    from meshctl.loader import safe_load

    text = (record.get("data") or {}).get("values.yaml") or ""
    try:
        values = safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"the install record {Ref.of(record)} holds unreadable values: {e}",
                         hint="re-run meshctl install to rewrite it") from None
    if not isinstance(values, dict):
        raise InputError(f"the install record {Ref.of(record)} holds no values",
                         hint="re-run meshctl install to rewrite it")
    return values


def recorded_refs(record: Optional[dict]) -> list[Ref]:
    text = ((record or {}).get("data") or {}).get("objects") or ""
    return [r for r in (Ref.parse(line) for line in text.splitlines()) if r is not None]

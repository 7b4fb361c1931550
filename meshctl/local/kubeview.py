"""The local mesh seen as a Kubernetes API: what `canary shift|run|status|promote|abort` read and
write (get, list, replace with resourceVersion, create), backed by the running mesh's resources.

A replace is a compare-and-swap on the resource's version (Conflict when another writer moved it
on, as the API server's 409), then `meshctl local apply` of the new object: the proxies take it
without a restart. Kinds the local mesh has no objects of (Pods, Services) list as empty.
"""
from __future__ import annotations

import copy
from typing import Optional

from meshctl.local import mesh
from meshctl.local.state import State
from meshctl.resources import Resource


class LocalResources:
    namespace = None  # no kubeconfig context: commands fall back to -n, else "default"

    def __init__(self, state_dir: str):
        self.state_dir = state_dir

    def _items(self) -> tuple[list[Resource], dict]:
        st = State(self.state_dir)
        return st.resources(), st.resource_versions()

    @staticmethod
    def _body(r: Resource, versions: dict) -> dict:
        body = copy.deepcopy(r.body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", r.namespace)
        meta["resourceVersion"] = str(versions.get(mesh.version_key(r), 0))
        return body

    def list(self, api_version: str, kind: str, namespace: Optional[str] = None, label_selector: Optional[str] = None) -> list[dict]:
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        resources, versions = self._items()
        return [self._body(r, versions) for r in resources
                if r.kind == kind and r.group == group and (namespace is None or r.namespace == namespace)]

    def get(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> Optional[dict]:
        for body in self.list(api_version, kind, namespace):
            if body["metadata"].get("name") == name:
                return body
        return None

    def _write(self, obj: dict, expect: Optional[str]) -> dict:
        from meshctl import kube

        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        previous = next((r for r in self._items()[0] if r.kind == obj.get("kind") and r.namespace == ns
                         and r.name == meta.get("name")), None)
        body = copy.deepcopy(obj)
        body.get("metadata", {}).pop("resourceVersion", None)
        new = Resource.from_dict(body, source=previous.source if previous else None,
                                 line=previous.line if previous else 0, default_namespace=ns)
        expected = {mesh.version_key(new): int(expect or 0)} if expect is not None else None
        try:
            mesh.change(self.state_dir, add=[new], expect=expected)
        except mesh.Conflict as e:
            raise kube.Conflict(f"{obj.get('kind')} {ns}/{meta.get('name')}: {e.message}") from None
        return self.get(obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("name", ""), ns)

    def replace(self, obj: dict) -> dict:
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return self._write(obj, str(version) if version is not None else None)

    def create(self, obj: dict) -> dict:
        from meshctl import kube

        meta = obj.get("metadata") or {}
        if self.get(obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("name", ""), meta.get("namespace") or "default"):
            raise kube.AlreadyExists(f"{obj.get('kind')} {meta.get('name')} already exists")
        return self._write(obj, "0")

    def admin_addresses(self, namespace: Optional[str] = None) -> list[str]:
        """Every local proxy's admin address: the proxies whose outbound stats the canary gates read."""
        return [t.address for t in mesh.proxy_targets(self.state_dir)]

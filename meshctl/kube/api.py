"""`Kube`, the dict-based client, and `client()`, which makes one from a kubeconfig.

Requests go through the kubernetes client's REST transport (`ApiClient.call_api`) to paths of our
own mapping (meshctl.kube.resource_types, then API discovery); answers come back as the parsed
JSON, and failures as the ClusterErrors of meshctl.kube.errors.
"""
from __future__ import annotations

import json
from typing import Any, ContextManager, Optional

from meshctl.errors import ClusterError
from meshctl.kube import portforward
from meshctl.kube.config import CONFIG_HINT, load_configuration
from meshctl.kube.errors import (
    Invalid,
    NotFound,
    first_line,
    status_error,
    transport_error,
)
from meshctl.kube.resource_types import ResourceType, known, split_api_version


def client(kubeconfig: Optional[str] = None, context: Optional[str] = None, timeout: float = 10.0) -> "Kube":
    """A client for the cluster named by `kubeconfig` (default $KUBECONFIG or ~/.kube/config) and
    `context` (default the current context). Nothing is sent until the first call."""
    configuration, server, ctx_name, namespace = load_configuration(kubeconfig, context)
    return Kube(configuration, server=server, context=ctx_name, namespace=namespace, timeout=timeout)


class Kube:
    """A thin, dict-based client. See the docstring of meshctl.kube."""

    def __init__(self, configuration, server: str, context: str = "", namespace: str = "default",
                 timeout: float = 10.0):
        import urllib3
        from kubernetes.client import ApiClient

        # No retries: a refused connection is reported at once, and writes are never repeated.
        configuration.retries = urllib3.util.Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0)
        # insecure-skip-tls-verify is the user's explicit choice; do not print urllib3's warning for it.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.configuration = configuration
        self.server = server
        self.context = context
        self.namespace = namespace  # the context's namespace, for objects that name none
        self.timeout = timeout
        self._api = ApiClient(configuration)
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._discovered: dict[str, Optional[dict]] = {}

    # --- transport ----------------------------------------------------------------------------
    def request(self, method: str, path: str, query: Optional[list[tuple[str, Any]]] = None,
                body: Any = None, content_type: str = "application/json",
                what: str = "") -> tuple[int, Any]:
        """Send one request; return (status, parsed JSON) for 2xx, raise a ClusterError otherwise."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            req = self._api.param_serialize(method=method, resource_path=path, query_params=list(query or []),
                                            header_params=headers, body=body, auth_settings=["BearerToken"])
            resp = self._api.call_api(*req, _request_timeout=self.timeout)
            raw = resp.read()
        except ApiException as e:  # TLS failures surface here with status 0
            raise transport_error(e, self.server, self.timeout) from None
        except urllib3.exceptions.HTTPError as e:
            raise transport_error(e, self.server, self.timeout) from None
        except OSError as e:
            raise transport_error(e, self.server, self.timeout) from None
        except Exception as e:  # credentials plugins (exec, oidc) failing mid-request
            raise ClusterError(f"cannot send a request to the Kubernetes API server at {self.server}: "
                               f"{first_line(e)}", hint=CONFIG_HINT) from None
        status = resp.status
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if 200 <= status < 300:
            return status, data
        raise status_error(status, data, raw, method, what or path, self.server)

    # --- resource types -----------------------------------------------------------------------
    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """The REST resource of a kind: built-in table, Istio kinds, then discovery."""
        key = (api_version, kind, "")
        found = self._types.get(key)
        if found is not None:
            return found
        group, version = split_api_version(api_version)
        entry = known(group, kind)
        if entry is None:
            entry = self._discover(group, version, kind)
        found = ResourceType(group, version, entry[0], entry[1], kind)
        self._types[key] = found
        return found

    def _discover(self, group: str, version: str, kind: str) -> tuple[str, bool]:
        gv = f"{group}/{version}" if group else version
        if gv not in self._discovered:
            path = f"/apis/{gv}" if group else f"/api/{version}"
            try:
                _, data = self.request("GET", path, what=f"discovery of {gv}")
            except NotFound:
                data = None
            self._discovered[gv] = data
        data = self._discovered[gv]
        for res in (data or {}).get("resources", []):
            if res.get("kind") == kind and "/" not in res.get("name", ""):
                return res["name"], bool(res.get("namespaced"))
        self._discovered.pop(gv, None)  # look again next time: a CRD may be installed meanwhile
        raise NotFound(f"the server at {self.server} has no resource type {kind} in {gv}",
                       hint="is the CRD installed? (kubectl api-resources)")

    def served(self, api_version: str, kind: str) -> bool:
        """Whether the server serves this kind now (e.g. whether its CRD is installed)."""
        group, version = split_api_version(api_version)
        self._discovered.pop(f"{group}/{version}" if group else version, None)
        try:
            self._discover(group, version, kind)
        except NotFound:
            return False
        return True

    def _identity(self, obj: dict) -> tuple[ResourceType, str, Optional[str]]:
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            raise Invalid("object has no apiVersion or kind")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        rt = self.resource_type(obj["apiVersion"], obj["kind"])
        namespace = (meta.get("namespace") or self.namespace) if rt.namespaced else None
        return rt, name, namespace

    @staticmethod
    def _describe(rt: ResourceType, name: Optional[str], namespace: Optional[str]) -> str:
        return f"{rt.kind} {namespace}/{name}" if namespace else f"{rt.kind} {name}"

    # --- API ----------------------------------------------------------------------------------
    def namespace_for(self, given: Optional[str]) -> str:
        """kubectl's rule for the namespace a command acts on: the one given (-n), else the
        kubeconfig context's, else `default`."""
        return given or self.namespace or "default"

    def version(self) -> dict:
        _, data = self.request("GET", "/version", what="version")
        return data if isinstance(data, dict) else {}

    def get(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> Optional[dict]:
        try:
            rt = self.resource_type(api_version, kind)
        except NotFound:
            return None
        if rt.namespaced and not namespace:
            namespace = self.namespace
        try:
            _, data = self.request("GET", rt.path(namespace, name), what=self._describe(rt, name, namespace))
        except NotFound:
            return None
        return data

    def list(self, api_version: str, kind: str, namespace: Optional[str] = None,
             label_selector: Optional[str] = None, field_selector: Optional[str] = None) -> list[dict]:
        """Objects of a kind (all namespaces when `namespace` is None). A kind the server does
        not serve (CRD not installed) lists as []."""
        try:
            rt = self.resource_type(api_version, kind)
        except NotFound:
            return []
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        try:
            _, data = self.request("GET", rt.path(namespace if rt.namespaced else None), query,
                                   what=f"list {rt.display}")
        except NotFound:
            return []
        items = (data or {}).get("items") or []
        for item in items:  # the server omits these on items of built-in lists
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", kind)
        return items

    def create(self, obj: dict, dry_run: bool = False) -> dict:
        rt, name, namespace = self._identity(obj)
        query = [("dryRun", "All")] if dry_run else []
        _, data = self.request("POST", rt.path(namespace), query, body=obj,
                               what=self._describe(rt, name, namespace))
        return data

    def replace(self, obj: dict, dry_run: bool = False) -> dict:
        rt, name, namespace = self._identity(obj)
        query = [("dryRun", "All")] if dry_run else []
        _, data = self.request("PUT", rt.path(namespace, name), query, body=obj,
                               what=self._describe(rt, name, namespace))
        return data

    _PATCH_TYPES = {
        "merge": "application/merge-patch+json",
        "json": "application/json-patch+json",
        "strategic": "application/strategic-merge-patch+json",
    }

    def patch(self, api_version: str, kind: str, name: str, namespace: Optional[str], patch: Any,
              patch_type: str = "merge", subresource: Optional[str] = None) -> dict:
        rt = self.resource_type(api_version, kind)
        if rt.namespaced and not namespace:
            namespace = self.namespace
        _, data = self.request("PATCH", rt.path(namespace, name, subresource), body=patch,
                               content_type=self._PATCH_TYPES[patch_type],
                               what=self._describe(rt, name, namespace))
        return data

    def apply(self, obj: dict, field_manager: str = "meshctl", force: bool = True, dry_run: bool = False) -> dict:
        """Server-side apply: create the object or merge our fields into it."""
        rt, name, namespace = self._identity(obj)
        if not name:
            raise Invalid(f"{rt.kind} has no metadata.name")
        query = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        _, data = self.request("PATCH", rt.path(namespace, name), query, body=obj,
                               content_type="application/apply-patch+yaml",
                               what=self._describe(rt, name, namespace))
        return data

    def delete(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None,
               dry_run: bool = False) -> bool:
        try:
            rt = self.resource_type(api_version, kind)
        except NotFound:
            return False
        if rt.namespaced and not namespace:
            namespace = self.namespace
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        query = [("dryRun", "All")] if dry_run else []
        try:
            self.request("DELETE", rt.path(namespace, name), query, body=body,
                         what=self._describe(rt, name, namespace))
        except NotFound:
            return False
        return True

    def can_i(self, verb: str, resource: str, group: str = "", namespace: Optional[str] = None,
              subresource: Optional[str] = None, name: Optional[str] = None) -> bool:
        attrs: dict[str, str] = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        if name:
            attrs["name"] = name
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attrs}}
        _, data = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review,
                               what="SelfSubjectAccessReview")
        return bool(((data or {}).get("status") or {}).get("allowed"))

    # --- port-forward (meshctl.kube.portforward) ----------------------------------------------
    def connection(self) -> portforward.Connection:
        """How to open a connection of one's own to the API server (the asyncio port-forwards of
        meshctl.proxy.portforward): its address, a TLS context made from the kubeconfig (CA, client
        certificate, verification, tls-server-name), and the credential headers the client's own
        requests carry (exec plugins and token files refreshed as for them)."""
        return portforward.connection(self)

    def port_forward(self, namespace: str, pod: str, remote_port: int) -> ContextManager[int]:
        """Forward a local port on 127.0.0.1 to `remote_port` of a pod; yields the local port.
        Each local connection gets its own port-forward stream (websocket) to the API server."""
        return portforward.port_forward(self, namespace, pod, remote_port)

"""Kubernetes access: the only module that imports `kubernetes`.

Objects go in and come out as plain dicts (the JSON the API server sends), never as the client's
pydantic models. The client's typed APIs cost a third of a second on first use (they load the
models), so this module uses only its kubeconfig loader and its REST transport
(`ApiClient.call_api`) with its own path mapping: a table of built-in kinds, the Istio kinds from
meshctl.schemas, and API discovery for anything else.

Every failure to talk to the cluster becomes a ClusterError (exit 3): one line naming the server,
and a hint. `Conflict`, `AlreadyExists`, `NotFound` and `Invalid` are subclasses callers may catch.

    k = kube.client(kubeconfig, context, timeout=10)
    k.get("apps/v1", "Deployment", "istiod", "istio-system")   # dict or None
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from typing import Any, Iterator, NamedTuple, Optional

from meshctl.errors import EXIT_USAGE, ClusterError, InputError


class Conflict(ClusterError):
    """409: the object changed since it was read (stale resourceVersion) or a field conflict."""


class AlreadyExists(Conflict):
    """409 AlreadyExists on create."""


class NotFound(ClusterError):
    """404: the object, its namespace, or its resource type does not exist."""


class Invalid(ClusterError):
    """422/400: the API server rejected the object as invalid."""

    exit_code = EXIT_USAGE


class Connection(NamedTuple):
    """Kube.connection(): where the API server listens and how to talk to it."""

    host: str
    port: int
    ssl: Any  # ssl.SSLContext, None for http://
    server_hostname: Optional[str]  # the name TLS checks the certificate against
    headers: dict  # {"authorization": "Bearer …"}, or none (client certificates)
    server: str  # the URL, for messages


class ResourceType(NamedTuple):
    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def display(self) -> str:
        """`deployments.apps`, as the API server names a resource type in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# (group, kind) -> (plural, namespaced) for the built-in kinds meshctl touches. Versions come from
# the object's apiVersion, so one entry serves every version of a kind.
_BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("", "Namespace"): ("namespaces", False),
    ("", "Node"): ("nodes", False),
    ("", "PersistentVolume"): ("persistentvolumes", False),
    ("", "Pod"): ("pods", True),
    ("", "Service"): ("services", True),
    ("", "Endpoints"): ("endpoints", True),
    ("", "ConfigMap"): ("configmaps", True),
    ("", "Secret"): ("secrets", True),
    ("", "ServiceAccount"): ("serviceaccounts", True),
    ("", "Event"): ("events", True),
    ("", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("", "ResourceQuota"): ("resourcequotas", True),
    ("", "LimitRange"): ("limitranges", True),
    ("", "ReplicationController"): ("replicationcontrollers", True),
    ("apps", "Deployment"): ("deployments", True),
    ("apps", "DaemonSet"): ("daemonsets", True),
    ("apps", "StatefulSet"): ("statefulsets", True),
    ("apps", "ReplicaSet"): ("replicasets", True),
    ("apps", "ControllerRevision"): ("controllerrevisions", True),
    ("batch", "Job"): ("jobs", True),
    ("batch", "CronJob"): ("cronjobs", True),
    ("autoscaling", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("policy", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("networking.k8s.io", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io", "Ingress"): ("ingresses", True),
    ("networking.k8s.io", "IngressClass"): ("ingressclasses", False),
    ("discovery.k8s.io", "EndpointSlice"): ("endpointslices", True),
    ("coordination.k8s.io", "Lease"): ("leases", True),
    ("rbac.authorization.k8s.io", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io", "RoleBinding"): ("rolebindings", True),
    ("rbac.authorization.k8s.io", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): ("mutatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): ("validatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): ("validatingadmissionpolicies", False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"):
        ("validatingadmissionpolicybindings", False),
    ("authorization.k8s.io", "SelfSubjectAccessReview"): ("selfsubjectaccessreviews", False),
    ("authorization.k8s.io", "SubjectAccessReview"): ("subjectaccessreviews", False),
    ("storage.k8s.io", "StorageClass"): ("storageclasses", False),
    ("scheduling.k8s.io", "PriorityClass"): ("priorityclasses", False),
    ("certificates.k8s.io", "CertificateSigningRequest"): ("certificatesigningrequests", False),
}


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _istio_resource(group: str, kind: str) -> Optional[tuple[str, bool]]:
    from meshctl.schemas import BY_KIND

    k = BY_KIND.get(kind)
    if k is not None and k.group == group:
        return k.plural, True
    return None


def _default_kubeconfig() -> str:
    return os.environ.get("KUBECONFIG") or os.path.join("~", ".kube", "config")


_CONFIG_HINT = "pass --kubeconfig PATH (or set KUBECONFIG) and --context NAME"


def _load_configuration(kubeconfig: Optional[str], context: Optional[str]):
    """(Configuration, server, context name, default namespace) from a kubeconfig or in-cluster."""
    from kubernetes.client import Configuration
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    configuration = type.__call__(Configuration)
    if kubeconfig is None and not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST") \
            and not os.path.exists(os.path.expanduser(os.path.join("~", ".kube", "config"))):
        from kubernetes.config import incluster_config

        try:
            incluster_config.InClusterConfigLoader(
                token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
                cert_filename=incluster_config.SERVICE_CERT_FILENAME).load_and_set(configuration)
        except ConfigException as e:
            raise ClusterError(f"cannot use the in-cluster service account: {e}", hint=_CONFIG_HINT) from None
        ns_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        namespace = open(ns_file).read().strip() if os.path.exists(ns_file) else "default"
        return configuration, configuration.host, "in-cluster", namespace

    path = kubeconfig or _default_kubeconfig()
    paths = [os.path.expanduser(p) for p in path.split(os.pathsep) if p]
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        raise ClusterError(f"no kubeconfig at {path}", hint=_CONFIG_HINT)
    for p in existing:
        _check_kubeconfig_file(p)
    try:
        merged = kube_config.KubeConfigMerger(os.pathsep.join(existing)).config
        if merged is None:
            raise ConfigException("no configuration found")
        raw = merged.value if hasattr(merged, "value") else merged
        entries = [getattr(c, "value", c) for c in (raw.get("contexts") or [])]
        names = [str(c.get("name")) for c in entries if isinstance(c, dict) and c.get("name")]
    except Exception as e:  # unreadable YAML, wrong shape
        raise InputError(f"invalid kubeconfig {path}: {_first_line(e)}", hint=_CONFIG_HINT) from None
    available = ", ".join(names) or "none"
    if context is not None and context not in names:
        raise ClusterError(f"context {context!r} not found in kubeconfig {path}",
                           hint=f"available contexts: {available}")
    if context is None and not raw.get("current-context"):
        raise ClusterError(f"kubeconfig {path} sets no current context",
                           hint=f"pass --context NAME (available contexts: {available})")
    with _LoggedErrors() as logged:  # the client logs a failed credential plugin and goes on
        try:
            loader = kube_config.KubeConfigLoader(config_dict=merged, active_context=context, config_base_path=None)
            loader.load_and_set(configuration)
            current = loader.current_context
        except ConfigException as e:
            raise InputError(f"invalid kubeconfig {path}: {_first_line(e)}", hint=_CONFIG_HINT) from None
        except Exception as e:  # credential plugins, unreadable certificate files
            raise ClusterError(f"cannot load credentials from kubeconfig {path}: {_first_line(e)}",
                               hint=_CONFIG_HINT) from None
    if logged.messages:
        import re

        problem = re.sub(r"^\[Errno \d+\] ", "", logged.messages[0])
        raise ClusterError(f"cannot get credentials from kubeconfig {path}: {problem}",
                           hint="the context's user runs a credential plugin (users[].user.exec): install it "
                                "or put it on PATH, or pick another --context")
    namespace = (current.get("context") or {}).get("namespace") or "default"
    return configuration, configuration.host, current.get("name") or context or "", namespace


class _LoggedErrors:
    """Collects what the kubernetes client logs at ERROR level (instead of raising) while loading
    a kubeconfig, and keeps it off the user's terminal."""

    def __enter__(self):
        import logging

        self.messages: list[str] = []
        outer = self

        class _Handler(logging.Handler):
            def emit(self, record):
                if record.levelno >= logging.ERROR:
                    outer.messages.append(record.getMessage().strip().splitlines()[0] if record.getMessage().strip()
                                          else "the credential plugin failed")

        self._handler = _Handler()
        self._root = logging.getLogger()
        self._root.addHandler(self._handler)
        return self

    def __exit__(self, *exc):
        self._root.removeHandler(self._handler)
        return False


def _check_kubeconfig_file(path: str) -> None:
    """Refuse a kubeconfig that cannot be one (not UTF-8, not YAML, the wrong shape) in meshctl's
    words, exit 2, before the client reads it."""
    import yaml

    from meshctl.loader import safe_load

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise InputError(f"kubeconfig {path}: cannot read: {e.strerror or e}", hint=_CONFIG_HINT) from None
    try:
        data = safe_load(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"invalid kubeconfig {path}: not UTF-8 text", hint=_CONFIG_HINT) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(f"invalid kubeconfig {where}: {problem}", hint=_CONFIG_HINT) from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise InputError(f"invalid kubeconfig {path}: not a mapping of clusters, users and contexts", hint=_CONFIG_HINT)
    for field, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
        items = data.get(field)
        if items is None:
            continue
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get(inner) or {}, dict)
                for i in items):
            raise InputError(f"invalid kubeconfig {path}: {field} must be a list of entries with a name and a {inner}",
                             hint=_CONFIG_HINT)
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        raise InputError(f"invalid kubeconfig {path}: current-context must be a string", hint=_CONFIG_HINT)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def client(kubeconfig: Optional[str] = None, context: Optional[str] = None, timeout: float = 10.0) -> "Kube":
    """A client for the cluster named by `kubeconfig` (default $KUBECONFIG or ~/.kube/config) and
    `context` (default the current context). Nothing is sent until the first call."""
    configuration, server, ctx_name, namespace = _load_configuration(kubeconfig, context)
    return Kube(configuration, server=server, context=ctx_name, namespace=namespace, timeout=timeout)


class Kube:
    """A thin, dict-based client. See the module docstring."""

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
            raise self._transport_error(e) from None
        except urllib3.exceptions.HTTPError as e:
            raise self._transport_error(e) from None
        except OSError as e:
            raise self._transport_error(e) from None
        except Exception as e:  # credentials plugins (exec, oidc) failing mid-request
            raise ClusterError(f"cannot send a request to the Kubernetes API server at {self.server}: "
                               f"{_first_line(e)}", hint=_CONFIG_HINT) from None
        status = resp.status
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if 200 <= status < 300:
            return status, data
        raise self._status_error(status, data, raw, method, what or path)

    def _transport_error(self, e: BaseException) -> ClusterError:
        import urllib3

        reason = getattr(e, "reason", None) if isinstance(e, urllib3.exceptions.MaxRetryError) else e
        text = str(reason or e)
        low = text.lower()
        hint = "check that the cluster is running and that --context/--kubeconfig point at it"
        if "connection refused" in low:
            return ClusterError(f"cannot reach the Kubernetes API server at {self.server}: connection refused",
                                hint=hint)
        if isinstance(reason, urllib3.exceptions.NameResolutionError) or "name or service not known" in low \
                or "nodename nor servname" in low or "failed to resolve" in low or "name resolution" in low:
            return ClusterError(f"cannot resolve the Kubernetes API server host in {self.server}", hint=hint)
        if isinstance(reason, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError,
                               TimeoutError, socket.timeout)) or "timed out" in low:
            return ClusterError(f"the Kubernetes API server at {self.server} did not answer within "
                                f"{self.timeout:g}s", hint=hint)
        if "ssl" in low or "certificate" in low:
            return ClusterError(f"TLS handshake with the Kubernetes API server at {self.server} failed: "
                                f"{_first_line(Exception(text))}",
                                hint="check certificate-authority in the kubeconfig and the server address")
        return ClusterError(f"cannot reach the Kubernetes API server at {self.server}: "
                            f"{_first_line(Exception(text))}", hint=hint)

    def _status_error(self, status: int, data: Any, raw: bytes, method: str, what: str) -> ClusterError:
        message = ""
        reason = ""
        if isinstance(data, dict):
            message = str(data.get("message") or "")
            reason = str(data.get("reason") or "")
        if not message:
            message = (raw or b"").decode("utf-8", "replace").strip().splitlines()[0:1]
            message = message[0] if message else f"HTTP {status}"
        message = " ".join(message.split())
        where = f"the Kubernetes API server at {self.server}"
        if status == 401:
            return ClusterError(f"{where} rejected our credentials (401 Unauthorized)",
                                hint="refresh your credentials (log in again) or choose another --context")
        if status == 403:
            return ClusterError(f"forbidden by {where}: {message}",
                                hint="ask a cluster administrator for RBAC permission "
                                     "(check with: kubectl auth can-i VERB RESOURCE -n NAMESPACE)")
        if status == 404:
            return NotFound(f"{message} ({where})")
        if status == 409:
            cls = AlreadyExists if reason == "AlreadyExists" else Conflict
            return cls(message, hint="re-read the object and retry" if cls is Conflict else None)
        if status in (400, 422):
            return Invalid(f"{where} rejected {what}: {message}")
        if status == 429:
            return ClusterError(f"{where} is throttling requests (429): {message}", hint="retry in a moment")
        return ClusterError(f"{where} answered {status} to {method} {what}: {message}")

    # --- resource types -----------------------------------------------------------------------
    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """The REST resource of a kind: built-in table, Istio kinds, then discovery."""
        key = (api_version, kind, "")
        found = self._types.get(key)
        if found is not None:
            return found
        group, version = _split_api_version(api_version)
        entry = _BUILTIN.get((group, kind)) or _istio_resource(group, kind)
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
        group, version = _split_api_version(api_version)
        self._discovered.pop(f"{group}/{version}" if group else version, None)
        try:
            self._discover(group, version, kind)
        except NotFound:
            return False
        return True

    def _path(self, rt: ResourceType, namespace: Optional[str], name: Optional[str] = None,
              subresource: Optional[str] = None) -> str:
        base = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
        if rt.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{rt.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base

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
            _, data = self.request("GET", self._path(rt, namespace, name), what=self._describe(rt, name, namespace))
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
            _, data = self.request("GET", self._path(rt, namespace if rt.namespaced else None), query,
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
        _, data = self.request("POST", self._path(rt, namespace), query, body=obj,
                               what=self._describe(rt, name, namespace))
        return data

    def replace(self, obj: dict, dry_run: bool = False) -> dict:
        rt, name, namespace = self._identity(obj)
        query = [("dryRun", "All")] if dry_run else []
        _, data = self.request("PUT", self._path(rt, namespace, name), query, body=obj,
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
        _, data = self.request("PATCH", self._path(rt, namespace, name, subresource), body=patch,
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
        _, data = self.request("PATCH", self._path(rt, namespace, name), query, body=obj,
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
            self.request("DELETE", self._path(rt, namespace, name), query, body=body,
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

    # --- port-forward -------------------------------------------------------------------------
    def connection(self) -> "Connection":
        """How to open a connection of one's own to the API server (the asyncio port-forwards of
        meshctl.proxy.portforward): its address, a TLS context made from the kubeconfig (CA, client
        certificate, verification, tls-server-name), and the credential headers the client's own
        requests carry (exec plugins and token files refreshed as for them)."""
        import ssl
        from urllib.parse import urlsplit

        cfg = self.configuration
        url = urlsplit(cfg.host)
        try:
            _, _, headers, _, _ = self._api.param_serialize(method="GET", resource_path="/", header_params={},
                                                            auth_settings=["BearerToken"])
            context = None
            if url.scheme == "https":
                context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
                if not cfg.verify_ssl:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if cfg.cert_file:
                    context.load_cert_chain(cfg.cert_file, cfg.key_file)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ClusterError(f"cannot use the TLS settings of the kubeconfig for {self.server}: {_first_line(e)}",
                               hint=_CONFIG_HINT) from None
        auth = {k.lower(): v for k, v in headers.items() if k.lower() == "authorization"}
        return Connection(url.hostname or "", url.port or (443 if url.scheme == "https" else 80), context,
                          getattr(cfg, "tls_server_name", None) or url.hostname, auth, self.server)

    @contextlib.contextmanager
    def port_forward(self, namespace: str, pod: str, remote_port: int) -> Iterator[int]:
        """Forward a local port on 127.0.0.1 to `remote_port` of a pod; yields the local port.
        Each local connection gets its own port-forward stream (websocket) to the API server."""
        found = self.get("v1", "Pod", pod, namespace)
        if found is None:
            raise NotFound(f"pod {namespace}/{pod} not found ({self.server})")
        phase = (found.get("status") or {}).get("phase")
        if phase and phase != "Running":
            raise ClusterError(f"pod {namespace}/{pod} is {phase}, not Running; cannot forward a port to it")
        first = self._open_forward(namespace, pod, remote_port)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        local_port = listener.getsockname()[1]
        stop = threading.Event()
        pending = [first]
        streams: list[Any] = [first]
        conns: list[socket.socket] = []

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                if stop.is_set():
                    conn.close()
                    return
                conns.append(conn)
                try:
                    forward = pending.pop() if pending else self._open_forward(namespace, pod, remote_port)
                except ClusterError:
                    conn.close()
                    continue
                if forward not in streams:
                    streams.append(forward)
                threading.Thread(target=_splice, args=(conn, forward, remote_port, stop), daemon=True).start()

        acceptor = threading.Thread(target=serve, name=f"port-forward {pod}:{remote_port}", daemon=True)
        acceptor.start()
        try:
            yield local_port
        finally:
            stop.set()
            with contextlib.suppress(OSError):
                listener.close()
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.close()
            for forward in streams:
                with contextlib.suppress(Exception):
                    forward.close()

    def _open_forward(self, namespace: str, pod: str, remote_port: int):
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import ws_client

        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/portforward"
        headers: dict[str, str] = {}
        try:
            req = self._api.param_serialize(method="GET", resource_path=path,
                                            query_params=[("ports", str(remote_port))], header_params=headers,
                                            auth_settings=["BearerToken"])
            _, url, headers, _, _ = req
            return ws_client.portforward_call(self.configuration, "GET", url,
                                              headers={k.lower(): v for k, v in headers.items()})
        except ApiException as e:
            text = str(e.reason or e)
            if "403" in text:
                raise ClusterError(f"forbidden by the Kubernetes API server at {self.server}: cannot port-forward "
                                   f"to pod {namespace}/{pod}",
                                   hint="ask a cluster administrator for RBAC permission to create pods/portforward"
                                   ) from None
            raise ClusterError(f"cannot port-forward to pod {namespace}/{pod} through {self.server}: "
                               f"{_first_line(Exception(text))}") from None


def _splice(conn: socket.socket, forward: Any, remote_port: int, stop: threading.Event) -> None:
    """Copy bytes both ways between a local connection and a port-forward stream."""
    import select

    remote = forward.socket(remote_port)
    remote.setblocking(True)
    try:
        while not stop.is_set():
            readable, _, _ = select.select([conn, remote], [], [], 0.5)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (remote if sock is conn else conn).sendall(data)
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            conn.close()
        with contextlib.suppress(Exception):
            forward.close()

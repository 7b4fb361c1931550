"""A stateful fake Kubernetes API server speaking the real REST protocol over HTTP.

The real `kubernetes` client (and kubectl) talk to it through a kubeconfig, so the code under test
is unchanged. It behaves like the API server where meshctl depends on it:

- discovery (/api, /api/v1, /apis, /apis/<group>/<version>) and /version (a full VersionInfo);
- namespaced and cluster-scoped objects; a namespaced create in a missing namespace is a 404;
- create (201; 409 AlreadyExists), get, list (kind XList with metadata.resourceVersion; label
  selectors `a=b,c!=d,e in (x,y),f notin (z),g,!h`; fieldSelector metadata.name/namespace);
- PUT replace and PATCH (merge, JSON patch, strategic merge as a keyed merge) with
  resourceVersion preconditions (409 when stale), bumped on every real change and not on no-ops;
- server-side apply (application/apply-patch+yaml with fieldManager): create or merge, fields a
  manager stops applying are removed, managedFields record the manager;
- delete (returns the object for the kinds whose real registry does, a Status otherwise;
  namespaces and CRDs cascade, at once or, with `deletion_delay`, after staying Terminating for
  a while, during which a namespace refuses new objects with 403); dryRun=All on every write;
- custom resources of registered CRDs (a CRD write registers its group/versions/plural and marks
  it Established);
- SelfSubjectAccessReview answered from a rule set (allow all unless `deny(...)`), and the same
  rules enforced on real requests (403 Forbidden);
- Deployments, DaemonSets and StatefulSets get a ready status on every write unless `not_ready()`;
- failure injection: `fail_writes_after(n)`; a Ctrl-C in the client at a chosen request
  (`interrupt_client(...)`: the fake runs in the tests' process, as the client does);
- pods/portforward over a websocket (v4.channel.k8s.io) to a 127.0.0.1 port set per pod with
  `forward_pod_port()`, and the pod proxy subresource (`GET .../pods/NAME:PORT/proxy/PATH`, RBAC
  `get pods/proxy`) to the same port;
- `latency`: seconds added as a network round trip would: before each answer, the websocket
  upgrade and each message relayed through a port-forward, and on each new connection (twice with
  TLS: the TCP and the TLS handshakes);
- plain HTTP by default, HTTPS with `start(tls=make_tls(dir))` (a throwaway CA made with openssl,
  written into the kubeconfig as certificate-authority-data).
"""
from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# --- the resource registry ---------------------------------------------------------------------------


class RType:
    def __init__(self, group: str, versions: list[str], plural: str, kind: str, namespaced: bool,
                 short_names: tuple[str, ...] = (), builtin: bool = True, status_sub: bool = False,
                 delete_returns_object: bool = False):
        self.group = group
        self.versions = list(versions)
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.short_names = list(short_names)
        self.builtin = builtin
        self.status_sub = status_sub
        self.delete_returns_object = delete_returns_object

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def display(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

# (group, versions, plural, kind, namespaced, short names, status subresource, DELETE returns the object
# rather than a Status: as the real registries do, and as the 37.x client's typed delete_* expect)
_BUILTINS = [
    ("", ["v1"], "namespaces", "Namespace", False, ("ns",), True, True),
    ("", ["v1"], "nodes", "Node", False, ("no",), True, False),
    ("", ["v1"], "persistentvolumes", "PersistentVolume", False, ("pv",), True, True),
    ("", ["v1"], "pods", "Pod", True, ("po",), True, True),
    ("", ["v1"], "services", "Service", True, ("svc",), True, True),
    ("", ["v1"], "endpoints", "Endpoints", True, ("ep",), False, False),
    ("", ["v1"], "configmaps", "ConfigMap", True, ("cm",), False, False),
    ("", ["v1"], "secrets", "Secret", True, (), False, False),
    ("", ["v1"], "serviceaccounts", "ServiceAccount", True, ("sa",), False, True),
    ("", ["v1"], "events", "Event", True, ("ev",), False, False),
    ("", ["v1"], "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), True, True),
    ("", ["v1"], "resourcequotas", "ResourceQuota", True, ("quota",), True, True),
    ("", ["v1"], "limitranges", "LimitRange", True, ("limits",), False, False),
    ("apps", ["v1"], "deployments", "Deployment", True, ("deploy",), True, False),
    ("apps", ["v1"], "daemonsets", "DaemonSet", True, ("ds",), True, False),
    ("apps", ["v1"], "statefulsets", "StatefulSet", True, ("sts",), True, False),
    ("apps", ["v1"], "replicasets", "ReplicaSet", True, ("rs",), True, False),
    ("batch", ["v1"], "jobs", "Job", True, (), True, False),
    ("batch", ["v1"], "cronjobs", "CronJob", True, ("cj",), True, False),
    ("autoscaling", ["v2", "v1"], "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",), True,
     False),
    ("policy", ["v1"], "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), True, False),
    ("networking.k8s.io", ["v1"], "networkpolicies", "NetworkPolicy", True, ("netpol",), False, False),
    ("networking.k8s.io", ["v1"], "ingresses", "Ingress", True, ("ing",), True, False),
    ("networking.k8s.io", ["v1"], "ingressclasses", "IngressClass", False, (), False, False),
    ("discovery.k8s.io", ["v1"], "endpointslices", "EndpointSlice", True, (), False, False),
    ("coordination.k8s.io", ["v1"], "leases", "Lease", True, (), False, False),
    ("rbac.authorization.k8s.io", ["v1"], "roles", "Role", True, (), False, False),
    ("rbac.authorization.k8s.io", ["v1"], "rolebindings", "RoleBinding", True, (), False, False),
    ("rbac.authorization.k8s.io", ["v1"], "clusterroles", "ClusterRole", False, (), False, False),
    ("rbac.authorization.k8s.io", ["v1"], "clusterrolebindings", "ClusterRoleBinding", False, (), False, False),
    ("apiextensions.k8s.io", ["v1"], "customresourcedefinitions", "CustomResourceDefinition", False,
     ("crd", "crds"), True, True),
    ("admissionregistration.k8s.io", ["v1"], "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
     False, (), False, False),
    ("admissionregistration.k8s.io", ["v1"], "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
     False, (), False, False),
    ("authorization.k8s.io", ["v1"], "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, (), False,
     False),
    ("storage.k8s.io", ["v1"], "storageclasses", "StorageClass", False, ("sc",), False, False),
    ("scheduling.k8s.io", ["v1"], "priorityclasses", "PriorityClass", False, ("pc",), False, False),
]

_WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
_POD_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+):(\d+)/proxy(/.*)?$")


def _clone(obj: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy on large CRDs)."""
    return json.loads(json.dumps(obj, default=str))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- label selectors ---------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def parse_selector(text: str) -> list[tuple[str, str, list[str]]]:
    """`a=b,c!=d,e in (x,y),f notin (z),g,!h` → [(key, op, values)]; raises ValueError."""
    terms: list[str] = []
    depth, cur = 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur)
    out = []
    for term in terms:
        term = term.strip()
        if not term:
            raise ValueError("empty term")
        m = _SET_RE.match(term)
        if m:
            out.append((m.group(1), m.group(2), [v.strip() for v in m.group(3).split(",") if v.strip()]))
        elif "!=" in term:
            k, v = term.split("!=", 1)
            out.append((k.strip(), "!=", [v.strip()]))
        elif "==" in term:
            k, v = term.split("==", 1)
            out.append((k.strip(), "=", [v.strip()]))
        elif "=" in term:
            k, v = term.split("=", 1)
            out.append((k.strip(), "=", [v.strip()]))
        elif term.startswith("!"):
            out.append((term[1:].strip(), "!exists", []))
        elif re.match(r"^[A-Za-z0-9._/-]+$", term):
            out.append((term, "exists", []))
        else:
            raise ValueError(f"unable to parse requirement: {term!r}")
    return out


def selector_matches(labels: dict, reqs: list[tuple[str, str, list[str]]]) -> bool:
    for key, op, values in reqs:
        present = key in labels
        value = str(labels.get(key, ""))
        if op == "=" and not (present and value == values[0]):
            return False
        if op == "!=" and present and value == values[0]:
            return False
        if op == "in" and not (present and value in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


# --- patches -----------------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return _clone(patch)
    result = _clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """A strategic merge patch approximated as a merge patch whose lists of named maps merge by name."""
    if isinstance(patch, dict) and isinstance(target, dict):
        result = _clone(target)
        for k, v in patch.items():
            if k.startswith("$"):
                continue
            if v is None:
                result.pop(k, None)
            else:
                result[k] = strategic_merge(result.get(k), v)
        return result
    if (isinstance(patch, list) and isinstance(target, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in patch + target)):
        result = _clone(target)
        index = {i["name"]: n for n, i in enumerate(result)}
        for item in patch:
            if item.get("$patch") == "delete":
                result = [r for r in result if r["name"] != item["name"]]
                index = {i["name"]: n for n, i in enumerate(result)}
            elif item["name"] in index:
                result[index[item["name"]]] = strategic_merge(result[index[item["name"]]], item)
            else:
                result.append(_clone(item))
        return result
    return _clone(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: list) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    doc = _clone(doc)

    def parent(path):
        parts = _pointer(path)
        if not parts:
            raise ValueError("cannot patch the document root")
        node = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node, parts[-1]

    def get(path):
        node = doc
        for p in _pointer(path):
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node

    for op in ops:
        kind = op.get("op")
        try:
            if kind in ("add", "replace"):
                node, key = parent(op["path"])
                if isinstance(node, list):
                    if key == "-":
                        node.append(_clone(op["value"]))
                    elif kind == "add":
                        node.insert(int(key), _clone(op["value"]))
                    else:
                        node[int(key)] = _clone(op["value"])
                else:
                    if kind == "replace" and key not in node:
                        raise KeyError(key)
                    node[key] = _clone(op["value"])
            elif kind == "remove":
                node, key = parent(op["path"])
                if isinstance(node, list):
                    node.pop(int(key))
                else:
                    del node[key]
            elif kind in ("move", "copy"):
                value = _clone(get(op["from"]))
                if kind == "move":
                    node, key = parent(op["from"])
                    if isinstance(node, list):
                        node.pop(int(key))
                    else:
                        del node[key]
                node, key = parent(op["path"])
                if isinstance(node, list):
                    node.insert(len(node) if key == "-" else int(key), value)
                else:
                    node[key] = value
            elif kind == "test":
                if get(op["path"]) != op.get("value"):
                    raise ValueError(f"test failed at {op['path']}")
            else:
                raise ValueError(f"unknown op {kind!r}")
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"{kind} at {op.get('path')}: {e}") from None
    return doc


def _prune(live: Any, old: Any, new: Any) -> Any:
    """Remove from `live` the fields present in `old` (what a manager applied before) and
    absent from `new` (what it applies now)."""
    if not (isinstance(live, dict) and isinstance(old, dict)):
        return live
    new = new if isinstance(new, dict) else {}
    for k, v in old.items():
        if k not in new:
            live.pop(k, None)
        elif isinstance(v, dict) and k in live:
            _prune(live[k], v, new[k])
    return live


def _fields_v1(obj: Any) -> dict:
    if isinstance(obj, dict):
        return {f"f:{k}": _fields_v1(v) for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


# --- the server state --------------------------------------------------------------------------------

class FakeKube:
    """State and HTTP server. Use as the `kube_api` fixture (tests/conftest.py)."""

    def __init__(self, directory: str):
        self.directory = str(directory)
        self._lock = threading.RLock()
        self._rv = 1
        self._types: dict[tuple[str, str], RType] = {}  # (group, kind) -> type
        self._by_plural: dict[tuple[str, str], RType] = {}  # (group, plural) -> type
        for g, versions, plural, kind, ns, short, status_sub, del_obj in _BUILTINS:
            self._register(RType(g, versions, plural, kind, ns, short, True, status_sub, del_obj))
        self._store: dict[tuple[str, str, str, str], dict] = {}  # (group, plural, ns, name) -> object
        self._applied: dict[tuple[tuple, str], dict] = {}  # (object key, manager) -> last applied config
        self._denied: list[tuple[str, str, str, Optional[str]]] = []
        self._not_ready: set[tuple[str, str, str]] = set()
        self._not_established: set[str] = set()
        self._fail_after: Optional[int] = None
        self._fail_status = 500
        self._writes = 0
        self._interrupt: Optional[dict] = None
        self._pod_ports: dict[tuple[str, str, int], int] = {}
        self.requests: list[tuple[str, str]] = []
        self.latency = 0.0  # seconds a network round trip adds (see the module docstring)
        # The bearer token the kubeconfig carries; a request with another token gets 401.
        self.token: Optional[str] = "fake-token"
        self.nodes = 1
        # Seconds a deleted Namespace or CRD stays Terminating before it is gone (0: at once).
        self.deletion_delay = 0.0
        self._version = {"major": "1", "minor": "30"}
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.url = ""
        self.kubeconfig = os.path.join(self.directory, "kubeconfig")

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, tls: Optional["TLSFiles"] = None) -> "FakeKube":
        """Serve on 127.0.0.1 (plain HTTP, or HTTPS with `tls`) and write the kubeconfig."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        cluster: dict[str, Any] = {"server": self.url}
        if tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            # the handshake happens in the request's thread (see _Handler.setup), not in accept()
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
            with open(tls.ca, "rb") as fh:
                cluster["certificate-authority-data"] = base64.b64encode(fh.read()).decode()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-kube-api", daemon=True)
        self._thread.start()
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake", "preferences": {},
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "fake", "user": {"token": self.token or "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        }
        os.makedirs(self.directory, exist_ok=True)
        with open(self.kubeconfig, "w") as fh:
            yaml.safe_dump(config, fh)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- test controls ------------------------------------------------------------------------
    def set_version(self, major: str, minor: str) -> None:
        self._version = {"major": str(major), "minor": str(minor)}

    def deny(self, verb: str, resource: str, group: str = "", namespace: Optional[str] = None) -> None:
        """SSAR answers allowed=False for this rule, and matching requests get 403.
        `verb` and `resource` may be "*"."""
        with self._lock:
            self._denied.append((verb, resource, group, namespace))

    def fail_writes_after(self, n: Optional[int], status: int = 500) -> None:
        """Let n more write requests (POST/PUT/PATCH/DELETE) through; every later one fails with
        `status`. None stops failing."""
        with self._lock:
            self._fail_after = None if n is None else self._writes + n
            self._fail_status = status

    def interrupt_client(self, method: Optional[str] = None, path: str = "", nth: int = 1,
                         after_writes: int = 0) -> None:
        """Press Ctrl-C in the client at a request: the `nth` request with `method` (None: any
        write, not counting access reviews) whose path contains `path`, counted once `after_writes` writes have been served,
        (dry runs, `dryRun=All`, are not counted) is not served; SIGINT goes to this process instead (the tests' process, where the client
        runs), so the client sees KeyboardInterrupt while it waits for the answer, as with a real
        Ctrl-C. Once only."""
        with self._lock:
            self._interrupt = {"method": method, "path": path, "left": nth, "after_writes": after_writes}

    def _interrupt_due(self, method: str, path: str, query: dict) -> bool:
        rule = self._interrupt
        if rule is None or self._writes < rule["after_writes"] or rule["path"] not in path or "dryRun" in query:
            return False
        if rule["method"]:
            if method != rule["method"]:
                return False
        elif method not in ("POST", "PUT", "PATCH", "DELETE") or path.endswith("reviews"):
            return False  # not a write (access reviews are POSTs that store nothing)
        rule["left"] -= 1
        if rule["left"]:
            return False
        self._interrupt = None
        return True

    def heal(self) -> None:
        """Stop failing writes."""
        with self._lock:
            self._fail_after = None

    def not_ready(self, kind: str, name: str, namespace: str) -> None:
        with self._lock:
            self._not_ready.add((kind, namespace, name))
            self._refresh_status(kind, namespace, name)

    def ready(self, kind: str, name: str, namespace: str) -> None:
        with self._lock:
            self._not_ready.discard((kind, namespace, name))
            self._refresh_status(kind, namespace, name)

    def not_established(self, crd_name: str) -> None:
        """CRDs of this name are stored but not Established (and their kinds not served)."""
        with self._lock:
            self._not_established.add(crd_name)

    def forward_pod_port(self, namespace: str, pod: str, remote_port: int, local_port: int) -> None:
        """pods/portforward to `remote_port` of this pod connects to 127.0.0.1:`local_port`."""
        with self._lock:
            self._pod_ports[(namespace, pod, int(remote_port))] = int(local_port)

    def add(self, obj: dict) -> dict:
        """Seed an object as-is (status kept), registering CRDs; returns the stored object."""
        with self._lock:
            obj = _clone(obj)
            rt = self._type_for(obj.get("apiVersion", ""), obj.get("kind", ""))
            meta = obj.setdefault("metadata", {})
            if rt.namespaced:
                meta.setdefault("namespace", "default")
            self._stamp_new(obj, rt)
            self._after_write(rt, obj, recompute_status="status" not in obj)
            self._store[self._key(rt, meta.get("namespace"), meta["name"])] = obj
            return _clone(obj)

    def get(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> Optional[dict]:
        with self._lock:
            rt = self._type_for(api_version, kind)
            obj = self._store.get(self._key(rt, namespace if rt.namespaced else None, name))
            return self._render(obj, rt, api_version) if obj else None

    def objects(self, kind: Optional[str] = None) -> list[dict]:
        with self._lock:
            out = []
            for (group, plural, _, _), obj in sorted(self._store.items()):
                if kind is None or obj.get("kind") == kind:
                    out.append(_clone(obj))
            return out

    def edit(self, api_version: str, kind: str, name: str, namespace: Optional[str], patch: dict) -> dict:
        """Change an object as another client would (merge patch; bumps resourceVersion)."""
        with self._lock:
            rt = self._type_for(api_version, kind)
            key = self._key(rt, namespace if rt.namespaced else None, name)
            old = self._store[key]
            obj = merge_patch(old, patch)
            self._store[key] = obj
            self._bump(obj, rt, spec_changed=_spec(obj) != _spec(old))
            return _clone(obj)

    def remove(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> None:
        with self._lock:
            rt = self._type_for(api_version, kind)
            self._delete_key(rt, self._key(rt, namespace if rt.namespaced else None, name))

    # --- registry -----------------------------------------------------------------------------
    def _register(self, rt: RType) -> None:
        self._types[(rt.group, rt.kind)] = rt
        self._by_plural[(rt.group, rt.plural)] = rt

    def _type_for(self, api_version: str, kind: str) -> RType:
        group = api_version.rpartition("/")[0]
        rt = self._types.get((group, kind))
        if rt is None:
            raise KeyError(f"the fake API server has no type {kind} in {api_version}")
        return rt

    def _served(self, group: str, version: str) -> list[RType]:
        return [rt for rt in self._types.values() if rt.group == group and version in rt.versions]

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rt in self._types.values():
            if rt.group:
                for v in rt.versions:
                    if v not in groups.setdefault(rt.group, []):
                        groups[rt.group].append(v)
        return groups

    def _register_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
        if not (group and plural and kind):
            return
        name = (crd.get("metadata") or {}).get("name", "")
        if name in self._not_established:
            crd["status"] = {"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": _now(),
                 "message": "no conflicts found"},
                {"type": "Established", "status": "False", "reason": "Installing", "lastTransitionTime": _now(),
                 "message": "the initial names have been accepted"}],
                "acceptedNames": {"plural": plural, "kind": kind}, "storedVersions": []}
            return
        versions = [v["name"] for v in spec.get("versions") or [] if v.get("served", True)]
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        status_sub = any("status" in ((v.get("subresources") or {})) for v in spec.get("versions") or [])
        rt = RType(group, versions or ["v1"], plural, kind, spec.get("scope", "Namespaced") == "Namespaced",
                   tuple(names.get("shortNames") or ()), builtin=False, status_sub=status_sub)
        self._register(rt)
        crd["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": _now(),
                 "message": "no conflicts found"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "lastTransitionTime": _now(), "message": "the initial names have been accepted"}],
            "acceptedNames": {k: v for k, v in names.items()},
            "storedVersions": storage or versions[:1],
        }

    def _unregister_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        rt = self._types.get((spec.get("group"), names.get("kind")))
        if rt is None or rt.builtin:
            return
        for key in [k for k in self._store if k[0] == rt.group and k[1] == rt.plural]:
            self._delete_key(rt, key)
        self._types.pop((rt.group, rt.kind), None)
        self._by_plural.pop((rt.group, rt.plural), None)

    # --- object bookkeeping -------------------------------------------------------------------
    @staticmethod
    def _key(rt: RType, namespace: Optional[str], name: str) -> tuple[str, str, str, str]:
        return (rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _stamp_new(self, obj: dict, rt: RType) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["resourceVersion"] = self._next_rv()
        if "spec" in obj or not rt.builtin:
            meta["generation"] = 1
        obj["apiVersion"] = obj.get("apiVersion") or rt.api_version()
        obj["kind"] = rt.kind

    def _bump(self, obj: dict, rt: RType, spec_changed: bool = True) -> None:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        if spec_changed and "generation" in meta:
            meta["generation"] = int(meta["generation"]) + 1
        self._after_write(rt, obj, recompute_status=spec_changed)

    def _after_write(self, rt: RType, obj: dict, recompute_status: bool = True) -> None:
        meta = obj["metadata"]
        if rt.kind == "CustomResourceDefinition" and rt.builtin:
            self._register_crd(obj)
        elif rt.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        elif rt.kind in _WORKLOADS and rt.group == "apps":
            spec = obj.setdefault("spec", {})
            if rt.kind != "DaemonSet":
                spec.setdefault("replicas", 1)
            if recompute_status or "status" not in obj:
                obj["status"] = self._workload_status(rt.kind, obj)

    def _workload_status(self, kind: str, obj: dict) -> dict:
        meta = obj["metadata"]
        ready = (kind, meta.get("namespace"), meta["name"]) not in self._not_ready
        gen = meta.get("generation", 1)
        if kind == "DaemonSet":
            n = self.nodes
            status = {"observedGeneration": gen, "desiredNumberScheduled": n, "currentNumberScheduled": n,
                      "updatedNumberScheduled": n, "numberMisscheduled": 0}
            if ready:
                status.update(numberReady=n, numberAvailable=n)
            else:
                status.update(numberReady=0, numberUnavailable=n)
            return status
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        status: dict[str, Any] = {"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas}
        if kind == "StatefulSet":
            status.update(currentReplicas=replicas, currentRevision=f"{meta['name']}-1",
                          updateRevision=f"{meta['name']}-1")
        if ready:
            status.update(readyReplicas=replicas, availableReplicas=replicas)
        elif replicas:
            if kind == "Deployment":
                status["unavailableReplicas"] = replicas
        if kind == "Deployment":
            status["conditions"] = [
                {"type": "Available", "status": "True" if ready else "False",
                 "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
                 "lastUpdateTime": _now(), "lastTransitionTime": _now()},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" if ready
                 else "ReplicaSetUpdated", "lastUpdateTime": _now(), "lastTransitionTime": _now()},
            ]
        return status

    def _refresh_status(self, kind: str, namespace: str, name: str) -> None:
        rt = self._types.get(("apps", kind))
        if rt is None:
            return
        obj = self._store.get(self._key(rt, namespace, name))
        if obj is not None:
            obj["status"] = self._workload_status(kind, obj)
            obj["metadata"]["resourceVersion"] = self._next_rv()

    def _delete_key(self, rt: RType, key: tuple) -> Optional[dict]:
        obj = self._store.pop(key, None)
        if obj is None:
            return None
        for k in [k for k in self._applied if k[0] == key]:
            del self._applied[k]
        if rt.kind == "Namespace" and rt.builtin:
            ns = obj["metadata"]["name"]
            for k in [k for k in self._store if k[2] == ns and self._by_plural.get((k[0], k[1]))
                      and self._by_plural[(k[0], k[1])].namespaced]:
                self._delete_key(self._by_plural[(k[0], k[1])], k)
        elif rt.kind == "CustomResourceDefinition" and rt.builtin:
            self._unregister_crd(obj)
        return obj

    def _render(self, obj: dict, rt: RType, api_version: Optional[str] = None) -> dict:
        out = _clone(obj)
        if api_version:
            out["apiVersion"] = api_version
        return out

    # --- authorization and failure injection -------------------------------------------------
    def allowed(self, verb: str, resource: str, group: str, namespace: Optional[str]) -> bool:
        for d_verb, d_res, d_group, d_ns in self._denied:
            if d_verb not in ("*", verb):
                continue
            if d_res not in ("*", resource):
                continue
            if d_group not in ("*", group):
                continue
            if d_ns is not None and d_ns != namespace:
                continue
            return False
        return True

    def _count_write(self) -> None:
        self._writes += 1
        if self._fail_after is not None and self._writes > self._fail_after:
            raise ApiError(self._fail_status, "InternalError" if self._fail_status >= 500 else "BadRequest",
                           "injected failure: the fake API server refuses writes now")

    # --- request handling ---------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], headers, body: bytes) -> tuple[int, Any]:
        with self._lock:
            interrupted = self._interrupt_due(method, path, query)
        if interrupted:
            import signal

            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the client is gone by now; this answer is for nobody
            return 503, ApiError(503, "ServiceUnavailable", "interrupted").status()
        with self._lock:
            self.requests.append((method, path))
            try:
                given = headers.get("Authorization")  # kubectl sends no token over plain HTTP: anonymous
                if self.token is not None and given is not None and given != f"Bearer {self.token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                return self._route(method, path, query, headers, body)
            except ApiError as e:
                return e.code, e.status()

    def _route(self, method, path, query, headers, body):
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if path.rstrip("/") == "/version" and method == "GET":
            return 200, self._version_info()
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                         "serverAddress": self.url.split("//")[1]}]}
        if parts == ["apis"]:
            return 200, self._group_list()
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 2:
            if len(parts) == 2:
                versions = self._groups().get(parts[1])
                if not versions:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return 200, self._group(parts[1], versions)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        served = self._served(group, version)
        if not served:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return 200, self._resource_list(group, version, served)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and group == "" and \
                self._by_plural.get((group, rest[2])) and self._by_plural[(group, rest[2])].namespaced:
            namespace, rest = rest[1], rest[2:]
        elif rest[0] == "namespaces" and len(rest) >= 3 and group != "":
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        rt = self._by_plural.get((group, plural))
        if rt is None or version not in rt.versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        api_version = f"{group}/{version}" if group else version
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method)
        if verb is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if rt.kind == "SelfSubjectAccessReview":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return self._ssar(self._json(body))
        if query.get("watch", ["false"])[0] in ("1", "true"):
            verb = "watch"
        if not self.allowed(verb, plural, group, namespace):
            user = "fake"
            scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            raise ApiError(403, "Forbidden",
                           f'{rt.display}{" " + repr(name).replace(chr(39), chr(34)) if name else ""} is forbidden: '
                           f'User "{user}" cannot {verb} resource "{plural}" in API group "{group}"{scope}',
                           {"name": name or "", "group": group, "kind": plural})
        if verb == "watch":
            raise ApiError(405, "MethodNotAllowed", "the fake API server does not support watch")
        if sub == "portforward" and rt.kind == "Pod":
            raise ApiError(400, "BadRequest", "Upgrade request required")
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        dry_run = "All" in query.get("dryRun", [])
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            self._count_write()
        if method == "GET":
            if name:
                obj = self._store.get(self._key(rt, namespace, name))
                if obj is None:
                    raise self._not_found(rt, name)
                return 200, self._render(obj, rt, api_version)
            return 200, self._list(rt, api_version, namespace, query)
        if method == "POST":
            if name:
                raise ApiError(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource")
            return self._create(rt, api_version, namespace, self._json(body), dry_run, query)
        if method == "DELETE":
            if not name:
                raise ApiError(405, "MethodNotAllowed", "deletecollection is not supported by the fake API server")
            return self._delete(rt, api_version, namespace, name, dry_run)
        ctype = (headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if method == "PUT":
            return self._update(rt, api_version, namespace, name, self._json(body), dry_run, sub, query)
        return self._patch(rt, api_version, namespace, name, ctype, body, dry_run, sub, query)

    # --- discovery documents -----------------------------------------------------------------
    def _version_info(self) -> dict:
        major, minor = self._version["major"], self._version["minor"]
        return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
                "minCompatibilityMajor": major, "minCompatibilityMinor": str(max(int(minor) - 1, 0)),
                "gitVersion": f"v{major}.{minor}.0", "gitCommit": "0" * 40, "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
                "platform": "linux/amd64"}

    def _group(self, name: str, versions: list[str]) -> dict:
        return {"kind": "APIGroup", "apiVersion": "v1", "name": name,
                "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]}}

    def _group_list(self) -> dict:
        groups = [self._group(name, versions) for name, versions in sorted(self._groups().items())]
        for g in groups:
            del g["kind"], g["apiVersion"]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str, served: list[RType]) -> dict:
        resources = []
        for rt in sorted(served, key=lambda r: r.plural):
            verbs = ["create"] if rt.kind == "SelfSubjectAccessReview" else _VERBS
            entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                     "kind": rt.kind, "verbs": verbs}
            if rt.short_names:
                entry["shortNames"] = rt.short_names
            resources.append(entry)
            if rt.status_sub:
                resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    # --- verbs --------------------------------------------------------------------------------
    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {e}") from None

    def _not_found(self, rt: RType, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{rt.display} "{name}" not found',
                        {"name": name, "group": rt.group, "kind": rt.plural})

    def _check_namespace(self, rt: RType, namespace: Optional[str]) -> None:
        if rt.namespaced:
            if not namespace:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            ns_type = self._types[("", "Namespace")]
            ns = self._store.get(self._key(ns_type, None, namespace))
            if ns is None:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
            if ns["metadata"].get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f"{rt.display} is forbidden: unable to create new content in "
                                                 f"namespace {namespace} because it is being terminated",
                               {"group": rt.group, "kind": rt.plural,
                                "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]})

    def _check_body(self, rt: RType, api_version: str, namespace: Optional[str], obj: Any,
                    name: Optional[str] = None) -> dict:
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        if obj.get("kind") not in (None, rt.kind) or obj.get("apiVersion") not in (None, api_version):
            raise ApiError(400, "BadRequest",
                           f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API "
                           f"version ({api_version})" if obj.get("apiVersion") != api_version else
                           f"the kind in the data ({obj.get('kind')}) does not match the expected kind ({rt.kind})")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise ApiError(400, "BadRequest", "the name of the object "
                                                  f"({meta['name']}) does not match the name on the URL ({name})")
            meta["name"] = name
        if not meta.get("name") and not meta.get("generateName"):
            raise ApiError(422, "Invalid", f'{rt.kind} "" is invalid: metadata.name: Required value: name or '
                                           "generateName is required",
                           {"kind": rt.kind, "causes": [{"reason": "FieldValueRequired",
                                                         "message": "Required value: name or generateName is "
                                                                    "required", "field": "metadata.name"}]})
        obj["apiVersion"], obj["kind"] = api_version, rt.kind
        return obj

    def _list(self, rt: RType, api_version: str, namespace: Optional[str], query) -> dict:
        reqs = []
        if query.get("labelSelector"):
            try:
                reqs = parse_selector(query["labelSelector"][0])
            except ValueError as e:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {e}") from None
        fields = {}
        for term in (query.get("fieldSelector", [""])[0] or "").split(","):
            if term.strip():
                k, _, v = term.partition("=")
                fields[k.strip().rstrip("=")] = v.strip().lstrip("=")
        items = []
        for key, obj in sorted(self._store.items()):
            if key[0] != rt.group or key[1] != rt.plural:
                continue
            meta = obj["metadata"]
            if namespace is not None and meta.get("namespace") != namespace:
                continue
            if not selector_matches(meta.get("labels") or {}, reqs):
                continue
            if "metadata.name" in fields and meta.get("name") != fields["metadata.name"]:
                continue
            if "metadata.namespace" in fields and meta.get("namespace") != fields["metadata.namespace"]:
                continue
            item = self._render(obj, rt, api_version)
            if rt.builtin:  # typed lists carry no per-item apiVersion/kind
                item.pop("apiVersion", None)
                item.pop("kind", None)
            items.append(item)
        return {"kind": f"{rt.kind}List", "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _manager_entry(self, manager: str, operation: str, api_version: str, fields: dict,
                       subresource: Optional[str] = None) -> dict:
        entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": _now(),
                 "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(fields)}
        if subresource:
            entry["subresource"] = subresource
        return entry

    @staticmethod
    def _set_manager(obj: dict, entry: dict) -> None:
        managed = [m for m in obj["metadata"].get("managedFields") or []
                   if not (m.get("manager") == entry["manager"] and m.get("operation") == entry["operation"]
                           and m.get("subresource") == entry.get("subresource"))]
        managed.append(entry)
        obj["metadata"]["managedFields"] = managed

    def _create(self, rt, api_version, namespace, obj, dry_run, query, manager_op=None):
        obj = self._check_body(rt, api_version, namespace, obj)
        self._check_namespace(rt, namespace)
        meta = obj["metadata"]
        if meta.get("name") and self._key(rt, namespace, meta["name"]) in self._store:
            raise ApiError(409, "AlreadyExists", f'{rt.display} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": rt.group, "kind": rt.plural})
        for k in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "deletionTimestamp"):
            meta.pop(k, None)
        if rt.status_sub and rt.kind != "Pod":
            obj.pop("status", None)
        manager = (query.get("fieldManager") or [None])[0]
        entry = manager_op or self._manager_entry(manager or "unknown", "Update", api_version,
                                                  {k: v for k, v in obj.items() if k != "status"})
        if dry_run:
            stored = _clone(obj)
            self._stamp_new(stored, rt)
            stored["apiVersion"] = api_version
            self._rv -= 1
            return 201, stored
        self._stamp_new(obj, rt)
        obj["apiVersion"] = api_version
        self._set_manager(obj, entry)
        self._after_write(rt, obj)
        self._store[self._key(rt, namespace, meta["name"])] = obj
        return 201, self._render(obj, rt, api_version)

    def _existing(self, rt, namespace, name) -> dict:
        obj = self._store.get(self._key(rt, namespace, name))
        if obj is None:
            raise self._not_found(rt, name)
        return obj

    def _conflict(self, rt, name) -> ApiError:
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.display} "{name}": the object has '
                                         "been modified; please apply your changes to the latest version and try "
                                         "again", {"name": name, "group": rt.group, "kind": rt.plural})

    def _commit(self, rt, api_version, namespace, name, old: dict, new: dict, dry_run: bool,
                entry: Optional[dict], sub: Optional[str]) -> tuple[int, dict]:
        """Store `new` in place of `old` unless nothing changed (then the resourceVersion stays)."""
        meta = new.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        meta["managedFields"] = _clone(old["metadata"].get("managedFields") or [])
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if rt.namespaced:
            meta["namespace"] = namespace
        meta["name"] = name
        if sub == "status":
            new = {**_clone(old), "status": new.get("status")}
        elif rt.status_sub:
            if "status" in old:
                new["status"] = _clone(old["status"])
            else:
                new.pop("status", None)

        def significant(o):
            o = _clone(o)
            o["metadata"].pop("managedFields", None)
            o["metadata"].pop("resourceVersion", None)
            return o

        if significant(new) == significant(old):
            return 200, self._render(old, rt, api_version)
        if entry is not None:
            self._set_manager(new, entry)
        if dry_run:
            return 200, self._render(new, rt, api_version)
        spec_changed = _spec(new) != _spec(old)
        if rt.kind == "CustomResourceDefinition" and rt.builtin:
            self._unregister_crd_type_only(old)
        self._store[self._key(rt, namespace, name)] = new
        self._bump(new, rt, spec_changed=spec_changed and sub != "status")
        return 200, self._render(new, rt, api_version)

    def _unregister_crd_type_only(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        rt = self._types.get((spec.get("group"), (spec.get("names") or {}).get("kind")))
        if rt is not None and not rt.builtin:
            self._types.pop((rt.group, rt.kind), None)
            self._by_plural.pop((rt.group, rt.plural), None)

    def _update(self, rt, api_version, namespace, name, obj, dry_run, sub, query):
        obj = self._check_body(rt, api_version, namespace, obj, name)
        old = self._existing(rt, namespace, name)
        rv = obj["metadata"].get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise self._conflict(rt, name)
        if not rv and not rt.builtin:
            raise ApiError(422, "Invalid", f'{rt.kind}.{rt.group} "{name}" is invalid: metadata.resourceVersion: '
                                           "Invalid value: 0x0: must be specified for an update")
        manager = (query.get("fieldManager") or ["unknown"])[0]
        entry = self._manager_entry(manager, "Update", api_version, {k: v for k, v in obj.items() if k != "status"},
                                    sub)
        return self._commit(rt, api_version, namespace, name, old, _clone(obj), dry_run, entry, sub)

    def _patch(self, rt, api_version, namespace, name, ctype, body, dry_run, sub, query):
        if ctype == "application/apply-patch+yaml":
            return self._apply(rt, api_version, namespace, name, body, dry_run, sub, query)
        old = self._store.get(self._key(rt, namespace, name))
        if old is None:
            raise self._not_found(rt, name)
        patch = self._json(body)
        try:
            if ctype == "application/merge-patch+json":
                new = merge_patch(old, patch)
            elif ctype == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise ValueError("a JSON patch must be a list of operations")
                new = json_patch(old, patch)
            elif ctype == "application/strategic-merge-patch+json":
                if not rt.builtin:
                    raise ApiError(415, "UnsupportedMediaType", "strategic merge patch is not supported for "
                                                               "custom resources; use a merge or JSON patch")
                new = strategic_merge(old, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"the media type {ctype!r} is not supported")
        except ValueError as e:
            raise ApiError(422, "Invalid", f"the patch could not be applied: {e}") from None
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patch did not produce an object")
        rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise self._conflict(rt, name)
        manager = (query.get("fieldManager") or ["unknown"])[0]
        entry = self._manager_entry(manager, "Update", api_version, patch if isinstance(patch, dict) else {}, sub)
        return self._commit(rt, api_version, namespace, name, old, new, dry_run, entry, sub)

    def _apply(self, rt, api_version, namespace, name, body, dry_run, sub, query):
        manager = (query.get("fieldManager") or [None])[0]
        if not manager:
            raise ApiError(400, "BadRequest", "PATCH /apply requires fieldManager to be set")
        try:
            try:
                config = json.loads(body or b"null")  # clients send JSON, which is YAML
            except ValueError:
                config = yaml.load(body.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as e:
            raise ApiError(400, "BadRequest", f"error decoding YAML: {e}") from None
        if not isinstance(config, dict) or not config.get("apiVersion") or not config.get("kind"):
            raise ApiError(400, "BadRequest", "apply patches must set apiVersion and kind")
        config = self._check_body(rt, api_version, namespace, config, name)
        applied = _clone(config)
        applied["metadata"] = {k: v for k, v in applied["metadata"].items()
                               if k not in ("resourceVersion", "managedFields", "uid", "creationTimestamp")}
        entry = self._manager_entry(manager, "Apply", api_version, applied, sub)
        key = self._key(rt, namespace, name)
        old = self._store.get(key)
        if old is None:
            if sub:
                raise self._not_found(rt, name)
            if not self.allowed("create", rt.plural, rt.group, namespace):
                raise ApiError(403, "Forbidden", f'{rt.display} "{name}" is forbidden: User "fake" cannot create '
                                                 f'resource "{rt.plural}" in API group "{rt.group}"',
                               {"name": name, "group": rt.group, "kind": rt.plural})
            status, result = self._create(rt, api_version, namespace, _clone(applied), dry_run, {}, entry)
            if not dry_run:
                self._applied[(key, manager)] = applied
            return status, result
        rv = config["metadata"].get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise self._conflict(rt, name)
        previous = self._applied.get((key, manager), {})
        new = _prune(_clone(old), previous, applied)
        new = _apply_merge(new, applied)
        status, result = self._commit(rt, api_version, namespace, name, old, new, dry_run, entry, sub)
        if not dry_run:
            self._applied[(key, manager)] = applied
            stored = self._store[key]
            if not any(m.get("manager") == manager and m.get("operation") == "Apply"
                       for m in stored["metadata"].get("managedFields") or []):
                self._set_manager(stored, entry)
                result = self._render(stored, rt, api_version)
        return status, result

    def _delete(self, rt, api_version, namespace, name, dry_run):
        key = self._key(rt, namespace, name)
        obj = self._store.get(key)
        if obj is None:
            raise self._not_found(rt, name)
        if not dry_run:
            if self.deletion_delay > 0 and rt.builtin and rt.kind in ("Namespace", "CustomResourceDefinition"):
                # as the real server: the object stays, Terminating, while its contents are removed
                if not obj["metadata"].get("deletionTimestamp"):
                    obj["metadata"]["deletionTimestamp"] = _now()
                    obj["metadata"]["resourceVersion"] = self._next_rv()
                    if rt.kind == "Namespace":
                        obj["status"] = {"phase": "Terminating"}
                    uid = obj["metadata"]["uid"]
                    timer = threading.Timer(self.deletion_delay, self._finish_deletion, (rt, key, uid))
                    timer.daemon = True
                    timer.start()
                obj = _clone(obj)
            else:
                self._delete_key(rt, key)
        if rt.delete_returns_object:
            return 200, self._render(obj, rt, api_version)
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "group": rt.group, "kind": rt.plural,
                                 "uid": obj["metadata"].get("uid")}}

    def _finish_deletion(self, rt: RType, key: tuple, uid: str) -> None:
        with self._lock:
            obj = self._store.get(key)
            if obj is not None and obj["metadata"].get("uid") == uid:
                self._delete_key(rt, key)

    def _ssar(self, review: Any) -> tuple[int, dict]:
        if not isinstance(review, dict):
            raise ApiError(400, "BadRequest", "the body must be a SelfSubjectAccessReview")
        attrs = ((review.get("spec") or {}).get("resourceAttributes") or {})
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource = f"{resource}/{attrs['subresource']}"
        allowed = self.allowed(attrs.get("verb", ""), resource, attrs.get("group", ""),
                               attrs.get("namespace") or None)
        out = _clone(review)
        out.setdefault("apiVersion", "authorization.k8s.io/v1")
        out.setdefault("kind", "SelfSubjectAccessReview")
        out.setdefault("metadata", {})["creationTimestamp"] = None
        out["status"] = {"allowed": allowed}
        if allowed:
            out["status"]["reason"] = "allowed by the fake API server's rules"
        return 201, out


def _spec(obj: dict) -> dict:
    """Everything but metadata and status: what bumps the generation when it changes."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _apply_merge(live: Any, applied: Any) -> Any:
    """Merge an applied configuration into a live object: maps merge, everything else is replaced."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = _clone(live)
        for k, v in applied.items():
            out[k] = _apply_merge(out.get(k), v)
        return out
    return _clone(applied)


# --- TLS ---------------------------------------------------------------------------------------------

class TLSFiles(NamedTuple):
    ca: str
    cert: str
    key: str


def make_tls(directory: str) -> TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 (with the openssl command)."""
    d = os.path.abspath(directory)
    os.makedirs(d, exist_ok=True)
    files = TLSFiles(os.path.join(d, "ca.crt"), os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as fh:
        fh.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                 "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    ca_key = os.path.join(d, "ca.key")
    csr = os.path.join(d, "server.csr")
    for cmd in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", files.ca,
         "-days", "2", "-subj", "/CN=fake-kube-ca", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", files.key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", files.ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", files.cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    return files


# --- HTTP --------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the listen backlog: socketserver's 5 drops connections a real server takes

    def handle_error(self, request, client_address) -> None:
        import ssl
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            return  # a client that gave up (its timeout) during the TLS handshake: nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        return None

    def setup(self) -> None:
        import ssl

        tls = isinstance(self.request, ssl.SSLSocket)
        if self.fake.latency:
            time.sleep(self.fake.latency * (2 if tls else 1))
        if tls:
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        # As Go's servers do: without it, Nagle and delayed ACKs add 40 ms to each kept-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.fake.latency:
            time.sleep(self.fake.latency)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket(parts.path, parse_qs(parts.query))
            return
        m = _POD_PROXY.match(parts.path)
        if m:
            self._pod_proxy(m.group(1), unquote(m.group(2)), int(m.group(3)), m.group(4), parts.query)
            return
        status, data = self.fake.handle(self.command, parts.path, parse_qs(parts.query), self.headers, body)
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    # --- the pod proxy subresource: GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH --------
    def _pod_proxy(self, namespace: str, pod: str, port: int, rest: str, query: str) -> None:
        import http.client

        fake = self.fake
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[self.command]
        with fake._lock:
            fake.requests.append((self.command, self.path.split("?")[0]))
            given = self.headers.get("Authorization")
            obj = fake._store.get(("", "pods", namespace, pod))
            local_port = fake._pod_ports.get((namespace, pod, port))
        if fake.token is not None and given is not None and given != f"Bearer {fake.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
        if not fake.allowed(verb, "pods/proxy", "", namespace):
            return self._status(403, "Forbidden", f'pods "{pod}" is forbidden: User "fake" cannot {verb} resource '
                                                  f'"pods/proxy" in API group "" in the namespace "{namespace}"')
        if obj is None:
            return self._status(404, "NotFound", f'pods "{pod}" not found')
        ip = (obj.get("status") or {}).get("podIP") or "10.0.0.1"
        try:
            if not local_port:
                raise ConnectionRefusedError()
            upstream = http.client.HTTPConnection("127.0.0.1", local_port, timeout=10)
            upstream.request(self.command, (rest or "/") + (f"?{query}" if query else ""))
            answer = upstream.getresponse()
            body = answer.read()
            upstream.close()
        except OSError:
            return self._status(503, "ServiceUnavailable", f"error trying to reach service: dial tcp {ip}:{port}: "
                                                           "connect: connection refused")
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type") or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, reason: str, message: str) -> None:
        payload = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    # --- pods/portforward over websocket (v4.channel.k8s.io) ---------------------------------
    def _websocket(self, path: str, query: dict) -> None:
        fake = self.fake
        m = re.match(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/portforward$", path)
        protocols = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        with fake._lock:
            fake.requests.append(("GET", path))
            target = None
            error = None
            given = self.headers.get("Authorization")
            if fake.token is not None and given is not None and given != f"Bearer {fake.token}":
                error = (401, "Unauthorized")
            elif not m:
                error = (404, "Not Found")
            elif not fake.allowed("create", "pods/portforward", "", m.group(1)):
                error = (403, "Forbidden")
            else:
                pod = fake._store.get(("", "pods", m.group(1), m.group(2)))
                ports = [int(p) for v in query.get("ports", []) for p in v.split(",") if p]
                if pod is None:
                    error = (404, "Not Found")
                elif len(ports) != 1:
                    error = (400, "Bad Request")
                else:
                    target = (ports[0], fake._pod_ports.get((m.group(1), m.group(2), ports[0])))
        if error or "v4.channel.k8s.io" not in protocols:
            code, reason = error or (400, "Bad Request")
            payload = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                                  "reason": reason.replace(" ", ""), "message": reason}).encode()
            self.send_response(code, reason)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        remote_port, local_port = target
        sock = self.connection
        port_bytes = struct.pack("<H", remote_port)
        send_lock = threading.Lock()

        def send(payload: bytes, opcode: int = 2) -> None:
            header = bytes([0x80 | opcode])
            n = len(payload)
            if n < 126:
                header += bytes([n])
            elif n < 65536:
                header += bytes([126]) + struct.pack(">H", n)
            else:
                header += bytes([127]) + struct.pack(">Q", n)
            with send_lock:
                sock.sendall(header + payload)

        send(b"\x00" + port_bytes)
        send(b"\x01" + port_bytes)
        try:
            upstream = socket.create_connection(("127.0.0.1", local_port), timeout=5) if local_port else None
        except OSError:
            upstream = None
        if upstream is None:
            send(b"\x01" + f"error forwarding port {remote_port} to pod: connection refused".encode())
            with contextlib.suppress(OSError):
                send(b"", 8)
            return
        upstream.settimeout(None)

        def pump_up() -> None:
            try:
                while True:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    send(b"\x00" + data)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                send(b"", 8)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump_up, daemon=True).start()
        rfile = self.rfile
        try:
            while True:
                head = rfile.read(2)
                if len(head) < 2:
                    break
                opcode = head[0] & 0x0F
                masked = head[1] & 0x80
                n = head[1] & 0x7F
                if n == 126:
                    n = struct.unpack(">H", rfile.read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", rfile.read(8))[0]
                mask = rfile.read(4) if masked else b"\x00\x00\x00\x00"
                data = bytearray(rfile.read(n))
                for i in range(len(data)):
                    data[i] ^= mask[i % 4]
                if opcode == 8:
                    break
                if opcode == 9:
                    send(bytes(data), 10)
                    continue
                if opcode in (1, 2) and data and data[0] == 0:
                    if fake.latency:  # to the pod and back: a round trip a message
                        time.sleep(fake.latency)
                    upstream.sendall(bytes(data[1:]))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                upstream.close()

"""Where a shift or a rollout reads and writes a host's route: a Kubernetes API, or manifest files.

Both have the same calls: `find(host, kind)` (the route, the objects defining its versions, each
refused when it does not match its schema), `read(found)` (the route as it is now),
`write(found, current, new)`, `preview(found, new)` (the diff a dry run prints), `missing(...)`
(the error when the host has no route), `notes(host)` and `locked()`.

ClusterTarget: the cluster through meshctl.kube, or the local mesh (meshctl.local.kubeview
answers the same calls). `write` replaces the route carrying the resourceVersion it read; the
API server refuses it (kube.Conflict) when someone wrote meanwhile, and shift.update reads and
applies the change again, so two operators shifting at once lose nothing.

FileTarget (-f): the route's document is changed by minimal text edits (textedit), so other
documents, comments and key order stay byte-identical; the file is replaced atomically, under an
exclusive lock held for the whole read-modify-write.
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from meshctl import hosts
from meshctl.canary import httproute, plan, virtualservice
from meshctl.errors import ClusterError, InputError
from meshctl.files import write_atomic

APIS = (virtualservice, httproute)
AMBIENT_LABEL = "istio.io/dataplane-mode"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"


def _apis(kind: Optional[str]) -> tuple:
    return (plan.route_api(kind),) if kind else APIS


def _pick(hits: list, apis: tuple, in_use: list, host: str) -> tuple[Any, Optional[dict], tuple[str, ...]]:
    """(API, route or None, kinds a missing route is reported as) from the routes found per API:
    one route, or none (then the API the user's config uses: the only kind present, else the
    VirtualService); a route of each kind is ambiguous."""
    if len(hits) > 1:
        raise InputError(f"both {' and '.join(plan.ref(r) for _, r in hits)} route {host}",
                         hint="say which to change with --kind VirtualService or --kind HTTPRoute")
    if hits:
        return hits[0][0], hits[0][1], (hits[0][0].KIND,)
    if len(apis) == 1 or len(in_use) == 1:
        api = apis[0] if len(apis) == 1 else in_use[0]
        return api, None, (api.KIND,)
    return virtualservice, None, tuple(a.KIND for a in apis)


def _clean(obj: dict) -> dict:
    """The object as a user reads it: without server bookkeeping."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for k in ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink"):
        meta.pop(k, None)
    out.pop("status", None)
    return out


def object_diff(old: dict | None, new: dict, name: str) -> str:
    from meshctl.output import to_yaml

    a = to_yaml(_clean(old)).splitlines(keepends=True) if old else []
    b = to_yaml(_clean(new)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"{name} (cluster)", f"{name} (shifted)"))


def text_diff(path: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        path, f"{path} (shifted)"))


# --- a Kubernetes API ------------------------------------------------------------------------
class ClusterTarget:
    """A namespace of a cluster (meshctl.kube's client) or of the local mesh (its kubeview).
    `dry_run`: None, "client" (write nothing) or "server" (the API server checks each write)."""

    in_files = False

    def __init__(self, k, namespace: str, dry_run: Optional[str] = None):
        self.k = k
        self.namespace = namespace
        self.dry_run = dry_run

    @property
    def where(self) -> str:
        return f" in namespace {self.namespace}"

    def locked(self):
        return contextlib.nullcontext()

    def find(self, host: str, kind: Optional[str] = None) -> plan.Found:
        apis = _apis(kind)
        hits, in_use = [], []
        for api in apis:
            items = self.k.list(api.API_VERSION, api.KIND, self.namespace)
            if items:
                in_use.append(api)
            route = api.find(items, host, self.namespace)
            if route is not None:
                hits.append((api, route))
        api, route, searched = _pick(hits, apis, in_use, host)
        versions = api.versions(self.k.list(*api.VERSIONS_KIND, self.namespace), host, self.namespace)
        for obj in ([route] if route is not None else []) + versions:
            plan.check_shape(obj)
        return plan.Found(api, route, versions, self.namespace, self.where, searched=searched)

    def missing(self, found: plan.Found, host: str, hint: Optional[str] = None) -> InputError:
        kinds = found.searched
        return InputError(f"no {kinds[0]} serves {host}{self.where}" + (f", nor an {kinds[1]}" if len(kinds) > 1 else ""),
                          hint=hint or ("check the host and -n, or pass --create to make one from the Service's pods"
                                        if found.api is virtualservice else "check the host and -n, or pass --create "
                                        "--subsets v1,v2 to attach one to the Service, split between its per-version "
                                        "Services"))

    def read(self, found: plan.Found) -> dict:
        meta = found.route["metadata"]
        ns = meta.get("namespace") or self.namespace
        current = self.k.get(found.api.API_VERSION, found.api.KIND, meta["name"], ns)
        if current is None:
            raise ClusterError(f"{found.api.KIND} {ns}/{meta['name']} no longer exists",
                               hint="it was deleted while meshctl was changing it")
        return current

    def write(self, found: plan.Found, current: dict, new: dict) -> dict:
        new.setdefault("metadata", {})["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
        return self.k.replace(new)

    def preview(self, found: plan.Found, new: dict) -> str:
        if self.dry_run == "server" and new != found.route:  # the API server (and its webhooks) checks it
            self.k.replace(new, dry_run=True)
        return object_diff(found.route, new, found.ref)

    def create(self, objects: list[dict]) -> dict:
        """Create the objects in order; the last one is returned. When one cannot be created,
        those created before it are deleted again, so a failed --create leaves nothing behind."""
        made: list[dict] = []
        if self.dry_run == "server":  # the API server (and its admission webhooks) checks each
            return [self.k.create(o, dry_run=True) for o in objects][-1]
        if self.dry_run:
            return objects[-1]
        for obj in objects:
            try:
                made.append(self.k.create(obj))
            except BaseException:
                self._undo(made, obj)
                raise
        return made[-1]

    def _undo(self, made: list[dict], failed: dict) -> None:
        for obj in reversed(made):
            meta = obj["metadata"]
            try:
                self.k.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace") or self.namespace)
            except Exception:  # noqa: BLE001 - report the first failure, and what is left
                raise ClusterError(f"created {plan.ref(obj)} but could not create {plan.ref(failed)}, "
                                   f"nor delete {plan.ref(obj)} again",
                                   hint=f"delete it by hand: kubectl delete {obj['kind'].lower()} -n "
                                        f"{meta.get('namespace') or self.namespace} {meta['name']}") from None

    def notes(self, host: str) -> list[str]:
        note = ambient_without_waypoint(self.k, host, self.namespace)
        return [note] if note else []


def ambient_without_waypoint(k, host: str, namespace: str) -> str | None:
    """A note when HOST's Service runs in ambient mode with no waypoint: VirtualService and
    HTTPRoute routing act only in a waypoint proxy there, so weights would have no effect. Best
    effort: None when the namespace cannot be read."""
    parts = hosts.service_fqdn(host, namespace).split(".")
    ns = parts[1] if len(parts) > 2 and parts[2] == "svc" else namespace
    try:
        ns_obj = k.get("v1", "Namespace", ns)
        svc = k.get("v1", "Service", hosts.short_name(host), ns)
    except ClusterError:
        return None
    ns_labels = ((ns_obj or {}).get("metadata") or {}).get("labels") or {}
    svc_labels = ((svc or {}).get("metadata") or {}).get("labels") or {}
    if ns_labels.get(AMBIENT_LABEL) != "ambient" or svc_labels.get(AMBIENT_LABEL) == "none":
        return None
    waypoint = svc_labels.get(USE_WAYPOINT_LABEL) or ns_labels.get(USE_WAYPOINT_LABEL)
    if waypoint and waypoint != "none":
        return None
    return (f"namespace {ns} runs in ambient mode and {host} uses no waypoint: its routing rules act only in a "
            f"waypoint proxy, so traffic ignores these weights until one exists; create it with "
            f"'meshctl waypoint apply -n {ns} --enroll-namespace'")


def local_target(state_dir: str, namespace: str):
    """The local mesh (`meshctl local up`) as a target: the same reads and read-modify-writes as
    on a cluster, applied to the running proxies without restarts."""
    from meshctl.local.kubeview import LocalResources

    return ClusterTarget(LocalResources(state_dir), namespace)


# --- manifest files --------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(paths: list[str]):
    """An exclusive flock on each manifest's current file for the whole read-modify-write, so two
    meshctl processes editing one file take turns instead of the second overwriting the first's
    change. The lock is on the inode: when the file was replaced while waiting, lock the new one."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the atomic replace still keeps the file whole
        yield
        return
    held = []
    try:
        for path in sorted({os.path.realpath(p) for p in paths}):
            while True:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    break  # missing or unreadable: reading it reports that
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except OSError:
                    same = False
                if same:
                    held.append(fd)
                    break
                os.close(fd)
        yield
    finally:
        for fd in held:
            os.close(fd)


@dataclass
class Manifests:
    """The files as read: raw bytes and text per path, what the loader made of each, and the
    (path, resource) of every object."""

    texts: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    loaded: dict[str, Any] = field(default_factory=dict)
    bodies: list[tuple[str, Any]] = field(default_factory=list)
    doc: Any = None       # (path, resource) of the route's document
    host: str = ""

    @property
    def items(self) -> list[dict]:
        return [r.body for _, r in self.bodies]


class FileTarget:
    """Manifest files (-f): the route is edited in the file holding it; the other files are read
    only (e.g. the one holding the DestinationRule or the Services)."""

    in_files = True

    def __init__(self, paths: list[str], namespace: Optional[str], dry_run: bool = False):
        self.paths = list(paths)
        self.namespace = namespace
        self.dry_run = bool(dry_run)

    @property
    def where(self) -> str:
        return f" in {', '.join(self.paths)}"

    def locked(self):
        if "-" in self.paths or self.dry_run:
            return contextlib.nullcontext()
        return _locked(self.paths)

    def _load(self) -> Manifests:
        from meshctl import loader

        if "-" in self.paths:
            raise InputError("-f - (stdin) cannot be edited in place", hint="pass the manifest file's path")
        m = Manifests()
        for path in self.paths:
            if os.path.isdir(path):
                raise InputError(f"{path}: is a directory", hint="pass the manifest file holding the route")
            raw = loader.read_source(path)
            text, problem = loader.decode(raw, path)
            if problem:
                raise InputError(str(problem), hint="fix the file, then shift again")
            m.texts[path] = (raw, text)
            m.loaded[path] = loader.load_text(text, path, self.namespace, keep_nodes=True)
        m.bodies = [(path, r) for path, result in m.loaded.items() for r in result.resources]
        return m

    def find(self, host: str, kind: Optional[str] = None) -> plan.Found:
        m = self._load()
        m.host = host
        items = m.items
        apis = _apis(kind)
        hits = [(api, r) for api in apis for r in [api.find(items, host, self.namespace)] if r is not None]
        in_use = [api for api in apis if any(isinstance(o, dict) and o.get("kind") == api.KIND for o in items)]
        api, route, searched = _pick(hits, apis, in_use, host)
        if route is None:
            return plan.Found(api, None, [], self.namespace, self.where, in_files=True, handle=m, searched=searched)
        path, res = next((p, r) for p, r in m.bodies if r.body is route)
        m.doc = (path, res)
        ns = self.namespace or res.namespace or "default"
        versions = api.versions(items, host, ns)
        for p, r in m.bodies:
            if r.body is route or any(r.body is v for v in versions):
                plan.check_shape(r.body, lambda f, p=p, r=r: f"{p}:{r.line_of(f)}: ")
        for problem in m.loaded[path].problems:
            if problem.line and res.node is not None and res.node.start_mark.line + res.line_offset + 1 <= problem.line \
                    <= res.node.end_mark.line + res.line_offset + 1:
                raise InputError(str(problem), hint=f"fix the {api.KIND}'s document first")
        return plan.Found(api, route, versions, ns, self.where, in_files=True, handle=m, searched=searched)

    def missing(self, found: plan.Found, host: str, hint: Optional[str] = None) -> InputError:
        m: Manifests = found.handle
        kinds = found.searched
        problems = [str(p) for result in m.loaded.values() for p in result.problems]
        extra = f" ({problems[0]})" if problems else ""
        elsewhere = sorted(plan.ref(o) for o in m.items if o.get("kind") in kinds
                           and plan.route_api(o).find([o], host, None) is not None) if self.namespace else []
        nor = f", nor an {kinds[1]}" if len(kinds) > 1 else ""
        return InputError(f"no {kinds[0]} for {host}{f' in namespace {self.namespace}' if self.namespace else ''}"
                          f"{self.where}{nor}{extra}",
                          hint=f"the files hold {', '.join(elsewhere)}: drop -n or change it" if elsewhere else
                          hint or "pass the manifest that holds it with -f; names and hosts are matched")

    def read(self, found: plan.Found) -> dict:
        return found.route  # locked since find: nobody else changed it

    def _patched(self, found: plan.Found, new: dict) -> tuple[str, str]:
        """(path, the file's new text) with the route's document changed to `new`."""
        from meshctl import loader
        from meshctl.canary import textedit

        m: Manifests = found.handle
        path, res = m.doc
        _, text = m.texts[path]
        old = found.route
        json_node = textedit.json_value_node(text, old) if res.node is None else None
        if json_node is not None:  # a JSON manifest: JSON is YAML, so the same minimal edits apply
            def reparsed_json(candidate: str) -> Any:
                return found.api.find([r.body for r in loader.load_text(candidate, path, self.namespace).resources],
                                      m.host, self.namespace)

            return path, textedit.patch_document(text, json_node, 0, old, new, check=reparsed_json)
        if res.node is None:
            return path, _rewrite_json(text, old, new)

        def reparsed(candidate: str) -> Any:
            for r in loader.load_text(candidate, path, self.namespace).resources:
                if r.line == res.line and r.kind == res.kind:
                    return r.body
            return None

        return path, textedit.patch_document(text, res.node, res.line_offset, old, new, check=reparsed)

    def preview(self, found: plan.Found, new: dict) -> str:
        if new == found.route:
            return ""
        path, new_text = self._patched(found, new)
        return text_diff(path, found.handle.texts[path][1], new_text)

    def write(self, found: plan.Found, current: dict, new: dict) -> dict:
        path, new_text = self._patched(found, new)
        self.save(found.handle, path, new_text)
        return new

    def save(self, m: Manifests, path: str, new_text: str) -> None:
        """Replace the file's text (a byte-order mark kept); nothing on a dry run."""
        if self.dry_run:
            return
        raw, _ = m.texts[path]
        bom = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
        write_atomic(path, bom + new_text.encode("utf-8"))

    def notes(self, host: str) -> list[str]:
        return []


def _rewrite_json(text: str, old: dict, new: dict) -> str:
    import json

    data = json.loads(text)
    if isinstance(data, list):
        data = [new if d == old else d for d in data]
    elif isinstance(data, dict) and isinstance(data.get("items"), list) and data != old:
        data["items"] = [new if d == old else d for d in data["items"]]
    else:
        data = new
    return json.dumps(data, indent=2) + "\n"

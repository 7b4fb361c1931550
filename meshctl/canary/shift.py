"""The mutate stage of `meshctl canary shift`: on the cluster, or in a manifest file in place.

Cluster: every write is a read-modify-write carrying the resourceVersion it read; on a conflict
(someone else wrote in between) the object is read again and the same change re-applied, so two
operators shifting at once lose nothing (`update`).

File (-f): the VirtualService's document is changed by minimal text edits (textedit), so other
documents, comments and key order stay byte-identical; the file is replaced atomically.
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from meshctl.canary import plan
from meshctl.errors import ClusterError, InputError
from meshctl.files import write_atomic
from meshctl.kinds import POD_TEMPLATE_PATHS
from meshctl.resources import dig

NET_API = "networking.istio.io/v1"
MAX_ATTEMPTS = 200


@dataclass
class ShiftResult:
    target: str                 # "VirtualService ns/name" or the file path
    host: str
    before: list[tuple[str, int]]
    after: list[tuple[str, int]]
    changed: bool
    dry_run: bool = False
    diff: str = ""
    created: list[str] = field(default_factory=list)
    attempts: int = 1
    header: Optional[tuple[str, str]] = None
    mirror: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {
            "target": self.target, "host": self.host,
            "before": {s: w for s, w in self.before}, "after": {s: w for s, w in self.after},
            "changed": self.changed, "dryRun": self.dry_run, "attempts": self.attempts,
        }
        if self.created:
            out["created"] = self.created
        if self.header:
            out["header"] = {"name": self.header[0], "value": self.header[1]}
        if self.mirror is not None:
            out["mirrorPercent"] = self.mirror
        if self.dry_run:
            out["diff"] = self.diff
        return out


# --- helpers ---------------------------------------------------------------------------------
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


def update(k, api_version: str, kind: str, name: str, namespace: str,
           mutate: Callable[[dict], Optional[dict]]) -> tuple[dict, dict, int]:
    """Read-modify-write with optimistic concurrency. `mutate(obj)` returns the new object (or
    None for no change) and is called again on the fresh object after each conflict.
    Returns (object read, object written or read, attempts)."""
    from meshctl import kube

    delay = 0.005
    for attempt in range(1, MAX_ATTEMPTS + 1):
        current = k.get(api_version, kind, name, namespace)
        if current is None:
            raise ClusterError(f"{kind} {namespace}/{name} no longer exists",
                               hint="it was deleted while meshctl was changing it")
        new = mutate(copy.deepcopy(current))
        if new is None or new == current:
            return current, current, attempt
        new.setdefault("metadata", {})["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
        try:
            written = k.replace(new)
        except kube.AlreadyExists:
            raise
        except kube.Conflict:
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.2)
            continue
        return current, written, attempt
    raise ClusterError(f"{kind} {namespace}/{name} kept changing: gave up after {MAX_ATTEMPTS} conflicting writes",
                       hint="another controller may be rewriting it; check its managedFields")


# --- cluster ---------------------------------------------------------------------------------
AMBIENT_LABEL = "istio.io/dataplane-mode"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"


def ambient_without_waypoint(k, host: str, namespace: str) -> str | None:
    """A note when HOST's Service runs in ambient mode with no waypoint: VirtualService (and
    HTTPRoute) routing acts only in a waypoint proxy there, so weights would have no effect. Best
    effort: None when the namespace cannot be read."""
    parts = plan.fqdn(host, namespace).split(".")
    ns = parts[1] if len(parts) > 2 and parts[2] == "svc" else namespace
    try:
        ns_obj = k.get("v1", "Namespace", ns)
        svc = k.get("v1", "Service", plan.short_name(host), ns)
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


def find_on_cluster(k, host: str, namespace: str) -> tuple[dict | None, dict | None]:
    """HOST's VirtualService and DestinationRule in the namespace, each refused (exit 2, naming
    the field) when it does not match its schema."""
    vss = k.list(NET_API, "VirtualService", namespace)
    drs = k.list(NET_API, "DestinationRule", namespace)
    vs, dr = plan.find_virtual_service(vss, host, namespace), plan.find_destination_rule(drs, host, namespace)
    for obj in (vs, dr):
        if obj is not None:
            plan.check_shape(obj)
    return vs, dr


def _plan_from_pods(k, host: str, namespace: str, subsets: list[str] | None,
                    dr: dict | None) -> tuple[dict | None, dict]:
    """(a new DestinationRule, or None when one exists; a new VirtualService) for `host`, from
    the `version` labels of the pods its Service selects. Writes nothing."""
    name = plan.short_name(host)
    new_dr = None
    if dr is None:
        svc = k.get("v1", "Service", name, namespace)
        if svc is None:
            raise InputError(f"--create: no Service {namespace}/{name} to take versions from",
                             hint="create the Service first, or write the DestinationRule yourself")
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not isinstance(selector, dict) or not selector:
            raise InputError(f"--create: Service {namespace}/{name} has no selector",
                             hint="subsets come from the pods the Service selects")
        sel = ",".join(f"{a}={b}" for a, b in sorted(selector.items()))
        versions = plan.versions_of(k.list("v1", "Pod", namespace, label_selector=sel))
        if not versions:
            raise InputError(f"--create: no pod selected by Service {namespace}/{name} has a 'version' label",
                             hint="label each Deployment's pods with version: v1, v2, ...")
        if subsets and any(s not in versions for s in subsets):
            missing = [s for s in subsets if s not in versions]
            raise InputError(f"--create: no pod of {namespace}/{name} has version {', '.join(missing)} "
                             f"(versions: {', '.join(versions)})", hint="fix --subsets or the pods' labels")
        new_dr = plan.new_destination_rule(host if "." in host else name, namespace, versions)
    return new_dr, plan.new_virtual_service(host if "." in host else name, namespace)


def _create_on_cluster(k, host: str, namespace: str, weights: list[int], subsets: list[str] | None,
                       header, mirror, dry_run: bool, dr: dict | None,
                       also: Callable[[dict], None] | None) -> ShiftResult:
    """--create: everything is planned and checked before the first write, so a shift that
    cannot be made leaves the cluster as it was; when the VirtualService cannot be created after
    the DestinationRule was, the DestinationRule is deleted again."""
    new_dr, new_vs = _plan_from_pods(k, host, namespace, subsets, dr)
    subsets = plan.resolve_subsets(new_vs, new_dr or dr, host, namespace, weights, subsets,
                                   f" in namespace {namespace}")
    body = plan.apply_shift(new_vs, plan.Shift(host, namespace, subsets, weights, header, mirror))
    if also:
        also(body)
    diff = (object_diff(None, new_dr, plan.ref(new_dr)) if new_dr else "") + object_diff(None, body, plan.ref(body))
    created = ([plan.ref(new_dr)] if new_dr else []) + [plan.ref(body)]
    if dry_run == "server":  # the API server (and its admission webhooks) checks both objects
        if new_dr:
            k.create(new_dr, dry_run=True)
        body = k.create(body, dry_run=True)
    elif not dry_run:
        made_dr = k.create(new_dr) if new_dr else None
        try:
            body = k.create(body)
        except BaseException:
            if made_dr is not None:
                try:
                    k.delete(NET_API, "DestinationRule", made_dr["metadata"]["name"], namespace)
                except Exception:  # noqa: BLE001 - report the first failure, and what is left
                    raise ClusterError(f"created {plan.ref(made_dr)} but could not create {plan.ref(body)}, "
                                       f"nor delete {plan.ref(made_dr)} again",
                                       hint=f"delete it by hand: kubectl delete destinationrule -n {namespace} "
                                            f"{made_dr['metadata']['name']}") from None
            raise
    return ShiftResult(plan.ref(body), host, [], plan.current_weights(body, host, namespace), True,
                       dry_run, diff, created, 1, header, mirror)


def shift_cluster(k, host: str, namespace: str, weights: list[int], subsets: list[str] | None = None,
                  header: tuple[str, str] | None = None, mirror: float | None = None,
                  dry_run: bool = False, create: bool = False,
                  also: Callable[[dict], None] | None = None) -> ShiftResult:
    """Shift the weights of HOST's default route on the cluster. `also(obj)` (optional) changes
    the object further inside the same read-modify-write (e.g. bookkeeping annotations)."""
    vs, dr = find_on_cluster(k, host, namespace)
    if vs is None:
        if not create:
            raise InputError(f"no VirtualService serves {host} in namespace {namespace}",
                             hint="check the host and -n, or pass --create to make one from the Service's pods")
        result = _create_on_cluster(k, host, namespace, weights, subsets, header, mirror, dry_run, dr, also)
        ambient = ambient_without_waypoint(k, host, namespace)
        if ambient:
            result.notes.append(ambient)
        return result

    name = vs["metadata"]["name"]
    vs_ns = vs["metadata"].get("namespace") or namespace
    subsets = plan.resolve_subsets(vs, dr, host, namespace, weights, subsets, f" in namespace {namespace}")
    shift = plan.Shift(host, namespace, subsets, weights, header, mirror)

    def mutate(obj: dict) -> dict:
        new = plan.apply_shift(obj, shift)
        if also:
            also(new)
        return new

    notes = [n for n in (ambient_without_waypoint(k, host, namespace),) if n]
    ann = (vs.get("metadata") or {}).get("annotations") or {}
    if ann.get("canary.meshctl.io/phase") in ("Initializing", "Progressing", "Promoting", "RollingBack"):
        notes.append(f"a rollout of {host} to {ann.get('canary.meshctl.io/canary')} is "
                     f"{ann['canary.meshctl.io/phase'].lower()}: its next step rewrites these weights "
                     f"(end it with 'meshctl canary abort|promote {host}')")
    if dry_run:
        new = mutate(copy.deepcopy(vs))
        if dry_run == "server" and new != vs:  # the API server (and its admission webhooks) checks it
            k.replace(new, dry_run=True)
        return ShiftResult(plan.ref(vs), host, plan.current_weights(vs, host, namespace),
                           plan.current_weights(new, host, namespace), new != vs, True,
                           object_diff(vs, new, plan.ref(vs)), [], 1, header, mirror, notes)
    before, after, attempts = update(k, NET_API, "VirtualService", name, vs_ns, mutate)
    return ShiftResult(plan.ref(after), host, plan.current_weights(before, host, namespace),
                       plan.current_weights(after, host, namespace), after is not before, False,
                       "", [], attempts, header, mirror, notes)


# --- files -----------------------------------------------------------------------------------
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


def shift_files(paths: list[str], host: str, namespace: str | None, weights: list[int],
                subsets: list[str] | None = None, header: tuple[str, str] | None = None,
                mirror: float | None = None, dry_run: bool = False, create: bool = False) -> ShiftResult:
    """Shift HOST's weights in the manifest file holding its VirtualService; other files given
    with -f are read only (e.g. the one holding the DestinationRule). Concurrent shifts of one
    file take turns (`_locked`), so none is lost."""
    if "-" in paths or dry_run:
        return _shift_files(paths, host, namespace, weights, subsets, header, mirror, dry_run, create)
    with _locked(paths):
        return _shift_files(paths, host, namespace, weights, subsets, header, mirror, dry_run, create)


def _shift_files(paths: list[str], host: str, namespace: str | None, weights: list[int],
                 subsets: list[str] | None, header: tuple[str, str] | None,
                 mirror: float | None, dry_run: bool, create: bool) -> ShiftResult:
    from meshctl import loader

    if "-" in paths:
        raise InputError("-f - (stdin) cannot be edited in place", hint="pass the manifest file's path")
    texts: dict[str, tuple[bytes, str]] = {}
    loaded: dict[str, Any] = {}
    for path in paths:
        if os.path.isdir(path):
            raise InputError(f"{path}: is a directory", hint="pass the manifest file holding the VirtualService")
        raw = loader.read_source(path)
        text, problem = loader.decode(raw, path)
        if problem:
            raise InputError(str(problem), hint="fix the file, then shift again")
        texts[path] = (raw, text)
        loaded[path] = loader.load_text(text, path, namespace, keep_nodes=True)
    bodies = [(path, r) for path, result in loaded.items() for r in result.resources]
    items = [r.body for _, r in bodies]
    vs_body = plan.find_virtual_service(items, host, namespace)
    if vs_body is None and create:
        return _create_in_files(bodies, texts, host, namespace, weights, subsets, header, mirror, dry_run)
    if vs_body is None:
        problems = [str(p) for result in loaded.values() for p in result.problems]
        extra = f" ({problems[0]})" if problems else ""
        elsewhere = sorted(plan.ref(v) for v in items if v.get("kind") == "VirtualService"
                           and plan.find_virtual_service([v], host, None) is not None) if namespace else []
        raise InputError(f"no VirtualService for {host}{f' in namespace {namespace}' if namespace else ''} "
                         f"in {', '.join(paths)}{extra}",
                         hint=f"the files hold {', '.join(elsewhere)}: drop -n or change it" if elsewhere else
                         "pass the manifest that holds it with -f; names and hosts are matched")
    path, res = next((p, r) for p, r in bodies if r.body is vs_body)
    ns = namespace or res.namespace or "default"
    dr = plan.find_destination_rule(items, host, ns)
    for p, r in bodies:
        if r.body is vs_body or r.body is dr:
            plan.check_shape(r.body, lambda field, p=p, r=r: f"{p}:{r.line_of(field)}: ")
    for problem in loaded[path].problems:
        if problem.line and res.node is not None and res.node.start_mark.line + res.line_offset + 1 <= problem.line \
                <= res.node.end_mark.line + res.line_offset + 1:
            raise InputError(str(problem), hint="fix the VirtualService's document first")
    where = f" in {', '.join(paths)}"
    subsets = plan.resolve_subsets(vs_body, dr, host, ns, weights, subsets, where, no_rule_hint=(
        "give the file holding it with another -f, or add one with a subset for each version"))
    shift = plan.Shift(host, ns, subsets, weights, header, mirror)
    new_body = plan.apply_shift(vs_body, shift)
    raw, text = texts[path]
    before = plan.current_weights(vs_body, host, ns)
    after = plan.current_weights(new_body, host, ns)
    if new_body == vs_body:
        return ShiftResult(f"{path}", host, before, after, False, dry_run, "", [], 1, header, mirror)
    from meshctl.canary import textedit

    json_node = textedit.json_value_node(text, vs_body) if res.node is None else None
    if json_node is not None:  # a JSON manifest: JSON is YAML, so the same minimal edits apply
        def reparsed_json(candidate: str) -> Any:
            return plan.find_virtual_service(
                [r.body for r in loader.load_text(candidate, path, namespace).resources], host, namespace)

        new_text = textedit.patch_document(text, json_node, 0, vs_body, new_body, check=reparsed_json)
    elif res.node is None:
        new_text = _rewrite_json(text, res.body, new_body)
    else:
        def reparsed(candidate: str) -> Any:
            again = loader.load_text(candidate, path, namespace)
            for r in again.resources:
                if r.line == res.line and r.kind == res.kind:
                    return r.body
            return None

        new_text = textedit.patch_document(text, res.node, res.line_offset, vs_body, new_body, check=reparsed)
    diff = "".join(difflib.unified_diff(text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                        path, f"{path} (shifted)"))
    if not dry_run:
        bom = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
        write_atomic(path, bom + new_text.encode("utf-8"))
    return ShiftResult(path, host, before, after, True, dry_run, diff, [], 1, header, mirror)




def _create_in_files(bodies, texts, host: str, namespace: str | None, weights: list[int],
                     subsets: list[str] | None, header, mirror, dry_run: bool) -> ShiftResult:
    """--create with -f: the Service's workloads in the files give the versions; the new
    DestinationRule (unless one exists) and VirtualService are appended to the Service's file."""
    from meshctl.output import to_yaml
    from meshctl.resources import matches_selector

    name = plan.short_name(host)
    services = [(p, r) for p, r in bodies if r.kind == "Service" and r.name == name
                and (namespace is None or (r.namespace or namespace) == namespace)]
    if not services:
        raise InputError(f"--create: no VirtualService for {host} and no Service {name} in the files to take "
                         "versions from", hint="pass the manifests holding the Service and its Deployments with -f")
    path, svc = services[0]
    ns = namespace or svc.namespace
    selector = (svc.spec.get("selector") or {}) if isinstance(svc.spec.get("selector"), dict) else {}
    if not selector:
        raise InputError(f"--create: Service {name} in {path} has no selector",
                         hint="subsets come from the workloads the Service selects")
    pods = []
    for _, r in bodies:
        template = POD_TEMPLATE_PATHS.get(r.kind)
        if template is None:
            continue
        labels = r.labels if not template else dig(r.body, *template, "metadata", "labels")
        if (r.namespace or ns) == ns and isinstance(labels, dict) and matches_selector(labels, selector):
            pods.append({"metadata": {"labels": labels}})
    versions = plan.versions_of(pods)
    if not versions:
        raise InputError(f"--create: no workload selected by Service {name} in the files has a 'version' label",
                         hint="label each Deployment's pod template with version: v1, v2, ...")
    if subsets and any(x not in versions for x in subsets):
        raise InputError(f"--create: no workload of {name} has version "
                         f"{', '.join(x for x in subsets if x not in versions)} (versions: {', '.join(versions)})",
                         hint="fix --subsets or the pod templates' labels")
    items = [r.body for _, r in bodies]
    dr = plan.find_destination_rule(items, host, ns)
    created, docs = [], []
    if dr is None:
        dr = plan.new_destination_rule(host if "." in host else name, ns or "default", versions)
        docs.append(dr)
    vs = plan.new_virtual_service(host if "." in host else name, ns or "default")
    subsets = plan.resolve_subsets(vs, dr, host, ns, weights, subsets, f" in {path}")
    vs = plan.apply_shift(vs, plan.Shift(host, ns, subsets, weights, header, mirror))
    docs.append(vs)
    for d in docs:
        if ns is None:
            d["metadata"].pop("namespace", None)
        created.append(f"{plan.ref(d).split(' ')[0]} {d['metadata']['name']} in {path}")
    raw, text = texts[path]
    nl = "\r\n" if "\r\n" in text else "\n"
    addition = "".join("---" + nl + to_yaml(d).replace("\n", nl) for d in docs)
    new_text = text + ("" if not text or text.endswith("\n") else nl) + addition
    diff = "".join(difflib.unified_diff(text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                        path, f"{path} (shifted)"))
    if not dry_run:
        bom = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
        write_atomic(path, bom + new_text.encode("utf-8"))
    return ShiftResult(path, host, [], plan.current_weights(vs, host, ns), True, dry_run, diff, created, 1,
                       header, mirror)


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


# --- local mesh ------------------------------------------------------------------------------
def local_target(state_dir: str):
    """The local mesh (`meshctl local up`) as a target: the same reads and read-modify-writes as
    on a cluster (shift_cluster, the rollout), applied to the running proxies without restarts."""
    from meshctl.local.kubeview import LocalResources

    return LocalResources(state_dir)

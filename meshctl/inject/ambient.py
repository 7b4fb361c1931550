"""Ambient mode: enrolment labels for workloads and namespaces, and the data-plane status of a
cluster (which namespaces are in which mode, which pods do not match their namespace).

Modes: `ambient` (label istio.io/dataplane-mode=ambient; ztunnel carries the traffic, no
sidecar), `sidecar` (label istio-injection=enabled, or istio.io/rev=<revision>; pods get a
sidecar when they are created) and `none`.
"""
from __future__ import annotations

from typing import Any, Optional

from meshctl.errors import InputError
from meshctl.inject import sidecar
from meshctl.kinds import AMBIENT_REDIRECTION, DATAPLANE_MODE_LABEL, INJECTION_LABEL, REVISION_LABEL, SIDECAR_INJECT

DATAPLANE_MODE = DATAPLANE_MODE_LABEL
INJECTION = INJECTION_LABEL
REV = REVISION_LABEL
REDIRECTION = AMBIENT_REDIRECTION
MODES = ("ambient", "sidecar", "none")


# --- workloads (offline) ----------------------------------------------------------------------
def enroll_workload(doc: dict, cfg=None) -> dict:
    """The workload with its pod template labelled for ambient mode (a sidecar injected earlier
    is removed first); no containers are added. `doc` itself when there is nothing to change."""
    if doc.get("kind") not in sidecar.WORKLOAD_KINDS:
        return doc
    doc = sidecar.remove_workload(doc, cfg)
    found = sidecar.pod_template(doc)
    if found is None:
        return doc
    holder, _ = found
    meta = holder.get("metadata") if isinstance(holder.get("metadata"), dict) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    if labels.get(DATAPLANE_MODE) == "ambient" and SIDECAR_INJECT not in labels:
        return doc
    new_labels = {k: v for k, v in labels.items() if k != SIDECAR_INJECT}
    new_labels[DATAPLANE_MODE] = "ambient"
    new_meta = dict(meta)
    new_meta["labels"] = new_labels
    return sidecar._replace_pod(doc, new_meta, holder.get("spec") or {}, had_meta="metadata" in holder)


def unenroll_workload(doc: dict) -> dict:
    found = sidecar.pod_template(doc) if doc.get("kind") in sidecar.WORKLOAD_KINDS else None
    if found is None:
        return doc
    holder, _ = found
    meta = holder.get("metadata") if isinstance(holder.get("metadata"), dict) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    if DATAPLANE_MODE not in labels:
        return doc
    new_meta = dict(meta)
    new_meta["labels"] = {k: v for k, v in labels.items() if k != DATAPLANE_MODE}
    if not new_meta["labels"]:
        del new_meta["labels"]
    return sidecar._replace_pod(doc, new_meta, holder.get("spec") or {})


# --- namespaces and pods ------------------------------------------------------------------------
def namespace_labels(mode: str, revision: Optional[str] = None) -> dict[str, Optional[str]]:
    """The label changes (None = remove) that put a namespace in `mode`."""
    if mode not in MODES:
        raise InputError(f"unknown data-plane mode {mode!r}", hint="use ambient, sidecar or none")
    if mode == "ambient":
        return {DATAPLANE_MODE: "ambient", INJECTION: None, REV: None}
    if mode == "sidecar":
        if revision and revision != "default":
            return {REV: revision, INJECTION: None, DATAPLANE_MODE: None}
        return {INJECTION: "enabled", REV: None, DATAPLANE_MODE: None}
    return {DATAPLANE_MODE: None, INJECTION: None, REV: None}


def namespace_mode(labels: dict) -> str:
    labels = labels or {}
    if labels.get(DATAPLANE_MODE) == "ambient":
        return "ambient"
    if labels.get(INJECTION) == "enabled" or (labels.get(REV) and labels.get(INJECTION) != "disabled"):
        return "sidecar"
    return "none"


def namespace_waypoint(name: str, labels: dict) -> Optional[str]:
    """The waypoint a namespace's traffic goes through (`istio.io/use-waypoint`, `ns/name` when
    it lives in another namespace), or None."""
    from meshctl.waypoint.render import USE_WAYPOINT, USE_WAYPOINT_NAMESPACE

    waypoint = labels.get(USE_WAYPOINT)
    if not isinstance(waypoint, str) or not waypoint or waypoint == "none":
        return None
    other = labels.get(USE_WAYPOINT_NAMESPACE)
    return f"{other}/{waypoint}" if isinstance(other, str) and other and other != name else waypoint


def pod_mode(pod: dict) -> str:
    """What a pod actually runs: `sidecar` (an istio-proxy container), `ambient` (redirected by
    istio-cni, or labelled for ambient) or `none`."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    names = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []
             if isinstance(c, dict)}
    if sidecar.PROXY in names:
        return "sidecar"
    annotations = meta.get("annotations") or {}
    if annotations.get(REDIRECTION) == "enabled":
        return "ambient"
    return "none"


def expected_pod_mode(ns_mode: str, pod: dict) -> str:
    """The mode a pod should be in, given its namespace's mode and the pod's own opt-outs."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(DATAPLANE_MODE) == "none":
        return "none"
    if labels.get(DATAPLANE_MODE) == "ambient":
        return "ambient"
    if ns_mode == "sidecar" and str(labels.get(SIDECAR_INJECT, "")).lower() == "false":
        return "none"
    if (pod.get("spec") or {}).get("hostNetwork"):
        return "none"
    return ns_mode


def _pod_row(pod: dict, want: str, have: str) -> dict:
    meta = pod.get("metadata") or {}
    return {"namespace": meta.get("namespace", ""), "pod": meta.get("name", ""), "expected": want, "actual": have}


def _injector_found(client: Any, revision: Optional[str]) -> Optional[bool]:
    """Whether a sidecar injector webhook of `revision` is installed (None: cannot tell)."""
    from meshctl.errors import MeshctlError

    try:
        hooks = client.list("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
                            label_selector=f"{REV}={revision or 'default'}")
    except MeshctlError:
        return None
    return bool(hooks)


def enroll(client: Any, namespace: str, mode: str, revision: Optional[str] = None) -> dict:
    """Label `namespace` for `mode` in the cluster; report the pods that need a restart.
    Writes nothing when the namespace already carries the labels."""
    changes = namespace_labels(mode, revision)
    if revision and mode != "sidecar":
        raise InputError(f"--revision applies to --mode sidecar, not {mode}",
                         hint="drop --revision, or use --mode sidecar --revision " + revision)
    if mode != "none" and namespace in sidecar.IGNORED_NAMESPACES:
        raise InputError(f"namespace {namespace!r} is a system namespace and is never part of the mesh",
                         hint="enrol the namespaces of your applications instead")
    ns = client.get("v1", "Namespace", namespace)
    if ns is None:
        raise InputError(f"namespace {namespace!r} not found", hint="create it first: kubectl create namespace " + namespace)
    labels = (ns.get("metadata") or {}).get("labels") or {}
    before = namespace_mode(labels)
    changed = any(labels.get(k) != v for k, v in changes.items())
    if changed:
        client.patch("v1", "Namespace", namespace, None, {"metadata": {"labels": changes}}, patch_type="merge")
    warnings = []
    if mode == "sidecar" and _injector_found(client, revision) is False:
        warnings.append(f"no sidecar injector of revision {revision or 'default'} is installed "
                        f"(no MutatingWebhookConfiguration labelled {REV}={revision or 'default'}): new pods "
                        "will not get a sidecar until it is")
    restart = []
    for pod in client.list("v1", "Pod", namespace=namespace):
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        want = expected_pod_mode(mode, pod)
        have = pod_mode(pod)
        if want != have and (want == "sidecar" or have == "sidecar"):
            restart.append(_pod_row(pod, want, have))
    prev_rev = labels.get(REV) if before == "sidecar" and labels.get(INJECTION) != "enabled" else None
    return {"namespace": namespace, "mode": mode, "previous": before, "changed": changed,
            "revision": revision if mode == "sidecar" else None, "previousRevision": prev_rev,
            "labels": {k: v for k, v in changes.items()}, "restart": restart, "warnings": warnings}


def describe_mode(mode: str, revision: Optional[str] = None) -> str:
    """`sidecar (revision canary)`, or the mode alone."""
    return f"{mode} (revision {revision})" if mode == "sidecar" and revision else mode


def status(client: Any, namespace: Optional[str] = None) -> dict:
    """Every namespace (or one) with its mode, and the pods whose actual state differs."""
    if namespace:
        ns = client.get("v1", "Namespace", namespace)
        if ns is None:
            raise InputError(f"namespace {namespace!r} not found")
        namespaces = [ns]
    else:
        namespaces = client.list("v1", "Namespace")
    modes = {}
    waypoints = {}
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        modes[meta.get("name", "")] = namespace_mode(meta.get("labels") or {})
        waypoints[meta.get("name", "")] = namespace_waypoint(meta.get("name", ""), meta.get("labels") or {})
    pods = client.list("v1", "Pod", namespace=namespace) if namespace else client.list("v1", "Pod")
    counts: dict[str, int] = {}
    mismatched = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns_name = meta.get("namespace", "")
        if ns_name not in modes or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        counts[ns_name] = counts.get(ns_name, 0) + 1
        if ns_name in sidecar.IGNORED_NAMESPACES:
            continue
        want = expected_pod_mode(modes[ns_name], pod)
        have = pod_mode(pod)
        if want != have:
            mismatched.append(_pod_row(pod, want, have))
    return {
        "namespaces": [{"namespace": n, "mode": m, "waypoint": waypoints.get(n), "pods": counts.get(n, 0)}
                       for n, m in sorted(modes.items())],
        "mismatched": sorted(mismatched, key=lambda r: (r["namespace"], r["pod"])),
    }

"""Are the installed workloads ready, and if not, why (the pods' own reasons)?"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

from meshctl.errors import MeshctlError
from meshctl.install.objects import WORKLOAD_KINDS, Progress, Ref

# --- readiness -----------------------------------------------------------------------------------

def workload_status(obj: dict) -> Optional[str]:
    """None when a Deployment/DaemonSet/StatefulSet is ready, else why not (e.g. "0/1 ready")."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or int(observed) < int(generation)):
        return "rollout not yet observed by its controller"
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        available = int(status.get("numberAvailable") or 0)
        if updated < desired:
            return f"{updated}/{desired} pods updated"
        if min(ready, available) < desired:
            return f"{min(ready, available)}/{desired} pods ready"
        return None
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    ready = int(status.get("readyReplicas") or 0)
    if kind == "Deployment":
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        if updated < want:
            return f"{updated}/{want} replicas updated"
        if total > updated:
            return f"{total - updated} old replica(s) pending termination"
        if min(ready, available) < want:
            return f"{min(ready, available)}/{want} ready"
        return None
    if kind == "StatefulSet":
        if ready < want:
            return f"{ready}/{want} ready"
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return "rolling update in progress"
        return None
    return None


_STARTING = {"ContainerCreating", "PodInitializing"}


def pod_problem(k, workload: dict) -> Optional[str]:
    """Why a workload's pods are not ready, as kubectl would show it: the first container waiting
    for a reason other than starting (ImagePullBackOff, CrashLoopBackOff...), a container that
    exited, or a pod that cannot be scheduled. None when nothing stands out."""
    selector = (((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    if not selector:
        return None
    namespace = (workload.get("metadata") or {}).get("namespace")
    try:
        pods = k.list("v1", "Pod", namespace, label_selector=",".join(f"{a}={b}" for a, b in selector.items()))
    except MeshctlError:
        return None
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in _STARTING:
                message = " ".join(str(waiting.get("message") or "").split())
                return f"pod {name}: {waiting['reason']}" + (f" ({message[:100]})" if message else "")
            last = (cs.get("lastState") or {}).get("terminated") or state.get("terminated") or {}
            if last.get("exitCode") not in (None, 0):
                return f"pod {name}: container {cs.get('name')} exited with code {last['exitCode']}" + \
                    (f" ({last['reason']})" if last.get("reason") else "")
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                message = " ".join(str(cond.get("message") or cond.get("reason") or "").split())
                return f"pod {name}: not scheduled ({message[:100]})"
    return None


def wait_for_workloads(k, objects: Iterable[dict], timeout: float, progress: Progress,
                       sleep: Callable[[float], None] = time.sleep, interval: float = 1.0) -> dict[Ref, str]:
    """Poll until every workload is ready or the timeout passes; return the ones still not ready."""
    refs = [Ref.of(o) for o in objects if o.get("kind") in WORKLOAD_KINDS]
    if not refs:
        return {}
    deadline = time.monotonic() + timeout
    progress.start(len(refs), "waiting for workloads")
    try:
        while True:
            pending: dict[Ref, str] = {}
            for ref in refs:
                live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                why = "missing" if live is None else workload_status(live)
                if why:
                    pending[ref] = why
            progress.waiting(pending)
            if not pending:
                return pending
            if time.monotonic() >= deadline:
                for ref in pending:  # say why, from the pods, once it is over
                    live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                    problem = pod_problem(k, live) if live else None
                    if problem:
                        pending[ref] = f"{pending[ref]}; {problem}"
                return pending
            sleep(min(interval, max(deadline - time.monotonic(), 0.05)))
    finally:
        progress.done()

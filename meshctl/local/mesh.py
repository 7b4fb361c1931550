"""`meshctl local` end to end: load → model → render → validate → write → run, and back.

    up(dir)          analyze (by the caller), render every proxy, prove each configuration with
                     `envoy --mode validate`, issue certificates, start the supervisor, wait
                     until every proxy is LIVE and SYNCED and every workload listens
    change(...)      apply or delete: merge resources into the running mesh; only proxies whose
                     configuration changed get new files; nothing is written when Envoy would
                     reject one
    status()         each proxy's proxy-status and each workload's process
    log_path(name)   the log `local logs` shows
    down()           stop every process by PID and remove the state

and what other commands read of a running mesh: `is_running`, `proxy_targets`, `admin_of`.
The stages live beside this module: pipeline (analyze, load, render, validate), machine
(addresses, ports, inotify), processes (the supervisor from outside), sync (files to proxies).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from meshctl.errors import ClusterError, InputError, MeshctlError
from meshctl.local import ca as mesh_ca
from meshctl.local import model
from meshctl.local.machine import check_free, check_inotify, gateway_addresses
from meshctl.local.pipeline import Observer, check_schemas, culprit, load, quiet, refuse, render, validate
from meshctl.local.processes import cleanup_dead, plan, replan, start_supervisor, stop_all, supervisor_alive
from meshctl.local.state import State, alive, no_mesh, require
from meshctl.local.sync import files_on_disk, push, wait_ready, write_proxy
from meshctl.local.translate import ProxyConfig
from meshctl.resources import Resource


# --- up ---------------------------------------------------------------------------------------------

@dataclass
class UpResult:
    state_dir: str
    proxies: int
    workloads: int
    seconds: float
    warnings: list = field(default_factory=list)
    ingress: list = field(default_factory=list)  # [{"gateway", "port", "address"}]

    def to_dict(self) -> dict:
        return {"stateDir": self.state_dir, "proxies": self.proxies, "workloads": self.workloads,
                "seconds": round(self.seconds, 3), "ingress": self.ingress, "warnings": self.warnings}


def up(paths: list[str], state_dir: str, cert_lifetime: float = mesh_ca.DEFAULT_LIFETIME, timeout: float = 60.0,
       observer: Observer = quiet) -> UpResult:
    state = State(state_dir)
    if state.exists() and supervisor_alive(state):
        src = state.mesh().get("source") or "?"
        raise InputError(f"a local mesh is already running in {state.dir} (from {src})",
                         hint="change it with 'meshctl local apply -f', or stop it with 'meshctl local down'")
    if cleanup_dead(state):
        observer("cleaned up a previous mesh whose processes had stopped")
    for p in paths:
        if not os.path.exists(p):
            raise InputError(f"{p}: no such file or directory", hint="pass the directory holding the mesh's resources")
    started = time.monotonic()
    resources = load(paths)
    mesh, configs = render(resources, gateway_addresses(resources, state_dir))
    check_free(configs)
    check_inotify(configs)
    if not configs:
        raise InputError(f"{', '.join(paths)} declares no workload (WorkloadEntry) and no Gateway",
                         hint="see docs/local.md for how a local mesh is declared")
    observer(f"validating {len(configs)} proxy configurations with envoy --mode validate")
    refuse(validate(configs))
    state.make()
    with state.lock():
        observer("issuing certificates")
        ca = mesh_ca.CA.load_or_create(state.ca_dir)
        for cfg in configs.values():
            write_proxy(state, cfg, ca, cert_lifetime)
        state.save_resources(resources)
        state.save_mesh({"version": 1, "source": [str(Path(p).resolve()) for p in paths],
                         "gateways": {k: g.address for k, g in mesh.gateways.items()}, "certLifetime": cert_lifetime})
        state.save_plan(plan(state, configs, cert_lifetime))
        start_supervisor(state)
    try:
        wait_ready(state, configs, timeout, observer)
    except (MeshctlError, KeyboardInterrupt) as e:
        # a mesh that did not come up is not left half running: stop what started, keep the logs
        stop_all(state)
        if isinstance(e, MeshctlError):
            e.hint = (f"{e.hint}; " if e.hint else "") + \
                f"everything it started was stopped; its logs stay in {state.dir} until the next up or down"
        raise
    return UpResult(str(state.dir), len(configs), sum(1 for c in configs.values() if c.app),
                    time.monotonic() - started, mesh.warnings, [i for c in configs.values() for i in c.ingress])


# --- apply / delete ------------------------------------------------------------------------------------

@dataclass
class ApplyResult:
    changes: list               # [(origin, verb)] verb: created | configured | unchanged | deleted | not found
    proxies_updated: list
    proxies_started: list
    proxies_stopped: list
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"changes": [{"resource": origin, "result": verb} for origin, verb in self.changes],
                "proxiesUpdated": self.proxies_updated, "proxiesStarted": self.proxies_started,
                "proxiesStopped": self.proxies_stopped, "warnings": self.warnings}


def _running(state: State) -> dict:
    info = require(state)
    if not supervisor_alive(state):
        raise ClusterError(f"the local mesh in {state.dir} is not running (its supervisor stopped)",
                           hint="start it again with 'meshctl local up DIR' (it cleans up first)")
    return info


class Conflict(ClusterError):
    """The resource changed since it was read (its version moved on)."""


def version_key(r: Resource) -> str:
    return "/".join(r.key)


def _merge(old: list[Resource], add: list[Resource], remove: list[Resource],
           versions: dict) -> tuple[list[Resource], list[tuple[Resource, str]]]:
    """The resources after the change, and what happened to each given one; `versions` (version
    key → version) moves on for each resource created or configured."""
    by_key = {r.key: r for r in old}
    changes = []
    for r in add:
        prev = by_key.get(r.key)
        verb = "created" if prev is None else ("unchanged" if _same(prev.body, r.body) else "configured")
        changes.append((r, verb))
        by_key[r.key] = r
        if verb != "unchanged":
            vk = version_key(r)
            versions[vk] = int(versions.get(vk, 0)) + 1
    for r in remove:
        verb = "deleted" if by_key.pop(r.key, None) is not None else "not found"
        changes.append((r, verb))
    return list(by_key.values()), changes


def _same(a: dict, b: dict) -> bool:
    def clean(body):
        meta = dict(body.get("metadata") or {})
        for k in ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields"):
            meta.pop(k, None)
        return {**body, "metadata": meta}

    return clean(a) == clean(b)


def change(state_dir: str, add: list[Resource] = (), remove: list[Resource] = (), timeout: float = 30.0,
           observer: Observer = quiet, expect: Optional[dict] = None) -> ApplyResult:
    """Apply (`add`) or delete (`remove`) resources on the running mesh. Nothing is written when a
    changed proxy's configuration fails `envoy --mode validate` (InputError naming the resource).
    `expect` (version key → version) makes it a compare-and-swap: Conflict when one moved on."""
    state = State(state_dir)
    check_schemas(list(add))
    with state.lock():
        info = _running(state)
        old = state.resources()
        versions = dict(state.resource_versions())
        for vk, want in (expect or {}).items():
            if int(versions.get(vk, 0)) != int(want):
                raise Conflict(f"{vk} changed since it was read")
        new, changes = _merge(old, add, remove, versions)
        gw = dict(info.get("gateways") or {})
        _, old_configs = render(old, gw)
        for key, addr in gateway_addresses([r for r in new if f"{r.name}.{r.namespace}" not in gw or r.kind != "Gateway"],
                                           state_dir).items():
            gw.setdefault(key, addr)
        mesh, configs = render(new, gw)
        changed = {key: cfg for key, cfg in configs.items()
                   if key not in old_configs or files_on_disk(state, key) != cfg.files}
        if changed:
            observer(f"validating {len(changed)} proxy configuration(s) with envoy --mode validate")
            errors = validate(changed)
            if any(errors.values()):
                refuse(errors, culprit(old, [r for r, v in changes if v in ("created", "configured")], gw,
                                       [k for k, v in errors.items() if v]))
        started = [k for k in configs if k not in old_configs]
        stopped = [k for k in old_configs if k not in configs]
        if started:
            check_inotify({k: configs[k] for k in started})
        updated = [k for k in changed if k not in started]
        lifetime = float(info.get("certLifetime") or mesh_ca.DEFAULT_LIFETIME)
        if started:
            ca = mesh_ca.CA.load_or_create(state.ca_dir)
            for key in started:
                write_proxy(state, configs[key], ca, lifetime)
        if updated:
            push(state, {k: configs[k] for k in updated}, {k: old_configs[k] for k in updated}, timeout)
        state.save_resources(new, versions)
        info["gateways"] = {k: g.address for k, g in mesh.gateways.items()}
        state.save_mesh(info)
        replan(state, plan(state, configs, lifetime))
        for key in stopped:
            shutil.rmtree(state.proxy_dir(key), ignore_errors=True)
    if started:
        wait_ready(state, {k: configs[k] for k in started}, timeout, observer)
    return ApplyResult([(r.origin, v) for r, v in changes], sorted(updated), sorted(started), sorted(stopped),
                       mesh.warnings)


# --- what other commands read: proxies and their admin addresses -------------------------------------

def is_running(state_dir: str) -> bool:
    state = State(state_dir)
    return state.exists() and supervisor_alive(state)


def configs_of(state: State) -> dict[str, ProxyConfig]:
    """The running mesh's proxies, rendered from its stored resources."""
    info = state.mesh()
    _, configs = render(state.resources(), info.get("gateways") or {})
    return configs


def proxy_targets(state_dir: str, namespace: Optional[str] = None) -> list:
    """proxy-status targets for the local mesh's proxies (all namespaces when None)."""
    from meshctl.proxy.status import ProxyTarget

    out = []
    for key, cfg in configs_of(State(state_dir)).items():
        if namespace is None or cfg.namespace == namespace:
            out.append(ProxyTarget(name=key, address=cfg.admin, namespace=cfg.namespace, kind=cfg.kind))
    return out


def admin_of(state_dir: str, name: str, namespace: Optional[str] = None) -> str:
    """The admin address of a local proxy named NAME or NAME.NAMESPACE."""
    configs = configs_of(State(state_dir))
    key = name if name in configs else f"{name}.{namespace or 'default'}"
    if key not in configs:
        candidates = [k for k in configs if k.split(".")[0] == name]
        if len(candidates) == 1:
            key = candidates[0]
        else:
            raise InputError(f"no proxy {name!r} in the local mesh", hint=f"proxies: {', '.join(sorted(configs))}")
    return configs[key].admin


# --- status, logs, down ---------------------------------------------------------------------------------

def _proxy_entry(cfg: ProxyConfig, row, rec: dict) -> dict:
    entry = {"name": cfg.name, "namespace": cfg.namespace, "kind": cfg.kind, "status": row.status,
             "admin": cfg.admin, "pid": rec.get("pid") if rec.get("running") else None,
             "restarts": rec.get("restarts", 0), "lastExit": rec.get("lastExit"),
             "reasons": row.reasons}
    if cfg.kind == "sidecar":
        entry["inbound"] = cfg.inbound
        entry["identity"] = cfg.identity
    return entry


def _workload_entry(cfg: ProxyConfig, rec: dict) -> dict:
    return {"name": cfg.name, "namespace": cfg.namespace,
            "address": f"{cfg.address}:{cfg.app['port']}" if cfg.app.get("port") else cfg.address,
            "pid": rec.get("pid") if rec.get("running") else None,
            "status": "Running" if rec.get("running") else ("Failed" if rec.get("gaveUp") else "Restarting" if rec else "Pending"),
            "restarts": rec.get("restarts", 0), "lastExit": rec.get("lastExit")}


def status(state_dir: str, timeout: float = 2.0) -> dict:
    """The documented shape of `local status -o json`: stateDir, running, proxies (proxy-status's
    vocabulary), ingress, workloads."""
    from meshctl.proxy import status as pstatus

    state = State(state_dir)
    require(state)
    configs = configs_of(state)
    pids = (state.pids().get("processes") or {})
    targets = [pstatus.ProxyTarget(name=k, address=c.admin, namespace=c.namespace, kind=c.kind) for k, c in configs.items()]
    rows = {r.name: r for r in pstatus.run(targets, timeout=timeout)}
    proxies, ingress, workloads = [], [], []
    for key, cfg in configs.items():
        proxies.append(_proxy_entry(cfg, rows[key], pids.get(f"proxy/{key}") or {}))
        ingress.extend(cfg.ingress)
        if cfg.app:
            workloads.append(_workload_entry(cfg, pids.get(f"app/{key}") or {}))
    return {"stateDir": str(state.dir), "running": supervisor_alive(state), "proxies": proxies,
            "ingress": ingress, "workloads": workloads}


def log_path(state_dir: str, name: str, what: str = "access") -> Path:
    """The file `meshctl local logs NAME` shows: a proxy's access log (default), its Envoy log,
    or its workload's output. NAME is NAME or NAME.NAMESPACE."""
    state = State(state_dir)
    if not state.exists():
        raise no_mesh(state)
    keys = sorted(p.name for p in (state.dir / "proxies").iterdir()) if (state.dir / "proxies").is_dir() else []
    key = name if name in keys else next((k for k in keys if k.split(".")[0] == name and k == f"{name}.default"), None) \
        or next((k for k in keys if k.split(".")[0] == name), None)
    if key is None:
        raise InputError(f"no proxy or workload named {name!r} in the local mesh",
                         hint=f"names: {', '.join(keys)}" if keys else "the mesh has no proxies")
    if what == "app":
        path = state.workload_dir(key) / "output.log"
        if not path.parent.is_dir():
            raise InputError(f"{key} runs no workload process (no {model.COMMAND_ANNOTATION} annotation)",
                             hint=f"its proxy's access log: meshctl local logs {key}")
        return path
    return state.proxy_dir(key) / ("envoy.log" if what == "envoy" else "access.log")


def read_log(path: Path, tail: Optional[int] = None, follow: bool = False, poll: float = 0.2) -> Iterator[bytes]:
    """The contents of a log (its last `tail` lines), then with `follow` what is appended to it,
    as it comes; a log that does not exist yet is waited for when following, else empty."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        if not follow:
            return
        fh = None
    try:
        if fh is not None:
            data = fh.read()
            if tail is not None:
                data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail > 0 else b""
            yield data
        while follow:
            if fh is None:
                try:
                    fh = open(path, "rb")
                except FileNotFoundError:
                    time.sleep(poll)
                    continue
            chunk = fh.read()
            if chunk:
                yield chunk
            else:
                time.sleep(poll)
    finally:
        if fh is not None:
            fh.close()


@dataclass
class DownResult:
    state_dir: str
    was_running: bool
    stopped: int
    killed: list

    def to_dict(self) -> dict:
        return {"stateDir": self.state_dir, "wasRunning": self.was_running, "stopped": self.stopped,
                "killed": self.killed}


def down(state_dir: str) -> DownResult:
    state = State(state_dir)
    if not state.dir.exists() or not state.is_state():
        return DownResult(str(state.dir), False, 0, [])
    procs = state.pids().get("processes") or {}
    running = sum(1 for r in procs.values() if alive(r.get("pid"), r.get("started")))
    was = supervisor_alive(state)
    killed = stop_all(state)
    state.remove()
    return DownResult(str(state.dir), was, running, killed)

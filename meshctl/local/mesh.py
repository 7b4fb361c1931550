"""`meshctl local` end to end: load → model → render → validate → write → run, and back.

    up(dir)          analyze (by the caller), render every proxy, prove each configuration with
                     `envoy --mode validate`, issue certificates, start the supervisor, wait
                     until every proxy is LIVE and SYNCED and every workload listens
    apply(files)     merge resources into the running mesh; only proxies whose configuration
                     changed get new files; nothing is written when Envoy would reject one
    delete(files)    the same, removing resources
    status()         each proxy's proxy-status and each workload's process
    down()           stop every process by PID and remove the state

Configuration reaches running proxies through files (Envoy's path_config_source), each written
to a temporary name and renamed into place: clusters first, then (once every running proxy has
them) listeners and routes, then clusters that are no longer used are removed — so a route
never points at a cluster its proxy does not have yet, and no request fails on an update.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from meshctl.errors import ClusterError, InputError, MeshctlError
from meshctl.local import ca as mesh_ca
from meshctl.local import envoy, model, translate
from meshctl.local.translate import xds
from meshctl.local.state import State, alive, read_json, write_json
from meshctl.resources import Resource, ResourceSet

Observer = Callable[[str], None]

SYNC_FILTER = (r"^(server\.state|cluster_manager\.cds\.version_text|listener_manager\.lds\.version_text"
               r"|http\..*\.rds\..*\.version_text|cluster_manager\.cds\.update_rejected"
               r"|listener_manager\.lds\.update_rejected)$")


def _quiet(_: str) -> None:
    pass


# --- analyze first ------------------------------------------------------------------------------

def preflight(paths: list[str]):
    """`meshctl analyze` over the mesh's files, as `local up` runs it first. One difference:
    in a local mesh WorkloadEntries are the workloads, so a DestinationRule subset that selects
    WorkloadEntries of its ServiceEntry is not reported as selecting no pods (IST0173)."""
    from dataclasses import replace

    from meshctl.analysis.framework import exceeds
    from meshctl.analysis.pipeline import AnalyzeOptions, analyze

    result = analyze(AnalyzeOptions(paths=paths, recursive=True, output_threshold="Error"))
    suspects = [m for m in result.messages if m.code == "IST0173" and m.resource is not None]
    if not suspects:
        return result
    try:
        mesh_model = model.build(resource_set(load(paths)))
    except InputError:
        return result
    index = translate.Index(mesh_model)
    selected = set()  # (DestinationRule origin, subset) that select WorkloadEntries
    for svc in mesh_model.services.values():
        dr = index.destination_rule(svc)
        for s in (dr.spec.get("subsets") or []) if dr is not None else []:
            if isinstance(s, dict) and any(model.matches(w.labels, model.label_map(s.get("labels")))
                                           for w in svc.workloads):
                selected.add((dr.origin, str(s.get("name"))))
    kept = [m for m in result.messages
            if not (m.code == "IST0173" and m.resource is not None and (m.resource.origin, str(m.args[0])) in selected)]
    return replace(result, messages=kept, failed=exceeds(kept, "Error"))


# --- load and render --------------------------------------------------------------------------

def load(paths: list[str], recursive: bool = True) -> list[Resource]:
    """Resources of files and directories; a document that cannot be read is an InputError."""
    from meshctl.loader import load_paths

    loaded = load_paths(paths, recursive=recursive, default_namespace="default")
    if loaded.problems:
        p = loaded.problems[0]
        raise InputError(str(p), hint="fix the document, then run the command again")
    check_schemas(loaded.resources)
    return loaded.resources


def check_schemas(resources: list[Resource]) -> None:
    """Istio objects must match their schema (as the API server's CRD validation requires):
    the first error is an InputError at the line of the offending field."""
    from meshctl.schemas import istio_kind
    from meshctl.schemas.validate import validate as validate_schema

    for r in resources:
        if istio_kind(r.api_version, r.kind) is None:
            continue
        for err in validate_schema(r):
            where = r.reference(tuple(err.path))
            raise InputError(f"{r.origin}{f' ({where})' if where else ''}: {err.message}",
                             hint="fix the field; Kubernetes would refuse the object too")


def resource_set(resources: list[Resource]) -> ResourceSet:
    return ResourceSet(resources)


def render(resources: list[Resource], gateway_addresses: Optional[dict] = None) -> tuple[model.Mesh, dict]:
    """Model and translate (the cyclic garbage collector paused: many small dicts, no cycles)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        mesh = model.build(resource_set(resources), gateway_addresses)
        return mesh, translate.render(mesh)
    finally:
        if enabled:
            gc.enable()


_DUMMY: dict = {}


def _validation_secrets() -> dict:
    """Secrets of the right shape for `--mode validate` (a throwaway CA, made once)."""
    if not _DUMMY:
        ca = mesh_ca.CA.create()
        leaf = ca.issue("spiffe://cluster.local/ns/default/sa/validate", 3600)
        _DUMMY.update({xds.SECRET_CERT: xds.cert_secret(leaf), xds.SECRET_ROOT: xds.root_secret(ca)})
    return _DUMMY


def validate(configs: dict[str, translate.ProxyConfig]) -> dict[str, Optional[str]]:
    secrets = _validation_secrets()
    return envoy.validate({k: translate.validation_bootstrap(c, secrets) for k, c in configs.items()})


def _refuse(errors: dict[str, Optional[str]], culprit: Optional[Resource] = None) -> None:
    bad = {k: v for k, v in errors.items() if v}
    if not bad:
        return
    key, text = sorted(bad.items())[0]
    what = f"{culprit.origin}" + (f" ({culprit.reference()})" if culprit is not None and culprit.reference() else "") \
        if culprit is not None else f"the configuration of proxy {key}"
    raise InputError(f"Envoy would reject {what}: {text}",
                     hint="nothing was changed; fix the resource and apply again")


# --- files -----------------------------------------------------------------------------------------

def _proxy_files_on_disk(state: State, key: str) -> dict:
    d = state.proxy_dir(key)
    out = {}
    if d.is_dir():
        for p in d.glob("*.json"):
            if p.name in ("bootstrap.json",) or p.name.startswith("sds_"):
                continue
            out[p.name] = read_json(p)
    return out


def _write_proxy(state: State, cfg: translate.ProxyConfig, ca: mesh_ca.CA, lifetime: float) -> None:
    d = state.proxy_dir(cfg.key)
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "sds_default.json", xds.certificate_file(ca.issue(cfg.identity, lifetime)))
    for name in sorted(cfg.files, key=_file_order):
        write_json(d / name, cfg.files[name])
    root = {k: v for k, v in xds.root_secret(ca).items() if k != "@type"}
    write_json(d / "bootstrap.json", {**cfg.bootstrap, "static_resources": {"secrets": [root]}})


def _file_order(name: str) -> int:
    return 0 if name == "cds.json" else 1 if name.startswith("rds_") else 2


def _process_plan(state: State, configs: dict[str, translate.ProxyConfig], lifetime: float) -> dict:
    procs = []
    for key, cfg in configs.items():
        d = state.proxy_dir(key)
        procs.append({"name": f"proxy/{key}", "kind": cfg.kind, "cwd": str(d), "identity": cfg.identity,
                      "argv": envoy.argv(str(d / "bootstrap.json"), str(d / "envoy.log")),
                      "log": str(d / "envoy.log"), "env": {}})
        if cfg.app:
            wd = state.workload_dir(key)
            wd.mkdir(parents=True, exist_ok=True)
            argv = list(cfg.app["argv"])
            if argv and argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            source = cfg.app.get("source")
            cwd = str(Path(source).resolve().parent) if source and source != "-" and Path(source).exists() else os.getcwd()
            w = cfg.workload
            proxy_url = f"http://{cfg.address}:{model.OUTBOUND_PORT}"
            env = {"HOST": cfg.address, "PORT": str(cfg.app["port"] or ""), "HTTP_PROXY": proxy_url,
                   "http_proxy": proxy_url, "NO_PROXY": "", "no_proxy": "", "POD_NAME": w.name,
                   "POD_NAMESPACE": w.namespace, "SERVICE_ACCOUNT": w.service_account, "PYTHONUNBUFFERED": "1"}
            procs.append({"name": f"app/{key}", "kind": "app", "cwd": cwd, "argv": argv,
                          "log": str(wd / "output.log"), "env": env, "address": cfg.address, "port": cfg.app["port"]})
    return {"certLifetime": lifetime, "processes": procs}


def _bindable(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as Envoy binds (SO_REUSEADDR): connections in TIME_WAIT do not hold the port, a listener does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


CLAIMS_MAX_AGE = 120.0  # a claim without a running mesh behind it is forgotten after this


def _claims_path() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"meshctl-local-{os.getuid()}-addresses.json"


def _gateway_addresses(resources: list[Resource], state_dir: Optional[str] = None) -> dict:
    """Addresses for the gateways without a `local.meshctl.io/address` annotation: the first of
    127.0.100.0/24 that no workload declares, nothing on this machine listens on, and no other
    local mesh of this user has claimed (a claims file under a lock: two meshes starting at once
    never pick the same address)."""
    import fcntl
    import ipaddress
    import json

    first = model.build(resource_set(resources))
    wanted = {k: g for k, g in first.gateways.items() if model.ADDRESS_ANNOTATION not in g.resource.annotations}
    if not wanted:
        return {}
    taken = {w.address for w in first.workloads.values()}
    taken |= {g.address for g in first.gateways.values() if model.ADDRESS_ANNOTATION in g.resource.annotations}
    owner = str(Path(state_dir).absolute()) if state_dir else ""
    path = _claims_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            claims = json.loads(os.read(fd, 1 << 20) or b"{}")
        except ValueError:
            claims = {}
        now = time.time()
        live = {a: c for a, c in claims.items() if isinstance(c, dict) and (
            now - float(c.get("at", 0)) < CLAIMS_MAX_AGE or (Path(c.get("state", "")) / "mesh.json").exists())}
        out: dict = {}
        candidates = (str(a) for a in model.GATEWAY_NET.hosts())
        for key, g in wanted.items():
            ports = [model.ADMIN_PORT] + [model.gateway_listen_port(s["port"]["number"]) for s in g.servers
                                          if isinstance(s.get("port"), dict) and isinstance(s["port"].get("number"), int)]
            for addr in candidates:
                if addr in taken or (addr in live and live[addr].get("state") != owner):
                    continue
                if ipaddress.ip_address(addr) == ipaddress.ip_address("127.0.100.0"):
                    continue
                if all(_bindable(addr, p) for p in ports):
                    out[key] = addr
                    taken.add(addr)
                    live[addr] = {"state": owner, "at": now}
                    break
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(live).encode())
    finally:
        os.close(fd)
    return out


INOTIFY_LIMIT = "/proc/sys/fs/inotify/max_user_instances"
INOTIFY_HINT = "raise the limit, e.g. sudo sysctl fs.inotify.max_user_instances=1024 (Envoy watches each configuration file)"


def inotify_in_use() -> int:
    """inotify instances held by this user's processes (Linux; 0 where /proc cannot tell)."""
    uid, n = os.getuid(), 0
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                try:
                    if os.readlink(fd.path) == "anon_inode:inotify":
                        n += 1
                except OSError:
                    continue
        except OSError:
            continue
    return n


def _check_inotify(configs: dict) -> None:
    """Each proxy watches its files with one inotify instance per subscription (clusters,
    listeners, its certificate, each route configuration); a user has 128 by default. Refuse up
    front, with the fix, rather than let Envoy abort at start."""
    try:
        with open(INOTIFY_LIMIT) as fh:
            limit = int(fh.read().strip())
    except (OSError, ValueError):
        return
    needed = sum(3 + len(c.route_names) for c in configs.values())
    used = inotify_in_use()
    if used + needed > limit:
        raise InputError(f"the mesh's {len(configs)} proxies need {needed} inotify instances and {used} of this "
                         f"user's {limit} are in use", hint=INOTIFY_HINT)


def _check_free(configs: dict) -> None:
    """Every address:port the mesh will listen on is free (InputError naming the first that is not)."""
    for key, cfg in configs.items():
        ports = [model.ADMIN_PORT]
        if cfg.kind == "sidecar":
            ports += [model.OUTBOUND_PORT, model.INBOUND_PORT]
            if cfg.app and cfg.app.get("port"):
                ports.append(cfg.app["port"])
        for port in ports:
            if not _bindable(cfg.address, port):
                raise InputError(f"{cfg.address}:{port} ({key}) is already in use on this machine",
                                 hint="another local mesh or program listens there: stop it, or give the "
                                      "WorkloadEntry another loopback address")


# --- the supervisor ---------------------------------------------------------------------------------

def supervisor_alive(state: State) -> bool:
    sup = (state.pids().get("supervisor") or {})
    return alive(sup.get("pid"), sup.get("started"))


def _start_supervisor(state: State) -> int:
    log = open(state.supervisor_log, "ab")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "meshctl.local.supervisor", str(state.dir)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                    [str(Path(__file__).resolve().parents[2])] + [p for p in sys.path if p])))
    finally:
        log.close()
    return proc.pid


def _stop_all(state: State, timeout: float = 10.0) -> list[str]:
    """Stop the supervisor (which stops its children), then anything it recorded that still runs.
    Returns the names of processes that had to be killed here."""
    pids = state.pids()
    sup = pids.get("supervisor") or {}
    if alive(sup.get("pid"), sup.get("started")):
        try:
            os.kill(sup["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(sup.get("pid"), sup.get("started")):
            time.sleep(0.05)
        if alive(sup.get("pid"), sup.get("started")):
            os.kill(sup["pid"], signal.SIGKILL)
    killed = []
    for name, rec in (state.pids().get("processes") or {}).items():
        pid, started = rec.get("pid"), rec.get("started")
        if alive(pid, started):
            killed.append(name)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and alive(pid, started):
                time.sleep(0.05)
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    return killed


# --- waiting ----------------------------------------------------------------------------------------

def _stats(admin: str, timeout: float = 1.0) -> Optional[dict]:
    from urllib.parse import quote

    try:
        with urllib.request.urlopen(f"http://{admin}/stats?format=json&filter={quote(SYNC_FILTER)}",
                                    timeout=timeout) as r:
            import json

            data = json.loads(r.read())
    except (OSError, ValueError):
        return None
    return {s["name"]: s.get("value") for s in data.get("stats", []) if "name" in s}


def proxy_synced(cfg: translate.ProxyConfig, stats: Optional[dict]) -> bool:
    if not stats or stats.get("server.state") != 0:
        return False
    if stats.get("cluster_manager.cds.version_text") != cfg.files["cds.json"]["version_info"]:
        return False
    if stats.get("listener_manager.lds.version_text") != cfg.files["lds.json"]["version_info"]:
        return False
    for name in cfg.route_names:
        want = cfg.files[f"rds_{name}.json"]["version_info"]
        have = [v for k, v in stats.items() if k.endswith(f".rds.{name}.version_text")]
        if not have or any(v != want for v in have):
            return False
    return True


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_ready(state: State, configs: dict[str, translate.ProxyConfig], timeout: float,
               observer: Observer = _quiet, check: Optional[Callable[[translate.ProxyConfig, Optional[dict]], bool]] = None) -> float:
    """Until every proxy is LIVE with the rendered versions and every workload listens."""
    check = check or proxy_synced
    start = time.monotonic()
    deadline = start + timeout
    pending = set(configs)
    apps = {k: c for k, c in configs.items() if c.app and c.app.get("port")}
    last = None
    while True:
        for key in sorted(pending):
            if check(configs[key], _stats(configs[key].admin)):
                pending.discard(key)
        waiting_apps = [k for k, c in apps.items() if not _listening(c.address, c.app["port"])]
        for k in list(apps):
            if k not in waiting_apps:
                apps.pop(k)
        done = len(configs) - len(pending)
        text = f"{done}/{len(configs)} proxies SYNCED" + (f", {len(apps)} workload(s) starting" if apps else "")
        if text != last:
            observer(text)
            last = text
        if not pending and not apps:
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            break
        if not supervisor_alive(state):
            raise ClusterError("the local mesh's supervisor exited", hint=f"see {state.supervisor_log}")
        time.sleep(0.05)
    names = sorted(pending) + [f"workload {k}" for k in sorted(apps)]
    detail = _why_not_ready(state, sorted(pending)[:1] + [f"app/{k}" for k in sorted(apps)][:1])
    raise ClusterError(f"not ready after {timeout:g}s: {', '.join(names[:5])}" + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                       + (f" ({detail})" if detail else ""),
                       hint="see 'meshctl local status' and 'meshctl local logs NAME --envoy|--app'")


def _why_not_ready(state: State, keys: list[str]) -> str:
    for key in keys:
        if key.startswith("app/"):
            path = state.workload_dir(key[4:]) / "output.log"
        else:
            path = state.proxy_dir(key) / "envoy.log"
        try:
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            continue
        if any("inotify" in ln for ln in lines):
            return f"Envoy of {key} ran out of inotify instances: {INOTIFY_HINT}"
        if lines:
            return f"{path.name} of {key.removeprefix('app/')}: {lines[-1][-200:]}"
    return ""


# --- up ---------------------------------------------------------------------------------------------

@dataclass
class UpResult:
    state_dir: str
    proxies: int
    workloads: int
    seconds: float
    warnings: list = field(default_factory=list)
    status: Optional[dict] = None


def cleanup_dead(state: State) -> bool:
    """A state whose supervisor is gone: stop what is left by PID and remove it. True if it did."""
    if not state.exists() and not state.pids_file.exists():
        return False
    if supervisor_alive(state):
        return False
    _stop_all(state)
    state.remove()
    return True


def up(paths: list[str], state_dir: str, cert_lifetime: float = mesh_ca.DEFAULT_LIFETIME, timeout: float = 60.0,
       observer: Observer = _quiet) -> UpResult:
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
    mesh, configs = render(resources, _gateway_addresses(resources, state_dir))
    _check_free(configs)
    _check_inotify(configs)
    if not configs:
        raise InputError(f"{', '.join(paths)} declares no workload (WorkloadEntry) and no Gateway",
                         hint="see docs/local.md for how a local mesh is declared")
    observer(f"validating {len(configs)} proxy configurations with envoy --mode validate")
    _refuse(validate(configs))
    state.dir.mkdir(parents=True, exist_ok=True)
    with state.lock():
        observer("issuing certificates")
        ca = mesh_ca.CA.load_or_create(state.ca_dir)
        for cfg in configs.values():
            _write_proxy(state, cfg, ca, cert_lifetime)
        state.save_resources(resources)
        state.save_mesh({"version": 1, "source": [str(Path(p).resolve()) for p in paths],
                         "gateways": {k: g.address for k, g in mesh.gateways.items()}, "certLifetime": cert_lifetime})
        write_json(state.plan_file, _process_plan(state, configs, cert_lifetime))
        pid = _start_supervisor(state)
        deadline = time.monotonic() + 10
        while not supervisor_alive(state):
            if time.monotonic() > deadline:
                raise ClusterError("the local mesh's supervisor did not start", hint=f"see {state.supervisor_log}")
            try:
                waited = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                waited = (0, 0)
            if waited[0] == pid:
                raise ClusterError("the local mesh's supervisor exited at start", hint=f"see {state.supervisor_log}")
            time.sleep(0.02)
    try:
        wait_ready(state, configs, timeout, observer)
    except (MeshctlError, KeyboardInterrupt) as e:
        # a mesh that did not come up is not left half running: stop what started, keep the logs
        _stop_all(state)
        if isinstance(e, MeshctlError):
            e.hint = (f"{e.hint}; " if e.hint else "") + \
                f"everything it started was stopped; its logs stay in {state.dir} until the next up or down"
        raise
    return UpResult(str(state.dir), len(configs), sum(1 for c in configs.values() if c.app),
                    time.monotonic() - started, mesh.warnings)


# --- apply / delete ------------------------------------------------------------------------------------

@dataclass
class ApplyResult:
    changes: list               # [(origin, verb)] verb: created | configured | unchanged | deleted | not found
    proxies_updated: list
    proxies_started: list
    proxies_stopped: list
    warnings: list = field(default_factory=list)


def _running(state: State) -> dict:
    info = state.mesh()
    if not info:
        raise InputError(f"no local mesh in {state.dir}", hint="start one with 'meshctl local up DIR'")
    if not supervisor_alive(state):
        raise ClusterError(f"the local mesh in {state.dir} is not running (its supervisor stopped)",
                           hint="start it again with 'meshctl local up DIR' (it cleans up first)")
    return info


class Conflict(ClusterError):
    """The resource changed since it was read (its version moved on)."""


def version_key(r: Resource) -> str:
    return "/".join(r.key)


def change(state_dir: str, add: list[Resource] = (), remove: list[Resource] = (), timeout: float = 30.0,
           observer: Observer = _quiet, expect: Optional[dict] = None) -> ApplyResult:
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
        new = list(by_key.values())
        gw = dict(info.get("gateways") or {})
        _, old_configs = render(old, gw)
        for key, addr in _gateway_addresses([r for r in new if f"{r.name}.{r.namespace}" not in gw or r.kind != "Gateway"],
                                            state_dir).items():
            gw.setdefault(key, addr)
        mesh, configs = render(new, gw)
        changed = {}
        for key, cfg in configs.items():
            if key not in old_configs or _proxy_files_on_disk(state, key) != cfg.files:
                changed[key] = cfg
        if changed:
            observer(f"validating {len(changed)} proxy configuration(s) with envoy --mode validate")
            errors = validate(changed)
            if any(errors.values()):
                culprit = _culprit(old, [r for r, v in changes if v in ("created", "configured")], gw,
                                   [k for k, v in errors.items() if v])
                _refuse(errors, culprit)
        started = [k for k in configs if k not in old_configs]
        stopped = [k for k in old_configs if k not in configs]
        if started:
            _check_inotify({k: configs[k] for k in started})
        updated = [k for k in changed if k not in started]
        lifetime = float(info.get("certLifetime") or mesh_ca.DEFAULT_LIFETIME)
        if started:
            ca = mesh_ca.CA.load_or_create(state.ca_dir)
            for key in started:
                _write_proxy(state, configs[key], ca, lifetime)
        if updated:
            _push(state, {k: configs[k] for k in updated}, {k: old_configs[k] for k in updated}, timeout, observer)
        state.save_resources(new, versions)
        info["gateways"] = {k: g.address for k, g in mesh.gateways.items()}
        state.save_mesh(info)
        plan = _process_plan(state, configs, lifetime)
        if plan != state.plan():
            write_json(state.plan_file, plan)
            sup = state.pids().get("supervisor") or {}
            try:
                os.kill(sup.get("pid"), signal.SIGHUP)
            except (ProcessLookupError, TypeError):
                pass
        for key in stopped:
            shutil.rmtree(state.proxy_dir(key), ignore_errors=True)
    if started:
        wait_ready(state, {k: configs[k] for k in started}, timeout, observer)
    return ApplyResult([(r.origin, v) for r, v in changes], sorted(updated), sorted(started), sorted(stopped),
                       mesh.warnings)


def _same(a: dict, b: dict) -> bool:
    def clean(body):
        meta = dict(body.get("metadata") or {})
        for k in ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields"):
            meta.pop(k, None)
        return {**body, "metadata": meta}

    return clean(a) == clean(b)


def _culprit(old: list[Resource], applied: list[Resource], gw: dict, proxies: list[str]) -> Optional[Resource]:
    """The first applied resource that alone makes a proxy's configuration invalid."""
    if len(applied) == 1:
        return applied[0]
    base = {r.key: r for r in old}
    for r in applied:
        trial = dict(base)
        trial[r.key] = r
        try:
            _, configs = render(list(trial.values()), gw)
        except InputError:
            return r
        errors = validate({k: configs[k] for k in proxies if k in configs})
        if any(errors.values()):
            return r
    return None


def _push(state: State, new: dict, old: dict, timeout: float, observer: Observer) -> None:
    """New files for running proxies: clusters (old ones kept), then listeners and routes, then
    the clusters no longer used are dropped — each step once every proxy has the previous one."""
    def cluster_names(cfg):
        return {c["name"] for c in cfg.files["cds.json"]["resources"]}

    staged = {}
    for key, cfg in new.items():
        gone = cluster_names(old[key]) - cluster_names(cfg)
        if gone:
            union = cfg.files["cds.json"]["resources"] + [c for c in old[key].files["cds.json"]["resources"] if c["name"] in gone]
            staged[key] = xds.discovery(union)
        else:
            staged[key] = cfg.files["cds.json"]
    for key, cds in staged.items():
        d = state.proxy_dir(key)
        if read_json(d / "cds.json") != cds:
            write_json(d / "cds.json", cds)
    _wait_versions(state, new, timeout, lambda key, s: s.get("cluster_manager.cds.version_text") == staged[key]["version_info"],
                   "clusters", observer)
    for key, cfg in new.items():
        d = state.proxy_dir(key)
        for name in sorted(cfg.files):
            if name == "cds.json":
                continue
            if read_json(d / name) != cfg.files[name]:
                write_json(d / name, cfg.files[name])
    _wait_versions(state, new, timeout, lambda key, s: _routes_and_listeners(new[key], s), "listeners and routes", observer)
    final = [k for k in new if staged[k] is not new[k].files["cds.json"]]
    for key in final:
        write_json(state.proxy_dir(key) / "cds.json", new[key].files["cds.json"])
    if final:
        _wait_versions(state, {k: new[k] for k in final}, timeout,
                       lambda key, s: s.get("cluster_manager.cds.version_text") == new[key].files["cds.json"]["version_info"],
                       "clusters", observer)


def _routes_and_listeners(cfg: translate.ProxyConfig, stats: dict) -> bool:
    if stats.get("listener_manager.lds.version_text") != cfg.files["lds.json"]["version_info"]:
        return False
    for name in cfg.route_names:
        want = cfg.files[f"rds_{name}.json"]["version_info"]
        have = [v for k, v in stats.items() if k.endswith(f".rds.{name}.version_text")]
        if have and any(v != want for v in have):
            return False
    return True


def _wait_versions(state: State, configs: dict, timeout: float, ok, what: str, observer: Observer) -> None:
    deadline = time.monotonic() + timeout
    pending = set(configs)
    while pending:
        for key in sorted(pending):
            stats = _stats(configs[key].admin)
            if stats is None:  # not running (crashed, restarting): it reads the files when it starts
                pending.discard(key)
            elif ok(key, stats):
                pending.discard(key)
            elif stats.get("cluster_manager.cds.update_rejected") or stats.get("listener_manager.lds.update_rejected"):
                pass
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{', '.join(sorted(pending))} did not take the new {what} in {timeout:g}s",
                               hint="see 'meshctl proxy-status --local' for what it rejected")
        time.sleep(0.05)


# --- what other commands read: proxies and their admin addresses -------------------------------------

def is_running(state_dir: str) -> bool:
    state = State(state_dir)
    return state.exists() and supervisor_alive(state)


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

def configs_of(state: State) -> dict[str, translate.ProxyConfig]:
    info = state.mesh()
    _, configs = render(state.resources(), info.get("gateways") or {})
    return configs


def status(state_dir: str, timeout: float = 2.0) -> dict:
    from meshctl.proxy import status as pstatus

    state = State(state_dir)
    info = state.mesh()
    if not info:
        raise InputError(f"no local mesh in {state.dir}", hint="start one with 'meshctl local up DIR'")
    configs = configs_of(state)
    pids = (state.pids().get("processes") or {})
    targets = [pstatus.ProxyTarget(name=k, address=c.admin, namespace=c.namespace, kind=c.kind) for k, c in configs.items()]
    rows = {r.name: r for r in pstatus.run(targets, timeout=timeout)}
    proxies, ingress, workloads = [], [], []
    for key, cfg in configs.items():
        row = rows[key]
        rec = pids.get(f"proxy/{key}") or {}
        entry = {"name": cfg.name, "namespace": cfg.namespace, "kind": cfg.kind, "status": row.status,
                 "admin": cfg.admin, "pid": rec.get("pid") if rec.get("running") else None,
                 "restarts": rec.get("restarts", 0), "lastExit": rec.get("lastExit"),
                 "reasons": row.reasons}
        if cfg.kind == "sidecar":
            entry["inbound"] = cfg.inbound
            entry["identity"] = cfg.identity
        proxies.append(entry)
        ingress.extend(cfg.ingress)
        if cfg.app:
            arec = pids.get(f"app/{key}") or {}
            workloads.append({"name": cfg.name, "namespace": cfg.namespace,
                              "address": f"{cfg.address}:{cfg.app['port']}" if cfg.app.get("port") else cfg.address,
                              "pid": arec.get("pid") if arec.get("running") else None,
                              "status": "Running" if arec.get("running") else ("Failed" if arec.get("gaveUp") else "Restarting" if arec else "Pending"),
                              "restarts": arec.get("restarts", 0), "lastExit": arec.get("lastExit")})
    return {"stateDir": str(state.dir), "running": supervisor_alive(state), "proxies": proxies,
            "ingress": ingress, "workloads": workloads}


def log_path(state_dir: str, name: str, what: str = "access") -> Path:
    """The file `meshctl local logs NAME` shows: a proxy's access log (default), its Envoy log,
    or its workload's output. NAME is NAME or NAME.NAMESPACE."""
    state = State(state_dir)
    if not state.exists():
        raise InputError(f"no local mesh in {state.dir}", hint="start one with 'meshctl local up DIR'")
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


@dataclass
class DownResult:
    state_dir: str
    was_running: bool
    stopped: int
    killed: list


def down(state_dir: str) -> DownResult:
    state = State(state_dir)
    if not state.dir.exists() or not state.is_state():
        return DownResult(str(state.dir), False, 0, [])
    procs = state.pids().get("processes") or {}
    running = sum(1 for r in procs.values() if alive(r.get("pid"), r.get("started")))
    was = supervisor_alive(state)
    killed = _stop_all(state)
    state.remove()
    return DownResult(str(state.dir), was, running, killed)

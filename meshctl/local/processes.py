"""The processes of a local mesh, seen from the commands: the plan the supervisor runs (a proxy per
workload and gateway, and each workload's own command with its environment), starting the
supervisor, and stopping everything by PID — checked against each process's start time, so a
reused PID is never hit. The supervisor itself is `meshctl.local.supervisor`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from meshctl.errors import ClusterError
from meshctl.local import envoy, model
from meshctl.local.state import State, alive
from meshctl.local.translate import ProxyConfig


def plan(state: State, configs: dict[str, ProxyConfig], lifetime: float) -> dict:
    """What the supervisor keeps running (plan.json): each proxy's Envoy, each workload's command."""
    procs = []
    for key, cfg in configs.items():
        d = state.proxy_dir(key)
        procs.append({"name": f"proxy/{key}", "kind": cfg.kind, "cwd": str(d), "identity": cfg.identity,
                      "argv": envoy.argv(str(d / "bootstrap.json"), str(d / "envoy.log")),
                      "log": str(d / "envoy.log"), "env": {}})
        if cfg.app:
            procs.append(_app(state, key, cfg))
    return {"certLifetime": lifetime, "processes": procs}


def _app(state: State, key: str, cfg: ProxyConfig) -> dict:
    """A workload's command, run from the directory of the file that declares it, with its
    address, port, sidecar (HTTP_PROXY) and identity in its environment."""
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
    return {"name": f"app/{key}", "kind": "app", "cwd": cwd, "argv": argv,
            "log": str(wd / "output.log"), "env": env, "address": cfg.address, "port": cfg.app["port"]}


def supervisor_alive(state: State) -> bool:
    sup = (state.pids().get("supervisor") or {})
    return alive(sup.get("pid"), sup.get("started"))


def start_supervisor(state: State, timeout: float = 10.0) -> int:
    """Start the supervisor in a session of its own; returns its PID once it has recorded itself
    (ClusterError when it exits or stays silent)."""
    log = open(state.supervisor_log, "ab")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "meshctl.local.supervisor", str(state.dir)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                    [str(Path(__file__).resolve().parents[2])] + [p for p in sys.path if p])))
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while not supervisor_alive(state):
        if time.monotonic() > deadline:
            raise ClusterError("the local mesh's supervisor did not start", hint=f"see {state.supervisor_log}")
        try:
            waited = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            waited = (0, 0)
        if waited[0] == proc.pid:
            raise ClusterError("the local mesh's supervisor exited at start", hint=f"see {state.supervisor_log}")
        time.sleep(0.02)
    return proc.pid


def _terminate(pid: int, started, timeout: float) -> None:
    """SIGTERM, then SIGKILL when it still runs after `timeout` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid, started):
        time.sleep(0.05)
    if alive(pid, started):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_all(state: State, timeout: float = 10.0) -> list[str]:
    """Stop the supervisor (which stops its children), then anything it recorded that still runs.
    Returns the names of processes that had to be killed here."""
    sup = state.pids().get("supervisor") or {}
    if alive(sup.get("pid"), sup.get("started")):
        _terminate(sup["pid"], sup.get("started"), timeout)
    killed = []
    for name, rec in (state.pids().get("processes") or {}).items():
        pid, started = rec.get("pid"), rec.get("started")
        if alive(pid, started):
            killed.append(name)
            _terminate(pid, started, 5)
    return killed


def cleanup_dead(state: State) -> bool:
    """A state whose supervisor is gone: stop what is left by PID and remove it. True if it did."""
    if not state.exists() and not state.pids_file.exists():
        return False
    if supervisor_alive(state):
        return False
    stop_all(state)
    state.remove()
    return True


def replan(state: State, new_plan: dict) -> None:
    """A running mesh's new process plan: written when it changed, and the supervisor told at once."""
    if new_plan == state.plan():
        return
    state.save_plan(new_plan)
    sup = state.pids().get("supervisor") or {}
    try:
        os.kill(sup.get("pid"), signal.SIGHUP)
    except (ProcessLookupError, TypeError):
        pass

"""The supervisor: one background process per local mesh that keeps its processes running.

`meshctl local up` starts it (`python -m meshctl.local.supervisor STATE_DIR`, in its own
session); it then

- starts every process of `plan.json` (proxies and workloads) and records each PID, its start
  time, restarts and last exit in `pids.json`;
- restarts a process that exits (a crashed sidecar or workload), at most 5 times a minute, and
  reports it (`meshctl local status`: restarts and the last exit);
- re-reads `plan.json` when it changes (`local apply` adding or removing workloads and gateways,
  or changing a workload's command), starting, stopping or restarting only what changed —
  never a proxy whose configuration changed: that reaches it through its files;
- re-issues each proxy's leaf certificate when less than half of its lifetime is left and
  writes it as the proxy's SDS secret file (atomically: Envoy picks it up without a restart);
- on SIGTERM (`meshctl local down`) stops every process it started, by PID, and exits.

Children get PR_SET_PDEATHSIG: if the supervisor itself is killed, they stop with it.
"""
from __future__ import annotations

import ctypes
import datetime as _dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from meshctl.local import ca as mesh_ca
from meshctl.local.translate import xds
from meshctl.local.state import State, publish, read_json, start_time, write_json

TICK = 0.1
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


def _log(state: State, text: str) -> None:
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    with open(state.supervisor_log, "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} {text}\n")


def _pdeathsig():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Child:
    def __init__(self, spec: dict):
        self.spec = spec
        self.proc: Optional[subprocess.Popen] = None
        self.started: Optional[str] = None
        self.restarts = 0
        self.recent: list[float] = []
        self.last_exit: Optional[int] = None
        self.given_up = False
        self.next_start = 0.0

    @property
    def name(self) -> str:
        return self.spec["name"]

    def start(self, state: State) -> None:
        spec = self.spec
        log = open(spec["log"], "ab")
        env = dict(os.environ)
        env.update(spec.get("env") or {})
        try:
            self.proc = subprocess.Popen(spec["argv"], cwd=spec.get("cwd") or None, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig,
                                         start_new_session=True)
        except OSError as e:
            log.write(f"meshctl: cannot start {spec['argv'][0]}: {e}\n".encode())
            self.proc = None
            self.last_exit = 127
            self.given_up = True
            _log(state, f"{self.name}: cannot start: {e}")
            return
        finally:
            log.close()
        self.started = start_time(self.proc.pid)
        _log(state, f"{self.name}: started pid {self.proc.pid}")

    def stop(self, timeout: float = 5.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def record(self) -> dict:
        running = self.proc is not None and self.proc.poll() is None
        return {"pid": self.proc.pid if self.proc is not None else None, "started": self.started,
                "running": running, "restarts": self.restarts, "lastExit": self.last_exit,
                "gaveUp": self.given_up, "kind": self.spec.get("kind")}


class Supervisor:
    def __init__(self, state: State):
        self.state = state
        self.children: dict[str, Child] = {}
        self.plan_mtime = None
        self.stopping = False
        self.ca: Optional[mesh_ca.CA] = None
        self.leaves: dict[str, mesh_ca.Leaf] = {}
        self.lifetime = mesh_ca.DEFAULT_LIFETIME
        self.dirty = True

    # --- plan ------------------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            mtime = self.state.plan_file.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self.plan_mtime:
            return
        self.plan_mtime = mtime
        plan = self.state.plan()
        self.lifetime = float(plan.get("certLifetime") or mesh_ca.DEFAULT_LIFETIME)
        wanted = {p["name"]: p for p in plan.get("processes", [])}
        for name in list(self.children):
            if name not in wanted:
                self.children.pop(name).stop()
                _log(self.state, f"{name}: stopped (no longer in the mesh)")
                self.dirty = True
        for name, spec in wanted.items():
            child = self.children.get(name)
            if child is None:
                child = self.children[name] = Child(spec)
                child.start(self.state)
                self.dirty = True
            elif child.spec != spec:
                child.spec = spec
                if spec.get("kind") == "app":  # a workload whose command changed runs the new one
                    child.stop()
                    child.given_up, child.recent = False, []
                    child.start(self.state)
                    _log(self.state, f"{name}: restarted with its new command")
                    self.dirty = True

    # --- processes -------------------------------------------------------------------------------
    def watch(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.given_up:
                continue
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    continue
                child.last_exit = code
                child.proc = None
                child.recent = [t for t in child.recent if now - t < RESTART_WINDOW] + [now]
                self.dirty = True
                if len(child.recent) > MAX_RESTARTS:
                    child.given_up = True
                    _log(self.state, f"{child.name}: exited with {code}; restarted {MAX_RESTARTS} times in a minute, giving up")
                    continue
                _log(self.state, f"{child.name}: exited with {code}; restarting")
                child.next_start = now + min(0.2 * 2 ** (len(child.recent) - 1), 5.0)
            if child.proc is None and now >= child.next_start:
                child.restarts += 1
                child.start(self.state)
                self.dirty = True

    # --- certificates ----------------------------------------------------------------------------
    def rotate(self) -> None:
        for child in self.children.values():
            identity = child.spec.get("identity")
            if not identity:
                continue
            path = Path(child.spec["cwd"]) / "sds_default.json"
            leaf = self.leaves.get(child.name)
            if leaf is None:
                leaf = self._read_leaf(path)
                if leaf is not None:
                    self.leaves[child.name] = leaf
            if leaf is not None and not leaf.needs_rotation():
                continue
            if self.ca is None:
                self.ca = mesh_ca.CA.load_or_create(self.state.ca_dir)
            leaf = self.ca.issue(identity, self.lifetime)
            publish(path, xds.certificate_file(leaf))
            self.leaves[child.name] = leaf
            _log(self.state, f"{child.name}: certificate rotated (serial {leaf.serial:x}, until "
                             f"{leaf.not_after:%H:%M:%S})")

    @staticmethod
    def _read_leaf(path: Path) -> Optional[mesh_ca.Leaf]:
        data = read_json(path)
        try:
            tls = data["resources"][0]["tls_certificate"]
            return mesh_ca.read_leaf(tls["certificate_chain"]["inline_string"], tls["private_key"]["inline_string"])
        except (TypeError, KeyError, IndexError, ValueError):
            return None

    # --- loop ------------------------------------------------------------------------------------
    def save(self) -> None:
        if self.dirty:
            write_json(self.state.pids_file, {"supervisor": {"pid": os.getpid(), "started": start_time(os.getpid())},
                                              "processes": {n: c.record() for n, c in self.children.items()}})
            self.dirty = False

    def run(self) -> int:
        def on_term(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, lambda s, f: setattr(self, "plan_mtime", None))
        _log(self.state, f"supervisor started, pid {os.getpid()}")
        last_rotation_check = 0.0
        while not self.stopping:
            self.reload()
            self.watch()
            now = time.monotonic()
            if now - last_rotation_check >= min(1.0, self.lifetime / 20):
                last_rotation_check = now
                try:
                    self.rotate()
                except Exception as e:  # a failed rotation is retried at the next check
                    _log(self.state, f"certificate rotation failed: {type(e).__name__}: {e}")
            self.save()
            time.sleep(TICK)
        for child in self.children.values():
            child.stop()
        self.dirty = True
        for child in self.children.values():
            child.given_up = True
        self.save()
        _log(self.state, "supervisor stopped")
        return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m meshctl.local.supervisor STATE_DIR\n")
        return 2
    return Supervisor(State(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The state directory of a local mesh (default `.meshctl/local`), every file written atomically
(records with meshctl.files.write_atomic, the files proxies watch with `publish`).

    mesh.json        what runs: source directory, supervisor PID, gateway addresses, settings
    resources.json   the Istio resources the mesh runs on (with their file:line), and versions
    plan.json        the processes the supervisor keeps running (proxies, workloads)
    pids.json        the processes it started: PID, start time, restarts, last exit (by the supervisor)
    ca/              the mesh CA (root certificate and key)
    proxies/NAME.NS/ bootstrap.json, cds.json, lds.json, rds_*.json, sds_*.json, access.log, envoy.log
    workloads/NAME.NS/output.log
    supervisor.log
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Optional

from meshctl.errors import InputError
from meshctl.files import write_atomic
from meshctl.resources import Resource

DEFAULT_DIR = ".meshctl/local"
ENV_DIR = "MESHCTL_LOCAL_STATE"


def default_dir() -> str:
    return os.environ.get(ENV_DIR) or DEFAULT_DIR


def write_json(path: Path, data: Any) -> None:
    """A record of the state directory (mesh.json, plan.json, pids.json, resources.json), replaced
    atomically (meshctl.files.write_atomic: a reader never sees half of it; a failed write is a
    one-line error)."""
    write_atomic(str(path), json.dumps(data, separators=(",", ":")))


def publish(path: Path, data: Any) -> None:
    """A file a proxy watches (cds.json, lds.json, rds_*.json, sds_default.json, bootstrap.json):
    written to a temporary file beside it, then renamed into place — what Envoy's file-based xDS
    reacts to, as one update. Not write_atomic's fsync: these files are rendered again from
    resources.json whenever the mesh starts, and an fsync doubles the cost of each file (about
    1.3 ms more a file measured here), which an apply pays for every proxy it changes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except (OSError, ValueError):
        return default


class State:
    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory).absolute()

    # --- paths ------------------------------------------------------------------------------------
    @property
    def mesh_file(self) -> Path:
        return self.dir / "mesh.json"

    @property
    def plan_file(self) -> Path:
        return self.dir / "plan.json"

    @property
    def pids_file(self) -> Path:
        return self.dir / "pids.json"

    @property
    def resources_file(self) -> Path:
        return self.dir / "resources.json"

    @property
    def ca_dir(self) -> Path:
        return self.dir / "ca"

    def proxy_dir(self, key: str) -> Path:
        return self.dir / "proxies" / key

    def workload_dir(self, key: str) -> Path:
        return self.dir / "workloads" / key

    @property
    def supervisor_log(self) -> Path:
        return self.dir / "supervisor.log"

    def make(self) -> None:
        """The state directory itself; an InputError naming it when it cannot be made."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.dir}: cannot create the state directory: {e.strerror or e}",
                             hint="pass --state-dir a directory you can write") from None

    # --- records ----------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.mesh_file.exists()

    def mesh(self) -> dict:
        return read_json(self.mesh_file, {}) or {}

    def save_mesh(self, data: dict) -> None:
        write_json(self.mesh_file, data)

    def plan(self) -> dict:
        return read_json(self.plan_file, {}) or {}

    def save_plan(self, data: dict) -> None:
        write_json(self.plan_file, data)

    def pids(self) -> dict:
        return read_json(self.pids_file, {}) or {}

    def resources(self) -> list[Resource]:
        """The stored resources, with the file and line they came from."""
        data = read_json(self.resources_file, {}) or {}
        out = []
        for item in data.get("items", []):
            r = Resource.from_dict(item["body"], source=item.get("source"), line=int(item.get("line") or 0),
                                   default_namespace=item.get("namespace"))
            out.append(r)
        return out

    def resource_versions(self) -> dict:
        return (read_json(self.resources_file, {}) or {}).get("versions", {})

    def save_resources(self, resources: list[Resource], versions: Optional[dict] = None) -> None:
        items = [{"body": r.body, "line": r.line, "namespace": r.namespace,
                  "source": os.path.abspath(r.source) if r.source and r.source != "-" else r.source}
                 for r in resources]
        write_json(self.resources_file, {"items": items, "versions": versions or {}})

    ENTRIES = ("mesh.json", "plan.json", "pids.json", "resources.json", "supervisor.log", ".lock",
               "ca", "proxies", "workloads")

    def is_state(self) -> bool:
        return any((self.dir / n).exists() for n in ("mesh.json", "pids.json", "plan.json"))

    def remove(self) -> None:
        """Remove what the mesh wrote here — only that: a directory given by mistake (`--state-dir .`)
        keeps every file that is not the mesh's — and the directory itself once empty."""
        import shutil

        if not self.is_state():
            return
        for name in self.ENTRIES:
            path = self.dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        for leftover in self.dir.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        try:
            self.dir.rmdir()
        except OSError:
            pass

    @contextlib.contextmanager
    def lock(self):
        """One writer at a time (apply, delete, canary, down) on this state directory."""
        import fcntl

        self.make()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


# --- processes by PID ---------------------------------------------------------------------------

def start_time(pid: int) -> Optional[str]:
    """The kernel's start time of a process (field 22 of /proc/PID/stat), to tell a PID we started
    from a later process that reused the number."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def alive(pid: Optional[int], started: Optional[str] = None) -> bool:
    if not pid or pid <= 0:
        return False
    st = start_time(pid)
    if st is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            if fh.read().rpartition(")")[2].split()[0] == "Z":
                return False
    except OSError:
        return False
    return started is None or st == str(started)


def no_mesh(state: State) -> InputError:
    return InputError(f"no local mesh in {state.dir}", hint="start one with 'meshctl local up DIR'")


def require(state: State) -> dict:
    """The mesh's record (mesh.json); InputError when there is none."""
    mesh = state.mesh()
    if not mesh:
        raise no_mesh(state)
    return mesh

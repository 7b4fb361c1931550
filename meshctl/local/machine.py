"""What this machine offers a local mesh, checked before anything starts: free loopback
addresses and ports (gateways without a pinned address get the first free one of
127.0.100.0/24, claimed so that two meshes starting at once never pick the same), and inotify
instances for Envoy's watched files."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

from meshctl.errors import InputError
from meshctl.local import model
from meshctl.resources import Resource, ResourceSet


def bindable(address: str, port: int) -> bool:
    """Whether a listener could bind address:port now."""
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


def gateway_addresses(resources: list[Resource], state_dir: Optional[str] = None) -> dict:
    """Addresses for the gateways without a `local.meshctl.io/address` annotation: the first of
    127.0.100.0/24 that no workload declares, nothing on this machine listens on, and no other
    local mesh of this user has claimed (a claims file under a lock: two meshes starting at once
    never pick the same address)."""
    import fcntl
    import ipaddress

    first = model.build(ResourceSet(resources))
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
                if all(bindable(addr, p) for p in ports):
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


def check_inotify(configs: dict) -> None:
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


def check_free(configs: dict) -> None:
    """Every address:port the mesh will listen on is free (InputError naming the first that is not)."""
    for key, cfg in configs.items():
        ports = [model.ADMIN_PORT]
        if cfg.kind == "sidecar":
            ports += [model.OUTBOUND_PORT, model.INBOUND_PORT]
            if cfg.app and cfg.app.get("port"):
                ports.append(cfg.app["port"])
        for port in ports:
            if not bindable(cfg.address, port):
                raise InputError(f"{cfg.address}:{port} ({key}) is already in use on this machine",
                                 hint="another local mesh or program listens there: stop it, or give the "
                                      "WorkloadEntry another loopback address")

"""How configuration reaches the proxies, and how we know it did.

Each proxy reads watched files in its directory (Envoy's path_config_source); each file is
written to a temporary name and renamed into place, which Envoy applies as one update. A change
to running proxies goes in three steps, each once every proxy reports the previous one through
its admin stats (`*.version_text`): clusters (the old ones kept), then listeners and routes,
then the clusters no longer used are dropped — so a route never points at a cluster its proxy
does not have yet, and no request fails on an update.
"""
from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Callable, Optional

from meshctl.errors import ClusterError
from meshctl.local import ca as mesh_ca
from meshctl.local.machine import INOTIFY_HINT
from meshctl.local.pipeline import Observer, quiet
from meshctl.local.processes import supervisor_alive
from meshctl.local.state import State, publish, read_json
from meshctl.local.translate import ProxyConfig, xds

SYNC_FILTER = (r"^(server\.state|cluster_manager\.cds\.version_text|listener_manager\.lds\.version_text"
               r"|http\..*\.rds\..*\.version_text|cluster_manager\.cds\.update_rejected"
               r"|listener_manager\.lds\.update_rejected)$")
CDS = "cds.json"
LDS = "lds.json"
CDS_VERSION = "cluster_manager.cds.version_text"
LDS_VERSION = "listener_manager.lds.version_text"


# --- the files -------------------------------------------------------------------------------------

def files_on_disk(state: State, key: str) -> dict:
    """A proxy's discovery files as written (not its bootstrap or certificate)."""
    d = state.proxy_dir(key)
    out = {}
    if d.is_dir():
        for p in d.glob("*.json"):
            if p.name in ("bootstrap.json",) or p.name.startswith("sds_"):
                continue
            out[p.name] = read_json(p)
    return out


def write_proxy(state: State, cfg: ProxyConfig, ca: mesh_ca.CA, lifetime: float) -> None:
    """A new proxy's directory: its certificate, its discovery files (clusters first, then
    routes, then listeners), and its bootstrap with the mesh root as a static secret."""
    d = state.proxy_dir(cfg.key)
    d.mkdir(parents=True, exist_ok=True)
    publish(d / "sds_default.json", xds.certificate_file(ca.issue(cfg.identity, lifetime)))
    for name in sorted(cfg.files, key=_file_order):
        publish(d / name, cfg.files[name])
    root = {k: v for k, v in xds.root_secret(ca).items() if k != "@type"}
    publish(d / "bootstrap.json", {**cfg.bootstrap, "static_resources": {"secrets": [root]}})


def _file_order(name: str) -> int:
    return 0 if name == CDS else 1 if name.startswith("rds_") else 2


def push(state: State, new: dict[str, ProxyConfig], old: dict[str, ProxyConfig], timeout: float) -> None:
    """New files for running proxies: clusters (old ones kept), then listeners and routes, then
    the clusters no longer used are dropped — each step once every proxy has the previous one."""
    def cluster_names(cfg):
        return {c["name"] for c in cfg.files[CDS]["resources"]}

    staged = {}
    for key, cfg in new.items():
        gone = cluster_names(old[key]) - cluster_names(cfg)
        if gone:
            union = cfg.files[CDS]["resources"] + [c for c in old[key].files[CDS]["resources"] if c["name"] in gone]
            staged[key] = xds.discovery(union)
        else:
            staged[key] = cfg.files[CDS]
    for key, cds in staged.items():
        d = state.proxy_dir(key)
        if read_json(d / CDS) != cds:
            publish(d / CDS, cds)
    wait_versions(new, timeout, lambda key, s: s.get(CDS_VERSION) == staged[key]["version_info"], "clusters")
    for key, cfg in new.items():
        d = state.proxy_dir(key)
        for name in sorted(cfg.files):
            if name == CDS:
                continue
            if read_json(d / name) != cfg.files[name]:
                publish(d / name, cfg.files[name])
    wait_versions(new, timeout, lambda key, s: _listeners_and_routes(new[key], s), "listeners and routes")
    final = [k for k in new if staged[k] is not new[k].files[CDS]]
    for key in final:
        publish(state.proxy_dir(key) / CDS, new[key].files[CDS])
    if final:
        wait_versions({k: new[k] for k in final}, timeout,
                      lambda key, s: s.get(CDS_VERSION) == new[key].files[CDS]["version_info"], "clusters")


# --- what the proxies run ----------------------------------------------------------------------------

def stats(admin: str, timeout: float = 1.0) -> Optional[dict]:
    """A proxy's state and the versions it runs (admin /stats), or None when it does not answer."""
    from urllib.parse import quote

    try:
        with urllib.request.urlopen(f"http://{admin}/stats?format=json&filter={quote(SYNC_FILTER)}",
                                    timeout=timeout) as r:
            data = json.loads(r.read())
    except (OSError, ValueError):
        return None
    return {s["name"]: s.get("value") for s in data.get("stats", []) if "name" in s}


def _routes_current(cfg: ProxyConfig, stats: dict, missing_ok: bool) -> bool:
    """Every route configuration of the proxy at its rendered version (`missing_ok`: one the
    proxy reports no version of counts as current)."""
    for name in cfg.route_names:
        want = cfg.files[f"rds_{name}.json"]["version_info"]
        have = [v for k, v in stats.items() if k.endswith(f".rds.{name}.version_text")]
        if (not have and not missing_ok) or any(v != want for v in have):
            return False
    return True


def _listeners_and_routes(cfg: ProxyConfig, stats: dict) -> bool:
    return stats.get(LDS_VERSION) == cfg.files[LDS]["version_info"] and _routes_current(cfg, stats, missing_ok=True)


def proxy_synced(cfg: ProxyConfig, stats: Optional[dict]) -> bool:
    """LIVE, with the rendered clusters, listeners and routes."""
    if not stats or stats.get("server.state") != 0:
        return False
    if stats.get(CDS_VERSION) != cfg.files[CDS]["version_info"]:
        return False
    if stats.get(LDS_VERSION) != cfg.files[LDS]["version_info"]:
        return False
    return _routes_current(cfg, stats, missing_ok=False)


def wait_versions(configs: dict[str, ProxyConfig], timeout: float, ok: Callable[[str, dict], bool], what: str) -> None:
    """Until every running proxy's stats satisfy `ok` (a proxy that does not answer is not
    running: it reads the files when it starts); ClusterError naming the others after `timeout`."""
    deadline = time.monotonic() + timeout
    pending = set(configs)
    while pending:
        for key in sorted(pending):
            current = stats(configs[key].admin)
            if current is None or ok(key, current):
                pending.discard(key)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{', '.join(sorted(pending))} did not take the new {what} in {timeout:g}s",
                               hint="see 'meshctl proxy-status --local' for what it rejected")
        time.sleep(0.05)


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_ready(state: State, configs: dict[str, ProxyConfig], timeout: float, observer: Observer = quiet) -> float:
    """Until every proxy is LIVE with the rendered versions and every workload listens; the
    seconds it took. Progress goes to `observer` as it changes."""
    start = time.monotonic()
    deadline = start + timeout
    pending = set(configs)
    apps = {k: c for k, c in configs.items() if c.app and c.app.get("port")}
    last = None
    while True:
        for key in sorted(pending):
            if proxy_synced(configs[key], stats(configs[key].admin)):
                pending.discard(key)
        for k in [k for k, c in apps.items() if _listening(c.address, c.app["port"])]:
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

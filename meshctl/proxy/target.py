"""proxy-config's proxy: one proxy named on the command line, reached, and read.

POD_OR_ADDRESS (or --admin) is an admin address (`127.0.0.1:15000`, a bare IP for port 15000), a
proxy of the local mesh (`NAME[.NAMESPACE]`), or a pod reached through a port-forward to 15000.
`show` reads what a section needs and returns a config.ConfigResult; `logging` sets and returns
the logger levels (config.LogLevels).
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from meshctl.errors import InputError
from meshctl.proxy.admin import ADMIN_PORT, LOG_LEVELS, AdminClient, AdminUnreachable, parse_address
from meshctl.proxy.config import ConfigResult, LogLevels, Query

_ADDRESS = re.compile(r"^(https?://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):\d+/?$")
_IP = re.compile(r"^(https?://)?(\[[0-9A-Fa-f:.]+\]|\d{1,3}(\.\d{1,3}){3})/?$")  # an address without its port


@dataclass(frozen=True)
class Target:
    """An admin address, or a pod (or local-mesh proxy) name with the namespace it was given in."""

    address: Optional[str] = None
    pod: Optional[str] = None
    namespace: Optional[str] = None

    @classmethod
    def parse(cls, text: Optional[str], admin: Optional[list[str]], namespace: Optional[str]) -> "Target":
        if admin:
            if len(admin) > 1:
                raise InputError("proxy-config reads one proxy; give --admin once")
            if text:
                raise InputError("give either POD_OR_ADDRESS or --admin, not both")
            return cls(address=parse_address(admin[0], default_port=ADMIN_PORT))
        if not text:
            raise InputError("missing POD_OR_ADDRESS",
                             hint="e.g. 'meshctl proxy-config clusters 127.0.0.1:15000' "
                                  "or 'meshctl proxy-config clusters productpage-v1-abc.default'")
        if _ADDRESS.match(text):
            return cls(address=parse_address(text))
        if _IP.match(text):
            return cls(address=parse_address(text, default_port=ADMIN_PORT))
        pod, _, ns = text.partition(".")
        if not pod:
            raise InputError(f"invalid proxy {text!r}", hint="use HOST:PORT or POD[.NAMESPACE]")
        return cls(pod=pod, namespace=ns or namespace)


@dataclass(frozen=True)
class Where:
    """How to reach a Target that is not an address: the local mesh's state directory (asked
    only then: it checks that the mesh runs), else the Kubernetes client."""

    local_state: Callable[[], Optional[str]] = lambda: None
    kube: Optional[Callable[[], Any]] = None


def _on_proxy(target: Target, where: Where, fn: Callable[[str], Awaitable[Any]]) -> Any:
    """Run async fn(address) against the proxy, port-forwarding when it is a pod."""
    if target.address:
        return asyncio.run(fn(target.address))
    local_state = where.local_state()
    if local_state:
        from meshctl.local.mesh import admin_of

        return asyncio.run(fn(admin_of(local_state, target.pod, target.namespace)))
    from meshctl.kube import NotFound

    if where.kube is None:
        raise InputError(f"no cluster to find pod {target.pod} in", hint="give the proxy's admin HOST:PORT")
    k = where.kube()
    namespace = k.namespace_for(target.namespace)
    try:
        forward = k.port_forward(namespace, target.pod, ADMIN_PORT)
        port = forward.__enter__()
    except NotFound:
        raise _no_such_pod(k, target.pod, namespace) from None
    try:
        return asyncio.run(fn(f"127.0.0.1:{port}"))
    finally:
        forward.__exit__(None, None, None)


def _no_such_pod(k, pod: str, namespace: str) -> InputError:
    """InputError (exit 2) for a pod that does not exist, naming the mesh pods it may have meant."""
    from meshctl.proxy.status import discover

    try:
        names = sorted(t.pod for t in discover(k, namespace) if t.pod)
    except Exception:  # the hint is a courtesy; the error stands without it
        names = []
    close = [n for n in names if n.startswith(pod)] or names
    if close:
        shown = ", ".join(close[:5]) + (f" and {len(close) - 5} more" if len(close) > 5 else "")
        hint = f"mesh pods in {namespace}: {shown}"
    else:
        hint = f"no mesh pods in namespace {namespace}; check -n, or list them with 'meshctl proxy-status -A'"
    return InputError(f"pod {namespace}/{pod} not found", hint=hint)


# --- what each section needs from the proxy -----------------------------------------------------


async def read(address: str, section: str, timeout: float) -> dict:
    """Fetch the admin answers `section` needs: {"dump", "clusters", "certs", "server_info"}."""
    async with AdminClient(timeout=timeout, concurrency=4) as admin:
        if section == "endpoints":
            return {"clusters": await admin.clusters(address)}
        if section == "secrets":
            dump, certs = await asyncio.gather(admin.config_dump(address), admin.certs(address))
            return {"dump": dump, "certs": certs}
        if section == "bootstrap":
            dump, info = await asyncio.gather(admin.config_dump(address), admin.server_info(address))
            return {"dump": dump, "server_info": info}
        return {"dump": await admin.config_dump(address)}


def show(target: Target, where: Where, query: Query, timeout: float) -> ConfigResult:
    """One section of the proxy's configuration, filtered as `query` says."""
    return query.result(_on_proxy(target, where, lambda a: read(a, query.section, timeout)))


# --- logging ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelChange:
    """--level LEVEL [--logger NAME], or istioctl's --level NAME:LEVEL[,NAME:LEVEL...] (pairs)."""

    level: Optional[str] = None
    logger: Optional[str] = None
    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, level: Optional[str], logger: Optional[str]) -> "LevelChange":
        def known(lvl: str) -> str:
            if lvl not in LOG_LEVELS:
                raise InputError(f"unknown log level {lvl!r}", hint=f"use one of: {', '.join(LOG_LEVELS)}")
            return lvl

        if level is not None and ":" in level:
            if logger:
                raise InputError("give --level NAME:LEVEL,... or --level LEVEL --logger NAME, not both")
            pairs = []
            for part in level.split(","):
                name, sep, lvl = part.strip().partition(":")
                if not sep or not name.strip() or not lvl.strip():
                    raise InputError(f"--level {level!r}: {part.strip()!r} is not NAME:LEVEL",
                                     hint="e.g. --level http:debug,router:info")
                pairs.append((name.strip(), lvl.strip().lower()))
            for _, lvl in pairs:
                known(lvl)
            return cls(pairs=tuple(pairs))
        if level is not None:
            level = known(level.strip().lower())
        if logger and not level:
            raise InputError("--logger needs --level")
        return cls(level=level, logger=logger)


async def log_levels(address: str, timeout: float, change: LevelChange = LevelChange()) -> dict[str, str]:
    """Set (when `change` says so: a level for every logger or one, or each (logger, level) pair, in
    order) and return the proxy's logger levels."""
    async with AdminClient(timeout=timeout, concurrency=1) as admin:
        if change.pairs:  # every name checked before any level changes
            known = await admin.log_levels(address)
            for name, _ in change.pairs:
                if "active loggers" in known and f"  {name}: " not in known:
                    raise InputError(f"proxy {address} has no logger named {name!r}; nothing was changed",
                                     hint="list the loggers with 'meshctl proxy-config log ADDRESS'")
            for name, lvl in change.pairs:
                text = await admin.set_log_level(address, lvl, name)
        elif change.level:
            text = await admin.set_log_level(address, change.level, change.logger)
        else:
            text = await admin.log_levels(address)
    if "active loggers" not in text:
        raise AdminUnreachable(address, "/logging", "answer is not Envoy's logger list (not an Envoy admin endpoint?)")
    levels = {}
    for line in text.splitlines():
        line = line.strip()
        if ":" in line and not line.startswith("active loggers"):
            name, _, lvl = line.partition(":")
            levels[name.strip()] = lvl.strip()
    return levels


def logging(target: Target, where: Where, change: LevelChange, timeout: float) -> LogLevels:
    """The proxy's logger levels after `change` (only the loggers it names, when it names some)."""
    levels = _on_proxy(target, where, lambda a: log_levels(a, timeout, change))
    if change.logger:
        levels = {change.logger: levels.get(change.logger, change.level)}
    elif change.pairs:
        levels = {name: levels.get(name, lvl) for name, lvl in change.pairs}
    return LogLevels(levels)

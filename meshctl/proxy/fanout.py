"""Fan-out stage of proxy-status: probe many proxies at once, each through its admin interface.

At most `concurrency` proxies are probed at a time, each over one kept-alive connection (a pod's
through its port-forward, see portforward.py: one API-server stream), its three reads (build
info, stats, certificates) one after the other, each bounded by `timeout`. Reads in parallel on
three connections were measured (bench/proxy_status.py): they need more CPU for the same number
of connections in flight, and each connection is a TCP handshake more.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterable, Optional

from meshctl.proxy.admin import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, AdminClient, AdminUnreachable
from meshctl.proxy.parse import as_int, ready_from_stats, stats_filter
from meshctl.proxy.status import ProxyStatus, ProxyTarget, summarize, summarize_ztunnel, unreachable

Route = Callable[[str], Any]  # AdminClient's route: address → where its requests go


async def _read_all(admin: AdminClient, address: str):
    """(info, stats, certs): build info and stats raise AdminUnreachable; certs is returned as
    the exception when it alone fails."""
    info = await admin.build_info(address)
    stats = await admin.stats(address, stats_filter(info.get("ads_cluster")))
    try:
        certs = await admin.certs(address)
    except AdminUnreachable as e:
        certs = e
    return info, stats, certs


async def probe(admin: AdminClient, target: ProxyTarget, address: str) -> ProxyStatus:
    """Read one proxy's admin endpoints and summarize them."""
    if target.kind == "ztunnel":
        try:
            dump = await admin.get_json(address, "/config_dump")
        except AdminUnreachable as e:
            return unreachable(target, e.reason)
        return summarize_ztunnel(target, dump if isinstance(dump, dict) else {})
    # Readiness (server.state) and endpoint counts (membership gauges) come in the /stats answer.
    try:
        info, stats, certs = await _read_all(admin, address)
    except AdminUnreachable as e:
        return unreachable(target, e.reason)
    partial = []
    ready = ready_from_stats(stats)
    if ready is None:
        try:
            ready = await admin.ready(address)
        except AdminUnreachable as e:
            partial.append(f"/ready: {e.reason}")
            ready = (False, "")
    if isinstance(certs, AdminUnreachable):
        partial.append(f"/certs: {certs.reason}")
        certs = {}
    elif not isinstance(certs, dict):
        partial.append("/certs: answer is not Envoy's certificate list")
        certs = {}
    listeners_dump = None
    if as_int(stats.get("listener_manager.lds.update_rejected")):
        try:
            listeners_dump = await admin.config_dump(address, resource="dynamic_listeners")
        except AdminUnreachable as e:
            partial.append(f"/config_dump: {e.reason}")
    st = summarize(target, info, ready, stats, certs, None, listeners_dump)
    if partial:
        st.reasons.extend(f"could not read {p}" for p in partial)
        st.healthy = False
    return st


async def collect(targets: Iterable[ProxyTarget], timeout: float = DEFAULT_TIMEOUT,
                  concurrency: int = DEFAULT_CONCURRENCY, route: Optional[Route] = None) -> list[ProxyStatus]:
    """Probe every target, `concurrency` proxies at a time (each request bounded by `timeout`);
    one row per target, in order. `route` says where an address's requests go (AdminClient's:
    a port-forward for a pod, see portforward.routes)."""
    targets = list(targets)
    async with AdminClient(timeout=timeout, concurrency=concurrency, route=route) as admin:
        proxies = asyncio.Semaphore(concurrency)

        async def one(t: ProxyTarget) -> ProxyStatus:
            if t.problem:
                return unreachable(t, t.problem)
            if not t.address:
                return unreachable(t, "no admin address")
            async with proxies:
                try:
                    return await probe(admin, t, t.address)
                finally:
                    await admin.release(t.address)

        return list(await asyncio.gather(*(one(t) for t in targets)))


def _loop_factory():
    """uvloop's event loop where it is installed (not on Windows): a third less CPU for the
    fan-out than asyncio's own loop (bench/proxy_status.py, 2,000 proxies)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(targets: Iterable[ProxyTarget], timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY,
        route: Optional[Route] = None) -> list[ProxyStatus]:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(collect(targets, timeout, concurrency, route))

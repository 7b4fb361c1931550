"""Report stage for proxy-status and proxy-config: tables for people, plain columns when piped."""
from __future__ import annotations

import sys
from typing import Iterable, Optional, TextIO

from meshctl.proxy.status import (HEALTHY_STATUSES, NOT_CONNECTED, NOT_READY, STALE, STATIC, SYNCED, UNREACHABLE,
                                  ProxyStatus, human_duration)

STATUS_STYLE = {SYNCED: "green", STATIC: "cyan", STALE: "yellow", NOT_READY: "yellow",
                NOT_CONNECTED: "red", UNREACHABLE: "bold red"}
XDS_STYLE = {"SYNCED": "green", "STALE": "yellow", "NOT SENT": "yellow"}


def cert_cell(st: ProxyStatus) -> str:
    if st.cert_seconds_left is None:
        return "-"
    if st.cert_seconds_left <= 0:
        return "EXPIRED"
    text = human_duration(st.cert_seconds_left)
    return f"{text} ‼" if st.cert_seconds_left <= 24 * 3600 else text


def endpoints_cell(st: ProxyStatus) -> str:
    if not st.endpoints:
        return "-"
    return f"{st.endpoints.get('healthy', 0)}/{st.endpoints.get('total', 0)}"


def status_rows(rows: Iterable[ProxyStatus], wide: bool = False) -> list[list[str]]:
    header = ["NAME", "VERSION", "STATUS", "CDS", "LDS", "EDS", "RDS", "CERT EXPIRY", "ENDPOINTS", "REASON"]
    if wide:
        header[1:1] = ["ADDRESS", "KIND"]
    out = [header]
    for st in rows:
        cells = [st.name, st.version or "-", st.status] + [st.xds[k].cell() if k in st.xds else "-"
                                                           for k in ("CDS", "LDS", "EDS", "RDS")]
        cells += [cert_cell(st), endpoints_cell(st), st.reason_text() or "-"]
        if wide:
            cells[1:1] = [st.address or "-", st.kind]
        out.append(cells)
    return out


def _style_for(header: str, value: str) -> Optional[str]:
    if header == "STATUS":
        return STATUS_STYLE.get(value)
    if header in ("CDS", "LDS", "EDS", "RDS"):
        return XDS_STYLE.get(value.split(" (")[0])
    if header == "CERT EXPIRY" and ("‼" in value or value == "EXPIRED"):
        return "red" if value == "EXPIRED" else "yellow"
    return None


def print_table(rows: list[list[str]], stream: Optional[TextIO] = None) -> None:
    """A rich table on a colour terminal; aligned plain columns (kubectl-like) otherwise."""
    from meshctl import output

    stream = stream or sys.stdout
    header, body = rows[0], rows[1:]
    if output.color_enabled(stream):
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for h in header:
            table.add_column(h, overflow="fold", no_wrap=h not in ("REASON", "DESTINATION", "MATCH"))
        for r in body:
            table.add_row(*[Text(v, style=_style_for(h, v) or "") for h, v in zip(header, r)])
        output.console().print(table)
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        line = "   ".join(v.ljust(widths[i]) if i < len(r) - 1 else v for i, v in enumerate(r))
        stream.write(line.rstrip() + "\n")
    stream.flush()


def summary_line(rows: list[ProxyStatus]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    order = [SYNCED, STATIC, STALE, NOT_READY, NOT_CONNECTED, UNREACHABLE]
    parts = [f"{counts[s]} {s.lower()}" for s in order if counts.get(s)]
    healthy = sum(1 for r in rows if r.healthy)
    noun = "proxy" if len(rows) == 1 else "proxies"
    return f"{len(rows)} {noun}: {', '.join(parts)} ({healthy} healthy)"


__all__ = ["status_rows", "print_table", "summary_line", "HEALTHY_STATUSES"]

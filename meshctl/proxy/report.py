"""How proxy-status and proxy-config show their results: `write(result, fmt, out, err)`.

Tables are a rich table on a colour terminal and aligned plain columns (kubectl-like) otherwise,
built in one piece and written once; summaries and warnings go to `err`, so `out` stays a table
(or JSON/YAML) that scripts can read. `out` and `err` are rich Consoles (the session's).
"""
from __future__ import annotations

from typing import Any, Optional

from meshctl.output import OutputFormats
from meshctl.proxy.config import ConfigResult, LogLevels
from meshctl.proxy.status import (NOT_CONNECTED, NOT_READY, STALE, STATIC, STATUS_ORDER, SYNCED,
                                  UNREACHABLE, ProxyStatus, StatusResult, cert_warn_seconds, human_duration)

STATUS_FORMATS = OutputFormats(("table", "wide", "json", "yaml"), default="table",
                               help="wide adds each proxy's ADDRESS and KIND.")
CONFIG_FORMATS = OutputFormats(("table", "json", "yaml"), default="table",
                               help="json and yaml print the raw Envoy objects of the section.")

STATUS_STYLE = {SYNCED: "green", STATIC: "cyan", STALE: "yellow", NOT_READY: "yellow",
                NOT_CONNECTED: "red", UNREACHABLE: "bold red"}
XDS_STYLE = {"SYNCED": "green", "STALE": "yellow", "NOT SENT": "yellow"}
XDS_COLUMNS = ("CDS", "LDS", "EDS", "RDS")


def write(result: Any, fmt: str, out, err=None) -> None:
    """`result` (a StatusResult, ConfigResult or LogLevels) in `fmt` to the `out` console; the
    summary line and warnings to `err`."""
    if isinstance(result, StatusResult):
        _write_status(result, fmt, out, err)
    elif isinstance(result, ConfigResult):
        if fmt in ("json", "yaml"):
            _emit(out, result.data, fmt)
        elif result.empty:
            _line(err, result.empty)
        else:
            print_table(result.rows, out)
    elif isinstance(result, LogLevels):
        if fmt in ("json", "yaml"):
            _emit(out, result.levels, fmt)
        else:
            print_table([["LOGGER", "LEVEL"]] + [[k, v] for k, v in sorted(result.levels.items())], out)
    else:  # pragma: no cover - callers pass one of the above
        raise TypeError(type(result).__name__)


def _write_status(result: StatusResult, fmt: str, out, err) -> None:
    if result.searched:
        _line(err, f"warning: no mesh proxies found in {result.searched}")
    if fmt == "json":
        _write_json(out, result.to_dict())
    elif fmt == "yaml":
        _emit(out, result.to_dict(), fmt)
    elif result.rows:
        print_table(status_rows(result.rows, wide=fmt == "wide"), out)
        _line(err, summary_line(result.rows))


def _emit(out, data: Any, fmt: str) -> None:
    from meshctl.output import emit_to

    emit_to(out, data, fmt)


def _write_json(out, data: dict) -> None:
    """proxy-status's JSON: the bytes meshctl.output.to_json writes, made by orjson (C) rather
    than the json module's pure-Python indenting encoder: 0.02 s instead of 0.18 s for 2,000
    proxies (4.6 MB, bench/proxy_status.py). The rows hold strings, integers, booleans and None
    only; text with non-ASCII characters (which json escapes and orjson does not) goes the usual
    way, and so does everything when orjson is missing."""
    try:
        import orjson

        text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME
                            | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS, default=str)
    except (ImportError, TypeError):
        text = b"\x80"
    if not text.isascii():
        return _emit(out, data, "json")
    out.file.write(text.decode() + "\n")
    out.file.flush()


def _line(console, text: str) -> None:
    if console is not None:
        console.print(text, markup=False, highlight=False)


# --- proxy-status -----------------------------------------------------------------------------


def cert_cell(st: ProxyStatus) -> str:
    if st.cert_seconds_left is None:
        return "-"
    if st.cert_seconds_left <= 0:
        return "EXPIRED"
    text = human_duration(st.cert_seconds_left)
    soonest = st.certificates[0] if st.certificates else {}  # the one cert_seconds_left is about
    return f"{text} ‼" if st.cert_seconds_left <= cert_warn_seconds(soonest) else text


def endpoints_cell(st: ProxyStatus) -> str:
    if not st.endpoints:
        return "-"
    return f"{st.endpoints.get('healthy', 0)}/{st.endpoints.get('total', 0)}"


def status_rows(rows: list[ProxyStatus], wide: bool = False) -> list[list[str]]:
    header = ["NAME", "VERSION", "STATUS", *XDS_COLUMNS, "CERT EXPIRY", "ENDPOINTS", "REASON"]
    if wide:
        header[1:1] = ["ADDRESS", "KIND"]
    out = [header]
    for st in rows:
        cells = [st.name, st.version or "-", st.status] + [st.xds[k].cell() if k in st.xds else "-"
                                                           for k in XDS_COLUMNS]
        cells += [cert_cell(st), endpoints_cell(st), st.reason_text() or "-"]
        if wide:
            cells[1:1] = [st.address or "-", st.kind]
        out.append(cells)
    return out


def summary_line(rows: list[ProxyStatus]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = [f"{counts[s]} {s.lower()}" for s in STATUS_ORDER if counts.get(s)]
    healthy = sum(1 for r in rows if r.healthy)
    noun = "proxy" if len(rows) == 1 else "proxies"
    return f"{len(rows)} {noun}: {', '.join(parts)} ({healthy} healthy)"


# --- tables -----------------------------------------------------------------------------------


def _style_for(header: str, value: str) -> Optional[str]:
    if header == "STATUS":
        return STATUS_STYLE.get(value)
    if header in XDS_COLUMNS:
        return XDS_STYLE.get(value.split(" (")[0])
    if header == "CERT EXPIRY" and ("‼" in value or value == "EXPIRED"):
        return "red" if value == "EXPIRED" else "yellow"
    return None


def plain_table(rows: list[list[str]]) -> str:
    """Aligned columns, three spaces apart, the last column unpadded (as kubectl prints)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    last = len(widths) - 1
    lines = []
    for r in rows:
        lines.append("   ".join(v.ljust(widths[i]) if i < last else v for i, v in enumerate(r)).rstrip())
    lines.append("")
    return "\n".join(lines)


def print_table(rows: list[list[str]], out) -> None:
    """A rich table when `out` is a colour console; aligned plain columns, written at once, otherwise."""
    if getattr(out, "no_color", True) or not getattr(out, "is_terminal", False):
        out.file.write(plain_table(rows))
        out.file.flush()
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    header, body = rows[0], rows[1:]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for h in header:
        table.add_column(h, overflow="fold", no_wrap=h not in ("REASON", "DESTINATION", "MATCH"))
    for r in body:
        table.add_row(*[Text(v, style=_style_for(h, v) or "") for h, v in zip(header, r)])
    out.print(table)

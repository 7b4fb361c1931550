"""How `meshctl local` shows its results: up, apply and delete, status and down, each in text (a
table for status), json and yaml (`write(result, fmt, out, err)`), and progress lines for the
long operations (`progress`)."""
from __future__ import annotations

import sys
from typing import Any, TextIO

from meshctl.output import OutputFormats, emit_to

FORMATS = OutputFormats(("text", "json", "yaml"), default="text")                    # up, apply, delete, down
STATUS_FORMATS = OutputFormats(("table", "json", "yaml"), default="table", aliases=(("text", "table"),))


def progress(stream: TextIO | None = None):
    """An observer for long operations: one rewritten line on a terminal, one line per change when piped."""
    stream = stream or sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    state = {"width": 0}

    def show(text: str) -> None:
        if tty:
            pad = max(0, state["width"] - len(text))
            stream.write("\r" + text + " " * pad)
            state["width"] = len(text)
        else:
            stream.write(text + "\n")
        stream.flush()

    def done() -> None:
        if tty and state["width"]:
            stream.write("\r" + " " * state["width"] + "\r")
            stream.flush()

    show.done = done  # type: ignore[attr-defined]
    return show


def write(result: Any, fmt: str, out, err) -> None:
    """An UpResult, ApplyResult (apply or delete), status (mesh.status's dict) or DownResult in
    `fmt`: results on `out` (rich consoles), warnings on `err`."""
    from meshctl.local.mesh import ApplyResult, DownResult, UpResult  # the command line loads this module early

    if isinstance(result, UpResult):
        for w in result.warnings:
            _line(err, f"warning: {w}")
    if fmt in ("json", "yaml"):
        emit_to(out, result if isinstance(result, dict) else result.to_dict(), fmt)
        return
    text = {UpResult: _up_text, ApplyResult: _apply_text, DownResult: _down_text, dict: _status_table}
    text[type(result)](result, out)


def _line(console, text: str = "") -> None:
    console.print(text, markup=False, highlight=False, emoji=False)


def _up_text(result, out) -> None:
    _line(out, f"✔ local mesh up in {result.seconds:.1f}s: {result.proxies} proxies SYNCED, "
               f"{result.workloads} workloads running (state: {result.state_dir})")
    for i in result.ingress:
        _line(out, f"  ingress {i['gateway']} port {i['port']}: http://{i['address']}/")


def _apply_text(result, out) -> None:
    for origin, verb in result.changes:
        _line(out, f"{origin} {verb}")
    parts = []
    if result.proxies_updated:
        parts.append(f"{len(result.proxies_updated)} proxies updated")
    if result.proxies_started:
        parts.append(f"started {', '.join(result.proxies_started)}")
    if result.proxies_stopped:
        parts.append(f"stopped {', '.join(result.proxies_stopped)}")
    if parts:
        _line(out, f"✔ {'; '.join(parts)}")


def _down_text(result, out) -> None:
    if not result.was_running and not result.stopped:
        _line(out, f"no local mesh running in {result.state_dir}: nothing to stop")
    else:
        _line(out, f"✔ stopped {result.stopped} processes and removed {result.state_dir}")


def _status_table(data: dict, out) -> None:
    rows = [["NAME", "KIND", "STATUS", "ADMIN", "INBOUND", "RESTARTS", "REASON"]]
    for p in data["proxies"]:
        rows.append([f"{p['name']}.{p['namespace']}", p["kind"], p["status"], p["admin"], p.get("inbound") or "-",
                     str(p.get("restarts") or 0), "; ".join(p.get("reasons") or [])[:80]])
    _table(rows, out)
    if data.get("workloads"):
        _line(out)
        rows = [["WORKLOAD", "ADDRESS", "STATUS", "PID", "RESTARTS", "LAST EXIT"]]
        for w in data["workloads"]:
            rows.append([f"{w['name']}.{w['namespace']}", w["address"], w["status"], str(w.get("pid") or "-"),
                         str(w.get("restarts") or 0), "-" if w.get("lastExit") is None else str(w["lastExit"])])
        _table(rows, out)
    if data.get("ingress"):
        _line(out)
        rows = [["GATEWAY", "PORT", "ADDRESS"]]
        for i in data["ingress"]:
            rows.append([i["gateway"], str(i["port"]), i["address"]])
        _table(rows, out)
    if not data.get("running"):
        _line(out)
        _line(out, "the supervisor is not running: proxies are not restarted and certificates not rotated")


def _table(rows: list[list[str]], out) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        _line(out, "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())

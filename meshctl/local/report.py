"""What `meshctl local` prints: status tables and JSON, apply results, progress lines."""
from __future__ import annotations

import sys
from typing import TextIO

FORMATS = ("table", "json", "yaml")


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


def status_json(data: dict) -> dict:
    """The documented shape: {"proxies": [...], "ingress": [...]} (+ workloads, stateDir, running)."""
    return data


def write_status(data: dict, fmt: str, out: TextIO | None = None) -> None:
    from meshctl import output

    out = out or sys.stdout
    if fmt in ("json", "yaml"):
        output.emit(status_json(data), fmt, out)
        return
    rows = [["NAME", "KIND", "STATUS", "ADMIN", "INBOUND", "RESTARTS", "REASON"]]
    for p in data["proxies"]:
        rows.append([f"{p['name']}.{p['namespace']}", p["kind"], p["status"], p["admin"], p.get("inbound") or "-",
                     str(p.get("restarts") or 0), "; ".join(p.get("reasons") or [])[:80]])
    _table(rows, out)
    if data.get("workloads"):
        out.write("\n")
        rows = [["WORKLOAD", "ADDRESS", "STATUS", "PID", "RESTARTS", "LAST EXIT"]]
        for w in data["workloads"]:
            rows.append([f"{w['name']}.{w['namespace']}", w["address"], w["status"], str(w.get("pid") or "-"),
                         str(w.get("restarts") or 0), "-" if w.get("lastExit") is None else str(w["lastExit"])])
        _table(rows, out)
    if data.get("ingress"):
        out.write("\n")
        rows = [["GATEWAY", "PORT", "ADDRESS"]]
        for i in data["ingress"]:
            rows.append([i["gateway"], str(i["port"]), i["address"]])
        _table(rows, out)
    if not data.get("running"):
        out.write("\nthe supervisor is not running: proxies are not restarted and certificates not rotated\n")
    out.flush()


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() + "\n")


def write_up(result, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(f"✔ local mesh up in {result.seconds:.1f}s: {result.proxies} proxies SYNCED, "
              f"{result.workloads} workloads running (state: {result.state_dir})\n")
    for i in result.ingress:
        out.write(f"  ingress {i['gateway']} port {i['port']}: http://{i['address']}/\n")
    out.flush()


def write_apply(result, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for origin, verb in result.changes:
        out.write(f"{origin} {verb}\n")
    parts = []
    if result.proxies_updated:
        parts.append(f"{len(result.proxies_updated)} proxies updated")
    if result.proxies_started:
        parts.append(f"started {', '.join(result.proxies_started)}")
    if result.proxies_stopped:
        parts.append(f"stopped {', '.join(result.proxies_stopped)}")
    if parts:
        out.write(f"✔ {'; '.join(parts)}\n")
    out.flush()


def write_down(result, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if not result.was_running and not result.stopped:
        out.write(f"no local mesh running in {result.state_dir}: nothing to stop\n")
    else:
        out.write(f"✔ stopped {result.stopped} processes and removed {result.state_dir}\n")
    out.flush()

"""How canary shows itself: a shift's result, a rollout's status (also after promote and abort),
and a run's steps, in text, json or yaml — `write(result, fmt, out, err)` — and `RunPrinter`, the
observer that shows a run's steps as they happen: a live table on a terminal, one plain line per
step when piped, one JSON object per line with `-o json`.

Results go to `out`; warnings and the dry-run notice to `err`.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Optional

from meshctl.output import OutputFormats, emit_to

SHIFT_FORMATS = OutputFormats(("text", "json", "yaml"), default="text")
STATUS_FORMATS = OutputFormats(("text", "json", "yaml"), default="text")
RUN_FORMATS = OutputFormats(("text", "json"), default="text", help="json prints one object per line and step.")
MAX_ROWS = 20


def _plain(console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _ok(console, text: str) -> None:
    """A green ✔, then plain text (names and paths are never read as markup)."""
    from rich.text import Text

    console.print(Text.assemble(("✔", "green"), " " + text))


def write(result: Any, fmt: str, out, err, streamed: bool = False) -> None:
    """A ShiftResult, Status or RunResult in `fmt`. A RunResult's steps were shown as they came
    when `streamed` (by RunPrinter): nothing is left to write."""
    from meshctl.canary.shift import ShiftResult
    from meshctl.canary.state import RunResult

    if isinstance(result, RunResult):
        if not streamed:
            printer = RunPrinter(fmt, out, live=False)
            for record in result.events:
                printer(record)
        return
    for note in getattr(result, "notes", ()):
        _plain(err, f"warning: {note}")
    if fmt in ("json", "yaml"):
        emit_to(out, result.to_dict(), fmt)
    elif isinstance(result, ShiftResult):
        _shift_text(result, out, err)
    else:
        _status_text(result, out)


# --- shift -----------------------------------------------------------------------------------
def _shift_text(result, out, err) -> None:
    from meshctl.canary.plan import weights_text

    if result.dry_run:
        out.file.write(result.diff)
        out.file.flush()
        _plain(err, "dry run: nothing was changed")
        return
    for c in result.created:
        _ok(out, f"created {c}")
    before = weights_text(result.before) if result.before else "none"
    after = weights_text(result.after)
    verb = "shifted" if result.changed else "unchanged"
    extra = []
    if result.header:
        extra.append(f"header {result.header[0]}={result.header[1]} → {result.after[-1][0]}")
    if result.mirror is not None:
        extra.append(f"mirror {result.mirror:g}%" if result.mirror else "mirror off")
    if result.attempts > 1:
        extra.append(f"{result.attempts - 1} conflict(s) retried")
    tail = f" ({'; '.join(extra)})" if extra else ""
    where = result.target if result.target == result.route or not result.route else f"{result.route} of {result.target}"
    _ok(out, f"{result.host}: {verb} {before} → {after} in {where}{tail}")


# --- status ----------------------------------------------------------------------------------
def _weights(weights) -> str:
    return " / ".join(f"{k} {v}%" for k, v in weights)


def _status_text(status, out) -> None:
    _plain(out, f"{status.route} ({status.host}): {_weights(status.weights) or 'no default route'}")
    st = status.state
    if st is None:
        _plain(out, f"no rollout recorded on this {status.kind}")
        return
    steps = st.analysis.get("steps") or []
    age = status.heartbeat_age
    rows = [
        ("phase", f"{st.phase} ({status.activity})"),
        ("stable → canary", f"{st.stable} → {st.canary} at {st.weight}%"),
        ("step", f"{st.step + 1 if st.step >= 0 else 0}/{len(steps)} ({'/'.join(map(str, steps))})"),
        ("failed checks", f"{st.failures}/{st.analysis.get('threshold')}"),
        ("started", st.started or "-"),
        ("last transition", st.lastTransition or "-"),
        ("last update", f"{st.heartbeat or '-'}" + (f" ({round(age, 1):.0f}s ago)" if age is not None else "")),
    ]
    if st.metrics:
        rows.append(("last metrics", f"{st.metrics.get('requests', 0)} requests, success "
                                     f"{_percent(st.metrics.get('successRate'))}, p99 {_ms(st.metrics.get('p99Ms'))}"))
    rows.append(("message", st.message or "-"))
    for k, v in rows:
        _plain(out, f"  {k + ':':<17} {v}")
    if status.activity == "stopped":
        _plain(out, f"  resume with: meshctl canary run {status.host}")


def _percent(value: Optional[float]) -> str:
    return f"{value:.2f}%" if value is not None else "-"


def _ms(value: Optional[float]) -> str:
    return f"{value:.1f}ms" if value is not None else "-"


# --- run -------------------------------------------------------------------------------------
def step_line(r: dict) -> str:
    """One step as a plain line: time, phase, step, weights, metrics, failures, action: message."""
    m = r.get("metrics") or {}
    parts = [r["time"][11:19], f"{r['phase']:<12}", f"step {r['step']}/{r['steps']}", _weights(r["weights"].items())]
    if m:
        parts += [f"{m.get('requests', 0)} req", f"success {_percent(m.get('successRate'))}",
                  f"p99 {_ms(m.get('p99Ms'))}"]
    parts.append(f"failures {r['failures']}/{r['threshold']}")
    text = "  ".join(parts) + f"  {r['action']}"
    return text + (f": {r['message']}" if r.get("message") else "")


def step_table(rows: list[dict], caption: Optional[str] = None):
    """The last steps as a rich Table (the live view of `canary run` on a terminal)."""
    from rich.table import Table

    t = Table(title=f"canary {rows[-1]['host']}: {rows[-1]['phase']}" if rows else "canary", caption=caption)
    for col in ("time", "phase", "step", "weights", "requests", "success", "p99", "failures", "action"):
        t.add_column(col)
    for r in rows[-MAX_ROWS:]:
        m = r.get("metrics") or {}
        t.add_row(r["time"][11:19], r["phase"], f"{r['step']}/{r['steps']}", _weights(r["weights"].items()),
                  str(m.get("requests", "")) if m else "", _percent(m.get("successRate")), _ms(m.get("p99Ms")),
                  f"{r['failures']}/{r['threshold']}", r["action"])
    return t


class RunPrinter:
    """The observer of a run: shows each step as it comes. `sleep` is the wait between
    analyses: a countdown under the live table on a terminal, a plain sleep otherwise."""

    def __init__(self, fmt: str, out, live: Optional[bool] = None):
        self.fmt = fmt
        self.out = out
        self.rows: list[dict] = []
        self.caption: Optional[str] = None
        use_live = fmt == "text" and (out.is_terminal if live is None else live)
        self._live = None
        if use_live:
            from rich.live import Live

            self._live = Live(step_table(self.rows), console=out, auto_refresh=False)
        self.sleep: Callable[[float], None] = self._countdown if use_live else time.sleep

    def __call__(self, record: dict) -> None:
        if self.fmt == "json":
            self.out.file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.out.file.flush()
        elif self._live is None:
            _plain(self.out, step_line(record))
        else:
            self.rows.append(record)
            if not self._live.is_started:
                self._live.start()
            self._live.update(step_table(self.rows, self.caption), refresh=True)
            if record.get("message"):
                _plain(self._live.console, f"  {record['message']}")

    def _countdown(self, seconds: float) -> None:
        def tick(left: float) -> None:
            self.caption = f"next check in {left:.0f}s" if left > 0 else None
            if self._live is not None and self._live.is_started:
                self._live.update(step_table(self.rows, self.caption), refresh=True)

        countdown(seconds, tick)

    def close(self) -> None:
        if self._live is not None and self._live.is_started:
            self._live.stop()


def countdown(seconds: float, tick: Callable[[float], None], clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait `seconds`, calling tick(seconds left) about once a second and tick(0) at the end, so
    a long --interval shows a countdown on a terminal instead of silence."""
    end = clock() + seconds
    while True:
        left = end - clock()
        if left <= 0:
            break
        tick(math.ceil(left))
        sleep(min(1.0, left))
    tick(0)

"""Durations on the command line and in resources, one syntax everywhere: Go's (as kubectl and
Istio read them) — `500ms`, `3s`, `1m30s`, `1.5h` — or a bare number of seconds (`90`, `0.5`).

Every duration flag goes through `parse`, so `install --timeout 500ms`, `canary run --interval
1m30s` and `proxy-status --timeout 3s` read alike.
"""
from __future__ import annotations

import re
from typing import Any

from meshctl.errors import InputError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BARE = re.compile(r"\d+(?:\.\d*)?|\.\d+")
HINT = "use a duration such as 500ms, 30s, 1m30s or 2h, or a number of seconds"


def parse(text: Any, flag: str = "duration", allow_zero: bool = True) -> float:
    """Seconds from `text`; InputError naming `flag` when it is not a duration."""
    raw = str(text if text is not None else "").strip()
    if _BARE.fullmatch(raw):
        seconds = float(raw)
    else:
        pos, seconds = 0, 0.0
        for m in _PART.finditer(raw):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not raw or pos != len(raw):
            raise InputError(f"{flag} {raw!r} is not a duration", hint=HINT)
    if seconds == 0 and not allow_zero:
        raise InputError(f"{flag} must be longer than zero", hint=HINT)
    return seconds


def format(seconds: float) -> str:  # noqa: A001 - the module's own verb, as durations.parse
    """The shortest Go-style text for `seconds`: 500ms, 30s, 5m, 1m30s, 2h."""
    ms = round(float(seconds) * 1000)
    if ms % 1000:
        return f"{ms}ms" if ms < 1000 else f"{ms / 1000:g}s"
    s = ms // 1000
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"

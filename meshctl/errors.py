"""The one error type users see, and the documented exit codes.

0    success
1    findings at or above the failure threshold, a failed check, a rolled-back rollout
2    usage or input error: bad flag, unreadable or invalid file
3    cluster or proxy unreachable, timeout, permission denied
70   internal error (a bug in meshctl)
130  interrupted (Ctrl-C) or aborted at a prompt
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def clip(value, limit: int = 60) -> str:
    """A value as a message shows it: its YAML/JSON text (never a Python repr) on one line, cut
    to `limit` characters so that a hostile value cannot flood the terminal."""
    if isinstance(value, str):
        text = value
    else:
        import json

        try:
            text = json.dumps(value, default=str, separators=(", ", ": "))
        except (ValueError, RecursionError):  # a structure that holds itself
            text = "a map" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shown(value, limit: int = 60) -> str:
    """clip(value), quoted."""
    return f"'{clip(value, limit)}'"


class MeshctlError(Exception):
    """An error meant for the user: printed as `error: <message>` (and `hint: <hint>`)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class InputError(MeshctlError):
    """A file, flag value or document that cannot be used (exit 2)."""

    exit_code = EXIT_USAGE


class ClusterError(MeshctlError):
    """The cluster cannot be reached, timed out, or refused us (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class ProxyError(MeshctlError):
    """An Envoy admin endpoint cannot be reached or timed out (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class CheckFailed(MeshctlError):
    """A check, gate or verification failed (exit 1)."""

    exit_code = EXIT_FINDINGS

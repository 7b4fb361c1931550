"""How a failure to talk to the cluster reads: the ClusterError subclasses callers may catch, and
the one line (naming the server) and hint each kind of failure becomes."""
from __future__ import annotations

import socket
from typing import Any

from meshctl.errors import EXIT_USAGE, ClusterError


class Conflict(ClusterError):
    """409: the object changed since it was read (stale resourceVersion) or a field conflict."""


class AlreadyExists(Conflict):
    """409 AlreadyExists on create."""


class NotFound(ClusterError):
    """404: the object, its namespace, or its resource type does not exist."""


class Invalid(ClusterError):
    """422/400: the API server rejected the object as invalid."""

    exit_code = EXIT_USAGE


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def unauthorized(server: str) -> str:
    return f"the Kubernetes API server at {server} rejected our credentials (401 Unauthorized)"


def transport_error(e: BaseException, server: str, timeout: float) -> ClusterError:
    """A request that got no answer: refused, unresolvable, timed out, TLS."""
    import urllib3

    reason = getattr(e, "reason", None) if isinstance(e, urllib3.exceptions.MaxRetryError) else e
    text = str(reason or e)
    low = text.lower()
    hint = "check that the cluster is running and that --context/--kubeconfig point at it"
    if "connection refused" in low:
        return ClusterError(f"cannot reach the Kubernetes API server at {server}: connection refused",
                            hint=hint)
    if isinstance(reason, urllib3.exceptions.NameResolutionError) or "name or service not known" in low \
            or "nodename nor servname" in low or "failed to resolve" in low or "name resolution" in low:
        return ClusterError(f"cannot resolve the Kubernetes API server host in {server}", hint=hint)
    if isinstance(reason, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError,
                           TimeoutError, socket.timeout)) or "timed out" in low:
        return ClusterError(f"the Kubernetes API server at {server} did not answer within "
                            f"{timeout:g}s", hint=hint)
    if "ssl" in low or "certificate" in low:
        return ClusterError(f"TLS handshake with the Kubernetes API server at {server} failed: "
                            f"{first_line(Exception(text))}",
                            hint="check certificate-authority in the kubeconfig and the server address")
    return ClusterError(f"cannot reach the Kubernetes API server at {server}: "
                        f"{first_line(Exception(text))}", hint=hint)


def status_error(status: int, data: Any, raw: bytes, method: str, what: str, server: str) -> ClusterError:
    """An answer other than 2xx: `data` is its parsed JSON (a Status, usually), `raw` its body."""
    message = ""
    reason = ""
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        reason = str(data.get("reason") or "")
    if not message:
        message = (raw or b"").decode("utf-8", "replace").strip().splitlines()[0:1]
        message = message[0] if message else f"HTTP {status}"
    message = " ".join(message.split())
    where = f"the Kubernetes API server at {server}"
    if status == 401:
        return ClusterError(unauthorized(server),
                            hint="refresh your credentials (log in again) or choose another --context")
    if status == 403:
        return ClusterError(f"forbidden by {where}: {message}",
                            hint="ask a cluster administrator for RBAC permission "
                                 "(check with: kubectl auth can-i VERB RESOURCE -n NAMESPACE)")
    if status == 404:
        return NotFound(f"{message} ({where})")
    if status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(message, hint="re-read the object and retry" if cls is Conflict else None)
    if status in (400, 422):
        return Invalid(f"{where} rejected {what}: {message}")
    if status == 429:
        return ClusterError(f"{where} is throttling requests (429): {message}", hint="retry in a moment")
    return ClusterError(f"{where} answered {status} to {method} {what}: {message}")

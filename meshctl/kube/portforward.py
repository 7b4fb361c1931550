"""Port-forwards to pods through the API server.

`port_forward` (Kube.port_forward): a local port on 127.0.0.1; each connection to it gets its own
port-forward stream from the kubernetes client's websocket forwarder, relayed by threads.
`connection` (Kube.connection): the address, TLS context and credentials for opening a connection
of one's own, as the asyncio port-forwards of meshctl.proxy.portforward do. Both reach the pod
through `forward_path` and word a refusal as `forbidden`, `pod_not_found` and `refusal` do.
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Optional
from urllib.parse import quote

from meshctl.errors import ClusterError
from meshctl.kube.config import CONFIG_HINT
from meshctl.kube.errors import NotFound, first_line, unauthorized

if TYPE_CHECKING:
    from meshctl.kube.api import Kube


class Connection(NamedTuple):
    """Kube.connection(): where the API server listens and how to talk to it."""

    host: str
    port: int
    ssl: Any  # ssl.SSLContext, None for http://
    server_hostname: Optional[str]  # the name TLS checks the certificate against
    headers: dict  # {"authorization": "Bearer …"}, or none (client certificates)
    server: str  # the URL, for messages


def forward_path(namespace: str, pod: str) -> str:
    """The pod's portforward subresource; the port goes in the query (`ports=PORT`)."""
    return f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"


def forbidden(server: str, namespace: str, pod: str) -> str:
    return f"forbidden by the Kubernetes API server at {server}: cannot port-forward to pod {namespace}/{pod}"


def pod_not_found(server: str, namespace: str, pod: str) -> str:
    return f"pod {namespace}/{pod} not found ({server})"


def refusal(status: int, body: bytes, server: str, namespace: str, pod: str) -> str:
    """The API server's answer other than 101 Switching Protocols to a port-forward's upgrade."""
    try:
        message = str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    message = " ".join((message or body.decode(errors="replace").strip() or f"HTTP {status}").split())
    if status == 403:
        return forbidden(server, namespace, pod)
    if status == 401:
        return unauthorized(server)
    if status == 404:
        return pod_not_found(server, namespace, pod)
    where = f"the Kubernetes API server at {server}"
    return f"{where} answered {status} to the port-forward to pod {namespace}/{pod}: {message}"


def connection(k: "Kube") -> Connection:
    """Kube.connection(): see there."""
    import ssl
    from urllib.parse import urlsplit

    cfg = k.configuration
    url = urlsplit(cfg.host)
    try:
        _, _, headers, _, _ = k._api.param_serialize(method="GET", resource_path="/", header_params={},
                                                     auth_settings=["BearerToken"])
        context = None
        if url.scheme == "https":
            context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if not cfg.verify_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cfg.cert_file:
                context.load_cert_chain(cfg.cert_file, cfg.key_file)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise ClusterError(f"cannot use the TLS settings of the kubeconfig for {k.server}: {first_line(e)}",
                           hint=CONFIG_HINT) from None
    auth = {name.lower(): value for name, value in headers.items() if name.lower() == "authorization"}
    return Connection(url.hostname or "", url.port or (443 if url.scheme == "https" else 80), context,
                      getattr(cfg, "tls_server_name", None) or url.hostname, auth, k.server)


@contextlib.contextmanager
def port_forward(k: "Kube", namespace: str, pod: str, remote_port: int) -> Iterator[int]:
    """Kube.port_forward(): see there."""
    found = k.get("v1", "Pod", pod, namespace)
    if found is None:
        raise NotFound(pod_not_found(k.server, namespace, pod))
    phase = (found.get("status") or {}).get("phase")
    if phase and phase != "Running":
        raise ClusterError(f"pod {namespace}/{pod} is {phase}, not Running; cannot forward a port to it")
    first = _open_forward(k, namespace, pod, remote_port)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    local_port = listener.getsockname()[1]
    stop = threading.Event()
    pending = [first]
    streams: list[Any] = [first]
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if stop.is_set():
                conn.close()
                return
            conns.append(conn)
            try:
                forward = pending.pop() if pending else _open_forward(k, namespace, pod, remote_port)
            except ClusterError:
                conn.close()
                continue
            if forward not in streams:
                streams.append(forward)
            threading.Thread(target=_splice, args=(conn, forward, remote_port, stop), daemon=True).start()

    acceptor = threading.Thread(target=serve, name=f"port-forward {pod}:{remote_port}", daemon=True)
    acceptor.start()
    try:
        yield local_port
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        for forward in streams:
            with contextlib.suppress(Exception):
                forward.close()


def _open_forward(k: "Kube", namespace: str, pod: str, remote_port: int):
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import ws_client

    headers: dict[str, str] = {}
    try:
        req = k._api.param_serialize(method="GET", resource_path=forward_path(namespace, pod),
                                     query_params=[("ports", str(remote_port))], header_params=headers,
                                     auth_settings=["BearerToken"])
        _, url, headers, _, _ = req
        return ws_client.portforward_call(k.configuration, "GET", url,
                                          headers={name.lower(): value for name, value in headers.items()})
    except ApiException as e:
        text = str(e.reason or e)
        if "403" in text:
            raise ClusterError(forbidden(k.server, namespace, pod),
                               hint="ask a cluster administrator for RBAC permission to create pods/portforward"
                               ) from None
        raise ClusterError(f"cannot port-forward to pod {namespace}/{pod} through {k.server}: "
                           f"{first_line(Exception(text))}") from None


def _splice(conn: socket.socket, forward: Any, remote_port: int, stop: threading.Event) -> None:
    """Copy bytes both ways between a local connection and a port-forward stream."""
    import select

    remote = forward.socket(remote_port)
    remote.setblocking(True)
    try:
        while not stop.is_set():
            readable, _, _ = select.select([conn, remote], [], [], 0.5)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (remote if sock is conn else conn).sendall(data)
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            conn.close()
        with contextlib.suppress(Exception):
            forward.close()

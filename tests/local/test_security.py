"""mTLS and authorization on a real local mesh: PeerAuthentication STRICT/PERMISSIVE and
AuthorizationPolicy ALLOW/DENY/allow-nothing by SPIFFE principal, path and method, rotation of
short-lived certificates under traffic."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import urllib.request

import pytest

from tests.local.harness import Client, next_net, service, workload, write

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


@pytest.fixture(scope="module")
def sec_mesh(start_mesh, tmp_path_factory):
    net = next_net()
    d = tmp_path_factory.mktemp("security")
    a = f"127.{net}.0"
    write(d, "mesh.yaml", service("web"), service("api"),
          workload("web-v1", f"{a}.1", "web"), workload("api-v1", f"{a}.2", "api"),
          workload("frontend", f"{a}.10", None, command=False), workload("intruder", f"{a}.11", None, command=False))
    state_dir = start_mesh([d], cert_lifetime=6.0)
    return {"dir": d, "state": state_dir, "a": a, "frontend": f"{a}.10", "intruder": f"{a}.11"}


def apply(cli, mesh, name: str, *docs: str):
    path = write(mesh["dir"] / "applied", name, *docs)
    r = cli("local", "apply", "-f", str(path), "--state-dir", mesh["state"])
    assert r.exit_code == 0, r
    return path


def delete(cli, mesh, path):
    r = cli("local", "delete", "-f", str(path), "--state-dir", mesh["state"])
    assert r.exit_code == 0, r


def plaintext_get(address: str, port: int = 15006) -> int | str:
    """A plaintext HTTP client straight at a sidecar's inbound listener: a status, or 'refused'."""
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://{address}:{port}/", headers={"Host": "web:8080"}),
                                    timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return "refused"


def test_permissive_by_default_accepts_plaintext(sec_mesh):
    assert plaintext_get(f"{sec_mesh['a']}.1") == 200


def test_strict_refuses_a_plaintext_client_but_serves_the_mesh(sec_mesh, cli):
    path = apply(cli, sec_mesh, "strict.yaml", """\
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec:
          mtls: {mode: STRICT}
        """)
    try:
        assert plaintext_get(f"{sec_mesh['a']}.1") == "refused"
        c = Client(sec_mesh["frontend"])
        assert c.request("web:8080", "/")[0] == 200
        c.close()
        # a TLS client without a mesh certificate is refused too
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with socket.create_connection((f"{sec_mesh['a']}.1", 15006), timeout=3) as raw:
                with ctx.wrap_socket(raw) as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: web:8080\r\n\r\n")
                    if not tls.recv(100):
                        raise ConnectionError("closed")
    finally:
        delete(cli, sec_mesh, path)
    assert plaintext_get(f"{sec_mesh['a']}.1") == 200


def test_authorization_policy_allow_by_principal(sec_mesh, cli):
    path = apply(cli, sec_mesh, "allow.yaml", """\
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: web-allow-frontend, namespace: default}
        spec:
          selector:
            matchLabels: {app: web}
          action: ALLOW
          rules:
          - from:
            - source:
                principals: ["cluster.local/ns/default/sa/frontend"]
            to:
            - operation:
                methods: ["GET"]
                notPaths: ["/admin*"]
        """)
    front, intruder = Client(sec_mesh["frontend"]), Client(sec_mesh["intruder"])
    try:
        assert front.request("web:8080", "/books")[0] == 200
        assert front.request("web:8080", "/books", method="POST")[0] == 403
        assert front.request("web:8080", "/admin/users")[0] == 403
        assert intruder.request("web:8080", "/books")[0] == 403
        assert intruder.request("api:8080", "/")[0] == 200  # api has no policy: allowed
    finally:
        front.close()
        intruder.close()
        delete(cli, sec_mesh, path)
    c = Client(sec_mesh["intruder"])
    assert c.request("web:8080", "/books")[0] == 200
    c.close()


def test_deny_is_checked_before_allow_and_allow_nothing_denies_all(sec_mesh, cli):
    path = apply(cli, sec_mesh, "deny.yaml", """\
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: api-allow-all, namespace: default}
        spec:
          selector:
            matchLabels: {app: api}
          rules:
          - {}
        """, """\
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: api-deny-intruder, namespace: default}
        spec:
          selector:
            matchLabels: {app: api}
          action: DENY
          rules:
          - from:
            - source:
                principals: ["cluster.local/ns/default/sa/intruder"]
          - to:
            - operation:
                paths: ["/secret"]
        """, """\
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: web-allow-nothing, namespace: default}
        spec:
          selector:
            matchLabels: {app: web}
        """)
    front, intruder = Client(sec_mesh["frontend"]), Client(sec_mesh["intruder"])
    try:
        assert front.request("api:8080", "/")[0] == 200
        assert front.request("api:8080", "/secret")[0] == 403
        assert intruder.request("api:8080", "/")[0] == 403
        assert front.request("web:8080", "/")[0] == 403
        assert intruder.request("web:8080", "/")[0] == 403
    finally:
        front.close()
        intruder.close()
        delete(cli, sec_mesh, path)


def _serials(admin: str) -> set[str]:
    with urllib.request.urlopen(f"http://{admin}/certs", timeout=3) as r:
        data = json.loads(r.read())
    return {c["serial_number"] for entry in data.get("certificates", []) for c in entry.get("cert_chain") or []}


def test_short_lived_certificates_rotate_without_a_failed_request(sec_mesh):
    """The mesh runs with 6 s certificates, re-issued at half their lifetime."""
    admin = f"{sec_mesh['a']}.1:15000"
    seen = set(_serials(admin))
    codes = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set() and len(codes) < 50000:
            c = Client(sec_mesh["frontend"])  # new connections: new handshakes with the current certificates
            codes.append(c.request("web:8080", "/", headers={"connection": "close"})[0])
            c.close()

    t = threading.Thread(target=traffic)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:
            seen |= _serials(admin)
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(timeout=30)
    assert len(seen) >= 3, "the certificate was not rotated twice in 20 s"
    assert codes and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}


def test_disable_on_one_workload_makes_its_callers_send_plaintext(sec_mesh, cli):
    path = apply(cli, sec_mesh, "disable.yaml", """\
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: web-plain, namespace: default}
        spec:
          selector:
            matchLabels: {app: web}
          mtls: {mode: DISABLE}
        """)
    try:
        c = Client(sec_mesh["frontend"])
        status, _, body = c.request("web:8080", "/")
        c.close()
        # auto mTLS: the caller's sidecar sends plaintext, so no client certificate reaches web
        assert status == 200 and "x-forwarded-client-cert" not in body["headers"]
        assert plaintext_get(f"{sec_mesh['a']}.1") == 200
    finally:
        delete(cli, sec_mesh, path)
    c = Client(sec_mesh["frontend"])
    status, _, body = c.request("web:8080", "/")
    c.close()
    assert status == 200 and "spiffe://cluster.local/ns/default/sa/frontend" in body["headers"]["x-forwarded-client-cert"]

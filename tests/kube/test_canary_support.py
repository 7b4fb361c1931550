"""Shared pieces for the canary tests: Istio CRDs and a bookinfo-like `reviews` service in the
fake API server, a tiny Prometheus answering /api/v1/query, and a webhook receiver."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

NET = "networking.istio.io/v1"


def crd(kind: str, plural: str, group: str = "networking.istio.io") -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


def virtual_service(subsets=("v1",), weights=None, namespace="default") -> dict:
    route = []
    for i, s in enumerate(subsets):
        r = {"destination": {"host": "reviews", "subset": s, "port": {"number": 9080}}}
        if weights is not None:
            r["weight"] = weights[i]
        route.append(r)
    return {"apiVersion": NET, "kind": "VirtualService", "metadata": {"name": "reviews", "namespace": namespace},
            "spec": {"hosts": ["reviews"], "http": [
                {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                 "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
                {"route": route}]}}


def destination_rule(versions=("v1", "v2", "v3"), namespace="default") -> dict:
    return {"apiVersion": NET, "kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": namespace},
            "spec": {"host": "reviews", "subsets": [{"name": v, "labels": {"version": v}} for v in versions]}}


def seed_crds(kube_api) -> None:
    kube_api.add(crd("VirtualService", "virtualservices"))
    kube_api.add(crd("DestinationRule", "destinationrules"))


def seed(kube_api, vs: bool = True, dr: bool = True, pods: bool = False) -> None:
    seed_crds(kube_api)
    if vs:
        kube_api.add(virtual_service())
    if dr:
        kube_api.add(destination_rule())
    if pods:
        kube_api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "default"},
                      "spec": {"selector": {"app": "reviews"}, "ports": [{"port": 9080, "name": "http"}]}})
        for v in ("v1", "v2"):
            kube_api.add({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": f"reviews-{v}-abc", "namespace": "default",
                                       "labels": {"app": "reviews", "version": v}},
                          "spec": {"containers": [{"name": "reviews", "image": "reviews"}]},
                          "status": {"phase": "Running"}})
        kube_api.add({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": "ratings-v1-abc", "namespace": "default",
                                   "labels": {"app": "ratings", "version": "v7"}},
                      "spec": {"containers": [{"name": "ratings", "image": "ratings"}]},
                      "status": {"phase": "Running"}})


GATEWAY = "gateway.networking.k8s.io/v1"


def http_route(backends=("reviews-v1",), weights=None, namespace="default") -> dict:
    """A mesh HTTPRoute for the Service `reviews` (parent), as in Istio's traffic-shifting task with
    the Gateway API: an A/B header rule, then a rule splitting between per-version Services."""
    refs = []
    for i, name in enumerate(backends):
        ref = {"name": name, "port": 9080}
        if weights is not None:
            ref["weight"] = weights[i]
        refs.append(ref)
    return {"apiVersion": GATEWAY, "kind": "HTTPRoute", "metadata": {"name": "reviews", "namespace": namespace},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
                     "rules": [{"matches": [{"headers": [{"name": "end-user", "value": "jason"}]}],
                                "backendRefs": [{"name": "reviews-v2", "port": 9080}]},
                               {"backendRefs": refs}]}}


def service(name: str, namespace: str = "default", version: str | None = None) -> dict:
    selector = {"app": "reviews", **({"version": version} if version else {})}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector, "ports": [{"port": 9080, "name": "http"}]}}


def seed_gateway_api(kube_api, route: bool = True, versions=("v1", "v2", "v3")) -> None:
    """The Gateway API CRDs, the Service reviews and one Service per version, and its HTTPRoute."""
    kube_api.add(crd("HTTPRoute", "httproutes", "gateway.networking.k8s.io"))
    kube_api.add(service("reviews"))
    for v in versions:
        kube_api.add(service(f"reviews-{v}", version=v))
    if route:
        kube_api.add(http_route())


def get_route(kube_api, name: str = "reviews") -> dict:
    return kube_api.get(GATEWAY, "HTTPRoute", name, "default")


def route_weights(kube_api) -> list[tuple[str, int]]:
    from meshctl.canary import plan

    return plan.current_weights(get_route(kube_api), "reviews", "default")


def get_vs(kube_api, name: str = "reviews") -> dict:
    return kube_api.get(NET, "VirtualService", name, "default")


def weights(kube_api) -> list[tuple[str, int]]:
    from meshctl.canary import plan

    return plan.current_weights(get_vs(kube_api), "reviews", "default")


def annotations(kube_api) -> dict:
    return (get_vs(kube_api)["metadata"].get("annotations") or {})


class _Server:
    """A threaded HTTP server on 127.0.0.1 whose answers come from `answer(method, path, query, body)`."""

    def __init__(self, answer: Callable[[str, str, dict, bytes], tuple[int, object]]):
        outer = self
        self.answer = answer
        self.log: list[tuple[str, str, dict, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def _do(self, method):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if method == "POST" and self.headers.get("Content-Type", "").startswith(
                        "application/x-www-form-urlencoded"):
                    query.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
                outer.log.append((method, parts.path, query, body))
                status, payload = outer.answer(method, parts.path, query, body)
                data = json.dumps(payload).encode() if not isinstance(payload, (bytes, str)) else (
                    payload.encode() if isinstance(payload, str) else payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._do("GET")

            def do_POST(self):
                self._do("POST")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakePrometheus(_Server):
    """Answers Istio's queries: `requests`, `errors` and `p99` per measurement (callable or value);
    `None` answers an empty vector (no data)."""

    def __init__(self, requests=100.0, errors=0.0, p99=12.0):
        self.values = {"requests": requests, "errors": errors, "p99": p99}
        self.queries: list[str] = []
        self.measures = 0

        def answer(method, path, query, body):
            if path != "/api/v1/query":
                return 404, {"status": "error", "error": "not found"}
            q = query.get("query", "")
            self.queries.append(q)
            if q == "vector(1)":
                return 200, {"status": "success", "data": {"resultType": "vector",
                                                           "result": [{"metric": {}, "value": [0, "1"]}]}}
            if "histogram_quantile" in q:
                key = "p99"
            elif "response_code" in q:
                key = "errors"
            else:
                key = "requests"
                self.measures += 1
            value = self.values[key]
            if callable(value):
                value = value(self.measures)
            result = [] if value is None else [{"metric": {}, "value": [1700000000.0, str(value)]}]
            return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

        super().__init__(answer)


class Webhook(_Server):
    """Records the JSON posted to it and answers `status` (an int, or a callable of the call count)."""

    def __init__(self, status: int | Callable[[int], int] = 200):
        self.calls: list[dict] = []

        def answer(method, path, query, body):
            try:
                self.calls.append(json.loads(body or b"{}"))
            except ValueError:
                self.calls.append({})
            code = status(len(self.calls)) if callable(status) else status
            return code, {"ok": 200 <= code < 300}

        super().__init__(answer)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, every: float = 0.05) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


"""Kubernetes access: the only package that imports `kubernetes`, and only inside functions, so
that importing meshctl.kube (and every command that merely may talk to a cluster) stays cheap.

Objects go in and come out as plain dicts (the JSON the API server sends), never as the client's
pydantic models. The client's typed APIs cost a third of a second on first use (they load the
models), so this package uses only its kubeconfig loader and its REST transport
(`ApiClient.call_api`) with its own path mapping: a table of built-in kinds, the Istio kinds from
meshctl.schemas, and API discovery for anything else.

Every failure to talk to the cluster becomes a ClusterError (exit 3): one line naming the server,
and a hint. `Conflict`, `AlreadyExists`, `NotFound` and `Invalid` are subclasses callers may catch.

    k = kube.client(kubeconfig, context, timeout=10)
    k.get("apps/v1", "Deployment", "istiod", "istio-system")   # dict or None

Modules: config (kubeconfig and in-cluster loading, and its errors), api (`Kube`, `client`),
resource_types (kinds to REST paths), errors (the ClusterError subclasses and the wording of
failures), portforward (Kube.port_forward's threaded local port, Kube.connection, and the
port-forward path and refusal wording meshctl.proxy.portforward shares).
"""
from meshctl.errors import ClusterError
from meshctl.kube.api import Kube, client
from meshctl.kube.errors import AlreadyExists, Conflict, Invalid, NotFound
from meshctl.kube.portforward import Connection

__all__ = ["AlreadyExists", "ClusterError", "Conflict", "Connection", "Invalid", "Kube", "NotFound", "client"]

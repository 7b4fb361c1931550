"""Application probes and Prometheus annotations under a sidecar.

With mutual TLS the kubelet cannot reach the application's HTTP/TCP/gRPC probes, so they are
rewritten to the agent's status port (`/app-health/<container>/<kind>` on 15020), and the
original probes are kept in the sidecar's `ISTIO_KUBE_APP_PROBERS` environment variable for the
agent to run. Prometheus scrape annotations are pointed at the agent's merged metrics endpoint
and the originals kept in `ISTIO_PROMETHEUS_ANNOTATIONS`.
"""
from __future__ import annotations

import json
import re

from meshctl.errors import InputError

PROXY = "istio-proxy"
APP_PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS"
PROMETHEUS_ENV = "ISTIO_PROMETHEUS_ANNOTATIONS"
_SANITIZE = re.compile(r"[^a-zA-Z0-9_]")
_PROMETHEUS_KEYS = {"prometheus_io_path", "prometheus_io_port", "prometheus_io_scrape",
                    "prometheus_istio_io_scrape_targets"}
_RESERVED_PORTS = {
    "15000": "Envoy admin", "15001": "outbound traffic capture", "15004": "pilot debug",
    "15006": "inbound traffic capture", "15008": "HBONE tunnel",
    "15020": "pilot-agent status / merged Prometheus", "15021": "Envoy health", "15053": "DNS proxy",
    "15090": "Envoy Prometheus (already merged)",
}
_PROBES = (("readinessProbe", "readyz"), ("livenessProbe", "livez"), ("startupProbe", "startupz"))
_HANDLERS = (("preStop", "prestopz"), ("postStart", "poststartz"))
_ACTION_ORDER = {"httpGet": ("path", "port", "host", "scheme", "httpHeaders"),
                 "tcpSocket": ("port", "host"), "grpc": ("port", "service")}


def sanitize(name: str) -> str:
    return _SANITIZE.sub("_", name)


def find_container(spec: dict, name: str) -> dict | None:
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict) and c.get("name") == name:
                return c
    return None


def _ordered(action: dict, kind: str) -> dict:
    order = _ACTION_ORDER[kind]
    out = {k: action[k] for k in order if action.get(k) not in (None, "", [])}
    out.update({k: v for k, v in action.items() if k not in out and v not in (None, "", [])})
    return out


def _prober(probe, lifecycle: bool = False) -> dict | None:
    if not isinstance(probe, dict):
        return None
    kinds = ("httpGet", "tcpSocket") if lifecycle else ("httpGet", "tcpSocket", "grpc")
    for kind in kinds:
        if isinstance(probe.get(kind), dict):
            out = {kind: _ordered(probe[kind], kind)}
            if not lifecycle and probe.get("timeoutSeconds"):
                out["timeoutSeconds"] = probe["timeoutSeconds"]
            return out
    return None


def _resolve_port(prober: dict | None, ports: dict, status_port: int) -> dict | None:
    if prober is None:
        return None
    if "grpc" in prober:
        return prober
    kind = "httpGet" if "httpGet" in prober else "tcpSocket"
    port = prober[kind].get("port")
    if isinstance(port, str):
        if port not in ports:
            return None
        prober[kind]["port"] = ports[port]
    elif port == status_port:
        return None  # already rewritten
    return prober


def dump_app_probers(spec: dict, status_port: int) -> str:
    out: dict[str, dict] = {}
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        if not isinstance(c, dict) or c.get("name") == PROXY:
            continue
        name = c.get("name", "")
        ports = {p["name"]: p.get("containerPort") for p in c.get("ports") or []
                 if isinstance(p, dict) and p.get("name")}
        for field, suffix in _PROBES:
            p = _resolve_port(_prober(c.get(field)), ports, status_port)
            if p is not None:
                out[f"/app-health/{name}/{suffix}"] = p
        lifecycle = c.get("lifecycle")
        if isinstance(lifecycle, dict):
            for field, suffix in _HANDLERS:
                p = _resolve_port(_prober(lifecycle.get(field), lifecycle=True), ports, status_port)
                if p is not None:
                    out[f"/app-lifecycle/{name}/{suffix}"] = p
    if not out:
        return ""
    return json.dumps({k: out[k] for k in sorted(out)}, separators=(",", ":"), default=str)


def _rewrite_action(action: dict, url: str, port: int) -> dict:
    action = dict(action)
    action["path"] = url
    action["port"] = port
    if action.get("scheme") == "HTTPS":
        action["scheme"] = "HTTP"
    return action


def _convert(probe, url: str, port: int, lifecycle: bool = False):
    if not isinstance(probe, dict):
        return None
    if isinstance(probe.get("httpGet"), dict):
        out = dict(probe)
        out["httpGet"] = _rewrite_action(probe["httpGet"], url, port)
        return out
    kinds = ("tcpSocket",) if lifecycle else ("tcpSocket", "grpc")
    for kind in kinds:
        if isinstance(probe.get(kind), dict):
            out = {}
            for k, v in probe.items():
                if k == kind:
                    out["httpGet"] = {"path": url, "port": port}
                else:
                    out[k] = v
            return out
    return None


def rewrite_probes(spec: dict, annotations: dict, status_port: int) -> None:
    value = annotations.get("status.sidecar.istio.io/port")
    if value is not None:
        try:
            status_port = int(value)
        except ValueError:
            pass
    for key in ("containers", "initContainers"):
        items = list(spec.get(key) or [])
        for i, c in enumerate(items):
            if not isinstance(c, dict) or c.get("name") == PROXY:
                continue
            if not any(f in c for f, _ in _PROBES) and not isinstance(c.get("lifecycle"), dict):
                continue
            c = items[i] = dict(c)
            name = c.get("name", "")
            for field, suffix in _PROBES:
                new = _convert(c.get(field), f"/app-health/{name}/{suffix}", status_port)
                if new is not None:
                    c[field] = new
            lifecycle = c.get("lifecycle")
            if isinstance(lifecycle, dict):
                lifecycle = dict(lifecycle)
                for field, suffix in _HANDLERS:
                    new = _convert(lifecycle.get(field), f"/app-lifecycle/{name}/{suffix}", status_port, True)
                    if new is not None:
                        lifecycle[field] = new
                c["lifecycle"] = lifecycle
        if key in spec:
            spec[key] = items


def should_rewrite(annotations: dict, default: bool) -> bool:
    value = annotations.get("sidecar.istio.io/rewriteAppHTTPProbers")
    if value is not None:
        v = str(value)
        if v in ("1", "t", "T", "true", "TRUE", "True"):
            return True
        if v in ("0", "f", "F", "false", "FALSE", "False"):
            return False
    return default


def _own_sidecar(spec: dict) -> dict | None:
    """The istio-proxy container, replaced in its list by a copy the caller may modify."""
    for key in ("containers", "initContainers"):
        items = spec.get(key) or []
        for i, c in enumerate(items):
            if isinstance(c, dict) and c.get("name") == PROXY:
                items = list(items)
                items[i] = dict(c)
                spec[key] = items
                return items[i]
    return None


def apply_rewrite(spec: dict, annotations: dict, status_port: int, default: bool) -> None:
    if find_container(spec, PROXY) is None or not should_rewrite(annotations, default):
        return
    probers = dump_app_probers(spec, status_port)
    if probers:
        sidecar = _own_sidecar(spec)
        env = list(sidecar.get("env") or [])
        env.append({"name": APP_PROBERS_ENV, "value": probers})
        sidecar["env"] = env
    rewrite_probes(spec, annotations, status_port)


def _parse_bool(value) -> bool | None:
    v = str(value)
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None


def _scrape_enabled(annotations: dict) -> bool:
    for k, v in annotations.items():
        if sanitize(k) == "prometheus_io_scrape":
            b = _parse_bool(v)
            if b is not None:
                return b
    return True


def _port_error(port: str, target: str, where: str) -> str | None:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"invalid {where}: invalid port {port!r}"
    canon = str(int(port))
    if canon == target:
        return f"invalid {where}: port {port} conflicts with agent port"
    if canon in _RESERVED_PORTS:
        return f"invalid {where}: port {port} is reserved for Istio ({_RESERVED_PORTS[canon]}) and cannot be scraped"
    return None


def apply_prometheus_merge(spec: dict, annotations: dict, status_port: int, mesh_merge: bool, where: str) -> None:
    if not _scrape_enabled(annotations):
        return
    merge = mesh_merge
    if "prometheus.istio.io/merge-metrics" in annotations:
        b = _parse_bool(annotations["prometheus.istio.io/merge-metrics"])
        if b is not None:
            merge = b
    if not merge:
        return
    target = str(status_port)
    for k, v in annotations.items():
        if sanitize(k) == "prometheus_io_port":
            if str(v) == target:
                return
            break
    cfg = {"scrape": "", "path": "", "port": ""}
    targets = []
    for k, v in annotations.items():
        s = sanitize(k)
        if s == "prometheus_io_port":
            cfg["port"] = str(v)
        elif s == "prometheus_io_scrape":
            cfg["scrape"] = str(v)
        elif s == "prometheus_io_path":
            cfg["path"] = str(v)
        elif s == "prometheus_istio_io_scrape_targets":
            parsed = []
            for entry in str(v).split(","):
                entry = entry.strip()
                if not entry:
                    continue
                port, _, path = entry.partition(":")
                port = port.strip()
                if not port:
                    parsed = None
                    break
                path = path.strip() or "/metrics"
                parsed.append({"port": port, "path": path if path.startswith("/") else "/" + path})
            if parsed:
                targets = parsed
    if targets:
        cfg["port"], cfg["path"] = targets[0]["port"], targets[0]["path"]
        for t in targets:
            err = _port_error(t["port"], target, "prometheus scrape targets")
            if err:
                raise InputError(f"{where}: {err}", hint="fix the prometheus.istio.io/scrape-targets annotation")
        cfg["targets"] = targets
    elif cfg["port"]:
        err = _port_error(cfg["port"], target, "prometheus scrape configuration")
        if err:
            raise InputError(f"{where}: {err}", hint="fix the prometheus.io/port annotation")
    sidecar = find_container(spec, PROXY)
    if sidecar is not None and (cfg["scrape"] or cfg["path"] or cfg["port"] or targets):
        sidecar = _own_sidecar(spec)
        env = list(sidecar.get("env") or [])
        env.append({"name": PROMETHEUS_ENV, "value": json.dumps(cfg, separators=(",", ":"))})
        sidecar["env"] = env
    for k in [k for k in annotations if sanitize(k) in _PROMETHEUS_KEYS]:
        del annotations[k]
    annotations["prometheus.io/port"] = target
    annotations["prometheus.io/path"] = "/stats/prometheus"
    annotations["prometheus.io/scrape"] = "true"


def apply_secure_prometheus(spec: dict, annotations: dict) -> None:
    if any(sanitize(k) == "prometheus_istio_io_secure_port" for k in annotations):
        return
    sidecar = find_container(spec, PROXY)
    if sidecar is None:
        return
    for env in sidecar.get("env") or []:
        if env.get("name") == "ENVOY_SECURE_MERGED_METRICS_PORT" and env.get("value") not in (None, "", "0"):
            annotations["prometheus.istio.io/secure-port"] = env["value"]
            return

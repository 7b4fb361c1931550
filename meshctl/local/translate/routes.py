"""Routes: VirtualService http entries as Envoy routes (match, forward with weights, retries,
timeout, rewrite and mirrors, redirect, direct response, fault injection, header changes), the
default route of a host no VirtualService names, and the domains a service answers to."""
from __future__ import annotations

from typing import Any, Optional

from meshctl import hosts
from meshctl.local.model import Port, Service
from meshctl.local.translate.index import Index
from meshctl.local.translate.xds import (
    FAULT_TYPE,
    ISTIO_CONFIG,
    PREVIOUS_HOSTS_TYPE,
    cluster_name,
    duration,
    percent,
    percent_of,
)
from meshctl.resources import Resource, as_dict, as_list
from meshctl.selectors import label_map, matches

REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER", 307: "TEMPORARY_REDIRECT",
                  308: "PERMANENT_REDIRECT"}


# --- matches ---------------------------------------------------------------------------------------

def _string_match(m: Any) -> Optional[dict]:
    if not isinstance(m, dict):
        return None
    if "exact" in m:
        return {"exact": str(m["exact"])}
    if "prefix" in m:
        return {"prefix": str(m["prefix"])}
    if "regex" in m:
        return {"safe_regex": {"regex": str(m["regex"])}}
    return None


def _named_match(name: Any, value: Any) -> dict:
    """A header or query parameter: its string match, or present when the match is empty."""
    sm = _string_match(value)
    return {"name": str(name), "string_match": sm} if sm else {"name": str(name), "present_match": True}


def _route_match(m: dict) -> dict:
    out: dict = {}
    uri = as_dict(m.get("uri"))
    if "exact" in uri:
        out["path"] = str(uri["exact"])
    elif "prefix" in uri:
        out["prefix"] = str(uri["prefix"])
    elif "regex" in uri:
        out["safe_regex"] = {"regex": str(uri["regex"])}
    else:
        out["prefix"] = "/"
    if m.get("ignoreUriCase"):
        out["case_sensitive"] = False
    headers = [_named_match(name, value) for name, value in as_dict(m.get("headers")).items()]
    headers += [dict(_named_match(name, value), invert_match=True)
                for name, value in as_dict(m.get("withoutHeaders")).items()]
    for field_name, header in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        sm = _string_match(m.get(field_name))
        if sm:
            headers.append({"name": header, "string_match": sm})
    if headers:
        out["headers"] = headers
    qps = [_named_match(name, value) for name, value in as_dict(m.get("queryParams")).items()]
    if qps:
        out["query_parameters"] = qps
    return out


# --- what a route does -----------------------------------------------------------------------------

def _header_ops(target: dict, direction: str, ops: Any) -> None:
    """Istio's headers.request|response (set, add, remove) as `<direction>_headers_to_add|remove`."""
    add, remove = [], []
    if isinstance(ops, dict):
        for name, value in as_dict(ops.get("set")).items():
            add.append({"header": {"key": str(name), "value": str(value)}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
        for name, value in as_dict(ops.get("add")).items():
            add.append({"header": {"key": str(name), "value": str(value)}, "append_action": "APPEND_IF_EXISTS_OR_ADD"})
        remove = [str(name) for name in as_list(ops.get("remove"))]
    if add:
        target[f"{direction}_headers_to_add"] = add
    if remove:
        target[f"{direction}_headers_to_remove"] = remove


def _direct_response(dr: dict) -> dict:
    out: dict = {"status": int(dr.get("status") or 200)}
    body = as_dict(dr.get("body"))
    if body.get("string") is not None:
        out["body"] = {"inline_string": str(body["string"])}
    return out


def _redirect(rd: dict) -> dict:
    redirect: dict = {}
    if rd.get("uri"):
        redirect["path_redirect"] = str(rd["uri"])
    if rd.get("authority"):
        redirect["host_redirect"] = str(rd["authority"])
    if isinstance(rd.get("port"), int):
        redirect["port_redirect"] = rd["port"]
    if rd.get("scheme"):
        redirect["scheme_redirect"] = str(rd["scheme"])
    redirect["response_code"] = REDIRECT_CODES.get(int(rd.get("redirectCode") or 301), "MOVED_PERMANENTLY")
    return redirect


def _rewrite(action: dict, rw: dict, match: Optional[dict]) -> None:
    if rw.get("uri") is not None:
        uri = as_dict((match or {}).get("uri"))
        if "regex" in uri:
            action["regex_rewrite"] = {"pattern": {"regex": str(uri["regex"])}, "substitution": str(rw["uri"])}
        else:
            action["prefix_rewrite"] = str(rw["uri"])
    if isinstance(rw.get("uriRegexRewrite"), dict):
        rr = rw["uriRegexRewrite"]
        action["regex_rewrite"] = {"pattern": {"regex": str(rr.get("match") or "")},
                                   "substitution": str(rr.get("rewrite") or "")}
    if rw.get("authority"):
        action["host_rewrite_literal"] = str(rw["authority"])


def _fault(fault: Any) -> Optional[dict]:
    """Istio's fault (delay, abort) as the fault filter's per-route configuration."""
    if not isinstance(fault, dict) or not fault:
        return None
    cfg: dict = {"@type": FAULT_TYPE}
    delay = fault.get("delay") if isinstance(fault.get("delay"), dict) else None
    if delay and delay.get("fixedDelay"):
        cfg["delay"] = {"fixed_delay": duration(delay["fixedDelay"]) or "0s", "percentage": percent_of(delay)}
    abort = fault.get("abort") if isinstance(fault.get("abort"), dict) else None
    if abort and abort.get("httpStatus") is not None:
        cfg["abort"] = {"http_status": int(abort["httpStatus"]), "percentage": percent_of(abort)}
    return cfg if len(cfg) > 1 else None


def _mirrors(http: dict) -> list[tuple[dict, Any]]:
    """(destination, percentage) of `mirror` (+ mirrorPercentage or mirrorPercent) and `mirrors`."""
    out = []
    if isinstance(http.get("mirror"), dict):
        mp = http.get("mirrorPercentage") if isinstance(http.get("mirrorPercentage"), dict) else None
        out.append((http["mirror"], mp.get("value") if mp else (http.get("mirrorPercent") if http.get("mirrorPercent") is not None else 100)))
    for m in http.get("mirrors") or []:
        if isinstance(m, dict) and isinstance(m.get("destination"), dict):
            pct = (m.get("percentage") or {}).get("value", 100) if isinstance(m.get("percentage"), dict) else 100
            out.append((m["destination"], pct))
    return out


def _retry_policy(retries: Optional[dict]) -> Optional[dict]:
    base = {"retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                      "typed_config": {"@type": PREVIOUS_HOSTS_TYPE}}],
            "host_selection_retry_max_attempts": "5"}
    if retries is None:  # Istio's default: 2 retries on connection failures and 503
        return dict(base, retry_on="connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                    num_retries=2, retriable_status_codes=[503])
    attempts = retries.get("attempts")
    if not isinstance(attempts, int) or attempts <= 0:
        return None
    on = [x.strip() for x in str(retries.get("retryOn") or "connect-failure,refused-stream,unavailable,cancelled,503").split(",") if x.strip()]
    codes = [int(x) for x in on if x.isdigit()]
    kinds = [x for x in on if not x.isdigit()]
    if codes and "retriable-status-codes" not in kinds:
        kinds.append("retriable-status-codes")
    policy = dict(base, retry_on=",".join(kinds), num_retries=attempts)
    if codes:
        policy["retriable_status_codes"] = codes
    if retries.get("perTryTimeout"):
        policy["per_try_timeout"] = duration(retries["perTryTimeout"])
    return policy


class Routes:
    """Envoy routes from VirtualServices, for one viewing namespace (short hosts resolve there)."""

    def __init__(self, index: Index):
        self.index = index

    def destination_cluster(self, vs: Resource, dest: dict, default_port: int) -> str:
        host = hosts.fqdn(str(dest.get("host") or ""), vs.namespace or "default")
        svc = self.index.mesh.services.get(host)
        port = (dest.get("port") or {}).get("number") if isinstance(dest.get("port"), dict) else None
        if not isinstance(port, int):
            port = svc.ports[0].number if svc is not None and len(svc.ports) == 1 else default_port
        return cluster_name("outbound", port, str(dest.get("subset") or ""), host)

    def action(self, vs: Resource, http: dict, port: int, match: Optional[dict]) -> dict:
        """The route (minus match) of one VirtualService http entry."""
        route: dict = {}
        meta = {"filter_metadata": {"istio": {"config": ISTIO_CONFIG.format(
            ns=vs.namespace, kind="virtual-service", name=vs.name)}}}
        if http.get("name"):
            route["name"] = str(http["name"])
        route["metadata"] = meta
        if isinstance(http.get("directResponse"), dict):
            route["direct_response"] = _direct_response(http["directResponse"])
        elif isinstance(http.get("redirect"), dict):
            route["redirect"] = _redirect(http["redirect"])
        else:
            route["route"] = self._forward(vs, http, port, match)
        fault = _fault(http.get("fault"))
        if fault is not None:
            route["typed_per_filter_config"] = {"envoy.filters.http.fault": fault}
        headers = as_dict(http.get("headers"))
        _header_ops(route, "request", headers.get("request"))
        _header_ops(route, "response", headers.get("response"))
        return route

    def _forward(self, vs: Resource, http: dict, port: int, match: Optional[dict]) -> dict:
        """A route action: to one cluster or weighted ones, with timeout, retries, rewrite, mirrors."""
        dests = [d for d in http.get("route") or [] if isinstance(d, dict) and isinstance(d.get("destination"), dict)]
        action: dict = {}
        weighted = [(self.destination_cluster(vs, d["destination"], port), int(d.get("weight") or 0), d)
                    for d in dests]
        if len(weighted) > 1:
            kept = [w for w in weighted if w[1] > 0] or weighted[:1]
            clusters = []
            for name, weight, d in kept:
                c = {"name": name, "weight": weight if weight > 0 else 100}
                _header_ops(c, "request", as_dict(d.get("headers")).get("request"))
                clusters.append(c)
            action["weighted_clusters"] = {"clusters": clusters}
        elif weighted:
            action["cluster"] = weighted[0][0]
        else:
            action["cluster"] = "BlackHoleCluster"
        action["timeout"] = duration(http.get("timeout")) or "0s"
        policy = _retry_policy(http.get("retries") if isinstance(http.get("retries"), dict) else None)
        if policy is not None:
            action["retry_policy"] = policy
        _rewrite(action, as_dict(http.get("rewrite")), match)
        mirrors = _mirrors(http)
        if mirrors:
            action["request_mirror_policies"] = [
                {"cluster": self.destination_cluster(vs, d, port), "runtime_fraction": {"default_value": percent(p)}}
                for d, p in mirrors]
        return action

    def for_virtual_service(self, vs: Resource, port: int, namespace: str, labels: Optional[dict],
                            gateway: Optional[str] = None) -> list[dict]:
        out = []
        for http in vs.spec.get("http") or []:
            if not isinstance(http, dict):
                continue
            conditions = [m for m in http.get("match") or [] if isinstance(m, dict)] or [None]
            for m in conditions:
                if m is not None:
                    if isinstance(m.get("port"), int) and m["port"] != port:
                        continue
                    if m.get("sourceLabels") and (labels is None or not matches(labels, label_map(m["sourceLabels"]))):
                        continue
                    if m.get("sourceNamespace") and str(m["sourceNamespace"]) != namespace:
                        continue
                    gws = [str(g) for g in m.get("gateways") or []]
                    if gws and (gateway or "mesh") not in [gateway_ref(vs, g) for g in gws]:
                        continue
                route = self.action(vs, http, port, m)
                route = {"match": _route_match(m or {}), **route}
                out.append(route)
        return out


def gateway_ref(vs: Resource, name: str) -> str:
    """A VirtualService's `gateways` entry as NAMESPACE/NAME (`mesh` stays `mesh`)."""
    if name == "mesh" or "/" in name:
        return name
    return f"{vs.namespace or 'default'}/{name}"


def domains(svc: Service, port: Port, namespace: str) -> list[str]:
    """The Host values a sidecar in `namespace` routes to a service port: its FQDN and the
    shorter names cluster DNS completes (the bare name in its own namespace), with the port, and
    without it where the port is the service's only HTTP port or 80."""
    name, ns = hosts.short_name(svc.fqdn), svc.namespace
    names = [svc.fqdn]
    if svc.fqdn.endswith("." + hosts.CLUSTER_DOMAIN_SUFFIX):
        names += [f"{name}.{ns}.svc", f"{name}.{ns}"]
        if namespace == ns:
            names.append(name)
    bare = port.number == 80 or len([p for p in svc.ports if p.http]) == 1
    out = []
    for n in names:
        out.append(f"{n}:{port.number}")
        if bare:
            out.append(n)
    return out


def default_route(svc: Service, port: Port) -> dict:
    """A host no VirtualService names: every request to the service port, Istio's default retries."""
    return {"name": "default", "match": {"prefix": "/"},
            "route": {"cluster": cluster_name("outbound", port.number, "", svc.fqdn), "timeout": "0s",
                      "retry_policy": _retry_policy(None)}}

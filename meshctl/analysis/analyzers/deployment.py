"""Deployment analyzers: a workload behind several Services that disagree on a port."""
from __future__ import annotations

from meshctl.analysis.framework import Analyzer, Context, as_list, dig, register
from meshctl.analysis.helpers import in_mesh
from meshctl.resources import Resource, as_int, yaml_text
from meshctl.selectors import label_map, matches

_WAYPOINT = "istio.io-mesh-controller"




@register
class MultiServiceAnalyzer(Analyzer):
    name = "deployment.MultiServiceAnalyzer"
    description = "Checks association between services and pods"
    inputs = ("Service", "Deployment", "Namespace")

    def analyze(self, ctx: Context) -> None:
        # Services with a selector, indexed by (namespace, one label of their selector): a
        # Service can only select a pod template that has that label
        services: dict[tuple[str, str, str], list[tuple[Resource, dict]]] = {}
        for svc in ctx.of_kind("Service"):
            sel = label_map(svc.spec.get("selector"))
            if sel:
                k = min(sel)
                services.setdefault((svc.namespace or "", k, sel[k]), []).append((svc, sel))
        for dep in ctx.of_kind("Deployment"):
            if dep.labels.get("gateway.istio.io/managed") == _WAYPOINT or not in_mesh(ctx, dep):
                continue
            pod_labels = label_map(dig(dep.spec, "template", "metadata", "labels"))
            ns = dep.namespace or ""
            matching = [svc for k, v in pod_labels.items() for svc, sel in services.get((ns, k, v), ())
                        if matches(pod_labels, sel)]
            matching.sort(key=lambda r: (r.namespace or "", r.name))
            if not matching:
                continue
            self._protocols(ctx, dep, matching)
            self._target_ports(ctx, dep, matching)

    @staticmethod
    def _protocols(ctx: Context, dep: Resource, svcs: list[Resource]) -> None:
        ports: dict[int, dict[str, list[str]]] = {}
        for svc in svcs:
            for p in as_list(svc.spec.get("ports")):
                if not isinstance(p, dict):
                    continue
                proto = yaml_text(p.get("protocol") or "TCP")
                ports.setdefault(as_int(p.get("port")), {}).setdefault(proto, []).append(svc.full_name)
        for port in sorted(ports):
            by_proto = ports[port]
            if len(by_proto) > 1:
                names = sorted(n for names in by_proto.values() for n in names)
                ctx.report("IST0116", dep, dep.name, port, names, path=("metadata", "name"))

    @staticmethod
    def _target_ports(ctx: Context, dep: Resource, svcs: list[Resource]) -> None:
        targets: dict[str, dict[int, str]] = {}
        for svc in svcs:
            for p in as_list(svc.spec.get("ports")):
                if not isinstance(p, dict):
                    continue
                tp = p.get("targetPort")
                t = "" if tp is None else yaml_text(tp)
                if t in ("", "0"):
                    t = yaml_text(as_int(p.get("port")))
                targets.setdefault(t, {})[as_int(p.get("port"))] = svc.full_name
        for t in sorted(targets):
            by_port = targets[t]
            if len(by_port) > 1:
                ctx.report("IST0137", dep, dep.name, sorted(by_port.values()), t, sorted(by_port),
                           path=("metadata", "name"))

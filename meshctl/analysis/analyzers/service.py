"""Service analyzers: port names that tell Istio the protocol."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_list
from meshctl.analysis.helpers import is_control_plane, port_protocol
from meshctl.resources import yaml_text

# Services created by a Gateway API controller are not the user's to rename.
_MANAGED_GATEWAY_VALUES = {"istio.io-gateway-controller", "istio.io-mesh-controller",
                           "istio.io-eastwest-controller"}


@analyzer("service.PortNameAnalyzer", "Checks the port names associated with each service", inputs=("Service",))
def port_name(ctx: Context) -> None:
    for svc in ctx.of_kind("Service"):
        if is_control_plane(svc):
            continue
        if svc.labels.get("gateway.istio.io/managed") in _MANAGED_GATEWAY_VALUES:
            continue
        spec = svc.spec
        external = spec.get("type") == "ExternalName"
        for i, port in enumerate(as_list(spec.get("ports"))):
            if not isinstance(port, dict):
                continue
            name = yaml_text(port.get("name") or "")
            proto = port_protocol(port.get("port"), name, port.get("protocol"), port.get("appProtocol"))
            if proto == "Unsupported" or (name == "tcp" and external):
                if external:
                    ctx.report("IST0150", svc, path=("spec", "ports", i))
                else:
                    target = port.get("targetPort")
                    ctx.report("IST0118", svc, name, port.get("port", 0),
                               0 if target is None else target, path=("spec", "ports", i))

"""Telemetry resources: providers, selectors, several defaults per namespace, deprecated providers."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, as_list, dig
from meshctl.analysis.helpers import WORKLOAD_KINDS, pods, workloads
from meshctl.resources import yaml_text
from meshctl.selectors import selector_string


@analyzer("telemetry.ProviderAnalyzer",
          "Validates that providers in telemetry resource is valid",
          inputs=("Telemetry",))
def provider(ctx: Context) -> None:
    # with mesh-wide default access-log providers, an entry without providers uses them
    if as_list(dig(ctx.mesh_config, "defaultProviders", "accessLogging")):
        return
    for t in ctx.of_kind("Telemetry"):
        for i, entry in enumerate(as_list(t.spec.get("accessLogging"))):
            entry = as_dict(entry)
            if _is_true(entry.get("disabled")):
                continue
            if not as_list(entry.get("providers")):
                ctx.report("IST0157", t, t.name, t.namespace or "", path=("spec", "accessLogging", i))


def _is_true(value) -> bool:
    if isinstance(value, dict):  # protobuf BoolValue written as {value: true}
        value = value.get("value")
    return value is True


@analyzer("telemetry.SelectorAnalyzer",
          "Validates that telemetries that define a selector match at least one pod, and that "
                   "there aren't multiple telemetry resources that select overlapping pods",
          inputs=("Telemetry", "Pod", *WORKLOAD_KINDS))
def selector(ctx: Context) -> None:
    index = pods(ctx)
    by_pod: dict[int, tuple[object, list]] = {}
    for t in ctx.of_kind("Telemetry"):
        labels = as_dict(dig(t.spec, "selector", "matchLabels"))
        if not labels:
            continue
        selected = index.select(labels, t.namespace)
        if not selected:
            # a Deployment (or other workload) in the input stands for the pods it will run
            if workloads(ctx).select(labels, t.namespace):
                continue
            ctx.report("IST0101", t, "selector", selector_string(labels),
                       path=("spec", "selector", "matchLabels", min(yaml_text(k) for k in labels)))
            continue
        for pod in selected:
            by_pod.setdefault(id(pod), (pod, []))[1].append(t)
    for pod, telemetries in by_pod.values():
        if len(telemetries) < 2:
            continue
        names = sorted(t.name for t in telemetries)
        for t in telemetries:
            ctx.report("IST0159", t, names, pod.namespace or "", pod.name, path=("metadata", "name"))


@analyzer("telemetry.DefaultSelectorAnalyzer",
          "Validates that there aren't multiple telemetry resources that have no selector",
          inputs=("Telemetry",))
def default_selector(ctx: Context) -> None:
    by_ns: dict[str, list] = {}
    for t in ctx.of_kind("Telemetry"):
        if t.spec.get("selector") is None and t.spec.get("targetRef") is None and not t.spec.get("targetRefs"):
            by_ns.setdefault(t.namespace or "", []).append(t)
    for ns, telemetries in by_ns.items():
        if len(telemetries) > 1:
            names = sorted(t.name for t in telemetries)
            for t in telemetries:
                ctx.report("IST0160", t, names, ns, path=("metadata", "name"))


@analyzer("telemetry.LightstepAnalyzer", "Validates that lightstep provider is still used", inputs=("Telemetry",))
def lightstep(ctx: Context) -> None:
    lightstep = {yaml_text(p.get("name")) for p in as_list(ctx.mesh_config.get("extensionProviders"))
                 if isinstance(p, dict) and p.get("lightstep") is not None}
    if not lightstep:
        return
    for t in ctx.of_kind("Telemetry"):
        for i, tracing in enumerate(as_list(t.spec.get("tracing"))):
            for j, provider in enumerate(as_list(as_dict(tracing).get("providers"))):
                name = yaml_text(as_dict(provider).get("name"))
                if name in lightstep:
                    ctx.report("IST0002", t,
                               f"The Lightstep provider {name} is deprecated, please migrate to OpenTelemetry provider.",
                               path=("spec", "tracing", i, "providers", j, "name"))

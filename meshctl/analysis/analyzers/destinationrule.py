"""DestinationRule analyzers: TLS without server verification; subsets that select no pods."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_list, dig
from meshctl.analysis.helpers import service_hosts
from meshctl.kinds import CONTROLLER_KINDS, POD_TEMPLATE_PATHS
from meshctl.resources import yaml_text
from meshctl.selectors import LabelIndex, label_map

_VERIFYING_MODES = ("SIMPLE", "MUTUAL")


def _unverified(tls, has_selector: bool) -> bool:
    """TLS to the server without caCertificates (a credentialName on a workload-scoped rule counts)."""
    if not isinstance(tls, dict) or tls.get("mode") not in _VERIFYING_MODES:
        return False
    if tls.get("caCertificates"):
        return False
    return not (tls.get("credentialName") and has_selector)


def _port_string(port) -> str:
    """The port selector as Istio prints it (`number:9080`)."""
    if isinstance(port, dict) and port.get("number"):
        return f"number:{port['number']}"
    return ""


@analyzer("destinationrule.CaCertificateAnalyzer",
          "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL",
          inputs=("DestinationRule",))
def ca_certificate(ctx: Context) -> None:
    for dr in ctx.of_kind("DestinationRule"):
        spec = dr.spec
        host = yaml_text(spec.get("host") or "")
        has_selector = spec.get("workloadSelector") is not None
        tls = dig(spec, "trafficPolicy", "tls")
        if _unverified(tls, has_selector):
            ctx.report("IST0128", dr, dr.full_name, dr.namespace or "", tls["mode"], host,
                       path=("spec", "trafficPolicy", "tls", "caCertificates"))
        for i, p in enumerate(as_list(dig(spec, "trafficPolicy", "portLevelSettings"))):
            tls = dig(p, "tls")
            if _unverified(tls, has_selector):
                ctx.report("IST0129", dr, dr.full_name, dr.namespace or "", tls["mode"], host,
                           _port_string(dig(p, "port")),
                           path=("spec", "trafficPolicy", "portLevelSettings", i, "tls", "caCertificates"))


def _locality(node_labels: dict) -> str:
    region = node_labels.get("topology.kubernetes.io/region", "")
    zone = node_labels.get("topology.kubernetes.io/zone", "")
    subzone = node_labels.get("topology.istio.io/subzone", "")
    if not zone:
        return region
    return f"{region}/{zone}/{subzone}" if subzone else f"{region}/{zone}"


def _augmented_labels(pod, nodes: dict[str, dict]) -> dict[str, str]:
    """A pod's labels plus the topology labels Istio adds from its node (as the registry does)."""
    labels = label_map(pod.labels)
    node = yaml_text(pod.spec.get("nodeName") or "")
    if node in nodes:
        parts = _locality(nodes[node]).split("/")
        region, zone, subzone = (parts + ["", "", ""])[:3]
        if region:
            labels["topology.kubernetes.io/region"] = region
        if zone:
            labels["topology.kubernetes.io/zone"] = zone
        if subzone:
            labels["topology.istio.io/subzone"] = subzone
    if node:
        labels["kubernetes.io/hostname"] = node
    return labels


@analyzer("destinationrule.SubsetSelectPodAnalyzer",
          "Checks if pods are selected by subsets in destination rules.",
          inputs=("DestinationRule", "Pod", "Service", "ServiceEntry", "Node", "WorkloadEntry", *CONTROLLER_KINDS))
def subset_select_pod(ctx: Context) -> None:
    """A subset whose labels (with its host's selector) match no endpoint: no Pod, no pod
    template of a workload in the input, and no WorkloadEntry (a VM, or a workload of the local
    mesh, which a Service's or ServiceEntry's selector picks by its `spec.labels` as it picks pods)."""
    hosts = service_hosts(ctx)
    pending: list[tuple] = []
    for dr in ctx.of_kind("DestinationRule"):
        spec = dr.spec
        host = yaml_text(spec.get("host") or "")
        export = [yaml_text(x) for x in as_list(spec.get("exportTo"))]
        entry = hosts.lookup(dr.namespace, export, host)
        if entry is None:
            ctx.report("IST0174", dr, host, path=("spec", "host"))
            continue
        for i, ss in enumerate(as_list(spec.get("subsets"))):
            selector = dict(entry.workload_labels)
            selector.update(label_map(dig(ss, "labels")))
            pending.append((dr, yaml_text(dig(ss, "name") or ""), selector, ("spec", "subsets", i, "name")))
    if not pending:
        return
    nodes = {n.name: label_map(n.labels) for n in ctx.resources.of_kind("Node")}
    pods = [(p, _augmented_labels(p, nodes)) for p in ctx.of_kind("Pod")]
    pods.extend((w, labels) for w, labels in workload_templates(ctx))
    pods.extend((w, label_map(dig(w.body, "spec", "labels"))) for w in ctx.of_kind("WorkloadEntry"))
    index = LabelIndex([p for p, _ in pods], labels_of=_LabelsOf(pods))
    for dr, subset, selector, path in pending:
        if not index.any(selector):
            ctx.report("IST0173", dr, subset, path=path)


class _LabelsOf:
    def __init__(self, pairs):
        self._labels = {id(r): labels for r, labels in pairs}

    def __call__(self, r):
        return self._labels[id(r)]


def workload_templates(ctx: Context):
    """(workload, pod template labels) of workload controllers: in files, a Deployment stands
    for the pods it will run, so a subset selecting its template labels selects pods."""
    for kind in CONTROLLER_KINDS:
        for w in ctx.of_kind(kind):
            labels = dig(w.body, *POD_TEMPLATE_PATHS[kind], "metadata", "labels")
            if isinstance(labels, dict):
                yield w, label_map(labels)

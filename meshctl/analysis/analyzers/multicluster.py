"""Multi-cluster configuration: mesh networks that name unknown service registries."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, as_list
from meshctl.resources import Resource, yaml_text

MULTICLUSTER_SECRET_LABEL = "istio/multiCluster"
BUILTIN_REGISTRIES = ("Mock", "Kubernetes", "External")


def _mesh_networks(ctx: Context) -> list[tuple[Resource, dict, tuple]]:
    """(resource, MeshNetworks, path prefix) from the `istio` ConfigMap(s) of the Istio namespace
    (data.meshNetworks) and from a MeshNetworks document given to the run."""
    import yaml

    from meshctl.loader import safe_load

    out: list[tuple[Resource, dict, tuple]] = []
    given = getattr(ctx, "mesh_networks", None)
    if isinstance(given, dict):
        body = {"apiVersion": "v1alpha1", "kind": "MeshNetworks",
                "metadata": {"name": "meshnetworks", "namespace": ctx.istio_namespace}, "spec": given}
        out.append((Resource.from_dict(body), given, ("spec",)))
    for cm in ctx.of_kind("ConfigMap"):
        if cm.namespace != ctx.istio_namespace or not (cm.name == "istio" or cm.name.startswith("istio-")):
            continue
        text = as_dict(cm.body.get("data")).get("meshNetworks")
        if not isinstance(text, str):
            continue
        try:
            data = safe_load(text)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            out.append((cm, data, ("data", "meshNetworks")))
    return out


@analyzer("meshnetworks.MeshNetworksAnalyzer",
          "Check the validity of MeshNetworks in the cluster",
          inputs=("ConfigMap", "Secret"),
          always=True)
def mesh_networks(ctx: Context) -> None:
    sources = _mesh_networks(ctx)
    if not sources:
        return
    registries = set(BUILTIN_REGISTRIES)
    for secret in ctx.of_kind("Secret"):
        if yaml_text(secret.labels.get(MULTICLUSTER_SECRET_LABEL)) == "true":
            registries.update(yaml_text(k) for k in as_dict(secret.body.get("data")))
            registries.update(yaml_text(k) for k in as_dict(secret.body.get("stringData")))
    for resource, networks, prefix in sources:
        for network, spec in as_dict(networks.get("networks")).items():
            for j, endpoint in enumerate(as_list(as_dict(spec).get("endpoints"))):
                registry = as_dict(endpoint).get("fromRegistry")
                if registry is not None and yaml_text(registry) not in registries:
                    path = prefix if prefix[0] == "data" else (*prefix, "networks", network, "endpoints", j)
                    ctx.report("IST0126", resource, yaml_text(registry), yaml_text(network), path=path)

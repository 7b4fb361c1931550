"""Istio's own analyzer test cases (../shared/conformance/istio-analyze): for every analyzer, each
case's inputs plus the harness defaults, that one analyzer, and the expected (code, resource)
multiset exactly."""
from __future__ import annotations

import collections
import json

import pytest
import yaml

from meshctl.analysis import framework
from meshctl.loader import load_paths
from meshctl.resources import ResourceSet

CORE = [
    "virtualservice.DestinationHostAnalyzer", "virtualservice.DestinationRuleAnalyzer",
    "virtualservice.GatewayAnalyzer", "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
    "virtualservice.JWTClaimRouteAnalyzer", "schema.ValidationAnalyzer.VirtualService",
    "destinationrule.CaCertificateAnalyzer", "destinationrule.SubsetSelectPodAnalyzer",
    "gateway.IngressGatewayPortAnalyzer", "gateway.SecretAnalyzer", "gateway.ConflictingGatewayAnalyzer",
    "gateway.CertificateAnalyzer", "service.PortNameAnalyzer", "deployment.MultiServiceAnalyzer",
    "injection.Analyzer", "injection.ImageAnalyzer", "injection.ImageAutoAnalyzer",
]
OTHERS = [
    "annotations.K8sAnalyzer", "annotations.AlphaAnalyzer", "deprecation.DeprecationAnalyzer",
    "externalcontrolplane.ExternalControlPlaneAnalyzer", "sidecar.SelectorAnalyzer",
    "meshnetworks.MeshNetworksAnalyzer", "authn.BlockedCIDRsAnalyzer", "auth.AuthorizationPoliciesAnalyzer",
    "serviceentry.Analyzer", "serviceentry.ConflictingServiceEntryProtocolAnalyzer", "webhook.Analyzer",
    "applicationUID.Analyzer", "envoyfilter.EnvoyPatchAnalyzer", "telemetry.ProviderAnalyzer",
    "telemetry.SelectorAnalyzer", "telemetry.DefaultSelectorAnalyzer", "telemetry.LightstepAnalyzer",
    "k8sgateway.SelectorAnalyzer", "k8sgateway.CRDVersionAnalyzer", "conditions.ConditionAnalyzer",
]


def _norm(origin: str) -> str:
    return origin.replace(" default/", " ", 1)


def _found(base, case, cls) -> collections.Counter:
    loaded = load_paths([str(base / "harness-defaults.yaml")] + [str(base / f) for f in case["input_files"]],
                        default_namespace="default")
    harness = {id(r) for r in loaded.resources if r.source.endswith("harness-defaults.yaml")}
    mesh = yaml.safe_load((base / case["mesh_config_file"]).read_text()) if case["mesh_config_file"] else None
    resources = ResourceSet(loaded.resources)
    if case.get("mesh_networks_file"):  # not a meshctl input: handed to the analyzer's context
        ctx = framework.Context(resources=resources, mesh_config=dict(framework.DEFAULT_MESH_CONFIG, **(mesh or {})))
        ctx.mesh_networks = yaml.safe_load((base / case["mesh_networks_file"]).read_text())
        cls().analyze(ctx)
        messages = ctx.messages
    else:
        messages = framework.run(resources, [cls], mesh_config=mesh)
    assert all(m.code != "IST0001" for m in messages), [m.text for m in messages]
    # istioctl drops repeated messages (same text at the same place)
    unique = {(m.code, m.origin, m.reference, m.text): m for m in messages
              if m.resource is None or id(m.resource) not in harness}
    return collections.Counter((code, _norm(origin)) for code, origin, _, _ in unique)


@pytest.mark.parametrize("name", CORE + OTHERS)
def test_istio_cases(shared_dir, name):
    base = shared_dir / "conformance" / "istio-analyze"
    meta = {a["analyzer_name"]: a for a in json.loads((base / "analyzers.json").read_text())}[name]
    cases = [c for c in json.loads((base / "cases.json").read_text()) if c["index"] in meta["cases"]]
    assert cases
    [cls] = [a for a in framework.all_analyzers() if a.name == name]
    for case in cases:
        want = collections.Counter((e["code"], _norm(e["resource"])) for e in case["expected"])
        assert _found(base, case, cls) == want, case["name"]


def test_every_core_analyzer_is_registered_under_istios_name(shared_dir):
    base = shared_dir / "conformance" / "istio-analyze"
    meta = {a["analyzer_name"]: a for a in json.loads((base / "analyzers.json").read_text())}
    registered = {a.name: a for a in framework.all_analyzers()}
    for name in CORE:
        assert name in registered
        if not name.startswith("schema."):  # Istio generates those descriptions per kind
            assert registered[name].description == meta[name]["description"]

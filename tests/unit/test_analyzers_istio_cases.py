"""Istio's own analyzer test cases (../shared/conformance/istio-analyze) for the analyzers of
this area: each case's inputs plus the harness defaults, one analyzer, the expected (code,
resource) multiset exactly."""
import collections
import json

import pytest
import yaml

from meshctl.analysis import framework
from meshctl.loader import load_paths
from meshctl.resources import ResourceSet

ANALYZERS = [
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


def _run_case(base, case, cls) -> collections.Counter:
    loaded = load_paths([str(base / "harness-defaults.yaml")] + [str(base / f) for f in case["input_files"]],
                        default_namespace="default")
    harness = {id(r) for r in loaded.resources if r.source.endswith("harness-defaults.yaml")}
    mesh = yaml.safe_load((base / case["mesh_config_file"]).read_text()) if case["mesh_config_file"] else None
    resources = ResourceSet(loaded.resources)
    if case["mesh_networks_file"]:
        ctx = framework.Context(resources=resources, mesh_config=dict(framework.DEFAULT_MESH_CONFIG, **(mesh or {})))
        ctx.mesh_networks = yaml.safe_load((base / case["mesh_networks_file"]).read_text())
        cls().analyze(ctx)
        messages = ctx.messages
    else:
        messages = framework.run(resources, [cls], mesh_config=mesh)
    assert all(m.code != "IST0001" for m in messages), [m.text for m in messages]
    return collections.Counter((m.code, _norm(m.origin)) for m in messages
                               if m.resource is None or id(m.resource) not in harness)


@pytest.mark.parametrize("name", ANALYZERS)
def test_istio_cases(shared_dir, name):
    base = shared_dir / "conformance" / "istio-analyze"
    meta = {a["analyzer_name"]: a for a in json.loads((base / "analyzers.json").read_text())}[name]
    cases = [c for c in json.loads((base / "cases.json").read_text()) if c["index"] in meta["cases"]]
    assert cases
    [cls] = [a for a in framework.all_analyzers() if a.name == name]
    for case in cases:
        want = collections.Counter((e["code"], _norm(e["resource"])) for e in case["expected"])
        assert _run_case(base, case, cls) == want, case["name"]

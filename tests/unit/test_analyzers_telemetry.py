from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: v1
kind: Pod
metadata: {name: reviews, namespace: shop, labels: {app: reviews, tier: back}}
spec: {}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t-app, namespace: shop}
spec: {selector: {matchLabels: {app: reviews}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t-tier, namespace: shop}
spec: {selector: {matchLabels: {tier: back}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t-none, namespace: shop}
spec:
  selector:
    matchLabels:
      app: nothing
"""


def test_selector_analyzer():
    msgs = run_yaml(DOC, "telemetry.SelectorAnalyzer")
    assert found(msgs) == [("IST0101", "Telemetry shop/t-none"), ("IST0159", "Telemetry shop/t-app"),
                           ("IST0159", "Telemetry shop/t-tier")]
    none = next(m for m in msgs if m.code == "IST0101")
    assert none.reference == reference(DOC, "app: nothing")


def test_default_selector_analyzer():
    doc = """
    apiVersion: telemetry.istio.io/v1
    kind: Telemetry
    metadata: {name: one, namespace: shop}
    spec: {}
    ---
    apiVersion: telemetry.istio.io/v1
    kind: Telemetry
    metadata: {name: two, namespace: shop}
    spec: {tracing: [{randomSamplingPercentage: 1}]}
    ---
    apiVersion: telemetry.istio.io/v1
    kind: Telemetry
    metadata: {name: alone, namespace: other}
    spec: {}
    """
    msgs = run_yaml(doc, "telemetry.DefaultSelectorAnalyzer")
    assert found(msgs) == [("IST0160", "Telemetry shop/one"), ("IST0160", "Telemetry shop/two")]
    assert msgs[0].text.startswith('The Telemetries [one two] in namespace "shop" have no workload selector')


def test_provider_analyzer_and_mesh_default_providers():
    doc = """
    apiVersion: telemetry.istio.io/v1
    kind: Telemetry
    metadata: {name: logs, namespace: istio-system}
    spec:
      accessLogging:
      - providers: [{name: envoy}]
      - filter: {expression: "response.code >= 400"}
      - disabled: true
    """
    msgs = run_yaml(doc, "telemetry.ProviderAnalyzer")
    assert found(msgs) == [("IST0157", "Telemetry istio-system/logs")]
    assert msgs[0].reference == reference(doc, "- filter")
    assert run_yaml(doc, "telemetry.ProviderAnalyzer", mesh={"defaultProviders": {"accessLogging": ["envoy"]}}) == []


def test_lightstep_analyzer_reads_mesh_config():
    doc = """
    apiVersion: telemetry.istio.io/v1
    kind: Telemetry
    metadata: {name: traces, namespace: istio-system}
    spec:
      tracing:
      - providers:
        - name: ls
    """
    mesh = {"extensionProviders": [{"name": "ls", "lightstep": {"service": "ls.svc", "port": 443}},
                                   {"name": "otel", "opentelemetry": {"service": "otel", "port": 4317}}]}
    msgs = run_yaml(doc, "telemetry.LightstepAnalyzer", mesh=mesh)
    assert found(msgs) == [("IST0002", "Telemetry istio-system/traces")]
    assert msgs[0].reference == reference(doc, "name: ls")
    assert run_yaml(doc, "telemetry.LightstepAnalyzer") == []
    assert run_yaml(doc.replace("name: ls", "name: otel"), "telemetry.LightstepAnalyzer", mesh=mesh) == []

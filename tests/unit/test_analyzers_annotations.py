from meshctl.analysis import framework
from meshctl.analysis.analyzers.annotations import known_annotations, validate_value

from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    sidecar.istio.io/proxyCPU: 100m
    readiness.status.sidecar.istio.io/periodSeconds: often
    networking.istio.io/exportThree: "."
    sidecar.istio.io/inject: "true"
    example.com/other: x
spec:
  containers: [{name: web, image: web}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
    sidecar.istio.io/proxyMemory: 1Gi
    networking.istio.io/exportTo: "."
spec: {}
"""


def test_k8s_analyzer_reports_unknown_misplaced_invalid_and_deprecated_with_lines():
    msgs = run_yaml(DOC, "annotations.K8sAnalyzer")
    assert found(msgs) == [
        ("IST0107", "Service default/web"),
        ("IST0108", "Pod default/web"),
        ("IST0125", "Pod default/web"),
        ("IST0135", "Pod default/web"),
    ]
    by_code = {m.code: m for m in msgs}
    assert by_code["IST0108"].reference == reference(DOC, "exportThree")
    assert by_code["IST0125"].reference == reference(DOC, "periodSeconds")
    assert "periodSeconds" in by_code["IST0125"].text
    assert by_code["IST0107"].text == ("Misplaced annotation: sidecar.istio.io/proxyMemory can only be "
                                       "applied to Pod")
    assert by_code["IST0107"].reference == reference(DOC, "proxyMemory")
    assert 'in favor of the "sidecar.istio.io/inject" label' in by_code["IST0135"].text


def test_k8s_analyzer_accepts_valid_annotations_and_the_label_alongside_the_deprecated_one():
    doc = """
    apiVersion: v1
    kind: Pod
    metadata:
      name: ok
      labels: {sidecar.istio.io/inject: "true"}
      annotations:
        sidecar.istio.io/inject: "true"
        traffic.sidecar.istio.io/excludeOutboundIPRanges: 10.0.0.0/8,192.168.0.0/16
        traffic.sidecar.istio.io/includeInboundPorts: "*"
        proxy.istio.io/config: "{holdApplicationUntilProxyStarts: true}"
        sidecar.istio.io/status: "{}"
    spec: {}
    """
    assert run_yaml(doc, "annotations.K8sAnalyzer") == []


def test_value_checks():
    assert validate_value("uint32", "10") is None
    assert validate_value("uint32", "-1")
    assert validate_value("cidrs", "10.0.0.0/8") is None
    assert validate_value("cidrs", "10.0.0.0") is not None
    assert validate_value("include-ports", "*") is None
    assert validate_value("ports", "80,70000")
    assert validate_value("interception-mode", "TPROXY") is None
    assert validate_value("interception-mode", "tproxy")
    assert validate_value("quantity", "128Mi") is None
    assert validate_value("quantity", "lots")
    assert validate_value("bool", "True") is None
    assert validate_value("bool", "yes")
    assert validate_value("interfaces", "eth0,net1") is None
    assert validate_value("interfaces", "0eth")
    assert validate_value("proxy-config", "[1, 2]")
    assert validate_value("proxy-config", "{concurrency: 2, holdApplicationUntilProxyStarts: true}") is None
    assert validate_value("proxy-config", "{proxy_metadata: {A: b}}") is None
    assert "holdApplicationUntilProxyStart" in validate_value("proxy-config", "{holdApplicationUntilProxyStart: true}")


def test_annotation_table_is_complete_enough():
    table = known_annotations()
    assert table["sidecar.istio.io/inject"]["deprecated"] is True
    assert table["galley.istio.io/analyze-suppress"]["kinds"] == ["Any"]
    assert table["kubernetes.io/ingress.class"]["kinds"] == ["Ingress"]
    assert all(a["status"] in ("Alpha", "Beta", "Stable") for a in table.values())


def test_alpha_analyzer_reports_alpha_annotations_but_not_cni_defaults():
    doc = """
    apiVersion: v1
    kind: Pod
    metadata:
      name: cni
      annotations:
        sidecar.istio.io/interceptionMode: REDIRECT
        sidecar.istio.io/proxyCPU: 100m
        ambient.istio.io/redirection: enabled
    spec:
      containers: [{name: app}]
    """
    msgs = run_yaml(doc, "annotations.AlphaAnalyzer")
    assert [(m.code, m.args[0]) for m in msgs] == [("IST0136", "sidecar.istio.io/proxyCPU")]
    assert msgs[0].reference == reference(doc, "proxyCPU")
    # with istio-init, the CNI did not set interceptionMode: the user did
    with_init = doc.replace("containers: [{name: app}]", "containers: [{name: app}]\n      initContainers: [{name: istio-init}]")
    assert len(run_yaml(with_init, "annotations.AlphaAnalyzer")) == 2


def test_alpha_analyzer_is_left_out_of_the_default_run_but_selectable_by_name():
    default = {a.name for a in framework.select_analyzers(None)}
    assert "annotations.K8sAnalyzer" in default
    assert "annotations.AlphaAnalyzer" not in default
    assert "annotations.AlphaAnalyzer" not in {a.name for a in framework.select_analyzers(["annotations"])}
    assert [a.name for a in framework.select_analyzers(["annotations.AlphaAnalyzer"])] == ["annotations.AlphaAnalyzer"]

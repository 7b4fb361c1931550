from meshctl.selectors import matches_label_selector as selector_matches

from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector}
webhooks:
- name: namespace.sidecar-injector.istio.io
  clientConfig: {service: {name: istiod, namespace: istio-system}}
  namespaceSelector:
    matchLabels: {istio-injection: enabled}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector-canary}
webhooks:
- name: namespace.sidecar-injector.istio.io
  clientConfig:
    service: {name: istiod-canary, namespace: istio-system}
  namespaceSelector:
    matchExpressions:
    - {key: istio-injection, operator: In, values: [enabled]}
---
apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system}
spec: {}
"""


def test_overlapping_webhooks_and_missing_service_once_each():
    msgs = run_yaml(DOC, "webhook.Analyzer")
    assert found(msgs) == [
        ("IST0139", "MutatingWebhookConfiguration istio-sidecar-injector"),
        ("IST0139", "MutatingWebhookConfiguration istio-sidecar-injector-canary"),
        ("IST0139", "MutatingWebhookConfiguration istio-sidecar-injector-canary"),
    ]
    missing = next(m for m in msgs if "does not exist" in m.text)
    assert missing.text.endswith("does not exist: istio-system/istiod-canary.")
    assert missing.reference == reference(DOC, "service: {name: istiod-canary")


def test_revisioned_webhooks_do_not_overlap():
    doc = DOC.replace("values: [enabled]", "values: [never]")
    assert [m for m in run_yaml(doc, "webhook.Analyzer") if "overlaps" in m.text] == []


def test_label_selector_semantics():
    assert selector_matches(None, {})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {})
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {"a": "y"})
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, {"a": "y"})

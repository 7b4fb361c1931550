from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector-remote}
webhooks:
- name: rev.namespace.sidecar-injector.istio.io
  clientConfig:
    url: https://10.1.2.3:15017/inject
- name: rev.object.sidecar-injector.istio.io
  clientConfig:
    url: https://istiod.example.com:15017/inject
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: istio-validator-remote}
webhooks:
- name: rev.validation.istio.io
  clientConfig: {}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: somebody-else}
webhooks:
- name: other.example.com
  clientConfig: {}
"""


def test_ip_address_and_blank_webhook_addresses():
    msgs = run_yaml(DOC, "externalcontrolplane.ExternalControlPlaneAnalyzer")
    assert found(msgs) == [
        ("IST0163", "ValidatingWebhookConfiguration istio-validator-remote"),
        ("IST0164", "MutatingWebhookConfiguration istio-sidecar-injector-remote"),
    ]
    by_code = {m.code: m for m in msgs}
    assert by_code["IST0164"].reference == reference(DOC, "10.1.2.3")
    assert "rev.validation.istio.io" in by_code["IST0163"].text and "is blank" in by_code["IST0163"].text


def test_hostnames_and_services_are_fine():
    doc = """
    apiVersion: admissionregistration.k8s.io/v1
    kind: ValidatingWebhookConfiguration
    metadata: {name: istiod-default-validator}
    webhooks:
    - name: validation.istio.io
      clientConfig: {service: {name: istiod, namespace: istio-system}}
    - name: remote.validation.istio.io
      clientConfig: {url: "https://istiod.example.com/validate"}
    """
    assert run_yaml(doc, "externalcontrolplane.ExternalControlPlaneAnalyzer") == []

from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: shop}
spec:
  template:
    spec:
      containers:
      - name: app
        securityContext:
          runAsUser: 1337
      - name: istio-proxy
        securityContext: {runAsUser: 1337}
---
apiVersion: v1
kind: Pod
metadata: {name: both, namespace: shop}
spec:
  securityContext:
    runAsUser: 1337
  containers:
  - name: app
    securityContext: {runAsUser: 1337}
---
apiVersion: v1
kind: Pod
metadata: {name: gateway, namespace: shop, labels: {istio: ingressgateway}}
spec:
  securityContext: {runAsUser: 1337}
---
apiVersion: v1
kind: Pod
metadata: {name: fine, namespace: shop}
spec:
  containers:
  - name: app
    securityContext: {runAsUser: 1000}
  - name: istio-proxy
    securityContext: {runAsUser: 1337}
"""


def test_uid_1337_once_per_workload_except_proxies_and_control_plane():
    msgs = run_yaml(DOC, "applicationUID.Analyzer")
    assert found(msgs) == [("IST0144", "Deployment shop/app"), ("IST0144", "Pod shop/both")]
    refs = {m.origin: m.reference for m in msgs}
    assert refs["Deployment shop/app"] == reference(DOC, "runAsUser: 1337")
    assert refs["Pod shop/both"] == reference(DOC, "runAsUser: 1337", 3)

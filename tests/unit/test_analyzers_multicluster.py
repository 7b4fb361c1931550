from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  meshNetworks: |
    networks:
      west:
        endpoints: [{fromRegistry: Kubernetes}, {fromRegistry: east}]
      north:
        endpoints: [{fromRegistry: nowhere}, {fromNetwork: west}]
---
apiVersion: v1
kind: Secret
metadata:
  name: istio-remote-secret-east
  namespace: istio-system
  labels: {istio/multiCluster: "true"}
data: {east: YQ==}
"""


def test_unknown_registry_in_mesh_networks():
    msgs = run_yaml(DOC, "meshnetworks.MeshNetworksAnalyzer")
    assert found(msgs) == [("IST0126", "ConfigMap istio-system/istio")]
    assert msgs[0].text == "Unknown service registry nowhere in network north"
    assert msgs[0].reference == reference(DOC, "meshNetworks:")


def test_without_the_remote_secret_its_registry_is_unknown():
    doc = DOC.split("---")[0]
    assert len(run_yaml(doc, "meshnetworks.MeshNetworksAnalyzer")) == 2

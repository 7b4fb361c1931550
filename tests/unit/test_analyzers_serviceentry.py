from .analysis_helpers import found, reference, run_yaml

DOC = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.example.com]
  ports:
  - number: 5432
    name: tcp-db
    protocol: TCP
  - number: 8080
    name: http
    protocol: HTTP
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-with-vip, namespace: shop}
spec:
  hosts: [db2.example.com]
  addresses: [240.0.0.1]
  ports: [{number: 5432, name: tcp-db}]
"""


def test_tcp_ports_need_addresses():
    msgs = run_yaml(DOC, "serviceentry.Analyzer")
    assert found(msgs) == [("IST0134", "ServiceEntry shop/db")]
    assert msgs[0].reference == reference(DOC, "- number: 5432")


def test_address_auto_allocation_in_mesh_config_silences_it():
    mesh = {"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true",
                                                "ISTIO_META_DNS_AUTO_ALLOCATE": "true"}}}
    assert run_yaml(DOC, "serviceentry.Analyzer", mesh=mesh) == []
    only_capture = {"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}}
    assert len(run_yaml(DOC, "serviceentry.Analyzer", mesh=only_capture)) == 1


CONFLICT = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: plain, namespace: a}
spec:
  hosts: [api.example.com]
  ports: [{number: 8443, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: b}
spec:
  hosts: [api.example.com]
  ports: [{number: 8443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: c}
spec:
  hosts: [other.example.com]
  exportTo: ["."]
  ports: [{number: 8443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private2, namespace: d}
spec:
  hosts: [other.example.com]
  exportTo: ["."]
  ports: [{number: 8443, name: http, protocol: HTTP}]
"""


def test_conflicting_protocols_for_the_same_host_and_port():
    msgs = run_yaml(CONFLICT, "serviceentry.ConflictingServiceEntryProtocolAnalyzer")
    assert found(msgs) == [("IST0177", "ServiceEntry a/plain"), ("IST0177", "ServiceEntry b/tls")]
    assert msgs[0].text == ('Multiple ServiceEntries (a/plain, b/tls) define the same host "api.example.com" '
                            'and port 8443 with conflicting protocols (HTTP, HTTPS).')
    assert {m.reference for m in msgs} == {reference(CONFLICT, "name: plain"), reference(CONFLICT, "name: tls")}

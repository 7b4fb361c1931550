"""The local platform: a real Envoy mesh on one machine, driven by Istio's own resources.

    model      ResourceSet → services, workloads, gateways (ServiceEntry + WorkloadEntry + Gateway)
    translate  model → per-proxy Envoy resources (pure dicts; Istio's cluster and stat names):
               xds, index, authz, clusters, routes, listeners, proxies
    ca         the mesh CA: SPIFFE identities, short-lived leaves rotated before expiry
    envoy      the Envoy binary: `--mode validate`, command lines
    state      the state directory: resources, rendered files, PIDs, written atomically
    supervisor the process that starts, watches and restarts proxies and workloads
    mesh       up / apply / delete / status / logs / down, called by `meshctl local`
    report     what those commands print
"""

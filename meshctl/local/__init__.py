"""The local platform: a real Envoy mesh on one machine, driven by Istio's own resources.

    model      ResourceSet → services, workloads, gateways (ServiceEntry + WorkloadEntry + Gateway)
    translate  model → per-proxy Envoy resources (pure dicts; Istio's cluster and stat names):
               xds, index, authz, clusters, routes, listeners, proxies
    pipeline   before anything runs: analyze, load (schema-checked), render, `envoy --mode validate`
    machine    free loopback addresses and ports, gateway address claims, inotify instances
    ca         the mesh CA: SPIFFE identities, short-lived leaves rotated before expiry
    envoy      the Envoy binary: `--mode validate`, command lines
    state      the state directory: resources, rendered files, PIDs, written atomically
    processes  the process plan; starting the supervisor; stopping everything by PID
    supervisor the process that starts, watches and restarts proxies and workloads
    sync       configuration files to proxies, in order, and waiting until they run it
    mesh       up / apply / delete / status / logs / down, called by `meshctl local`
    kubeview   the running mesh as the Kubernetes API canary reads and writes
    report     what those commands print
"""

"""The translator: a local mesh model → each proxy's Envoy configuration, as plain dicts (pure:
no I/O, no processes; proven with `envoy --mode validate` by the caller).

What istiod does, in meaning, for the local mesh:

- every proxy gets an outbound cluster per service port and per DestinationRule subset, named as
  Istio names them (`outbound|PORT|SUBSET|FQDN`), so proxy-config, proxy-status and the canary
  gates read local proxies exactly as they read Istio's; sidecars get `inbound|PORT||` clusters
  to their own workload;
- a sidecar's outbound HTTP listener (ADDRESS:15001, the application's HTTP_PROXY) routes by
  Host: one virtual host per service port, with the VirtualService's http routes, or a default
  route when no VirtualService names the host; short hosts resolve in the resource's namespace;
- its inbound listener (ADDRESS:15006) terminates mTLS (PeerAuthentication STRICT: a TLS filter
  chain requiring a client certificate only; PERMISSIVE: TLS and plaintext; DISABLE: plaintext),
  enforces AuthorizationPolicy (RBAC, DENY before ALLOW) and forwards to the application;
- ISTIO_MUTUAL is the default between sidecars (auto mTLS): client certificate `default`, CA
  `ROOTCA`, the server's SPIFFE identity checked, SNI `outbound_.PORT_.SUBSET_.FQDN`;
- an ingress gateway gets a listener per Gateway server port with the routes of the
  VirtualServices bound to it.

Configuration reaches Envoy through files (Envoy's path_config_source): `cds.json`, `lds.json`,
`rds_<name>.json` and the SDS secret `sds_default.json` (the root CA is a static secret of the
bootstrap), all relative to the proxy's own directory (its working directory).

    xds        Envoy's vocabulary: type URLs, discovery files, secrets, durations, Istio's names
    index      the resources a render reads, indexed once (DestinationRule, VirtualService by host)
    authz      PeerAuthentication modes; AuthorizationPolicy → RBAC
    clusters   outbound clusters per service port and subset; a sidecar's inbound clusters
    routes     VirtualService http → Envoy routes; default routes; a service's domains
    listeners  inbound, outbound and gateway listeners
    proxies    each proxy's bootstrap and files (`render`), and its form for `--mode validate`
"""
from meshctl.local.translate.index import Index
from meshctl.local.translate.proxies import ProxyConfig, render, validation_bootstrap

__all__ = ["Index", "ProxyConfig", "render", "validation_bootstrap"]

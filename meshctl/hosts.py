"""Host names of services: how Istio resolves a short host, how a user names a service on the
command line, and wildcard matching. Defined once for analyze, canary and the local mesh.

Two rules, on purpose:
- `fqdn` is Istio's (istiod's ResolveShortnameToFQDN): a short name (`reviews`) in a resource of
  namespace `ns` means `reviews.ns.svc.cluster.local`; a name with a dot, or a wildcard, is kept as
  written. It is what VirtualService, DestinationRule and ServiceEntry hosts mean.
- `service_fqdn` is how a service is named on the command line (and by DNS search domains inside
  a cluster): `reviews`, `reviews.ns` and `reviews.ns.svc` all complete to
  `reviews.ns.svc.cluster.local`.
"""
from __future__ import annotations

import re

CLUSTER_DOMAIN_SUFFIX = "svc.cluster.local"
_SERVICE_FQDN = re.compile(r"^(.+)\.(.+)\.svc\.cluster\.local$")


def fqdn(host: str, namespace: str | None) -> str:
    """Istio's resolution of a resource's host: a short name gets the resource's namespace."""
    if not host.startswith("*") and "." not in host:
        return f"{host}.{namespace or ''}.{CLUSTER_DOMAIN_SUFFIX}"
    return host


def service_fqdn(host: str, namespace: str | None) -> str:
    """A service as a user names it (`reviews`, `reviews.ns`, `reviews.ns.svc`, or the full
    name), completed as cluster DNS would, lower-cased; wildcards are kept."""
    host = host.strip().lower().rstrip(".")
    if "*" in host:
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace or 'default'}.{CLUSTER_DOMAIN_SUFFIX}"
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN_SUFFIX}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def short_name(host: str) -> str:
    """The service name of a host: `reviews` for `reviews.ns.svc.cluster.local`."""
    return host.split(".")[0]


def name_from_host(default_namespace: str | None, host: str) -> tuple[str, str]:
    """(namespace, name) a host refers to: parsed from `name.ns.svc.cluster.local`, else the
    host itself in the default namespace."""
    m = _SERVICE_FQDN.match(host)
    if m:
        return m.group(2), m.group(1)
    return default_namespace or "", host


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: equal, or one wildcard (`*.foo.com`, `*`) covering the other."""
    aw = a.startswith("*")
    bw = b.startswith("*")
    if aw and bw:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if aw:
        return b.endswith(a[1:])
    if bw:
        return a.endswith(b[1:])
    return a == b


def short_or_full_name(default_namespace: str | None, name: str) -> tuple[str, str]:
    """`ns/name` → (ns, name); `name` → (default_namespace, name)."""
    ns, sep, rest = name.partition("/")
    if sep:
        return ns, rest
    return default_namespace or "", name

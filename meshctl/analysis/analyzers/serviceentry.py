"""ServiceEntry checks: addresses required for TCP ports, conflicting protocols for a host and port."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, as_list, dig
from meshctl.resources import yaml_text


def auto_allocates_addresses(mesh_config: dict) -> bool:
    """DNS capture with address auto-allocation gives ServiceEntries without addresses a VIP."""
    meta = as_dict(dig(mesh_config, "defaultConfig", "proxyMetadata"))
    if yaml_text(meta.get("ISTIO_META_DNS_CAPTURE")) != "true":
        return False
    return (yaml_text(meta.get("ISTIO_META_DNS_AUTO_ALLOCATE")) == "true"
            or yaml_text(meta.get("PILOT_ENABLE_IP_AUTOALLOCATE")) == "true")


@analyzer("serviceentry.Analyzer", "Checks the validity of ServiceEntry", inputs=("ServiceEntry",))
def protocol_addresses(ctx: Context) -> None:
    if auto_allocates_addresses(ctx.mesh_config):
        return
    for se in ctx.of_kind("ServiceEntry"):
        if as_list(se.spec.get("addresses")) or as_list(dig(se.body, "status", "addresses")):
            continue
        for i, port in enumerate(as_list(se.spec.get("ports"))):
            protocol = as_dict(port).get("protocol")
            if not protocol or yaml_text(protocol).upper() == "TCP":
                ctx.report("IST0134", se, path=("spec", "ports", i))


def _export_scopes(export_to: list, namespace: str) -> set[str]:
    if not export_to or "*" in export_to:
        return {"*"}
    return {namespace if e == "." else str(e) for e in export_to}


@analyzer("serviceentry.ConflictingServiceEntryProtocolAnalyzer",
          "Checks if multiple ServiceEntries define the same host and port with different protocols",
          inputs=("ServiceEntry",))
def conflicting_service_entry_protocol(ctx: Context) -> None:
    index: dict[tuple[str, str, int], list[tuple[str, object]]] = {}
    for se in ctx.of_kind("ServiceEntry"):
        ns = se.namespace or ""
        scopes = _export_scopes([str(e) for e in as_list(se.spec.get("exportTo"))], ns)
        hosts = [yaml_text(h) for h in as_list(se.spec.get("hosts"))]
        for port in as_list(se.spec.get("ports")):
            port = as_dict(port)
            number = port.get("number")
            if not isinstance(number, int):
                continue
            protocol = yaml_text(port.get("protocol") or "").upper()
            for scope in scopes:
                for host in hosts:
                    index.setdefault((scope, host, number), []).append((protocol, se))

    reported: set[int] = set()
    for (scope, host, number), entries in sorted(index.items(), key=lambda kv: (kv[0][0] != "*", kv[0])):
        if scope != "*":
            entries = entries + index.get(("*", host, number), [])
        protocols = sorted({p for p, _ in entries})
        if len(protocols) < 2:
            continue
        names = sorted({se.full_name for _, se in entries})
        for _, se in entries:
            if id(se) in reported:
                continue
            reported.add(id(se))
            ctx.report("IST0177", se, ", ".join(names), host, number, ", ".join(protocols),
                       path=("metadata", "name"))

"""Gateway analyzers: ports the gateway Service does not expose, TLS secrets that are missing or
invalid, gateways that conflict on selector/port/host, certificates shared between gateways."""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone

from meshctl.analysis.framework import Analyzer, Context, analyzer, as_list, dig, register
from meshctl.analysis.helpers import WORKLOAD_KINDS, istio_gateways, template_labels
from meshctl.hosts import short_or_full_name
from meshctl.resources import Resource, as_int, yaml_text
from meshctl.selectors import LabelIndex, label_map, matches, selector_string


def _selector_path(selector: dict[str, str]) -> tuple:
    """The line Istio points at for a selector finding: the selector's first label."""
    s = selector_string(selector)
    label = s.split(",")[0].partition("=")[0] if "=" in s else ""
    return ("spec", "selector", label) if label else ("spec", "selector")


def gateway_pods(ctx: Context) -> LabelIndex:
    """Pods a Gateway can select, by label: the Pods, and the pods each workload in the input
    (a gateway Deployment, say) will run, under its pod template's labels."""
    def build(c: Context) -> LabelIndex:
        items = [*c.of_kind("Pod"), *(r for kind in WORKLOAD_KINDS for r in c.of_kind(kind))]
        return LabelIndex(items, labels_of=template_labels)

    return ctx.index("gateway.pods", build)




@register
class IngressGatewayPortAnalyzer(Analyzer):
    name = "gateway.IngressGatewayPortAnalyzer"
    description = "Checks a gateway's ports against the gateway's Kubernetes service ports"
    inputs = ("Gateway", "Pod", "Service", *WORKLOAD_KINDS)

    def analyze(self, ctx: Context) -> None:
        gws = istio_gateways(ctx)
        if not gws:
            return
        pods = gateway_pods(ctx)
        services_by_ns: dict[str, list[Resource]] = {}
        for svc in ctx.of_kind("Service"):
            services_by_ns.setdefault(svc.namespace or "", []).append(svc)
        by_selector: dict[str, tuple[set[int], dict[int, int]] | None] = {}
        for gw in gws:
            selector = label_map(gw.spec.get("selector"))
            key = selector_string(selector)
            if key not in by_selector:
                by_selector[key] = self._service_ports(pods.select(selector), services_by_ns)
            ports = by_selector[key]
            if ports is None:
                ctx.report("IST0101", gw, "selector", key, path=_selector_path(selector))
                continue
            target_ports, port_map = ports
            for server in as_list(gw.spec.get("servers")):
                number = dig(server, "port", "number")
                if number is None:
                    continue
                n = as_int(number)
                if n not in target_ports and n not in port_map:
                    ctx.report("IST0162", gw, n, key, path=_selector_path(selector))

    @staticmethod
    def _service_ports(matched: list[Resource], services_by_ns) -> tuple[set[int], dict[int, int]] | None:
        """The TCP target ports (and port → target port) of the Services selecting the pods a
        gateway selects; None when it selects no pod."""
        if not matched:
            return None
        target_ports: set[int] = set()
        port_map: dict[int, int] = {}
        for pod in matched:
            for svc in services_by_ns.get(pod.namespace or "", ()):
                if not matches(template_labels(pod), label_map(svc.spec.get("selector"))):
                    continue
                for port in as_list(svc.spec.get("ports")):
                    # a port without protocol is TCP (the API server's default)
                    if not isinstance(port, dict) or (port.get("protocol") or "TCP") != "TCP":
                        continue
                    tp = as_int(port.get("targetPort"))
                    if tp:
                        target_ports.add(tp)
                        port_map.setdefault(as_int(port.get("port")), tp)
                    else:
                        target_ports.add(as_int(port.get("port")))
        return target_ports, port_map


# --- secrets ------------------------------------------------------------------------------------

def _secret_bytes(secret: Resource, key: str) -> bytes:
    data = secret.body.get("data")
    if isinstance(data, dict) and isinstance(data.get(key), str):
        try:
            return base64.b64decode(data[key], validate=False)
        except (binascii.Error, ValueError):
            return b""
    sdata = secret.body.get("stringData")
    if isinstance(sdata, dict) and isinstance(sdata.get(key), str):
        return sdata[key].encode()
    return b""


def _certificate(secret: Resource) -> bytes | None:
    """The certificate of a TLS secret (`cert`/`key` or `tls.crt`/`tls.key`), None if absent."""
    for cert_key, key_key in (("cert", "key"), ("tls.crt", "tls.key")):
        cert, key = _secret_bytes(secret, cert_key), _secret_bytes(secret, key_key)
        if cert and key:
            return cert
    return None


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)


def _der_read(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def _der_time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    return datetime.strptime(text.rstrip("Z")[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def certificate_validity(pem: bytes) -> list[tuple[datetime, datetime]]:
    """(notBefore, notAfter) of each certificate in the first PEM block; raises ValueError when
    the data is not a PEM certificate."""
    m = _PEM.search(pem)
    if not m:
        raise ValueError("pem decode failed")
    der = base64.b64decode(b"".join(m.group(1).split()), validate=False)
    out = []
    pos = 0
    while pos < len(der):
        tag, start, end = _der_read(der, pos)          # Certificate
        if tag != 0x30:
            raise ValueError("not a certificate")
        tag, tbs, tbs_end = _der_read(der, start)      # TBSCertificate
        p = tbs
        tag, s, e = _der_read(der, p)
        if tag == 0xA0:                                 # [0] version
            p = e
            tag, s, e = _der_read(der, p)
        p = e                                           # serialNumber
        for _ in range(2):                              # signature, issuer
            tag, s, e = _der_read(der, p)
            p = e
        tag, vs, ve = _der_read(der, p)                 # validity
        t1, s1, e1 = _der_read(der, vs)
        t2, s2, e2 = _der_read(der, e1)
        out.append((_der_time(t1, der[s1:e1]), _der_time(t2, der[s2:e2])))
        pos = end
    return out


def valid_certificate_secret(secret: Resource, now: datetime | None = None) -> bool:
    cert = _certificate(secret)
    if cert is None:
        return False
    now = now or datetime.now(timezone.utc)
    try:
        periods = certificate_validity(cert)
    except (ValueError, IndexError, UnicodeDecodeError):
        return False
    return bool(periods) and all(nb <= now <= na for nb, na in periods)


@analyzer("gateway.SecretAnalyzer",
          "Checks a gateway's referenced secrets for correctness",
          inputs=("Gateway", "Pod", "Secret", *WORKLOAD_KINDS))
def secret(ctx: Context) -> None:
    gws = istio_gateways(ctx)
    if not gws:
        return
    pods = gateway_pods(ctx)
    for gw in gws:
        selector = label_map(gw.spec.get("selector"))
        selected = pods.select(selector)
        if not selected:
            ctx.report("IST0101", gw, "selector", selector_string(selector), path=_selector_path(selector))
            continue
        gw_ns = selected[0].namespace or ""
        for i, server in enumerate(as_list(gw.spec.get("servers"))):
            cn = dig(server, "tls", "credentialName")
            if not isinstance(cn, str) or not cn:
                continue
            path = ("spec", "servers", i, "tls", "credentialName")
            ns, name = short_or_full_name(gw_ns, cn)
            secret = ctx.resources.get("Secret", ns, name)
            if secret is None:
                ctx.report("IST0101", gw, "credentialName", cn, path=path)
                continue
            if not valid_certificate_secret(secret):
                ctx.report("IST0161", gw, gw.name, gw_ns, path=path)


# --- conflicting gateways -------------------------------------------------------------------------

@register
class ConflictingGatewayAnalyzer(Analyzer):
    name = "gateway.ConflictingGatewayAnalyzer"
    description = "Checks a gateway's selector, port number and hosts"
    inputs = ("Gateway", "Pod", *WORKLOAD_KINDS)

    def analyze(self, ctx: Context) -> None:
        gws = istio_gateways(ctx)
        # selector → port → gateway name → {host: bind} (a gateway's last server on a port wins, as in Istio)
        table: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
        # how many servers declare each (port, host): a host declared once cannot conflict
        declared: dict[tuple[str, str], int] = {}
        for gw in gws:
            sel = selector_string(label_map(gw.spec.get("selector")))
            for server in as_list(gw.spec.get("servers")):
                port = yaml_text(as_int(dig(server, "port", "number")))
                bind = yaml_text(dig(server, "bind") or "")
                hosts = [yaml_text(h) for h in as_list(dig(server, "hosts"))]
                table.setdefault(sel, {}).setdefault(port, {})[gw.full_name] = {h: bind for h in hosts}
                for h in hosts:
                    declared[(port, h)] = declared.get((port, h), 0) + 1
        hits_by_selector: dict[str, list] = {}
        for gw in gws:
            selector = label_map(gw.spec.get("selector"))
            sel = selector_string(selector)
            hits = hits_by_selector.get(sel)
            if hits is None:
                hits = hits_by_selector[sel] = self._hits(ctx, selector, sel, table)
            if sel and not hits:
                ctx.report("IST0101", gw, "selector", sel, path=_selector_path(selector))
                continue
            for i, server in enumerate(as_list(gw.spec.get("servers"))):
                port = yaml_text(as_int(dig(server, "port", "number")))
                hosts = [yaml_text(h) for h in as_list(dig(server, "hosts"))]
                if all(declared.get((port, h), 0) <= 1 for h in hosts):
                    continue  # no other server names these hosts: nothing to conflict with
                bind = yaml_text(dig(server, "bind") or "")
                conflicts = []
                for by_port in hits:
                    for other_name, known in by_port.get(port, {}).items():
                        if other_name != gw.full_name and _duplicates(hosts, bind, known):
                            conflicts.append(other_name)
                if conflicts:
                    ctx.report("IST0145", gw, ",".join(sorted(conflicts)), sel, port, ",".join(hosts),
                               path=("spec", "servers", i))

    @staticmethod
    def _hits(ctx: Context, selector: dict[str, str], sel: str, table: dict) -> list:
        """The table entries of gateways whose selector is this one, or selects a pod this one
        selects (when one selector string contains the other, as Istio checks)."""
        hits = []
        for other_sel, by_port in table.items():
            matched = sel == other_sel
            if not matched and (other_sel in sel or sel in other_sel):
                other = _parse_selector(other_sel)
                matched = any(matches(template_labels(p), other) for p in gateway_pods(ctx).select(selector))
            if matched:
                hits.append(by_port)
        return hits


def _parse_selector(text: str) -> dict[str, str]:
    out = {}
    for pair in text.split(","):
        kv = pair.split("=")
        if len(kv) == 2:
            out[kv[0]] = kv[1]
    return out


def _duplicates(hosts: list[str], bind: str, known: dict[str, str]) -> bool:
    """Istio's CheckDuplicates: hosts already known with the same bind; otherwise the hosts
    become known (the table is shared between the checks, as in Istio)."""
    dups = [h for h in hosts if h in known and known[h] == bind]
    if not dups:
        for h in hosts:
            known[h] = bind
    return bool(dups)


# --- duplicate certificates -----------------------------------------------------------------------

def _same_certificate(a: dict, b: dict) -> bool:
    ca, cb = a.get("credentialName") or "", b.get("credentialName") or ""
    if ca and cb:
        return ca == cb
    if not ca and not cb:
        sa, sb = a.get("serverCertificate") or "", b.get("serverCertificate") or ""
        if sa and sb and sa == sb:
            ka, kb = a.get("privateKey") or "", b.get("privateKey") or ""
            return bool(ka and kb and ka == kb)
    return False


def _selector_subset(x: dict[str, str], y: dict[str, str]) -> bool:
    count = 0
    for k, v in x.items():
        if k in y:
            if y[k] != v:
                return False
            count += 1
    return count == len(x)


def _certificate_key(tls: dict) -> tuple | None:
    """What makes two servers' certificates the same (Istio's haveSameCertificate): the
    credentialName, or else the serverCertificate and privateKey files; None: never the same."""
    cred = tls.get("credentialName") or ""
    if cred:
        return ("credential", yaml_text(cred))
    cert, key = tls.get("serverCertificate") or "", tls.get("privateKey") or ""
    if cert and key:
        return ("files", yaml_text(cert), yaml_text(key))
    return None


@analyzer("gateway.CertificateAnalyzer", "Checks a gateway certificate", inputs=("Gateway",))
def certificate(ctx: Context) -> None:
    # gateways by the certificates their TLS servers use (in every namespace: Istio does
    # not scope gateways to their namespace by default)
    by_cert: dict[tuple, list[Resource]] = {}
    certs_of: dict[int, list[tuple]] = {}
    for gw in istio_gateways(ctx):
        keys = []
        for s in as_list(gw.spec.get("servers")):
            tls = dig(s, "tls")
            key = _certificate_key(tls) if isinstance(tls, dict) else None
            if key is not None and key not in keys:
                keys.append(key)
                by_cert.setdefault(key, []).append(gw)
        certs_of[id(gw)] = keys
    for gw in istio_gateways(ctx):
        selector = label_map(gw.spec.get("selector"))
        reported: set[int] = set()
        for key in certs_of[id(gw)]:
            for other in by_cert[key]:
                if other is gw or id(other) in reported:
                    continue
                if selector and not _selector_subset(selector, label_map(other.spec.get("selector"))):
                    continue
                reported.add(id(other))
                ctx.report("IST0138", gw, [gw.full_name, other.full_name], path=("metadata", "name"))

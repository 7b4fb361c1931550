"""AuthorizationPolicy and PeerAuthentication → what a proxy enforces (pure).

AuthorizationPolicy, as Istio evaluates it: policies apply to a proxy by namespace (the root
namespace istio-system for all) and `selector.matchLabels`; DENY is checked before ALLOW; with
no ALLOW policy everything not denied is allowed; with any ALLOW policy a request that matches
none of their rules is denied (an ALLOW policy without rules, "allow-nothing", matches nothing).
Each DENY and ALLOW set becomes one Envoy RBAC HTTP filter; a denied request gets 403.

Rules: `from.source` (principals, namespaces, ipBlocks and their `not` forms) match the peer
certificate's SPIFFE URI SAN (`cluster.local/ns/NS/sa/SA` is `spiffe://cluster.local/ns/NS/sa/SA`);
`to.operation` (hosts, ports, methods, paths and `not` forms) and `when` conditions
(request.headers[...], source.ip, source.namespace, source.principal, destination.port) match the
request. Istio's string forms: exact, `prefix*`, `*suffix`, and `*` (present). A field meshctl
cannot check locally (requestPrincipals, request.auth.*) makes its rule match nothing: an ALLOW
rule then allows less, and a DENY rule is reported as a warning.
"""
from __future__ import annotations

from typing import Any, Optional

from meshctl.local.model import ROOT_NAMESPACE
from meshctl.local.translate.xds import RBAC_TYPE
from meshctl.resources import Resource
from meshctl.selectors import label_map, matches

MODES = ("STRICT", "PERMISSIVE", "DISABLE")


# --- which policies apply to a workload ---------------------------------------------------------

def scope(r: Resource, namespace: str, labels: dict) -> Optional[int]:
    """How specifically a policy (PeerAuthentication, AuthorizationPolicy, Telemetry: namespaced,
    with an optional `selector.matchLabels`) applies to a workload of `namespace` with `labels`:
    2 by its selector, 1 by its namespace, 0 mesh-wide (the root namespace, no selector); None
    when it does not apply."""
    sel = r.spec.get("selector")
    match = label_map(sel.get("matchLabels")) if isinstance(sel, dict) else {}
    if r.namespace == namespace:
        if match:
            return 2 if matches(labels, match) else None
        return 1
    if r.namespace == ROOT_NAMESPACE and not match:
        return 0
    return None


# --- PeerAuthentication ------------------------------------------------------------------------


def mtls_mode(policies: list[Resource], namespace: str, labels: dict) -> str:
    """The PeerAuthentication mode of a workload: workload policy, else namespace, else mesh
    (root namespace), else PERMISSIVE; UNSET inherits from the next level."""
    ranked: dict[int, str] = {}
    for r in policies:
        level = scope(r, namespace, labels)
        if level is None:
            continue
        mode = str(((r.spec.get("mtls") or {}) if isinstance(r.spec.get("mtls"), dict) else {}).get("mode") or "UNSET").upper()
        if mode in MODES and level not in ranked:
            ranked[level] = mode
    for level in (2, 1, 0):
        if level in ranked:
            return ranked[level]
    return "PERMISSIVE"


# --- AuthorizationPolicy → RBAC --------------------------------------------------------------------

def _string_match(value: str, prefix: str = "", ignore_case: bool = False) -> dict:
    v = str(value)
    if v == "*":
        out = {"safe_regex": {"regex": ".+"}} if not prefix else {"prefix": prefix}
    elif v.endswith("*"):
        out = {"prefix": prefix + v[:-1]}
    elif v.startswith("*"):
        out = {"suffix": v[1:]} if not prefix else {"safe_regex": {"regex": _re_escape(prefix) + ".*" + _re_escape(v[1:])}}
    else:
        out = {"exact": prefix + v}
    if ignore_case and "safe_regex" not in out:
        out["ignore_case"] = True
    return out


def _re_escape(text: str) -> str:
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in text)


def _principal_id(value: str) -> dict:
    return {"authenticated": {"principal_name": _string_match(value, prefix="spiffe://")}}


def _namespace_id(value: str) -> dict:
    v = str(value)
    if v == "*":
        regex = r"spiffe://[^/]*/ns/[^/]+/sa/.*"
    elif v.endswith("*"):
        regex = r"spiffe://[^/]*/ns/" + _re_escape(v[:-1]) + r"[^/]*/sa/.*"
    elif v.startswith("*"):
        regex = r"spiffe://[^/]*/ns/[^/]*" + _re_escape(v[1:]) + r"/sa/.*"
    else:
        regex = r"spiffe://[^/]*/ns/" + _re_escape(v) + r"/sa/.*"
    return {"authenticated": {"principal_name": {"safe_regex": {"regex": regex}}}}


def _cidr(value: str) -> dict:
    text = str(value)
    addr, _, bits = text.partition("/")
    if not bits:
        bits = "128" if ":" in addr else "32"
    return {"direct_remote_ip": {"address_prefix": addr, "prefix_len": int(bits) if bits.isdigit() else 32}}


def _or_ids(ids: list) -> dict:
    return ids[0] if len(ids) == 1 else {"or_ids": {"ids": ids}}


def _or_rules(rules: list) -> dict:
    return rules[0] if len(rules) == 1 else {"or_rules": {"rules": rules}}


def _path(value: str) -> dict:
    v = str(value)
    if v == "*":
        m = {"safe_regex": {"regex": ".*"}}
    elif v.endswith("*"):
        m = {"prefix": v[:-1]}
    elif v.startswith("*"):
        m = {"suffix": v[1:]}
    else:
        m = {"exact": v}
    return {"url_path": {"path": m}}


def _header(name: str, value: str) -> dict:
    return {"header": {"name": name, "string_match": _string_match(value, ignore_case=name.lower() == ":authority")}}


def _port(value: Any) -> Optional[dict]:
    try:
        return {"destination_port": int(value)}
    except (TypeError, ValueError):
        return None


_NEVER_ID = {"not_id": {"any": True}}
_NEVER_RULE = {"not_rule": {"any": True}}


def _source_ids(src: dict) -> dict:
    ands = []
    for field, build, negate in (("principals", _principal_id, False), ("notPrincipals", _principal_id, True),
                                 ("namespaces", _namespace_id, False), ("notNamespaces", _namespace_id, True),
                                 ("ipBlocks", _cidr, False), ("notIpBlocks", _cidr, True),
                                 ("remoteIpBlocks", _cidr, False), ("notRemoteIpBlocks", _cidr, True)):
        values = src.get(field)
        if not isinstance(values, list) or not values:
            continue
        ids = _or_ids([build(v) for v in values])
        ands.append({"not_id": ids} if negate else ids)
    if src.get("requestPrincipals") or src.get("notRequestPrincipals"):
        ands.append(_NEVER_ID)  # JWT identities are not checked locally: never matches
    if not ands:
        return {"any": True}
    return ands[0] if len(ands) == 1 else {"and_ids": {"ids": ands}}


def _operation_rules(op: dict) -> dict:
    ands = []
    for field, negate in (("hosts", False), ("notHosts", True)):
        values = op.get(field)
        if isinstance(values, list) and values:
            r = _or_rules([_header(":authority", v) for v in values])
            ands.append({"not_rule": r} if negate else r)
    for field, negate in (("methods", False), ("notMethods", True)):
        values = op.get(field)
        if isinstance(values, list) and values:
            r = _or_rules([_header(":method", v) for v in values])
            ands.append({"not_rule": r} if negate else r)
    for field, negate in (("paths", False), ("notPaths", True)):
        values = op.get(field)
        if isinstance(values, list) and values:
            r = _or_rules([_path(v) for v in values])
            ands.append({"not_rule": r} if negate else r)
    for field, negate in (("ports", False), ("notPorts", True)):
        values = op.get(field)
        if isinstance(values, list) and values:
            ports = [p for p in (_port(v) for v in values) if p]
            if ports:
                r = _or_rules(ports)
                ands.append({"not_rule": r} if negate else r)
    if not ands:
        return {"any": True}
    return ands[0] if len(ands) == 1 else {"and_rules": {"rules": ands}}


def _condition(cond: dict) -> tuple[Optional[dict], Optional[dict]]:
    """(permission, principal) of one `when` condition."""
    key = str(cond.get("key") or "")
    values = [str(v) for v in cond.get("values") or []]
    not_values = [str(v) for v in cond.get("notValues") or []]

    def both(build, kind):
        parts = []
        if values:
            parts.append(build(values))
        if not_values:
            parts.append({"not_rule" if kind == "rule" else "not_id": build(not_values)})
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return {"and_rules": {"rules": parts}} if kind == "rule" else {"and_ids": {"ids": parts}}

    if key.startswith("request.headers[") and key.endswith("]"):
        name = key[len("request.headers["):-1]
        return both(lambda vs: _or_rules([_header(name, v) for v in vs]), "rule"), None
    if key == "destination.port":
        return both(lambda vs: _or_rules([p for p in (_port(v) for v in vs) if p] or [_NEVER_RULE]), "rule"), None
    if key in ("source.ip", "remote.ip"):
        return None, both(lambda vs: _or_ids([_cidr(v) for v in vs]), "id")
    if key == "source.namespace":
        return None, both(lambda vs: _or_ids([_namespace_id(v) for v in vs]), "id")
    if key == "source.principal":
        return None, both(lambda vs: _or_ids([_principal_id(v) for v in vs]), "id")
    return _NEVER_RULE, None  # request.auth.*, experimental keys: not checked locally


def rule_policy(rule: dict) -> dict:
    """One AuthorizationPolicy rule → one Envoy RBAC policy."""
    froms = [f.get("source") for f in rule.get("from") or [] if isinstance(f, dict) and isinstance(f.get("source"), dict)]
    tos = [t.get("operation") for t in rule.get("to") or [] if isinstance(t, dict) and isinstance(t.get("operation"), dict)]
    perms = [_or_rules([_operation_rules(op) for op in tos])] if tos else []
    ids = [_or_ids([_source_ids(src) for src in froms])] if froms else []
    for cond in rule.get("when") or []:
        if not isinstance(cond, dict):
            continue
        p, i = _condition(cond)
        if p is not None:
            perms.append(p)
        if i is not None:
            ids.append(i)
    permission = {"any": True} if not perms else perms[0] if len(perms) == 1 else {"and_rules": {"rules": perms}}
    principal = {"any": True} if not ids else ids[0] if len(ids) == 1 else {"and_ids": {"ids": ids}}
    return {"permissions": [permission], "principals": [principal]}


def applicable(policies: list[Resource], namespace: str, labels: dict) -> list[Resource]:
    return [r for r in policies if r.group == "security.istio.io" and scope(r, namespace, labels) is not None]


def rbac_filters(policies: list[Resource], namespace: str, labels: dict) -> list[dict]:
    """The RBAC HTTP filters for a proxy (DENY first, then ALLOW); [] when no policy applies."""
    mine = applicable(policies, namespace, labels)
    out = []
    for action in ("DENY", "ALLOW"):
        chosen = [r for r in mine if str(r.spec.get("action") or "ALLOW").upper() == action]
        if not chosen:
            continue
        rbac_policies = {}
        for r in sorted(chosen, key=lambda r: (r.namespace or "", r.name)):
            for i, rule in enumerate(r.spec.get("rules") or []):
                if isinstance(rule, dict):
                    rbac_policies[f"ns[{r.namespace}]-policy[{r.name}]-rule[{i}]"] = rule_policy(rule)
        out.append({"name": f"envoy.filters.http.rbac.{action.lower()}",
                    "typed_config": {"@type": RBAC_TYPE, "rules": {"action": action, "policies": rbac_policies}}})
    return out

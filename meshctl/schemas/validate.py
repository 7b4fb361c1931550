"""Schema validation of Istio objects (the check behind `analyze`'s IST0106 SchemaValidationError).

The schemas are JSON Schema (Draft 2020-12) documents, one per kind.  They are compiled once,
on first use, into a tree of small Python closures: analysis validates thousands of objects
per run, and a general-purpose validator spends most of its time dispatching keywords that a
compiled tree resolves up front.  The compiler supports the keywords our schemas use (it
raises on anything else, so a schema cannot silently lose a check) and produces one-line
messages a person can act on: the path of the field, what is wrong, and a suggestion where
one is obvious (`did you mean "attempts"?`, `use e.g. "1s"`).

Annotations extending standard JSON Schema:

- `x-meshctl-regex: true` on a string: the value must be a regular expression Envoy's RE2
  engine accepts (checked by rewriting RE2-only syntax for Python's `re` and refusing the
  constructs RE2 lacks, see `regex_problem`).
- `x-meshctl-format: duration`: beyond the syntax `pattern`, the duration must be at least 1ms;
  `x-meshctl-format: host`: a host name as Istio accepts it (`host_ok`); `gateway-host`,
  `sidecar-host`: a `namespace/host` entry of a Gateway server or Sidecar egress listener.
- `x-meshctl-required: true` at the root of a spec schema: the object must have a `spec`.
- `x-meshctl-message`: the message used when the node's `pattern`, `maxLength`, `not` or
  `if`/`then` check fails.
- `x-meshctl-unique-by: <field>`: the items of a list must differ in that field; Kubernetes'
  `x-kubernetes-list-type: map` (by its `x-kubernetes-list-map-keys`) and `set` are enforced too.

The test-suite checks the compiled validators against `jsonschema` on the same schemas.
"""
from __future__ import annotations

import re
from typing import Any

from meshctl.schemas import BY_KIND, istio_kind, spec_schema
from meshctl.schemas.compiler import RULES_HOLD, Compiler, join_names, validator_for
from meshctl.schemas.defaults import defaulter, defaults_change_checks
from meshctl.schemas.errors import Check, SchemaError, describe, did_you_mean, err, format_path, quote_text, show
from meshctl.schemas.formats import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    duration_ns,
    host_ok,
    regex_problem,
    scoped_host_problem,
)

# the schema checks' public API, whichever module of meshctl.schemas holds each part
__all__ = ["SchemaError", "validate", "validate_spec", "format_path", "validator_for", "regex_problem",
           "host_ok", "scoped_host_problem", "duration_ns", "defaulter", "gateway_api_validator"]


# --- whole objects ----------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
_METADATA_FIELDS = (
    "name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "finalizers", "ownerReferences", "managedFields", "selfLink",
)


def _check_metadata(body: dict, errors: list) -> None:
    meta = body.get("metadata")
    if meta is None:
        err(errors, ("metadata",), "required field missing (set metadata.name)")
        return
    if not isinstance(meta, dict):
        err(errors, ("metadata",), f"expected an object, got {describe(meta)}")
        return
    for k in meta:
        if str(k) not in _METADATA_FIELDS:
            err(errors, ("metadata", str(k)), "unknown field" + did_you_mean(str(k), _METADATA_FIELDS))
    name = meta.get("name")
    if name is None or name == "":
        if not meta.get("generateName"):
            err(errors, ("metadata", "name"), "required field missing")
    elif not isinstance(name, str):
        err(errors, ("metadata", "name"), f"expected a string, got {describe(name)}")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        err(errors, ("metadata", "name"),
             f"{show(name)} is not a valid name: use lowercase letters, digits, '-' and '.', "
             "starting and ending with a letter or digit (at most 253 characters)")
    ns = meta.get("namespace")
    if ns is not None:
        if not isinstance(ns, str):
            err(errors, ("metadata", "namespace"), f"expected a string, got {describe(ns)}")
        elif len(ns) > 63 or not DNS1123_LABEL.match(ns):
            err(errors, ("metadata", "namespace"),
                 f"{show(ns)} is not a valid namespace: use lowercase letters, digits and '-', "
                 "starting and ending with a letter or digit (at most 63 characters)")
    for field in ("labels", "annotations"):
        m = meta.get(field)
        if m is None:
            continue
        if not isinstance(m, dict):
            err(errors, ("metadata", field), f"expected an object, got {describe(m)}")
            continue
        for k, v in m.items():
            key = str(k)
            if not _label_key_ok(key):
                err(errors, ("metadata", field, key),
                     f"{show(key)} is not a valid key: an optional DNS prefix and '/', then at most 63 "
                     "letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
            if not isinstance(v, str):
                err(errors, ("metadata", field, key),
                     f"expected a string, got {describe(v)} (quote the value)")
            elif field == "labels" and (len(v) > 63 or not _LABEL_VALUE.match(v)):
                err(errors, ("metadata", field, key),
                     f"{show(v)} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', "
                     "starting and ending with a letter or digit")


def _label_key_ok(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and _LABEL_NAME.match(name) is not None


def validate_spec(kind: str, spec: Any, path: tuple = ("spec",)) -> list[SchemaError]:
    """Errors in the `spec` of an object of `kind` (an Istio kind name)."""
    errors: list[SchemaError] = []
    validator_for(kind)(spec, path, errors)
    return errors


_gateway_api: dict[str, tuple] = {}


def gateway_api_validator(kind: str) -> Check:
    """A `spec` validator of a Gateway API kind: defaults applied, then the schema and the CEL
    rules (cached). All the rules of a kind are first evaluated as one program (one call for a
    valid object); only when that does not hold does the validator evaluate them node by node,
    to say which field breaks which rule."""
    hit = _gateway_api.get(kind)
    if hit is None:
        from meshctl.schemas import gatewayapi
        from meshctl.schemas.cel import WholeRules

        schema = gatewayapi.spec_schema(kind)
        full = Compiler(schema, cel=True).compile(schema)
        whole = WholeRules(schema)
        apply_defaults = defaulter(schema)

        def structural(v, p, e):
            """The schema checks alone (the rules are known to hold)."""
            RULES_HOLD[0] = True
            try:
                full(v, p, e)
            finally:
                RULES_HOLD[0] = False
        # the schema checks of a value without nulls come out the same before and after defaulting
        # (defaults are valid, and no required field or list key has one), so a value whose rules
        # are known to hold skips defaulting
        raw_ok = not defaults_change_checks(schema)

        def check(v, p, e):
            key, known = whole.lookup(v) if whole.usable else (None, None)
            if known is True and raw_ok:
                structural(v, p, e)
                return
            if apply_defaults is not None:
                v = apply_defaults(v)
            ok = known if known is not None else (whole.usable and whole.holds(v, key))
            (structural if ok else full)(v, p, e)
        hit = _gateway_api[kind] = (check,)
    return hit[0]


def _validate_object(resource, kind, check: Check, spec_required: bool) -> list[SchemaError]:
    """apiVersion, top-level fields, metadata, then `spec` with `check`. `kind`: an IstioKind or a
    GatewayAPIKind (its served versions)."""
    body = resource.body
    errors: list[SchemaError] = []
    if resource.version not in kind.versions:
        err(errors, ("apiVersion",),
             f"{show(resource.api_version)} is not a served version of {kind.kind} "
             f"(use {join_names(kind.api_versions())})")
    for k in body:
        if k not in _TOP_LEVEL:
            err(errors, (str(k),), "unknown field" + did_you_mean(str(k), _TOP_LEVEL))
    _check_metadata(body, errors)
    if "spec" in body:
        check(body["spec"], ("spec",), errors)
    elif spec_required:
        err(errors, ("spec",), "required field missing")
    return errors


def validate(resource) -> list[SchemaError]:
    """Schema errors of one object (a meshctl.resources.Resource): Istio kinds and the Gateway
    API kinds; [] for other kinds."""
    ik = istio_kind(resource.api_version, resource.kind)
    if ik is None:
        if resource.group == "gateway.networking.k8s.io":
            from meshctl.schemas.gatewayapi import gateway_api_kind

            gk = gateway_api_kind(resource.api_version, resource.kind)
            if gk is not None:
                from meshctl.schemas import gatewayapi

                return _validate_object(resource, gk, gateway_api_validator(gk.kind),
                                        bool(gatewayapi.spec_schema(gk.kind).get("x-meshctl-required")))
        known = BY_KIND.get(resource.kind)
        if known is not None and resource.api_version == known.group:  # the version left out
            return [SchemaError(("apiVersion",), f"apiVersion: {quote_text(resource.api_version)} has no version "
                                                 f"(use {join_names(known.api_versions())})")]
        return []
    return _validate_object(resource, ik, validator_for(ik.kind), bool(spec_schema(ik.kind).get("x-meshctl-required")))

"""Schema validation as analyzers, one per Istio kind (`schema.ValidationAnalyzer.<Kind>`) and
one per Gateway API kind (`schema.GatewayAPIValidationAnalyzer.<Kind>`, with the CRDs' CEL
rules): IST0106 for every schema error, at the line of the offending field. The VirtualService one also
reports rules that can never be reached (IST0130) and matches that never apply (IST0131).
`schema.KindAnalyzer` reports kinds that their API group does not serve (MSH0003).

The validator (meshctl.schemas.validate) is imported only when an Istio object is present, so
analyzing plain Kubernetes manifests does not pay for it.
"""
from __future__ import annotations

from meshctl.analysis.framework import Analyzer, Context, analyzer, register
from meshctl.schemas import KINDS
from meshctl.schemas.gatewayapi import GROUP as GATEWAY_API_GROUP
from meshctl.schemas.gatewayapi import SUPPORTED as GATEWAY_API_KINDS


def _validator():
    try:
        from meshctl.schemas.validate import validate
    except ImportError:  # pragma: no cover - the validator ships with meshctl
        return None
    return validate


class _SchemaAnalyzer(Analyzer):
    kind = ""
    group = ""

    def analyze(self, ctx: Context) -> None:
        resources = [r for r in ctx.of_kind(self.kind) if r.group == self.group]
        if not resources:
            return
        validate = _validator()
        if validate is not None:
            for r in resources:
                for err in validate(r):
                    ctx.report("IST0106", r, err.message, path=tuple(err.path))
        self.extra(ctx, resources)

    def extra(self, ctx: Context, resources) -> None:
        return None


def _make(kind: str, group: str, name: str = "schema.ValidationAnalyzer") -> type[Analyzer]:
    attrs = {"name": f"{name}.{kind}",
             "description": f"Runs schema validation as an analyzer on '{kind}' resources",
             "inputs": (kind,), "kind": kind, "group": group}
    if kind == "VirtualService":
        def extra(self, ctx: Context, resources) -> None:
            from meshctl.analysis.analyzers.virtualservice import unreachable_rules

            for r in resources:
                for code, args, path in unreachable_rules(r):
                    ctx.report(code, r, *args, path=path)
        attrs["extra"] = extra
    return register(type(f"{name.rpartition('.')[2]}{kind}", (_SchemaAnalyzer,), attrs))


for _k in KINDS:
    _make(_k.kind, _k.group)
for _kind in GATEWAY_API_KINDS:
    _make(_kind, GATEWAY_API_GROUP, "schema.GatewayAPIValidationAnalyzer")


@analyzer("schema.KindAnalyzer", "Checks that the API group of each object serves its kind and version", inputs=())
def kind(ctx: Context) -> None:
    """A kind, or a version of it, that its API group does not serve (`kind: VirtualServce`,
    `networking.istio.io/v1` EnvoyFilter): kubectl apply refuses the object, and no other check
    looks at it. Only the groups meshctl knows (meshctl.analysis.apigroups), with the kinds that
    CustomResourceDefinitions among the objects add; objects read from the cluster are served."""
    from meshctl.analysis.apigroups import problem, with_crds

    groups = None
    for r in ctx.resources:
        if r.from_cluster:
            continue
        if groups is None:
            groups = with_crds(c.body for c in ctx.resources.of_kind("CustomResourceDefinition"))
        found = problem(r.api_version, r.kind, groups)
        if found is not None:
            field, why = found
            ctx.report("MSH0003", r, r.kind, r.api_version, why, path=(field,))

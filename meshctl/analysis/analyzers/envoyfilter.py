"""EnvoyFilter patches: operations that are ignored or fragile for what they apply to."""
from __future__ import annotations

from meshctl.analysis.framework import Analyzer, Context, as_dict, as_list, dig, register
from meshctl.resources import yaml_text

ROUTE_TARGETS = ("ROUTE_CONFIGURATION", "HTTP_ROUTE")
REPLACEABLE = ("NETWORK_FILTER", "HTTP_FILTER", "VIRTUAL_HOST")
RELATIVE = ("INSERT_BEFORE", "INSERT_AFTER")


@register
class EnvoyPatchAnalyzer(Analyzer):
    name = "envoyfilter.EnvoyPatchAnalyzer"
    description = "Checks an envoyFilters "
    inputs = ("EnvoyFilter",)

    def analyze(self, ctx: Context) -> None:
        # names of patched filters whose patch is limited to a proxy version, across EnvoyFilters:
        # a later relative patch of the same filter without priority may not apply after an upgrade
        versioned: set[str] = set()
        for ef in ctx.of_kind("EnvoyFilter"):
            self.check(ctx, ef, versioned)

    @staticmethod
    def check(ctx: Context, ef, versioned: set[str]) -> None:
        priority = ef.spec.get("priority") or 0
        seen: set[str] = set()  # one finding per code and EnvoyFilter, at its first patch

        def report(code: str, path: tuple) -> None:
            if code not in seen:
                seen.add(code)
                ctx.report(code, ef, path=path)

        for i, patch in enumerate(as_list(ef.spec.get("configPatches"))):
            patch = as_dict(patch)
            body = patch.get("patch")
            if not isinstance(body, dict):
                break
            value = body.get("value")
            filter_name = ""
            if isinstance(value, dict) and value:
                if "name" in value:
                    filter_name = repr(value.get("name"))
                else:
                    filter_name = yaml_text(dig(patch, "match", "listener", "filterChain", "filter", "name") or "")
            operation = yaml_text(body.get("operation") or "")
            apply_to = yaml_text(patch.get("applyTo") or "")
            path = ("spec", "configPatches", i, "patch", "operation")

            def relative() -> None:
                if priority:
                    return
                code = "IST0155" if filter_name in versioned else "IST0151"
                report(code, path)

            if operation == "ADD":
                if apply_to in ROUTE_TARGETS:
                    report("IST0153", path)
            elif operation == "REMOVE":
                if apply_to in ROUTE_TARGETS:
                    report("IST0154", path)
                else:
                    relative()
            elif operation == "REPLACE":
                if apply_to not in REPLACEABLE:
                    report("IST0152", path)
                else:
                    relative()
            elif operation in RELATIVE:
                relative()
            if dig(patch, "match", "proxy", "proxyVersion"):
                versioned.add(filter_name)

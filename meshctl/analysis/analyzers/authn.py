"""RequestAuthentication and istiod: restricting where JWKS keys may be fetched from."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, as_list, dig

ENV_NAME = "BLOCKED_CIDRS_IN_JWKS_URIS"
MAX_NAMES = 5


def _has_blocked_cidrs(deployment) -> bool:
    for c in as_list(dig(deployment.body, "spec", "template", "spec", "containers")):
        for e in as_list(as_dict(c).get("env")):
            e = as_dict(e)
            if e.get("name") == ENV_NAME and e.get("value"):
                return True
    return False


@analyzer("authn.BlockedCIDRsAnalyzer",
          "Checks that BLOCKED_CIDRS_IN_JWKS_URIS is configured on istiod when "
                   "RequestAuthentication resources exist",
          inputs=("RequestAuthentication", "Deployment"))
def blocked_cid_rs(ctx: Context) -> None:
    ras = [r.full_name for r in ctx.of_kind("RequestAuthentication")]
    if not ras:
        return
    shown = ", ".join(ras[:MAX_NAMES])
    if len(ras) > MAX_NAMES:
        shown += f", and {len(ras) - MAX_NAMES} more"
    for d in ctx.of_kind("Deployment"):
        if d.labels.get("app") != "istiod" or _has_blocked_cidrs(d):
            continue
        ctx.report("IST0175", d, len(ras), shown, path=("spec", "template", "spec", "containers"))

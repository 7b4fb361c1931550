"""Webhooks of a remote cluster that point at an external control plane."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from meshctl.analysis.framework import Analyzer, Context, as_dict, as_list, register
from meshctl.resources import yaml_text

DEFAULT_VALIDATOR = "istiod-default-validator"
VALIDATOR_PREFIX = "istio-validator"
INJECTOR_PREFIX = "istio-sidecar-injector"


def _host_of(url: str) -> tuple[str | None, str | None]:
    """(host, problem) of a webhook URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None, "was provided in an invalid format"
    return host, None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@register
class ExternalControlPlaneAnalyzer(Analyzer):
    name = "externalcontrolplane.ExternalControlPlaneAnalyzer"
    description = "Checks that the remote IstioOperator resources reference an external control plane"
    inputs = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")

    def analyze(self, ctx: Context) -> None:
        for r in ctx.of_kind("ValidatingWebhookConfiguration"):
            if r.name == DEFAULT_VALIDATOR or r.name.startswith(VALIDATOR_PREFIX):
                self.check(ctx, r)
        for r in ctx.of_kind("MutatingWebhookConfiguration"):
            if r.name.startswith(INJECTOR_PREFIX):
                self.check(ctx, r)

    @staticmethod
    def check(ctx: Context, r) -> None:
        for i, hook in enumerate(as_list(r.body.get("webhooks"))):
            hook = as_dict(hook)
            hook_name = yaml_text(hook.get("name") or "")
            client = as_dict(hook.get("clientConfig"))
            url = client.get("url")
            if url is not None:
                path = ("webhooks", i, "clientConfig", "url")
                host, problem = _host_of(yaml_text(url))
                if problem:
                    ctx.report("IST0163", r, yaml_text(url), hook_name, problem, path=path)
                elif host and _is_ip(host):
                    ctx.report("IST0164", r, yaml_text(url), hook_name, path=path)
            elif client.get("service") is None:
                ctx.report("IST0163", r, "", hook_name, "is blank", path=("webhooks", i, "clientConfig"))

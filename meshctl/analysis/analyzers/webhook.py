"""Istio's injection webhooks: overlapping selectors (double injection) and missing services."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, as_list
from meshctl.kinds import REVISION_LABEL
from meshctl.resources import yaml_text
from meshctl.selectors import matches_label_selector

REV_LABEL = REVISION_LABEL
TAG_LABEL = "istio.io/tag"


def _revisions(config) -> set[str]:
    revs: set[str] = set()
    if REV_LABEL in config.labels:
        revs.add(yaml_text(config.labels[REV_LABEL]))
    for hook in as_list(config.body.get("webhooks")):
        for sel_name in ("namespaceSelector", "objectSelector"):
            sel = as_dict(as_dict(hook).get(sel_name))
            labels = as_dict(sel.get("matchLabels"))
            if REV_LABEL in labels:
                revs.add(yaml_text(labels[REV_LABEL]))
            for expr in as_list(sel.get("matchExpressions")):
                expr = as_dict(expr)
                if expr.get("key") == REV_LABEL:
                    revs.update(yaml_text(v) for v in as_list(expr.get("values")))
    return revs


def _is_istio_webhook(config) -> bool:
    return any(yaml_text(as_dict(h).get("name") or "").endswith("istio.io") for h in as_list(config.body.get("webhooks")))


@analyzer("webhook.Analyzer",
          "Checks the validity of Istio webhooks",
          inputs=("MutatingWebhookConfiguration", "Service"))
def webhook(ctx: Context) -> None:
    hooks: list[tuple[object, int, dict, str]] = []  # (config, index, webhook, "config/hook")
    revisions: set[str] = set()
    for config in ctx.of_kind("MutatingWebhookConfiguration"):
        revs = _revisions(config)
        if not revs and not _is_istio_webhook(config):
            continue
        revisions |= revs
        for i, hook in enumerate(as_list(config.body.get("webhooks"))):
            hook = as_dict(hook)
            hooks.append((config, i, hook, f"{config.full_name}/{hook.get('name') or ''}"))
    if not hooks:
        return

    ns_labels: list[dict[str, str]] = [{}, {"istio-injection": "enabled"}, {"istio-injection": "disabled"}]
    obj_labels: list[dict[str, str]] = [{}, {"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"}]
    for rev in sorted(revisions):
        ns_labels += [{**base, REV_LABEL: rev} for base in ns_labels[:3]]
        obj_labels += [{**base, REV_LABEL: rev} for base in obj_labels[:3]]

    reported: set[tuple[int, str]] = set()
    for nl in ns_labels:
        ns_hits = [h for h in hooks if matches_label_selector(h[2].get("namespaceSelector"), nl)]
        if len(ns_hits) < 2:
            continue
        for ol in obj_labels:
            hits = [h for h in ns_hits if matches_label_selector(h[2].get("objectSelector"), ol)]
            names = sorted({h[3] for h in hits})
            if len(names) < 2:
                continue
            for config, i, _, full in hits:
                others = "[" + " ".join(n for n in names if n != full) + "]"
                text = f"Webhook overlaps with others: {others}. This may cause injection to occur twice."
                if (id(config), text) not in reported:
                    reported.add((id(config), text))
                    ctx.report("IST0139", config, text, path=("webhooks", i))

    for config, i, hook, _ in hooks:
        svc = as_dict(hook.get("clientConfig")).get("service")
        if not isinstance(svc, dict):
            continue
        ns, name = yaml_text(svc.get("namespace") or ""), yaml_text(svc.get("name") or "")
        if ctx.resources.get("Service", ns, name) is None:
            full = f"{ns}/{name}" if ns else name
            ctx.report("IST0139", config,
                       f"Injector refers to a control plane service that does not exist: {full}.",
                       path=("webhooks", i, "clientConfig", "service"))

"""Injection analyzers: namespaces not enabled for injection, pods missing the proxy, proxies
running an image other than the injector's, `image: auto` that no webhook will replace."""
from __future__ import annotations

from meshctl.analysis.framework import Context, analyzer, as_dict, as_list, dig
from meshctl.analysis.helpers import PROXY_CONTAINER
from meshctl.kinds import REVISION_LABEL
from meshctl.loader import json_loads
from meshctl.resources import Resource, yaml_text
from meshctl.selectors import label_map, label_text, matches_label_selector

INJECTION_LABEL = "istio-injection"
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
INJECTOR_CONFIGMAP = "istio-sidecar-injector"


def injector_configmap_name(revision: str | None) -> str:
    return INJECTOR_CONFIGMAP if not revision or revision == "default" else f"{INJECTOR_CONFIGMAP}-{revision}"


def _values(cm: Resource) -> dict:
    """The injector ConfigMap's `values` (JSON); {} when absent or not JSON."""
    text = dig(cm.body, "data", "values")
    if not isinstance(text, str):
        return {}
    try:
        data = json_loads(text)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _containers(pod: Resource) -> list:
    return as_list(pod.spec.get("containers")) + as_list(pod.spec.get("initContainers"))


@analyzer("injection.Analyzer",
          "Checks conditions related to Istio sidecar injection",
          inputs=("Namespace", "Pod", "ConfigMap"))
def injection(ctx: Context) -> None:
    configmaps = {cm.name: cm for cm in ctx.of_kind("ConfigMap")}
    injected: set[str] = set()
    for ns in ctx.of_kind("Namespace"):
        if ns.name == ctx.istio_namespace:
            continue
        labels = ns.labels
        has_injection = INJECTION_LABEL in labels
        injection = label_text(labels.get(INJECTION_LABEL)) if has_injection else ""
        has_rev = REVISION_LABEL in labels
        revision = label_text(labels.get(REVISION_LABEL)) if has_rev else ""
        found = [f"{INJECTION_LABEL}={injection}"] if has_injection else []
        for key in (REVISION_LABEL, DATAPLANE_MODE_LABEL):
            if key in labels and (not has_injection or injection == "enabled"):
                found.append(f"{key}={label_text(labels[key])}")
        if len(found) > 1:
            ctx.report("IST0123", ns, found, path=("metadata", "labels"))
        if label_text(labels.get(DATAPLANE_MODE_LABEL)) == "ambient":
            continue
        if not injection and not has_rev:
            cm = configmaps.get(injector_configmap_name(revision))
            by_default = cm is not None and dig(_values(cm), "sidecarInjectorWebhook",
                                                "enableNamespacesByDefault") is True
            if by_default:
                ctx.report("IST0148", ns, path=("metadata", "name"))
            else:
                ctx.report("IST0102", ns, ns.name, ns.name, path=("metadata", "name"))
            continue
        if injection != "enabled":
            continue
        injected.add(ns.name)
    if not injected:
        return
    for pod in ctx.of_kind("Pod"):
        if pod.namespace not in injected:
            continue
        inject = label_text(pod.annotations.get("sidecar.istio.io/inject", ""))
        if "sidecar.istio.io/inject" in pod.labels:
            inject = label_text(pod.labels["sidecar.istio.io/inject"])
        if inject.lower() == "false" or pod.spec.get("hostNetwork") is True:
            continue
        image = ""
        for c in _containers(pod):
            if isinstance(c, dict) and c.get("name") == PROXY_CONTAINER:
                image = yaml_text(c.get("image") or "")
                break
        if not image:
            ctx.report("IST0103", pod, pod.full_name, path=("spec", "containers"))


def proxy_image(cm: Resource) -> str:
    """The proxy image an injector ConfigMap injects: global.proxy.image, or hub/image:tag."""
    g = as_dict(_values(cm).get("global"))
    image = yaml_text(dig(g, "proxy", "image") or "")
    if "/" in image:
        return image
    return f"{g.get('hub', '') or ''}/{image}:{g.get('tag', '') or ''}"


def _image_type(value) -> str:
    return yaml_text(dig(value, "image", "imageType") or "")


@analyzer("injection.ImageAnalyzer",
          "Checks the image of auto-injection configured with the running proxies on pods",
          inputs=("Namespace", "Pod", "ConfigMap", "ProxyConfig"))
def image(ctx: Context) -> None:
    images = {cm.name: proxy_image(cm) for cm in ctx.of_kind("ConfigMap")
              if cm.name.startswith(INJECTOR_CONFIGMAP)}
    if not images:
        return
    namespaces: dict[str, Resource] = {}
    injected: dict[str, str] = {}
    for ns in ctx.of_kind("Namespace"):
        namespaces[ns.name] = ns
        labels = ns.labels
        if REVISION_LABEL in labels:
            injected[ns.name] = label_text(labels[REVISION_LABEL])
        elif label_text(labels.get(INJECTION_LABEL)) == "enabled":
            injected[ns.name] = "default"
    resolver = _ImageTypeResolver(ctx)
    mismatched: dict[str, list[str]] = {}
    for pod in ctx.of_kind("Pod"):
        if pod.namespace not in injected:
            continue
        if pod.annotations.get("sidecar.istio.io/proxyImage"):
            continue
        expected = images.get(injector_configmap_name(injected[pod.namespace]))
        variant = None
        for c in _containers(pod):
            if not isinstance(c, dict) or c.get("name") != PROXY_CONTAINER:
                continue
            if expected is None:
                break
            if variant is None:
                variant = resolver.image_type(pod)
            image = yaml_text(c.get("image") or "")
            if image != expected and image != f"{expected}-{variant}":
                mismatched.setdefault(pod.namespace or "", []).append(pod.name)
    for ns, pods in sorted(mismatched.items()):
        if ns in namespaces:
            ctx.report("IST0158", namespaces[ns], sorted(pods), path=("metadata", "name"))


class _ImageTypeResolver:
    """The effective proxy image type (variant, e.g. `distroless`) of a pod: mesh default, root
    ProxyConfig, namespace ProxyConfig, workload ProxyConfig, then the pod's proxyConfig annotation."""

    def __init__(self, ctx: Context):
        self.mesh = _image_type(as_dict(ctx.mesh_config.get("defaultConfig")))
        root_ns = ctx.mesh_config.get("rootNamespace") or "istio-system"
        self.root = ""
        self.namespace: dict[str, str] = {}
        self.workload: list[tuple[str, dict, str]] = []
        for pc in ctx.of_kind("ProxyConfig"):
            t = _image_type(pc.spec)
            if pc.namespace == root_ns:
                self.root = t
            elif pc.spec.get("selector") is None:
                self.namespace[pc.namespace or ""] = t
            else:
                self.workload.append((pc.namespace or "", label_map(dig(pc.spec, "selector", "matchLabels")), t))

    def image_type(self, pod: Resource) -> str:
        variant = self.mesh or ""
        if self.root:
            variant = self.root
        if self.namespace.get(pod.namespace or ""):
            variant = self.namespace[pod.namespace or ""]
        labels = label_map(pod.labels)
        for ns, sel, t in self.workload:
            if (pod.namespace or "").startswith(ns) and all(labels.get(k) == v for k, v in sel.items()) and t:
                variant = t
        anno = pod.annotations.get("proxy.istio.io/config")
        if isinstance(anno, str):
            try:
                import yaml

                from meshctl.analysis.helpers import safe_yaml_load

                parsed = safe_yaml_load(anno)
                if isinstance(parsed, dict) and _image_type(parsed):
                    variant = _image_type(parsed)
            except (yaml.YAMLError, RecursionError, ValueError):
                pass
        return "" if variant == "default" else variant


# --- image: auto ------------------------------------------------------------------------------------

def _has_auto_image(pod_spec: dict) -> bool:
    return any(isinstance(c, dict) and c.get("name") == PROXY_CONTAINER and c.get("image") == "auto"
               for c in as_list(pod_spec.get("containers")))


@analyzer("injection.ImageAutoAnalyzer",
          "Makes sure that Pods and Deployments with `image: auto` are going to be injected",
          inputs=("Namespace", "Pod", "Deployment", "MutatingWebhookConfiguration"))
def image_auto(ctx: Context) -> None:
    webhooks = [wh for mwc in ctx.of_kind("MutatingWebhookConfiguration")
                for wh in as_list(mwc.body.get("webhooks"))
                if isinstance(wh, dict) and yaml_text(wh.get("name") or "").endswith("istio.io")]
    for pod in ctx.of_kind("Pod"):
        if _has_auto_image(pod.spec):
            ctx.report("IST0147", pod, "Pod", pod.name, path=("spec", "containers"))
    for dep in ctx.of_kind("Deployment"):
        spec = as_dict(dig(dep.spec, "template", "spec"))
        if not _has_auto_image(spec):
            continue
        ns = ctx.resources.get("Namespace", None, dep.namespace or "default")
        ns_labels = ns.labels if ns is not None else {}
        pod_labels = as_dict(dig(dep.spec, "template", "metadata", "labels"))
        if not any(matches_label_selector(wh.get("namespaceSelector"), ns_labels)
                   and matches_label_selector(wh.get("objectSelector"), pod_labels) for wh in webhooks):
            ctx.report("IST0146", dep, "Deployment", dep.name, path=("spec", "template", "spec", "containers"))

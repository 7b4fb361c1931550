"""Injection settings: install Values + MeshConfig → one resolved, read-only InjectConfig, and
per pod (with its annotations) the context the injection templates are rendered with.

Values may come in meshctl's shape (`hub`, `tag`, `components.cni.enabled`,
`global.proxyInit.image`, `meshConfig`) or in Istio's (`global.hub`, `global.tag`,
`pilot.cni.enabled`, `global.proxy_init.image`), as found in the `istio-sidecar-injector`
ConfigMap. Every key is optional; missing keys take Istio's chart defaults.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from meshctl.errors import InputError
from meshctl.loader import json_loads

DEFAULT_HUB = "docker.io/istio"
DEFAULT_TAG = "1.24.0"

# Istio's ProxyConfig defaults: fields equal to these are left out of PROXY_CONFIG
_PROXY_CONFIG_DEFAULTS: dict[str, Any] = {
    "configPath": "./etc/istio/proxy",
    "binaryPath": "/usr/local/bin/envoy",
    "serviceCluster": "istio-proxy",
    "drainDuration": "45s",
    "terminationDrainDuration": "5s",
    "discoveryAddress": "istiod.istio-system.svc:15012",
    "proxyAdminPort": 15000,
    "statNameLength": 189,
    "statusPort": 15020,
    "controlPlaneAuthPolicy": "MUTUAL_TLS",
    "concurrency": 2,
    "tracing": {"zipkin": {"address": "zipkin.istio-system:9411"}},
    "proxyMetadata": {},
    "holdApplicationUntilProxyStarts": False,
}


def get(data: Any, path: str, default: Any = None) -> Any:
    """data["a"]["b"]["c"] for path "a.b.c", or `default` when any step is missing or None."""
    cur = data
    for part in path.split("."):
        if not isinstance(cur, dict) or cur.get(part) is None:
            return default
        cur = cur[part]
    return cur


def deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else v
        return out
    return over


def parse_proxy_config(text: str) -> dict:
    """The value of a `proxy.istio.io/config` annotation (YAML or JSON) as a mapping."""
    import yaml

    from meshctl.loader import safe_load

    try:
        data = safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"not YAML or JSON: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("not a ProxyConfig mapping")
    return data


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a whole number") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


@dataclass(frozen=True)
class InjectConfig:
    """Everything injection needs that does not depend on the pod."""

    values: dict = field(default_factory=dict)
    mesh: dict = field(default_factory=dict)
    revision: str = ""
    native_sidecar: bool = True
    # the install these settings come from runs ambient mode (ztunnel): inject follows it
    ambient: bool = False

    # --- values ---------------------------------------------------------------------------
    def v(self, path: str, default: Any = None) -> Any:
        return get(self.values, path, default)

    @property
    def hub(self) -> str:
        return self.v("global.hub") or self.v("hub") or DEFAULT_HUB

    @property
    def tag(self) -> str:
        return _str(self.v("global.tag") or self.v("tag") or DEFAULT_TAG)

    @property
    def cni(self) -> bool:
        for path in ("components.cni.enabled", "pilot.cni.enabled", "istio_cni.enabled"):
            value = self.v(path)
            if value is not None:
                return _truthy(value)
        return False

    @property
    def cni_provider(self) -> str:
        return self.v("pilot.cni.provider") or self.v("cni.provider") or self.v("components.cni.provider") or "default"

    @property
    def rewrite_app_probes(self) -> bool:
        return _truthy(self.v("sidecarInjectorWebhook.rewriteAppHTTPProbe", True))

    @property
    def hold_application(self) -> bool:
        return _truthy(self.v("global.proxy.holdApplicationUntilProxyStarts", False))

    @property
    def istio_namespace(self) -> str:
        return self.v("global.istioNamespace") or self.v("namespace") or "istio-system"

    # --- mesh config ------------------------------------------------------------------------
    @property
    def proxy_defaults(self) -> dict:
        pc = get(self.mesh, "defaultConfig", {})
        return pc if isinstance(pc, dict) else {}

    @property
    def status_port(self) -> int:
        try:
            return int(self.proxy_defaults.get("statusPort") or 15020)
        except (TypeError, ValueError):
            return 15020

    @property
    def prometheus_merge(self) -> bool:
        value = self.mesh.get("enablePrometheusMerge")
        return True if value is None else _truthy(value)

    @property
    def trust_domain(self) -> str:
        return self.mesh.get("trustDomain") or self.v("global.trustDomain") or ""

    def image(self, name: str, image_type: str = "") -> str:
        tag = self.tag
        image_type = image_type or _str(self.v("global.variant"))
        if image_type:
            for known in ("distroless", "debug"):
                if tag.endswith("-" + known):
                    tag = tag[: -len(known) - 1]
                    break
            if image_type != "default":
                tag = f"{tag}-{image_type}"
        return f"{self.hub}/{name}:{tag}"


def make_config(values: dict | None = None, mesh_config: dict | None = None, revision: str | None = None,
                native_sidecar: bool | None = None) -> InjectConfig:
    """Resolve Values (and an optional MeshConfig that overrides values.meshConfig)."""
    values = values or {}
    mesh = deep_merge(values.get("meshConfig") or {}, mesh_config or {})
    if not isinstance(mesh, dict):
        raise InputError("mesh config is not a mapping", hint="pass a MeshConfig YAML mapping")
    mesh.setdefault("trustDomain", "cluster.local")
    if revision is None:
        revision = _str(values.get("revision"))
    if native_sidecar is None:
        native_sidecar = _truthy(get(values, "global.nativeSidecar", True))
    if revision == "default":  # the default revision is the unrevisioned control plane
        revision = ""
    return InjectConfig(values=values, mesh=mesh, revision=revision or "", native_sidecar=native_sidecar)


def _json_map(annotations: dict, name: str) -> dict:
    text = annotations.get(name)
    if text is None:
        return {}
    try:
        data = json_loads(text)
    except ValueError:
        raise InputError(f"invalid value for annotation '{name}': not JSON",
                         hint='give a JSON object, e.g. {"name": {...}}') from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise InputError(f"invalid value for annotation '{name}': expected a JSON object of objects")
    return {k: data[k] for k in sorted(data)}


def _exclude_inbound_port(port: str, excluded: str) -> str:
    port = port.strip()
    if not port or port == "0":
        return excluded
    parts = excluded.split(",")
    out = []
    for p in parts:
        if p == port:
            return excluded
        p = p.strip()
        if p:
            out.append(p)
    out.append(port)
    return ",".join(out)


def clean_proxy_config(pc: dict) -> dict:
    return {k: v for k, v in pc.items() if k not in _PROXY_CONFIG_DEFAULTS or _PROXY_CONFIG_DEFAULTS[k] != v}


def proxy_config_for(cfg: InjectConfig, annotations: dict) -> dict:
    pc = cfg.proxy_defaults
    text = annotations.get("proxy.istio.io/config")
    if text:
        try:
            pc = deep_merge(pc, parse_proxy_config(text))
        except ValueError as e:
            raise InputError(f"invalid value for annotation 'proxy.istio.io/config': {e}") from None
    return pc


def template_context(cfg: InjectConfig, annotations: dict, network_label: str | None = None) -> dict:
    """The settings a template reads for a pod with these annotations (JSON-serialisable, so it
    doubles as the render cache key)."""
    ann = annotations

    def a(name: str, default: Any) -> str:
        value = ann.get(name)
        return _str(default) if value is None else _str(value)

    pc = proxy_config_for(cfg, ann)
    mesh_mode = _str(pc.get("interceptionMode") or "REDIRECT")
    mode = a("sidecar.istio.io/interceptionMode", mesh_mode)
    tproxy = mode == "TPROXY"
    native_default = "true" if cfg.native_sidecar else "false"
    native = (ann.get("sidecar.istio.io/nativeSidecar") or native_default) != "false"
    hold = (_truthy(pc.get("holdApplicationUntilProxyStarts")) or cfg.hold_application) and not native
    status_port = a("status.sidecar.istio.io/port", cfg.v("global.proxy.statusPort", cfg.status_port))
    exclude_inbound = _exclude_inbound_port(
        status_port, a("traffic.sidecar.istio.io/excludeInboundPorts", cfg.v("global.proxy.excludeInboundPorts", "")))
    inc_out = None
    if "traffic.sidecar.istio.io/includeOutboundPorts" in ann or _str(cfg.v("global.proxy.includeOutboundPorts")):
        inc_out = a("traffic.sidecar.istio.io/includeOutboundPorts", cfg.v("global.proxy.includeOutboundPorts", ""))
    exc_out = None
    if "traffic.sidecar.istio.io/excludeOutboundPorts" in ann or _str(cfg.v("global.proxy.excludeOutboundPorts")):
        exc_out = a("traffic.sidecar.istio.io/excludeOutboundPorts", cfg.v("global.proxy.excludeOutboundPorts", ""))

    images = _images(cfg, ann, pc)
    revision = cfg.revision
    ca_address = cfg.v("global.caAddress") or (
        f"istiod{'-' + revision if revision else ''}.{cfg.istio_namespace}.svc:15012")
    proxy_metadata = {k: _str(v) for k, v in sorted((pc.get("proxyMetadata") or {}).items())}
    network = network_label if network_label is not None else _str(cfg.v("global.network"))
    return {
        "revision_label": revision or "default",
        "native": native,
        "hold_proxy": hold,
        "interception_mode": mode,
        "mesh_interception_mode": mesh_mode,
        "tproxy": tproxy,
        "no_init_container": mode == "NONE" and not native,
        "cap_net_bind_service": a("sidecar.istio.io/capNetBindService",
                                  cfg.v("global.proxy.capNetBindService", False)) == "true",
        "cni": cfg.cni,
        "cni_provider": cfg.cni_provider,
        "include_ip_ranges": a("traffic.sidecar.istio.io/includeOutboundIPRanges", cfg.v("global.proxy.includeIPRanges", "*")),
        "exclude_ip_ranges": a("traffic.sidecar.istio.io/excludeOutboundIPRanges", cfg.v("global.proxy.excludeIPRanges", "")),
        "include_inbound_ports": a("traffic.sidecar.istio.io/includeInboundPorts", cfg.v("global.proxy.includeInboundPorts", "*")),
        "exclude_inbound_ports": exclude_inbound,
        "iptables_exclude_inbound": f"15090,15021,{exclude_inbound}" if exclude_inbound else "15090,15021",
        "include_outbound_ports": inc_out,
        "exclude_outbound_ports": exc_out,
        "reroute_interfaces": ann.get("istio.io/reroute-virtual-interfaces") or "",
        "kubevirt_interfaces": ann.get("traffic.sidecar.istio.io/kubevirtInterfaces") or "",
        "exclude_interfaces": ann.get("traffic.sidecar.istio.io/excludeInterfaces") or "",
        "agent_log_level": a("sidecar.istio.io/agentLogLevel", cfg.v("global.logging.level", "default:info")),
        "proxy_log_level": a("sidecar.istio.io/logLevel", cfg.v("global.proxy.logLevel", "warning")),
        "component_log_level": a("sidecar.istio.io/componentLogLevel", cfg.v("global.proxy.componentLogLevel", "misc:error")),
        "log_as_json": bool(cfg.v("global.logAsJson", False)),
        "force_apply_iptables": bool(cfg.v("global.proxy_init.forceApplyIptables", False)),
        "native_nftables": bool(cfg.v("global.nativeNftables", False)),
        **images,
        "image_pull_policy": _str(cfg.v("global.imagePullPolicy", "")),
        "proxy_listen_port": _str(cfg.mesh.get("proxyListenPort") or 15001),
        "proxy_inbound_listen_port": _str(cfg.mesh.get("proxyInboundListenPort") or 15006),
        "proxy_uid": "1337",
        "proxy_uid_int": 1337,
        "proxy_gid_int": 1337,
        "resources": _resources(cfg, ann),
        "privileged": bool(cfg.v("global.proxy.privileged", False)),
        "seccomp_profile": cfg.v("global.proxy.seccompProfile") or None,
        "lifecycle": cfg.v("global.proxy.lifecycle") or None,
        "cluster_domain": cfg.v("global.proxy.clusterDomain", "cluster.local"),
        "sts_port": _str(cfg.v("global.sts.servicePort") or ""),
        "outlier_log_path": _str(cfg.v("global.proxy.outlierLogPath") or ""),
        "status_port": status_port,
        "inbound_localhost": _str(get(cfg.mesh, "inboundTrafficPolicy.mode")).upper() == "LOCALHOST",
        "pilot_cert_provider": _str(cfg.v("global.pilotCertProvider", "istiod")),
        "ca_address": _str(ca_address),
        "proxy_config_json": json.dumps(clean_proxy_config(pc), separators=(",", ":")),
        "compliance_policy": "",
        "cluster_id": _str(cfg.v("global.multiCluster.clusterName") or "Kubernetes"),
        "network": network,
        "mesh_id": _str(cfg.v("global.meshID") or cfg.trust_domain),
        "trust_domain": _str(cfg.trust_domain),
        "proxy_metadata": proxy_metadata,
        "hbone": proxy_metadata.get("ISTIO_META_ENABLE_HBONE") == "true",
        "iptables_trace": proxy_metadata.get("IPTABLES_TRACE_LOGGING") == "true",
        **_probes(cfg, a),
        "gke_workload_certificate": cfg.v("global.caName") == "GkeWorkloadCertificate",
        "bootstrap_override": ann.get("sidecar.istio.io/bootstrapOverride") or "",
        "mount_mtls_certs": bool(cfg.v("global.mountMtlsCerts", False)),
        "user_volume_mounts": _json_map(ann, "sidecar.istio.io/userVolumeMount"),
        "user_volumes": _json_map(ann, "sidecar.istio.io/userVolume"),
        "token_audience": _str(cfg.v("global.sds.token.aud", "istio-ca")),
        "cluster_trust_bundle": cfg.v("pilot.env.ENABLE_CLUSTER_TRUST_BUNDLE_API") is True,
        "trust_bundle_name": _str(cfg.v("global.trustBundleName") or ""),
        "crl_config_map": _str(cfg.v("pilot.crlConfigMapName") or "istio-ca-crl"),
        "image_pull_secrets": [_str(s) for s in (cfg.v("global.imagePullSecrets") or [])],
        "gateway_security_context": cfg.v("gateways.securityContext") or None,
        "istio_namespace": cfg.istio_namespace,
    }


def _images(cfg: InjectConfig, ann: dict, pc: dict) -> dict:
    """The proxy and init images for a pod (its annotations over the values)."""
    def a(name: str, default: Any) -> str:
        value = ann.get(name)
        return _str(default) if value is None else _str(value)

    image_type = ann.get("sidecar.istio.io/proxyImageType") or _str(get(pc, "image.imageType"))
    proxy_name = a("sidecar.istio.io/proxyImage", cfg.v("global.proxy.image", "proxyv2")) or "proxyv2"
    init_name = a("sidecar.istio.io/proxyImage",
                  cfg.v("global.proxy_init.image") or cfg.v("global.proxyInit.image") or "proxyv2") or "proxyv2"
    proxy_image = proxy_name if "/" in proxy_name else cfg.image(proxy_name, image_type)
    # An init image without a registry path is not an image of its own: the init container then
    # runs the proxy image the values name (global.proxy.image with hub, tag and image type).
    values_proxy = _str(cfg.v("global.proxy.image", "proxyv2")) or "proxyv2"
    proxy_init_image = init_name if "/" in init_name else (
        values_proxy if "/" in values_proxy else cfg.image(values_proxy, image_type))

    return {"proxy_image": proxy_image, "proxy_init_image": proxy_init_image}


def _resources(cfg: InjectConfig, ann: dict) -> dict:
    """The proxy's resources: the sidecar.istio.io/proxy{CPU,Memory}[Limit] annotations, else
    global.proxy.resources."""
    res_ann = {k: ann[k] for k in ("sidecar.istio.io/proxyCPU", "sidecar.istio.io/proxyMemory",
                                   "sidecar.istio.io/proxyCPULimit", "sidecar.istio.io/proxyMemoryLimit") if k in ann}
    if res_ann:
        resources: dict = {}
        req = {k: v for k, v in (("cpu", res_ann.get("sidecar.istio.io/proxyCPU")),
                                 ("memory", res_ann.get("sidecar.istio.io/proxyMemory"))) if v is not None}
        lim = {k: v for k, v in (("cpu", res_ann.get("sidecar.istio.io/proxyCPULimit")),
                                 ("memory", res_ann.get("sidecar.istio.io/proxyMemoryLimit"))) if v is not None}
        if req:
            resources["requests"] = req
        if lim:
            resources["limits"] = lim
    else:
        raw = cfg.v("global.proxy.resources", {
            "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2000m", "memory": "1024Mi"}})
        resources = {k: {rk: _str(rv) for rk, rv in v.items() if rv is not None}
                     for k, v in (raw or {}).items() if isinstance(v, dict)}
        resources = {k: v for k, v in resources.items() if v}

    return resources


def _probes(cfg: InjectConfig, a) -> dict:
    """Startup and readiness probe settings (annotations over values)."""
    readiness = (
        a("readiness.status.sidecar.istio.io/initialDelaySeconds", cfg.v("global.proxy.readinessInitialDelaySeconds", 0)),
        a("readiness.status.sidecar.istio.io/periodSeconds", cfg.v("global.proxy.readinessPeriodSeconds", 15)),
        a("readiness.status.sidecar.istio.io/failureThreshold", cfg.v("global.proxy.readinessFailureThreshold", 4)),
    )
    return {
        "startup_probe": _truthy(cfg.v("global.proxy.startupProbe.enabled", True)),
        "startup_failure_threshold": _int(cfg.v("global.proxy.startupProbe.failureThreshold", 600),
                                          "global.proxy.startupProbe.failureThreshold"),
        "readiness_initial_delay": _int(readiness[0], "readiness initialDelaySeconds"),
        "readiness_period": _int(readiness[1], "readiness periodSeconds"),
        "readiness_failure_threshold": _int(readiness[2], "readiness failureThreshold"),
        "values_readiness_initial_delay": _int(cfg.v("global.proxy.readinessInitialDelaySeconds", 0),
                                               "global.proxy.readinessInitialDelaySeconds"),
        "values_readiness_period": _int(cfg.v("global.proxy.readinessPeriodSeconds", 15),
                                        "global.proxy.readinessPeriodSeconds"),
        "values_readiness_failure_threshold": _int(cfg.v("global.proxy.readinessFailureThreshold", 4),
                                                   "global.proxy.readinessFailureThreshold"),
    }

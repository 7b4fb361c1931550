"""Sidecar injection as a pure function: workload manifest + Values + MeshConfig → injected
manifest (and its inverse, `remove`).

The pipeline for one pod template, following Istio's injector:
  1. skip pods that opt out (`sidecar.istio.io/inject: "false"`), use host networking, or live in
     a system namespace; undo an earlier injection first, so injecting twice changes nothing;
  2. validate the injection annotations;
  3. render the selected templates (templates/inject/<name>.yaml.j2, default `sidecar`) and merge
     each onto the pod with strategic-merge semantics;
  4. re-apply containers the user declared under an injected name (`istio-proxy` with
     `image: auto`, a custom `istio-init`), recorded in `proxy.istio.io/overrides`;
  5. post-process: Prometheus merge annotations, application probes rewritten to the agent,
     `sidecar.istio.io/status`, container order;
  6. record what changed in `inject.meshctl.io/undo`, so `remove` restores the original exactly.

Templates are rendered once per distinct set of settings; the few values that differ per pod are
placeholders filled here.
"""
from __future__ import annotations

import json
import re
from typing import Callable

from meshctl.errors import InputError, clip
from meshctl.inject import probes, undo
from meshctl.inject.merge import copy, merge
from meshctl.inject.render import TEMPLATE_NAMES, Renderer
from meshctl.inject.settings import InjectConfig, make_config, proxy_config_for
from meshctl.inject.validate import validate_annotations, validate_workload_shape
from meshctl.kinds import SYSTEM_NAMESPACES, TEMPLATE_KINDS, WORKLOAD_KINDS  # noqa: F401
from meshctl.loader import json_loads

PROXY = "istio-proxy"
INIT = "istio-init"
VALIDATION = "istio-validation"
CORE_DUMP = "enable-core-dump"
STATUS = "sidecar.istio.io/status"
OVERRIDES = "proxy.istio.io/overrides"
UNDO = undo.UNDO
TEMPLATES_ANNOTATION = "inject.istio.io/templates"
IGNORED_NAMESPACES = SYSTEM_NAMESPACES
_CRONJOB_NAME = re.compile(r"^(.+)-\d{8,10}$")


Warn = Callable[[str], None]


# --- pod fields --------------------------------------------------------------------------------
def _containers(spec: dict, key: str = "containers") -> list[dict]:
    return [c for c in spec.get(key) or [] if isinstance(c, dict)]


def _names(items) -> list[str] | None:
    names = [i.get("name", "") for i in items or [] if isinstance(i, dict)]
    return names or None


def _move(items: list[dict], name: str, first: bool) -> list[dict]:
    match = None
    rest = []
    for c in items:
        if c.get("name") == name:
            match = c
        else:
            rest.append(c)
    if match is None:
        return items
    return [match] + rest if first else rest + [match]


def _port_json(port: dict) -> str:
    order = ("name", "hostPort", "containerPort", "protocol", "hostIP")
    out = {k: port[k] for k in order if port.get(k) not in (None, "", 0)}
    return json.dumps(out, separators=(",", ":"), default=str)


def _pod_ports(spec: dict) -> str:
    parts = []
    for c in _containers(spec):
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                parts.append(("\n    " if not parts else "\n    ,") + _port_json(p))
    return "[" + "".join(parts) + "\n]"


def _multus(existing: str | None, network: str = "default/istio-cni") -> str:
    if not existing:
        return network
    i = existing.rfind("]")
    if i != -1:
        try:
            nets = json_loads(existing)
        except ValueError:
            return existing
        ns, _, name = network.rpartition("/")
        for n in nets if isinstance(nets, list) else []:
            if isinstance(n, dict) and n.get("name") == name and (n.get("namespace") or "") == ns:
                return existing
        item = f', {{"name": "{name}", "namespace": "{ns}"}}' if ns else f', {{"name": "{name}"}}'
        return existing[:i] + item + existing[i:]
    if any(n.strip() == network for n in existing.split(",")):
        return existing
    return existing + ", " + network


def _deploy_meta_from_pod(meta: dict) -> tuple[str, str, str, str]:
    """(name, namespace, apiVersion, kind) of the workload that owns a bare Pod."""
    name, ns = meta.get("name") or "", meta.get("namespace") or ""
    api, kind = "v1", "Pod"
    labels = meta.get("labels") or {}
    if meta.get("generateName"):
        ref = next((r for r in meta.get("ownerReferences") or [] if isinstance(r, dict) and r.get("controller")), None)
        if ref is not None:
            api, kind, name = ref.get("apiVersion", ""), ref.get("kind", ""), ref.get("name", "")
            h = labels.get("pod-template-hash")
            rh = labels.get("rollouts-pod-template-hash")
            if kind == "ReplicaSet" and h and name.endswith(h):
                name, kind = name[: -len(h) - 1] if name.endswith("-" + h) else name, "Deployment"
            elif kind == "ReplicaSet" and rh and name.endswith(rh):
                name, kind, api = name[: -len(rh) - 1] if name.endswith("-" + rh) else name, "Rollout", "v1alpha1"
            elif kind == "ReplicationController" and labels.get("deploymentconfig"):
                name, kind = labels["deploymentconfig"], "DeploymentConfig"
            elif kind == "Job":
                m = _CRONJOB_NAME.match(name)
                if m:
                    name, kind, api = m.group(1), "CronJob", "batch/v1"
    return name or (meta.get("name") or ""), ns, api, kind


def _per_pod_values(meta: dict, spec: dict, deploy: tuple[str, str, str, str], network: str) -> dict:
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    name, ns, api, kind = deploy
    app = [c.get("name", "") for c in _containers(spec) if c.get("name") != PROXY]
    canonical = (labels.get("service.istio.io/canonical-name") or labels.get("app.kubernetes.io/name")
                 or labels.get("app") or name)
    first = app[0] if app else None
    workload = labels.get("service.istio.io/workload-name") or name
    return {
        "tls_mode": str(labels.get("security.istio.io/tlsMode") or "istio"),
        "tunnel": str(labels.get("networking.istio.io/tunnel") or "http"),
        "canonical_name": str(canonical)[:63].strip("-_."),
        "canonical_revision": str(labels.get("service.istio.io/canonical-revision")
                                  or labels.get("app.kubernetes.io/version") or labels.get("version") or "latest"),
        "default_logs_container": None if "kubectl.kubernetes.io/default-logs-container" in annotations else first,
        "default_container": None if "kubectl.kubernetes.io/default-container" in annotations else first,
        "multus_networks": _multus(annotations.get("k8s.v1.cni.cncf.io/networks")),
        "pod_ports": _pod_ports(spec),
        "app_containers": ",".join(app),
        "workload_name": str(workload) if workload else None,
        "deployment_name": name or None,
        "owner": (f"kubernetes://apis/{api}/namespaces/{ns or 'default'}/{kind.lower()}s/{name}"
                  if api and name else None),
        "istio_certs_secret": "istio." + (spec.get("serviceAccountName") or "default"),
        "network": network,
    }


def _injection_disabled(meta: dict) -> bool:
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    value = annotations.get("sidecar.istio.io/inject")
    if "sidecar.istio.io/inject" in labels:
        value = labels["sidecar.istio.io/inject"]
    return str(value).lower() == "false" if value is not None else False


def _status_value(template_spec: dict, revision: str) -> str:
    status = {
        "initContainers": _names(template_spec.get("initContainers")),
        "containers": _names(template_spec.get("containers")),
        "volumes": _names(template_spec.get("volumes")),
        "imagePullSecrets": _names(template_spec.get("imagePullSecrets")),
        "revision": revision or "default",
    }
    return json.dumps(status, separators=(",", ":"))


def _istio_strip(meta: dict, spec: dict, status_port: int) -> tuple[dict, dict]:
    """Remove what an injector listed in sidecar.istio.io/status (a pod injected by Istio)."""
    meta, spec = copy(meta), copy(spec)
    annotations = meta.get("annotations") or {}
    try:
        status = json_loads(annotations.get(STATUS, ""))
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    for key, field in (("containers", "containers"), ("initContainers", "initContainers"),
                       ("volumes", "volumes"), ("imagePullSecrets", "imagePullSecrets")):
        drop = set(status.get(field) or [])
        if drop and key in spec:
            spec[key] = [i for i in spec[key] if not (isinstance(i, dict) and i.get("name") in drop)]
            if not spec[key]:
                del spec[key]
    for k, v in list(annotations.items()):
        if probes.sanitize(k) == "prometheus_io_port" and str(v) == str(status_port):
            for p in [p for p in annotations if probes.sanitize(p) in probes._PROMETHEUS_KEYS]:
                annotations.pop(p, None)
            break
    annotations.pop(STATUS, None)
    return meta, spec


# --- injection --------------------------------------------------------------------------------
def _select_templates(annotations: dict) -> list[str]:
    value = annotations.get(TEMPLATES_ANNOTATION)
    names = [n.strip() for n in str(value).split(",")] if value else ["sidecar"]
    for n in names:
        if n not in TEMPLATE_NAMES:
            raise InputError(f"requested injection template {n!r} not found; have {', '.join(TEMPLATE_NAMES)}",
                             hint=f"fix the {TEMPLATES_ANNOTATION} annotation")
    return names


def _find(items, name):
    for i in items or []:
        if isinstance(i, dict) and i.get("name") == name:
            return i
    return None


def _reapply_overrides(merged: dict, original: dict, template_spec: dict, prior_status: dict | None) -> dict:
    """Containers the user declared under an injected name win over the template's fields."""
    o_meta, o_spec = original["metadata"], original["spec"]
    existing = {}
    text = (o_meta.get("annotations") or {}).get(OVERRIDES)
    if text:
        try:
            existing = json_loads(text)
        except ValueError:
            raise InputError(f"invalid value for annotation '{OVERRIDES}': not JSON") from None
    prior = prior_status or {}
    overrides: dict[str, list] = {"containers": [], "initContainers": []}
    for key in ("containers", "initContainers"):
        for c in _containers(template_spec, key):
            name = c.get("name")
            if name in (prior.get(key) or []):
                continue
            match = _find(existing.get(key), name)
            if match is None:
                match = _find(o_spec.get("containers"), name) if key == "containers" else (
                    _find(o_spec.get("containers"), name) or _find(o_spec.get("initContainers"), name))
            if match is None:
                continue
            overlay = copy(match)
            if overlay.get("image") == "auto":
                del overlay["image"]
            overrides[key].append(overlay)
            merged = merge(merged, {"spec": {key: [overlay]}})
    if prior_status is None and (overrides["containers"] or overrides["initContainers"]):
        annotations = dict(merged["metadata"].get("annotations") or {})
        annotations[OVERRIDES] = json.dumps({k: v for k, v in overrides.items() if v}, separators=(",", ":"), default=str)
        merged["metadata"]["annotations"] = annotations
    return merged


def _adjust_init_user(merged: dict, original: dict, tproxy: bool) -> None:
    user = _find(original["spec"].get("containers"), PROXY) or _find(original["spec"].get("initContainers"), PROXY)
    sc = (user or {}).get("securityContext") or {}
    if not user or (sc.get("runAsUser") is None and sc.get("runAsGroup") is None):
        return
    spec = merged["spec"]
    init = _own(spec, "initContainers", INIT) or _own(spec, "initContainers", VALIDATION)
    if init is None:
        return
    tproxy = tproxy or (merged["metadata"].get("annotations") or {}).get("sidecar.istio.io/interceptionMode") == "TPROXY"
    if tproxy and sc.get("runAsUser") is not None:
        proxy = _own(spec, "containers", PROXY) or _own(spec, "initContainers", PROXY)
        if proxy is not None:
            proxy["securityContext"] = dict(proxy.get("securityContext") or {})
            proxy["securityContext"]["runAsUser"] = 0
    if not tproxy and init.get("name") == VALIDATION:
        isc = init["securityContext"] = dict(init.get("securityContext") or {})
        if sc.get("runAsUser") is not None:
            isc["runAsUser"] = sc["runAsUser"]
        if sc.get("runAsGroup") is not None:
            isc["runAsGroup"] = sc["runAsGroup"]
    uid = sc.get("runAsUser")
    if not uid:
        return
    args = list(init.get("args") or [])
    for i, a in enumerate(args[:-1]):
        if a == "-u":
            args[i + 1] = str(uid)
            init["args"] = args
            return


def _own(spec: dict, key: str, name: str) -> dict | None:
    """The container `name` of spec[key], replaced by a copy the caller may modify."""
    items = spec.get(key) or []
    for i, c in enumerate(items):
        if isinstance(c, dict) and c.get("name") == name:
            items = list(items)
            items[i] = dict(c)
            spec[key] = items
            return items[i]
    return None


def _cluster_env_last(spec: dict, cluster: str, network: str) -> None:
    """The cluster and network the proxy belongs to go last in its environment (as Istio's
    injector sets them after rendering)."""
    envs = {k: v for k, v in (("ISTIO_META_CLUSTER_ID", cluster), ("ISTIO_META_NETWORK", network)) if v}
    if not envs or probes.find_container(spec, PROXY) is None:
        return
    proxy = probes._own_sidecar(spec)
    env = [e for e in proxy.get("env") or [] if not (isinstance(e, dict) and e.get("name") in envs)]
    proxy["env"] = env + [{"name": k, "value": envs[k]} for k in sorted(envs)]


def _reorder(spec: dict, hold: bool) -> None:
    if spec.get("containers"):
        spec["containers"] = _move(spec["containers"], PROXY, first=hold)
    inits = spec.get("initContainers")
    if not inits:
        return
    if _find(inits, PROXY) is not None:
        for name in (CORE_DUMP, PROXY, VALIDATION, INIT):
            inits = _move(inits, name, first=True)
    else:
        inits = _move(inits, VALIDATION, first=True)
        inits = _move(inits, INIT, first=False)
        inits = _move(inits, CORE_DUMP, first=False)
    spec["initContainers"] = inits


def inject_pod(meta: dict, spec: dict, deploy: tuple[str, str, str, str], cfg: InjectConfig,
               renderer: Renderer | None = None, where: str = "pod") -> tuple[dict, dict]:
    """Inject one pod template. Returns new (metadata, spec); the arguments are not modified."""
    renderer = renderer or Renderer()
    prior_status = None
    restored = undo.restore(meta, spec)
    if restored is not None:
        meta, spec = restored
    if STATUS in (meta.get("annotations") or {}):
        try:
            prior_status = json_loads(meta["annotations"][STATUS])
        except ValueError:
            prior_status = {}
        if not isinstance(prior_status, dict):
            prior_status = {}
    original = {"metadata": meta, "spec": spec}
    annotations = meta.get("annotations") or {}
    validate_annotations(annotations, where)
    pod_revision = (meta.get("labels") or {}).get("istio.io/rev") or annotations.get("istio.io/rev")
    if not cfg.revision and pod_revision and str(pod_revision) != "default":
        cfg = renderer.for_revision(cfg, str(pod_revision))
    if prior_status is not None:
        meta, spec = _istio_strip(meta, spec, cfg.status_port)
        text = (meta.get("annotations") or {}).get(OVERRIDES)
        if text:
            try:
                saved = json_loads(text)
            except ValueError:
                saved = {}
            spec = copy(spec)
            for key in ("containers", "initContainers"):
                for c in saved.get(key) or []:
                    if _find(spec.get(key), c.get("name")) is None:
                        spec.setdefault(key, []).append(c)
        annotations = meta.get("annotations") or {}
    stripped_meta, stripped_spec = meta, spec

    labels = meta.get("labels") or {}
    network = labels.get("topology.istio.io/network")
    ctx, ctx_key = renderer.context(cfg, annotations, network)
    network = ctx["network"]
    per_pod = _per_pod_values(stripped_meta, stripped_spec, deploy, network)
    container_names = tuple(c.get("name", "") for c in _containers(stripped_spec))

    merged = {"metadata": copy(stripped_meta), "spec": copy(stripped_spec)}
    template_pod: dict = {}
    for name in _select_templates(annotations):
        names = container_names if name == "grpc-simple" else tuple(n for n in container_names if n != PROXY)
        overlay = renderer.fill(renderer.overlay(name, ctx, names, ctx_key), per_pod)
        template_pod = merge(template_pod, overlay, share=True)
        t_spec = template_pod.get("spec") or {}
        m_spec = merged["spec"]
        if ctx["native"] and _find(t_spec.get("initContainers"), PROXY) and _find(m_spec.get("containers"), PROXY):
            proxy = _find(m_spec["containers"], PROXY)
            m_spec["containers"] = [c for c in m_spec["containers"] if c is not proxy]
            m_spec["initContainers"] = list(m_spec.get("initContainers") or []) + [proxy]
        merged = merge(merged, overlay, share=True)
    merged.setdefault("metadata", {})
    merged.setdefault("spec", {})
    template_spec = template_pod.get("spec") or {}

    merged = _reapply_overrides(merged, {"metadata": original["metadata"], "spec": original["spec"]}
                                if prior_status is None else {"metadata": stripped_meta, "spec": stripped_spec},
                                template_spec, prior_status)
    pc = proxy_config_for(cfg, annotations)
    _adjust_init_user(merged, {"spec": stripped_spec}, str(pc.get("interceptionMode")) == "TPROXY")

    m_meta, m_spec = merged["metadata"], merged["spec"]
    cluster = str(cfg.v("global.multiCluster.clusterName") or "")
    _cluster_env_last(m_spec, "" if cluster == "Kubernetes" else cluster, network or "")  # Kubernetes: the default
    m_annotations = m_meta["annotations"] = dict(m_meta.get("annotations") or {})
    m_labels = m_meta["labels"] = dict(m_meta.get("labels") or {})
    probes.apply_prometheus_merge(m_spec, m_annotations, cfg.status_port, cfg.prometheus_merge, where)
    probes.apply_secure_prometheus(m_spec, m_annotations)
    probes.apply_rewrite(m_spec, m_annotations, cfg.status_port, cfg.rewrite_app_probes)
    if network:
        m_labels["topology.istio.io/network"] = network
    m_annotations[STATUS] = _status_value(template_spec, cfg.revision)
    hold = bool(pc.get("holdApplicationUntilProxyStarts")) or cfg.hold_application
    _reorder(m_spec, hold)
    if not m_labels and "labels" not in original["metadata"]:
        del m_meta["labels"]

    m_annotations[UNDO] = undo.record(original["metadata"], original["spec"], m_meta, m_spec)
    return m_meta, m_spec


def remove_pod(meta: dict, spec: dict, status_port: int = 15020) -> tuple[dict, dict]:
    """The pod as it was before injection: exact when meshctl injected it, otherwise what the
    injector's status annotation lists is taken out."""
    restored = undo.restore(meta, spec)
    if restored is not None:
        return restored
    if STATUS not in (meta.get("annotations") or {}):
        return meta, spec
    meta, spec = _istio_strip(meta, spec, status_port)
    annotations = meta.get("annotations") or {}
    try:
        saved = json_loads(annotations.get(OVERRIDES) or "{}")
    except ValueError:
        saved = {}
    for key in ("containers", "initContainers"):
        for c in (saved.get(key) if isinstance(saved, dict) else None) or []:
            if not isinstance(c, dict) or not c.get("name"):
                continue
            c = dict(c)
            c.setdefault("image", "auto")  # the injector dropped `image: auto` from the override
            target = "containers" if c["name"] == PROXY else key
            if _find(spec.get(target), c["name"]) is None:
                spec.setdefault(target, []).append(c)
    for k in ("istio.io/rev", OVERRIDES):
        annotations.pop(k, None)
    labels = meta.get("labels") or {}
    for k in ("security.istio.io/tlsMode", "service.istio.io/canonical-name", "service.istio.io/canonical-revision"):
        labels.pop(k, None)
    return meta, spec


# --- workloads --------------------------------------------------------------------------------
def pod_template(doc: dict) -> tuple[dict, str] | None:
    """(the dict holding `metadata` and `spec` of the pod, its path) for a workload document."""
    kind = doc.get("kind")
    spec = doc.get("spec")
    if kind == "Pod":
        return doc, ""
    if not isinstance(spec, dict):
        return None
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec")
        if not isinstance(spec, dict):
            return None
        tmpl = spec.get("template")
        return (tmpl, "spec.jobTemplate.spec.template") if isinstance(tmpl, dict) else None
    if kind in TEMPLATE_KINDS:
        tmpl = spec.get("template")
        return (tmpl, "spec.template") if isinstance(tmpl, dict) else None
    return None


def _describe(doc: dict) -> str:
    """`Kind ns/name` of a document, whatever the types of its metadata."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name") or meta.get("generateName") or ""
    ns = meta.get("namespace")
    name = name if isinstance(name, str) else clip(name, 40)
    ns = ns if isinstance(ns, str) else clip(ns, 40) if ns else ""
    return f"{doc.get('kind')} {ns + '/' if ns else ''}{name}"


def inject_workload(doc: dict, cfg: InjectConfig, renderer: Renderer | None = None,
                    warn: Warn | None = None, where: str | None = None) -> dict:
    """The injected workload (a new dict), or `doc` itself when it is not injected."""
    warn = warn or (lambda _m: None)
    if doc.get("kind") not in WORKLOAD_KINDS:
        return doc
    label = where or _describe(doc)
    validate_workload_shape(doc, label)
    found = pod_template(doc)
    if found is None:
        return doc
    holder, _path = found
    meta = holder.get("metadata") if isinstance(holder.get("metadata"), dict) else {}
    spec = holder.get("spec")
    if not isinstance(spec, dict):
        return doc
    doc_meta = doc.get("metadata") or {}
    if spec.get("hostNetwork"):
        warn(f"skipping injection because {_describe(doc)} has host networking enabled")
        return doc
    if _injection_disabled(meta):
        warn(f"skipping injection because {_describe(doc)} has sidecar injection disabled")
        return doc
    namespace = meta.get("namespace") or doc_meta.get("namespace")
    if namespace in IGNORED_NAMESPACES:
        warn(f"skipping injection because {_describe(doc)} is in the system namespace {namespace}")
        return doc
    if doc.get("kind") == "Pod":
        deploy = _deploy_meta_from_pod(meta)
    else:
        deploy = (doc_meta.get("name") or "", doc_meta.get("namespace") or "", doc.get("apiVersion") or "",
                  doc.get("kind") or "")
    meta_absent = "metadata" not in holder or undo.record_of(meta).get("metadata_absent") is True
    new_meta, new_spec = inject_pod(meta, spec, deploy, cfg, renderer or Renderer(), where=label)
    if meta_absent:
        rec = json_loads(new_meta["annotations"][UNDO])
        rec["metadata_absent"] = True
        new_meta["annotations"][UNDO] = json.dumps(rec, separators=(",", ":"), default=str)
    return _replace_pod(doc, new_meta, new_spec, had_meta="metadata" in holder)


def _replace_pod(doc: dict, meta: dict, spec: dict, had_meta: bool = True) -> dict:
    out = dict(doc)
    if out.get("kind") == "Pod":
        out["metadata"], out["spec"] = meta, spec
        return out
    out["spec"] = dict(out["spec"])
    if out.get("kind") == "CronJob":
        jt = dict(out["spec"]["jobTemplate"])
        jt["spec"] = dict(jt["spec"])
        holder = dict(jt["spec"]["template"])
        jt["spec"]["template"] = holder
        out["spec"]["jobTemplate"] = jt
    else:
        holder = dict(out["spec"]["template"])
        out["spec"]["template"] = holder
    if had_meta:
        holder["metadata"] = meta
    else:
        items = list(holder.items())
        holder.clear()
        holder["metadata"] = meta
        holder.update(items)
    holder["spec"] = spec
    return out


def remove_workload(doc: dict, cfg: InjectConfig | None = None) -> dict:
    """The workload with its injected sidecar removed (`doc` itself when nothing was injected)."""
    found = pod_template(doc) if doc.get("kind") in WORKLOAD_KINDS else None
    if found is None:
        return doc
    holder, _ = found
    meta, spec = holder.get("metadata"), holder.get("spec")
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return doc
    if UNDO not in (meta.get("annotations") or {}) and STATUS not in (meta.get("annotations") or {}):
        return doc
    status_port = cfg.status_port if cfg else 15020
    new_meta, new_spec = remove_pod(meta, spec, status_port)
    rec = undo.record_of(meta)
    out = _replace_pod(doc, new_meta, new_spec)
    if rec.get("metadata_absent") and not new_meta:
        found2 = pod_template(out)
        if found2:
            found2[0].pop("metadata", None)
    return out


def inject(manifest: dict, values: dict | None = None, mesh_config: dict | None = None,
           revision: str | None = None, warn: Warn | None = None) -> dict:
    """Pure function: workload manifest + Values + MeshConfig → injected manifest."""
    cfg = make_config(values, mesh_config, revision)
    if manifest.get("kind") == "List" and isinstance(manifest.get("items"), list):
        out = dict(manifest)
        out["items"] = [inject_workload(i, cfg, warn=warn) if isinstance(i, dict) else i for i in manifest["items"]]
        return out
    return inject_workload(manifest, cfg, warn=warn)

"""The render stage of install: Values → the ordered list of Kubernetes objects to apply.

Components are jinja2 templates under templates/install/<component>/*.yaml.j2 (files whose name
starts with `_` are macros). The CRDs are built here from meshctl.schemas (they are data, not
layout). Every template is rendered and parsed before anything is returned, so a broken template
yields an error and no output at all.

Order: CRDs → namespaces → RBAC → config → workloads → webhooks → mesh policy (the
PeerAuthentication that sets the mesh-wide mTLS mode, applied once the CRDs exist).
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

from meshctl.errors import EXIT_INTERNAL, MeshctlError
from meshctl.kinds import REVISION_LABEL
from meshctl.resources import Resource

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshctl", "app.kubernetes.io/part-of": "meshctl"}
REV_LABEL = REVISION_LABEL
SHARED_LABEL = "meshctl.io/shared"

# Components in render order, each with the values key that switches it on.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("namespace", ()),
    ("base", ("components", "base", "enabled")),
    ("pilot", ("components", "pilot", "enabled")),
    ("ingress", ("components", "ingressGateway", "enabled")),
    ("cni", ("components", "cni", "enabled")),
    ("ztunnel", ("components", "ztunnel", "enabled")),
)

KIND_ORDER = (
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    "ConfigMap",
    "Deployment", "DaemonSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
)
_RANK = {k: i for i, k in enumerate(KIND_ORDER)}

# Objects every revision shares (one per cluster): rendered identically whatever the revision.
_SHARED = {("CustomResourceDefinition", None), ("Namespace", None),
           ("ServiceAccount", "istio-reader-service-account"), ("PeerAuthentication", "default")}

ISTIO_GROUPS = ["config.istio.io", "security.istio.io", "networking.istio.io", "authentication.istio.io",
                "rbac.istio.io", "telemetry.istio.io", "extensions.istio.io"]


# --- jinja2 -------------------------------------------------------------------------------------

def _q(value: Any) -> str:
    """A YAML-safe scalar: JSON is YAML, so strings with ":" or "#" stay strings (non-ASCII is
    escaped, so characters YAML 1.1 reads as line breaks cannot fold a value)."""
    return json.dumps(value, sort_keys=True)


def _tojson(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    from meshctl.paths import templates_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        bytecode_cache=_bytecode_cache(jinja2),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
        auto_reload=False,
    )
    env.filters["q"] = _q
    env.filters["tojson"] = _tojson
    env.policies["json.dumps_kwargs"] = {"sort_keys": True}
    return env


def _cache_dir(name: str) -> str | None:
    """A per-user cache folder ($XDG_CACHE_HOME/meshctl/<name>, or $MESHCTL_CACHE_DIR/<name>);
    None when MESHCTL_CACHE_DIR=off or the folder cannot be written."""
    import os

    where = os.environ.get("MESHCTL_CACHE_DIR")
    if where == "off":
        return None
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        where = os.path.join(base, "meshctl")
    folder = os.path.join(where, name)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    return folder


def _bytecode_cache(jinja2):
    """Compiled templates cached per user (jinja2 checks each template's source checksum), so a
    run does not recompile ~30 templates."""
    folder = _cache_dir("jinja2")
    return jinja2.FileSystemBytecodeCache(folder) if folder else None


def _component_templates(component: str) -> list[str]:
    from meshctl.paths import templates_dir

    folder = templates_dir() / "install" / component
    if not folder.is_dir():
        return []
    return sorted(f"install/{component}/{p.name}" for p in folder.glob("*.yaml.j2") if not p.name.startswith("_"))


def _read_data(name: str) -> str:
    from meshctl.paths import templates_dir

    return (templates_dir() / "install" / name).read_text(encoding="utf-8")


# --- values helpers ------------------------------------------------------------------------------

def _get(values: dict, path: tuple[str, ...], default: Any = None) -> Any:
    node: Any = values
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return default
        node = node[step]
    return node


def complete_values(values: dict) -> dict:
    """`values` over the defaults of its profile, so callers may pass partial values."""
    from meshctl.install.profiles import list_profiles, merge, profile_values

    name = values.get("profile") or "sidecar"
    if name not in list_profiles():
        name = "sidecar"
    return merge(profile_values(name), values)


def _image(values: dict, name: str) -> str:
    if "/" in name:
        return name
    return f"{values['hub']}/{name}:{values['tag']}"


def _yaml_text(data: Any) -> str:
    """YAML for text inside a ConfigMap: sorted keys, multi-line strings as literal blocks."""
    import yaml

    return yaml.dump(data, Dumper=_Dumper.get(), sort_keys=True, default_flow_style=False, width=1000)


def _mesh_config(values: dict, ns: str, istiod: str) -> dict:
    mesh = {
        "rootNamespace": ns,
        "enableAutoMtls": True,
        "defaultProviders": {"metrics": ["prometheus"]},
        "defaultConfig": {"discoveryAddress": f"{istiod}.{ns}.svc:15012"},
    }
    meshid = _get(values, ("global", "meshID"))
    if meshid:
        mesh["defaultConfig"]["meshId"] = meshid
    from meshctl.install.profiles import merge

    return merge(mesh, values.get("meshConfig") or {})


def _istiod_env(values: dict, rev: str, ns: str, ambient: bool) -> list[dict]:
    field = lambda path: {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}  # noqa: E731
    env: list[dict] = [
        {"name": "REVISION", "value": rev or "default"},
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "POD_NAME", **field("metadata.name")},
        {"name": "POD_NAMESPACE", **field("metadata.namespace")},
        {"name": "SERVICE_ACCOUNT", **field("spec.serviceAccountName")},
        {"name": "KUBECONFIG", "value": "/var/run/secrets/remote/config"},
        {"name": "CA_TRUSTED_NODE_ACCOUNTS", "value": f"{ns}/ztunnel"},
        {"name": "PILOT_TRACE_SAMPLING",
         "value": str(_get(values, ("meshConfig", "defaultConfig", "tracing", "sampling"), 1.0))},
        {"name": "PILOT_ENABLE_ANALYSIS", "value": "false"},
        {"name": "CLUSTER_ID", "value": _get(values, ("global", "multiCluster", "clusterName")) or "Kubernetes"},
        {"name": "PLATFORM", "value": ""},
        {"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ]
    derived: dict[str, str] = {}
    if _get(values, ("global", "nativeSidecar")):
        derived["ENABLE_NATIVE_SIDECARS"] = "true"
    if ambient:
        derived["PILOT_ENABLE_AMBIENT"] = "true"
    user = {str(k): ("true" if v is True else "false" if v is False else str(v))
            for k, v in (_get(values, ("components", "pilot", "env")) or {}).items()}
    names = {e["name"] for e in env}
    for k, v in sorted({**derived, **user}.items()):
        if k in names:
            env = [dict(e, value=v) if e["name"] == k and "valueFrom" not in e else e for e in env]
        else:
            env.append({"name": k, "value": v})
    return env


def _gateway_env(values: dict, istiod: str, ns: str, name: str) -> list[dict]:
    field = lambda path: {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}  # noqa: E731
    trust = _get(values, ("meshConfig", "trustDomain")) or "cluster.local"
    env: list[dict] = [
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "CA_ADDR", "value": _get(values, ("global", "caAddress")) or f"{istiod}.{ns}.svc:15012"},
        {"name": "NODE_NAME", **field("spec.nodeName")},
        {"name": "POD_NAME", **field("metadata.name")},
        {"name": "POD_NAMESPACE", **field("metadata.namespace")},
        {"name": "INSTANCE_IP", **field("status.podIP")},
        {"name": "HOST_IP", **field("status.hostIP")},
        {"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "ISTIO_META_WORKLOAD_NAME", "value": name},
        {"name": "ISTIO_META_OWNER", "value": f"kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{name}"},
        {"name": "ISTIO_META_MESH_ID", "value": _get(values, ("global", "meshID")) or trust},
        {"name": "TRUST_DOMAIN", "value": trust},
        {"name": "ISTIO_META_UNPRIVILEGED_POD", "value": "true"},
        {"name": "ISTIO_META_CLUSTER_ID", "value": _get(values, ("global", "multiCluster", "clusterName")) or "Kubernetes"},
        {"name": "ISTIO_META_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    extra: dict[str, str] = {}
    extra.update({str(k): str(v) for k, v in
                  (_get(values, ("meshConfig", "defaultConfig", "proxyMetadata")) or {}).items()})
    extra.update({str(k): str(v) for k, v in (_get(values, ("components", "ingressGateway", "env")) or {}).items()})
    if _get(values, ("global", "network")) and "ISTIO_META_NETWORK" not in extra:
        extra["ISTIO_META_NETWORK"] = values["global"]["network"]
    names = {e["name"] for e in env}
    for k, v in sorted(extra.items()):
        if k in names:
            env = [dict(e, value=v) if e["name"] == k and "valueFrom" not in e else e for e in env]
        else:
            env.append({"name": k, "value": v})
    return env


def _ztunnel_env(values: dict, istiod: str, ns: str) -> list[dict]:
    field = lambda path: {"valueFrom": {"fieldRef": {"fieldPath": path}}}  # noqa: E731
    address = f"{istiod}.{ns}.svc:15012"
    env: list[dict] = [
        {"name": "CA_ADDRESS", "value": _get(values, ("global", "caAddress")) or address},
        {"name": "XDS_ADDRESS", "value": address},
        {"name": "RUST_LOG", "value": str(_get(values, ("components", "ztunnel", "logLevel")) or "info")},
        {"name": "RUST_BACKTRACE", "value": "1"},
        {"name": "ISTIO_META_CLUSTER_ID", "value": _get(values, ("global", "multiCluster", "clusterName")) or "Kubernetes"},
        {"name": "INPOD_ENABLED", "value": "true"},
        {"name": "TERMINATION_GRACE_PERIOD_SECONDS",
         "value": str(_get(values, ("components", "ztunnel", "terminationGracePeriodSeconds"), 30))},
        {"name": "POD_NAME", **field("metadata.name")},
        {"name": "POD_NAMESPACE", **field("metadata.namespace")},
        {"name": "NODE_NAME", **field("spec.nodeName")},
        {"name": "INSTANCE_IP", **field("status.podIP")},
        {"name": "SERVICE_ACCOUNT", **field("spec.serviceAccountName")},
    ]
    for k, v in sorted((_get(values, ("meshConfig", "defaultConfig", "proxyMetadata")) or {}).items()):
        env.append({"name": str(k), "value": str(v)})
    return env


def _injector(values: dict, rev: str) -> tuple[dict, str]:
    """The `values` and `config` keys of ConfigMap istio-sidecar-injector."""
    g = values.get("global") or {}
    proxy = dict(g.get("proxy") or {})
    proxy["image"] = _image(values, proxy.get("image", "proxyv2"))
    proxy.setdefault("clusterDomain", "cluster.local")
    injector_values = {
        "global": {
            "hub": values["hub"],
            "tag": values["tag"],
            "istioNamespace": g.get("istioNamespace", values.get("namespace", "istio-system")),
            "imagePullPolicy": g.get("imagePullPolicy", "IfNotPresent"),
            "logging": g.get("logging") or {"level": "default:info"},
            "proxy": proxy,
            "proxy_init": {"image": _image(values, _get(values, ("global", "proxyInit", "image")) or "proxyv2")},
            "multiCluster": g.get("multiCluster") or {"clusterName": "Kubernetes"},
            "network": g.get("network", ""),
            "meshID": g.get("meshID", ""),
            "caAddress": g.get("caAddress", ""),
        },
        "sidecarInjectorWebhook": values.get("sidecarInjectorWebhook") or {},
        "revision": rev,
        "pilot": {"cni": {"enabled": bool(_get(values, ("components", "cni", "enabled"))), "provider": "default"}},
    }
    config = {
        "policy": "enabled",
        "defaultTemplates": ["sidecar"],
        "alwaysInjectSelector": [],
        "neverInjectSelector": [],
        "injectedAnnotations": {},
        "templates": {
            "sidecar": _read_data("pilot/files/sidecar-injection.yaml"),
            "waypoint": _read_data("pilot/files/waypoint.yaml"),
            "kube-gateway": _read_data("pilot/files/kube-gateway.yaml"),
        },
    }
    return injector_values, _yaml_text(config)


def _context(values: dict) -> dict:
    rev = values.get("revision") or ""
    ns = values.get("namespace") or "istio-system"
    sfx = f"-{rev}" if rev else ""
    istiod = f"istiod{sfx}"
    ambient = bool(_get(values, ("components", "ztunnel", "enabled")))
    injector_values, injector_config = _injector(values, rev)
    return {
        "v": values,
        "ns": ns,
        "rev": rev,
        "rev_label": rev or "default",
        "sfx": sfx,
        "istiod": istiod,
        "ambient": ambient,
        "istio_groups": ISTIO_GROUPS,
        "istiod_selector": ({"app": "istiod", REV_LABEL: rev} if rev else {"app": "istiod", "istio": "pilot"}),
        "image": lambda name: _image(values, name),
        "mesh_yaml": (f"# Mesh-wide mTLS: {values.get('meshMTLS') or 'STRICT'}, set by PeerAuthentication {ns}/default"
                      f" (values key meshMTLS).\n" + _yaml_text(_mesh_config(values, ns, istiod))),
        "istiod_env": _istiod_env(values, rev, ns, ambient),
        "gateway_env": _gateway_env(values, istiod, ns, _get(values, ("components", "ingressGateway", "name"))
                                    or "istio-ingressgateway"),
        "ztunnel_env": _ztunnel_env(values, istiod, ns),
        "injector_values": injector_values,
        "injector_config": injector_config,
    }


# --- CRDs ---------------------------------------------------------------------------------------

_GLUED = re.compile(r"^---[^\s]", re.M)
_PERMISSIVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _openapi(kind: str) -> dict:
    import meshctl.schemas as schemas

    fn = getattr(schemas, "crd_openapi", None)
    if fn is None:
        return copy.deepcopy(_PERMISSIVE)
    try:
        return fn(kind)
    except Exception as e:  # a schema bug must not look like a template bug
        raise MeshctlError(f"cannot build the CRD schema of {kind}: {type(e).__name__}: {e}",
                           hint="this is a bug in meshctl's schemas; please report it", exit_code=EXIT_INTERNAL) from e


def _crds() -> list[dict]:
    from meshctl.schemas import KINDS

    out = []
    for k in sorted(KINDS, key=lambda k: k.crd_name):
        schema = _openapi(k.kind)
        versions = []
        for ver in k.versions:
            versions.append({
                "name": ver,
                "served": True,
                "storage": ver == k.storage_version,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}},
            })
        versions.sort(key=lambda x: x["name"])
        names = {"kind": k.kind, "listKind": f"{k.kind}List", "plural": k.plural,
                 "singular": k.kind.lower(), "categories": ["istio-io", k.group.split(".")[0] + "-istio-io"]}
        if k.short_names:
            names["shortNames"] = list(k.short_names)
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": k.crd_name},
            "spec": {"group": k.group, "names": names, "scope": "Namespaced", "versions": versions},
        })
    return out


# --- render -------------------------------------------------------------------------------------

def _parse(text: str, template: str) -> list[dict]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    glued = _GLUED.search(text)
    if glued:  # a separator swallowed by whitespace control: the next object would merge silently
        line = text.count("\n", 0, glued.start()) + 1
        raise MeshctlError(f"template {template} rendered a broken document separator at line {line} of its output",
                           hint="this is a bug in the template; please report it", exit_code=EXIT_INTERNAL)
    try:
        docs = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1} of its output" if mark is not None else ""
        raise MeshctlError(f"template {template} rendered invalid YAML{where}: "
                           f"{' '.join(str(getattr(e, 'problem', None) or e).split())}",
                           hint="this is a bug in the template; please report it", exit_code=EXIT_INTERNAL) from None
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            raise MeshctlError(f"template {template} rendered a document that is not a Kubernetes object",
                               hint="this is a bug in the template; please report it", exit_code=EXIT_INTERNAL)
    return docs


def _render_template(env, name: str, ctx: dict) -> list[dict]:
    import jinja2

    try:
        text = env.get_template(name).render(ctx)
    except jinja2.TemplateSyntaxError as e:
        raise MeshctlError(f"template {e.name or name}:{e.lineno}: {e.message}",
                           hint="this is a bug in the template; please report it", exit_code=EXIT_INTERNAL) from None
    except jinja2.TemplateError as e:
        raise MeshctlError(f"template {name}: {' '.join(str(e).split())}",
                           hint="a value the template needs is missing or of the wrong type", exit_code=EXIT_INTERNAL) from None
    return _parse(text, name)


def _label(body: dict, component: str, rev: str) -> None:
    meta = body.setdefault("metadata", {})
    labels = dict(meta.get("labels") or {})
    kind = body.get("kind")
    shared = (kind, None) in _SHARED or (kind, meta.get("name")) in _SHARED
    labels.update(MANAGED_BY)
    labels["app.kubernetes.io/component"] = component
    if shared:
        labels[SHARED_LABEL] = "true"
        if kind != "Namespace":  # istio.io/rev on a namespace turns on injection in it
            labels[REV_LABEL] = "default"
    else:
        labels[REV_LABEL] = rev or "default"
    meta["labels"] = dict(sorted(labels.items()))


def render_objects(values: dict) -> list[dict]:
    """The objects as plain dicts, in apply order."""
    values = complete_values(values)
    env = _environment()
    ctx = _context(values)
    rev = ctx["rev"]
    items: list[tuple[int, int, int, dict]] = []
    seq = 0
    for ci, (component, switch) in enumerate(COMPONENTS):
        if switch and not _get(values, switch, False):
            continue
        bodies: list[tuple[str, dict]] = []
        if component == "base":
            bodies.extend(("base", c) for c in _crds())
        for name in _component_templates(component):
            bodies.extend((component, b) for b in _render_template(env, name, ctx))
        for comp, body in bodies:
            _label(body, comp, rev)
            rank = _RANK.get(body["kind"], len(KIND_ORDER))
            items.append((rank, ci, seq, body))
            seq += 1
    items.sort(key=lambda t: (t[0], t[1], t[2]))
    return [b for *_, b in items]


def render(values: dict) -> list[Resource]:
    """meshctl.install.render.render(values) → [Resource], ordered for apply (see module doc)."""
    return [Resource.from_dict(b, source=f"meshctl:{b['kind']}/{b['metadata'].get('name', '')}")
            for b in render_objects(values)]


class _Dumper:
    """A YAML dumper: block style, multi-line strings as literal blocks, keys in given order."""

    @staticmethod
    @lru_cache(maxsize=1)
    def get():
        import yaml

        base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

        class Dumper(base):  # type: ignore[misc, valid-type]
            pass

        def str_rep(dumper, data: str):
            if "\n" in data:
                return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
            return dumper.represent_scalar("tag:yaml.org,2002:str", data)

        Dumper.add_representer(str, str_rep)
        Dumper.ignore_aliases = lambda self, data: True  # CRD versions share one schema: no &anchors
        return Dumper


def _dump(data: Any) -> str:
    import yaml

    return yaml.dump(data, Dumper=_Dumper.get(), sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1000)


def _schema_yaml(schema: dict, memo: dict[int, str]) -> str:
    """The YAML text of a CRD schema: dumped once per run, and kept in the user's cache keyed by
    a digest of the schema (its JSON, key order included), so later runs skip the dump."""
    text = memo.get(id(schema))
    if text is not None:
        return text
    import hashlib
    import os

    folder = _cache_dir("crd-yaml")
    digest = hashlib.sha256(json.dumps(schema).encode()).hexdigest()
    path = os.path.join(folder, f"{digest}.yaml") if folder else None
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            text = None
    if text is None:
        text = _dump(schema)
        if path:
            try:
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, path)
            except OSError:
                pass
    memo[id(schema)] = text
    return text


def to_yaml(objects: list[dict]) -> str:
    """One YAML stream, `---` before each object. A CRD's schema (the same for each of its
    versions, and most of the output) is dumped once and placed under every version."""
    out = []
    memo: dict[int, str] = {}
    for o in objects:
        if o.get("kind") != "CustomResourceDefinition":
            out.append("---\n" + _dump(o))
            continue
        body = copy.copy(o)
        body["spec"] = dict(o["spec"])
        versions = []
        tokens: dict[str, dict] = {}
        for i, ver in enumerate(o["spec"].get("versions", [])):
            schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            if not isinstance(schema, dict):
                versions.append(ver)
                continue
            token = f"meshctl-schema-placeholder-{i}"
            tokens[token] = schema
            versions.append({**ver, "schema": {**ver["schema"], "openAPIV3Schema": token}})
        body["spec"]["versions"] = versions
        text = _dump(body)
        for token, schema in tokens.items():
            block = _schema_yaml(schema, memo)
            head, sep, tail = text.partition(f" {token}\n")
            line_start = head.rfind("\n") + 1
            indent = " " * (len(head) - line_start - len(head[line_start:].lstrip()) + 2)
            text = head + "\n" + "".join(indent + ln if ln.strip() else ln
                                          for ln in block.splitlines(keepends=True)) + tail
        out.append("---\n" + text)
    return "".join(out)


def to_json(objects: list[dict]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n"


def render_yaml(values: dict) -> str:
    """The whole manifest as one YAML stream (documents separated by ---), for the command."""
    return to_yaml(render_objects(values))

"""Pre-install checks of a cluster, in the manner of `linkerd check --pre`.

Checks are grouped in categories that run in order. Each check has an id (its anchor in
docs/checks.md), a one-line description, and whether it is fatal: a fatal failure stops the rest
of its category, and a fatal failure in the "Kubernetes API" category stops the run (nothing
else can be asked of a cluster we cannot reach). A check returns a Result: ok, warning (‼, does
not fail the run) or error (✖, exit 1), with a message and the hint URL under failures.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from meshctl.errors import ClusterError
from meshctl.kinds import SYSTEM_NAMESPACES

HINT_BASE = "https://github.com/meshctl/meshctl/blob/main/docs/checks.md#"
MIN_K8S = (1, 24)
# Envoy/agent ports a mesh workload must leave free (15000-15090 are reserved by the proxy).
PROXY_PORTS = range(15000, 15091)
PROXY_UID = 1337

OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass
class Result:
    status: str = OK
    message: str = ""
    details: list[str] = field(default_factory=list)

    @classmethod
    def ok(cls, message: str = "") -> "Result":
        return cls(OK, message)

    @classmethod
    def warn(cls, message: str, details: Iterable[str] = ()) -> "Result":
        return cls(WARNING, message, list(details))

    @classmethod
    def error(cls, message: str, details: Iterable[str] = ()) -> "Result":
        return cls(ERROR, message, list(details))


@dataclass
class Context:
    kube: Any  # meshctl.kube.Kube
    profile: str = "sidecar"
    revision: str = ""
    istio_namespace: str = "istio-system"
    cache: dict = field(default_factory=dict)

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict]:
        """A cached list; a kind the cluster does not serve is an empty list."""
        key = (api_version, kind, namespace)
        if key not in self.cache:
            from meshctl.kube import NotFound

            try:
                self.cache[key] = self.kube.list(api_version, kind, namespace=namespace)
            except NotFound:  # the kind is not served (its CRD is not installed)
                self.cache[key] = []
        return self.cache[key]


@dataclass
class Check:
    id: str
    category: str
    description: str
    run: Callable[[Context], Result]
    fatal: bool = False
    profiles: tuple[str, ...] = ()  # run only for these profiles (empty: all)

    @property
    def hint_url(self) -> str:
        return HINT_BASE + self.id


# --- Kubernetes API ------------------------------------------------------------------------------

def _api_reachable(ctx: Context) -> Result:
    ctx.cache["version"] = ctx.kube.version()
    return Result.ok()


def _parse_minor(value: Any) -> int:
    m = re.match(r"\d+", str(value or ""))
    return int(m.group(0)) if m else 0


def unsupported_version(info: dict) -> str | None:
    """Why the Kubernetes version in a /version answer is not supported, or None."""
    major, minor = _parse_minor(info.get("major")), _parse_minor(info.get("minor"))
    git = info.get("gitVersion") or f"v{major}.{minor}"
    if (major, minor) < MIN_K8S:
        return f"Kubernetes {git} is older than the minimum supported {MIN_K8S[0]}.{MIN_K8S[1]}"
    return None


def _k8s_version(ctx: Context) -> Result:
    info = ctx.cache.get("version") or ctx.kube.version()
    problem = unsupported_version(info)
    if problem:
        return Result.error(f"{problem}; upgrade the cluster")
    major, minor = _parse_minor(info.get("major")), _parse_minor(info.get("minor"))
    return Result.ok(info.get("gitVersion") or f"v{major}.{minor}")


# --- Permissions -------------------------------------------------------------------------------

# (group, resource, namespaced) that `meshctl install` creates or manages.
INSTALL_RESOURCES: tuple[tuple[str, str, bool], ...] = (
    ("apiextensions.k8s.io", "customresourcedefinitions", False),
    ("", "namespaces", False),
    ("rbac.authorization.k8s.io", "clusterroles", False),
    ("rbac.authorization.k8s.io", "clusterrolebindings", False),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", False),
    ("", "serviceaccounts", True),
    ("rbac.authorization.k8s.io", "roles", True),
    ("rbac.authorization.k8s.io", "rolebindings", True),
    ("", "configmaps", True),
    ("", "services", True),
    ("apps", "deployments", True),
    ("apps", "daemonsets", True),
    ("autoscaling", "horizontalpodautoscalers", True),
    ("policy", "poddisruptionbudgets", True),
)
INSTALL_VERBS = ("create", "get", "list", "patch", "delete")


def _permission_check(group: str, resource: str, namespaced: bool) -> Callable[[Context], Result]:
    def run(ctx: Context) -> Result:
        ns = ctx.istio_namespace if namespaced else None
        missing = [v for v in INSTALL_VERBS if not ctx.kube.can_i(v, resource, group=group, namespace=ns)]
        if missing:
            where = f" in namespace {ns}" if ns else ""
            return Result.error(f"missing permission to {', '.join(missing)} {resource}{where}; "
                                "ask a cluster admin for these rights (install needs cluster-admin or equivalent)")
        return Result.ok()

    return run


# --- Existing installations ------------------------------------------------------------------------

def _istiods(ctx: Context) -> list[dict]:
    return [d for d in ctx.list("apps/v1", "Deployment")
            if (d.get("metadata", {}).get("labels") or {}).get("app") == "istiod"]


def _other_istio(ctx: Context) -> Result:
    found = []
    clash = False
    for d in _istiods(ctx):
        meta = d.get("metadata", {})
        labels = meta.get("labels") or {}
        rev = labels.get("istio.io/rev", "default") or "default"
        owned = labels.get("app.kubernetes.io/managed-by") == "meshctl"
        found.append(f"istiod revision {rev!r} in {meta.get('namespace')}" + (" (meshctl)" if owned else ""))
        if rev == (ctx.revision or "default") and not owned:
            clash = True
    if clash:
        return Result.error(
            f"an Istio control plane with revision {ctx.revision or 'default'!r} already runs and was not installed "
            "by meshctl; install beside it with --revision NAME, or uninstall it first", found)
    mine = [d for d in _istiods(ctx) if ((d.get("metadata", {}).get("labels") or {}).get(
        "app.kubernetes.io/managed-by") == "meshctl" and ((d.get("metadata", {}).get("labels") or {}).get(
            "istio.io/rev") or "default") == (ctx.revision or "default"))]
    if found and len(mine) == len(found):  # only meshctl's own install of this revision: an upgrade
        return Result.ok(f"meshctl's revision {ctx.revision or 'default'!r} is installed; "
                         "installing again upgrades it in place")
    if found:
        return Result.warn("other Istio control planes found; meshctl installs beside them", found)
    return Result.ok()


def _linkerd(ctx: Context) -> Result:
    hits = [f"{d['metadata'].get('namespace')}/{d['metadata'].get('name')}" for d in ctx.list("apps/v1", "Deployment")
            if (d.get("metadata", {}).get("labels") or {}).get("linkerd.io/control-plane-component")]
    if hits:
        return Result.error("Linkerd is installed: two meshes would both try to intercept pod traffic; "
                            "uninstall Linkerd or keep the meshes in separate clusters", hits)
    return Result.ok()


def _webhooks(ctx: Context) -> Result:
    clashes = []
    for hook in ctx.list("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"):
        meta = hook.get("metadata", {})
        labels = meta.get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") == "meshctl":
            continue
        for wh in hook.get("webhooks") or []:
            name = str(wh.get("name", ""))
            if "sidecar-injector" in name or name.endswith("istio.io") or "linkerd-proxy-injector" in name:
                rev = labels.get("istio.io/rev", "default")
                if rev == (ctx.revision or "default") or "linkerd" in name:
                    clashes.append(f"MutatingWebhookConfiguration {meta.get('name')} ({name})")
                break
    if clashes:
        return Result.warn("sidecar-injection webhooks from another installation select the same pods; "
                           "remove them or install with --revision", clashes)
    return Result.ok()


def _crd_versions(ctx: Context) -> Result:
    from meshctl.schemas import KINDS

    ours = {k.crd_name: set(k.versions) for k in KINDS}
    odd = []
    for crd in ctx.list("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        name = crd.get("metadata", {}).get("name", "")
        if name not in ours:
            continue
        labels = crd.get("metadata", {}).get("labels") or {}
        served = {v.get("name") for v in (crd.get("spec", {}).get("versions") or []) if v.get("served")}
        if served != ours[name] and labels.get("app.kubernetes.io/managed-by") != "meshctl":
            odd.append(f"{name} serves {', '.join(sorted(served)) or 'nothing'}; meshctl installs "
                       f"{', '.join(sorted(ours[name]))}")
    if odd:
        return Result.warn("Istio CRDs of other versions exist; install will update them (check other tools that rely on them)", odd)
    return Result.ok()


# --- Namespaces ------------------------------------------------------------------------------------

def _namespace_labels(ctx: Context) -> Result:
    both = []
    for ns in ctx.list("v1", "Namespace"):
        labels = ns.get("metadata", {}).get("labels") or {}
        if "istio-injection" in labels and "istio.io/rev" in labels:
            both.append(f"{ns['metadata']['name']}: istio-injection={labels['istio-injection']}, "
                        f"istio.io/rev={labels['istio.io/rev']}")
    if both:
        return Result.error("namespaces carry both istio-injection and istio.io/rev labels (istio-injection wins "
                            "and the revision is ignored); remove one of them", both)
    return Result.ok()


def _kube_system_injection(ctx: Context) -> Result:
    for ns in ctx.list("v1", "Namespace"):
        meta = ns.get("metadata", {})
        if meta.get("name") not in ("kube-system", "kube-public"):
            continue
        labels = meta.get("labels") or {}
        if labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels \
                or labels.get("istio.io/dataplane-mode") == "ambient":
            return Result.error(f"namespace {meta['name']} is enrolled in the mesh; system components must stay "
                                f"out: kubectl label namespace {meta['name']} istio-injection- istio.io/rev- "
                                "istio.io/dataplane-mode-")
    return Result.ok()


# --- Ambient ---------------------------------------------------------------------------------------

CNI_DAEMONSETS = (
    ("cilium", "Cilium"), ("calico-node", "Calico"), ("kube-flannel", "Flannel"), ("aws-node", "AWS VPC CNI"),
    ("weave-net", "Weave"), ("antrea-agent", "Antrea"), ("kube-router", "kube-router"), ("canal", "Canal"),
    ("azure-cns", "Azure CNI"), ("kindnet", "kindnet"),
)


def _detect_cni(ctx: Context) -> list[tuple[str, dict]]:
    found = []
    for ds in ctx.list("apps/v1", "DaemonSet"):
        name = ds.get("metadata", {}).get("name", "")
        for prefix, label in CNI_DAEMONSETS:
            if name == prefix or name.startswith(prefix + "-") or (prefix == "kube-flannel" and "flannel" in name):
                found.append((label, ds))
                break
    return found


def _cilium_config(ctx: Context) -> dict:
    for ns in ("kube-system", "cilium"):
        try:
            cm = ctx.kube.get("v1", "ConfigMap", "cilium-config", ns)
        except ClusterError:
            cm = None
        if cm:
            return cm.get("data") or {}
    return {}


def _cni(ctx: Context) -> Result:
    found = _detect_cni(ctx)
    if not found:
        return Result.warn("no known CNI DaemonSet found (Cilium, Calico, Flannel, AWS VPC CNI, ...); ambient works "
                           "with most CNIs, but check the platform prerequisites for yours")
    names = sorted({label for label, _ in found})
    if "Cilium" in names:
        conf = _cilium_config(ctx)
        problems = []
        if str(conf.get("cni-exclusive", "true")).lower() == "true":
            problems.append("cni-exclusive is true: Cilium removes other CNI configs; set cni.exclusive=false")
        if str(conf.get("bpf-lb-sock", "false")).lower() == "true" and \
                str(conf.get("bpf-lb-sock-hostns-only", "false")).lower() != "true":
            problems.append("socket load balancing is on for pods: set socketLB.hostNamespaceOnly=true")
        if problems:
            return Result.error(f"Cilium is not configured for ambient mode", problems)
    return Result.ok(", ".join(names))


def _gateway_api(ctx: Context) -> Result:
    """Gateway API CRDs: waypoints need GatewayClass, Gateway and HTTPRoute served as v1; Istio
    ignores kinds whose CRDs are older than its minimums; analyze validates against the release
    meshctl's schemas come from."""
    from meshctl.schemas import gatewayapi

    group = gatewayapi.GROUP
    fix = f"install or upgrade them: {gatewayapi.install_command()}"
    crds = {c.get("metadata", {}).get("name", ""): c
            for c in ctx.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            if c.get("spec", {}).get("group") == group}
    missing = []
    for plural in gatewayapi.WAYPOINT_CRDS:
        crd = crds.get(f"{plural}.{group}")
        served = {v.get("name") for v in (crd or {}).get("spec", {}).get("versions") or [] if v.get("served")}
        if "v1" not in served:
            missing.append(f"{plural}.{group}" + (" is not installed" if crd is None else
                                                  f" serves {', '.join(sorted(served)) or 'nothing'}, not v1"))
    if missing:
        return Result.error("the Gateway API CRDs waypoints need are missing", missing + [fix])
    ours = gatewayapi.parse_version(gatewayapi.bundle_version())
    too_old, older = [], []
    for name, crd in sorted(crds.items()):
        bundle = (crd.get("metadata", {}).get("annotations") or {}).get(gatewayapi.BUNDLE_VERSION_ANNOTATION)
        version = gatewayapi.parse_version(bundle) if bundle else None
        if version is None:
            continue
        minimum = gatewayapi.MINIMUM_CRD_VERSIONS.get(name)
        if minimum and version < minimum:
            too_old.append(f"{name} is {bundle}; Istio ignores it below v{'.'.join(map(str, minimum))}")
        elif ours and version < ours:
            older.append(f"{name} is {bundle}")
    if too_old:
        return Result.error("some Gateway API CRDs are too old for Istio", too_old + [fix])
    if older:
        return Result.warn(f"Gateway API CRDs are older than {gatewayapi.bundle_version()}, the release meshctl "
                           "validates against", older + [fix])
    return Result.ok()


def _kernel(version: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _nodes(ctx: Context) -> Result:
    bad, old = [], []
    for node in ctx.list("v1", "Node"):
        info = (node.get("status") or {}).get("nodeInfo") or {}
        name = node.get("metadata", {}).get("name", "?")
        if info.get("operatingSystem", "linux") != "linux":
            bad.append(f"{name}: {info.get('operatingSystem')} ({info.get('osImage', '')}) cannot run ztunnel")
            continue
        kernel = info.get("kernelVersion", "")
        if kernel and _kernel(kernel) < (4, 18):
            old.append(f"{name}: kernel {kernel} ({info.get('osImage', '')})")
    if bad:
        return Result.warn("some nodes are not Linux; ambient pods can only run on Linux nodes", bad)
    if old:
        return Result.warn("some nodes run kernels older than 4.18, which may lack modules ambient needs "
                           "(xt_connmark, xt_mark, ip_set)", old)
    return Result.ok()


# --- Workloads -------------------------------------------------------------------------------------

def _pods(ctx: Context) -> list[dict]:
    return [p for p in ctx.list("v1", "Pod") if p.get("metadata", {}).get("namespace") not in SYSTEM_NAMESPACES
            and p.get("metadata", {}).get("namespace") != ctx.istio_namespace]


def _pod_name(p: dict) -> str:
    return f"{p['metadata'].get('namespace')}/{p['metadata'].get('name')}"


def _host_network(ctx: Context) -> Result:
    hits = [_pod_name(p) for p in _pods(ctx) if (p.get("spec") or {}).get("hostNetwork")]
    if hits:
        return Result.warn("pods use the host network and cannot join the mesh (their traffic bypasses the proxy)", hits)
    return Result.ok()


def _uid_1337(ctx: Context) -> Result:
    hits = []
    for p in _pods(ctx):
        spec = p.get("spec") or {}
        pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
        for c in spec.get("containers") or []:
            if c.get("name") == "istio-proxy":
                continue
            uid = (c.get("securityContext") or {}).get("runAsUser", pod_uid)
            if uid == PROXY_UID:
                hits.append(f"{_pod_name(p)} container {c.get('name')}")
    if hits:
        return Result.error(f"containers run as UID {PROXY_UID}, the proxy's UID: their traffic would bypass the "
                            "proxy; run them as another user", hits)
    return Result.ok()


def _reserved_ports(ctx: Context) -> Result:
    hits = []
    for p in _pods(ctx):
        for c in (p.get("spec") or {}).get("containers") or []:
            if c.get("name") == "istio-proxy":
                continue
            for port in c.get("ports") or []:
                n = port.get("containerPort")
                if isinstance(n, int) and n in PROXY_PORTS:
                    hits.append(f"{_pod_name(p)} container {c.get('name')} port {n}")
    if hits:
        return Result.warn("containers listen on ports 15000-15090, which the proxy reserves; move them", hits)
    return Result.ok()


CATEGORIES = ("Kubernetes API", "Permissions", "Existing installations", "Namespaces", "Ambient", "Workloads")


def all_checks() -> list[Check]:
    checks = [
        Check("k8s-api", "Kubernetes API", "can query the Kubernetes API", _api_reachable, fatal=True),
        Check("k8s-version", "Kubernetes API", "is running Kubernetes 1.24 or newer", _k8s_version, fatal=True),
    ]
    for group, resource, namespaced in INSTALL_RESOURCES:
        checks.append(Check(f"perm-{resource}", "Permissions", f"can manage {resource}",
                            _permission_check(group, resource, namespaced)))
    checks += [
        Check("existing-istio", "Existing installations", "no conflicting Istio control plane", _other_istio),
        Check("existing-linkerd", "Existing installations", "Linkerd is not installed", _linkerd),
        Check("existing-webhooks", "Existing installations", "no conflicting injection webhooks", _webhooks),
        Check("existing-crds", "Existing installations", "Istio CRDs are absent or of the expected versions", _crd_versions),
        Check("ns-labels", "Namespaces", "no namespace has both injection labels", _namespace_labels),
        Check("ns-kube-system", "Namespaces", "system namespaces are not enrolled in the mesh", _kube_system_injection),
        Check("ambient-cni", "Ambient", "the CNI supports ambient mode", _cni, profiles=("ambient",)),
        Check("ambient-nodes", "Ambient", "nodes can run ztunnel (Linux, recent kernel)", _nodes, profiles=("ambient",)),
        Check("ambient-gateway-api", "Ambient", "the Gateway API CRDs waypoints need are installed and recent enough",
              _gateway_api, profiles=("ambient",)),
        Check("workload-host-network", "Workloads", "no pods use the host network", _host_network),
        Check("workload-uid", "Workloads", f"no containers run as UID {PROXY_UID}", _uid_1337),
        Check("workload-ports", "Workloads", "no containers use the proxy's ports 15000-15090", _reserved_ports),
    ]
    return checks


@dataclass
class Outcome:
    check: Check
    result: Result


def run_checks(ctx: Context, checks: list[Check] | None = None,
               on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run checks category by category. A fatal failure stops its category; one in the Kubernetes
    API category stops the run. ClusterError from the first check propagates (exit 3)."""
    outcomes: list[Outcome] = []
    checks = checks if checks is not None else all_checks()
    stop_all = False
    for category in CATEGORIES:
        if stop_all:
            break
        for check in [c for c in checks if c.category == category]:
            if check.profiles and ctx.profile not in check.profiles:
                continue
            try:
                result = check.run(ctx)
            except ClusterError as e:
                if check.id == "k8s-api":
                    raise
                result = Result.error(str(e))
            outcome = Outcome(check, result)
            outcomes.append(outcome)
            if on_result:
                on_result(outcome)
            if result.status == ERROR and check.fatal:
                stop_all = category == "Kubernetes API"
                break
    return outcomes

"""`meshctl analyze` end to end: load → model → analyze → (filter) → a result the report writes.

    result = analyze(AnalyzeOptions(paths=["examples/bookinfo"], recursive=True))
    result.messages          # filtered by suppression and output threshold, sorted
    result.failed            # any message at or above the failure threshold

The stages:
- load: files, directories and stdin through meshctl.loader (a broken document becomes an
  MSH0001 finding, the rest is still analyzed); with `use_kube`, the cluster's objects of every
  namespace first (what the analyzers read crosses namespaces: the control plane and root
  namespaces, hosts and gateways of other namespaces), so a file's object replaces the cluster's
  object of the same identity;
- model: a ResourceSet, plus the stand-in ingress gateway objects istioctl adds when no cluster
  is used (meshctl/analysis/defaults.yaml);
- analyze: the selected analyzers over the set (meshctl.analysis.framework.run);
- filter: findings about the stand-in objects dropped; with `use_kube` and a namespace, only
  findings about that namespace, cluster-scoped objects and the files' objects (istioctl's rule,
  see in_scope); then suppressions and the output threshold.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from meshctl.analysis.framework import (
    IGNORED_NAMESPACES,
    Message,
    Suppression,
    exceeds,
    filter_messages,
    level_rank,
    message_types,
    run,
    select_analyzers,
)
from meshctl.errors import InputError
from meshctl.loader import Loaded, LoadProblem, load_paths, load_text
from meshctl.resources import Resource, ResourceSet

DEFAULTS_SOURCE = "<meshctl defaults>"


@dataclass
class AnalyzeOptions:
    paths: Sequence[str] = ()
    recursive: bool = False
    namespace: str | None = None          # -n: default namespace of documents; with use_kube, the
                                          # namespace whose findings are reported
    all_namespaces: bool = False          # -A with --use-kube: findings of every namespace
    use_kube: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    mesh_config_file: str | None = None
    analyzers: Sequence[str] = ()
    suppress: Sequence[str] = ()
    output_threshold: str = "Info"
    failure_threshold: str = "Error"
    istio_namespace: str = "istio-system"
    ignore_unknown: bool = False          # skip files and documents that are not Kubernetes objects
    allow_empty: bool = False             # paths without any Kubernetes object are not an error


@dataclass
class AnalysisResult:
    messages: list[Message]               # what the report prints
    failed: bool                          # exit 1
    resources: int = 0                    # objects analyzed (without the stand-in defaults)
    files: int = 0                        # files read (stdin counts as one)
    namespaces: list[str] = field(default_factory=list)
    analyzers: list[str] = field(default_factory=list)
    from_cluster: bool = False
    warnings: list[str] = field(default_factory=list)
    hidden: int = 0                       # findings below the output threshold (not suppressed ones)
    scope: str | None = None              # with --use-kube -n: the namespace findings are reported for
    skipped: int = 0                      # documents skipped by ignore_unknown
    analyzed: list[Resource] = field(default_factory=list)  # the objects analyzed (in scope), for JUnit
    failure_threshold: str = "Error"

    def counts(self) -> dict[str, int]:
        out = {"Error": 0, "Warning": 0, "Info": 0}
        for m in self.messages:
            out[m.level] = out.get(m.level, 0) + 1
        return out


# --- mesh config: meshctl.meshconfig (one reader, one failure policy) ------------------------------

def load_mesh_config(path: str) -> dict:
    from meshctl import meshconfig

    return meshconfig.read_file(path)


def merged_mesh_config(user: dict | None) -> dict:
    from meshctl import meshconfig

    return meshconfig.merged(user)


# --- the stand-in ingress gateway ------------------------------------------------------------------

def default_resources(mesh: dict, istio_namespace: str) -> list[Resource]:
    """The Pod and Service istioctl adds for file-only analysis (none when ingress is OFF)."""
    if str(mesh.get("ingressControllerMode", "STRICT")).upper() == "OFF":
        return []
    import yaml

    service = str(mesh.get("ingressService") or "istio-ingressgateway")
    text = Path(__file__).with_name("defaults.yaml").read_text(encoding="utf-8")
    out = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for doc in yaml.load_all(text, Loader=loader):
        meta = doc["metadata"]
        meta["namespace"] = istio_namespace
        meta["name"] = f"{service}-dummypod" if doc["kind"] == "Pod" else service
        out.append(Resource.from_dict(doc, source=DEFAULTS_SOURCE))
    return out


# --- the cluster --------------------------------------------------------------------------------

# Kinds read from a cluster: what the analyzers read.
CLUSTER_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"), ("v1", "Service"), ("v1", "Pod"), ("v1", "ConfigMap"), ("v1", "Secret"),
    ("v1", "Node"), ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("networking.istio.io/v1", "VirtualService"), ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "Gateway"), ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "Sidecar"), ("networking.istio.io/v1", "WorkloadEntry"),
    ("networking.istio.io/v1", "WorkloadGroup"), ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("security.istio.io/v1", "AuthorizationPolicy"), ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "RequestAuthentication"), ("telemetry.istio.io/v1", "Telemetry"),
    ("extensions.istio.io/v1alpha1", "WasmPlugin"), ("extensions.istio.io/v1alpha1", "TrafficExtension"),
    ("networking.istio.io/v1beta1", "ProxyConfig"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"), ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "ListenerSet"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"), ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    # TCPRoute, TLSRoute and ListenerSet are v1 from Gateway API 1.6 (older CRDs are not read)
    ("gateway.networking.k8s.io/v1", "TCPRoute"), ("gateway.networking.k8s.io/v1", "TLSRoute"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"), ("gateway.networking.k8s.io/v1", "BackendTLSPolicy"),
)


def cluster_namespace(opts: AnalyzeOptions, client) -> str | None:
    """The namespace whose findings --use-kube reports: None with -A, else kubectl's rule: -n,
    else the namespace of the kubeconfig context, else `default`."""
    if opts.all_namespaces:
        return None
    return opts.namespace or client.namespace or "default"


def check_namespace(client, namespace: str | None, loaded: Loaded) -> None:
    """Refuse a namespace that is neither in the cluster nor created by the files (exit 2)."""
    if namespace is None or client.get("v1", "Namespace", namespace) is not None:
        return
    if any(r.kind == "Namespace" and r.name == namespace for r in loaded.resources):
        return  # the change being checked creates it
    raise InputError(f"namespace {namespace!r} not found in the cluster",
                     hint="check the name (kubectl get namespaces), or use -A for every namespace")


def cluster_resources(opts: AnalyzeOptions, client=None) -> tuple[list[Resource], dict | None]:
    """Objects of every namespace (but those analysis ignores) and cluster-scoped objects from
    the live cluster, and the mesh config from the `istio` ConfigMap when there is one.

    Every namespace, whatever -n says: analyzers read across namespaces (istiod's Service and the
    mesh-wide policies in the control-plane and root namespaces, Services and Gateways referenced
    from other namespaces), as istioctl does; -n narrows the findings reported (in_scope)."""
    from meshctl import kube

    client = client or kube.client(opts.kubeconfig, opts.context)
    out: list[Resource] = []
    for api_version, kind in CLUSTER_KINDS:
        items = client.list(api_version, kind)  # [] when the kind is not served
        for item in items:
            if not isinstance(item, dict):
                continue
            meta = item.get("metadata")
            if isinstance(meta, dict) and meta.get("namespace") in IGNORED_NAMESPACES:
                continue
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            r = Resource.from_dict(item, source="cluster")
            r.from_cluster = True
            out.append(r)
    from meshctl import meshconfig

    mesh = meshconfig.read_cluster(client, opts.istio_namespace)
    return out, mesh


def in_scope(r: Resource, namespace: str | None) -> bool:
    """Whether findings about an object are reported when analyzing one namespace of a cluster,
    by istioctl's rule: objects of that namespace (a Namespace object counts as in itself) and
    cluster-scoped objects (findings without an object are always reported). meshctl also keeps
    every object read from a file: the files are what the user asked about."""
    if namespace is None or not r.from_cluster:
        return True
    if r.kind == "Namespace":
        return r.name == namespace
    return not r.namespace or r.namespace == namespace


# --- the pipeline -------------------------------------------------------------------------------

def _problem_message(p: LoadProblem) -> Message:
    """A document that could not be loaded, as a finding at its file and line."""
    text = p.message
    if p.unknown == "template":
        text += " (a template, not a manifest: render it first, as helm template does, or --ignore-unknown skips it)"
    elif p.unknown:
        text += " (not a Kubernetes manifest? --ignore-unknown skips such files)"
    return Message(message_types()[p.code], None, (text,), source=p.source, line=p.line, analyzer="loader")


def skip_unknown(loaded: Loaded) -> int:
    """Drop what is not a Kubernetes object (istioctl's --ignore-unknown): documents that are
    not objects, files that are not YAML, and every document of a file holding template actions
    that do not parse (a Helm template: its other documents are not what will be applied
    either). Broken manifests stay. Returns how many documents were skipped."""
    templates = {p.source for p in loaded.problems if p.unknown == "template"}
    kept = [r for r in loaded.resources if r.source not in templates]
    dropped = len(loaded.resources) - len(kept)
    skipped = dropped + sum(1 for p in loaded.problems if p.unknown)
    loaded.resources = kept
    loaded.objects -= min(loaded.objects, dropped)
    loaded.problems = [p for p in loaded.problems if not p.unknown]
    return skipped


def dedupe(messages: list[Message]) -> list[Message]:
    """Sorted, without repeats: two analyzers may report the same finding (as istioctl, a
    message is a repeat when its level, code, resource, file:line and text are the same)."""
    out: list[Message] = []
    seen: set[tuple] = set()
    for m in sorted(messages, key=Message.sort_key):
        key = (m.level, m.code, m.origin, m.reference, m.text)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def check_not_empty(opts: AnalyzeOptions, loaded: Loaded, skipped: int) -> None:
    """Paths that hold no Kubernetes object at all are an input error (exit 2): a CI job pointed
    at the wrong directory must not pass forever. Documents that could not be read are findings,
    and an empty List (kubectl get on nothing) is an answer: neither is empty input."""
    if opts.allow_empty or not opts.paths or loaded.objects or loaded.problems:
        return
    names = ["- (stdin)" if p == "-" else p for p in opts.paths]
    where = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    hints = [] if opts.recursive else [w.split(": ", 1)[1] for w in _skipped_subdirectories(opts.paths)]
    if skipped:
        hints.append(f"{skipped} document{' was' if skipped == 1 else 's were'} skipped by --ignore-unknown "
                     "(not Kubernetes objects)")
    hints.append("check the paths, or pass --allow-empty when finding nothing to analyze is fine")
    raise InputError(f"no Kubernetes objects found in {where}", hint="; ".join(hints))


def _skipped_subdirectories(paths: Sequence[str]) -> list[str]:
    """Directories given without -R that hold no files to analyze but have subdirectories."""
    from meshctl.loader import iter_files

    out = []
    for p in paths:
        if p == "-" or not os.path.isdir(p):
            continue
        try:
            if not iter_files(p, False) and any(e.is_dir() for e in os.scandir(p)):
                out.append(f"{p}: no .yaml, .yml or .json files here; use -R to include its subdirectories")
        except OSError:
            continue
    return out


def count_files(paths: Sequence[str], recursive: bool) -> int:
    from meshctl.loader import iter_files

    n = 0
    for p in paths:
        if p != "-" and os.path.isdir(p):
            n += len(iter_files(p, recursive))
        else:
            n += 1
    return n


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector. Loading builds millions of small objects (the
    objects' bodies and line maps) and nothing here makes cycles worth collecting, while each
    full collection walks them all. Callers that keep the result should drop it before the
    pause ends."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def analyze(opts: AnalyzeOptions) -> AnalysisResult:
    """Run the pipeline (with the cyclic garbage collector paused, see gc_paused)."""
    with gc_paused():
        return _analyze(opts)


def _analyze(opts: AnalyzeOptions) -> AnalysisResult:
    # validate flags first: a bad threshold or suppression is a usage error before any work
    for name, value in (("--output-threshold", opts.output_threshold),
                        ("--failure-threshold", opts.failure_threshold)):
        try:
            level_rank(value)
        except ValueError:
            raise InputError(f"invalid {name} {value!r}", hint="use one of: Info, Warning, Error") from None
    suppressions = [Suppression.parse(s) for s in opts.suppress]
    chosen = select_analyzers([n for a in opts.analyzers for n in str(a).split(",") if n.strip()] or None)
    if not opts.paths and not opts.use_kube:
        raise InputError("nothing to analyze", hint="pass files or directories (or - for stdin), or --use-kube")

    # load
    client = scope = None
    default_ns = opts.namespace or "default"
    if opts.use_kube:
        from meshctl import kube

        client = kube.client(opts.kubeconfig, opts.context)  # reads the kubeconfig; no request yet
        scope = cluster_namespace(opts, client)
        default_ns = opts.namespace or client.namespace or "default"  # as kubectl apply would
    loaded = load_paths(opts.paths, recursive=opts.recursive, default_namespace=default_ns) if opts.paths else Loaded()
    skipped = skip_unknown(loaded) if opts.ignore_unknown else 0
    check_not_empty(opts, loaded, skipped)
    mesh_user = load_mesh_config(opts.mesh_config_file) if opts.mesh_config_file else None

    # model
    live: list[Resource] = []
    if opts.use_kube:
        check_namespace(client, scope, loaded)
        live, live_mesh = cluster_resources(opts, client)
        if mesh_user is None:
            mesh_user = live_mesh

    # analyze
    messages, resources = analyze_loaded(loaded, chosen, mesh_user, opts.istio_namespace,
                                         live=live if opts.use_kube else None)

    # filter
    if scope is not None:
        messages = [m for m in messages if m.resource is None or in_scope(m.resource, scope)]
        resources = [r for r in resources if in_scope(r, scope)]
    kept = filter_messages(messages, suppressions, "Info")
    shown = filter_messages(kept, (), opts.output_threshold)
    warnings = [] if opts.recursive else _skipped_subdirectories(opts.paths)
    warnings += [f"--suppress {s.code}={s.resource}: {s.code} is not a known message code (like IST0101 or "
                 "MSH0101), so it hides nothing" for s in suppressions if not s.known_code()]
    if opts.all_namespaces and not opts.use_kube:
        warnings.append("-A/--all-namespaces reads every namespace of a cluster; it has no effect without --use-kube")
    return AnalysisResult(
        messages=shown, failed=exceeds(kept, opts.failure_threshold), resources=len(resources), analyzed=resources,
        failure_threshold=opts.failure_threshold,
        files=count_files(opts.paths, opts.recursive) if opts.paths else 0,
        namespaces=sorted({r.namespace for r in resources if r.namespace}), analyzers=[a.name for a in chosen],
        from_cluster=opts.use_kube, warnings=warnings, hidden=len(kept) - len(shown), scope=scope,
        skipped=skipped)


def _where(r: Resource) -> str:
    return f"{r.source}:{r.line_of(('metadata', 'name'))}"


def _same_copy(a: Resource, b: Resource) -> bool:
    """Whether two loaded objects are one document read twice (a file given twice, or given
    and found again in a directory)."""
    if a.line != b.line:
        return False
    if a.source == b.source:
        return True
    if not a.source or not b.source or "-" in (a.source, b.source):
        return False
    return os.path.abspath(a.source) == os.path.abspath(b.source)


def file_objects(resources: Sequence[Resource]) -> tuple[list[Resource], list[Message]]:
    """The loaded objects in an order that does not depend on the order of the paths given (by
    file name, then line), one copy of each object, and an MSH0002 finding for each copy that
    another one of the same identity (kind, namespace, name) replaces. The copy kept is the last
    by file name and line, the one `kubectl apply -f DIR` leaves. Objects without a name
    (generateName) are all kept: each creates a new object."""
    ordered = sorted(resources, key=lambda r: (r.source or "", r.line))
    copies: dict[tuple, list[Resource]] = {}
    out: list[Resource] = []
    for r in ordered:
        if not r.metadata.get("name"):
            out.append(r)
            continue
        group = copies.setdefault(r.key, [])
        if not any(_same_copy(r, c) for c in group):
            group.append(r)
    findings: list[Message] = []
    mtype = message_types()["MSH0002"]
    for group in copies.values():
        keep = group[-1]
        out.append(keep)
        for r in group[:-1]:
            findings.append(Message(mtype, r, (r.origin, _where(r), _where(keep), _where(keep)),
                                    ("metadata", "name"), analyzer="loader"))
    out.sort(key=lambda r: (r.source or "", r.line))
    return out, findings


def analyze_loaded(loaded: Loaded, analyzers, mesh_user: dict | None = None, istio_namespace: str = "istio-system",
                   live: list[Resource] | None = None) -> tuple[list[Message], list[Resource]]:
    """Model and analyze: the cluster's objects (`live`; None for file-only analysis, which adds
    the stand-in ingress gateway instead), then the loaded ones on top (one copy of each, see
    file_objects). Returns the findings (load problems included, sorted, without repeats or
    findings about stand-ins) and the objects analyzed (without stand-ins)."""
    resources = ResourceSet(live or ())
    defaults = default_resources(merged_mesh_config(mesh_user), istio_namespace) if live is None else []
    resources.extend(defaults)
    objects, duplicates = file_objects(loaded.resources)
    resources.extend(objects)
    stand_ins = {id(r) for r in defaults}
    messages = run(resources, analyzers, mesh_config=mesh_user, istio_namespace=istio_namespace)
    messages = [m for m in messages if m.resource is None or id(m.resource) not in stand_ins]
    messages.extend(_problem_message(p) for p in loaded.problems)
    messages.extend(duplicates)
    return dedupe(messages), [r for r in resources if id(r) not in stand_ins]


def analyze_text(text: str, source: str = "input.yaml", namespace: str | None = None,
                 mesh_config: dict | None = None, analyzers: Sequence[str] | None = None) -> AnalysisResult:
    """Analyze YAML text as analyze() analyzes one file (for tests and embedding); unfiltered."""
    loaded = load_text(text, source, default_namespace=namespace or "default")
    messages, resources = analyze_loaded(loaded, select_analyzers(analyzers), mesh_config)
    return AnalysisResult(messages=messages, failed=exceeds(messages), resources=len(resources), files=1,
                          analyzed=resources)

"""`meshctl inject` as a plain function: settings (profile/values/--set/mesh config, or the
cluster's injector ConfigMaps) → load → mutate every workload → one output text.

Nothing is written until every document has been processed, so an invalid input never leaves
partial output behind.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

from meshctl.errors import ClusterError, InputError
from meshctl.inject import ambient, sidecar, stream
from meshctl.inject.settings import InjectConfig, get, make_config
from meshctl.loader import json_loads

MODES = ("sidecar", "ambient")


def _yaml_problem(e) -> str:
    """One line for a YAML error: its problem and, when it has one, the line it is on."""
    mark = getattr(e, "problem_mark", None)
    problem = " ".join(str(getattr(e, "problem", None) or e).split())
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def read_mesh_config(path: str) -> dict:
    """A MeshConfig file: either the MeshConfig itself, or an `istio` ConfigMap holding it in data.mesh."""
    from meshctl import meshconfig

    return meshconfig.read_file(path)


def load_values(profile: str, files: Iterable[str], sets: Iterable[str], revision: Optional[str]) -> dict:
    """Install Values through meshctl.install.profiles."""
    from meshctl.install import profiles

    return profiles.load_values(profile, files=list(files), sets=list(sets), revision=revision)


def cluster_settings(kubeconfig: Optional[str], context: Optional[str], revision: Optional[str],
                     istio_namespace: str = "istio-system") -> tuple[dict, dict, bool]:
    """(values, mesh config, runs ambient mode) from the cluster's `istio-sidecar-injector` and
    `istio` ConfigMaps and its ztunnel DaemonSet."""
    import yaml

    from meshctl import kube
    from meshctl.loader import safe_load

    client = kube.client(kubeconfig, context)
    suffix = f"-{revision}" if revision and revision != "default" else ""
    native = _native_sidecars_supported(client.version())
    injector = client.get("v1", "ConfigMap", f"istio-sidecar-injector{suffix}", istio_namespace)
    if injector is None and client.get("v1", "Namespace", istio_namespace) is None:
        raise InputError(f"namespace {istio_namespace} does not exist",
                         hint="--istio-namespace names the control plane's namespace (istio-system by default)")
    if injector is None:
        raise ClusterError(f"ConfigMap {istio_namespace}/istio-sidecar-injector{suffix} not found",
                           hint="is the control plane (of this --revision) installed? or drop --use-kube")
    where = f"ConfigMap {istio_namespace}/istio-sidecar-injector{suffix}"
    try:
        values = json_loads((injector.get("data") or {}).get("values") or "{}")
    except (ValueError, RecursionError):
        try:
            values = safe_load((injector.get("data") or {}).get("values") or "{}") or {}
        except yaml.YAMLError as e:
            raise InputError(f"{where}: data.values is neither JSON nor YAML: {_yaml_problem(e)}",
                             hint="fix the ConfigMap, or reinstall the control plane") from None
    from meshctl import meshconfig

    mesh = meshconfig.read_cluster(client, istio_namespace, revision) or {}
    if not isinstance(values, dict) or not isinstance(mesh, dict):
        raise ClusterError(f"the injector ConfigMaps in {istio_namespace} are not mappings")
    ambient_install = client.get("apps/v1", "DaemonSet", "ztunnel", istio_namespace) is not None
    if revision:
        values["revision"] = revision
    if native is not None and get(values, "global.nativeSidecar") is None:
        values.setdefault("global", {})["nativeSidecar"] = native
    return values, mesh, ambient_install


def _native_sidecars_supported(version: dict) -> Optional[bool]:
    """Native sidecars (init containers with restartPolicy Always) are on from Kubernetes 1.29."""
    try:
        major = int(str(version.get("major", "")).rstrip("+"))
        minor = int(str(version.get("minor", "")).rstrip("+"))
    except ValueError:
        return None
    return (major, minor) >= (1, 29)


def build_config(profile: str = "sidecar", values_files: Iterable[str] = (), sets: Iterable[str] = (),
                 revision: Optional[str] = None, mesh_config_file: Optional[str] = None,
                 native_sidecar: Optional[bool] = None, use_kube: bool = False,
                 kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 istio_namespace: str = "istio-system") -> InjectConfig:
    # istioctl writes install values as `--set values.global.x=y`; meshctl's values have no prefix
    sets = [s[len("values."):] if s.startswith("values.") else s for s in sets]
    if use_kube:
        values, mesh, ambient_install = cluster_settings(kubeconfig, context, revision, istio_namespace)
        if sets:
            from meshctl.install import profiles

            for expr in sets:
                profiles.apply_set(values, expr)
    else:
        values = load_values(profile, values_files, sets, revision)
        ambient_install = values.get("profile") == "ambient" or get(values, "components.ztunnel.enabled") is True
        mesh = {}
    if mesh_config_file:
        from meshctl.inject.settings import deep_merge

        mesh = deep_merge(mesh, read_mesh_config(mesh_config_file))
    import dataclasses

    return dataclasses.replace(make_config(values, mesh, revision, native_sidecar), ambient=bool(ambient_install))


def default_mode(cfg: Optional[InjectConfig], use_kube: bool) -> tuple[str, Optional[str]]:
    """(mode, why) when --mode is not given: ambient when the install the settings come from
    runs ambient mode (so pod templates are labelled, not given a sidecar), else sidecar."""
    if cfg is not None and cfg.ambient:
        source = "the cluster's install, which runs ztunnel (ambient mode)" if use_kube else "the ambient profile"
        return "ambient", (f"following {source}: labelling pod templates for ambient mode instead of injecting "
                           "sidecars (pass --mode sidecar for sidecars)")
    return "sidecar", None


def run(paths: list[str], cfg: Optional[InjectConfig], mode: str = "sidecar", remove: bool = False,
        recursive: bool = False, warn: Callable[[str], None] | None = None) -> str:
    """The output text of `meshctl inject` (raises InputError before producing anything)."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}", hint="use --mode sidecar or --mode ambient")
    inputs = stream.read_inputs(paths, recursive)
    renderer = sidecar.Renderer()
    if mode == "ambient":
        if remove:
            def transform(doc: dict, where: str) -> dict:
                return ambient.unenroll_workload(doc)
        else:
            def transform(doc: dict, where: str) -> dict:
                return ambient.enroll_workload(doc, cfg)
    elif remove:
        def transform(doc: dict, where: str) -> dict:
            return sidecar.remove_workload(doc, cfg)
    else:
        def transform(doc: dict, where: str) -> dict:
            return sidecar.inject_workload(doc, cfg, renderer, warn=warn, where=f"{where}: {sidecar._describe(doc)}")
    return stream.process(inputs, transform, frozen=renderer.frozen)


def as_json(text: str) -> str:
    """The YAML stream inject produced, as JSON: the object, or a `v1 List` of several (as
    kubectl prints them)."""
    from meshctl.loader import safe_load_all
    from meshctl.output import to_json

    docs = [d for d in safe_load_all(text) if d is not None]
    if len(docs) == 1:
        return to_json(docs[0])
    return to_json({"apiVersion": "v1", "kind": "List", "items": docs})

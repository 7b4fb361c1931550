"""What `local up` and `local apply` do before anything runs or changes: analyze the files, load
them (every Istio object checked against its schema), model and translate them, and prove each
proxy's configuration with `envoy --mode validate` — naming the resource Envoy would reject."""
from __future__ import annotations

from typing import Callable, Optional

from meshctl.errors import InputError
from meshctl.local import ca as mesh_ca
from meshctl.local import envoy, model, translate
from meshctl.local.translate import xds
from meshctl.resources import Resource, ResourceSet

Observer = Callable[[str], None]  # progress, one line of text per state change


def quiet(_: str) -> None:
    pass


def preflight(paths: list[str]):
    """`meshctl analyze` over the mesh's files, as `local up` runs it first."""
    from meshctl.analysis.pipeline import AnalyzeOptions, analyze

    return analyze(AnalyzeOptions(paths=paths, recursive=True, output_threshold="Error"))


def load(paths: list[str], recursive: bool = True) -> list[Resource]:
    """Resources of files and directories; a document that cannot be read is an InputError."""
    from meshctl.loader import load_paths

    loaded = load_paths(paths, recursive=recursive, default_namespace="default")
    if loaded.problems:
        p = loaded.problems[0]
        raise InputError(str(p), hint="fix the document, then run the command again")
    check_schemas(loaded.resources)
    return loaded.resources


def check_schemas(resources: list[Resource]) -> None:
    """Istio objects must match their schema (as the API server's CRD validation requires):
    the first error is an InputError at the line of the offending field."""
    from meshctl.schemas import istio_kind
    from meshctl.schemas.validate import validate as validate_schema

    for r in resources:
        if istio_kind(r.api_version, r.kind) is None:
            continue
        for err in validate_schema(r):
            where = r.reference(tuple(err.path))
            raise InputError(f"{r.origin}{f' ({where})' if where else ''}: {err.message}",
                             hint="fix the field; Kubernetes would refuse the object too")


def render(resources: list[Resource], gateway_addresses: Optional[dict] = None) -> tuple[model.Mesh, dict]:
    """Model and translate (the cyclic garbage collector paused: many small dicts, no cycles)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        mesh = model.build(ResourceSet(resources), gateway_addresses)
        return mesh, translate.render(mesh)
    finally:
        if enabled:
            gc.enable()


_DUMMY: dict = {}


def _validation_secrets() -> dict:
    """Secrets of the right shape for `--mode validate` (a throwaway CA, made once)."""
    if not _DUMMY:
        ca = mesh_ca.CA.create()
        leaf = ca.issue(model.spiffe("default", "validate"), 3600)
        _DUMMY.update({xds.SECRET_CERT: xds.cert_secret(leaf), xds.SECRET_ROOT: xds.root_secret(ca)})
    return _DUMMY


def validate(configs: dict[str, translate.ProxyConfig]) -> dict[str, Optional[str]]:
    """`envoy --mode validate` of each proxy's whole configuration: key → None or Envoy's error."""
    secrets = _validation_secrets()
    return envoy.validate({k: translate.validation_bootstrap(c, secrets) for k, c in configs.items()})


def refuse(errors: dict[str, Optional[str]], culprit: Optional[Resource] = None) -> None:
    """An InputError naming the first configuration Envoy rejects (and the resource that makes
    it so, when known); nothing when every configuration is valid."""
    bad = {k: v for k, v in errors.items() if v}
    if not bad:
        return
    key, text = sorted(bad.items())[0]
    what = f"{culprit.origin}" + (f" ({culprit.reference()})" if culprit is not None and culprit.reference() else "") \
        if culprit is not None else f"the configuration of proxy {key}"
    raise InputError(f"Envoy would reject {what}: {text}",
                     hint="nothing was changed; fix the resource and apply again")


def culprit(old: list[Resource], applied: list[Resource], gw: dict, proxies: list[str]) -> Optional[Resource]:
    """The first applied resource that alone makes a proxy's configuration invalid."""
    if len(applied) == 1:
        return applied[0]
    base = {r.key: r for r in old}
    for r in applied:
        trial = dict(base)
        trial[r.key] = r
        try:
            _, configs = render(list(trial.values()), gw)
        except InputError:
            return r
        errors = validate({k: configs[k] for k in proxies if k in configs})
        if any(errors.values()):
            return r
    return None

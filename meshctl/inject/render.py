"""Rendering the injection templates (templates/inject/<name>.yaml.j2): once per distinct set of
settings, with the few values that differ per pod left as placeholders filled per pod."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from meshctl.inject.settings import InjectConfig, template_context

TEMPLATE_NAMES = ("sidecar", "gateway", "grpc-agent", "grpc-simple")
_PER_CONTAINER_TEMPLATES = {"grpc-agent", "grpc-simple"}

_ENV = None


def _jinja_environment():
    """The Jinja2 environment over templates/inject/ (built once; compiled templates are cached by it)."""
    global _ENV
    if _ENV is None:
        import jinja2

        from meshctl.paths import templates_dir

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir() / "inject")),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined, autoescape=False)
        env.filters["q"] = lambda v: json.dumps("" if v is None else str(v))
        env.filters["j"] = lambda v: json.dumps(v)
        env.filters["named"] = lambda d, name: {"name": name, **{k: v for k, v in d.items() if k != "name"}}
        _ENV = env
    return _ENV


class Renderer:
    """Jinja2 templates of templates/inject/, each rendered once per distinct context."""

    def __init__(self) -> None:
        self._env = None
        self._cache: dict[tuple, dict] = {}
        self._contexts: dict[tuple, tuple] = {}
        self._revisions: dict[tuple, tuple] = {}
        self.frozen: set[int] = set()  # ids of overlay nodes shared between pods (never modified)
        self._dirty: set[int] = set()
        self.emitted: dict = {}  # emitter memo of frozen nodes

    def _environment(self):
        if self._env is None:
            self._env = _jinja_environment()
        return self._env

    def for_revision(self, cfg: InjectConfig, revision: str) -> InjectConfig:
        """`cfg` for a pod that names its control-plane revision (istio.io/rev)."""
        key = (id(cfg), revision)
        hit = self._revisions.get(key)
        if hit is None or hit[0] is not cfg:
            hit = (cfg, replace(cfg, revision=revision))
            self._revisions[key] = hit
        return hit[1]

    def context(self, cfg: InjectConfig, annotations: dict, network: str | None) -> tuple[dict, str]:
        """The template context for a pod with these annotations, and its cache key."""
        try:
            key = (id(cfg), json.dumps(annotations, sort_keys=True), network)
        except (TypeError, ValueError):
            key = None
        hit = self._contexts.get(key) if key is not None else None
        if hit is not None and hit[0] is cfg:
            return hit[1], hit[2]
        ctx = template_context(cfg, annotations, network_label=network)
        ctx_key = json.dumps(ctx, sort_keys=True)
        if key is not None:
            self._contexts[key] = (cfg, ctx, ctx_key)
        return ctx, ctx_key

    def overlay(self, name: str, ctx: dict, containers: tuple[str, ...], ctx_key: str | None = None) -> dict:
        """The rendered overlay (a partial Pod) for this context. It is shared between pods and
        must not be modified: fill() copies what it changes, and every later step copies a
        container before changing it."""
        key = (name, ctx_key or json.dumps(ctx, sort_keys=True),
               containers if name in _PER_CONTAINER_TEMPLATES else ())
        cached = self._cache.get(key)
        if cached is None:
            import yaml

            text = self._environment().get_template(f"{name}.yaml.j2").render(s=ctx, containers=list(containers))
            cached = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
            self._cache[key] = cached
            self._index(cached)
        return cached

    def _index(self, obj: Any) -> bool:
        """Record the ids of shared (frozen) nodes, and of nodes holding placeholders; True when
        `obj` holds a placeholder."""
        dirty = False
        if isinstance(obj, dict):
            for v in obj.values():
                dirty |= self._index(v)
        elif isinstance(obj, list):
            for v in obj:
                dirty |= self._index(v)
        else:
            return isinstance(obj, str) and obj.startswith("@@") and obj.endswith("@@")
        self.frozen.add(id(obj))
        if dirty:
            self._dirty.add(id(obj))
        return dirty

    def fill(self, obj: Any, values: dict) -> Any:
        """`obj` with its "@@name@@" placeholders replaced (copying only what changes); a None
        value drops the map entry or the env item."""
        if id(obj) not in self._dirty:
            return obj
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if isinstance(v, str) and v.startswith("@@") and v.endswith("@@"):
                    r = values.get(v[2:-2])
                    if r is not None:
                        out[k] = r
                else:
                    out[k] = self.fill(v, values)
            return out
        out_list = []
        for item in obj:
            if isinstance(item, dict):
                v = item.get("value")
                if isinstance(v, str) and v.startswith("@@") and v.endswith("@@"):
                    r = values.get(v[2:-2])
                    if r is None:
                        continue
                    item = dict(item)
                    item["value"] = r
                    out_list.append(item)
                    continue
            out_list.append(self.fill(item, values))
        return out_list



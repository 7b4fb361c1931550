"""The analysis framework: analyzers, the context they read, the messages they report.

As in Istio's analysis framework:
- an analyzer declares a `name`, a `description` and the kinds it reads (`inputs`); the runner
  skips analyzers none of whose inputs are present;
- messages are data (messages.yaml), referenced by code; an analyzer never builds message text;
- indexes are computed once per run (`ctx.index(name, build)`) and shared by analyzers, so a run
  stays linear in the number of resources;
- every message carries its resource and the path of the offending field, from which the report
  takes the `file:line`.

Writing an analyzer:

    from meshctl.analysis.framework import Analyzer, Context, register, dig

    @register
    class PortNameAnalyzer(Analyzer):
        name = "service.PortNameAnalyzer"
        description = "Checks the port names of services"
        inputs = ("Service",)

        def analyze(self, ctx: Context) -> None:
            for svc in ctx.resources.of_kind("Service"):
                for i, port in enumerate(dig(svc.body, "spec", "ports", default=[]) or []):
                    ...
                    ctx.report("IST0118", svc, name, svc.namespace, path=("spec", "ports", i, "name"))
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

from meshctl import meshconfig
from meshctl.kinds import SYSTEM_NAMESPACES
from meshctl.resources import Resource, ResourceSet, as_dict, as_list, dig, yaml_text  # noqa: F401

LEVELS = ("Info", "Warning", "Error")
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
SUPPRESS_ANNOTATION = "galley.istio.io/analyze-suppress"
ISTIO_DOC_URL = "https://istio.io/latest/docs/reference/config/analysis/{code}/"
MESHCTL_DOC_URL = "https://github.com/meshctl/meshctl/blob/main/docs/analysis/{code}.md"

# Namespaces Istio's analysis ignores.
IGNORED_NAMESPACES = SYSTEM_NAMESPACES


def level_rank(level: str) -> int:
    """Rank of a level name, case-insensitive; raises ValueError for an unknown level."""
    for name, rank in LEVEL_RANK.items():
        if name.lower() == str(level).lower():
            return rank
    raise ValueError(f"unknown level {level!r} (use one of: {', '.join(LEVELS)})")


@dataclass(frozen=True)
class MessageType:
    code: str
    name: str
    level: str
    template: str
    description: str = ""
    url: str | None = None
    security_severity: str | None = None  # "0.1"-"10.0" for security checks (SARIF, GitHub)

    @property
    def doc_url(self) -> str:
        if self.url:
            return self.url
        base = ISTIO_DOC_URL if self.code.startswith("IST") else MESHCTL_DOC_URL
        return base.format(code=self.code.lower())


@lru_cache(maxsize=None)
def message_types() -> dict[str, MessageType]:
    """All message types from messages.yaml, by code (loaded once)."""
    import yaml

    path = Path(__file__).with_name("messages.yaml")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    out: dict[str, MessageType] = {}
    for m in data["messages"]:
        out[m["code"]] = MessageType(code=m["code"], name=m["name"], level=m["level"],
                                     template=m["template"], description=m.get("description", ""),
                                     url=m.get("url"), security_severity=m.get("securitySeverity"))
    return out


def go_format(template: str, args: Sequence[Any]) -> str:
    """Format a Go-style template (%s %v %q %d %%) the way Istio's messages are formatted."""
    out: list[str] = []
    it = iter(args)
    i = 0
    n = len(template)
    while i < n:
        c = template[i]
        if c == "%" and i + 1 < n:
            verb = template[i + 1]
            i += 2
            if verb == "%":
                out.append("%")
                continue
            try:
                value = next(it)
            except StopIteration:
                out.append(f"%!{verb}(MISSING)")
                continue
            if verb == "q":
                out.append(json.dumps(yaml_text(value), ensure_ascii=False))
            elif verb == "d":
                out.append(str(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool)
                           else yaml_text(value))
            elif verb == "v" and isinstance(value, (list, tuple)) and not any(isinstance(v, (dict, list)) for v in value):
                out.append("[" + " ".join(yaml_text(v) for v in value) + "]")
            else:  # a value of an unexpected type reads as the user wrote it, never as a Python repr
                out.append(yaml_text(value) if not isinstance(value, tuple) else yaml_text(list(value)))
            continue
        out.append(c)
        i += 1
    return "".join(out)


@dataclass
class Message:
    """One finding: a message type, the resource it is about, its arguments, and the field path."""

    type: MessageType
    resource: Resource | None
    args: tuple = ()
    path: tuple = ()
    analyzer: str = ""
    # for findings about a document that could not be loaded (no Resource): its file and line
    source: str | None = None
    line: int = 0

    @property
    def code(self) -> str:
        return self.type.code

    @property
    def level(self) -> str:
        return self.type.level

    @cached_property
    def text(self) -> str:
        return go_format(self.type.template, self.args)

    @property
    def origin(self) -> str:
        return self.resource.origin if self.resource is not None else ""

    @property
    def file(self) -> str | None:
        if self.resource is not None:
            return None if self.resource.from_cluster else self.resource.source
        return self.source

    @cached_property
    def line_number(self) -> int:
        if self.resource is not None:
            return self.resource.line_of(self.path)
        return self.line

    @property
    def reference(self) -> str:
        f = self.file
        if not f:
            return ""
        return f"{f}:{self.line_number}" if self.line_number else f

    def to_dict(self) -> dict:
        """istioctl's JSON shape."""
        return {"code": self.code, "level": self.level, "message": self.text, "origin": self.origin,
                "reference": self.reference, "documentationUrl": self.type.doc_url}

    def sort_key(self) -> tuple:
        return (self.file or "~", self.line_number, self.code, self.origin, self.text)


DEFAULT_MESH_CONFIG = meshconfig.DEFAULTS


@dataclass
class Context:
    """What an analyzer reads (resources, mesh config) and how it reports."""

    resources: ResourceSet
    mesh_config: dict = field(default_factory=lambda: dict(DEFAULT_MESH_CONFIG))
    istio_namespace: str = "istio-system"
    messages: list[Message] = field(default_factory=list)
    current_analyzer: str = ""
    _indexes: dict[str, Any] = field(default_factory=dict)
    # When set ({}), the kinds each analyzer reads are recorded here by analyzer name (the test
    # that keeps declared inputs honest, as Istio's does); kinds read while building a shared
    # index count for every analyzer that uses the index.
    reads: dict[str, set[str]] | None = None
    _index_reads: dict[str, set[str]] = field(default_factory=dict)

    def read(self, kind: str) -> None:
        if self.reads is not None:
            self.reads.setdefault(self.current_analyzer, set()).add(kind)

    def report(self, code: str, resource: Resource | None, *args: Any, path: Iterable[Any] = ()) -> None:
        mtype = message_types()[code]
        self.messages.append(Message(mtype, resource, tuple(args), tuple(path), self.current_analyzer))

    def index(self, name: str, build: Callable[["Context"], Any]) -> Any:
        """A shared index, built once per run by the first analyzer that asks for it."""
        if self.reads is not None:
            return self._recorded_index(name, build)
        try:
            return self._indexes[name]
        except KeyError:
            value = self._indexes[name] = build(self)
            return value

    def _recorded_index(self, name: str, build: Callable[["Context"], Any]) -> Any:
        if name not in self._indexes:
            reader, self.current_analyzer = self.current_analyzer, f"index:{name}"
            try:
                self._indexes[name] = build(self)
            finally:
                self.current_analyzer = reader
            self._index_reads[name] = self.reads.pop(f"index:{name}", set())
        self.reads.setdefault(self.current_analyzer, set()).update(self._index_reads[name])
        return self._indexes[name]

    def of_kind(self, kind: str) -> list[Resource]:
        """Resources of a kind outside the namespaces analysis ignores, and not those Namespaces
        themselves (computed once per run;
        the list is shared, do not modify it)."""
        self.read(kind)
        key = ("of_kind", kind)
        hit = self._indexes.get(key)
        if hit is None:
            hit = self._indexes[key] = [r for r in self.resources.of_kind(kind)
                                        if r.namespace not in IGNORED_NAMESPACES
                                        and not (kind == "Namespace" and r.name in IGNORED_NAMESPACES)]
        return hit


class Analyzer:
    """Base class: set `name`, `description`, `inputs`; implement analyze(ctx)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()
    # Analyzers that read only mesh config run even when none of `inputs` is present.
    always: ClassVar[bool] = False
    # False: left out of the default run (as istioctl leaves out its alpha-annotation analyzer);
    # runs only when selected by its exact name.
    default: ClassVar[bool] = True

    def analyze(self, ctx: Context) -> None:  # pragma: no cover - interface
        raise NotImplementedError


_REGISTRY: dict[str, type[Analyzer]] = {}


def register(cls: type[Analyzer]) -> type[Analyzer]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"duplicate analyzer name {cls.name}")
    _REGISTRY[cls.name] = cls
    return cls


def analyzer(name: str, description: str, inputs: tuple[str, ...] = (), always: bool = False,
             default: bool = True) -> Callable[[Callable[[Context], None]], type[Analyzer]]:
    """Register a function `check(ctx)` as an analyzer: the short form of an Analyzer subclass
    that only declares its name, description and inputs.

        @analyzer("service.PortNameAnalyzer", "Checks the port names of each service", inputs=("Service",))
        def port_names(ctx: Context) -> None: ...
    """
    def wrap(fn: Callable[[Context], None]) -> type[Analyzer]:
        def analyze(self, ctx: Context) -> None:
            fn(ctx)

        cls = type(fn.__name__, (Analyzer,), {
            "name": name, "description": description, "inputs": tuple(inputs), "always": always,
            "default": default, "analyze": analyze, "__doc__": fn.__doc__, "__module__": fn.__module__})
        return register(cls)

    return wrap


def all_analyzers() -> list[type[Analyzer]]:
    """Every registered analyzer, in name order (importing the analyzers package registers them)."""
    import meshctl.analysis.analyzers  # noqa: F401 - registers on import

    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def select_analyzers(names: Sequence[str] | None) -> list[type[Analyzer]]:
    """Analyzers by name (`*` wildcards and prefixes like `gateway.` allowed); all when names is empty."""
    every = all_analyzers()
    if not names:
        return [a for a in every if a.default]
    chosen: list[type[Analyzer]] = []
    for pattern in names:
        hits = [a for a in every if a.name == pattern
                or (a.default and (fnmatch.fnmatchcase(a.name, pattern) or a.name.startswith(pattern.rstrip(".") + ".")))]
        if not hits:
            import difflib

            from meshctl.errors import InputError

            close = difflib.get_close_matches(pattern, [a.name for a in every], n=1)
            raise InputError(f"unknown analyzer {pattern!r}",
                             hint=(f"did you mean {close[0]!r}? " if close else "")
                             + "see 'meshctl analyze --list-analyzers'")
        chosen.extend(a for a in hits if a not in chosen)
    return chosen


class _RecordingResources:
    """A ResourceSet that tells the context which kinds are read through it."""

    def __init__(self, resources: ResourceSet, ctx: "Context"):
        self._resources, self._ctx = resources, ctx

    def of_kind(self, kind: str, *args, **kwargs):
        self._ctx.read(kind)
        return self._resources.of_kind(kind, *args, **kwargs)

    def get(self, kind: str, *args, **kwargs):
        self._ctx.read(kind)
        return self._resources.get(kind, *args, **kwargs)

    def select(self, kind: str, *args, **kwargs):
        self._ctx.read(kind)
        return self._resources.select(kind, *args, **kwargs)

    def __iter__(self):
        self._ctx.read("*")
        return iter(self._resources)

    def __len__(self) -> int:
        return len(self._resources)

    def __getattr__(self, name: str):
        return getattr(self._resources, name)


def run(resources: ResourceSet, analyzers: Sequence[type[Analyzer]] | None = None,
        mesh_config: dict | None = None, istio_namespace: str = "istio-system",
        reads: dict[str, set[str]] | None = None) -> list[Message]:
    """Run analyzers over a resource set; return their messages (unfiltered, sorted). With
    `reads` (a dict), record in it the kinds each analyzer read."""
    mesh = dict(DEFAULT_MESH_CONFIG)
    if mesh_config:
        mesh.update(mesh_config)
    ctx = Context(resources=resources, mesh_config=mesh, istio_namespace=istio_namespace, reads=reads)
    if reads is not None:
        ctx.resources = _RecordingResources(resources, ctx)
    present = resources.kinds()
    for cls in analyzers if analyzers is not None else [a for a in all_analyzers() if a.default]:
        if not cls.always and cls.inputs and not present.intersection(cls.inputs):
            continue
        ctx.current_analyzer = cls.name
        try:
            cls().analyze(ctx)
        except Exception as e:  # an analyzer bug must not hide the other findings
            ctx.report("IST0001", None, f"analyzer {cls.name} failed: {type(e).__name__}: {e}")
    ctx.messages.sort(key=Message.sort_key)
    return ctx.messages


# --- suppression and thresholds ---------------------------------------------------------------

@dataclass(frozen=True)
class Suppression:
    """`CODE=Kind name.namespace` as istioctl's --suppress takes it; `*` wildcards in both parts."""

    code: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> "Suppression":
        from meshctl.errors import InputError

        code, sep, resource = text.partition("=")
        if not sep or not code.strip() or not resource.strip():
            raise InputError(f"invalid --suppress {text!r}",
                             hint="use CODE=Kind name[.namespace], e.g. 'IST0102=Namespace frod' or 'IST0107=Pod *.default'")
        # message codes are upper case (IST0101, MSH0101); `ist0101` means the same
        return cls(code.strip().upper(), " ".join(resource.split()))

    def known_code(self) -> bool:
        """Whether the code (or code pattern) names at least one message type."""
        return any(fnmatch.fnmatchcase(c, self.code) for c in message_types())

    def matches(self, message: Message) -> bool:
        if not fnmatch.fnmatchcase(message.code, self.code):
            return False
        r = message.resource
        if r is None:
            return False
        names = {f"{r.kind} {r.name}.{r.namespace}" if r.namespace else f"{r.kind} {r.name}", f"{r.kind} {r.full_name}"}
        if r.namespace in (None, "", "default"):
            names.add(f"{r.kind} {r.name}")
        return any(fnmatch.fnmatchcase(n, self.resource) for n in names)


def annotation_suppressed(message: Message) -> bool:
    """The resource's `galley.istio.io/analyze-suppress: CODE,CODE` (or `*`) annotation."""
    r = message.resource
    if r is None:
        return False
    value = r.annotations.get(SUPPRESS_ANNOTATION)
    if not isinstance(value, str):
        return False
    codes = {c.strip() for c in value.split(",") if c.strip()}
    return "*" in codes or message.code in codes


def filter_messages(messages: Iterable[Message], suppressions: Sequence[Suppression] = (),
                    output_threshold: str = "Info") -> list[Message]:
    """Drop suppressed messages and those below the output threshold."""
    floor = level_rank(output_threshold)
    out = []
    for m in messages:
        if LEVEL_RANK.get(m.level, 0) < floor:
            continue
        if annotation_suppressed(m) or any(s.matches(m) for s in suppressions):
            continue
        out.append(m)
    return out


def exceeds(messages: Iterable[Message], failure_threshold: str = "Error") -> bool:
    floor = level_rank(failure_threshold)
    return any(LEVEL_RANK.get(m.level, 0) >= floor for m in messages)


# Tolerant field access (objects may be schema-invalid) is defined in meshctl.resources:
# dig, as_list and as_dict are imported above for the analyzers.

"""The model stage: Kubernetes/Istio objects with their source location, and indexed sets of them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Optional

# Kinds that have no namespace. Documents of these kinds never take a default namespace.
CLUSTER_SCOPED_KINDS = frozenset({
    "Namespace", "Node", "PersistentVolume", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "StorageClass",
    "PriorityClass", "APIService", "CSIDriver", "CSINode", "RuntimeClass", "IngressClass",
    "GatewayClass", "PodSecurityPolicy", "VolumeAttachment", "CertificateSigningRequest",
    "ComponentStatus", "SelfSubjectAccessReview", "SelfSubjectRulesReview",
})


def is_cluster_scoped(kind: str) -> bool:
    return kind in CLUSTER_SCOPED_KINDS


def yaml_text(value: Any) -> str:
    """A value where Kubernetes wants a string (a name, a label value) as its author wrote it:
    `true` for a YAML boolean, `5` for a number, its JSON text (cut short) for a list or map,
    never a Python repr. The schema checks still report the wrong type."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    from meshctl.errors import clip

    return clip(value, 40)


# --- tolerant field access (objects may be schema-invalid) ---------------------------------------

def dig(obj: Any, *path: Any, default: Any = None) -> Any:
    """obj[path[0]][path[1]]..., or `default` when a step is missing or of the wrong type."""
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or not -len(cur) <= step < len(cur):
                return default
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                return default
            cur = cur[step]
    return cur


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_int(value: Any, default: int = 0) -> int:
    """int(value), or `default` when the value is not a whole number."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


class LineMap:
    """Where the fields of one object are in its file: the 1-based line of every mapping key and
    sequence item of its YAML, in document order, each with the extent of its subtree. It answers
    `line_of(path)` exactly as a walk of the composed YAML nodes would, in 16 bytes per field
    instead of the nodes' kilobytes (meshctl.loader builds it while constructing the document).

    `keys[i]` is the key text of entry i (a mapping entry), NON_SCALAR_KEY for a mapping entry
    whose key is a collection, SEQUENCE_ITEM for a sequence item; `marks[2i]` its line and
    `marks[2i + 1]` the index after its subtree (an array of unsigned ints). The storage is shared
    by the views of one document (a `kind: List` and its items): entries `start`..`stop` are the
    children of the view's root, whose own line is `line`."""

    __slots__ = ("keys", "marks", "start", "stop", "line")

    SEQUENCE_ITEM = None
    NON_SCALAR_KEY = False

    def __init__(self, keys: tuple, marks, start: int, stop: int, line: int):
        self.keys, self.marks = keys, marks
        self.start, self.stop, self.line = start, stop, line

    def __reduce__(self):
        return LineMap, (self.keys, self.marks, self.start, self.stop, self.line)

    def child(self, i: int) -> "LineMap":
        """The view of entry i (a list item that is an object of its own)."""
        return LineMap(self.keys, self.marks, i + 1, self.marks[2 * i + 1], self.marks[2 * i])

    def children(self) -> list[int]:
        """Entries of the view's root, in order."""
        out, i, marks = [], self.start, self.marks
        while i < self.stop:
            out.append(i)
            i = marks[2 * i + 1]
        return out

    def line_of(self, path: Iterable[Any] = ()) -> int:
        """The line of the field at `path` (keys and list indexes), or of the nearest ancestor
        that exists: for a mapping the line of the key, for a sequence the line of the item."""
        keys, marks = self.keys, self.marks
        best, i, stop = self.line, self.start, self.stop
        for step in path:
            if i >= stop:
                break  # a scalar or an empty collection
            found = -1
            if keys[i] is LineMap.SEQUENCE_ITEM:
                if isinstance(step, int) and step >= 0:
                    j, n = i, 0
                    while j < stop and n < step:
                        j, n = marks[2 * j + 1], n + 1
                    found = j if j < stop else -1
            elif isinstance(step, str):
                j = i
                while j < stop:
                    if keys[j] == step:
                        found = j
                        break
                    j = marks[2 * j + 1]
            if found < 0:
                break
            best, i, stop = marks[2 * found], found + 1, marks[2 * found + 1]
        return best


@dataclass(eq=False)
class Resource:
    """One object. `body` is the whole document; `lines` (when loaded from a file) maps field
    paths back to lines, so a finding can name the line of the offending field."""

    api_version: str
    kind: str
    name: str
    namespace: Optional[str]
    body: dict
    source: Optional[str] = None  # file path, "-" for stdin, "cluster" for live objects
    line: int = 0  # 1-based line of the document start; 0 when unknown
    lines: Optional[LineMap] = field(default=None, repr=False)  # field path → line
    from_cluster: bool = False
    # Only when the loader is asked to keep them (an in-place edit of the file): the composed YAML
    # node of the object, and the lines before its document's text (documents are parsed one by one).
    node: Any = field(default=None, repr=False)
    line_offset: int = 0

    @classmethod
    def from_dict(cls, body: dict, source: str | None = None, line: int = 0, lines: LineMap | None = None,
                  default_namespace: str | None = None) -> "Resource":
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        kind = str(body.get("kind") or "")
        ns = meta.get("namespace")
        if not ns and not is_cluster_scoped(kind) and default_namespace:
            ns = default_namespace
        return cls(api_version=str(body.get("apiVersion") or ""), kind=kind,
                   name=yaml_text(meta.get("name") or meta.get("generateName") or ""),
                   namespace=yaml_text(ns) if ns else None, body=body, source=source, line=line, lines=lines)

    # --- identity -----------------------------------------------------------------------------
    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity: (group, kind, namespace, name). The version is not part of it."""
        return (self.group, self.kind, self.namespace or "", self.name)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def origin(self) -> str:
        """`Kind namespace/name` (or `Kind name`), as istioctl prints a message's resource."""
        return f"{self.kind} {self.full_name}"

    # --- common fields ------------------------------------------------------------------------
    @property
    def metadata(self) -> dict:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def labels(self) -> dict:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> dict:
        ann = self.metadata.get("annotations")
        return ann if isinstance(ann, dict) else {}

    @property
    def spec(self) -> dict:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    # --- source location ----------------------------------------------------------------------
    def line_of(self, path: Iterable[Any] = ()) -> int:
        """The 1-based line of the field at `path` (keys and list indexes), or of the nearest
        ancestor that exists; the document line when the object has no line map."""
        return self.lines.line_of(path) if self.lines is not None else self.line

    def reference(self, path: Iterable[Any] = ()) -> str:
        """`file:line` of a field (istioctl's `reference`), or "" for objects without a file."""
        if not self.source or self.from_cluster:
            return ""
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source


class ResourceSet:
    """Resources indexed once by kind, identity and namespace. Later additions with the same
    identity replace earlier ones (a file's object replaces the cluster's)."""

    def __init__(self, resources: Iterable[Resource] = ()):
        self._by_key: dict[tuple[str, str, str, str], Resource] = {}
        self._by_kind: dict[str, list[Resource]] | None = None
        self._by_name: dict[tuple[str, str, str], Resource] | None = None
        for r in resources:
            self.add(r)

    def add(self, resource: Resource) -> None:
        self._by_key[resource.key] = resource
        self._by_kind = None
        self._by_name = None

    def extend(self, resources: Iterable[Resource]) -> None:
        for r in resources:
            self.add(r)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def _kinds(self) -> dict[str, list[Resource]]:
        if self._by_kind is None:
            index: dict[str, list[Resource]] = {}
            for r in self._by_key.values():
                index.setdefault(r.kind, []).append(r)
            self._by_kind = index
        return self._by_kind

    def kinds(self) -> set[str]:
        return set(self._kinds())

    def of_kind(self, kind: str, namespace: str | None = None) -> list[Resource]:
        items = self._kinds().get(kind, [])
        if namespace is None:
            return items
        return [r for r in items if r.namespace == namespace]

    def get(self, kind: str, namespace: str | None, name: str, group: str | None = None) -> Resource | None:
        if group is not None:
            return self._by_key.get((group, kind, namespace or "", name))
        if self._by_name is None:
            self._by_name = {(r.kind, r.namespace or "", r.name): r for r in self._by_key.values()}
        return self._by_name.get((kind, namespace or "", name))

    def namespaces(self) -> set[str]:
        return {r.namespace for r in self._by_key.values() if r.namespace}

    def select(self, kind: str, namespace: str | None, selector: Mapping[str, Any] | None,
               labels_of=None) -> list[Resource]:
        """Objects of `kind` (in `namespace` unless None) whose labels match `selector`.
        `labels_of` picks the labels to match (default: the object's own labels)."""
        from meshctl.selectors import matches

        labels_of = labels_of or (lambda r: r.labels)
        return [r for r in self.of_kind(kind, namespace) if matches(labels_of(r), selector)]

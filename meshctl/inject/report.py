"""How `dataplane enroll` and `dataplane status` show their results (text, json, yaml)."""
from __future__ import annotations

from meshctl.output import OutputFormats, emit_to

FORMATS = OutputFormats(("text", "json", "yaml"), default="text")
# inject's own output: the manifests, as YAML (the input's text, edited) or JSON
MANIFEST_FORMATS = OutputFormats(("yaml", "json"), default="yaml")


def write_manifests(text: str, fmt: str, out, path: str | None = None) -> None:
    """inject's result: the manifests as YAML (the input's text, edited) or JSON (the object, or a
    v1 List of several), to `out` or, atomically, to the file at `path`."""
    if fmt == "json":
        from meshctl.inject.pipeline import as_json

        text = as_json(text)
    if path and path != "-":
        from meshctl.files import write_atomic

        write_atomic(path, text)
        return
    out.write(text)
    out.flush()


def write(result: dict, fmt: str, out, err) -> None:
    """An enroll result (a namespace's change and the pods to restart) or a status result (every
    namespace's mode and waypoint, and the pods whose state differs)."""
    if fmt in ("json", "yaml"):
        emit_to(out, result, fmt)
    elif "namespaces" in result:
        _status_text(result, out)
    else:
        _enroll_text(result, out, err)


def _enroll_text(result: dict, out, err) -> None:
    from meshctl.inject.ambient import describe_mode

    ns = result["namespace"]
    now = describe_mode(result["mode"], result.get("revision"))
    if result["changed"]:
        before = describe_mode(result["previous"], result.get("previousRevision"))
        out.print(f"namespace {ns}: {before} → {now}", highlight=False, markup=False)
    else:
        out.print(f"namespace {ns}: already {now} (unchanged)", highlight=False, markup=False)
    for text in result["warnings"]:
        err.print(f"warning: {text}", highlight=False, markup=False)
    for row in result["restart"]:
        err.print(f"warning: pod {row['namespace']}/{row['pod']} runs in {row['actual']} mode; restart it "
                  f"(kubectl rollout restart on its workload) to move it to {row['expected']} mode",
                  highlight=False, markup=False)


def _status_text(result: dict, out) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("NAMESPACE", "MODE", "WAYPOINT", "PODS"):
        table.add_column(col)
    for row in result["namespaces"]:
        table.add_row(row["namespace"], row["mode"], row.get("waypoint") or "-", str(row["pods"]))
    out.print(table)
    if result["mismatched"]:
        out.print()
        mt = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("NAMESPACE", "POD", "EXPECTED", "ACTUAL"):
            mt.add_column(col)
        for row in result["mismatched"]:
            mt.add_row(row["namespace"], row["pod"], row["expected"], row["actual"])
        out.print(mt)

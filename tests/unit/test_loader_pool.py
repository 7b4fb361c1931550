"""Large inputs are parsed by a pool of processes; what they load must not depend on it."""
from __future__ import annotations

import io
import os
import sys

import pytest

from meshctl import loader
from meshctl.errors import InputError
from meshctl.loader import POOL_MIN_BYTES, documents, load_paths, pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the parse pool needs the fork start method")

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: svc-{i}
  namespace: ns-{n}
  labels: &labels
    app: svc-{i}
spec:
  selector: *labels
  ports:
  - name: http-web
    port: 80
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-{i}, namespace: ns-{n}}}
spec:
  hosts: [svc-{i}]
  http:
  - route:
    - destination: {{host: svc-{i}, subset: v1}}
      weight: 90
    - destination: {{host: svc-{i}, subset: v2}}
      weight: 10
"""

ODD = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: dup
data:
  a: "1"
  a: "2"
---
bad: [
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: in-list}
"""


def corpus(tmp_path, files: int = 40):
    d = tmp_path / "repo"
    (d / "sub").mkdir(parents=True)
    for n in range(files):
        text = "---\n".join(SERVICE.format(i=f"{n}-{i}", n=n) for i in range(25))
        (d / ("sub" if n % 3 else "") / f"team-{n:02d}.yaml").write_text(text)
    (d / "odd.yaml").write_text(ODD)
    (d / "x.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap",\n "metadata": {"name": "j"}}\n')
    assert sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) > POOL_MIN_BYTES
    return d


def summary(loaded):
    return ([(r.source, r.line, r.origin, r.body, r.line_of(("spec", "http", 0, "route", 1, "weight")),
              r.line_of(("metadata", "labels", "app"))) for r in loaded.resources],
            [(p.source, p.line, p.message, p.code) for p in loaded.problems], loaded.objects)


@pytest.fixture
def pool_pids(monkeypatch, tmp_path):
    """The processes that parsed batches of files or runs of documents (written by the workers)."""
    record = tmp_path / "pids"
    for name in ("_load_files", "_load_documents"):
        real = getattr(pool, name)

        def recording(task, real=real):
            with open(record, "a") as fh:
                fh.write(f"{os.getpid()}\n")
            return real(task)

        recording.__module__, recording.__qualname__ = real.__module__, real.__qualname__  # pickled by name
        monkeypatch.setattr(pool, name, recording)
    return lambda: {int(p) for p in record.read_text().split()} if record.exists() else set()


def test_a_large_input_loads_the_same_in_a_pool_as_in_one_process(tmp_path, monkeypatch, pool_pids):
    d = corpus(tmp_path)
    monkeypatch.setenv("MESHCTL_WORKERS", "1")
    alone = load_paths([str(d)], recursive=True)
    assert pool_pids() == set()
    monkeypatch.setenv("MESHCTL_WORKERS", "2")
    pooled = load_paths([str(d)], recursive=True)
    assert len(pool_pids()) == 2 and os.getpid() not in pool_pids()
    assert summary(pooled) == summary(alone)
    assert len(pooled.resources) == 40 * 25 * 2 + 3
    assert [p.code for p in pooled.problems] == ["MSH0004", "MSH0001"]


def test_a_small_input_is_parsed_in_this_process(tmp_path, monkeypatch, pool_pids):
    monkeypatch.setenv("MESHCTL_WORKERS", "2")
    f = tmp_path / "one.yaml"
    f.write_text(SERVICE.format(i=1, n=1))
    assert len(load_paths([str(f), str(f)]).resources) == 4
    assert pool_pids() == set()


def test_errors_and_stdin_keep_their_place_in_a_pooled_load(tmp_path, monkeypatch):
    d = corpus(tmp_path)
    monkeypatch.setenv("MESHCTL_WORKERS", "2")
    files = sorted(str(f) for f in d.rglob("team-*.yaml"))
    with pytest.raises(InputError) as e:
        load_paths(files[:20] + [str(tmp_path / "missing.yaml")] + files[20:])
    assert str(e.value) == f"{tmp_path / 'missing.yaml'}: no such file or directory" and e.value.hint == "check the path"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SERVICE.format(i="stdin", n=0).encode())))
    loaded = load_paths(files[:20] + ["-"] + files[20:])
    sources = [r.source for r in loaded.resources]
    assert sources.index("-") == 20 * 50 and sources.count("-") == 2
    assert loaded.resources[20 * 50].line_of(("spec", "ports", 0, "port")) == 12


def test_the_number_of_parse_processes_is_a_number(monkeypatch):
    monkeypatch.setenv("MESHCTL_WORKERS", "two")
    with pytest.raises(InputError, match="MESHCTL_WORKERS='two' is not a number"):
        loader.workers()
    monkeypatch.setenv("MESHCTL_WORKERS", "3")
    assert loader.workers() == 3


def test_files_of_a_parse_process_that_dies_are_parsed_in_this_process(tmp_path, monkeypatch):
    d = corpus(tmp_path)
    monkeypatch.setenv("MESHCTL_WORKERS", "1")
    alone = load_paths([str(d)], recursive=True)
    parent, real = os.getpid(), pool._load_files

    def dying(task):
        if os.getpid() != parent and any("team-05" in f for f in task[0]):
            os._exit(9)  # as if killed for memory
        return real(task)

    dying.__module__, dying.__qualname__ = real.__module__, real.__qualname__  # pickled by name
    monkeypatch.setattr(pool, "_load_files", dying)
    monkeypatch.setenv("MESHCTL_WORKERS", "2")
    assert summary(load_paths([str(d)], recursive=True)) == summary(alone)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_loading_pauses_the_cyclic_gc_only_while_it_runs(tmp_path, monkeypatch, workers):
    import gc

    d = corpus(tmp_path, files=25)
    monkeypatch.setenv("MESHCTL_WORKERS", workers)
    assert gc.isenabled()
    seen = []
    monkeypatch.setattr(documents, "_load_text",
                        lambda *a, real=documents._load_text: seen.append(gc.isenabled()) or real(*a))
    load_paths([str(d)], recursive=True)
    assert gc.isenabled()
    if workers == "1":
        assert seen and not any(seen)
    gc.disable()
    try:
        load_paths([str(d)], recursive=True)
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()


def test_a_large_file_is_parsed_in_runs_of_its_documents(tmp_path, monkeypatch, pool_pids):
    d = corpus(tmp_path, files=30)
    big = tmp_path / "all.yaml"  # as `helm template` writes a whole release
    big.write_text("".join(f.read_text() + "\n---\n" for f in sorted(d.rglob("*.yaml"))))
    monkeypatch.setenv("MESHCTL_WORKERS", "1")
    alone = load_paths([str(big)])
    monkeypatch.setenv("MESHCTL_WORKERS", "2")
    pooled = load_paths([str(big)])
    assert len(pool_pids()) == 2
    assert summary(pooled) == summary(alone)
    assert len(pooled.resources) == 30 * 25 * 2 + 2
    assert [p.code for p in pooled.problems] == ["MSH0004", "MSH0001"]


def test_a_large_file_that_is_not_text_is_one_problem(tmp_path, monkeypatch):
    junk = tmp_path / "blob.yaml"
    junk.write_bytes(b"\x00\x01" * POOL_MIN_BYTES)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n" * 10000)
    monkeypatch.setenv("MESHCTL_WORKERS", "2")
    for paths in ([junk], [junk, bad]):
        loaded = load_paths([str(p) for p in paths])
        assert [(p.source, p.message.split(" (")[0]) for p in loaded.problems] == [
            (str(junk), "file is binary, not YAML or JSON"), (str(bad), "file is not UTF-8")][:len(paths)]
        assert loaded.resources == []

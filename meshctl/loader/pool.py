"""Paths → one Loaded: files, directories and stdin, in order; large inputs parsed in parallel.

Below POOL_MIN_BYTES everything is parsed in this process. Above it a pool of forked processes
parses batches of files, or runs of a large file's documents, and the results are put back in
order. Tasks and results cross the process boundary by pickle (task tuples, Loaded with its
Resources and LineMaps): the task functions `_load_files` and `_load_documents` stay at module
level, where pickle finds them by name. multiprocessing is imported only when a pool is used.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable

from meshctl.errors import InputError
from meshctl.loader.documents import (
    Loaded,
    _GCPaused,
    _load_document,
    _split_documents,
    decode,
    load_bytes,
)
from meshctl.loader.sources import iter_files, read_source

# Input at least this large is parsed by a pool of processes (one per CPU), below it in this
# process: importing multiprocessing and starting two workers takes 25-30 ms, about what a second
# process saves on 256 KB of YAML (parsed at about 4 MB/s per process).
POOL_MIN_BYTES = 256 * 1024
WORKERS_ENV = "MESHCTL_WORKERS"  # processes that parse input (1: no pool)


def workers() -> int:
    """How many processes parse a large input: $MESHCTL_WORKERS, else the CPUs this process may
    run on. A pool needs the fork start method (Linux); elsewhere input is parsed in this process."""
    import multiprocessing

    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise InputError(f"{WORKERS_ENV}={value!r} is not a number",
                             hint="set it to a number of processes, e.g. 2") from None
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_paths(paths: Iterable[str], recursive: bool = False, default_namespace: str | None = None) -> Loaded:
    """Load files, directories and "-" (stdin). A missing or unreadable path is an InputError
    (exit 2); a bad document inside a readable file is a problem in the result. Large inputs are
    parsed in a pool of processes (see POOL_MIN_BYTES); the result is the same, in the same order."""
    result = Loaded()
    with _GCPaused():
        _load_paths_into(result, paths, recursive, default_namespace)
    return result


def _plan(paths: Iterable[str], recursive: bool) -> list:
    """The files to read in order ("-" for stdin), each directory expanded; a directory that
    cannot be listed is an InputError in its place (raised when reached, after earlier paths)."""
    plan: list = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            try:
                plan.extend(iter_files(path, recursive))
            except PermissionError:
                plan.append(InputError(f"{path}: permission denied", hint="check the directory's permissions"))
                break
            continue
        plan.append(path)
    return plan


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # reading it reports why


def _load_files(task: tuple[list[str], str | None]) -> Loaded:
    """Load a batch of files (in a pool process)."""
    files, default_namespace = task
    out = Loaded()
    strings: dict = {}
    with _GCPaused():
        for f in files:
            out.extend(load_bytes(read_source(f), f, default_namespace, strings))
    return out


def _load_documents(task: tuple[str, list[tuple[int, str]], str | None]) -> Loaded:
    """Load a run of documents of one large file (in a pool process)."""
    source, documents, default_namespace = task
    out = Loaded()
    strings: dict = {}
    with _GCPaused():
        for offset, chunk in documents:
            _load_document(out, chunk, offset, source, default_namespace, strings)
    return out


def _split_file(path: str, target: int) -> list:
    """A large YAML file as runs of its documents of about `target` characters each (for the
    pool); a file that cannot be read or decoded, or a JSON file, as one step of its own."""
    try:
        text, problem = decode(read_source(path), path)
    except InputError as e:
        return [e]
    if problem:
        return [Loaded(problems=[problem])]
    if path.endswith(".json") and text.lstrip().startswith(("{", "[")):
        return [[path]]
    runs: list = []
    size = target
    for offset, chunk in _split_documents(text):
        if size >= target:
            runs.append((path, []))
            size = 0
        runs[-1][1].append((offset, chunk))
        size += len(chunk)
    return runs


def _load_paths_into(result: Loaded, paths: Iterable[str], recursive: bool, default_namespace: str | None) -> None:
    plan = _plan(paths, recursive)
    files = [p for p in plan if isinstance(p, str) and p != "-"]
    sizes = {f: _size(f) for f in files}
    total = sum(sizes.values())
    n = workers() if total >= POOL_MIN_BYTES else 1
    if n < 2:
        strings: dict = {}
        for item in plan:
            if isinstance(item, InputError):
                raise item
            result.extend(load_bytes(read_source(item), item, default_namespace, strings))
        return
    # steps in order: batches of files, or runs of documents of a large file, of about a quarter
    # of a worker's share, so that the workers finish together; "-" (read here); an InputError
    # (raised when reached); a file's problem. Results come back in order.
    target = max(64 * 1024, total // (n * 4))
    steps: list = []
    for item in plan:
        if isinstance(item, str) and item != "-":
            if sizes[item] > target:
                steps.extend(_split_file(item, target))
            elif steps and isinstance(steps[-1], list) and sum(sizes[f] for f in steps[-1]) < target:
                steps[-1].append(item)
            else:
                steps.append([item])
        else:
            steps.append(item)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    tasks = [(_load_files, (step, default_namespace)) if isinstance(step, list) else
             (_load_documents, (*step, default_namespace)) if isinstance(step, tuple) else None for step in steps]
    jobs = sum(t is not None for t in tasks)
    pool = ProcessPoolExecutor(min(n, jobs), mp_context=multiprocessing.get_context("fork")) if jobs else None
    try:
        futures = [pool.submit(*t) if t is not None else None for t in tasks]
        for i, step in enumerate(steps):
            if isinstance(step, InputError):
                raise step
            if isinstance(step, Loaded):
                result.extend(step)
            elif isinstance(step, str):
                result.extend(load_bytes(read_source(step), step, default_namespace))
            else:
                try:
                    result.extend(futures[i].result())
                except BrokenProcessPool:  # a worker was killed (out of memory?): parse its part here
                    work, args = tasks[i]
                    result.extend(work(args))
            steps[i] = tasks[i] = futures[i] = None  # a large file's documents are not kept
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

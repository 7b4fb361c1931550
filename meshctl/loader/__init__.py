"""The load stage: files, directories, stdin → Resources, with line marks and clear problems.

One module per concern; the names other modules use are imported from here:
- pool: paths → Loaded (load_paths), large inputs parsed by a pool of processes;
- sources: the files of a directory, the bytes of a file or of stdin;
- documents: text → Loaded (load_text, load_bytes), one YAML document at a time, with problems;
- compose: YAML nodes → Python objects, each with its LineMap (the line of every field);
- guards: hostile input refused before it is built (deep nesting, alias bombs, duplicate keys),
  and the safe readers for any other text a user hands us (safe_load, safe_load_all, json_loads).
"""
from meshctl.loader.compose import line_map
from meshctl.loader.documents import Loaded, LoadProblem, decode, load_bytes, load_text
from meshctl.loader.guards import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_EXPANDED_NODES,
    HostileYAML,
    check_node,
    depth_problem,
    duplicate_keys,
    json_loads,
    safe_load,
    safe_load_all,
)
from meshctl.loader.pool import POOL_MIN_BYTES, WORKERS_ENV, load_paths, workers
from meshctl.loader.sources import EXTENSIONS, iter_files, read_source

__all__ = [
    "EXTENSIONS", "MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_EXPANDED_NODES", "POOL_MIN_BYTES", "WORKERS_ENV",
    "HostileYAML", "LoadProblem", "Loaded",
    "check_node", "decode", "depth_problem", "duplicate_keys", "iter_files", "json_loads", "line_map",
    "load_bytes", "load_paths", "load_text", "read_source", "safe_load", "safe_load_all", "workers",
]

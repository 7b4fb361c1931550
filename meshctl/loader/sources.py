"""Reading input: the YAML and JSON files of a directory, and the bytes of a file or of stdin."""
from __future__ import annotations

import sys
from pathlib import Path

from meshctl.errors import InputError

EXTENSIONS = (".yaml", ".yml", ".json")


def iter_files(path: str, recursive: bool = False) -> list[str]:
    """The YAML/JSON files of a directory (sorted; subdirectories only with `recursive`)."""
    root = Path(path)
    if recursive:
        files = [str(p) for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in EXTENSIONS]
    else:
        files = [str(p) for p in sorted(root.iterdir()) if p.is_file() and p.suffix in EXTENSIONS]
    return files


def read_source(path: str) -> bytes:
    """Read a file (or stdin for "-"), turning OS errors into a one-line InputError."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory", hint="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", hint="pass a file, or a directory with -R") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", hint="check the file's permissions") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None

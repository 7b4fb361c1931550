"""Writing the user's files: atomically, through symbolic links, keeping the file's mode.

A file is written to a temporary file beside it and renamed over it, so a reader (or a crash)
never sees half of it. A symbolic link is followed: the file it points to is replaced and the
link stays a link (a manifest kept as a link into a shared checkout stays shared).
"""
from __future__ import annotations

import os
import tempfile

from meshctl.errors import InputError


def write_atomic(path: str, data: bytes | str) -> None:
    """Replace the file at `path` (or create it) with `data`; OS errors are one-line InputErrors."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    except OSError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=".meshctl-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}",
                         hint="check that the directory exists and is writable") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise InputError(f"{path}: cannot write: {e.strerror or e}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

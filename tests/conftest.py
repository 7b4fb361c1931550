"""Shared test helpers: the CLI runner, paths to ../shared, and golden-file handling."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files under tests/golden/ from the current output")


@pytest.fixture
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def golden(update_golden):
    """golden(name, text): compare `text` with tests/golden/<name>, or rewrite it with --update-golden."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update_golden:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden and review the diff"
        expected = path.read_text()
        assert text == expected, f"output differs from {path}; run pytest --update-golden and review the diff"

    return check


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests that need it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


class CLIResult:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def __repr__(self) -> str:
        return f"<exit {self.exit_code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


@pytest.fixture
def cli(monkeypatch):
    """cli("analyze", "x.yaml", input=None, env=None) → CLIResult with exit code, stdout, stderr."""
    from typer.testing import CliRunner

    from meshctl.cli import app

    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("KUBECONFIG", raising=False)

    def run(*args: str, input: str | bytes | None = None, env: dict | None = None) -> CLIResult:
        runner = CliRunner()
        result = runner.invoke(app, list(args), input=input, env=env, catch_exceptions=True)
        return CLIResult(result)

    return run


@pytest.fixture
def kube_api(tmp_path):
    """A fresh fake Kubernetes API server (tests/kube/fakeapi.py); `.kubeconfig` points at it."""
    from tests.kube.fakeapi import FakeKube

    server = FakeKube(tmp_path / "fake-kube").start()
    try:
        yield server
    finally:
        server.stop()

"""Shell completion: the scripts in completions/ are current, and completion answers real words."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshctl.cli.completion import script

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_in_repo_are_current(cli, shell):
    r = cli("completion", shell)
    assert r.exit_code == 0
    committed = (ROOT / "completions" / f"meshctl.{shell}").read_text()
    assert r.stdout == committed, (
        f"completions/meshctl.{shell} is stale: run 'meshctl completion {shell} > completions/meshctl.{shell}'")
    assert r.stdout == script(shell)


def _complete(words: str) -> list[str]:
    """Ask meshctl for completions the way the bash script does."""
    env = dict(os.environ, _MESHCTL_COMPLETE="complete_bash", COMP_WORDS=words,
               COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    out = subprocess.run([sys.executable, "-m", "meshctl"], env=env, capture_output=True, text=True, timeout=30)
    return out.stdout.split()


def test_bash_completion_of_commands():
    words = _complete("meshctl compl")
    assert "completion" in words


def test_bash_completion_of_shells():
    assert set(_complete("meshctl completion ")) >= {"bash", "zsh", "fish"}


def test_profile_names_complete():
    words = _complete("meshctl manifest generate --profile ")
    assert set(words) >= {"sidecar", "ambient", "minimal"}
    assert _complete("meshctl manifest generate --profile am") == ["ambient"]


def test_namespaces_complete_from_the_cluster(kube_api):
    for name in ("shop", "shipping", "billing"):
        kube_api.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    words = _complete(f"meshctl --kubeconfig {kube_api.kubeconfig} analyze --use-kube -n sh")
    assert sorted(words) == ["shipping", "shop"]
    words = _complete(f"meshctl --kubeconfig {kube_api.kubeconfig} dataplane enroll sh")
    assert sorted(words) == ["shipping", "shop"]


def test_namespace_completion_is_quiet_without_a_cluster(tmp_path):
    missing = tmp_path / "none"
    assert _complete(f"meshctl --kubeconfig {missing} analyze -n ") == []


def _leaf_commands():
    from typer.main import get_command

    from meshctl.cli import app

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                yield from walk(cmd.get_command(None, name), path + (name,))
        else:
            yield path, cmd

    return list(walk(get_command(app), ()))


def test_every_output_option_lists_its_formats_and_completes_them():
    """Every command's -o names its values in --help and offers them, not file names, on <TAB>."""
    import click

    seen = 0
    for path, cmd in _leaf_commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and "--output" in p.opts:
                seen += 1
                offered = [c.value for c in p.shell_complete(click.Context(cmd), "")]
                assert "json" in offered, (path, offered)
                for value in offered:
                    assert value in (p.help or ""), (" ".join(path), value, p.help)
    assert seen >= 15

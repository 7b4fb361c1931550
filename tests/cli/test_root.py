"""The root command: version, help, usage errors as one line with exit 2, completion scripts."""
from __future__ import annotations

import subprocess
import sys

from meshctl import __version__


def test_version(cli):
    r = cli("--version")
    assert r.exit_code == 0
    assert r.stdout == f"meshctl {__version__}\n"


def test_unknown_flag_is_one_line_exit_2(cli):
    r = cli("--bogus")
    assert r.exit_code == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: No such option") and "--bogus" in lines[0]
    assert lines[1] == "hint: see 'meshctl --help'"


def test_unknown_command_suggests(cli):
    r = cli("completon", "bash")
    assert r.exit_code == 2
    assert "error: No such command 'completon'" in r.stderr
    assert "completion" in r.stderr


def test_python_dash_m_works_and_version_does_not_import_heavy_modules():
    code = ("import sys, runpy; sys.argv=['meshctl','--version']\n"
            "try:\n    runpy.run_module('meshctl', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('kubernetes', 'httpx', 'jinja2', 'jsonschema') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"meshctl {__version__}" in out
    assert "HEAVY []" in out


def test_ctrl_c_says_interrupted_and_exits_130(tmp_path):
    import signal
    import time

    pipe = tmp_path / "never"
    import os

    os.mkfifo(pipe)  # reading it blocks until interrupted
    proc = subprocess.Popen([sys.executable, "-m", "meshctl", "analyze", str(pipe)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.strip().splitlines()[0] == "error: interrupted"
    assert "Traceback" not in err


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app, image: app}]}\n"


def test_global_flags_work_after_the_command_as_the_readme_promises(cli, tmp_path):
    f = tmp_path / "pod.yaml"
    f.write_text(POD)
    for args in (("inject", "-f", str(f), "-v"), ("inject", "-f", str(f), "-vv"), ("analyze", str(f), "--no-color"),
                 ("analyze", "--verbose", str(f)), ("profile", "list", "--no-color", "-v")):
        r = cli(*args)
        assert r.exit_code in (0, 1), (args, r)
        assert "No such option" not in r.stderr


def test_verbose_is_a_flag_not_a_number(cli):
    r = cli("--help")
    line = next(ln for ln in r.stdout.splitlines() if "--verbose" in ln)
    assert "INTEGER" not in line
    r = cli("-v", "2")  # "2" is not taken as a count: it is an unknown command
    assert r.exit_code == 2 and "No such command '2'" in r.stderr


def test_the_same_option_has_the_same_short_flag_in_every_command():
    """-p profile, -r revision, -i control-plane namespace, -n namespace, -o output, -f file(s)."""
    import click
    from typer.main import get_command

    from meshctl.cli import app

    letters: dict[str, set] = {}

    def walk(cmd):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                walk(cmd.get_command(None, name))
            return
        for p in cmd.params:
            if isinstance(p, click.Option):
                longs = [o for o in p.opts if o.startswith("--")]
                shorts = [o for o in p.opts if not o.startswith("--")]
                if longs:
                    letters.setdefault(longs[0], set()).add(shorts[0] if shorts else None)

    walk(get_command(app))
    for opt in ("--profile", "--revision", "--istio-namespace", "--namespace", "--output"):
        assert len(letters[opt]) == 1 and None not in letters[opt], (opt, letters[opt])


def test_help_paragraphs_are_not_broken_where_the_source_wraps():
    """Help text flows to the terminal's width: no paragraph keeps the docstring's line breaks
    (indented example blocks excepted)."""
    from typer.main import get_command

    from meshctl.cli import app

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                yield from walk(cmd.get_command(None, name), path + (name,))
        yield path, cmd

    for path, cmd in walk(get_command(app), ()):
        for para in (cmd.help or "").split("\n\n"):
            if any(line[:1].isspace() for line in para.splitlines()) or para.startswith("\b"):
                continue
            assert "\n" not in para, (" ".join(path), para)


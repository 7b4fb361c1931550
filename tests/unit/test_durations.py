"""One duration syntax for every duration flag: Go's (500ms, 3s, 1m30s, 1.5h) or bare seconds."""
from __future__ import annotations

import pytest

from meshctl import durations
from meshctl.errors import InputError


@pytest.mark.parametrize("text,seconds", [
    ("500ms", 0.5), ("3s", 3), ("0.5s", 0.5), ("90s", 90), ("1m", 60), ("5m", 300), ("1m30s", 90),
    ("2m30s", 150), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), ("45", 45), ("2", 2), ("0.25", 0.25),
    ("100us", 0.0001),
])
def test_parse(text, seconds):
    assert durations.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5d", "m", "1x", "1m 30s", "-1s", "1m30", "s5"])
def test_parse_rejects_with_the_flag_and_the_syntax(text):
    with pytest.raises(InputError) as e:
        durations.parse(text, "--timeout")
    assert e.value.message.startswith("--timeout ") and "500ms" in e.value.hint


def test_zero_is_refused_where_it_makes_no_sense():
    assert durations.parse("0s") == 0
    with pytest.raises(InputError, match="longer than zero"):
        durations.parse("0", "--interval", allow_zero=False)


@pytest.mark.parametrize("seconds,text", [(0.5, "500ms"), (3, "3s"), (90, "1m30s"), (300, "5m"), (5400, "1h30m"),
                                          (1.5, "1.5s")])
def test_format(seconds, text):
    assert durations.format(seconds) == text
    assert durations.parse(durations.format(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("args", [
    ("proxy-status", "--admin", "127.0.0.1:1", "--timeout", "{d}"),
    ("proxy-config", "clusters", "127.0.0.1:1", "--timeout", "{d}"),
    ("canary", "run", "reviews", "--to", "v2", "--interval", "{d}", "--proxy-admin", "127.0.0.1:1"),
    ("install", "--timeout", "{d}", "-y"),
    ("waypoint", "apply", "--wait", "--timeout", "{d}"),
])
def test_every_duration_flag_reads_the_same_syntax(cli, tmp_path, args):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                          "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                          "current-context: x\n")
    for good in ("500ms", "3s", "1m30s", "2"):
        r = cli(*[a.format(d=good) for a in args], "--kubeconfig", str(kubeconfig))
        assert "is not a duration" not in r.stderr and r.exit_code != 2, (good, r)
    r = cli(*[a.format(d="3 seconds") for a in args], "--kubeconfig", str(kubeconfig))
    assert r.exit_code == 2 and "is not a duration" in r.stderr and "500ms" in r.stderr

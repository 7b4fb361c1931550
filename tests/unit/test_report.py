"""The analyze report writers: text lines and summary, istioctl JSON, SARIF locations."""
from __future__ import annotations

import io
import json
import os

from meshctl.analysis import report
from meshctl.analysis.pipeline import AnalysisResult, analyze_text

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviewz
"""


def _result(text: str = VS, source: str = "vs.yaml") -> AnalysisResult:
    return analyze_text(text, source, analyzers=["virtualservice.DestinationHostAnalyzer"])


def test_text_line_and_summary():
    out, err = io.StringIO(), io.StringIO()
    report.write_text(_result(), out, err)
    assert out.getvalue() == ('Error [IST0101] (VirtualService default/reviews vs.yaml:10) '
                              'Referenced host not found: "reviewz"\n')
    assert err.getvalue() == "✖ 1 error, 0 warnings, 0 info in 1 resource from 1 file\n"


def test_clean_summary():
    res = AnalysisResult(messages=[], failed=False, resources=14, files=3)
    out, err = io.StringIO(), io.StringIO()
    report.write_text(res, out, err)
    assert out.getvalue() == ""
    assert err.getvalue() == "✔ No validation issues found when analyzing 14 resources from 3 files.\n"


def test_warnings_only_summary_is_not_a_failure_mark():
    res = _result()
    res.failed = False
    out, err = io.StringIO(), io.StringIO()
    report.write_text(res, out, err)
    assert err.getvalue().startswith("‼ 1 error")


def test_colour_on_a_terminal(monkeypatch):
    from meshctl import output

    class TTY(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    output.configure()
    out, err, stdout = TTY(), TTY(), TTY()
    monkeypatch.setattr("sys.stdout", stdout)
    report.write_text(_result(), out, err)
    assert "\x1b[" in out.getvalue() and "Referenced host not found" in out.getvalue()
    assert stdout.getvalue() == ""  # the writer passed in, not the process's stdout
    assert err.getvalue().startswith("\x1b[31m✖")
    monkeypatch.setenv("NO_COLOR", "1")
    out2 = TTY()
    report.write_text(_result(), out2, io.StringIO())
    assert "\x1b[" not in out2.getvalue()


def test_json_list_is_istioctl_shape():
    [m] = report.to_list(_result())
    assert m == {"code": "IST0101", "level": "Error", "message": 'Referenced host not found: "reviewz"',
                 "origin": "VirtualService default/reviews", "reference": "vs.yaml:10",
                 "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/"}


def test_sarif_locations(tmp_path):
    cwd = str(tmp_path)
    assert report.artifact_location(os.path.join(cwd, "a", "b c.yaml"), cwd) == {
        "uri": "a/b%20c.yaml", "uriBaseId": "%SRCROOT%"}
    assert report.artifact_location("rel/x.yaml", os.getcwd()) == {"uri": "rel/x.yaml", "uriBaseId": "%SRCROOT%"}
    outside = report.artifact_location("/elsewhere/x.yaml", cwd)
    assert outside == {"uri": "file:///elsewhere/x.yaml"}
    assert report.artifact_location("-", cwd) is None
    assert report.artifact_location("cluster", cwd) is None


def test_sarif_document():
    doc = report.to_sarif(_result(), version="1.2.3", cwd=os.getcwd())
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    run = doc["runs"][0]
    assert run["tool"]["driver"]["version"] == "1.2.3"
    [rule] = run["tool"]["driver"]["rules"]
    assert rule["id"] == "IST0101" and rule["name"] == "ReferencedResourceNotFound"
    assert rule["defaultConfiguration"] == {"level": "error"}
    assert rule["helpUri"] == "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
    [res] = run["results"]
    assert res["ruleId"] == "IST0101" and res["ruleIndex"] == 0 and res["level"] == "error"
    assert res["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "vs.yaml", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": 10}}
    assert res["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "VirtualService default/reviews"
    # a stable fingerprint: same finding, same value
    again = report.to_sarif(_result(), version="1.2.3", cwd=os.getcwd())["runs"][0]["results"][0]
    assert again["partialFingerprints"] == res["partialFingerprints"]
    json.dumps(doc)  # serialisable


def test_fast_json_list_matches_json_dumps():
    items = [{}, {"a": 'x"é\n', "b": 1, "c": None, "d": True, "e": 2.5}, {"code": "IST0101"}]
    for case in ([], [items[0]], items):
        assert report.dump_json_list(case) == json.dumps(case, indent=2, ensure_ascii=False)


def test_every_sarif_result_has_a_location():
    res = analyze_text("kind: [\n", "-")
    [r] = report.to_sarif(res, version="1", cwd=os.getcwd())["runs"][0]["results"]
    assert r["ruleId"] == "MSH0001"
    assert r["locations"] == [{"logicalLocations": [{"fullyQualifiedName": "stdin", "name": "stdin",
                                                     "kind": "resource"}]}]


def test_term_dumb_turns_colour_off(monkeypatch):
    import io

    from meshctl import output

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    output.configure()
    monkeypatch.setenv("TERM", "xterm-256color")
    assert output.color_enabled(Tty())
    monkeypatch.setenv("TERM", "dumb")
    assert not output.color_enabled(Tty())

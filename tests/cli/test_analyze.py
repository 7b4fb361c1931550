"""`meshctl analyze` through the CLI: inputs, exit codes, thresholds, suppression, formats."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOKINFO = "examples/bookinfo"

VS_TYPO = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviewz
"""

SVC = """\
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  selector:
    app: reviews
  ports:
  - port: 9080
    name: web
"""

NS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: frod
"""


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root, so paths in output are relative and stable."""
    monkeypatch.chdir(ROOT)


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return str(p)


# --- the README's first command ------------------------------------------------------------------

def test_bookinfo_reports_its_mistakes_and_exits_1(cli, in_root):
    r = cli("analyze", BOOKINFO)
    assert r.exit_code == 1, r
    lines = r.stdout.splitlines()
    assert ('Error [IST0101] (VirtualService default/reviews examples/bookinfo/virtual-services.yaml:16) '
            'Referenced host not found: "reviewz"') in lines
    assert any("[IST0101] (VirtualService default/ratings" in l and '"ratings+v2"' in l for l in lines)
    assert any(l.startswith("Info [IST0118] (Service default/details examples/bookinfo/bookinfo.yaml:18)")
               for l in lines)
    assert r.stderr.strip().startswith("✖ 3 errors,")
    assert "from 4 files" in r.stderr


@pytest.mark.parametrize("fmt", ["text", "json", "yaml", "sarif"])
def test_bookinfo_golden(cli, in_root, golden, fmt):
    from meshctl import __version__

    r = cli("analyze", BOOKINFO, "-o", fmt)
    assert r.exit_code == 1, r
    text = r.stdout
    if fmt == "sarif":  # keep the golden stable across releases
        text = text.replace(f'"{__version__}"', '"VERSION"')
    golden(f"analyze/bookinfo.{fmt if fmt != 'text' else 'txt'}", text)


# --- inputs ----------------------------------------------------------------------------------------

def test_clean_file_exits_0_with_istioctl_like_summary(cli, tmp_path):
    f = write(tmp_path, "ns.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    r = cli("analyze", f)
    assert r.exit_code == 0, r
    assert r.stdout == ""
    assert r.stderr == "✔ No validation issues found when analyzing 1 resource from 1 file.\n"


def test_missing_path_is_a_one_line_error_exit_2(cli, tmp_path):
    r = cli("analyze", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.splitlines()[0] == f"error: {tmp_path / 'nope.yaml'}: no such file or directory"
    assert "Traceback" not in r.stderr


def test_no_paths_is_a_usage_error(cli):
    r = cli("analyze")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: nothing to analyze")


def test_stdin(cli):
    r = cli("analyze", "-o", "json", "-", input=VS_TYPO)
    assert r.exit_code == 1, r
    [m] = [m for m in json.loads(r.stdout) if m["code"] == "IST0101"]
    assert m["origin"] == "VirtualService default/reviews"
    assert m["reference"] == "-:11"


def test_directory_without_recursion_skips_subdirectories(cli, tmp_path):
    write(tmp_path, "top/sub/vs.yaml", VS_TYPO)
    write(tmp_path, "top/svc.yaml", SVC)
    r = cli("analyze", str(tmp_path / "top"))
    assert r.exit_code == 0, r
    assert "Referenced host not found" not in r.stdout
    r = cli("analyze", "-R", str(tmp_path / "top"))
    assert r.exit_code == 1, r
    assert "Referenced host not found" in r.stdout


def test_multi_document_json_and_list_kinds(cli, tmp_path):
    lst = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(SVC), yaml.safe_load(VS_TYPO)]}
    f = write(tmp_path, "all.json", json.dumps(lst, indent=1))
    r = cli("analyze", "-o", "json", f)
    codes = sorted(m["code"] for m in json.loads(r.stdout))
    assert codes == ["IST0101", "IST0118"], r
    assert r.exit_code == 1


def test_namespace_flag_sets_default_namespace(cli, tmp_path):
    f = write(tmp_path, "vs.yaml", VS_TYPO)
    r = cli("analyze", "-n", "shop", "-o", "json", f)
    assert {m["origin"] for m in json.loads(r.stdout)} == {"VirtualService shop/reviews"}


def test_broken_document_is_a_finding_and_the_rest_is_analyzed(cli, tmp_path):
    f = write(tmp_path, "mixed.yaml", VS_TYPO + "---\nkind: [unclosed\n---\n" + SVC)
    r = cli("analyze", "-o", "json", f)
    assert r.exit_code == 1
    by_code = {m["code"]: m for m in json.loads(r.stdout)}
    assert by_code["MSH0001"]["level"] == "Error"
    assert by_code["MSH0001"]["reference"].startswith(f"{f}:1")
    assert "IST0101" in by_code and "IST0118" in by_code


@pytest.mark.parametrize("data, words", [
    (b"\x00\x01\x02binary", "binary"),
    (b"kind: \xff\xfe\n", "not UTF-8"),
    (b"- just\n- a list\n", "not a Kubernetes object"),
    (b"a: &a [*a, *a]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
     b"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
     b"h: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n", ""),
])
def test_hostile_files_are_findings_not_crashes(cli, tmp_path, data, words):
    f = tmp_path / "bad.yaml"
    f.write_bytes(data)
    r = cli("analyze", "-o", "json", str(f))
    assert r.exit_code == 1, r
    [m] = json.loads(r.stdout)
    assert m["code"] == "MSH0001"
    assert words in m["message"]


# --- thresholds and suppression --------------------------------------------------------------------

def test_failure_threshold(cli, tmp_path):
    f = write(tmp_path, "svc.yaml", SVC)  # one Info finding
    assert cli("analyze", f).exit_code == 0
    assert cli("analyze", "--failure-threshold", "Info", f).exit_code == 1
    assert cli("analyze", "--failure-threshold", "warning", f).exit_code == 0
    r = cli("analyze", "--failure-threshold", "Fatal", f)
    assert r.exit_code == 2 and "invalid --failure-threshold" in r.stderr


def test_output_threshold_hides_but_still_fails(cli, tmp_path):
    f = write(tmp_path, "both.yaml", VS_TYPO + "---\n" + SVC)
    r = cli("analyze", "--output-threshold", "Error", f)
    assert r.exit_code == 1
    assert "IST0118" not in r.stdout and "IST0101" in r.stdout
    r = cli("analyze", "--output-threshold", "Error", "--failure-threshold", "Info", "-o", "json",
            write(tmp_path, "svc.yaml", SVC))
    assert r.exit_code == 1  # the Info finding still fails the run
    assert json.loads(r.stdout) == []
    r = cli("analyze", "--output-threshold", "Error", "--failure-threshold", "Info", write(tmp_path, "svc.yaml", SVC))
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == ("✖ No validation issues at or above the output threshold when analyzing 1 resource "
                        "from 1 file (1 below the output threshold).\n")
    r = cli("analyze", "--output-threshold", "Warning", write(tmp_path, "svc.yaml", SVC))
    assert r.exit_code == 0 and r.stderr.startswith("✔ No validation issues at or above the output threshold")


def test_suppress_flag(cli, tmp_path):
    f = write(tmp_path, "both.yaml", VS_TYPO + "---\n" + SVC + "---\n" + NS)
    r = cli("analyze", "-o", "json", f)
    assert {m["code"] for m in json.loads(r.stdout)} >= {"IST0101", "IST0118"}
    r = cli("analyze", "-o", "json", "--suppress", "IST0101=VirtualService reviews.default",
            "-S", "IST01*=Service *", f)
    codes = {m["code"] for m in json.loads(r.stdout)}
    assert "IST0101" not in codes and "IST0118" not in codes
    assert r.exit_code == 0
    r = cli("analyze", "--suppress", "IST0101", f)
    assert r.exit_code == 2 and "invalid --suppress" in r.stderr


def test_suppress_codes_are_case_insensitive_and_unknown_codes_are_warned_about(cli, tmp_path):
    f = write(tmp_path, "both.yaml", VS_TYPO + "---\n" + SVC + "---\n" + NS)
    r = cli("analyze", "-o", "json", "-S", "ist0101=VirtualService *", "-S", "ist01*=Service *", f)
    assert r.exit_code == 0
    assert not {"IST0101", "IST0118"} & {m["code"] for m in json.loads(r.stdout)}
    assert "not a known message code" not in r.stderr
    r = cli("analyze", "-o", "json", "-S", "IST9999=VirtualService *", f)
    assert r.exit_code == 1 and "IST0101" in {m["code"] for m in json.loads(r.stdout)}
    assert ("warning: --suppress IST9999=VirtualService *: IST9999 is not a known message code "
            "(like IST0101 or MSH0101), so it hides nothing") in r.stderr


def test_suppress_annotation(cli, tmp_path):
    vs = VS_TYPO.replace("  name: reviews\n", "  name: reviews\n  annotations:\n"
                                             "    galley.istio.io/analyze-suppress: IST0107,IST0101\n")
    r = cli("analyze", "-o", "json", write(tmp_path, "vs.yaml", vs))
    assert [m for m in json.loads(r.stdout) if m["code"] == "IST0101"] == []
    assert r.exit_code == 0


# --- analyzer selection -----------------------------------------------------------------------------

def test_list_analyzers(cli):
    r = cli("analyze", "--list-analyzers")
    assert r.exit_code == 0
    names = [l.split()[0] for l in r.stdout.splitlines()]
    for n in ("virtualservice.DestinationHostAnalyzer", "gateway.SecretAnalyzer", "service.PortNameAnalyzer",
              "schema.ValidationAnalyzer.VirtualService", "injection.ImageAutoAnalyzer",
              "destinationrule.SubsetSelectPodAnalyzer", "deployment.MultiServiceAnalyzer"):
        assert n in names
    rows = json.loads(cli("analyze", "--list-analyzers", "-o", "json").stdout)
    assert {"name", "description", "inputs", "default"} <= set(rows[0])
    off = [row["name"] for row in rows if not row["default"]]
    assert all("not run by default" in l for l in r.stdout.splitlines() if l.split()[0] in off)


def test_analyzers_subset(cli, tmp_path):
    f = write(tmp_path, "both.yaml", VS_TYPO + "---\n" + SVC)
    r = cli("analyze", "-o", "json", "--analyzers", "service.PortNameAnalyzer", f)
    assert {m["code"] for m in json.loads(r.stdout)} == {"IST0118"}
    assert r.exit_code == 0
    r = cli("analyze", "-o", "json", "--analyzers", "service.PortNameAnalyzer,virtualservice.DestinationHostAnalyzer", f)
    assert {m["code"] for m in json.loads(r.stdout)} == {"IST0101", "IST0118"}
    r = cli("analyze", "--analyzers", "virtualservice.DestinatonHostAnalyzer", f)
    assert r.exit_code == 2
    assert "did you mean 'virtualservice.DestinationHostAnalyzer'" in r.stderr


def test_unknown_output_format(cli, tmp_path):
    r = cli("analyze", "-o", "xml", write(tmp_path, "svc.yaml", SVC))
    assert r.exit_code == 2 and "unknown output format" in r.stderr


# --- mesh config and the stand-in ingress gateway ---------------------------------------------------

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: web
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
"""


def test_default_ingress_gateway_and_mesh_config(cli, tmp_path):
    f = write(tmp_path, "gw.yaml", GATEWAY)
    r = cli("analyze", "-o", "json", f)
    # the stand-in gateway Service exposes 80/443/31400/15443, not 8080; nothing is reported about it
    assert [m["code"] for m in json.loads(r.stdout)] == ["IST0162"]
    assert all("istio-ingressgateway" not in m["origin"] for m in json.loads(r.stdout))
    off = write(tmp_path, "mesh.yaml", "ingressControllerMode: 'OFF'\n")
    r = cli("analyze", "-o", "json", "--mesh-config", off, f)
    assert [(m["code"], m["message"]) for m in json.loads(r.stdout)] == [
        ("IST0101", 'Referenced selector not found: "istio=ingressgateway"')]
    cm = write(tmp_path, "istio-cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\n"
               "data:\n  mesh: |\n    ingressControllerMode: 'OFF'\n")
    r2 = cli("analyze", "-o", "json", "--mesh-config", cm, f)
    assert json.loads(r2.stdout) == json.loads(r.stdout)


def test_bad_mesh_config_is_exit_2(cli, tmp_path):
    f = write(tmp_path, "gw.yaml", GATEWAY)
    r = cli("analyze", "--mesh-config", write(tmp_path, "m.yaml", "- a list\n"), f)
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "mesh config" in r.stderr
    r = cli("analyze", "--mesh-config", str(tmp_path / "absent.yaml"), f)
    assert r.exit_code == 2 and "no such file" in r.stderr


# --- formats -----------------------------------------------------------------------------------------

def test_json_and_yaml_shape(cli, tmp_path):
    f = write(tmp_path, "vs.yaml", VS_TYPO)
    j = json.loads(cli("analyze", "-o", "json", f).stdout)
    y = yaml.safe_load(cli("analyze", "-o", "yaml", f).stdout)
    assert j == y
    [m] = [m for m in j if m["code"] == "IST0101"]
    assert list(m) == ["code", "level", "message", "origin", "reference", "documentationUrl"]
    assert m == {"code": "IST0101", "level": "Error", "message": 'Referenced host not found: "reviewz"',
                 "origin": "VirtualService default/reviews", "reference": f"{f}:11",
                 "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/"}


def test_sarif_shape(cli, in_root):
    r = cli("analyze", BOOKINFO, "-o", "sarif")
    doc = json.loads(r.stdout)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "meshctl" and driver["informationUri"].startswith("https://")
    rules = driver["rules"]
    for rule in rules:
        assert {"id", "name", "shortDescription", "fullDescription", "help", "helpUri",
                "defaultConfiguration", "properties"} <= set(rule)
        assert {"text", "markdown"} <= set(rule["help"])
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        loc = res["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert loc["artifactLocation"]["uri"].startswith("examples/bookinfo/")
        assert loc["region"]["startLine"] >= 1
    typo = [x for x in run["results"] if "reviewz" in x["message"]["text"]][0]
    assert typo["locations"][0]["physicalLocation"]["region"]["startLine"] == 16


def test_text_is_plain_when_piped_and_no_color(cli, in_root):
    r = cli("analyze", BOOKINFO)
    assert "\x1b[" not in r.stdout and "\x1b[" not in r.stderr


def test_docs_show_the_real_bookinfo_output(cli, in_root):
    """docs/analyze.md quotes `meshctl analyze examples/bookinfo`; keep the quote current."""
    doc = (ROOT / "docs" / "analyze.md").read_text()
    block = doc.split("$ meshctl analyze examples/bookinfo\n", 1)[1].split("$ echo $?", 1)[0]
    r = cli("analyze", BOOKINFO)
    assert block == r.stdout + r.stderr, "docs/analyze.md: update the bookinfo output under 'Try it'"


def test_all_namespaces_without_cluster_warns(cli, tmp_path):
    r = cli("analyze", "-A", write(tmp_path, "svc.yaml", SVC))
    assert r.exit_code == 0
    assert "warning: -A/--all-namespaces" in r.stderr and "--use-kube" in r.stderr


def test_json_files_have_field_lines_and_deep_json_is_a_finding(cli, tmp_path):
    doc = yaml.safe_load(VS_TYPO)
    f = write(tmp_path, "vs.json", json.dumps(doc, indent=2))
    [m] = [m for m in json.loads(cli("analyze", "-o", "json", f).stdout) if m["code"] == "IST0101"]
    line = next(i for i, l in enumerate(Path(f).read_text().splitlines(), 1) if '"reviewz"' in l)
    assert m["reference"] == f"{f}:{line}"
    for name, text in (("deep-list.json", "[" * 50000 + "]" * 50000),
                       ("deep-map.json", '{"a":' * 3000 + "1" + "}" * 3000)):
        r = cli("analyze", "-o", "json", write(tmp_path, name, text))
        assert r.exit_code == 1, r
        [m] = json.loads(r.stdout)
        assert m["code"] == "MSH0001" and "nests" in m["message"]

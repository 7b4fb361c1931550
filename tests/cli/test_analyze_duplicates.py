"""The same object in several input files: reported, and the result does not depend on the order
in which the files are given."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

BOOKINFO = Path(__file__).resolve().parents[1] / "unit" / "data" / "istio-bookinfo"


@pytest.fixture
def in_bookinfo(monkeypatch):
    monkeypatch.chdir(BOOKINFO)


def _json(r) -> list[dict]:
    assert r.exit_code in (0, 1), r
    return json.loads(r.stdout)


FILES = ["bookinfo.yaml", "destination-rule-all.yaml", "fault-injection-details-v1.yaml",
         "virtual-service-details-v2.yaml"]


def test_istio_bookinfo_files_in_any_order_give_the_same_findings(cli, in_bookinfo):
    results = [_json(cli("analyze", "-o", "json", *order)) for order in itertools.permutations(FILES)]
    assert all(r == results[0] for r in results[1:])
    # the copy analyzed is the one `kubectl apply -f DIR` leaves: the later file by name, so the
    # VirtualService of virtual-service-details-v2.yaml routes to subset v2, which the
    # DestinationRule of fault-injection-details-v1.yaml does not define
    assert [(m["code"], m["message"]) for m in results[0] if m["code"] == "IST0101"] == [
        ("IST0101", 'Referenced host+subset in destinationrule not found: "details+v2"')]


def test_a_duplicate_is_reported_naming_both_files_and_lines(cli, in_bookinfo):
    found = _json(cli("analyze", "-o", "json", "virtual-service-details-v2.yaml", "fault-injection-details-v1.yaml",
                      "destination-rule-all.yaml"))
    dups = [m for m in found if m["code"] == "MSH0002"]
    assert {m["origin"] for m in dups} == {"VirtualService default/details", "DestinationRule default/details"}
    vs = next(m for m in dups if m["origin"].startswith("VirtualService"))
    assert vs["level"] == "Warning"
    assert vs["reference"] == "fault-injection-details-v1.yaml:4"
    assert "fault-injection-details-v1.yaml:4" in vs["message"] and "virtual-service-details-v2.yaml:4" in vs["message"]
    assert vs["documentationUrl"].endswith("docs/analysis/msh0002.md")
    dr = next(m for m in dups if m["origin"].startswith("DestinationRule"))
    assert dr["reference"] == "destination-rule-all.yaml:52"
    assert "fault-injection-details-v1.yaml:26" in dr["message"]


def test_a_duplicate_within_one_file_and_the_same_file_twice(cli, tmp_path):
    f = tmp_path / "twice.yaml"
    doc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: cart\nspec:\n  ports: [{name: http, port: 80}]\n"
    f.write_text(doc + "---\n" + doc)
    found = _json(cli("analyze", "-o", "json", str(f)))
    assert [m["reference"] for m in found if m["code"] == "MSH0002"] == [f"{f}:4"]
    # a file given twice (a directory and a file in it) is read twice, but it is one copy
    found = _json(cli("analyze", "-o", "json", str(tmp_path), str(f)))
    assert [m["reference"] for m in found if m["code"] == "MSH0002"] == [f"{f}:4"]


def test_objects_without_a_name_are_not_duplicates(cli, tmp_path):
    f = tmp_path / "jobs.yaml"
    doc = ("apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\nspec:\n  template:\n"
           "    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: m}]\n")
    f.write_text(doc + "---\n" + doc)
    assert "MSH0002" not in cli("analyze", str(f)).stdout


def test_the_same_name_in_another_namespace_or_kind_is_not_a_duplicate(cli, tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: a}\n---\n"
                 "apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: b}\n---\n"
                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cart, namespace: a}\n")
    assert "MSH0002" not in cli("analyze", str(f)).stdout

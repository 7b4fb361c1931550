"""The analysis framework: message formatting, suppression, thresholds, analyzer selection."""
from __future__ import annotations

import pytest

from meshctl.analysis.framework import (
    Message, Suppression, exceeds, filter_messages, go_format, message_types)
from meshctl.errors import InputError
from meshctl.loader import load_text

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: frod
  annotations:
    galley.istio.io/analyze-suppress: IST0107
spec:
  hosts:
  - reviewz
"""


def _msg(code, *args, path=()):
    res = load_text(VS, "vs.yaml").resources[0]
    return Message(message_types()[code], res, args, path)


def test_messages_keep_istio_codes_levels_and_templates():
    types = message_types()
    assert types["IST0101"].level == "Error"
    assert types["IST0101"].name == "ReferencedResourceNotFound"
    m = _msg("IST0101", "host", "reviewz", path=("spec", "hosts", 0))
    assert m.text == 'Referenced host not found: "reviewz"'
    assert m.reference == "vs.yaml:10"
    assert m.to_dict()["origin"] == "VirtualService frod/reviews"
    assert m.to_dict()["documentationUrl"].endswith("/ist0101/")


def test_go_format_verbs():
    assert go_format("%s has %d %q %v 100%%", ["a", 3, "x", ["p", "q"]]) == 'a has 3 "x" [p q] 100%'
    assert go_format("%s %s", ["only"]) == "only %!s(MISSING)"


def test_suppression_by_flag_with_wildcards_and_by_annotation():
    m = _msg("IST0101", "host", "reviewz")
    assert Suppression.parse("IST0101=VirtualService reviews.frod").matches(m)
    assert Suppression.parse("IST01*=VirtualService *.frod").matches(m)
    assert not Suppression.parse("IST0101=VirtualService reviews.other").matches(m)
    assert not Suppression.parse("IST0102=VirtualService reviews.frod").matches(m)
    with pytest.raises(InputError):
        Suppression.parse("IST0101")
    annotated = _msg("IST0107", "x", "y")
    assert filter_messages([m, annotated]) == [m]


def test_thresholds():
    err = _msg("IST0101", "host", "x")
    info = _msg("IST0118", "p", "ns")
    assert info.level == "Info"
    assert filter_messages([err, info], output_threshold="Warning") == [err]
    assert exceeds([err]) and not exceeds([info]) and exceeds([info], "info")


def test_every_meshctl_code_has_its_page_and_a_row_in_the_index():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "analysis"
    index = (docs / "index.md").read_text()
    for code, mt in message_types().items():
        if not code.startswith("MSH"):
            continue
        page = docs / f"{code.lower()}.md"
        assert page.exists(), f"{code} has no page {page}"
        assert page.read_text().startswith(f"# {code}: {mt.name}\n"), page
        assert f"| [{code}]({code.lower()}.md) | {mt.name} | {mt.level} |" in index, code

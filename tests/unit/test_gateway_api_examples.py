"""The Gateway API project's own examples (release v1.6.1, tests/data/gateway-api) as the
conformance test of analyze's Gateway API schemas and CEL rules: every valid example analyzes
without a schema error, every invalid one gets an Error naming the field the example breaks.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from meshctl.analysis.pipeline import AnalyzeOptions, analyze

DATA = Path(__file__).resolve().parent.parent / "data" / "gateway-api"
VALID = sorted((DATA / "examples" / "standard").rglob("*.yaml"))
INVALID = sorted((DATA / "hack" / "invalid-examples" / "standard").rglob("*.yaml"))

# The field each invalid example breaks (as the message names it), and the line it is on.
BROKEN_FIELD = {
    "gateway/duplicate-listeners.yaml": ("spec.listeners[1].name", 11),
    "gateway/hostname-tcp.yaml": ("spec.listeners[0]: hostname must not be specified", 8),
    "gateway/hostname-udp.yaml": ("spec.listeners[0]: hostname must not be specified", 8),
    "gateway/invalid-addresses.yaml": ("spec.addresses[0].value", 8),
    "gateway/invalid-listener-name.yaml": ("spec.listeners[0].name", 8),
    "gateway/invalid-listener-port.yaml": ("spec.listeners[0].port", 10),
    "gateway/invalid-tls-mode.yaml": ("spec.listeners[0]: tls mode must be Terminate", 8),
    "gateway/tlsconfig-tcp.yaml": ("spec.listeners[0]: tls must not be specified", 8),
    "gatewayclass/invalid-controller.yaml": ("spec.controllerName", 6),
    "httproute/duplicate-header-match.yaml": ("spec.rules[0].matches[0].headers[1].name", 11),
    "httproute/duplicate-query-match.yaml": ("spec.rules[0].matches[0].queryParams[1].name", 11),
    "httproute/httproute-portless-backend.yaml": ("spec.rules[0].backendRefs[0]: Must have port", 10),
    "httproute/httproute-portless-service.yaml": ("spec.rules[0].backendRefs[0]: Must have port", 10),
    "httproute/invalid-backend-group.yaml": ("spec.rules[0].backendRefs[0].group", 8),
    "httproute/invalid-backend-kind.yaml": ("spec.rules[0].backendRefs[0].kind", 8),
    "httproute/invalid-backend-port.yaml": ("spec.rules[0].backendRefs[0].port", 9),
    "httproute/invalid-filter-duplicate-header.yaml": ("spec.rules[0].filters[0].requestHeaderModifier.remove[1]", 12),
    "httproute/invalid-filter-duplicate.yaml": ("spec.rules[0].filters: RequestHeaderModifier filter cannot be repeated", 7),
    "httproute/invalid-filter-empty.yaml": ("spec.rules[0].filters[0]: filter.requestHeaderModifier must be specified", 8),
    "httproute/invalid-filter-wrong-field.yaml": ("spec.rules[0].filters[0]: filter.requestRedirect must be nil", 8),
    "httproute/invalid-header-name.yaml": ("spec.rules[0].matches[0].headers[0].name", 10),
    "httproute/invalid-hostname.yaml": ("spec.hostnames[0]", 7),
    "httproute/invalid-httpredirect-hostname.yaml": ("spec.rules[0].filters[0].requestRedirect.hostname", 13),
    "httproute/invalid-method.yaml": ("spec.rules[0].matches[0].method", 8),
    "httproute/invalid-path-alphanum-specialchars-mix.yaml": ("spec.rules[0].matches[0].path: must only contain valid characters", 8),
    "httproute/invalid-path-specialchars.yaml": ("spec.rules[0].matches[0].path: must only contain valid characters", 8),
    "httproute/invalid-request-redirect-with-backendref.yaml": ("spec.rules[0]: RequestRedirect filter must not be used together with backendRefs", 9),
    "referencegrant/missing-from.yaml": ("spec.from: required field missing", 5),
    "referencegrant/missing-ns.yaml": ("spec.from[0].namespace: required field missing", 10),
    "referencegrant/missing-to.yaml": ("spec.to: required field missing", 5),
    "tlsroute/invalid-hostname.yaml": ("spec.hostnames[0]", 7),
    "tlsroute/no-hostname.yaml": ("spec.hostnames: required field missing", 5),
}


def _name(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _findings(path: Path):
    return analyze(AnalyzeOptions(paths=[str(path)])).messages


def test_every_example_is_here():
    assert len(VALID) == 79 and len(INVALID) == 32
    assert {_name(p, DATA / "hack" / "invalid-examples" / "standard") for p in INVALID} == set(BROKEN_FIELD)
    assert (DATA / "LICENSE").is_file()


@pytest.mark.parametrize("path", VALID, ids=lambda p: _name(p, DATA / "examples" / "standard"))
def test_valid_example_has_no_schema_error(path):
    errors = [m for m in _findings(path) if m.level == "Error" and m.code in ("IST0106", "MSH0001")]
    assert errors == [], [m.text for m in errors]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: _name(p, DATA / "hack" / "invalid-examples" / "standard"))
def test_invalid_example_gets_an_error_naming_the_field(path):
    field, line = BROKEN_FIELD[_name(path, DATA / "hack" / "invalid-examples" / "standard")]
    errors = [m for m in _findings(path) if m.level == "Error" and m.code == "IST0106"]
    hits = [m for m in errors if f"Schema validation error: {field}" in m.text]
    assert hits, [m.text for m in errors]
    assert hits[0].reference == f"{path}:{line}"


@pytest.mark.parametrize("path", VALID, ids=lambda p: _name(p, DATA / "examples" / "standard"))
def test_valid_example_errors_are_only_objects_outside_the_file(path):
    # the examples name Gateways and Services defined in other files or not at all: with every
    # analyzer on, the only Errors are those references (IST0101), never a wrong cross-object check
    errors = [m for m in _findings(path) if m.level in ("Error", "Warning")]
    assert all(m.code == "IST0101" and "not found" in m.text for m in errors), [m.text for m in errors]


def test_example_directories_as_a_whole():
    # files analyzed together resolve each other's Gateways and listeners: what is left is
    # Services the examples never define, and Gateways no example defines
    import yaml

    defined = {(d.get("metadata", {}).get("namespace") or "default", d["metadata"]["name"])
               for p in VALID for d in yaml.safe_load_all(p.read_text())
               if isinstance(d, dict) and d.get("kind") == "Gateway"}
    for directory in sorted({p.parent for p in VALID}):
        findings = analyze(AnalyzeOptions(paths=[str(directory)])).messages
        # the examples are separate scenarios reusing names: MSH0002 (an object defined in two
        # files) is expected when a whole directory is analyzed at once
        bad = [m.text for m in findings if m.level != "Info" and m.code != "MSH0002"
               and not (m.code == "IST0101" and m.text.startswith("Referenced service not found"))
               and not (m.code == "IST0101" and m.text.startswith("Referenced gateway not found")
                        and tuple(m.text.split('"')[1].split("/")) not in defined)]
        assert bad == [], (directory, bad)

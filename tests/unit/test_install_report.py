"""install, verify-install and uninstall reports in every format (golden files under
tests/golden/install/report/)."""
from __future__ import annotations

import pytest

from meshctl import __version__
from meshctl.errors import ClusterError
from meshctl.install import report
from meshctl.install.apply import ApplyReport, Outcome
from meshctl.install.objects import Ref
from meshctl.install.uninstall import UninstallPlan, UninstallReport
from meshctl.install.verify import Check, Verification
from tests.reports import render

CRD = Ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", "virtualservices.networking.istio.io")
NS = Ref("v1", "Namespace", "istio-system")
ISTIOD = Ref("apps/v1", "Deployment", "istiod", "istio-system")
SVC = Ref("v1", "Service", "istiod", "istio-system")
HOOK = Ref("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "istio-sidecar-injector")


def installed(**kw) -> ApplyReport:
    r = ApplyReport(outcomes=[Outcome(CRD, "created"), Outcome(NS, "unchanged"), Outcome(ISTIOD, "configured"),
                              Outcome(SVC, "unchanged")], profile="sidecar", revision="", waited=True)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


INSTALLS = {
    "installed": installed(),
    "dry-run": installed(dry_run="client", waited=False,
                         outcomes=[Outcome(CRD, "would create"), Outcome(ISTIOD, "would configure")]),
    "stopped": installed(outcomes=[Outcome(CRD, "created")], failed=NS, pending=[NS, ISTIOD, SVC],
                         error=ClusterError("the API server refused it: 500 Internal Server Error")),
    "not-ready": installed(not_ready={ISTIOD: "0/1 ready: ImagePullBackOff"},
                           error=ClusterError("timed out after 5m waiting for Deployment istio-system/istiod")),
}
VERIFICATION = Verification("sidecar", "", Ref("v1", "ConfigMap", "meshctl-install", "istio-system"),
                            "2026-12-06T02:00:00Z", __version__, [
                                Check(CRD, "ok"), Check(NS, "ok"), Check(ISTIOD, "ok"),
                                Check(SVC, "drifted", "spec.ports[0].port: installed 15012, now 15013",
                                      ["spec.ports[0].port"]),
                                Check(HOOK, "missing", "not found in the cluster")])
PLAN = UninstallPlan([HOOK, ISTIOD, SVC, NS], {Ref("apps/v1", "Deployment", "istio-ingressgateway", "istio-system"):
                                               "canary"}, revision=None, target="https://127.0.0.1:6443 (context kind)")
UNINSTALLS = {
    "deleted": UninstallReport(plan=PLAN, deleted=[HOOK, ISTIOD, SVC], gone=[NS]),
    "dry-run": UninstallReport(plan=PLAN, dry_run=True, deleted=[HOOK, ISTIOD, SVC, NS]),
    "nothing": UninstallReport(plan=UninstallPlan([], {}, "canary", target="https://127.0.0.1:6443")),
    "stopped": UninstallReport(plan=PLAN, deleted=[HOOK], pending=[ISTIOD, SVC, NS],
                               error=ClusterError("connection refused")),
}


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("case", list(INSTALLS))
def test_install_report(golden, case, fmt):
    out, err = render(report.write, INSTALLS[case], fmt)
    golden(f"install/report/install-{case}.{fmt}", out + (f"--- stderr\n{err}" if err else ""))


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
def test_verify_report(golden, fmt):
    out, err = render(report.write, VERIFICATION, fmt)
    golden(f"install/report/verify.{fmt}", out)
    assert err == ""


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
@pytest.mark.parametrize("case", list(UNINSTALLS))
def test_uninstall_report(golden, case, fmt):
    out, err = render(report.write, UNINSTALLS[case], fmt)
    golden(f"install/report/uninstall-{case}.{fmt}", out + (f"--- stderr\n{err}" if err else ""))


def test_errors_name_where_a_run_stopped():
    assert report.error_of(INSTALLS["installed"]) is None
    e = report.error_of(INSTALLS["stopped"])
    assert e.message.startswith("install stopped at Namespace istio-system: ") and e.exit_code == 3
    e = report.error_of(UNINSTALLS["stopped"])
    assert e.message.startswith("uninstall stopped at Deployment istio-system/istiod") and e.exit_code == 3
    assert "revision canary" in report.kept_warning(PLAN)

"""`meshctl install`, `meshctl verify-install`, `meshctl uninstall`: the cluster half of install.

Thin: parse flags, load values and render (meshctl.install.profiles / render), hand the objects to
meshctl.install (apply, verify, uninstall), print the report. Progress goes to stderr, results to stdout.
"""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from meshctl import durations
from meshctl.cli.common import ContextOpt, KubeconfigOpt, dry_run_mode, dry_run_option
from meshctl.cli.manifest import RevisionOpt, SetOpt, ValuesOpt, complete_profile
from meshctl.errors import EXIT_FINDINGS, InputError, MeshctlError
from meshctl.install.report import INSTALL_FORMATS, UNINSTALL_FORMATS, VERIFY_FORMATS

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile to install (see 'meshctl profile list').",
                                         metavar="PROFILE", autocompletion=complete_profile)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
IstioNsOpt = Annotated[str, typer.Option("--istio-namespace", "-i",
                                         help="Namespace holding the install record (where the control plane is).")]


_HELP = {
    "install": "Install the mesh control plane: render a profile and apply it with server-side apply.\n\n"
               "Objects are applied in order (CRDs, namespaces, RBAC, config, workloads, webhooks), each labelled "
               "app.kubernetes.io/managed-by=meshctl; the profile and values are recorded in the ConfigMap "
               "meshctl-install[-REVISION]. Re-running converges: unchanged objects are reported as such, and a "
               "run that stopped midway is finished by running it again.",
    "verify-install": "Check the cluster against the recorded install: missing objects, drifted fields, "
                      "workloads not ready. Exit 1 when anything differs.",
    "uninstall": "Delete what meshctl installed for a revision (label app.kubernetes.io/managed-by=meshctl), in "
                 "reverse install order.\n\nShared objects (CRDs, the namespace, the mesh-wide PeerAuthentication) "
                 "stay unless --purge. Safe to re-run.",
}


def register(app: typer.Typer) -> None:
    app.command("install", help=_HELP["install"])(install_cmd)
    app.command("verify-install", help=_HELP["verify-install"])(verify_cmd)
    app.command("uninstall", help=_HELP["uninstall"])(uninstall_cmd)


def _interactive() -> bool:
    return bool(getattr(sys.stdin, "isatty", lambda: False)())


def _confirm(question: str, yes: bool, what: str) -> None:
    """Ask on a terminal; without one, refuse unless -y was given (scripts must say so)."""
    if yes:
        return
    if not _interactive():
        raise InputError(f"refusing to {what} without confirmation: stdin is not a terminal",
                         hint="pass -y/--yes to confirm")
    if not typer.confirm(question, default=False, err=True):
        raise MeshctlError(f"{what} cancelled", exit_code=EXIT_FINDINGS)


def _progress():
    from meshctl.install.report import ConsoleProgress

    return ConsoleProgress(verbose=True)


def _target(k) -> str:
    return f"{k.server} (context {k.context})" if k.context else k.server


# --- install ------------------------------------------------------------------------------------

def install_cmd(
    ctx: typer.Context,
    profile: ProfileOpt = "sidecar",
    values: ValuesOpt = None,
    set_: SetOpt = None,
    revision: RevisionOpt = None,
    dry_run: Annotated[Optional[str], dry_run_option(
        "Show what would be applied, changing nothing: client (bare --dry-run) reads the cluster and "
        "compares; server also has the API server dry-run each apply (admission included).")] = None,
    server_dry_run: Annotated[bool, typer.Option("--server-dry-run", hidden=True)] = False,
    yes: YesOpt = False,
    take_over: Annotated[bool, typer.Option(
        "--take-over", help="Apply over objects another tool installed (istioctl, Helm, kubectl), making them "
                            "meshctl's: a later 'meshctl uninstall' deletes them.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for Deployments and DaemonSets to be ready.")
                    ] = True,
    timeout: Annotated[str, typer.Option("--timeout", help="How long to wait for readiness: 90s, 5m, 1m30s (bare numbers are seconds).")] = "5m",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: INSTALL_FORMATS.option() = None,
) -> None:
    """Install the mesh control plane: render the profile and apply it with server-side apply.

    Objects are applied in order (CRDs, namespaces, RBAC, config, workloads, webhooks), each
    labelled app.kubernetes.io/managed-by=meshctl. Re-running converges: unchanged objects are
    reported as such, and a run that stopped midway is finished by running it again."""
    from meshctl.cli.session import Session
    from meshctl.install import apply, profiles, render, report
    from meshctl.precheck.checks import unsupported_version

    session = Session.of(ctx, kubeconfig=kubeconfig, context=context)
    fmt = session.output(report.INSTALL_FORMATS, output_format)
    dry = "server" if server_dry_run else dry_run_mode(dry_run)
    wait_seconds = durations.parse(timeout, "--timeout")
    vals = profiles.load_values(profile, files=values or (), sets=set_ or (), revision=revision)
    objects = render.render_objects(vals)
    k = session.kube()
    problem = unsupported_version(k.version())  # fails fast (exit 3) when the cluster cannot be reached
    if problem:  # as istioctl does: say so, and go on (the user may know better)
        session.warn(f"{problem}; the install may not work (see 'meshctl precheck')")
    rev = vals.get("revision") or "default"
    if dry is None:
        _confirm(f"Install profile {vals.get('profile') or profile} (revision {rev}, {len(objects)} objects) "
                 f"into {_target(k)}?", yes, "install")
    progress = _progress()
    progress.note(f"{'Dry run: ' if dry else ''}installing profile {vals.get('profile') or profile} "
                  f"(revision {rev}) into {_target(k)}")
    result = apply.install(k, objects, vals, dry_run=dry, wait=wait and dry is None, timeout=wait_seconds,
                           progress=progress, take_over=take_over)
    report.write(result, fmt, session.out, session.err)
    error = report.error_of(result)
    if error is not None:
        raise error


# --- verify-install -----------------------------------------------------------------------------

def verify_cmd(
    ctx: typer.Context,
    revision: RevisionOpt = None,
    istio_namespace: IstioNsOpt = "istio-system",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: VERIFY_FORMATS.option() = None,
) -> None:
    """Check the cluster against the recorded install: missing objects, drifted fields,
    workloads not ready. Exit 1 when anything differs."""
    from meshctl.cli.session import Session
    from meshctl.install import report, verify

    session = Session.of(ctx, kubeconfig=kubeconfig, context=context)
    fmt = session.output(report.VERIFY_FORMATS, output_format)
    result = verify.verify(session.kube(), revision=revision, namespace=istio_namespace)
    report.write(result, fmt, session.out, session.err)
    if not result.ok:
        raise typer.Exit(EXIT_FINDINGS)


# --- uninstall ----------------------------------------------------------------------------------

def uninstall_cmd(
    ctx: typer.Context,
    revision: RevisionOpt = None,
    purge: Annotated[bool, typer.Option(
        "--purge", help="Remove everything meshctl installed, every revision and the shared objects too: "
                        "the CRDs (and with them every Istio resource in the cluster) and the namespace.")] = False,
    yes: YesOpt = False,
    dry_run_value: Annotated[Optional[str], dry_run_option(
        "List what would be deleted, deleting nothing (client or server: each delete is sent with "
        "the API server's dryRun either way).")] = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: UNINSTALL_FORMATS.option() = None,
) -> None:
    """Delete what meshctl installed for a revision (label app.kubernetes.io/managed-by=meshctl),
    in reverse install order. Shared objects (CRDs, the namespace, the mesh-wide
    PeerAuthentication) stay unless --purge. Safe to re-run."""
    from meshctl.cli.session import Session
    from meshctl.install import report, uninstall

    if purge and revision:
        raise InputError("--purge removes every revision; it cannot be combined with --revision",
                         hint="use --revision R to remove one revision, or --purge alone to remove everything")
    dry_run = dry_run_mode(dry_run_value) is not None
    session = Session.of(ctx, kubeconfig=kubeconfig, context=context)
    fmt = session.output(report.UNINSTALL_FORMATS, output_format)
    k = session.kube()
    plan = uninstall.plan(k, revision=revision, purge=purge, target=_target(k))
    warning = report.kept_warning(plan)
    if warning:
        session.warn(warning)
    if plan.refs and not dry_run:
        crds = (f" This deletes {plan.crds} CRDs and every resource of their kinds in the cluster."
                if plan.crds else "")
        _confirm(f"Delete {len(plan.refs)} objects of {plan.which} from {plan.target}?{crds}", yes, "uninstall")
    result = uninstall.uninstall(k, plan, progress=_progress(), dry_run=dry_run) if plan.refs else \
        uninstall.UninstallReport(plan=plan, dry_run=dry_run)
    report.write(result, fmt, session.out, session.err)
    error = report.error_of(result)
    if error is not None:
        raise error

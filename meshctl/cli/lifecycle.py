"""`meshctl install`, `meshctl verify-install`, `meshctl uninstall`: the cluster half of install.

Thin: parse flags, load values and render (meshctl.install.profiles / render), hand the objects to
meshctl.install (apply, verify, uninstall), print the report. Progress goes to stderr, results to stdout.
"""
from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from meshctl import durations
from meshctl.cli.common import ContextOpt, KubeconfigOpt, OutputOpt, check_output, dry_run_mode, dry_run_option, settings
from meshctl.errors import EXIT_FINDINGS, InputError, MeshctlError


def _complete_profile(incomplete: str) -> list[str]:
    from meshctl.install.profiles import complete_profile

    return complete_profile(incomplete)


ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile to install (see 'meshctl profile list').",
                                         autocompletion=_complete_profile)]
ValuesOpt = Annotated[Optional[List[str]], typer.Option(
    "--values", "-f", help="A YAML file of values merged over the profile (repeatable, later files win).")]
SetOpt = Annotated[Optional[List[str]], typer.Option("--set", help="Set one value: --set a.b[0].c=v (repeatable).")]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", "-r", help="Control-plane revision.")]
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


def _client(s, timeout: float = 10.0):
    from meshctl import kube

    return kube.client(s.kubeconfig, s.context, timeout=timeout)


def _progress(s):
    from meshctl.install.report import ConsoleProgress

    return ConsoleProgress(verbose=True)


def _target(k) -> str:
    return f"{k.server} (context {k.context})" if k.context else k.server


def _list_refs(refs, limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in refs[:limit])
    return shown + (f" (and {len(refs) - limit} more)" if len(refs) > limit else "")


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
    output_format: OutputOpt = None,
) -> None:
    """Install the mesh control plane: render the profile and apply it with server-side apply.

    Objects are applied in order (CRDs, namespaces, RBAC, config, workloads, webhooks), each
    labelled app.kubernetes.io/managed-by=meshctl. Re-running converges: unchanged objects are
    reported as such, and a run that stopped midway is finished by running it again."""
    from meshctl import output
    from meshctl.install import apply
    from meshctl.install import profiles
    from meshctl.install import render

    s = settings(ctx, kubeconfig=kubeconfig, context=context, output=output_format)
    fmt = check_output(s.output, ("text", "json"), "text")
    dry = "server" if server_dry_run else dry_run_mode(dry_run)
    wait_seconds = durations.parse(timeout, "--timeout")
    vals = profiles.load_values(profile, files=values or (), sets=set_ or (), revision=revision)
    objects = render.render_objects(vals)
    k = _client(s)
    # fail fast (exit 3) before asking anything when the cluster cannot be reached
    from meshctl.precheck.checks import unsupported_version

    problem = unsupported_version(k.version())
    if problem:  # as istioctl does: say so, and go on (the user may know better)
        output.warn(f"{problem}; the install may not work (see 'meshctl precheck')")
    rev = vals.get("revision") or "default"
    if dry is None:
        _confirm(f"Install profile {vals.get('profile') or profile} (revision {rev}, {len(objects)} objects) "
                 f"into {_target(k)}?", yes, "install")
    progress = _progress(s)
    progress.note(f"{'Dry run: ' if dry else ''}installing profile {vals.get('profile') or profile} "
                  f"(revision {rev}) into {_target(k)}")
    report = apply.install(k, objects, vals, dry_run=dry, wait=wait and dry is None, timeout=wait_seconds,
                           progress=progress, take_over=take_over)
    if fmt == "json":
        output.emit({"profile": vals.get("profile") or profile, "revision": rev, "dryRun": dry,
                     **report.to_dict()}, "json")
    else:
        _print_install_summary(report, dry)
    if report.error is not None:
        e = report.error
        if report.failed is not None:
            applied = [o.ref for o in report.outcomes]
            if report.pending:
                sys.stderr.write(f"applied {len(applied)} of {len(applied) + len(report.pending)} objects; "
                                 f"not applied: {_list_refs(report.pending)}\n")
            else:
                sys.stderr.write(f"applied all {len(applied)} objects\n")
            raise MeshctlError(f"install stopped at {report.failed}: {e.message}",
                               hint=e.hint or "fix the cause and run the same command again: it finishes the job",
                               exit_code=e.exit_code)
        raise e


def _print_install_summary(report, dry: Optional[str]) -> None:
    from meshctl import output

    con = output.console()
    counts = report.counts()
    if counts:
        actions = []
        for per in counts.values():
            for a in per:
                if a not in actions:
                    actions.append(a)
        width = max(len("KIND"), *(len(kind) for kind in counts))
        header = "KIND".ljust(width) + "".join(f"  {a.upper():>12}" for a in actions)
        con.print(header, highlight=False)
        for kind, per in counts.items():
            con.print(kind.ljust(width) + "".join(f"  {per.get(a, 0):>12}" for a in actions), highlight=False)
    totals = report.totals()
    detail = ", ".join(f"{n} {a}" for a, n in totals.items())
    n = sum(totals.values())
    if dry:
        con.print(f"dry run ({dry}): {n} objects checked ({detail}); nothing was changed", highlight=False)
    elif report.error is None:
        ready = ", workloads ready" if report.waited else " (not waiting for workloads to be ready)"
        con.print(_line("✔", f"installed: {n} objects ({detail}){ready}"), highlight=False)
    elif report.failed is None:
        state = f"{len(report.not_ready)} workload(s) not ready" if report.not_ready else "readiness not known"
        con.print(_line("✖", f"applied {n} objects ({detail}); {state}"), highlight=False)


# --- verify-install -----------------------------------------------------------------------------

def verify_cmd(
    ctx: typer.Context,
    revision: RevisionOpt = None,
    istio_namespace: IstioNsOpt = "istio-system",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: OutputOpt = None,
) -> None:
    """Check the cluster against the recorded install: missing objects, drifted fields,
    workloads not ready. Exit 1 when anything differs."""
    from meshctl import output
    from meshctl.install import verify

    s = settings(ctx, kubeconfig=kubeconfig, context=context, output=output_format)
    fmt = check_output(s.output, ("text", "json", "yaml"), "text")
    k = _client(s)
    result = verify.verify(k, revision=revision, namespace=istio_namespace)
    if fmt in ("json", "yaml"):
        output.emit(result.to_dict(), fmt)
    else:
        _print_verification(result)
    if not result.ok:
        raise typer.Exit(EXIT_FINDINGS)


def _line(mark: str, text: str):
    """A rich Text: a coloured ✔/✖ mark, then plain text (no markup parsing of object names)."""
    from rich.text import Text

    style = {"✔": "green", "✖": "red", "‼": "yellow"}.get(mark, "")
    return Text.assemble((mark, style), " " + text)


def _print_verification(result) -> None:
    from meshctl import output

    con = output.console()
    when = f", installed {result.installed_at}" if result.installed_at else ""
    con.print(f"meshctl install: profile {result.profile or '?'}, revision {result.revision or 'default'}"
              f"{when} (record {result.record})", highlight=False, markup=False)
    from meshctl import __version__

    if result.meshctl_version and result.meshctl_version != __version__:
        con.print(_line("‼", f"installed by meshctl {result.meshctl_version}, checked with meshctl {__version__}: "
                             "differences may come from changed templates"), highlight=False)
    groups: dict[str, list] = {}
    for c in result.checks:
        groups.setdefault(c.ref.kind, []).append(c)
    for kind, checks in groups.items():
        ok = [c for c in checks if c.status == "ok"]
        bad = [c for c in checks if c.status != "ok"]
        if ok:
            extra = " and ready" if kind in ("Deployment", "DaemonSet", "StatefulSet") else ""
            count = f"{len(ok)} of {len(checks)}" if bad else f"{len(ok)}"
            con.print(_line("✔", f"{kind}: {count} as installed{extra}"), highlight=False)
        for c in bad:
            con.print(_line("✖", f"{c.ref}: {c.status}: {c.detail}"), highlight=False)
    counts = result.counts()
    total = len(result.checks)
    if result.ok:
        con.print(_line("✔", f"verified: {total} objects as installed, workloads ready"), highlight=False)
    else:
        problems = total - counts["ok"]
        con.print(_line("✖", f"{problems} of {total} objects differ from the install: {counts['missing']} missing, "
                             f"{counts['drifted']} drifted, {counts['not-ready']} not ready"), highlight=False)
        con.print("  re-run 'meshctl install' with the same profile and values to restore them",
                  highlight=False, markup=False)


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
) -> None:
    """Delete what meshctl installed for a revision (label app.kubernetes.io/managed-by=meshctl),
    in reverse install order. Shared objects (CRDs, the namespace, the mesh-wide
    PeerAuthentication) stay unless --purge. Safe to re-run."""
    from meshctl import output
    from meshctl.install import uninstall

    if purge and revision:
        raise InputError("--purge removes every revision; it cannot be combined with --revision",
                         hint="use --revision R to remove one revision, or --purge alone to remove everything")
    dry_run = dry_run_mode(dry_run_value) is not None
    s = settings(ctx, kubeconfig=kubeconfig, context=context)
    k = _client(s)
    refs = uninstall.owned_objects(k, revision=revision, purge=purge)
    con = output.console()
    which = "every revision and the shared objects" if purge else f"revision {revision or 'default'}"
    if not purge and refs:
        kept = uninstall.claimed_by_other_revisions(k, refs, revision)
        if kept:
            refs = [r for r in refs if r not in kept]
            others = sorted(set(kept.values()))
            output.warn(f"keeping {len(kept)} objects that the install of revision {', '.join(others)} also made "
                        f"(this revision took them over): {_list_refs(list(kept))}; run 'meshctl install' for "
                        f"revision {others[0]} again to make them its own")
    if not refs:
        con.print(f"nothing to uninstall: no objects of {which} managed by meshctl in {_target(k)}",
                  highlight=False)
        return
    if not dry_run:
        crds = sum(1 for r in refs if r.kind == "CustomResourceDefinition")
        warning = (f" This deletes {crds} CRDs and every resource of their kinds in the cluster." if crds else "")
        _confirm(f"Delete {len(refs)} objects of {which} from {_target(k)}?{warning}", yes, "uninstall")
    report = uninstall.uninstall(k, refs, progress=_progress(s), dry_run=dry_run)
    if report.error is not None:
        sys.stderr.write(f"deleted {len(report.deleted)} of {len(refs)} objects; still there: "
                         f"{_list_refs(report.pending)}\n")
        e = report.error
        raise MeshctlError(f"uninstall stopped at {report.pending[0]}: {e.message}",
                           hint=e.hint or "run the same command again to finish", exit_code=e.exit_code)
    verb = "would delete" if dry_run else "deleted"
    gone = f" ({len(report.gone)} already gone)" if report.gone else ""
    text = f"{verb} {len(report.deleted)} objects of {which}{gone}"
    con.print(text if dry_run else _line("✔", text), highlight=False)

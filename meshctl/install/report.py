"""How install, verify-install and uninstall show themselves: progress on stderr (a live bar on a
terminal, one line per object otherwise), and each result in text, json or yaml
(`write(result, fmt, out, err)`)."""
from __future__ import annotations

import sys
from typing import Any, Optional

from meshctl.errors import MeshctlError
from meshctl.install.apply import ApplyReport
from meshctl.install.objects import Progress, Ref
from meshctl.install.uninstall import UninstallPlan, UninstallReport
from meshctl.install.verify import Verification
from meshctl.output import OutputFormats, emit_to

INSTALL_FORMATS = OutputFormats(("text", "json"), default="text")
VERIFY_FORMATS = OutputFormats(("text", "json", "yaml"), default="text")
UNINSTALL_FORMATS = OutputFormats(("text", "json", "yaml"), default="text")


class ConsoleProgress(Progress):
    """Progress on stderr: a live bar and spinner on a terminal, plain lines otherwise."""

    def __init__(self, stream=None, verbose: bool = True):
        from meshctl import output

        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.console = output.console(stream=self.stream) if self.tty else None
        self.verbose = verbose
        self._live = None
        self._task = None
        self._last_wait: dict[Ref, str] = {}

    def _plain(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, total: int, what: str) -> None:
        self.done()
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._live = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), console=self.console, transient=True)
            self._live.start()
            self._task = self._live.add_task(what, total=total)

    def object(self, ref: Ref, action: str) -> None:
        if self._live is not None:
            self._live.update(self._task, advance=1, description=f"{action} {ref}")
            if self.verbose:
                self._live.console.print(f"  {action:<10} {ref}", highlight=False)
        elif self.verbose:
            self._plain(f"  {action:<10} {ref}")

    def note(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, highlight=False)
        else:
            self._plain(text)

    def waiting(self, pending: dict[Ref, str]) -> None:
        if self._live is not None:
            first = next(iter(pending.items()), None)
            desc = f"waiting for {len(pending)} workload(s)" + (f": {first[0]} {first[1]}" if first else "")
            self._live.update(self._task, description=desc,
                              completed=(self._live.tasks[0].total or 0) - len(pending))
            return
        for ref, why in pending.items():
            if self._last_wait.get(ref) != why:
                self._plain(f"  waiting    {ref}: {why}")
        self._last_wait = dict(pending)

    def done(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
            self._task = None



# --- results ---------------------------------------------------------------------------------------

def _line(mark: str, text: str):
    """A coloured ✔/✖/‼ mark, then plain text (object names are never read as markup)."""
    from rich.text import Text

    style = {"✔": "green", "✖": "red", "‼": "yellow"}.get(mark, "")
    return Text.assemble((mark, style), " " + text)


def list_refs(refs, limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in refs[:limit])
    return shown + (f" (and {len(refs) - limit} more)" if len(refs) > limit else "")


def write(result: Any, fmt: str, out, err) -> None:
    """An install (ApplyReport), verify-install (Verification) or uninstall (UninstallReport)
    result in `fmt`: results on `out`, what went wrong part-way on `err`."""
    if fmt in ("json", "yaml"):
        emit_to(out, result.to_dict(), fmt)
    elif isinstance(result, ApplyReport):
        _install_text(result, out)
    elif isinstance(result, Verification):
        _verify_text(result, out)
    elif isinstance(result, UninstallReport):
        _uninstall_text(result, out)
    else:  # pragma: no cover - a programming error
        raise TypeError(type(result).__name__)
    if isinstance(result, ApplyReport) and result.failed is not None:
        applied = [o.ref for o in result.outcomes]
        if result.pending:
            err.print(f"applied {len(applied)} of {len(applied) + len(result.pending)} objects; "
                      f"not applied: {list_refs(result.pending)}", markup=False, highlight=False)
        else:
            err.print(f"applied all {len(applied)} objects", markup=False, highlight=False)
    if isinstance(result, UninstallReport) and result.error is not None and result.plan is not None:
        err.print(f"deleted {len(result.deleted)} of {len(result.plan.refs)} objects; still there: "
                  f"{list_refs(result.pending)}", markup=False, highlight=False)


def error_of(result: Any) -> Optional[MeshctlError]:
    """The error a failed install or uninstall ends with (its exit code), said in one line."""
    e = result.error
    if e is None:
        return None
    if isinstance(result, ApplyReport) and result.failed is not None:
        return MeshctlError(f"install stopped at {result.failed}: {e.message}",
                            hint=e.hint or "fix the cause and run the same command again: it finishes the job",
                            exit_code=e.exit_code)
    if isinstance(result, UninstallReport) and result.pending:
        return MeshctlError(f"uninstall stopped at {result.pending[0]}: {e.message}",
                            hint=e.hint or "run the same command again to finish", exit_code=e.exit_code)
    return e


def kept_warning(plan: UninstallPlan) -> Optional[str]:
    """What an uninstall keeps because another revision's install took it over."""
    if not plan.kept:
        return None
    others = sorted(set(plan.kept.values()))
    return (f"keeping {len(plan.kept)} objects that the install of revision {', '.join(others)} also made "
            f"(this revision took them over): {list_refs(list(plan.kept))}; run 'meshctl install' for "
            f"revision {others[0]} again to make them its own")


def _install_text(report: ApplyReport, out) -> None:
    counts = report.counts()
    if counts:
        actions: list[str] = []
        for per in counts.values():
            for a in per:
                if a not in actions:
                    actions.append(a)
        width = max(len("KIND"), *(len(kind) for kind in counts))
        out.print("KIND".ljust(width) + "".join(f"  {a.upper():>12}" for a in actions), highlight=False)
        for kind, per in counts.items():
            out.print(kind.ljust(width) + "".join(f"  {per.get(a, 0):>12}" for a in actions), highlight=False)
    totals = report.totals()
    detail = ", ".join(f"{n} {a}" for a, n in totals.items())
    n = sum(totals.values())
    if report.dry_run:
        out.print(f"dry run ({report.dry_run}): {n} objects checked ({detail}); nothing was changed", highlight=False)
    elif report.error is None:
        ready = ", workloads ready" if report.waited else " (not waiting for workloads to be ready)"
        out.print(_line("✔", f"installed: {n} objects ({detail}){ready}"), highlight=False)
    elif report.failed is None:
        state = f"{len(report.not_ready)} workload(s) not ready" if report.not_ready else "readiness not known"
        out.print(_line("✖", f"applied {n} objects ({detail}); {state}"), highlight=False)


def _verify_text(result: Verification, out) -> None:
    from meshctl import __version__

    when = f", installed {result.installed_at}" if result.installed_at else ""
    out.print(f"meshctl install: profile {result.profile or '?'}, revision {result.revision or 'default'}"
              f"{when} (record {result.record})", highlight=False, markup=False)
    if result.meshctl_version and result.meshctl_version != __version__:
        out.print(_line("‼", f"installed by meshctl {result.meshctl_version}, checked with meshctl {__version__}: "
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
            out.print(_line("✔", f"{kind}: {count} as installed{extra}"), highlight=False)
        for c in bad:
            out.print(_line("✖", f"{c.ref}: {c.status}: {c.detail}"), highlight=False)
    counts = result.counts()
    total = len(result.checks)
    if result.ok:
        out.print(_line("✔", f"verified: {total} objects as installed, workloads ready"), highlight=False)
    else:
        problems = total - counts["ok"]
        out.print(_line("✖", f"{problems} of {total} objects differ from the install: {counts['missing']} missing, "
                             f"{counts['drifted']} drifted, {counts['not-ready']} not ready"), highlight=False)
        out.print("  re-run 'meshctl install' with the same profile and values to restore them",
                  highlight=False, markup=False)


def _uninstall_text(report: UninstallReport, out) -> None:
    plan = report.plan
    if plan is not None and not plan.refs:
        out.print(f"nothing to uninstall: no objects of {plan.which} managed by meshctl in {plan.target}",
                  highlight=False, markup=False)
        return
    if report.error is not None:
        return
    verb = "would delete" if report.dry_run else "deleted"
    gone = f" ({len(report.gone)} already gone)" if report.gone else ""
    text = f"{verb} {len(report.deleted)} objects of {plan.which if plan else 'the install'}{gone}"
    out.print(text if report.dry_run else _line("✔", text), highlight=False, markup=False)

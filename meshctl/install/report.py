"""How install, verify-install and uninstall show themselves: progress on stderr (a live bar on a
terminal, one line per object otherwise)."""
from __future__ import annotations

import sys

from meshctl.install.objects import Progress, Ref


class ConsoleProgress(Progress):
    """Progress on stderr: a live bar and spinner on a terminal, plain lines otherwise."""

    def __init__(self, stream=None, verbose: bool = True):
        from meshctl import output

        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.console = output.console(stderr=True) if self.tty else None
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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn, \
                TextColumn

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

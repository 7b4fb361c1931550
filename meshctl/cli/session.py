"""One command's session: the settings merged from before and after the command name, the
Kubernetes client (made once, on first use), kubectl's namespace rule, and the consoles that
output goes to (colour as NO_COLOR, --no-color, TERM=dumb and the terminal allow).

Commands build a Session, call one domain function with what they need of it, and hand the
result to the domain's `report.write(result, fmt, session.out, session.err)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import typer

from meshctl.cli.common import Settings, settings


@dataclass
class Session:
    settings: Settings
    _kube: Any = field(default=None, repr=False)
    _out: Any = field(default=None, repr=False)
    _err: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, ctx: typer.Context, **overrides) -> "Session":
        """The session of a command: the global settings with the values given after its name."""
        return cls(settings(ctx, **overrides))

    def kube(self, timeout: float = 10.0):
        """The Kubernetes client for --kubeconfig/--context (nothing is sent until first use)."""
        if self._kube is None:
            from meshctl import kube

            self._kube = kube.client(self.settings.kubeconfig, self.settings.context, timeout=timeout)
        return self._kube

    def namespace(self, given: Optional[str] = None) -> str:
        """kubectl's rule: -n, else the namespace of the kubeconfig context, else `default`."""
        ns = given or self.settings.namespace
        if ns:
            return ns
        return self.kube().namespace_for(None)

    def output(self, formats, given: Optional[str] = None) -> str:
        """The output format: the command's -o, else the global one, checked against `formats`
        (an OutputFormats)."""
        return formats.check(given or self.settings.output)

    @property
    def out(self):
        """The console for results (stdout)."""
        if self._out is None:
            from meshctl import output

            self._out = output.console()
        return self._out

    @property
    def err(self):
        """The console for progress, warnings and summaries (stderr)."""
        if self._err is None:
            from meshctl import output

            self._err = output.console(stderr=True)
        return self._err

    def warn(self, text: str) -> None:
        from meshctl import output

        output.warn(text)

"""`meshctl precheck`: can the mesh be installed on this cluster?"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from meshctl.cli.common import ContextOpt, KubeconfigOpt
from meshctl.errors import EXIT_FINDINGS
from meshctl.precheck.report import FORMATS


def register(app: typer.Typer) -> None:
    @app.command("precheck")
    def precheck(
        ctx: typer.Context,
        profile: Annotated[str, typer.Option("--profile", "-p", help="The profile you plan to install (ambient adds CNI and node checks).")] = "sidecar",
        revision: Annotated[Optional[str], typer.Option("--revision", "-r", help="The revision you plan to install.")] = None,
        istio_namespace: Annotated[str, typer.Option("--istio-namespace", "-i", help="Where the control plane goes.")] = "istio-system",
        kubeconfig: KubeconfigOpt = None,
        context: ContextOpt = None,
        output_format: FORMATS.option() = None,
    ) -> None:
        """Check that the cluster is ready for the mesh (exit 0 ready, 1 a check failed, 3 unreachable)."""
        from meshctl.cli.session import Session
        from meshctl.precheck import checks, report

        session = Session.of(ctx, kubeconfig=kubeconfig, context=context)
        fmt = session.output(FORMATS, output_format)
        check_ctx = checks.Context(kube=session.kube(), profile=profile, revision=revision or "",
                                   istio_namespace=istio_namespace)
        streamed = fmt == "text"
        result = report.PrecheckResult(checks.run_checks(
            check_ctx, on_result=report.Printer(session.out) if streamed else None))
        report.write(result, fmt, session.out, session.err, streamed=streamed)
        if result.failed:
            raise typer.Exit(EXIT_FINDINGS)

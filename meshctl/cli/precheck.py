"""`meshctl precheck`: can the mesh be installed on this cluster?"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from meshctl.cli.common import ContextOpt, KubeconfigOpt, OutputOpt, check_output, settings
from meshctl.errors import EXIT_FINDINGS

SYMBOL = {"ok": "✔", "warning": "‼", "error": "✖"}


def register(app: typer.Typer) -> None:
    @app.command("precheck")
    def precheck(
        ctx: typer.Context,
        profile: Annotated[str, typer.Option("--profile", "-p", help="The profile you plan to install (ambient adds CNI and node checks).")] = "sidecar",
        revision: Annotated[Optional[str], typer.Option("--revision", "-r", help="The revision you plan to install.")] = None,
        istio_namespace: Annotated[str, typer.Option("--istio-namespace", "-i", help="Where the control plane goes.")] = "istio-system",
        kubeconfig: KubeconfigOpt = None,
        context: ContextOpt = None,
        output_format: OutputOpt = None,
    ) -> None:
        """Check that the cluster is ready for the mesh (exit 0 ready, 1 a check failed, 3 unreachable)."""
        from meshctl import kube, output
        from meshctl.precheck.checks import Context, run_checks

        s = settings(ctx, kubeconfig=kubeconfig, context=context, output=output_format)
        fmt = check_output(s.output, ("text", "json", "yaml"), "text")
        client = kube.client(s.kubeconfig, s.context)
        check_ctx = Context(kube=client, profile=profile, revision=revision or "", istio_namespace=istio_namespace)
        con = output.console()
        state = {"category": None}

        def show(outcome) -> None:
            if fmt != "text":
                return
            check, result = outcome.check, outcome.result
            if state["category"] != check.category:
                if state["category"] is not None:
                    con.print()
                con.print(check.category, style="bold")
                con.print("-" * len(check.category))
                state["category"] = check.category
            style = {"ok": "green", "warning": "yellow", "error": "red"}[result.status]
            extra = f" ({result.message})" if result.status == "ok" and result.message else ""
            con.print(f"[{style}]{SYMBOL[result.status]}[/{style}] {check.description}{extra}")
            if result.status != "ok":
                con.print(f"    {result.message}", markup=False)
                for d in result.details[:20]:
                    con.print(f"      * {d}", markup=False)
                if len(result.details) > 20:
                    con.print(f"      ... and {len(result.details) - 20} more")
                con.print(f"    see {check.hint_url} for hints", markup=False)

        outcomes = run_checks(check_ctx, on_result=show)
        failed = any(o.result.status == "error" for o in outcomes)
        if fmt == "text":
            errors = sum(o.result.status == "error" for o in outcomes)
            warnings = sum(o.result.status == "warning" for o in outcomes)
            counts = ", ".join(f"{n} {word}{'s' if n != 1 else ''}"
                               for n, word in ((errors, "failure"), (warnings, "warning")) if n)
            symbol = "[red]✖[/red]" if errors else "[yellow]‼[/yellow]" if warnings else "[green]✔[/green]"
            con.print()
            con.print(f"Status check results are {symbol}" + (f" ({counts})" if counts else ""))
        else:
            categories: list[dict] = []
            for o in outcomes:
                if not categories or categories[-1]["categoryName"] != o.check.category:
                    categories.append({"categoryName": o.check.category, "checks": []})
                categories[-1]["checks"].append({
                    "id": o.check.id, "description": o.check.description, "hint": o.check.hint_url,
                    "fatal": o.check.fatal,
                    "result": {"ok": "success", "warning": "warning", "error": "error"}[o.result.status],
                    "error": o.result.message if o.result.status != "ok" else "",
                    "details": o.result.details})
            output.emit({"success": not failed, "categories": categories}, fmt)
        if failed:
            raise typer.Exit(EXIT_FINDINGS)

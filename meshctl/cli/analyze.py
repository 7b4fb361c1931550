"""`meshctl analyze`: check Istio configuration in files (and/or a live cluster) for mistakes."""
from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from meshctl.analysis.report import FORMATS
from meshctl.cli.common import BoolValueCommand, ContextOpt, KubeconfigOpt, NamespaceOpt, OutputFormats, settings

OUTPUT = OutputFormats(FORMATS, default="text", aliases=(("log", "text"),),
                       help="json and yaml are istioctl's list of messages, sarif is for code scanning, "
                            "junit for CI test reports.")

HELP = """Analyze Istio configuration and report problems, with istioctl analyze's codes.

PATHs (or -f PATH) are files (.yaml, .yml, .json; multi-document; List kinds), directories (-R for their subdirectories) or - for stdin.

Exit codes: 0 nothing at or above --failure-threshold, 1 findings at or above it, 2 bad input or flags (paths without any Kubernetes object too, unless --allow-empty), 3 cluster unreachable.

Examples:

    meshctl analyze examples/bookinfo
    meshctl analyze -R manifests/ -o sarif > analyze.sarif
    meshctl analyze --ignore-unknown -R .
    kubectl get vs,dr -A -o yaml | meshctl analyze -
    meshctl analyze --use-kube -n shop pr/routes.yaml
"""


def register(app: typer.Typer) -> None:
    app.command("analyze", help=HELP, no_args_is_help=False, cls=BoolValueCommand)(analyze_cmd)


def analyze_cmd(
    ctx: typer.Context,
    paths: Annotated[Optional[List[str]], typer.Argument(metavar="[PATH]...", show_default=False,
                                                         help="Files, directories or - (stdin).")] = None,
    filenames: Annotated[Optional[List[str]], typer.Option(
        "--filename", "-f", metavar="PATH", help="A file, directory or - (stdin) to analyze, as kubectl takes it "
        "(repeatable; the same as a PATH argument).")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-R", help="Descend into subdirectories.")] = False,
    use_kube: Annotated[bool, typer.Option("--use-kube", help="Also read the live cluster; files replace its objects of the same identity. --use-kube=false/true are accepted too.")] = False,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="With --use-kube: every namespace.")] = False,
    mesh_config: Annotated[Optional[str], typer.Option("--mesh-config", metavar="FILE",
                                                       help="A MeshConfig file, or the istio ConfigMap (data.mesh).")] = None,
    failure_threshold: Annotated[str, typer.Option("--failure-threshold", metavar="LEVEL",
                                                   help="Exit 1 when a finding is at or above this level (Info, Warning, Error).")] = "Error",
    output_threshold: Annotated[str, typer.Option("--output-threshold", metavar="LEVEL",
                                                  help="Print findings at or above this level (Info, Warning, Error).")] = "Info",
    suppress: Annotated[Optional[List[str]], typer.Option("--suppress", "-S", metavar="CODE=RESOURCE",
                                                          help="Hide findings, e.g. 'IST0102=Namespace frod' or 'IST0107=Pod *.default' (repeatable, * wildcards).")] = None,
    analyzers: Annotated[Optional[List[str]], typer.Option("--analyzers", metavar="NAME",
                                                           help="Run only these analyzers (repeatable or comma-separated; * wildcards, prefixes like 'gateway.').")] = None,
    list_analyzers: Annotated[bool, typer.Option("--list-analyzers", "-L", help="List the analyzers and exit.")] = False,
    ignore_unknown: Annotated[bool, typer.Option(
        "--ignore-unknown", help="Skip files and documents that are not Kubernetes objects (CI configs, Helm templates).")] = False,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Paths holding no Kubernetes object are fine (exit 0), not an error (exit 2).")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    output_format: OUTPUT.option() = None,
) -> int:
    s = settings(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, output=output_format)
    from meshctl.analysis import report

    fmt = OUTPUT.check(s.output)
    if list_analyzers:
        from meshctl.analysis.framework import all_analyzers

        rows = [{"name": a.name, "description": a.description, "inputs": list(a.inputs),
                 "default": bool(getattr(a, "default", True))} for a in all_analyzers()]
        if fmt in ("json", "yaml"):
            from meshctl.output import emit

            emit(rows, fmt)
        else:
            width = max((len(r["name"]) for r in rows), default=0)
            for r in rows:
                extra = "" if r["default"] else " (not run by default: select it with --analyzers)"
                typer.echo(f"{r['name']:<{width}}  {r['description']}{extra}")
        return 0

    from meshctl.analysis.pipeline import AnalyzeOptions, analyze, gc_paused

    with gc_paused():  # through the report too; the result is dropped before the pause ends
        result = analyze(AnalyzeOptions(
            paths=[*(paths or ()), *(filenames or ())], recursive=recursive, namespace=s.namespace, all_namespaces=all_namespaces,
            use_kube=use_kube, kubeconfig=s.kubeconfig, context=s.context, mesh_config_file=mesh_config,
            analyzers=analyzers or (), suppress=suppress or (), output_threshold=output_threshold,
            failure_threshold=failure_threshold, ignore_unknown=ignore_unknown,
            allow_empty=allow_empty))
        if result.warnings:
            from meshctl.output import warn

            for w in result.warnings:
                warn(w)
        report.write(result, fmt)
        code = 1 if result.failed else 0
        del result
    return code

"""`meshctl canary`: weighted and header routing, and progressive rollouts, on VirtualServices and
Gateway API HTTPRoutes. Thin: each command builds its options (plan.Shift, state.Options),
calls one domain function over a target, and hands the result to canary/report.py."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from meshctl.canary.report import RUN_FORMATS, SHIFT_FORMATS, STATUS_FORMATS
from meshctl.cli.common import ContextOpt, KubeconfigOpt, NamespaceOpt, dry_run_mode, dry_run_option
from meshctl.cli.local import LocalOpt, StateOpt, use_local
from meshctl.errors import EXIT_FINDINGS

canary_app = typer.Typer(
    name="canary",
    help="Shift traffic between versions and run progressive rollouts (Flagger-style, no controller), on "
         "VirtualServices or Gateway API HTTPRoutes.",
    no_args_is_help=True,
)

HostArg = Annotated[str, typer.Argument(help="The host (Service name or FQDN) its VirtualService or HTTPRoute routes.")]
KindOpt = Annotated[Optional[str], typer.Option(
    "--kind", metavar="KIND", help="The route API to act on when the host has both: VirtualService or HTTPRoute "
                                   "(default: whichever the host has).",
    autocompletion=lambda incomplete: [k for k in ("VirtualService", "HTTPRoute") if k.startswith(incomplete)])]


def register(app: typer.Typer) -> None:
    app.add_typer(canary_app, name="canary")


def _session(ctx: typer.Context, kubeconfig, context, namespace):
    from meshctl.cli.session import Session

    return Session.of(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace)


def _client(session, local_state: Optional[str]):
    """(API, namespace): the local mesh running in `local_state` (use_local: with --local, or
    when one runs in the state directory), else the cluster with kubectl's namespace rule."""
    if local_state:
        from meshctl.local.kubeview import LocalResources

        return LocalResources(local_state), session.settings.namespace or "default"
    return session.kube(), session.namespace()


@canary_app.command("shift")
def shift_cmd(
    ctx: typer.Context,
    host: HostArg,
    weights: Annotated[str, typer.Argument(help="Weights per version, summing to 100: 90/10, 80/10/10.")],
    subsets: Annotated[Optional[str], typer.Option("--subsets", help="Versions the weights apply to, in order: subsets of the DestinationRule, or per-version Services of an HTTPRoute (reviews-v2, or v2 for short). Default: the route's own, else the DestinationRule's.")] = None,
    files: Annotated[Optional[list[str]], typer.Option("--filename", "-f", help="Edit the route in this manifest file in place instead of the cluster (repeat to add files holding the DestinationRule or Services).")] = None,
    header: Annotated[Optional[str], typer.Option("--header", help="A/B: requests with header NAME=VALUE go to the canary (the last version).")] = None,
    mirror: Annotated[Optional[str], typer.Option("--mirror", help="Mirror this percentage of traffic to the canary (0 removes mirroring).")] = None,
    create: Annotated[bool, typer.Option("--create", help="Create the route when missing: a VirtualService (and DestinationRule) from the Service's pods' version labels, or with --kind HTTPRoute an HTTPRoute on the Service.")] = False,
    kind: KindOpt = None,
    dry_run_value: Annotated[Optional[str], dry_run_option(
        "Print the diff, change nothing: client (bare --dry-run), or server: the API server (and "
        "Istio's validation webhook) also checks the change.")] = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: SHIFT_FORMATS.option() = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Rewrite the weighted default route of HOST's VirtualService or HTTPRoute (header-match routes stay)."""
    from meshctl.canary import plan, report, shift, targets

    session = _session(ctx, kubeconfig, context, namespace)
    fmt = session.output(SHIFT_FORMATS, output_format)
    change = plan.Shift.parse(host, weights, subsets=subsets, header=header, mirror=mirror, create=create, kind=kind,
                              namespace=session.settings.namespace)
    local_state = None if files else use_local(ctx, local, state_dir)
    dry_run = dry_run_mode(dry_run_value, server=not files and not local_state, no_server=(
        "--dry-run=server needs a cluster: this command works on "
        + ("the local mesh" if local_state else "files") + " here"))
    if files:
        target = targets.FileTarget(files, session.settings.namespace, dry_run=bool(dry_run))
    else:
        k, ns = _client(session, local_state)
        target = targets.ClusterTarget(k, ns, dry_run=dry_run)
    report.write(shift.shift(target, change), fmt, session.out, session.err)


@canary_app.command("run")
def run_cmd(
    ctx: typer.Context,
    host: HostArg,
    to: Annotated[Optional[str], typer.Option("--to", help="The canary to roll out: a subset, or an HTTPRoute's per-version Service (not needed to resume).")] = None,
    step: Annotated[Optional[int], typer.Option("--step", help="Weight added at each step (default 10).")] = None,
    steps: Annotated[Optional[str], typer.Option("--steps", help="Explicit weights, e.g. 5,10,25,50.")] = None,
    max_weight: Annotated[Optional[int], typer.Option("--max-weight", help="Promote after a successful analysis at this weight (default 50).")] = None,
    interval: Annotated[Optional[str], typer.Option("--interval", help="Time between analyses (default 1m).")] = None,
    threshold: Annotated[Optional[int], typer.Option("--threshold", help="Failed checks before rolling back (default 3).")] = None,
    min_success_rate: Annotated[Optional[str], typer.Option("--min-success-rate", help="Minimum non-5xx percentage (default 99).")] = None,
    max_p99: Annotated[Optional[str], typer.Option("--max-p99", help="Maximum p99 latency: 500ms, 1s, or milliseconds (default 500ms).")] = None,
    prometheus: Annotated[Optional[str], typer.Option("--prometheus", help="Read Istio's standard metrics from this Prometheus URL.")] = None,
    proxy_admin: Annotated[Optional[list[str]], typer.Option("--proxy-admin", help="Envoy admin ADDR:PORT of a proxy calling the host (repeatable; default: sidecars in the namespace, through port-forward).")] = None,
    pre_rollout: Annotated[Optional[list[str]], typer.Option("--pre-rollout", help="Webhook URL called before shifting; non-2xx aborts.")] = None,
    rollout_hook: Annotated[Optional[list[str]], typer.Option("--rollout", help="Webhook URL called at each step; non-2xx is a failed check.")] = None,
    post_rollout: Annotated[Optional[list[str]], typer.Option("--post-rollout", help="Webhook URL called after promotion or rollback.")] = None,
    kind: KindOpt = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: RUN_FORMATS.option() = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Progressively shift HOST to a canary while it stays healthy (exit 0 promoted, 1 rolled back)."""
    import contextlib

    from meshctl.canary import gates, report, rollout

    session = _session(ctx, kubeconfig, context, namespace)
    fmt = session.output(RUN_FORMATS, output_format)
    opts = rollout.Options.parse(to=to, step=step, steps=steps, max_weight=max_weight, interval=interval,
                                 threshold=threshold, min_success_rate=min_success_rate, max_p99=max_p99,
                                 prometheus=prometheus, proxy_admin=proxy_admin, pre_rollout=pre_rollout,
                                 rollout=rollout_hook, post_rollout=post_rollout, kind=kind)
    k, ns = _client(session, use_local(ctx, local, state_dir))
    printer = report.RunPrinter(fmt, session.out)
    r = rollout.Rollout(k, host, ns, observer=printer, sleep=printer.sleep, kind=opts.kind, warn=session.warn)
    with contextlib.ExitStack() as stack:
        stack.callback(printer.close)
        result = r.result(r.run(opts, gates.source_factory(k, host, ns, stack)))
    report.write(result, fmt, session.out, session.err, streamed=True)
    if not result.succeeded:
        raise typer.Exit(EXIT_FINDINGS)


def _end_command(name: str, doc: str, promote: Optional[bool]) -> None:
    """Register status (promote None), promote or abort: the rollout's state after it, read from
    (and for promote and abort written to) its route."""

    def command(
        ctx: typer.Context,
        host: HostArg,
        kind: KindOpt = None,
        namespace: NamespaceOpt = None,
        kubeconfig: KubeconfigOpt = None,
        context: ContextOpt = None,
        output_format: STATUS_FORMATS.option() = None,
        local: LocalOpt = False,
        state_dir: StateOpt = None,
    ) -> None:
        from meshctl.canary import plan, report, rollout

        session = _session(ctx, kubeconfig, context, namespace)
        fmt = session.output(STATUS_FORMATS, output_format)
        k, ns = _client(session, use_local(ctx, local, state_dir))
        r = rollout.Rollout(k, host, ns, kind=plan.parse_kind(kind), warn=session.warn)
        result = r.status() if promote is None else r.promote() if promote else r.abort()
        report.write(result, fmt, session.out, session.err)

    command.__doc__ = doc
    canary_app.command(name)(command)


_end_command("status", "Show HOST's weights and the state of its rollout (read from its VirtualService or HTTPRoute).",
             None)
_end_command("promote", "Promote the canary now: 100% of traffic to it (a running rollout stops at its next step).",
             True)
_end_command("abort", "Roll back now: 100% of traffic to the stable version (a running rollout stops).", False)

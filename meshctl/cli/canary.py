"""`meshctl canary`: weighted and header routing, and progressive rollouts on VirtualServices."""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Annotated, Callable, Optional

import typer

from meshctl import durations
from meshctl.cli.common import (ContextOpt, KubeconfigOpt, NamespaceOpt, OutputOpt, check_output, dry_run_mode,
                                 dry_run_option, settings)
from meshctl.cli.local import LocalOpt, StateOpt, use_local
from meshctl.errors import EXIT_FINDINGS, EXIT_INTERRUPTED

canary_app = typer.Typer(
    name="canary",
    help="Shift traffic between subsets and run progressive rollouts (Flagger-style, no controller).",
    no_args_is_help=True,
)

HostArg = Annotated[str, typer.Argument(help="The host (Service name or FQDN) the VirtualService serves.")]


def register(app: typer.Typer) -> None:
    app.add_typer(canary_app, name="canary")


def _client(s, ctx=None, local: bool = False, state_dir: Optional[str] = None):
    """The cluster, or the local mesh (with --local, or when one runs in the state directory)."""
    local_state = use_local(ctx, local, state_dir) if ctx is not None else None
    if local_state:
        from meshctl.canary.shift import local_target

        return local_target(local_state)
    from meshctl import kube

    return kube.client(s.kubeconfig, s.context)


def _namespace(s, client) -> str:
    return s.namespace or getattr(client, "namespace", None) or "default"


@canary_app.command("shift")
def shift_cmd(
    ctx: typer.Context,
    host: HostArg,
    weights: Annotated[str, typer.Argument(help="Weights per subset, summing to 100: 90/10, 80/10/10.")],
    subsets: Annotated[Optional[str], typer.Option("--subsets", help="Subsets the weights apply to, in order (default: the route's, else the DestinationRule's).")] = None,
    files: Annotated[Optional[list[str]], typer.Option("--filename", "-f", help="Edit the VirtualService in this manifest file in place instead of the cluster (repeat to add files holding the DestinationRule).")] = None,
    header: Annotated[Optional[str], typer.Option("--header", help="A/B: requests with header NAME=VALUE go to the canary (the last subset).")] = None,
    mirror: Annotated[Optional[str], typer.Option("--mirror", help="Mirror this percentage of traffic to the canary (0 removes mirroring).")] = None,
    create: Annotated[bool, typer.Option("--create", help="Create the VirtualService (and DestinationRule) from the Service's pods' version labels when missing.")] = False,
    dry_run_value: Annotated[Optional[str], dry_run_option(
        "Print the diff, change nothing: client (bare --dry-run), or server: the API server (and "
        "Istio's validation webhook) also checks the change.")] = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: OutputOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Rewrite the weighted default route of HOST's VirtualService (header-match routes stay)."""
    from meshctl import output
    from meshctl.canary import plan, shift

    s = settings(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, output=output_format)
    fmt = check_output(s.output, ("text", "json", "yaml"), "text")
    w = plan.parse_weights(weights)
    subs = plan.parse_subsets(subsets)
    hdr = plan.parse_header(header)
    mir = plan.parse_percent(mirror, "--mirror") if mirror is not None else None
    dry_run = dry_run_mode(dry_run_value, server=not files)
    if files:
        result = shift.shift_files(files, host, s.namespace, w, subs, hdr, mir, bool(dry_run), create)
    else:
        client = _client(s, ctx, local, state_dir)
        result = shift.shift_cluster(client, host, _namespace(s, client), w, subs, hdr, mir, dry_run, create)
    for note in result.notes:
        output.warn(note)
    if fmt != "text":
        output.emit(result.to_dict(), fmt)
        return
    con = output.console()
    if dry_run:
        sys.stdout.write(result.diff)
        sys.stdout.flush()
        output.console(stderr=True).print("dry run: nothing was changed", markup=False)
        return
    for c in result.created:
        con.print(f"[green]✔[/green] created {c}")
    before = plan.weights_text(result.before) if result.before else "none"
    after = plan.weights_text(result.after)
    verb = "shifted" if result.changed else "unchanged"
    extra = []
    if hdr:
        extra.append(f"header {hdr[0]}={hdr[1]} → {subs[-1] if subs else [x for x, _ in result.after][-1]}")
    if mir is not None:
        extra.append(f"mirror {mir:g}%" if mir else "mirror off")
    if result.attempts > 1:
        extra.append(f"{result.attempts - 1} conflict(s) retried")
    tail = f" ({'; '.join(extra)})" if extra else ""
    con.print(f"[green]✔[/green] {host}: {verb} {before} → {after} in {result.target}{tail}", highlight=False)


# --- progressive rollout --------------------------------------------------------------------------
def _reporter(fmt: str):
    """One JSON line per step (-o json), or a live table (TTY) / plain lines (piped)."""
    from meshctl import output

    if fmt == "json":
        def emit(record: dict) -> None:
            sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        return emit, None, None

    con = output.console()

    def line(r: dict) -> str:
        m = r.get("metrics") or {}
        ws = " / ".join(f"{k} {v}%" for k, v in r["weights"].items())
        parts = [r["time"][11:19], f"{r['phase']:<12}", f"step {r['step']}/{r['steps']}", ws]
        if m:
            sr = m.get("successRate")
            p99 = m.get("p99Ms")
            parts.append(f"{m.get('requests', 0)} req")
            parts.append(f"success {sr:.2f}%" if sr is not None else "success -")
            parts.append(f"p99 {p99:.1f}ms" if p99 is not None else "p99 -")
        parts.append(f"failures {r['failures']}/{r['threshold']}")
        text = "  ".join(parts) + f"  {r['action']}"
        if r.get("message"):
            text += f": {r['message']}"
        return text

    if not con.is_terminal:
        def plain(record: dict) -> None:
            con.print(line(record), markup=False, highlight=False)
        return plain, None, None

    from rich.live import Live
    from rich.table import Table

    rows: list[dict] = []
    caption = {"text": None}

    def table() -> Table:
        t = Table(title=f"canary {rows[-1]['host']}: {rows[-1]['phase']}" if rows else "canary",
                  caption=caption["text"])
        for col in ("time", "phase", "step", "weights", "requests", "success", "p99", "failures", "action"):
            t.add_column(col)
        for r in rows[-20:]:
            m = r.get("metrics") or {}
            sr, p99 = m.get("successRate"), m.get("p99Ms")
            t.add_row(r["time"][11:19], r["phase"], f"{r['step']}/{r['steps']}",
                      " / ".join(f"{k} {v}%" for k, v in r["weights"].items()),
                      str(m.get("requests", "")) if m else "",
                      f"{sr:.2f}%" if sr is not None else "-", f"{p99:.1f}ms" if p99 is not None else "-",
                      f"{r['failures']}/{r['threshold']}", r["action"])
        return t

    live = Live(table(), console=con, auto_refresh=False)

    def show(record: dict) -> None:
        rows.append(record)
        if not live.is_started:
            live.start()
        live.update(table(), refresh=True)
        if record.get("message"):
            live.console.print(f"  {record['message']}", markup=False, highlight=False)

    def wait(seconds: float) -> None:
        def tick(left: float) -> None:
            caption["text"] = f"next check in {left:.0f}s" if left > 0 else None
            if live.is_started:
                live.update(table(), refresh=True)
        countdown(seconds, tick)

    return show, live, wait


def countdown(seconds: float, tick: Callable[[float], None], clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait `seconds`, calling tick(seconds left) about once a second and tick(0) at the end, so
    a long --interval shows a countdown on a terminal instead of silence."""
    end = clock() + seconds
    while True:
        left = end - clock()
        if left <= 0:
            break
        tick(math.ceil(left))
        sleep(min(1.0, left))
    tick(0)


def _milliseconds(text: str) -> float:
    """--max-p99: a duration (500ms, 1s) or a bare number of milliseconds (as Flagger's thresholds)."""
    raw = str(text).strip()
    if raw.replace(".", "", 1).isdigit():
        return float(raw)
    return durations.parse(raw, "--max-p99") * 1000


@canary_app.command("run")
def run_cmd(
    ctx: typer.Context,
    host: HostArg,
    to: Annotated[Optional[str], typer.Option("--to", help="The canary subset to roll out (not needed to resume).")] = None,
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
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: OutputOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Progressively shift HOST to a canary while it stays healthy (exit 0 promoted, 1 rolled back)."""
    import contextlib

    from meshctl import output
    from meshctl.canary import gates, plan, rollout
    from meshctl.errors import MeshctlError

    s = settings(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, output=output_format)
    fmt = check_output(s.output, ("text", "json"), "text")
    canary = plan.parse_subsets(to) if to else None
    if canary and len(canary) > 1:
        raise MeshctlError(f"--to {to!r} names several subsets", hint="roll out one canary subset at a time")
    opts = rollout.Options(
        canary=canary[0] if canary else None,
        step=step, steps=plan.parse_steps(steps) if steps else None, max_weight=max_weight,
        interval=durations.parse(interval, "--interval", allow_zero=False) if interval else None,
        threshold=threshold,
        min_success_rate=plan.parse_percent(min_success_rate, "--min-success-rate") if min_success_rate else None,
        max_p99_ms=_milliseconds(max_p99) if max_p99 else None,
        pre_rollout=pre_rollout or [], rollout=rollout_hook or [], post_rollout=post_rollout or [],
        prometheus=prometheus, proxy_admin=proxy_admin or [],
    )
    if step is not None and steps:
        raise MeshctlError("--step and --steps exclude each other", hint="give one of them")
    if opts.steps or step is not None or max_weight is not None:
        plan.step_schedule(step, opts.steps, max_weight if max_weight is not None else rollout.DEFAULTS["maxWeight"])
    client = _client(s, ctx, local, state_dir)
    ns = _namespace(s, client)
    if hasattr(client, "admin_addresses") and not opts.proxy_admin and not opts.prometheus:
        opts.proxy_admin = client.admin_addresses()  # the local mesh's proxies call the host
    from meshctl.canary.shift import ambient_without_waypoint

    ambient = ambient_without_waypoint(client, host, ns)
    if ambient:
        output.warn(ambient)
    report, live, wait = _reporter(fmt)
    r = rollout.Rollout(client, host, ns, report=report)
    if wait is not None:
        r.sleep = wait
    last = {}

    def remember(record: dict) -> None:
        last.update(record)
        report(record)

    r.report = remember
    try:
        with contextlib.ExitStack() as stack:
            if live is not None:
                stack.callback(lambda: live.is_started and live.stop())
            phase = r.run(opts, gates.source_factory(client, host, ns, stack))
    except KeyboardInterrupt:
        weights = " / ".join(f"{k} {v}%" for k, v in (last.get("weights") or {}).items())
        raise MeshctlError(f"interrupted: the rollout of {host} stays {last.get('phase', 'as it was')}"
                           + (f" at {weights}" if weights else ""),
                           hint=f"resume with 'meshctl canary run {host}', or end it with "
                                f"'meshctl canary promote|abort {host}'", exit_code=EXIT_INTERRUPTED) from None
    if phase != rollout.SUCCEEDED:
        raise typer.Exit(EXIT_FINDINGS)


def _show_status(data: dict, fmt: str) -> None:
    from meshctl import output

    if fmt != "text":
        output.emit(data, fmt)
        return
    con = output.console()
    weights = " / ".join(f"{k} {v}%" for k, v in (data.get("weights") or {}).items()) or "no default route"
    con.print(f"{data['virtualService']} ({data['host']}): {weights}", markup=False, highlight=False)
    if not data.get("phase"):
        con.print(data.get("message", ""), markup=False)
        return
    run = "running" if data.get("running") else ("stopped" if data["phase"] in ("Initializing", "Progressing",
                                                                                  "Promoting", "RollingBack")
                                                  else "finished")
    rows = [
        ("phase", f"{data['phase']} ({run})"),
        ("stable → canary", f"{data['stable']} → {data['canary']} at {data['weight']}%"),
        ("step", f"{data['step'] + 1 if data['step'] >= 0 else 0}/{len(data.get('steps') or [])} "
                 f"({'/'.join(map(str, data.get('steps') or []))})"),
        ("failed checks", f"{data['failures']}/{data.get('threshold')}"),
        ("started", data.get("started") or "-"),
        ("last transition", data.get("lastTransition") or "-"),
        ("last update", f"{data.get('heartbeat') or '-'}"
                        + (f" ({data['heartbeatAgeSeconds']:.0f}s ago)" if data.get("heartbeatAgeSeconds") is not None else "")),
    ]
    m = data.get("metrics") or {}
    if m:
        sr, p99 = m.get("successRate"), m.get("p99Ms")
        rows.append(("last metrics", f"{m.get('requests', 0)} requests, success "
                                     + (f"{sr:.2f}%" if sr is not None else "-") + ", p99 "
                                     + (f"{p99:.1f}ms" if p99 is not None else "-")))
    rows.append(("message", data.get("message") or "-"))
    for k, v in rows:
        con.print(f"  {k + ':':<17} {v}", markup=False, highlight=False)
    if run == "stopped":
        con.print(f"  resume with: meshctl canary run {data['host']}", markup=False, highlight=False)


@canary_app.command("status")
def status_cmd(
    ctx: typer.Context,
    host: HostArg,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: OutputOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Show HOST's weights and the state of its rollout (read from the VirtualService)."""
    from meshctl.canary import rollout

    s = settings(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, output=output_format)
    fmt = check_output(s.output, ("text", "json", "yaml"), "text")
    client = _client(s, ctx, local, state_dir)
    _show_status(rollout.Rollout(client, host, _namespace(s, client)).status(), fmt)


def _end(ctx, host, namespace, kubeconfig, context, output_format, promote: bool, local: bool = False,
         state_dir: Optional[str] = None) -> None:
    from meshctl.canary import rollout

    s = settings(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, output=output_format)
    fmt = check_output(s.output, ("text", "json", "yaml"), "text")
    client = _client(s, ctx, local, state_dir)
    r = rollout.Rollout(client, host, _namespace(s, client))
    data = r.promote() if promote else r.abort()
    _show_status(data, fmt)


@canary_app.command("promote")
def promote_cmd(
    ctx: typer.Context,
    host: HostArg,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: OutputOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Promote the canary now: 100% of traffic to it (a running rollout stops at its next step)."""
    _end(ctx, host, namespace, kubeconfig, context, output_format, True, local, state_dir)


@canary_app.command("abort")
def abort_cmd(
    ctx: typer.Context,
    host: HostArg,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output_format: OutputOpt = None,
    local: LocalOpt = False,
    state_dir: StateOpt = None,
) -> None:
    """Roll back now: 100% of traffic to the stable subset (a running rollout stops)."""
    _end(ctx, host, namespace, kubeconfig, context, output_format, False, local, state_dir)

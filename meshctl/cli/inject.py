"""`meshctl inject` (sidecar injection into manifests, or ambient labels) and
`meshctl dataplane enroll|status` (namespace enrolment in a cluster). Thin: parse flags, call
meshctl.inject.pipeline / meshctl.inject.ambient, print."""
from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from meshctl.cli.common import ContextOpt, KubeconfigOpt, complete_namespace, settings
from meshctl.errors import InputError
from meshctl.inject.report import FORMATS as DATAPLANE_FORMATS
from meshctl.inject.report import MANIFEST_FORMATS


def _complete_profile(incomplete: str) -> list[str]:
    from meshctl.install.profiles import complete_profile

    return complete_profile(incomplete)


def _bool_flag(name: str, value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise InputError(f"invalid value {value!r} for {name}", hint=f"use {name}=true or {name}=false")


def inject(
    ctx: typer.Context,
    filename: Annotated[List[str], typer.Option(
        "--filename", "-f", metavar="FILE|DIR|-", help="Workload manifest: a file, a directory, or - for stdin (repeatable).")],
    out: Annotated[Optional[str], typer.Option(
        "--output-file", "-w", metavar="FILE",
        help="Write the result to this file (atomically, through a symbolic link) instead of stdout.")] = None,
    output_format: MANIFEST_FORMATS.option() = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-R", help="Read directories recursively.")] = False,
    remove: Annotated[bool, typer.Option(
        "--remove", help="Take the injected sidecar (or the ambient label) out again.")] = False,
    mode: Annotated[Optional[str], typer.Option(
        "--mode", metavar="MODE", help="sidecar or ambient (default: ambient when the profile, or with --use-kube "
                                       "the cluster's install, runs ambient mode; else sidecar).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Install profile the settings come from.",
                                         autocompletion=_complete_profile)] = "sidecar",
    values: Annotated[Optional[List[str]], typer.Option(
        "--values", metavar="FILE", help="A YAML file of install values merged over the profile (repeatable).")] = None,
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="PATH=VALUE", help="Set one install value: --set components.cni.enabled=true (repeatable).")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", "-r", help="Control-plane revision.")] = None,
    mesh_config: Annotated[Optional[str], typer.Option(
        "--mesh-config", metavar="FILE", help="A MeshConfig file (or the `istio` ConfigMap) overriding values.meshConfig.")] = None,
    native_sidecar: Annotated[Optional[str], typer.Option(
        "--native-sidecar", metavar="BOOL",
        help="true (default): istio-proxy is an init container with restartPolicy Always; "
             "false: a regular container.")] = None,
    use_kube: Annotated[bool, typer.Option(
        "--use-kube", help="Read the settings from the cluster's istio-sidecar-injector and istio ConfigMaps.")] = False,
    istio_namespace: Annotated[str, typer.Option(
        "--istio-namespace", "-i", help="Namespace of the control plane (with --use-kube).")] = "istio-system",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Inject the Envoy sidecar into workload manifests (Deployment, StatefulSet, DaemonSet,
    ReplicaSet, ReplicationController, Job, CronJob, Pod, DeploymentConfig, List); every other
    document passes through unchanged. With --mode ambient, label the pod templates for ambient
    mode instead."""
    from meshctl import output
    from meshctl.inject import pipeline

    opts = settings(ctx, kubeconfig=kubeconfig, context=context)
    fmt = output_format or opts.output or "yaml"
    if fmt not in ("yaml", "json"):
        raise InputError(f"-o takes an output format (yaml or json), not {fmt!r}",
                         hint=f"to write the result to a file use --output-file {fmt}" if "." in fmt or "/" in fmt
                         else "use -o yaml or -o json")
    cfg = None
    if mode is not None and mode not in pipeline.MODES:
        raise InputError(f"unknown mode {mode!r}", hint="use --mode sidecar or --mode ambient")
    if not (remove and mode == "ambient"):
        cfg = pipeline.build_config(
            profile=profile, values_files=values or (), sets=set_ or (), revision=revision,
            mesh_config_file=mesh_config, native_sidecar=_bool_flag("--native-sidecar", native_sidecar),
            use_kube=use_kube, kubeconfig=opts.kubeconfig, context=opts.context, istio_namespace=istio_namespace)
    if mode is None:
        mode, why = pipeline.default_mode(cfg, use_kube)
        if why:
            output.warn(why)
    text = pipeline.run(filename, cfg, mode=mode, remove=remove, recursive=recursive, warn=output.warn)
    from meshctl.inject import report

    report.write_manifests(text, fmt, sys.stdout, out)


dataplane_app = typer.Typer(name="dataplane", help="Enrol namespaces in the mesh (ambient or sidecar) and show "
                                                   "which namespaces and pods are in which mode.",
                            no_args_is_help=True)


@dataplane_app.command("enroll")
def dataplane_enroll(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="The namespace to label.", autocompletion=complete_namespace)],
    mode: Annotated[str, typer.Option("--mode", help="ambient, sidecar or none.")] = "ambient",
    revision: Annotated[Optional[str], typer.Option(
        "--revision", "-r", help="With --mode sidecar: label istio.io/rev=<revision> instead of istio-injection.")] = None,
    output_format: DATAPLANE_FORMATS.option() = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Label NAMESPACE for a data-plane mode; list the pods that need a restart to follow it."""
    from meshctl.cli.session import Session
    from meshctl.inject import ambient, report

    session = Session.of(ctx, kubeconfig=kubeconfig, context=context)
    fmt = session.output(report.FORMATS, output_format)
    if mode not in ambient.MODES:
        raise InputError(f"unknown data-plane mode {mode!r}", hint="use --mode ambient, sidecar or none")
    report.write(ambient.enroll(session.kube(), namespace, mode, revision), fmt, session.out, session.err)


@dataplane_app.command("status")
def dataplane_status(
    ctx: typer.Context,
    namespace: Annotated[Optional[str], typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
    output_format: DATAPLANE_FORMATS.option() = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """List namespaces, their data-plane mode and the waypoint they use, and pods whose state differs."""
    from meshctl.cli.session import Session
    from meshctl.inject import report

    session = Session.of(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace)
    fmt = session.output(report.FORMATS, output_format)
    from meshctl.inject import ambient

    report.write(ambient.status(session.kube(), namespace), fmt, session.out, session.err)


def register(app: typer.Typer) -> None:
    app.command("inject")(inject)
    app.add_typer(dataplane_app)

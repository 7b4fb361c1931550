"""The root command: global options, command registration, and the error → exit-code mapping.

Every command module under meshctl.cli defines `register(app)`; this module stays thin.
Command modules load lazily: only the invoked command's module is imported and turned into a
click command (building all 25 commands costs ~60 ms at every start-up otherwise); `--help`
and shell completion load them all.
Errors: MeshctlError prints `error: <message>` (+ `hint: <hint>`) on stderr and exits with its
code; a usage error (bad flag, missing argument) exits 2 with a one-line message; anything else
is a bug, reported in one line (a traceback only with -v) with exit code 70.
"""
from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from meshctl import __version__
from meshctl.cli.common import ContextOpt, KubeconfigOpt, NamespaceOpt, OutputOpt, Settings
from meshctl.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, MeshctlError



def _fail(message: str, hint: str | None, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()
    sys.exit(code)


# top-level command → the module of meshctl.cli that registers it (in help order)
COMMAND_MODULES: dict[str, str] = {
    "install": "lifecycle", "verify-install": "lifecycle", "uninstall": "lifecycle",
    "manifest": "manifest", "profile": "manifest",
    "precheck": "precheck",
    "analyze": "analyze",
    "inject": "inject", "dataplane": "inject",
    "proxy-status": "proxy", "proxy-config": "proxy",
    "canary": "canary",
    "waypoint": "waypoint",
    "local": "local",
    "completion": "completion",
}
_MODULE_GROUPS: dict[str, Any] = {}


def _module_group(module: str):
    """The click group of the commands one module registers (built once)."""
    group = _MODULE_GROUPS.get(module)
    if group is None:
        sub = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False,
                          context_settings={"help_option_names": ["-h", "--help"]})
        sub.callback()(lambda: None)  # a callback makes get_command return a group
        importlib.import_module(f"meshctl.cli.{module}").register(sub)
        group = _MODULE_GROUPS[module] = typer.main.get_command(sub)
        _unwrap_help(group)
    return group


def unwrap(text: str | None) -> str | None:
    """A docstring as help shows it: each paragraph's hard-wrapped lines joined into one (the
    terminal wraps them at its own width), indented blocks (examples) kept as written."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if any(line[:1].isspace() for line in p.splitlines()) or p.startswith("\b")
                        else " ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _unwrap_help(cmd) -> None:
    cmd.help = unwrap(cmd.help)
    for sub in getattr(cmd, "commands", {}).values():
        _unwrap_help(sub)


_VERBOSE = re.compile(r"^-v+$")


def normalize_args(args: list[str]) -> list[str]:
    """kubectl's conventions on the command line: the global flags that take no value (-v, -vv,
    --verbose, --no-color) may come anywhere, also after the command name (they are moved in front
    of it), and a bare --dry-run means --dry-run=client. Nothing after `--` changes."""
    front, rest = [], []
    for i, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in ("--verbose", "--no-color") or _VERBOSE.match(arg):
            front.append(arg)
        else:
            rest.append("--dry-run=client" if arg == "--dry-run" else arg)
    return front + rest


class MeshctlGroup(TyperGroup):
    """A TyperGroup whose main() turns every failure into one line and a documented exit code,
    and whose commands are loaded on first use."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMAND_MODULES)

    def get_command(self, ctx, name: str):
        module = COMMAND_MODULES.get(name)
        if module is None:
            return None
        return _module_group(module).commands.get(name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Typer would turn it into a silent exit 130
            raise MeshctlError("interrupted", exit_code=EXIT_INTERRUPTED) from None

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if args and not name.startswith("-") and name not in COMMAND_MODULES:
            close = difflib.get_close_matches(name, list(COMMAND_MODULES), n=2)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any):
        from click import exceptions as click_exc

        args = normalize_args(list(sys.argv[1:] if args is None else args))

        if "_MESHCTL_COMPLETE" in os.environ:  # a shell asks for completions
            from typer._completion_classes import completion_init

            completion_init()
        try:
            try:
                result = super().main(args=args, prog_name=prog_name or "meshctl",
                                      complete_var=complete_var, standalone_mode=False, **extra)
            except typer.Abort:
                _fail("aborted", None, EXIT_INTERRUPTED)
            code = result if isinstance(result, int) else 0
        except click_exc.NoArgsIsHelpError as e:
            sys.stdout.write(e.ctx.get_help() + "\n")
            code = 0
        except MeshctlError as e:
            _fail(e.message, e.hint, e.exit_code)
        except click_exc.ClickException as e:
            path = getattr(getattr(e, "ctx", None), "command_path", None) or "meshctl"
            message = " ".join(e.format_message().split())
            _fail(message, f"see '{path} --help'", e.exit_code if e.exit_code else EXIT_USAGE)
        except KeyboardInterrupt:
            _fail("interrupted", None, EXIT_INTERRUPTED)
        except BrokenPipeError:
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
            finally:
                sys.exit(0)
        except SystemExit:
            raise
        except Exception as e:  # a bug: still one line unless asked for more
            from meshctl import output

            if output.verbose():
                import traceback

                traceback.print_exc()
            _fail(f"internal error: {type(e).__name__}: {e}",
                  "re-run with -v for the traceback and report it as a bug", EXIT_INTERNAL)
        if standalone_mode:
            sys.exit(code)
        return code


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"meshctl {__version__}\n")
        raise typer.Exit(0)


app = typer.Typer(
    name="meshctl",
    cls=MeshctlGroup,
    help="Install, validate and operate an Envoy service mesh that speaks the Istio API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    output_format: OutputOpt = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="Disable colour (also: NO_COLOR=1; anywhere on the line).")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, metavar="", show_default=False,
                                         help="More detail: -v, -vv (anywhere on the line).")] = 0,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    from meshctl import output

    output.configure(no_color=no_color, verbose=verbose)
    ctx.obj = Settings(kubeconfig=kubeconfig, context=context, namespace=namespace,
                       output=output_format, no_color=no_color, verbose=verbose)

"""`cdcctl`: a thin typer layer. Commands parse, call one service, render; errors exit here."""

from __future__ import annotations

import sys

import typer

from controlplane import __version__
from controlplane.cli.apply import apply
from controlplane.cli.control import register as register_control
from controlplane.cli.output import print_error
from controlplane.cli.stack import app as stack_app
from controlplane.core.errors import CdcError

app = typer.Typer(
    name="cdcctl",
    help="Control plane of the cass-cdc-pg Cassandra -> PostgreSQL CDC pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(stack_app, name="stack")
app.add_typer(__import__("controlplane.cli.verify", fromlist=["app"]).app, name="verify")
app.add_typer(__import__("controlplane.cli.schema", fromlist=["app"]).app, name="schema")
app.add_typer(__import__("controlplane.cli.dlq", fromlist=["app"]).app, name="dlq")
app.add_typer(__import__("controlplane.cli.agent", fromlist=["app"]).app, name="agent")
app.command()(apply)
register_control(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cdcctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Control plane of the cass-cdc-pg Cassandra -> PostgreSQL CDC pipeline."""


def main() -> None:
    """Run the app; turn every `CdcError` into one red line, a hint and its exit code."""
    try:
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except CdcError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Usage errors (unknown option, missing argument) arrive here in non-standalone mode as
        # click exceptions; typer >= 0.20 vendors click, so match them by shape, not by class.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise

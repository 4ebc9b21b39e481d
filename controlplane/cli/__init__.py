"""`cdcctl`: a thin typer layer. Commands parse, call one service, render; errors exit here."""

from __future__ import annotations

import os
import sys

import typer

from controlplane import __version__
from controlplane.adapters import tracing
from controlplane.cli import agent, cdc_raw, crash, dlq, logs, schema, serve, verify
from controlplane.cli.apply import apply
from controlplane.cli.base import Typer
from controlplane.cli.control import register as register_control
from controlplane.cli.output import print_error, print_usage_error
from controlplane.cli.stack import app as stack_app
from controlplane.core.errors import CdcError

app = Typer(
    name="cdcctl",
    help="Control plane of the cass-cdc-pg Cassandra -> PostgreSQL CDC pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(stack_app, name="stack")
app.add_typer(verify.app, name="verify")
app.add_typer(schema.app, name="schema")
app.add_typer(dlq.app, name="dlq")
app.add_typer(agent.app, name="agent")
app.add_typer(cdc_raw.app, name="cdc-raw")
app.command()(apply)
register_control(app)
app.command()(serve.serve)
# The name the product was announced with: the same command as `dlq replay`, listed in the help.
app.command(
    "replay-dlq", epilog="The same command as `cdcctl dlq replay` (the name it was announced with)."
)(dlq.replay)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cdcctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    log_format: logs.LogFormat | None = typer.Option(
        None,
        "--log-format",
        envvar="CDCCTL_LOG_FORMAT",
        case_sensitive=False,
        help="Log lines on stderr as json (one object per line) or text. Default: text when "
        "stderr is a terminal, json otherwise. Asked for, json makes every stderr line JSON: "
        "notes and errors become log records too.",
    ),
    log_level: logs.LogLevel = typer.Option(
        logs.LogLevel.info,
        "--log-level",
        envvar="CDCCTL_LOG_LEVEL",
        case_sensitive=False,
        help="The least severe level logged. debug adds each command's start and end (with its "
        "exit code) and the libraries' own logs. Every line carries run_id (random, or "
        f"${logs.RUN_ID_ENV}) and command; secrets are masked.",
    ),
) -> None:
    """Control plane of the cass-cdc-pg Cassandra -> PostgreSQL CDC pipeline."""
    asked = log_format is not None
    if log_format is None:
        log_format = logs.LogFormat.text if sys.stderr.isatty() else logs.LogFormat.json
    run = os.environ.get(logs.RUN_ID_ENV) or logs.new_run_id()
    logs.configure(log_format, log_level, run, asked=asked)
    # Spans over OTLP when $OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set; off
    # otherwise (decision 0122). `cdcctl stack env` exports the local stack's Jaeger.
    tracing.configure(run)


def main() -> None:
    """Run the app; turn every `CdcError` into one red line, a hint and its exit code. Anything
    else is a bug: one line, the path of a crash log holding the traceback, exit 70
    (`cli.crash`); a traceback never reaches the terminal. The run's spans are exported before
    the process ends (when tracing is on)."""
    try:
        _run()
    finally:
        tracing.shutdown()


def _run() -> None:
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
            print_usage_error(exc)
            sys.exit(code)
        error = crash.internal_error(exc, logs.current_run_id(), sys.argv)
        print_error(error)
        sys.exit(error.exit_code)

"""Rendering for every command: rich tables for people, JSON/YAML for machines; on stderr, notes
and errors for the person running it, which become log records when JSON logs were asked for
(`note`, `print_error`: then every stderr line is one JSON object, decision 0112).

Rich reads ``[...]`` in a string as markup: text that comes from users or components (a file
name, a pipeline called ``[/]``, an error message quoting either) is escaped or passed as `Text`
here, so it prints as it is and never raises a MarkupError (decision 0090)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from controlplane.cli import logs
from controlplane.core.errors import CdcError
from controlplane.core.redaction import redact_text

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OUTPUT_OPTION = typer.Option(
    OutputFormat.table, "--output", "-o", help="Output format: table, json or yaml."
)


def note(event: str, text: str | Text, *, level: str = "info", **fields: Any) -> None:
    """Tell the person running the command what it does or found, on stderr: `text` as written
    (a `Text` keeps its style; a str is never read as markup), or, when JSON logs were asked
    for, a log record `event` at `level` with `fields` and the text as ``message``."""
    if logs.stderr_is_json():
        _record(level, event, message=text.plain if isinstance(text, Text) else text, **fields)
        return
    err_console.print(text, highlight=False, markup=False)


def serve_until_signalled(what: str, url: str) -> None:
    """Say that `what` is served on `url`, then block until SIGTERM or SIGINT (a serving command's
    foreground life; the caller closes its servers after this returns)."""
    note("serving", f"serving {what} on {url}", url=url)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def note_scrape_failure(exc: Exception) -> None:
    """A metrics scrape that failed while serving: one red line (or an error record); the
    server keeps answering."""
    line = Text.assemble(("scrape failed:", "bold red"), f" {exc}")
    note("scrape_failed", line, level="error", error=str(exc))


def print_error(exc: CdcError) -> None:
    """The error a command ended with: a red line and a hint, or one ``error`` log record (with
    ``exit_code``) when JSON logs were asked for. Secrets this run resolved are masked."""
    message, hint = redact_text(exc.message), redact_text(exc.hint) if exc.hint else None
    if logs.stderr_is_json():
        _record("error", "error", message=message, hint=hint, exit_code=exc.exit_code)
        return
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if hint:
        err_console.print(f"[yellow]hint:[/] {escape(hint)}", highlight=False)


def print_usage_error(exc: Any) -> None:
    """A usage error (click's, by shape: `show`, `format_message`, `exit_code`) as click shows it,
    or one ``usage_error`` log record when JSON logs were asked for."""
    if not logs.stderr_is_json():
        exc.show()
        return
    ctx = getattr(exc, "ctx", None)
    _record(
        "error",
        "usage_error",
        message=exc.format_message(),
        usage=ctx.get_usage() if ctx is not None else None,
        hint=f"{ctx.command_path} --help" if ctx is not None else "cdcctl --help",
        exit_code=exc.exit_code,
    )


def _record(level: str, event: str, **fields: Any) -> None:
    import structlog

    getattr(structlog.get_logger("cdcctl"), level)(event, **fields)


def emit(
    data: Any,
    fmt: OutputFormat,
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Print `data` (a list of row mappings, or one mapping) in the chosen format."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    if fmt is OutputFormat.yaml:
        typer.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
        return
    rows: Sequence[Mapping[str, Any]] = [data] if isinstance(data, Mapping) else data
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=None if title is None else Text(title))
    for col in cols:
        table.add_column(Text(col.upper()))
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    console.print(table)


def _cell(value: Any) -> Text:
    """A table cell: a `Text` as given (its style kept: a FAILED state in red), else the value
    as plain text (never markup)."""
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def alarm(value: Any) -> Text:
    """A value that must not be missed (a FAILED state): bold red in tables."""
    return Text("" if value is None else str(value), style="bold red")

"""Rendering for every command: rich tables for people, JSON/YAML for machines.

Rich reads ``[...]`` in a string as markup: text that comes from users or components (a file
name, a pipeline called ``[/]``, an error message quoting either) is escaped or passed as `Text`
here, so it prints as it is and never raises a MarkupError (decision 0090)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from controlplane.core.errors import CdcError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OUTPUT_OPTION = typer.Option(
    OutputFormat.table, "--output", "-o", help="Output format: table, json or yaml."
)


def print_error(exc: CdcError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False)


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

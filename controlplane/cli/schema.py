"""`cdcctl schema plan|apply -f MANIFEST`: Cassandra schema changes carried to PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli.apply import FILES
from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit
from controlplane.cli.stack import STATE_DIR

app = typer.Typer(help="Carry Cassandra schema changes (ADD/DROP column, new table) to PostgreSQL.")
COLUMNS = ["pipeline", "table", "action", "columns", "result"]


@app.command("plan")
def plan(filename: list[str] = FILES, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Per table: create, alter (+added -dropped columns), incompatible (~changed) or unchanged."""
    from controlplane.services.schema import plan_schema_files

    emit([c.as_row() for c in plan_schema_files(filename)], output, columns=COLUMNS)


@app.command("apply")
def apply(
    filename: list[str] = FILES,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Migrate each changed table in one transaction, then apply the pipelines."""
    from controlplane.services.schema import apply_schema
    from controlplane.services.stack import LocalStack, settings_for

    changes = apply_schema(filename, LocalStack(settings_for(state_dir)))
    emit([c.as_row() for c in changes], output, columns=COLUMNS)

"""`cdcctl schema plan|apply -f MANIFEST`: Cassandra schema changes carried to PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli.apply import FILES
from controlplane.cli.base import Typer
from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit
from controlplane.cli.targeting import CONNECT_URL, CONTEXT, STATE_DIR, resolve

app = Typer(help="Carry Cassandra schema changes (ADD/DROP column, new table) to PostgreSQL.")
COLUMNS = ["pipeline", "table", "action", "columns", "result", "reason"]

REBUILD = typer.Option(
    [],
    "--rebuild",
    metavar="TABLE",
    help="Drop the PostgreSQL tables of this stopped table (KEYSPACE.TABLE or TABLE) and recreate "
    "them with the new schema; its waiting events then arrive. Repeatable.",
)
YES = typer.Option(False, "--yes", "-y", help="Do not ask before --rebuild drops tables.")


@app.command("plan")
def plan(
    filename: list[str] = FILES,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Per table: create, alter (+added -dropped columns), incompatible (~changed type or primary
    key: apply stops that table) or unchanged."""
    from controlplane.services.schema import plan_schema_files

    target = resolve(context, None, state_dir)
    emit([c.as_row() for c in plan_schema_files(filename, target)], output, columns=COLUMNS)


@app.command("apply")
def apply(
    filename: list[str] = FILES,
    rebuild: list[str] = REBUILD,
    yes: bool = YES,
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Migrate each changed table in one transaction, then apply the pipelines. A table changed
    incompatibly is stopped, the rest goes ahead, and the command exits 7. A `writer: lww` sink is
    stopped around its tables' migration and resumed with the regenerated SQL."""
    from controlplane.services.schema import apply_schema
    from controlplane.services.targets import managed_agents

    if rebuild and not yes:
        typer.confirm(
            f"Drop the PostgreSQL tables of {', '.join(rebuild)} and rebuild them from the "
            "events waiting in Kafka?",
            abort=True,
            err=True,  # stdout is the command's output (-o json)
        )
    target = resolve(context, connect_url, state_dir)
    changes = apply_schema(filename, target, agents=managed_agents(target), rebuild=rebuild)
    emit([c.as_row() for c in changes], output, columns=COLUMNS)

"""`cdcctl apply -f FILE|DIR|-`: deploy pipelines from manifests."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console

from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit
from controlplane.cli.stack import STATE_DIR
from controlplane.services.apply import apply_manifests
from controlplane.services.stack import LocalStack, settings_for

err = Console(stderr=True, soft_wrap=True)

FILES = typer.Option(
    ..., "--filename", "-f", help="Manifest file, directory of *.yaml, or - for stdin (repeatable)."
)


def apply(
    filename: list[str] = FILES,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create the PostgreSQL tables, register the JDBC sink and configure the agent so the
    pipelines run as their manifests say. Only what differs is changed: a second apply is a
    no-op."""
    stack = LocalStack(settings_for(state_dir))
    result = apply_manifests(filename, stack, report=lambda m: err.print(f"[cyan]apply[/] {m}"))
    emit(
        [asdict(c) for c in result.changes],
        output,
        columns=["pipeline", "kind", "name", "action"],
        title="applied" if result.changed else "no changes",
    )

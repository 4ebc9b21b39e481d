"""`cdcctl dlq ls|show|replay`: the records the sink could not write, and their replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from controlplane.cli.apply import FILES
from controlplane.cli.base import Typer
from controlplane.cli.logs import stderr_is_json
from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit, err_console, note
from controlplane.cli.targeting import CONTEXT, STATE_DIR, resolve

app = Typer(
    help="Dead-letter queues: list, show and replay the records the sink could not write.",
    no_args_is_help=True,
)

PIPELINE = typer.Option(None, "--pipeline", "-p", help="Only this pipeline (by metadata.name).")
TIMEOUT = typer.Option(
    30.0, "--timeout", min=1, help="Seconds to read each DLQ up to its end before giving up."
)
LS_COLUMNS = [
    "pipeline",
    "partition",
    "offset",
    "timestamp",
    "from",
    "stage",
    "exception",
    "message",
    "replay_of",
    "replayed",
]
REPLAY_COLUMNS = ["pipeline", "partition", "offset", "action", "to", "reason"]
# A bar for a handful of records is noise.
_BAR_FROM = 100


@app.command("ls")
def ls(
    filename: list[str] = FILES,
    pipeline: str | None = PIPELINE,
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=0, help="Only the newest N records of each pipeline."
    ),
    timeout: float = TIMEOUT,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List each pipeline's DLQ records, read without committing anything.

    Per record: DLQ partition/offset, time, the original topic/partition/offset, stage and
    exception from Connect's __connect.errors.* headers, the cdcctl.replay.of marker of a
    replayed record that failed again, and whether `dlq replay` went past it."""
    from controlplane.services import dlq as svc

    rows = svc.list_records(
        svc.sources(filename, resolve(context, None, state_dir), pipeline),
        limit=limit,
        timeout=timeout,
    )
    if output is not OutputFormat.table:
        emit(rows, output)
        return
    # A terminal is narrow: the original coordinates in one cell, short class names.
    table = [
        r
        | {
            "from": f"{r['topic']}/{r['topic_partition']}/{r['topic_offset']}"
            if r["topic"]
            else "",
            "exception": (r["exception"] or "").rpartition(".")[2],
            "message": _short(r["message"]),
        }
        for r in rows
    ]
    emit(table, output, columns=LS_COLUMNS)


@app.command("show")
def show(
    coordinates: str = typer.Argument(..., metavar="PARTITION:OFFSET", help="e.g. 0:42"),
    filename: list[str] = FILES,
    pipeline: str | None = PIPELINE,
    timeout: float = TIMEOUT,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show one DLQ record in full.

    Key and value (decoded JSON, else base64), every header, the stack trace."""
    from controlplane.services import dlq as svc

    record = svc.show_record(
        svc.one_source(filename, resolve(context, None, state_dir), pipeline),
        coordinates,
        timeout=timeout,
    )
    if output is not OutputFormat.table:
        emit(record, output)
        return
    trace = record.pop("stacktrace")
    headers = record.pop("headers")
    emit([{"field": k, "value": _json(v)} for k, v in record.items()], output)
    emit(headers, output, columns=["key", "value"], title="headers")
    if trace:
        note("dlq_record_stacktrace", trace, stacktrace=trace)


@app.command("replay")
def replay(
    filename: list[str] = FILES,
    pipeline: str | None = PIPELINE,
    offsets: list[str] = typer.Option(
        [],
        "--offset",
        metavar="PARTITION:OFFSET",
        help="Replay exactly these records (repeatable; also failed replays); the replay group "
        "is not moved.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be replayed, send nothing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before sending."),
    timeout: float = TIMEOUT,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Send DLQ records back to their original topics; a second replay sends nothing again.

    Key and value unchanged, to the original partition, without the __connect.errors.*
    headers, with cdcctl.replay.of=<dlq>/<partition>/<offset>. Progress is the consumer group
    cdcctl-dlq-replay-<pipeline>, committed after Kafka acknowledged every record. A replayed
    record that fails again comes back to the DLQ and is skipped by later replays unless
    named with --offset."""
    from controlplane.services import dlq as svc

    planned = svc.plan_replays(
        svc.sources(filename, resolve(context, None, state_dir), pipeline), offsets, timeout=timeout
    )
    total = sum(len(p.plan.messages) for p in planned)
    if dry_run:
        emit(svc.replay_rows(planned, done=False), output, columns=REPLAY_COLUMNS)
        return
    if total and not yes:
        typer.confirm(svc.replay_question(planned), abort=True, err=True)
    progress = Progress(
        TextColumn("[cyan]replay[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=total < _BAR_FROM or output is not OutputFormat.table or stderr_is_json(),
    )
    with progress:
        task = progress.add_task("replay", total=total)
        svc.execute_replays(planned, on_delivered=lambda n: progress.update(task, completed=n))
    rows = svc.replay_rows(planned, done=True)
    emit(rows, output, columns=REPLAY_COLUMNS)
    skipped = sum(1 for r in rows if r["action"] == "skipped")
    if skipped and output is OutputFormat.table:
        note(
            "dlq_records_skipped",
            Text(f"{skipped} record(s) skipped; they stay in the DLQ (see REASON)", "yellow"),
            level="warning",
            skipped=skipped,
        )


def _short(text: Any, width: int = 80) -> Any:
    if not isinstance(text, str) or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def _json(value: Any) -> str:
    import json

    if value is None or isinstance(value, str | int | bool):
        return "" if value is None else str(value)
    return json.dumps(value, default=str)

"""`cdcctl verify`: compare PostgreSQL with Cassandra; `verify runs`, `verify show RUN`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from controlplane.cli.base import Typer
from controlplane.cli.logs import stderr_is_json
from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit, err_console, note
from controlplane.cli.targeting import CONTEXT, STATE_DIR, redis, resolve
from controlplane.core.errors import UsageError
from controlplane.core.read_retry import CONSISTENCY_LEVELS, DEFAULT_CONSISTENCY, RetryPolicy
from controlplane.core.target import RedisEndpoint

app = Typer(
    no_args_is_help=False,
    invoke_without_command=True,
)

REDIS = typer.Option(
    None, "--redis-url", help="Checkpoint store (env CDC_REDIS_URL, else redis://127.0.0.1:6379/0)."
)


def _redis(url: str | None) -> RedisEndpoint:
    """--redis-url, else $CDC_REDIS_URL, else the current target's Redis (the local stack's by
    default), with the target's ACL password and CA (decision 0110)."""
    return redis(resolve(None, None, None), url or os.environ.get("CDC_REDIS_URL"))


class _Bar:
    """A rich progress bar fed by the service's progress events."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[cyan]verify[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[rows]:,} rows  {task.fields[rate]:,.0f} rows/s  "
                "{task.fields[retries]} retries  {task.fields[failed]} not verified"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not enabled,
        )
        self.task: TaskID | None = None
        self.rows = 0
        self.retries = 0
        self.failed = 0

    def __call__(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "build":
            note(
                "verify_tokens",
                _line("cyan", f"computing partition tokens of {data['table']}"),
                table=data["table"],
            )
        elif kind == "start":
            # The consistency level is shown where the run is named: on stderr even without a
            # bar (-o json, --no-progress), so a log of the run says how it read.
            note(
                "verify_started",
                _line("cyan", f"run {data['run']}: reading Cassandra at {data['consistency']}"),
                run=data["run"],
                consistency=data["consistency"],
                ranges=data["total"],
                done=data["done"],
            )
            self.progress.start()
            self.task = self.progress.add_task(
                escape(f"{data['run']} @ {data['consistency']}"),  # a description is markup
                total=data["total"],
                completed=data["done"],
                rows=0,
                rate=0.0,
                retries=0,
                failed=0,
            )
        elif kind == "retry":
            self.retries += 1
            note(
                "verify_retry",
                _line(
                    "yellow",
                    f"range {data['task']}: {data['kind']} on "
                    f"{data['host'] or 'the driver-chosen node'}, attempt {data['attempt']} on "
                    f"{data['next'] or 'the driver-chosen node'} in {data['delay_s']:.1f}s",
                ),
                level="warning",
                range=data["task"],
                kind=data["kind"],
                host=data["host"],
                attempt=data["attempt"],
                next_host=data["next"],
                delay_s=data["delay_s"],
            )
            if self.task is not None:
                self.progress.update(self.task, retries=self.retries)
        elif kind == "range" and self.task is not None:
            self.rows += int(data.get("rows", 0))
            if data.get("status") == "FAIL":
                self.failed += 1
                note(
                    "verify_range_not_verified",
                    _line(
                        "red",
                        f"range {data['task']} NOT VERIFIED after {data.get('retries', 0)} "
                        f"retries: {data.get('error')}",
                    ),
                    level="error",
                    range=data["task"],
                    retries=data.get("retries", 0),
                    error=data.get("error"),
                )
            elapsed = self.progress.tasks[0].elapsed or 0.0
            rate = self.rows / elapsed if elapsed else 0.0
            self.progress.update(
                self.task, advance=1, rows=self.rows, rate=rate, failed=self.failed
            )

    def stop(self) -> None:
        self.progress.stop()


def _line(style: str, text: str) -> Text:
    """A note of verify's: ``verify`` in `style`, then `text` as written (never markup)."""
    return Text.assemble(("verify", style), f" {text}")


@app.callback()
def verify(
    ctx: typer.Context,
    filename: list[str] = typer.Option(
        None,
        "--filename",
        "-f",
        metavar="FILE",
        help="The pipeline's manifest (file, or - for stdin).",
    ),
    table: str | None = typer.Option(None, "--table", help="Verify only this table."),
    ranges: int | None = typer.Option(
        None, "--ranges", min=1, help="Token ranges (default 8 x cores, aligned to the ring)."
    ),
    workers: int = typer.Option(0, "--workers", min=0, help="Parallel ranges (0: 2 x cores)."),
    repair: bool = typer.Option(
        False, "--repair", help="Write Cassandra's values through the LWW gate."
    ),
    delete_extra: bool = typer.Option(
        False, "--delete-extra", help="With --repair: tombstone rows only PostgreSQL has."
    ),
    resume: str | None = typer.Option(
        None, "--resume", help="Continue run RUN: redo only its unfinished ranges."
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Name the run; processes given the same name share its ranges."
    ),
    diff_file: Path | None = typer.Option(
        None, "--diff-file", help="JSONL of differences (default verify-RUN.jsonl)."
    ),
    lag: float = typer.Option(
        5.0, "--lag", min=0, help="Seconds to wait before re-checking a differing row."
    ),
    lease_ttl_ms: int = typer.Option(
        30_000, "--lease-ttl-ms", min=1000, help="Lease of a range; a dead process's expires."
    ),
    pause_ms: int = typer.Option(
        0, "--pause-ms", min=0, help="Pause after each range (throttles the load on Cassandra)."
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Serve Prometheus metrics on this port while running."
    ),
    consistency: str | None = typer.Option(
        None,
        "--consistency",
        metavar="LEVEL",
        help=f"Consistency level of Cassandra reads: {', '.join(CONSISTENCY_LEVELS)} (default "
        f"{DEFAULT_CONSISTENCY}; with --resume: the run's).",
    ),
    read_retries: int = typer.Option(
        RetryPolicy().retries,
        "--read-retries",
        min=0,
        help="Attempts of a range after a failed read, each on the next replica with backoff; "
        "then the range is not verified (exit 8).",
    ),
    keep_days: float = typer.Option(
        30.0, "--keep-days", min=0.001, help="Keep the run in Redis this long after its last write."
    ),
    redis_url: str | None = REDIS,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Prove PostgreSQL matches Cassandra: every row of the pipeline's tables compared with
    PostgreSQL's live views, token ranges in parallel, checkpoints in Redis.

    Exit code 6 while differences remain (missing, extra or mismatched rows); 8 when token
    ranges could not be read (not verified, not differences: resume the run). The runs are kept
    in Redis: `verify runs` lists them, `verify show RUN` shows one."""
    if ctx.invoked_subcommand is not None:
        return
    from controlplane.services import verify as svc  # imported here: keeps `--help` fast

    if not filename:
        raise UsageError("verify needs the pipeline's manifest", hint="cdcctl verify -f FILE")
    if consistency is not None:
        from controlplane.core.read_retry import parse_consistency

        consistency = parse_consistency(consistency)  # exit 2 before anything connects
    if metrics_port:
        svc.serve_metrics(metrics_port)
    target = resolve(context, None, state_dir)
    opts = svc.VerifyOptions(
        manifests=filename,
        target=target,
        redis_url=redis(target, redis_url or os.environ.get("CDC_REDIS_URL")),
        keep_s=max(1, round(keep_days * 86400)),
        table=table,
        ranges=ranges,
        workers=workers,
        repair=repair,
        delete_extra=delete_extra,
        resume=resume,
        run_id=run_id,
        diff_file=diff_file,
        lag_s=lag,
        lease_ttl_ms=lease_ttl_ms,
        pause_ms=pause_ms,
        consistency=consistency,
        read_retries=read_retries,
    )
    bar = _Bar(progress and output is OutputFormat.table and not stderr_is_json())
    try:
        summary = svc.run_verify(opts, progress=bar)
    finally:
        bar.stop()
    _emit(summary.as_dict(), output)
    from controlplane.core.verify_report import check

    check(summary)  # exit 8 with ranges not verified, else 6 while differences remain


def _emit(data: dict[str, Any], output: OutputFormat) -> None:
    if output is not OutputFormat.table:
        emit(data, output)
        return
    rows = [{"counter": k, "value": v} for k, v in data["counters"].items()]
    rows += [{"counter": f"ranges {k}", "value": v} for k, v in data["range_status"].items()]
    rows.append({"counter": "ranges not verified", "value": data.get("not_verified_ranges", 0)})
    cl = data.get("consistency", DEFAULT_CONSISTENCY)
    emit(
        rows,
        output,
        columns=["counter", "value"],
        title=f"verify {data['run']}: {data['status']} (read at {cl})",
    )


@app.command("runs")
def runs(
    redis_url: str | None = REDIS,
    limit: int = typer.Option(50, "--limit", min=1, help="Newest runs to list."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List verify runs (newest first) with status and counters."""
    from controlplane.services import verify as svc

    data = svc.list_runs(_redis(redis_url), limit)
    if output is not OutputFormat.table:
        emit(data, output)
        return
    rows = [
        {
            "run": d["run"],
            "status": d["status"],
            "tables": ",".join(d["tables"]),
            "ranges": d["ranges"],
            "consistency": d.get("consistency"),
            "read": d["counters"]["read"],
            "remaining": d["remaining_differences"],
        }
        for d in data
    ]
    emit(
        rows,
        output,
        columns=["run", "status", "tables", "ranges", "consistency", "read", "remaining"],
    )


@app.command("show")
def show(
    run: str = typer.Argument(..., help="Run id (see `cdcctl verify runs`)."),
    redis_url: str | None = REDIS,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """One run: its counters and every range's status."""
    from controlplane.services import verify as svc

    summary, ranges = svc.show_run(_redis(redis_url), run)
    if output is not OutputFormat.table:
        emit({**summary, "range_details": ranges}, output)
        return
    _emit(summary, output)
    not_passed = [r for r in ranges if r.get("status") != "PASS"]
    if not_passed:
        emit(
            not_passed,
            output,
            columns=[
                "task",
                "status",
                "read",
                "missing",
                "mismatch",
                "extra",
                "retries",
                "error_kind",
                "error_message",
            ],
            title="ranges not passed",
        )

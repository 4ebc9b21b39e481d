"""The plan of a verify run (docs/verify.md): the options and the one pipeline it checks, its
tasks — one per (table, token range), named ``<table>:<index>`` — the metadata it records in
Redis when created, what a process resuming or joining it takes from that metadata, which tasks
are left to do, and which of its differences a repair writes. Pure: the ranges, tables, records
and options are passed in; the service (services.verify) stores the plan and works through it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from controlplane.core.errors import UsageError
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import STDIN, LoadedManifest
from controlplane.core.read_retry import parse_consistency
from controlplane.core.schema_model import TableModel
from controlplane.core.token_ranges import TokenRange
from controlplane.core.verify_report import FINAL


def check_options(*, repair: bool, delete_extra: bool) -> None:
    """``--delete-extra`` only goes with ``--repair``."""
    if delete_extra and not repair:
        raise UsageError("--delete-extra only goes with --repair")


def one_pipeline(loaded: Sequence[LoadedManifest], cwd: Path) -> tuple[Pipeline, Path]:
    """The one pipeline a run verifies, and the directory its manifest's relative paths are
    read from: the manifest file's, or ``cwd`` for one read from standard input."""
    if len(loaded) != 1:
        raise UsageError(
            f"verify takes one pipeline, the manifests hold {len(loaded)}",
            hint="pass the one manifest of the pipeline to verify",
        )
    item = loaded[0]
    base = cwd if item.source in ("-", STDIN) else Path(item.source).parent
    return item.pipeline, base


def check_table(table: str | None, pipeline: Pipeline) -> None:
    """``--table``, when given, names a table of the pipeline."""
    if table and table not in pipeline.tables:
        raise UsageError(f"table {table} is not in pipeline {pipeline.name}")


def verified_models(
    models: Iterable[TableModel], pipeline: Pipeline, table: str | None
) -> list[TableModel]:
    """The tables a run verifies: the pipeline's users' tables — not the heartbeat table the
    pipeline carries (decision 0120) — or only ``table`` when given."""
    return [m for m in models if m.table in pipeline.tables and table in (None, m.table)]


def task_name(table: str, index: int) -> str:
    """``orders``, 17 -> ``orders:00017`` (zero-padded: the names sort in range order)."""
    return f"{table}:{index:05d}"


def task_table(task: str) -> str:
    """``orders:00017`` -> ``orders``."""
    return task.rpartition(":")[0]


def task_index(task: str) -> int:
    """``orders:00017`` -> 17 (0 for a name without a numeric tail): spreads consecutive
    ranges over the replicas."""
    tail = task.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def plan_tasks(tables: Iterable[str], ranges: Sequence[TokenRange]) -> dict[str, dict[str, Any]]:
    """Every (table, range) of a new run as its Redis record: table and bounds, by task name."""
    return {
        task_name(table, i): {"table": table, "start": r.start, "end": r.end}
        for table in tables
        for i, r in enumerate(ranges)
    }


def run_meta(
    *,
    pipeline: str,
    keyspace: str,
    tables: Iterable[str],
    range_count: int,
    repair: bool,
    delete_extra: bool,
    started_by: str,
    diff_file: str | None,
    consistency: str,
) -> dict[str, Any]:
    """The metadata a new run records (and a process that joins or resumes it reads)."""
    return {
        "pipeline": pipeline,
        "keyspace": keyspace,
        "tables": sorted(tables),
        "ranges": range_count,
        "repair": repair,
        "delete_extra": delete_extra,
        "started_by": started_by,
        "diff_file": diff_file,
        "consistency": consistency,
    }


def to_repair(kinds: Sequence[str], *, delete_extra: bool) -> list[int]:
    """Positions of the settled differences (kinds ``missing``, ``mismatch``, ``extra``) a
    repair writes: all but extra rows, which only ``--delete-extra`` deletes."""
    return [i for i, kind in enumerate(kinds) if kind != "extra" or delete_extra]


def resumed_tables(
    run_id: str, meta: Mapping[str, Any] | None, pipeline: str, tables: Iterable[str]
) -> list[str]:
    """Resuming run ``run_id`` (``meta``: its metadata, None when not in Redis): which of this
    manifest's ``tables`` it verifies. UsageError for a run that does not exist, verifies
    another pipeline, or none of these tables."""
    if meta is None:
        raise UsageError(
            f"no verify run {run_id} in Redis",
            hint="list runs with `cdcctl verify runs`",
        )
    if meta.get("pipeline") != pipeline:
        raise UsageError(f"run {run_id} verifies pipeline {meta.get('pipeline')}, not {pipeline}")
    kept = [t for t in tables if t in meta["tables"]]
    if not kept:
        raise UsageError(f"run {run_id}: none of its tables are in this manifest")
    return kept


def joined_meta(run_id: str, meta: Mapping[str, Any], pipeline: str) -> bool:
    """Joining run ``run_id`` another process is creating: True once its metadata is complete
    (the creator writes it right after the run's key); UsageError when it verifies another
    pipeline."""
    if "tables" not in meta:
        return False
    if meta.get("pipeline") != pipeline:
        raise UsageError(f"run {run_id} belongs to pipeline {meta.get('pipeline')}")
    return True


def run_consistency(option: str | None, recorded: str | None, current: str) -> tuple[str, bool]:
    """Resuming or joining a run: the level to read at, and whether the run's record of it
    changes. Without ``--consistency`` (``option`` None) the run's ``recorded`` level (the
    default when it has none); with it, ``current`` (the option parsed), recorded as the
    run's when it differs — the run records the level of its latest process."""
    if option is None:
        return parse_consistency(recorded or None), False
    return current, recorded != current


def open_tasks(
    records: Mapping[str, Mapping[str, Any]], tables: Iterable[str]
) -> tuple[list[str], list[str]]:
    """A process's tasks of a run (``records``: task -> record): those of its ``tables``, and
    of those the ones not read to their end yet (not PASS or DIFF), both in record order."""
    names = set(tables)
    mine = [k for k in records if task_table(k) in names]
    todo = [k for k in mine if records[k].get("status") not in FINAL]
    return mine, todo


def skip_task(status: str | None, failed_here: bool) -> bool:
    """A task a worker passes over: read to its end (by any process), or FAIL in this process
    (``failed_here``: not retaken by the run that failed it; ``--resume`` reads it again)."""
    return status in FINAL or (status == "FAIL" and failed_here)

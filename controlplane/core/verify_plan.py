"""The plan of a verify run (docs/verify.md): its tasks — one per (table, token range), named
``<table>:<index>`` — the metadata it records in Redis when created, and which of its
differences a repair writes. Pure: the ranges, tables and options are passed in; the service
(services.verify) stores the plan and works through it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from controlplane.core.token_ranges import TokenRange


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

"""core.verify_plan: a run's tasks, metadata and repair selection, without a server."""

from __future__ import annotations

import itertools

import pytest

from controlplane.core.token_ranges import MAX_TOKEN, MIN_TOKEN, TokenRange, split_ring
from controlplane.core.verify_plan import (
    plan_tasks,
    run_meta,
    task_index,
    task_name,
    task_table,
    to_repair,
)


def test_task_names_sort_in_range_order_and_parse_back() -> None:
    names = [task_name("orders", i) for i in (0, 7, 10, 123)]
    assert names == ["orders:00000", "orders:00007", "orders:00010", "orders:00123"]
    assert names == sorted(names)
    assert [task_table(n) for n in names] == ["orders"] * 4
    assert [task_index(n) for n in names] == [0, 7, 10, 123]


@pytest.mark.parametrize("name", ["orders", "orders:", "orders:x1"])
def test_task_index_without_a_numeric_tail_is_zero(name: str) -> None:
    assert task_index(name) == 0


def test_plan_covers_every_range_of_every_table_once() -> None:
    ranges = split_ring(8)
    tasks = plan_tasks(["a", "b"], ranges)
    assert len(tasks) == 16
    for table in ("a", "b"):
        mine = sorted((k, v) for k, v in tasks.items() if task_table(k) == table)
        assert [v["table"] for _, v in mine] == [table] * 8
        bounds = [TokenRange(v["start"], v["end"]) for _, v in mine]
        assert bounds == ranges  # in ring order, contiguous from MIN_TOKEN to MAX_TOKEN
        assert bounds[0].start == MIN_TOKEN
        assert bounds[-1].end == MAX_TOKEN
        assert all(x.end == y.start for x, y in itertools.pairwise(bounds))


def test_run_meta_records_the_options_and_sorted_tables() -> None:
    meta = run_meta(
        pipeline="p",
        keyspace="ks",
        tables={"z": 1, "a": 2},
        range_count=32,
        repair=True,
        delete_extra=False,
        started_by="host:1:ab",
        diff_file=None,
        consistency="LOCAL_QUORUM",
    )
    assert meta == {
        "pipeline": "p",
        "keyspace": "ks",
        "tables": ["a", "z"],
        "ranges": 32,
        "repair": True,
        "delete_extra": False,
        "started_by": "host:1:ab",
        "diff_file": None,
        "consistency": "LOCAL_QUORUM",
    }


def test_repair_writes_extra_rows_only_with_delete_extra() -> None:
    kinds = ["missing", "extra", "mismatch", "extra"]
    assert to_repair(kinds, delete_extra=False) == [0, 2]
    assert to_repair(kinds, delete_extra=True) == [0, 1, 2, 3]
    assert to_repair([], delete_extra=True) == []

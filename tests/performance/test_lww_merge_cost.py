"""PostgreSQL's cost of the own sink's set-based LWW merge (core.ddl.generate_merge, decision
0126), on PostgreSQL alone: no Kafka, no Connect, so the figure is the merge's and nothing else's.

The generated SQL is driven exactly as transforms/lww-sink's PgApplier drives it (the staging
table created once per session; per batch ``lock_sql``, one REPEATABLE READ transaction of COPY +
``prepare_sql`` + ``merge_sql``, commit, ``unlock_sql``), with batches shaped like
tests/performance/test_sink_writers.py's events: table (pk int, ck int, a text, b bigint, c uuid),
70 % updates of one or two columns, 20 % inserts, 10 % row deletes over 100,000 keys, write times
increasing with jitter (so they arrive out of order), into an empty table. The COPY text of every
batch is encoded before the clock starts, so the client costs next to nothing.

Printed: events/s, the sink backend's CPU per event (utime + stime of pg_backend_pid() from
/proc, as test_sink_writers.py reads PostgreSQL's CPU) for the whole run and for its second half
(most keys exist by then: updates of stored rows), a digest of the final raw state (data and
gate columns; equal digests = the same result, whatever the SQL's shape) and EXPLAIN (ANALYZE,
BUFFERS) of one more 2,000-event batch. Figures only, no timed assertion (decision 0137).

    CDC_STACK_DIR=$PWD/.stack python -m pytest tests/performance/test_lww_merge_cost.py \\
        -m performance -s

Knobs: CDC_MERGE_EVENTS (default 200000), CDC_MERGE_BATCH (2000), CDC_MERGE_KEYS (100000),
CDC_MERGE_EXPLAIN (0: no plan printed).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controlplane.core.ddl import STATE_COLUMNS
from controlplane.core.schema_model import Column, TableModel
from tests.integration.conftest import pg_dsn  # noqa: F401  # fixture
from tests.integration.test_lww_merge_sql import Merger, sink_session

pytestmark = pytest.mark.performance

N = int(os.environ.get("CDC_MERGE_EVENTS", "200000"))
BATCH = int(os.environ.get("CDC_MERGE_BATCH", "2000"))
KEYS = int(os.environ.get("CDC_MERGE_KEYS", "100000"))
EXPLAIN = os.environ.get("CDC_MERGE_EXPLAIN", "1") != "0"
TICK = os.sysconf("SC_CLK_TCK")


def rows_model(keyspace: str) -> TableModel:
    """test_sink_writers.py's table."""
    return TableModel(
        keyspace=keyspace,
        table="rows",
        columns=(
            Column(name="pk", cql_type="int", kind="partition_key", position=0),
            Column(name="ck", cql_type="int", kind="clustering", position=0),
            Column(name="a", cql_type="text", kind="regular"),
            Column(name="b", cql_type="bigint", kind="regular"),
            Column(name="c", cql_type="uuid", kind="regular"),
        ),
    )


def records(n: int) -> Iterator[tuple[Any, ...]]:
    """test_sink_writers.events()'s history as the sink's staging records (Gate.params' layout:
    keys, a, b, c, _cdc_writetime, _cdc_op, _cdc_set, _cdc_expiry, _cdc_snapshot)."""
    rnd = random.Random(7)
    ts0 = 1_800_000_000_000_000
    for i in range(n):
        key_no = rnd.randrange(KEYS)
        pk, ck = key_no // 5, key_no % 5
        r = rnd.random()
        op = "u" if r < 0.7 else ("i" if r < 0.9 else "d")
        ts = ts0 + i * 10 + rnd.randrange(-5000, 5000)
        if op == "i":
            vals = (f"a{i}", i, f"00000000-0000-0000-0000-{i:012d}")
            cols = '["a","b","c"]'
        elif op == "u":
            if rnd.random() < 0.5:
                vals, cols = (f"u{i}", i, None), '["a","b"]'
            else:
                vals, cols = (f"u{i}", None, None), '["a"]'
        else:  # a row delete lists every regular column as set to null (Gate.params)
            vals, cols = (None, None, None), '["a","b","c"]'
        yield (pk, ck, *vals, ts, op, cols, None, False)


def copy_text(batch: Sequence[tuple[Any, ...]]) -> bytes:
    """COPY text format; the values above hold no tab, newline or backslash."""

    def field(v: Any) -> str:
        if v is None:
            return "\\N"
        if isinstance(v, bool):
            return "t" if v else "f"
        return str(v)

    return "".join("\t".join(map(field, r)) + "\n" for r in batch).encode()


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def apply(merger: Merger, data: bytes, rows: int, explain: bool = False) -> list[str]:
    """One batch as PgApplier applies it (Merger.apply, with the COPY text encoded ahead).
    PgApplier sends every statement through a plain JDBC Statement, so PostgreSQL parses and
    plans the merge for every batch: ``prepare=False`` keeps psycopg from preparing it after
    five executions (which would cache one plan for all batches)."""
    m, sink = merger.merge.rows, merger.sink
    plan: list[str] = []
    sink.execute(m.lock_sql, prepare=False)
    try:
        with sink.transaction():
            with sink.cursor() as cur:
                with cur.copy(m.copy_sql) as copy:
                    copy.write(data)
                assert cur.rowcount == rows
            sink.execute(m.prepare_sql, prepare=False)
            if explain:
                cur = sink.execute("EXPLAIN (ANALYZE, BUFFERS) " + m.merge_sql, prepare=False)
                plan = [r[0] for r in cur.fetchall()]
            else:
                sink.execute(m.merge_sql, prepare=False)
    finally:
        sink.execute(m.unlock_sql, prepare=False)
    return plan


def digest(merger: Merger) -> str:
    """md5 of the raw table's data and gate state (the contract columns differ by design)."""
    g = merger.gate
    cols = ", ".join(f'r."{c}"' for c in [*g.keys, *g.cols, *(n for n, _ in STATE_COLUMNS)])
    row = g.conn.execute(
        f"SELECT count(*), md5(string_agg(({cols})::text, ',' ORDER BY r.pk, r.ck))"  # nosec B608  # fixed names
        f" FROM {g.ddl.names.raw_table} AS r"
    ).fetchone()
    assert row is not None
    return f"{row[0]} rows, md5 {row[1]}"


def test_merge_cost(pg_dsn: str) -> None:  # noqa: F811  # the fixture
    # one more batch than measured: the EXPLAINed one, continuing the history
    all_records = list(records(N + BATCH))
    batches = [all_records[i : i + BATCH] for i in range(0, N + BATCH, BATCH)]
    encoded = [(copy_text(b), len(b)) for b in batches]
    encoded, last = encoded[:-1], encoded[-1]
    tag = uuid.uuid4().hex[:8]
    with (
        psycopg.connect(pg_dsn, autocommit=True) as admin,
        sink_session(pg_dsn) as sink,
    ):
        merger = Merger(admin, sink, rows_model(f"mcost_{tag}"))
        names = merger.gate.ddl.names
        try:
            pid = sink.info.backend_pid
            half = len(encoded) // 2
            marks: list[tuple[float, float]] = []
            t0, c0 = time.monotonic(), backend_cpu(pid)
            for i, (data, rows) in enumerate(encoded):
                if i == half:
                    marks.append((time.monotonic(), backend_cpu(pid)))
                apply(merger, data, rows)
            t1, c1 = time.monotonic(), backend_cpu(pid)
            th, ch = marks[0] if marks else (t0, c0)
            n_half = sum(rows for _, rows in encoded[half:])
            print(f"\nlww merge cost: {N:,} events in {BATCH:,}-event batches, {KEYS:,} keys")
            print(
                f"  whole run:   {N / (t1 - t0):,.0f} events/s,"
                f" PostgreSQL backend {(c1 - c0) / N * 1e6:.1f} µs/event"
            )
            print(
                f"  second half: {n_half / (t1 - th):,.0f} events/s,"
                f" PostgreSQL backend {(c1 - ch) / n_half * 1e6:.1f} µs/event"
            )
            print(f"  final state: {digest(merger)}")
            if EXPLAIN:
                print("\n".join(apply(merger, *last, explain=True)))
        finally:
            admin.execute(f'DROP SCHEMA IF EXISTS "{names.raw_schema}" CASCADE')
            admin.execute(f'DROP SCHEMA IF EXISTS "{names.view_schema}" CASCADE')

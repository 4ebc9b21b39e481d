"""The project's own sink's SQL (core.ddl.generate_merge, decision 0126) in a real PostgreSQL,
driven exactly as transforms/lww-sink's PgApplier drives it: the staging tables created once per
session, then per batch ``lock_sql``, one REPEATABLE READ transaction of COPY + ``prepare_sql`` +
``merge_sql`` per target (tombstones first), commit, ``unlock_sql``.

The same shuffled, duplicated event sets go through the merge (in random batches) and through the
gate trigger (the stock sink's statements, tests/integration/test_lww_gate.py): the live views
must equal each other and ``lww_model.visible_rows``, and the raw state must be equal except
where decision 0126 says it differs (contract columns; the expiry of a null cell)."""

from __future__ import annotations

import random
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from controlplane.core.ddl import STATE_COLUMNS, TableMerge, generate_merge
from controlplane.core.lww_model import Bound, Event, RowEvent, TombstoneEvent, visible_rows
from controlplane.core.schema_model import Column, TableModel
from tests.integration.test_lww_gate import NOW, SCALARS, Gate, orders_model, random_events

pytestmark = pytest.mark.integration


class Merger:
    """One generated table written through the set-based merge on its own session (the sink
    task's connection), with the gate's helpers for the record layout and the reads."""

    def __init__(
        self, admin: psycopg.Connection[Any], sink: psycopg.Connection[Any], model: TableModel
    ) -> None:
        self.gate = Gate(admin, model)  # creates the DDL; its reads and record layout are reused
        self.sink = sink
        self.merge: TableMerge = generate_merge(model)
        for m in (self.merge.tombstones, self.merge.rows):
            sink.execute(m.stage_sql)
            sink.execute(m.stage_sql)  # IF NOT EXISTS: a second task start is harmless

    def row_record(self, e: RowEvent, token: int | None = None) -> tuple[Any, ...]:
        """The record's fields in the merge's COPY order: the gate's, then ``_cdc_token``
        (decision 0154; by default one derived from the key, as the transform's is)."""
        if token is None:
            token = zlib.crc32(repr(tuple(e.key)).encode()) - 2**31
        return (*self.gate.params(e.key, e.op, e.ts, e.values, e.expiry, e.snapshot), token)

    def record_without_token(self, e: RowEvent) -> tuple[Any, ...]:
        return (*self.gate.params(e.key, e.op, e.ts, e.values, e.expiry, e.snapshot), None)

    def stage_and_merge(self, records: Sequence[tuple[Any, ...]]) -> None:
        m = self.merge.rows
        self.sink.execute(m.lock_sql)
        try:
            with self.sink.transaction():
                with self.sink.cursor() as cur, cur.copy(m.copy_sql) as copy:
                    for r in records:
                        copy.write_row(r)
                self.sink.execute(m.prepare_sql)
                self.sink.execute(m.merge_sql)
        finally:
            self.sink.execute(m.unlock_sql)

    def tokens(self) -> dict[tuple[Any, ...], int | None]:
        keys = ", ".join(f'"{k}"' for k in self.gate.keys)
        raw = self.gate.ddl.names.raw_table
        rows = self.sink.execute(f'SELECT {keys}, "_cdc_token" FROM {raw}').fetchall()
        return {tuple(r[:-1]): r[-1] for r in rows}

    def apply(self, batch: Sequence[Event]) -> None:
        rows = [self.row_record(e) for e in batch if isinstance(e, RowEvent)]
        tombs = [self.gate.tomb_params(e) for e in batch if isinstance(e, TombstoneEvent)]
        m_rows, m_tombs = self.merge.rows, self.merge.tombstones
        if rows:
            self.sink.execute(m_rows.lock_sql)
        try:
            with self.sink.transaction():
                for m, records in ((m_tombs, tombs), (m_rows, rows)):
                    if not records:
                        continue
                    with self.sink.cursor() as cur:
                        with cur.copy(m.copy_sql) as copy:
                            for r in records:
                                copy.write_row(r)
                        assert cur.rowcount == len(records)
                    if m.prepare_sql:
                        self.sink.execute(m.prepare_sql)
                    self.sink.execute(m.merge_sql)
        finally:
            if rows:
                self.sink.execute(m_rows.unlock_sql)


@pytest.fixture
def admin(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        yield c


def sink_session(pg_dsn: str) -> psycopg.Connection[Any]:
    c = psycopg.connect(pg_dsn, autocommit=True)
    c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return c


@pytest.fixture
def sink(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with sink_session(pg_dsn) as c:
        yield c


@pytest.fixture
def pair(
    admin: psycopg.Connection[Any], sink: psycopg.Connection[Any]
) -> Iterator[Callable[[Callable[[str], TableModel]], tuple[Gate, Merger]]]:
    """Twin tables in two keyspaces: one written through the gate trigger, one through the
    merge."""
    made: list[Gate] = []

    def make(model: Callable[[str], TableModel]) -> tuple[Gate, Merger]:
        tag = uuid.uuid4().hex[:8]
        gate = Gate(admin, model(f"Trig_{tag}"))
        merger = Merger(admin, sink, model(f"Merge_{tag}"))
        made.extend((gate, merger.gate))
        return gate, merger

    yield make
    for g in made:
        admin.execute(f'DROP SCHEMA IF EXISTS "{g.ddl.names.raw_schema}" CASCADE')
        admin.execute(f'DROP SCHEMA IF EXISTS "{g.ddl.names.view_schema}" CASCADE')


PairMaker = Callable[[Callable[[str], TableModel]], tuple[Gate, Merger]]


def texts_model(keyspace: str) -> TableModel:
    return TableModel(
        keyspace=keyspace,
        table="texts",
        columns=(
            Column(name="id", cql_type="int", kind="partition_key", position=0),
            Column(name="ck", cql_type="text", kind="clustering", position=0),
            Column(name="t", cql_type="text", kind="regular"),
            Column(name="n", cql_type="int", kind="regular"),
        ),
    )


def collections_model(keyspace: str) -> TableModel:
    return TableModel(
        keyspace=keyspace,
        table="colls",
        columns=(
            Column(name="id", cql_type="int", kind="partition_key", position=0),
            Column(name="ck", cql_type="text", kind="clustering", position=0),
            Column(name="tags", cql_type="set<text>", kind="regular"),
            Column(name="attrs", cql_type="map<text, int>", kind="regular"),
            Column(name="fz", cql_type="frozen<list<int>>", kind="regular"),
        ),
    )


def scalars_model(keyspace: str) -> TableModel:
    """Every scalar type (test_lww_gate.SCALARS): the merge breaks a tie on the value with
    max(), or through a one-element array for the types without one (uuid, boolean, bytea)."""
    return TableModel(
        keyspace=keyspace,
        table="scalars",
        columns=(
            Column(name="id", cql_type="int", kind="partition_key", position=0),
            Column(name="ck", cql_type="text", kind="clustering", position=0),
            *(Column(name=f"c_{t}", cql_type=t, kind="regular") for t, _, _ in SCALARS),
        ),
    )


def keys_only_model(keyspace: str) -> TableModel:
    return TableModel(
        keyspace=keyspace,
        table="keys only",
        columns=(
            Column(name="id", cql_type="int", kind="partition_key", position=0),
            Column(name="ck", cql_type="text", kind="clustering", position=0),
        ),
    )


# Text values whose order differs between COLLATE "C" (UTF-8 bytes, as Cassandra) and a
# linguistic collation: 'B' < 'a' < 'ab' < 'z' < 'é' bytewise.
TEXTS = ["a", "B", "ab", "z", "é", "Z", None]
JSONS: dict[str, list[Any]] = {
    "tags": [[], ["a"], ["a", "b"], ["B"], None],
    "attrs": [{}, {"a": 1}, {"a": 2, "b": 1}, None],
    "fz": [[], [1], [1, 2], [2], None],
}


def deliver(rnd: random.Random, events: list[Event]) -> list[list[Event]]:
    """Replicas and replays: duplicates; shuffled; cut into random batches (some large)."""
    delivered = events + rnd.choices(events, k=len(events) // 2)
    rnd.shuffle(delivered)
    batches: list[list[Event]] = []
    i = 0
    while i < len(delivered):
        batch = delivered[i : i + rnd.choice([1, 3, 17, 60, 250])]
        batches.append(batch)
        i += len(batch)
    return batches


def write_through_gate(gate: Gate, batches: Sequence[Sequence[Event]]) -> None:
    for batch in batches:
        with gate.conn.transaction():
            for e in batch:
                if isinstance(e, TombstoneEvent):
                    gate.tombstone(e)
                else:
                    gate.write(e.key, e.op, e.ts, e.values, e.expiry, e.snapshot)


def raw_state(g: Gate) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every stored row's data and gate state (not the contract columns, decision 0126); a null
    cell's expiry is left out (the merge keeps the later of two, the gate the first seen)."""
    state = [n for n, _ in STATE_COLUMNS]
    cols = ", ".join(f'"{c}"' for c in [*g.keys, *g.cols, *state])
    rows = g.conn.execute(f"SELECT {cols} FROM {g.ddl.names.raw_table}").fetchall()
    n, m = len(g.keys), len(g.cols)
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        data = dict(zip(g.cols, r[n : n + m], strict=True))
        st = dict(zip(state, r[n + m :], strict=True))
        st["_cdc_exp"] = [
            x if data[c] is not None else None for c, x in zip(g.cols, st["_cdc_exp"], strict=True)
        ]
        out[tuple(r[:n])] = data | st
    return out


def xmins(g: Gate) -> dict[tuple[Any, ...], str]:
    keys = ", ".join(f'"{k}"' for k in g.keys)
    rows = g.conn.execute(f"SELECT {keys}, xmin::text FROM {g.ddl.names.raw_table}").fetchall()
    return {tuple(r[:-1]): r[-1] for r in rows}


def check_same(
    gate: Gate, merger: Merger, events: list[Event], rnd: random.Random, model: bool = True
) -> None:
    batches = deliver(rnd, events)
    write_through_gate(gate, batches)
    for batch in batches:
        merger.apply(batch)
    got = merger.gate.view()
    assert got == gate.view()
    if model:
        expected = visible_rows(
            events, columns=gate.cols, partition_size=1, now_us=NOW, clustering_desc=(False,)
        )
        assert got == expected
    assert raw_state(merger.gate) == raw_state(gate)
    # a whole replay in one batch (a reset of the consumer offsets) changes nothing: no row
    # gets a new version
    before = xmins(merger.gate)
    merger.apply([e for b in batches for e in b])
    assert xmins(merger.gate) == before
    assert merger.gate.view() == got


SEEDS = range(4)


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_matches_model_and_gate(pair: PairMaker, seed: int) -> None:
    rnd = random.Random(seed)
    gate, merger = pair(orders_model)
    pools: dict[str, list[Any]] = {
        "user": ["x", "y", "z", None],
        "qty": [1, 2, 3, None],
        "select": ["s", "t", None],
    }
    check_same(gate, merger, random_events(rnd, 400, pools), rnd)


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_orders_text_as_cassandra_does(pair: PairMaker, seed: int) -> None:
    rnd = random.Random(100 + seed)
    gate, merger = pair(texts_model)
    check_same(gate, merger, random_events(rnd, 400, {"t": TEXTS, "n": [1, 2, None]}), rnd)


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_of_collections(pair: PairMaker, seed: int) -> None:
    rnd = random.Random(200 + seed)
    gate, merger = pair(collections_model)
    events = random_events(rnd, 400, JSONS, wrap=lambda v: None if v is None else Jsonb(v))
    # jsonb values do not order in Python: the model is left out, the gate is the reference
    check_same(gate, merger, events, rnd, model=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_of_every_scalar_type(pair: PairMaker, seed: int) -> None:
    rnd = random.Random(400 + seed)
    gate, merger = pair(scalars_model)
    pools: dict[str, list[Any]] = {f"c_{t}": [a, b, None] for t, a, b in SCALARS}
    # the view converts time, inet and duration: the gate is the reference
    check_same(gate, merger, random_events(rnd, 300, pools), rnd, model=False)


def test_same_time_values_tie_break_within_a_batch_and_against_the_stored_cell(
    pair: PairMaker,
) -> None:
    """Writes of one cell at the same time (and expiry) differ only in the value: the greater
    value wins, whether both come in one batch (in either order) or one is stored already —
    for every scalar type, through max() or the one-element array."""
    gate, merger = pair(scalars_model)
    small = {f"c_{t}": a for t, a, _ in SCALARS}
    big = {f"c_{t}": b for t, _, b in SCALARS}
    one_batch: list[Event] = [
        RowEvent(key=(1, "a"), op="u", ts=10, values=small),
        RowEvent(key=(1, "a"), op="u", ts=10, values=big),
        RowEvent(key=(2, "a"), op="u", ts=10, values=big),
        RowEvent(key=(2, "a"), op="u", ts=10, values=small),
        RowEvent(key=(3, "a"), op="u", ts=10, values=small),
    ]
    later: list[Event] = [RowEvent(key=(3, "a"), op="u", ts=10, values=big)]
    write_through_gate(gate, [one_batch, later])
    merger.apply(one_batch)
    merger.apply(later)
    got = merger.gate.view()
    assert got == gate.view()
    assert got[(1, "a")] == got[(2, "a")] == got[(3, "a")]
    assert raw_state(merger.gate) == raw_state(gate)


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_of_a_table_without_regular_columns(pair: PairMaker, seed: int) -> None:
    rnd = random.Random(300 + seed)
    gate, merger = pair(keys_only_model)
    check_same(gate, merger, random_events(rnd, 300, {}), rnd)


K = (1, "a")


def test_tombstones_and_rows_in_one_batch(pair: PairMaker) -> None:
    _, merger = pair(orders_model)
    merger.apply([RowEvent(key=(1, "old"), op="i", ts=5, values={"user": "stored"})])
    batch: list[Event] = [
        RowEvent(key=(1, "a"), op="i", ts=10, values={"user": "a"}),
        RowEvent(key=(1, "b"), op="u", ts=30, values={"user": "newer"}),
        RowEvent(key=(1, "c"), op="i", ts=10, values={"user": "c"}),
        RowEvent(key=(2, "a"), op="i", ts=10, values={"user": "other partition"}),
        TombstoneEvent(partition=(1,), ts=20),
        TombstoneEvent(partition=(1,), ts=20),  # a duplicate in the same batch
        TombstoneEvent(
            partition=(2,), ts=20, op="r", start=Bound(("b",)), end=Bound(("d",), inclusive=False)
        ),
        RowEvent(key=(2, "b"), op="i", ts=15, values={"user": "in range, older"}),
        RowEvent(key=(2, "c"), op="i", ts=25, values={"user": "in range, newer"}),
    ]
    merger.apply(batch)
    assert merger.gate.view() == {
        (1, "b"): {"user": "newer", "qty": None, "select": None},
        (2, "a"): {"user": "other partition", "qty": None, "select": None},
        (2, "c"): {"user": "in range, newer", "qty": None, "select": None},
    }
    raw = merger.gate.raw((1, "old"))
    assert raw is not None
    assert raw["_cdc_deleted_at"] == 20  # the stored row got the tombstone through the gate
    assert raw["_cdc_op"] == "d"
    merged = merger.gate.raw((1, "b"))
    assert merged is not None
    assert merged["_cdc_op"] == "m"
    assert merged["_cdc_deleted_at"] == 20


def test_a_gated_write_is_not_skipped_by_the_merge_setting(pair: PairMaker) -> None:
    """The trigger skips only rows the merge wrote (_cdc_op = 'm') in its own transaction: a
    record carrying op 'm' elsewhere is refused by the gate, and a stock-sink write inside a
    merge transaction is still gated."""
    gate, merger = pair(orders_model)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="_cdc_op in"):
        gate.conn.execute(gate.upsert, gate.params(K, "m", 10, {"user": "u"}))
    merger.apply([RowEvent(key=K, op="i", ts=20, values={"user": "merged"})])
    m = merger.gate
    with merger.sink.transaction():
        merger.sink.execute(merger.merge.rows.prepare_sql)
        merger.sink.execute(m.upsert, m.params(K, "u", 10, {"user": "older"}))
    assert m.view()[K]["user"] == "merged"


def test_a_staged_record_with_a_bad_op_is_refused(pair: PairMaker) -> None:
    _, merger = pair(orders_model)

    def stage() -> None:
        with (
            merger.sink.transaction(),
            merger.sink.cursor() as cur,
            cur.copy(merger.merge.rows.copy_sql) as copy,
        ):
            copy.write_row((*merger.gate.params(K, "m", 10, {"user": "u"}), None))

    with pytest.raises(psycopg.errors.CheckViolation):
        stage()


def test_concurrent_merge_of_a_new_key_is_a_serialization_failure(
    pair: PairMaker, pg_dsn: str
) -> None:
    """REPEATABLE READ: a key inserted and committed by another session after this transaction's
    snapshot cannot be silently overwritten (PostgreSQL's insert-conflict-do-update spec): the
    merge fails with 40001, which the sink retries (RetryPolicy), and the retry converges."""
    _, merger = pair(orders_model)
    m = merger.merge.rows
    with sink_session(pg_dsn) as other:
        for s in (m.stage_sql,):
            other.execute(s)
        late = RowEvent(key=K, op="u", ts=10, values={"user": "older", "qty": 1})
        newer = RowEvent(key=K, op="u", ts=20, values={"user": "newer"})

        def racing_merge() -> None:
            with merger.sink.transaction():
                with merger.sink.cursor() as cur, cur.copy(m.copy_sql) as copy:
                    copy.write_row(merger.row_record(late))  # the snapshot is taken here
                # another task commits the same new key meanwhile
                with other.transaction():
                    with other.cursor() as cur, cur.copy(m.copy_sql) as copy:
                        copy.write_row(merger.row_record(newer))
                    other.execute(m.prepare_sql)
                    other.execute(m.merge_sql)
                merger.sink.execute(m.prepare_sql)
                merger.sink.execute(m.merge_sql)

        with pytest.raises(psycopg.errors.SerializationFailure):
            racing_merge()
    merger.apply([late])  # the retry
    assert merger.gate.view() == {K: {"user": "newer", "qty": 1, "select": None}}


def test_tombstone_committed_during_a_merge_reaches_its_new_rows(
    pair: PairMaker, pg_dsn: str
) -> None:
    """The merge holds the table's shared advisory lock from before its snapshot to after its
    commit: a partition delete committed meanwhile waits, then applies itself to the new rows."""
    _, merger = pair(orders_model)
    m = merger.merge.rows
    g = merger.gate
    deleter = psycopg.connect(pg_dsn, autocommit=True)
    t = threading.Thread(
        target=lambda: deleter.execute(
            g.tomb_upsert, g.tomb_params(TombstoneEvent(partition=(7,), ts=20))
        )
    )
    merger.sink.execute(m.lock_sql)
    try:
        with merger.sink.transaction():
            with merger.sink.cursor() as cur, cur.copy(m.copy_sql) as copy:
                copy.write_row(merger.row_record(RowEvent(key=(7, "a"), op="i", ts=10)))
            merger.sink.execute(m.prepare_sql)
            merger.sink.execute(m.merge_sql)
            t.start()
            # the tombstone waits while the merge's transaction is open
            wait_for_lock(g.conn, deleter.info.backend_pid)
        merger.sink.execute(m.unlock_sql)
        t.join(timeout=30)
        assert not t.is_alive()
    finally:
        merger.sink.execute("SELECT pg_advisory_unlock_all()")
        t.join(timeout=30)
        deleter.close()
    assert g.view() == {}


def wait_for_lock(conn: psycopg.Connection[Any], pid: int) -> None:
    import time

    deadline = time.monotonic() + 15
    while True:
        row = conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row == ("Lock",):
            return
        assert time.monotonic() < deadline, f"the tombstone writer never waited: {row}"
        time.sleep(0.01)


def test_explain_of_a_2000_row_batch(pair: PairMaker) -> None:
    """The merge plans and runs for a large batch; the plan is printed for decision 0126."""
    _, merger = pair(orders_model)
    rnd = random.Random(7)
    events = [
        RowEvent(key=(rnd.randrange(500), str(i)), op="i", ts=i, values={"user": "u", "qty": i})
        for i in range(2000)
    ]
    merger.apply(events[:1000])
    m = merger.merge.rows
    with merger.sink.transaction():
        with merger.sink.cursor() as cur, cur.copy(m.copy_sql) as copy:
            for e in events:
                copy.write_row(merger.row_record(e))
        merger.sink.execute(m.prepare_sql)
        plan = merger.sink.execute("EXPLAIN (ANALYZE, COSTS OFF) " + m.merge_sql).fetchall()
    text = "\n".join(r[0] for r in plan)
    print(text)
    assert "Insert on" in text
    assert len(merger.gate.view()) == 2000


def test_the_merge_keeps_a_known_token_and_fills_a_missing_one(pair: PairMaker) -> None:
    """Decision 0154: a batch without a token keeps the stored one; a row stored without one
    gains it from an event that changes nothing else (older, so it loses every cell)."""
    _, merger = pair(orders_model)
    other = (2, "b")
    merger.stage_and_merge(
        [
            merger.row_record(RowEvent(key=K, op="i", ts=10, values={"user": "a"}), 77),
            merger.record_without_token(RowEvent(key=other, op="i", ts=10, values={"user": "b"})),
        ]
    )
    assert merger.tokens() == {tuple(K): 77, other: None}
    before = merger.gate.view()
    merger.stage_and_merge(
        [
            merger.record_without_token(RowEvent(key=K, op="u", ts=20, values={"user": "c"})),
            merger.row_record(RowEvent(key=other, op="u", ts=5, values={"user": "old"}), -5),
        ]
    )
    assert merger.tokens() == {tuple(K): 77, other: -5}
    after = merger.gate.view()
    assert after[other] == before[other]  # the older event lost its cell
    assert after[tuple(K)]["user"] == "c"

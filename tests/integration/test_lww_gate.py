"""The LWW gate in a real PostgreSQL, driven exactly as the stock JDBC sink drives it:
``INSERT (every column) ... ON CONFLICT (pk) DO UPDATE SET c = EXCLUDED.c`` for every non-key
column, via psycopg 3. Set CDC_TEST_PG_DSN to run against a throwaway server."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import ipaddress
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pytest

from controlplane.core.ddl import (
    _upsert,
    generate_ddl,
    sink_tombstone_upsert_sql,
    sink_upsert_sql,
)
from controlplane.core.lww_model import Bound, Event, RowEvent, TombstoneEvent, visible_rows
from controlplane.core.schema_model import Column, TableModel

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1_000_000)
PAST = NOW - 3_600_000_000  # expiry an hour ago
FUTURE = NOW + 3_600_000_000


def orders_model(keyspace: str) -> TableModel:
    # reserved words and mixed case everywhere, so quoting is exercised by every test
    return TableModel(
        keyspace=keyspace,
        table="order",
        columns=(
            Column(name="id", cql_type="int", kind="partition_key", position=0),
            Column(name="Line", cql_type="text", kind="clustering", position=0),
            Column(name="user", cql_type="text", kind="regular"),
            Column(name="qty", cql_type="bigint", kind="regular"),
            Column(name="select", cql_type="text", kind="regular"),
        ),
    )


class Gate:
    """One generated table in PostgreSQL plus the sink's two statements."""

    def __init__(self, conn: psycopg.Connection[Any], model: TableModel) -> None:
        self.conn = conn
        self.model = model
        self.ddl = generate_ddl(model)
        self.upsert = sink_upsert_sql(model)
        self.tomb_upsert = sink_tombstone_upsert_sql(model)
        self.keys = [c.name for c in model.primary_key]
        self.cols = [c.name for c in model.regular]
        for stmt in self.ddl.statements * 2:  # twice: the DDL is idempotent
            conn.execute(stmt)

    def params(
        self,
        key: Sequence[Any],
        op: str,
        ts: int,
        values: Mapping[str, Any] | None = None,
        expiry: Mapping[str, int] | None = None,
        snapshot: bool = False,
    ) -> tuple[Any, ...]:
        values = dict(values or {})
        if op == "d":  # Debezium: a row delete lists every regular column as set to null
            values = dict.fromkeys(self.cols)
        return (
            *key,
            *(values.get(c) for c in self.cols),
            ts,
            op,
            json.dumps(sorted(values)),
            json.dumps(dict(expiry)) if expiry else None,
            snapshot,
        )

    def write(
        self,
        key: Sequence[Any],
        op: str,
        ts: int,
        values: Mapping[str, Any] | None = None,
        expiry: Mapping[str, int] | None = None,
        snapshot: bool = False,
    ) -> None:
        self.conn.execute(self.upsert, self.params(key, op, ts, values, expiry, snapshot))

    def tomb_params(self, t: TombstoneEvent) -> tuple[Any, ...]:
        def bound(b: Bound | None, start: bool) -> str | None:
            if b is None:
                return None
            kind = ("INCL" if b.inclusive else "EXCL") + ("_START_BOUND" if start else "_END_BOUND")
            vals = [
                {
                    "name": self.keys[len(t.partition) + i],
                    "value": str(v),
                    "type": "org.apache.cassandra.db.marshal.UTF8Type",
                }
                for i, v in enumerate(b.values)
            ]
            return json.dumps({"method": kind, "values": vals})

        start, end = bound(t.start, True), bound(t.end, False)
        ident = hashlib.sha256(json.dumps([t.partition, t.ts, t.op, start, end]).encode())
        return (ident.hexdigest(), *t.partition, t.ts, t.op, start, end)

    def tombstone(self, t: TombstoneEvent) -> None:
        self.conn.execute(self.tomb_upsert, self.tomb_params(t))

    def view(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        rows = self.conn.execute(f"SELECT * FROM {self.ddl.names.live_view}").fetchall()
        n = len(self.keys)
        return {tuple(r[:n]): dict(zip(self.cols, r[n:], strict=True)) for r in rows}

    def raw(self, key: Sequence[Any]) -> dict[str, Any] | None:
        where = " AND ".join(f'"{k}" = %s' for k in self.keys)
        cur = self.conn.execute(
            f"SELECT *, xmin::text AS _xmin FROM {self.ddl.names.raw_table} WHERE {where}", key
        )
        row = cur.fetchone()
        assert cur.description is not None
        return (
            None if row is None else dict(zip([d.name for d in cur.description], row, strict=True))
        )


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def make_gate(conn: psycopg.Connection[Any]) -> Iterator[Callable[[TableModel], Gate]]:
    made: list[Gate] = []

    def make(model: TableModel) -> Gate:
        made.append(Gate(conn, model))
        return made[-1]

    yield make
    for g in made:
        conn.execute(f'DROP SCHEMA IF EXISTS "{g.ddl.names.raw_schema}" CASCADE')
        conn.execute(f'DROP SCHEMA IF EXISTS "{g.ddl.names.view_schema}" CASCADE')


@pytest.fixture
def gate(make_gate: Callable[[TableModel], Gate]) -> Gate:
    return make_gate(orders_model(f"Lww_{uuid.uuid4().hex[:8]}"))


K = (1, "a")


def test_insert(gate: Gate) -> None:
    gate.write(K, "i", 10, {"user": "ann", "qty": 2})
    assert gate.view() == {K: {"user": "ann", "qty": 2, "select": None}}


def test_update_of_one_column_leaves_the_others(gate: Gate) -> None:
    gate.write(K, "i", 10, {"user": "ann", "qty": 2, "select": "s"})
    gate.write(K, "u", 20, {"qty": 3})
    assert gate.view() == {K: {"user": "ann", "qty": 3, "select": "s"}}


def test_out_of_order_older_write_loses(gate: Gate) -> None:
    gate.write(K, "u", 20, {"user": "new"})
    gate.write(K, "u", 10, {"user": "old", "qty": 1})
    # per column: qty had no newer write, so the older event still sets it
    assert gate.view() == {K: {"user": "new", "qty": 1, "select": None}}


def test_duplicate_is_a_no_op(gate: Gate) -> None:
    gate.write(K, "i", 10, {"user": "ann"})
    before = gate.raw(K)
    gate.write(K, "i", 10, {"user": "ann"})
    after = gate.raw(K)
    assert after == before  # same xmin: the gate skipped the write, no new row version


def test_same_time_writes_converge_on_the_greater_value(gate: Gate) -> None:
    for order in (("x", "y"), ("y", "x")):
        key = (2, order[0])
        for v in order:
            gate.write(key, "u", 10, {"user": v})
        assert gate.view()[key]["user"] == "y"


def test_same_time_a_ttl_beats_a_greater_value_then_the_later_expiry_wins(gate: Gate) -> None:
    # Cassandra's Cells.resolveRegular: an expiring cell beats a non-expiring one of the same
    # write time whatever the values; two expiring ones: the later expiry, then the value. Found
    # by tests/chaos (Cassandra kept a TTL'd 44, the gate kept 62).
    for n, order in enumerate(((("z", None), ("a", FUTURE)), (("a", FUTURE), ("z", None)))):
        key = (3, f"ttl{n}")
        for value, exp in order:
            gate.write(key, "u", 10, {"user": value}, expiry={"user": exp} if exp else None)
        assert gate.view()[key]["user"] == "a"
    key = (3, "later")
    gate.write(key, "u", 10, {"user": "z"}, expiry={"user": FUTURE})
    gate.write(key, "u", 10, {"user": "a"}, expiry={"user": FUTURE + 1_000_000})
    assert gate.view()[key]["user"] == "a"


@pytest.mark.parametrize("snapshot_first", [True, False])
def test_a_write_racing_the_snapshot_beats_its_later_stamped_copy(
    gate: Gate, snapshot_first: bool
) -> None:
    # decision 0106: the agent read the old value, then a live update (time 20) landed; the
    # snapshot copy carries its query's time (30). Whatever the arrival order, the update wins.
    writes: list[Callable[[], None]] = [
        lambda: gate.write(K, "i", 30, {"user": "old", "qty": 1, "select": "s"}, snapshot=True),
        lambda: gate.write(K, "u", 20, {"user": "new"}),
    ]
    for write in writes if snapshot_first else reversed(writes):
        write()
    assert gate.view() == {K: {"user": "new", "qty": 1, "select": "s"}}
    gate.write(K, "i", 40, {"user": "later", "qty": 2, "select": "t"}, snapshot=True)
    assert gate.view() == {K: {"user": "new", "qty": 2, "select": "t"}}, "later read wins"
    gate.write(K, "d", 25)  # a live delete after the snapshot's reads hides their copies
    assert gate.view() == {}


def test_row_delete_hides_the_row_but_keeps_it(gate: Gate) -> None:
    gate.write(K, "i", 10, {"user": "ann", "qty": 2})
    gate.write(K, "d", 20)
    assert gate.view() == {}
    raw = gate.raw(K)
    assert raw is not None
    assert raw["_cdc_deleted_at"] == 20


def test_older_write_after_delete_does_not_resurrect(gate: Gate) -> None:
    gate.write(K, "i", 10, {"user": "ann"})
    gate.write(K, "d", 20)
    gate.write(K, "i", 15, {"user": "late", "qty": 9})
    assert gate.view() == {}


def test_delete_before_any_write_still_shadows_older_writes(gate: Gate) -> None:
    gate.write(K, "d", 20)
    gate.write(K, "i", 15, {"user": "late"})
    assert gate.view() == {}


def test_newer_write_after_delete_brings_back_only_newer_cells(gate: Gate) -> None:
    gate.write(K, "i", 10, {"user": "ann", "qty": 2})
    gate.write(K, "u", 30, {"select": "kept"})
    gate.write(K, "d", 20)
    gate.write(K, "u", 25, {"qty": 5})
    assert gate.view() == {K: {"user": None, "qty": 5, "select": "kept"}}


@pytest.mark.parametrize("delete_first", [True, False])
def test_tie_delete_vs_write_delete_wins(gate: Gate, delete_first: bool) -> None:
    steps = [lambda: gate.write(K, "d", 10), lambda: gate.write(K, "i", 10, {"user": "tie"})]
    for step in steps if delete_first else reversed(steps):
        step()
    assert gate.view() == {}


def test_partition_delete(gate: Gate) -> None:
    gate.write((1, "a"), "i", 10, {"user": "a"})
    gate.write((1, "b"), "u", 30, {"user": "b-newer"})
    gate.write((2, "a"), "i", 10, {"user": "other partition"})
    gate.tombstone(TombstoneEvent(partition=(1,), ts=20))
    assert gate.view() == {
        (1, "b"): {"user": "b-newer", "qty": None, "select": None},
        (2, "a"): {"user": "other partition", "qty": None, "select": None},
    }
    # a late older write to a row the partition delete never saw stays deleted
    gate.write((1, "c"), "i", 15, {"user": "late"})
    gate.write((1, "d"), "i", 25, {"user": "newer"})
    assert set(gate.view()) == {(1, "b"), (1, "d"), (2, "a")}
    # replaying the tombstone changes nothing
    gate.tombstone(TombstoneEvent(partition=(1,), ts=20))
    assert set(gate.view()) == {(1, "b"), (1, "d"), (2, "a")}


def test_range_delete(gate: Gate) -> None:
    for line in "abcde":
        gate.write((1, line), "i", 10, {"user": line})
    gate.tombstone(
        TombstoneEvent(
            partition=(1,),
            ts=20,
            op="r",
            start=Bound(("b",), inclusive=True),
            end=Bound(("d",), inclusive=False),
        )
    )
    assert set(gate.view()) == {(1, "a"), (1, "d"), (1, "e")}
    gate.write((1, "bb"), "i", 15, {"user": "late, in range"})
    gate.write((1, "bc"), "i", 25, {"user": "newer, in range"})
    assert set(gate.view()) == {(1, "a"), (1, "bc"), (1, "d"), (1, "e")}


def test_ttl_expiry_is_visible_in_the_view(gate: Gate) -> None:
    # an expired cell reads as null; the row stays because another cell is live
    gate.write((1, "a"), "u", 10, {"user": "gone", "qty": 1}, expiry={"user": PAST})
    # a row whose only content expired disappears (INSERT ... USING TTL: marker expires too)
    gate.write((1, "b"), "i", 10, {"user": "gone"}, expiry={"user": PAST})
    # not yet expired
    gate.write((1, "c"), "i", 10, {"user": "here"}, expiry={"user": FUTURE})
    # an INSERT without TTL keeps the row (marker) even when its TTL'd cell expired
    gate.write((1, "d"), "i", 10, {"user": "gone", "qty": 4}, expiry={"user": PAST})
    gate.write((1, "d"), "u", 11, {"qty": None})
    assert gate.view() == {
        (1, "a"): {"user": None, "qty": 1, "select": None},
        (1, "c"): {"user": "here", "qty": None, "select": None},
        (1, "d"): {"user": None, "qty": None, "select": None},
    }


def test_purge_drops_dead_rows_and_old_tombstones(gate: Gate) -> None:
    gate.write((1, "a"), "i", 10, {"user": "a"})
    gate.write((1, "a"), "d", 20)
    gate.write((1, "b"), "i", 10, {"user": "live"})
    gate.tombstone(TombstoneEvent(partition=(3,), ts=20))
    purge = gate.ddl.names.function("__purge")
    grace_ok = gate.conn.execute(f"SELECT {purge}(interval '1 second', 1000020)").fetchone()
    assert grace_ok == (0,)  # still inside the grace period: nothing goes
    purged = gate.conn.execute(f"SELECT {purge}(interval '1 second', 5000000)").fetchone()
    assert purged == (2,)  # the dead row and the partition tombstone
    assert gate.raw((1, "a")) is None
    assert set(gate.view()) == {(1, "b")}


def test_a_row_without_op_is_refused(gate: Gate) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="_cdc_op in"):
        gate.conn.execute(gate.upsert, (*K, None, None, "x", 10, None, "[]", None, False))


def test_tombstone_waits_for_a_concurrent_new_row(gate: Gate, pg_dsn: str) -> None:
    """A row created in an open transaction and a partition delete committed meanwhile: the
    tombstone must still reach the row (the advisory lock makes it wait for the row)."""
    with psycopg.connect(pg_dsn) as writer, psycopg.connect(pg_dsn, autocommit=True) as deleter:
        writer.execute(gate.upsert, gate.params((7, "a"), "i", 10, {"user": "racing"}))
        t = threading.Thread(
            target=lambda: deleter.execute(
                gate.tomb_upsert, gate.tomb_params(TombstoneEvent(partition=(7,), ts=20))
            )
        )
        t.start()
        deleter_pid = deleter.info.backend_pid
        deadline = time.monotonic() + 10
        while True:  # wait on the condition: the deleter is blocked on the advisory lock
            row = gate.conn.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (deleter_pid,)
            ).fetchone()
            if row == ("Lock",):
                break
            assert time.monotonic() < deadline, f"deleter never blocked: {row}"
            time.sleep(0.01)
        writer.commit()
        t.join(timeout=10)
        assert not t.is_alive()
    assert gate.view() == {}


SCALARS: list[tuple[str, Any, Any]] = [
    # cql type, a value, a greater value (for the same-time tie path)
    ("ascii", "a", "b"),
    ("text", "é", "ž"),
    ("varchar", "A", "a"),
    ("int", -5, 7),
    ("bigint", 2**40, 2**41),
    ("smallint", 1, 2),
    ("tinyint", -1, 1),
    ("boolean", False, True),
    ("float", 1.5, 2.5),
    ("double", 1.25, 2.25),
    ("decimal", decimal.Decimal("1.10"), decimal.Decimal("12.5")),
    ("varint", 10**30, 10**31),
    ("uuid", uuid.UUID(int=1), uuid.UUID(int=2)),
    (
        "timeuuid",
        uuid.UUID("00000000-0000-1000-8000-000000000001"),
        uuid.UUID("00000000-0000-1000-8000-000000000002"),
    ),
    ("timestamp", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)),
    ("date", dt.date(2024, 1, 1), dt.date(2024, 1, 2)),
    # time, inet and duration in the agent's forms (ns, InetAddress.toString(), ns); the view
    # converts them (AGENT_FORM_IN_VIEW below)
    ("time", 3723456789123, 7200 * 10**9),
    ("blob", b"\x00\x01", b"\x00\x02"),
    ("inet", "/10.0.0.1", "/10.0.0.2"),
    ("duration", 86400 * 10**9, 2 * 86400 * 10**9),
]


def test_every_scalar_type_through_the_gate(make_gate: Callable[[TableModel], Gate]) -> None:
    cols = [Column(name=f"c_{t}", cql_type=t, kind="regular") for t, _, _ in SCALARS]
    g = make_gate(
        TableModel(
            keyspace=f"Types_{uuid.uuid4().hex[:8]}",
            table="all",
            columns=(Column(name="k", cql_type="int", kind="partition_key", position=0), *cols),
        )
    )
    small = {f"c_{t}": a for t, a, _ in SCALARS}
    big = {f"c_{t}": b for t, _, b in SCALARS}
    g.write((1,), "i", 10, big)
    g.write((1,), "u", 10, small)  # same time, smaller values: every column's tie keeps `big`
    g.write((2,), "u", 10, small)
    g.write((2,), "u", 10, big)  # same time, greater values win
    got = g.view()
    assert got[(1,)] == got[(2,)]
    in_view = {
        "time": dt.time(2, 0),
        "inet": ipaddress.ip_address("10.0.0.2"),
        "duration": dt.timedelta(days=2),
    }
    for t, _, b in SCALARS:
        value = got[(1,)][f"c_{t}"]
        assert value == in_view.get(t, b), t
    g.write((1,), "d", 10)
    assert set(g.view()) == {(2,)}


ORDERS_POOLS: dict[str, list[Any]] = {
    "user": ["x", "y", "z", None],
    "qty": [1, 2, 3, None],
    "select": ["x", "y", "z", None],
}
"""The regular columns of `orders_model` and the values random histories give them."""


def random_events(
    rnd: random.Random,
    n: int,
    pools: dict[str, list[Any]],
    wrap: Callable[[Any], Any] = lambda v: v,
) -> list[Event]:
    """A random history of the table whose regular columns draw from `pools` ({column:
    values}; `wrap` turns a value into what the driver takes): few distinct times (many ties),
    row, partition and range deletes, TTLs live and expired, the agent's snapshot copies (an
    INSERT of the whole row stamped with its read time). Shared by the merge's tests."""
    cols = list(pools)
    events: list[Event] = []
    for _ in range(n):
        key = (rnd.randrange(4), rnd.choice("abcde"))
        ts = rnd.randrange(1, 40)
        r = rnd.random()
        if r < 0.04:
            events.append(TombstoneEvent(partition=(key[0],), ts=ts))
        elif r < 0.08:
            lo, hi = sorted(rnd.sample("abcde", 2))
            events.append(
                TombstoneEvent(
                    partition=(key[0],),
                    ts=ts,
                    op="r",
                    start=Bound((lo,), rnd.random() < 0.5),
                    end=Bound((hi,), rnd.random() < 0.5),
                )
            )
        elif r < 0.18:
            events.append(RowEvent(key=key, op="d", ts=ts))
        else:
            op = rnd.choice(["i", "u"])
            fewest = 0 if op == "i" else min(1, len(cols))
            chosen = rnd.sample(cols, rnd.randint(fewest, len(cols)))
            values = {c: wrap(rnd.choice(pools[c])) for c in chosen}
            expiry = {c: rnd.choice([PAST, FUTURE]) for c in chosen if rnd.random() < 0.3}
            snapshot = op == "i" and len(chosen) == len(cols) and rnd.random() < 0.5
            events.append(
                RowEvent(key=key, op=op, ts=ts, values=values, expiry=expiry, snapshot=snapshot)
            )
    return events


@pytest.mark.parametrize("seed", range(int(os.environ.get("LWW_SEEDS", "6"))))
def test_gate_matches_the_reference_model(gate: Gate, seed: int) -> None:
    rnd = random.Random(seed)
    events = random_events(rnd, 300, ORDERS_POOLS)
    delivered = events + rnd.choices(events, k=150)  # replicas and replays: duplicates
    rnd.shuffle(delivered)
    i = 0
    while i < len(delivered):  # sink-like batches, each in one transaction
        batch = delivered[i : i + rnd.randint(1, 40)]
        i += len(batch)
        with gate.conn.transaction():
            for e in batch:
                if isinstance(e, TombstoneEvent):
                    gate.tombstone(e)
                else:
                    gate.write(e.key, e.op, e.ts, e.values, e.expiry, e.snapshot)
    expected = visible_rows(
        events, columns=gate.cols, partition_size=1, now_us=NOW, clustering_desc=(False,)
    )
    assert gate.view() == expected


def test_the_gate_keeps_a_known_token_and_fills_a_missing_one(gate: Gate) -> None:
    """Decision 0154, the stock sink's path: its upsert carries ``_cdc_token``; an event without
    one keeps the stored token, and a row without one gains it from an event that changes
    nothing else (an older one, which loses every cell)."""
    names = gate.ddl.names
    cols = [*gate.keys, *gate.cols, "_cdc_writetime", "_cdc_op", "_cdc_set", "_cdc_expiry"]
    cols += ["_cdc_snapshot", "_cdc_token"]
    upsert = _upsert(names.raw_table, gate.keys, cols[len(gate.keys) :])

    def write(key: tuple[Any, ...], ts: int, user: str, token: int | None) -> None:
        gate.conn.execute(upsert, (*gate.params(key, "u", ts, {"user": user}), token))

    def tokens() -> dict[tuple[Any, ...], int | None]:
        rows = gate.conn.execute(f'SELECT "id", "Line", "_cdc_token" FROM {names.raw_table}')
        return {(r[0], r[1]): r[2] for r in rows.fetchall()}

    write((1, "a"), 10, "x", 99)
    write((2, "b"), 10, "y", None)
    assert tokens() == {(1, "a"): 99, (2, "b"): None}
    write((1, "a"), 20, "z", None)
    write((2, "b"), 5, "older", -3)
    assert tokens() == {(1, "a"): 99, (2, "b"): -3}
    view = gate.view()
    assert view[(1, "a")]["user"] == "z"
    assert view[(2, "b")]["user"] == "y"

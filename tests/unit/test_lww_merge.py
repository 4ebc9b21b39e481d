"""The set-based LWW merge of the project's own sink (decision 0126): statement structure,
quoting, and — in Python, without a server — that its algorithm (reduce each batch together with
the stored row by the gate's orderings, then fold batch after batch) converges to lww_model's
declarative result whatever the order and the batching of the events. The SQL itself is checked
against PostgreSQL by the differential test that is the next step (decision 0126)."""

from __future__ import annotations

import random
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from controlplane.core.ddl import (
    MERGE_OP,
    MERGE_SETTING,
    generate_ddl,
    generate_merge,
    quote_ident,
    quote_literal,
)
from controlplane.core.lww_model import (
    SNAPSHOT_RANK_SHIFT,
    RowEvent,
    TombstoneEvent,
    visible_rows,
)
from controlplane.core.render import LWW_TABLES_KEY, lww_sink_tables_config
from controlplane.core.schema_model import TableModel
from tests.unit.test_ddl import orders

_MIN = -(2**63)
_MAX = 2**63 - 1


def hostile() -> TableModel:
    # names that would break naive SQL or a comma-separated list
    return TableModel.from_system_schema(
        "ks",
        "t",
        [
            {"column_name": "k", "type": "int", "kind": "partition_key", "position": 0},
            {"column_name": "a,b", "type": "text", "kind": "regular"},
            {"column_name": "x\\y'z", "type": "int", "kind": "regular"},
            {"column_name": "$fn$; DROP TABLE t", "type": "int", "kind": "regular"},
            {"column_name": "tags", "type": "set<text>", "kind": "regular"},
        ],
    )


def test_trigger_lets_only_merged_rows_through() -> None:
    trigger = next(s for s in generate_ddl(orders()).statements if '"cdc_lww"' in s)
    assert (
        f"WHEN (NEW.\"_cdc_op\" IS DISTINCT FROM '{MERGE_OP}'"
        f" OR current_setting('{MERGE_SETTING}', true) IS DISTINCT FROM 'on')" in trigger
    )


def test_one_statement_each() -> None:
    for table in (orders(), hostile()):
        m = generate_merge(table)
        for sql in (m.rows, m.tombstones):
            for stmt in (sql.stage_sql, sql.copy_sql, sql.merge_sql, sql.lock_sql):
                # no statement separator outside quoted identifiers and literals
                bare = re.sub(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'', "", stmt)
                assert ";" not in bare
        assert m.rows.merge_sql.startswith("WITH ev AS (")
        assert m.rows.merge_sql.count(f"INSERT INTO {generate_ddl(table).names.raw_table}") == 1


def test_structure_rows() -> None:
    t = orders()
    m = generate_merge(t).rows
    assert m.target == "order"
    assert m.columns == (
        "id",
        "Region",
        "select",
        "amount",
        'say "hi"',
        "user",
        "_cdc_writetime",
        "_cdc_op",
        "_cdc_set",
        "_cdc_expiry",
        "_cdc_snapshot",
        "_cdc_token",
    )
    assert m.stage_sql.startswith('CREATE TEMP TABLE IF NOT EXISTS "order__stg_')
    assert m.stage_sql.endswith(") ON COMMIT DELETE ROWS")
    assert m.copy_sql.startswith('COPY pg_temp."order__stg_')
    assert m.copy_sql.endswith(
        '("id", "Region", "select", "amount", "say ""hi""", "user", "_cdc_writetime",'
        ' "_cdc_op", "_cdc_set", "_cdc_expiry", "_cdc_snapshot", "_cdc_token") FROM STDIN'
    )
    # one rank, winner and stored cell per regular column, in TableModel.regular order = the
    # gate's array slots; the stored row is joined once
    for i, c in enumerate(t.regular, start=1):
        assert f'AS "_cdc_r{i}"' in m.merge_sql
        assert f'max(e."_cdc_r{i}") OVER k AS "_cdc_m{i}"' in m.merge_sql
        assert f'o."_cdc_wt"[{i}]' in m.merge_sql
        assert f'd."_cdc_setj" ? {quote_literal(c.name)}' in m.merge_sql
    assert f'"_cdc_r{len(t.regular) + 1}"' not in m.merge_sql
    # by its primary key whatever the planner estimates: a LATERAL ... LIMIT 1 it cannot
    # flatten into a hash join over the whole raw table
    raw = generate_ddl(t).names.raw_table
    assert m.merge_sql.count(f"FROM {raw} AS r") == 1
    assert "LEFT JOIN LATERAL (" in m.merge_sql
    assert 'r."Region" = k."Region" AND r."select" = k."select" LIMIT 1) AS o ON true' in (
        m.merge_sql
    )
    assert 'ON CONFLICT ("id", "Region", "select") DO UPDATE SET' in m.merge_sql
    assert "IS DISTINCT FROM (EXCLUDED." in m.merge_sql  # a no-op batch writes nothing
    assert f"THEN {SNAPSHOT_RANK_SHIFT} ELSE 0" in m.merge_sql
    assert f"'{MERGE_OP}', NULL, NULL, false" in " ".join(m.merge_sql.split())
    assert m.prepare_sql == f"SELECT set_config('{MERGE_SETTING}', 'on', true)"
    assert m.lock_sql.replace("lock", "unlock") == m.unlock_sql
    # text compares by UTF-8 bytes as Cassandra does; other types natively
    assert 'max(w."user" COLLATE "C") FILTER' in m.merge_sql
    assert 'k."_cdc_v3" COLLATE "C" > o."user" COLLATE "C"' in m.merge_sql
    assert 'max(w."amount") FILTER' in m.merge_sql
    # new rows look up covering partition/range tombstones, as the gate's INSERT path
    assert '"Shop_cdc"."order__in_range"(k."select"' in m.merge_sql


def test_orderings_are_the_models() -> None:
    """Each reduction's ranking is lww_model's, term by term: a cell's rank is the array
    [time, value is null, expiry or MIN] (compared element by element, greatest wins), then the
    greater value; the marker's [time, expiry or MAX]."""
    sql = generate_merge(orders()).rows.merge_sql
    # _cell_rank: (ts, value is None, -inf if exp is None else exp, value)
    assert (
        'THEN ARRAY[d."_cdc_ts", (d."user" IS NULL)::integer,'
        " coalesce((d.\"_cdc_xj\" ->> 'user')::bigint, (-9223372036854775808)::bigint)] END"
        ' AS "_cdc_r3"'
    ) in sql
    # the stored cell is ranked the same way, the value breaking a tie of the rest
    stored = (
        'ARRAY[o."_cdc_wt"[3], (o."user" IS NULL)::integer,'
        ' coalesce(o."_cdc_exp"[3], (-9223372036854775808)::bigint)]'
    )
    assert f'OR k."_cdc_r3" > {stored}' in sql
    assert f'OR (k."_cdc_r3" = {stored} AND k."_cdc_v3" COLLATE "C" > o."user" COLLATE "C")' in sql
    assert 'max(w."user" COLLATE "C") FILTER (WHERE w."_cdc_r3" = w."_cdc_m3")' in sql
    # the marker: (ts, +inf if no expiry else expiry), for the batch and the stored row
    assert 'THEN ARRAY[d."_cdc_ts", coalesce(CASE WHEN d."_cdc_xj" IS NOT NULL' in sql
    assert '9223372036854775807::bigint)] END AS "_cdc_l"' in sql
    assert (
        'ARRAY[o."_cdc_live_ts", coalesce(o."_cdc_live_exp", 9223372036854775807::bigint)]' in sql
    )
    # a winner must be newer than the row tombstone: a tie goes to the tombstone
    floor = 'coalesce(b."_cdc_del", (-9223372036854775808)::bigint)'
    for i in (1, 2, 3):
        assert f'CASE WHEN b."_cdc_w{i}" > {floor} THEN b."_cdc_v{i}" END' in sql
    assert f'CASE WHEN b."_cdc_l"[1] > {floor} THEN b."_cdc_l"[1] END' in sql


def test_hostile_names_are_quoted() -> None:
    t = hostile()
    m = generate_merge(t)
    for c in t.regular:
        assert quote_ident(c.name) in m.rows.merge_sql
        assert quote_literal(c.name) in m.rows.merge_sql
    assert "E'x\\\\y''z'" in m.rows.merge_sql  # backslash: an escape string
    # an empty non-frozen collection is null, as in the gate
    assert """CASE WHEN s."tags" IN ('[]'::jsonb, '{}'::jsonb) THEN NULL""" in m.rows.merge_sql
    config = lww_sink_tables_config([m])
    assert config[LWW_TABLES_KEY] == "t__tombstones,t"
    cols = config["lww.table.t.columns"].split(",")
    assert [urllib.parse.unquote(c) for c in cols] == list(m.rows.columns)
    assert config["lww.table.t.merge"] == m.rows.merge_sql
    assert config["lww.table.t__tombstones.lock"] == ""


def test_tombstones_insert_once() -> None:
    m = generate_merge(orders()).tombstones
    assert m.target == "order__tombstones"
    assert m.columns[0] == "_cdc_tombstone_id"
    assert m.merge_sql.endswith('ON CONFLICT ("_cdc_tombstone_id") DO NOTHING')
    assert len(m.stage_sql.split("(", 1)[0].split('"')[1].encode()) <= 63


def test_stage_names_fit_postgres() -> None:
    long = "t" * 48  # Cassandra's longest table name
    table = TableModel.from_system_schema(
        "k" * 48,
        long,
        [{"column_name": "k", "type": "int", "kind": "partition_key", "position": 0}],
    )
    generate_merge(table)  # quote_ident refuses a name over 63 bytes


# --------------------------------------------------------------------------------------------
# The algorithm, in Python: exactly the reductions of the SQL (CTEs ev, w, k, b and the final
# SELECT): per key and column the batch's best candidate, then that against the stored cell,
# then the winner kept only when newer than the row tombstone.


@dataclass
class _Row:
    deleted: int | None = None
    cells: dict[str, tuple[Any, int, int | None]] = field(default_factory=dict)
    live: tuple[int, int | None] | None = None


def _merge_batch(
    store: dict[Any, _Row],
    tombs: list[TombstoneEvent],
    batch: list[RowEvent | TombstoneEvent],
    columns: list[str],
) -> None:
    new_tombs = [e for e in batch if isinstance(e, TombstoneEvent)]
    for t in new_tombs:  # the tombstones table first: its trigger deletes the stored rows
        tombs.append(t)
        for key, row in store.items():
            if key[:1] == t.partition:
                _merge_key(row, [RowEvent(key=key, op="d", ts=t.ts)], columns)
    events = [e for e in batch if isinstance(e, RowEvent)]
    for key in {e.key for e in events}:
        if key not in store:
            covering = [t.ts for t in tombs if t.partition == key[:1]]
            store[key] = _Row(deleted=max(covering, default=None))
        _merge_key(store[key], [e for e in events if e.key == key], columns)


def _cell_rank(c: tuple[Any, int, int | None]) -> tuple[Any, ...]:
    # ARRAY[time, value is null, expiry or MIN], then the value (the SQL's tie-break)
    return (c[1], c[0] is None, _MIN if c[2] is None else c[2], c[0])


def _merge_key(row: _Row, evs: list[RowEvent], columns: list[str]) -> None:
    bdel = max((e.rank_ts for e in evs if e.op == "d"), default=None)  # k._cdc_bdel
    dels = [d for d in (row.deleted, bdel) if d is not None]
    row.deleted = max(dels) if dels else None  # greatest() ignores nulls
    floor = _MIN if row.deleted is None else row.deleted
    for col in columns:
        # ev._cdc_r<i> / k: the batch's best candidate (not yet filtered by the tombstone)
        batch = [
            (e.values[col], e.rank_ts, e.expiry.get(col))
            for e in evs
            if e.op != "d" and col in e.values
        ]
        cands = [max(batch, key=_cell_rank)] if batch else []
        # b: against the stored cell (_cdc_n<i>), then the row tombstone (the final SELECT)
        cands += [row.cells[col]] if col in row.cells else []
        best = max(cands, key=_cell_rank) if cands else None
        if best is not None and best[1] > floor:
            row.cells[col] = best
        else:
            row.cells.pop(col, None)
    marks = [(e.rank_ts, _row_exp(e)) for e in evs if e.op == "i"]
    marks += [row.live] if row.live else []
    best_mark = max(marks, key=lambda m: (m[0], _MAX if m[1] is None else m[1]), default=None)
    row.live = best_mark if best_mark is not None and best_mark[0] > floor else None


def _row_exp(e: RowEvent) -> int | None:
    if not e.expiry or any(c not in e.expiry for c in e.values):
        return None
    return max(e.expiry.values())


def _view(store: dict[Any, _Row], columns: list[str], now: int) -> dict[Any, dict[str, Any]]:
    out = {}
    for key, row in store.items():
        vals = {}
        for col in columns:
            v, _, x = row.cells.get(col, (None, 0, None))
            vals[col] = v if v is not None and (x is None or x > now) else None
        marker = row.live is not None and (row.live[1] is None or row.live[1] > now)
        if marker or any(v is not None for v in vals.values()):
            out[key] = vals
    return out


def _random_events(rnd: random.Random) -> list[RowEvent | TombstoneEvent]:
    events: list[RowEvent | TombstoneEvent] = []
    for _ in range(rnd.randint(1, 25)):
        key = (rnd.randint(0, 1), rnd.randint(0, 2))
        ts = rnd.randint(1, 6)  # few times: many ties
        kind = rnd.random()
        if kind < 0.1:
            events.append(TombstoneEvent(partition=key[:1], ts=ts))
        elif kind < 0.25:
            events.append(RowEvent(key=key, op="d", ts=ts))
        else:
            cols = rnd.sample(["a", "b"], rnd.randint(1, 2))
            values = {c: rnd.choice([None, 1, 2, 3]) for c in cols}
            expiry = {c: rnd.choice([5, 15]) for c in cols if rnd.random() < 0.3}
            events.append(
                RowEvent(
                    key=key,
                    op=rnd.choice(["i", "u"]),
                    ts=ts,
                    values=values,
                    expiry=expiry,
                    snapshot=rnd.random() < 0.1,
                )
            )
    return events


def test_batched_merge_converges_to_the_model() -> None:
    rnd = random.Random(126)
    columns = ["a", "b"]
    for _ in range(2000):
        events = _random_events(rnd)
        stream = events + rnd.sample(events, rnd.randint(0, len(events)))  # replays
        rnd.shuffle(stream)
        store: dict[Any, _Row] = {}
        tombs: list[TombstoneEvent] = []
        i = 0
        while i < len(stream):
            n = rnd.randint(1, 8)
            _merge_batch(store, tombs, stream[i : i + n], columns)
            i += n
        for now in (0, 10, 20):
            expected = visible_rows(events, columns=columns, partition_size=1, now_us=now)
            assert _view(store, columns, now) == expected, (events, now)


def test_the_merge_keeps_a_known_token() -> None:
    """Decision 0154: the staged token, one per key (max), else the stored one; compared in the
    no-change test so a row written before the column existed gains it."""
    m = generate_merge(orders()).rows
    assert '"_cdc_token" bigint' in m.stage_sql
    assert 'max(w."_cdc_token") AS "_cdc_token"' in m.merge_sql
    assert 'coalesce(k."_cdc_token", o."_cdc_token") AS "_cdc_token"' in m.merge_sql
    assert '"_cdc_token" = EXCLUDED."_cdc_token"' in m.merge_sql
    where = m.merge_sql.rsplit("WHERE", 1)[1]
    assert 't."_cdc_token"' in where
    assert 'EXCLUDED."_cdc_token"' in where

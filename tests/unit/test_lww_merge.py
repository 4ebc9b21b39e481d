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
    )
    assert m.stage_sql.startswith('CREATE TEMP TABLE IF NOT EXISTS "order__stg_')
    assert m.stage_sql.endswith(") ON COMMIT DELETE ROWS")
    assert m.copy_sql.startswith('COPY pg_temp."order__stg_')
    assert m.copy_sql.endswith(
        '("id", "Region", "select", "amount", "say ""hi""", "user", "_cdc_writetime",'
        ' "_cdc_op", "_cdc_set", "_cdc_expiry", "_cdc_snapshot") FROM STDIN'
    )
    # one CTE per regular column, in TableModel.regular order = the gate's array slots
    for i, c in enumerate(t.regular, start=1):
        assert f"c{i} AS (" in m.merge_sql
        assert f'o."_cdc_wt"[{i}]' in m.merge_sql
        assert f"jsonb_build_array({quote_literal(c.name)})" in m.merge_sql
    assert f"c{len(t.regular) + 1} AS (" not in m.merge_sql
    assert 'ON CONFLICT ("id", "Region", "select") DO UPDATE SET' in m.merge_sql
    assert "IS DISTINCT FROM (EXCLUDED." in m.merge_sql  # a no-op batch writes nothing
    assert f"THEN {SNAPSHOT_RANK_SHIFT} ELSE 0" in m.merge_sql
    assert f"'{MERGE_OP}', NULL, NULL, false" in m.merge_sql
    assert m.prepare_sql == f"SELECT set_config('{MERGE_SETTING}', 'on', true)"
    assert m.lock_sql.replace("lock", "unlock") == m.unlock_sql
    # text compares by UTF-8 bytes as Cassandra does; other types natively
    assert 'c."_cdc_v" COLLATE "C" DESC' in m.merge_sql.split("c3 AS (")[1]
    # new rows look up covering partition/range tombstones, as the gate's INSERT path
    assert '"Shop_cdc"."order__in_range"(k."select"' in m.merge_sql


def test_orderings_are_the_models() -> None:
    """The ORDER BY of each reduction is lww_model's ranking, term by term."""
    sql = generate_merge(orders()).rows.merge_sql
    cell = re.search(r'ORDER BY c\."id", c\."Region", c\."select", (.*?)\n\)', sql, re.S)
    assert cell is not None
    order = " ".join(cell.group(1).split())
    # _cell_rank: (ts, value is None, -inf if exp is None else exp, value), all descending
    assert order == (
        'c."_cdc_w" DESC, (c."_cdc_v" IS NULL) DESC,'
        ' coalesce(c."_cdc_x", (-9223372036854775808)::bigint) DESC, c."_cdc_v" DESC'
    )
    live = sql.split("lv AS (")[1]
    # the marker: (ts, +inf if no expiry else expiry)
    assert 'c."_cdc_w" DESC, coalesce(c."_cdc_x", 9223372036854775807::bigint) DESC' in live
    # candidates must be newer than the row tombstone: a tie goes to the tombstone
    assert sql.count('WHERE c."_cdc_w" > coalesce(c."_cdc_del", (-9223372036854775808)') == 4


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
# The algorithm, in Python: exactly the reductions of the SQL (CTEs ev, k, b, c<i>, lv).


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


def _merge_key(row: _Row, evs: list[RowEvent], columns: list[str]) -> None:
    bdel = max((e.rank_ts for e in evs if e.op == "d"), default=None)
    dels = [d for d in (row.deleted, bdel) if d is not None]
    row.deleted = max(dels) if dels else None  # greatest() ignores nulls
    floor = _MIN if row.deleted is None else row.deleted
    for col in columns:
        cands = [row.cells[col]] if col in row.cells else []
        cands += [
            (e.values[col], e.rank_ts, e.expiry.get(col))
            for e in evs
            if e.op != "d" and col in e.values
        ]
        cands = [c for c in cands if c[1] > floor]
        if cands:
            row.cells[col] = max(
                cands, key=lambda c: (c[1], c[0] is None, _MIN if c[2] is None else c[2], c[0])
            )
        else:
            row.cells.pop(col, None)
    marks = [row.live] if row.live else []
    marks += [(e.rank_ts, _row_exp(e)) for e in evs if e.op == "i"]
    marks = [m for m in marks if m[0] > floor]
    row.live = max(marks, key=lambda m: (m[0], _MAX if m[1] is None else m[1])) if marks else None


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

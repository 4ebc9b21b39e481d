"""verify's pure parts in core, no server: a table's statements and keys, the classification of a
Cassandra row against its PostgreSQL copy, the merge of two token-ordered streams, the repair
events, and the run's counters, summary and diff-file lines."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from typing import Any

import pytest

from controlplane.core.errors import DifferencesFoundError, NotVerifiedError
from controlplane.core.schema_model import Column, TableModel
from controlplane.core.verify_compare import (
    RangeComparison,
    Suspect,
    classify,
    compare_range,
    merge_groups,
    newest_write_us,
    recheck_outcome,
    token_groups,
)
from controlplane.core.verify_repair import repair_events, to_cql, to_pg
from controlplane.core.verify_report import (
    CORRECTED,
    COUNTERS,
    NOT_VERIFIED_LISTED,
    check,
    diff_line,
    not_verified_counters,
    range_status,
    remaining,
    run_summary,
)
from controlplane.core.verify_table import Table

# id int, ts timestamp (clustering); regular columns in Cassandra's order: a text, f float,
# m map<text, int>, s set<int>
MODEL = TableModel(
    keyspace="ks",
    table="t",
    columns=(
        Column(name="id", cql_type="int", kind="partition_key", position=0),
        Column(name="ts", cql_type="timestamp", kind="clustering", position=0),
        Column(name="a", cql_type="text", kind="regular"),
        Column(name="f", cql_type="float", kind="regular"),
        Column(name="m", cql_type="map<text, int>", kind="regular"),
        Column(name="s", cql_type="set<int>", kind="regular"),
    ),
)
T = dt.datetime(2024, 1, 1, 12, 0, 0, 123000)  # the Cassandra driver: naive UTC
T_PG = T.replace(tzinfo=dt.UTC)  # psycopg: aware


@pytest.fixture
def t() -> Table:
    return Table(MODEL, "run-1")


def row(
    id_: int, ts: dt.datetime, a: Any = None, f: Any = None, m: Any = None, s: Any = None
) -> tuple[Any, ...]:
    return (id_, ts, a, f, m, s)


# ----------------------------------------------------------------------------- the table


def test_statements_quote_identifiers_and_hash_the_run_id() -> None:
    model = TableModel(
        keyspace="Ks",
        table="Odd Name",
        columns=(
            Column(name="P1", cql_type="text", kind="partition_key", position=0),
            Column(name="p2", cql_type="int", kind="partition_key", position=1),
            Column(name="v", cql_type="text", kind="regular"),
        ),
    )
    t = Table(model, "r")
    assert t.cql_scan == (
        'SELECT token("P1", "p2"), "P1", "p2", "v" FROM "Ks"."Odd Name" '
        'WHERE token("P1", "p2") > ? AND token("P1", "p2") <= ?'
    )
    assert t.cql_by_pk == 'SELECT "P1", "p2", "v" FROM "Ks"."Odd Name" WHERE "P1" = ? AND "p2" = ?'
    assert t.cql_repair.startswith('SELECT "P1", "p2", "v", WRITETIME("v"), TTL("v") FROM')
    assert t.pg_by_pk.endswith('WHERE "P1" = %s AND "p2" = %s')
    plan = t.token_plan(stored=True)
    assert plan.copy.endswith('("P1", "p2", "_cdc_token") FROM STDIN')
    assert '"P1" text, "p2" integer, "_cdc_token" bigint NOT NULL' in plan.prepare[2]
    assert Table(model, "r").token_table == t.token_table != Table(model, "r2").token_table
    assert t.pg_token_drop[0] == f"DROP TABLE IF EXISTS {t.pg_token_table}"
    assert t.udts == {}


def test_keys_of_both_drivers_are_equal(t: Table) -> None:
    # int: the value itself; timestamp: canonical JSON, equal for naive and aware datetimes
    assert t.key([1, T]) == t.key([1, T_PG]) == (1, "1704110400123")
    assert t.key_dict([1, T]) == {"id": 1, "ts": 1704110400123}
    assert t.canon_row(row(1, T, "x", 1.5, {"k": 1}, [2, 1])) == [
        1,
        1704110400123,
        "x",
        1.5,
        [["k", 1]],
        [1, 2],
    ]


# ----------------------------------------------------------------------------- classify


def test_equal_rows_in_canonical_form_are_not_suspects(t: Table) -> None:
    c = row(1, T, "x", 1.100000023841858, {"b": 1, "a": 2}, [3, 1, 2])
    p = row(1, T_PG, "x", 1.1, {"a": 2, "b": 1}, [1, 2, 3])  # float4 read back, sorted set
    assert classify(t, c, p, t.key(c[:2])) is None
    assert classify(t, None, None, (1, "k")) is None


def test_an_empty_collection_is_null_but_empty_text_is_not(t: Table) -> None:
    assert classify(t, row(1, T, m=None, s=None), row(1, T_PG, m={}, s=[]), "k") is None
    s = classify(t, row(1, T, a=None), row(1, T_PG, a=""), "k")
    assert s is not None
    assert (s.kind, list(s.columns), s.columns["a"].cassandra, s.columns["a"].postgres) == (
        "mismatch",
        ["a"],
        None,
        "",
    )


def test_a_row_of_nulls_is_a_row_not_an_absent_one(t: Table) -> None:
    # Cassandra has the row (a row marker, every cell NULL); PostgreSQL's live view has none
    s = classify(t, row(1, T), None, "k")
    assert s is not None
    assert (s.kind, s.pk, s.signature) == (
        "missing",
        (1, T),
        '["m",[1,1704110400123,null,null,null,null]]',
    )
    # a NULL cell against a value is a mismatch of that column only
    s = classify(t, row(1, T, "x", None), row(1, T_PG, "x", 2.0), "k")
    assert s is not None
    assert (s.kind, list(s.columns)) == ("mismatch", ["f"])


def test_a_row_tombstoned_on_one_side_is_missing_or_extra(t: Table) -> None:
    # The live view hides tombstoned rows: deleted in PostgreSQL only -> absent there: missing.
    # Deleted in Cassandra only -> the scan has no row, PostgreSQL still shows it: extra, keyed
    # by PostgreSQL's values.
    assert classify(t, row(1, T, "x"), None, "k").kind == "missing"  # type: ignore[union-attr]
    s = classify(t, None, row(2, T_PG, "y"), "k")
    assert s is not None
    assert (s.kind, s.pk, s.columns) == ("extra", (2, T_PG), {})
    assert s.signature == '["e",[2,1704110400123,"y",null,null,null]]'


def test_the_mismatch_signature_names_each_differing_value(t: Table) -> None:
    a = classify(t, row(1, T, "x", 1.0), row(1, T_PG, "y", 2.0), "k")
    b = classify(t, row(1, T, "x", 1.0), row(1, T_PG, "y", 2.0), "k")
    c = classify(t, row(1, T, "x", 1.0), row(1, T_PG, "z", 2.0), "k")
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.signature == b.signature != c.signature
    assert a.signature == '["x",{"a":["x","y"],"f":[1.0,2.0]}]'


# ----------------------------------------------------------------------------- merge


def test_token_groups_are_runs_of_one_token() -> None:
    rows = [(1, "a"), (1, "b"), (2, "c"), (1, "d")]
    assert list(token_groups(iter(rows))) == [
        (1, [(1, "a"), (1, "b")]),
        (2, [(2, "c")]),
        (1, [(1, "d")]),  # not sorted: only consecutive rows form a group
    ]
    assert list(token_groups(iter([]))) == []


def test_merge_of_two_sorted_streams_with_gaps() -> None:
    a = [(-5, "a"), (0, "b"), (0, "c"), (9, "d")]
    b = [(-7, "x"), (0, "y"), (4, "z")]
    assert list(merge_groups(token_groups(a), token_groups(b))) == [
        ([], [(-7, "x")]),
        ([(-5, "a")], []),
        ([(0, "b"), (0, "c")], [(0, "y")]),
        ([], [(4, "z")]),
        ([(9, "d")], []),
    ]
    assert list(merge_groups(token_groups(a), iter([]))) == [
        ([(-5, "a")], []),
        ([(0, "b"), (0, "c")], []),
        ([(9, "d")], []),
    ]
    assert list(merge_groups(iter([]), iter([]))) == []


def test_compare_range_counts_and_classifies(t: Table) -> None:
    c_rows = [
        (10, *row(1, T, "x")),  # equal
        (10, *row(2, T, "y")),  # same token, other partition: only in Cassandra
        (20, *row(3, T, "z")),  # differs
        (40, *row(5, T)),  # only in Cassandra
    ]
    p_rows = [
        (10, *row(1, T_PG, "x")),
        (10, *row(9, T_PG, "q")),  # same token, not in Cassandra
        (20, *row(3, T_PG, "zz")),
        (30, *row(4, T_PG, "e")),  # a token Cassandra does not have
    ]
    out = compare_range(t, iter(c_rows), iter(p_rows))
    assert (out.read, out.valid) == (4, 1)
    assert [(s.kind, s.pk[0]) for s in out.suspects] == [
        ("missing", 2),
        ("extra", 9),
        ("mismatch", 3),
        ("extra", 4),
        ("missing", 5),
    ]
    assert compare_range(t, iter([]), iter([])) == RangeComparison()


# ----------------------------------------------------------------------------- rechecks


def _suspect(sig: str, newest: int | None = None) -> Suspect:
    return Suspect("mismatch", (1,), (1,), sig, newest_write_us=newest)


def test_a_suspect_read_again() -> None:
    old = _suspect("s")
    assert recheck_outcome(old, None, 1000) == "matched"
    assert recheck_outcome(old, _suspect("s"), 1000) == "settled"  # no write time known
    assert recheck_outcome(old, _suspect("s", 999), 1000) == "settled"
    assert recheck_outcome(old, _suspect("s", 1000), 1000) == "changing"  # written in the lag
    assert recheck_outcome(old, _suspect("other", 1), 1000) == "changing"


def test_newest_write_time_of_a_repair_read() -> None:
    # pk (2) + regular (2), then (WRITETIME, TTL) per regular column
    assert newest_write_us((1, 2, "x", 7, 100, None, 300, 10), 4) == 300
    assert newest_write_us((1, 2, None, None, None, None, None, None), 4) is None


# ----------------------------------------------------------------------------- repair

REPAIR = TableModel(
    keyspace="ks",
    table="r",
    columns=(
        Column(name="id", cql_type="int", kind="partition_key", position=0),
        Column(name="a", cql_type="text", kind="regular"),
        Column(name="b", cql_type="timestamp", kind="regular"),
        Column(name="c", cql_type="int", kind="regular"),
    ),
)


def _repair(c_row: Any, raw: Any) -> list[tuple[Any, ...]]:
    return repair_events(Table(REPAIR, "r"), [1], c_row, raw, now_us=1_000_000)


def test_cells_of_one_write_time_and_expiry_share_one_event() -> None:
    # a and c written at 100 with TTL 5; b at 100 without TTL
    events = _repair((1, "x", T, 3, 100, 5, 100, None, 100, 5), None)
    shape = [(e[4], e[5], json.loads(e[6]), e[7] and json.loads(e[7])) for e in events]
    assert sorted(shape, key=lambda s: s[2]) == [
        (100, "u", ["a", "c"], {"a": 6_000_000, "c": 6_000_000}),
        (100, "u", ["b"], None),
    ]
    b_event = next(e for e in events if json.loads(e[6]) == ["b"])
    assert b_event[2] == T_PG  # a driver value as psycopg takes it (naive -> UTC)
    assert b_event[8] is False  # not a snapshot


def test_a_cell_null_on_both_sides_is_left_alone() -> None:
    raw = (1, "x", None, None, [50, None, None], None, None)
    events = _repair((1, "x", None, None, 50, None, None, None, None, None), raw)
    assert [(e[4], json.loads(e[6])) for e in events] == [(50, ["a"])]


def test_a_cell_null_in_cassandra_without_a_postgres_time_is_tombstoned_now() -> None:
    raw = (1, "x", None, 4, None, None, None)  # no per-column write times recorded
    events = _repair((1, "x", None, None, 50, None, None, None, None, None), raw)
    assert [(e[4], e[5], json.loads(e[6])) for e in events] == [
        (50, "u", ["a"]),
        (1_000_001, "u", ["c"]),
    ]


def test_an_extra_row_without_any_time_is_deleted_just_after_now() -> None:
    events = _repair(None, (1, "x", None, None, None, None, None))
    assert [(e[4], e[5]) for e in events] == [(1_000_001, "d")]


def test_driver_values_convert_both_ways() -> None:
    class Duration:  # the shape of cassandra.util.Duration
        months, days, nanoseconds = 1, 2, 3_000_000

    class Date:  # cassandra.util.Date
        days_from_epoch = 1

        def date(self) -> dt.date:
            return dt.date(1970, 1, 2)

    assert to_pg(Duration()) == "1 months 2 days 3000 microseconds"
    assert to_pg(Date()) == dt.date(1970, 1, 2)
    assert to_pg(T) == T_PG
    assert to_pg(T_PG) is T_PG
    assert to_cql(ipaddress.ip_address("::1")) == "::1"
    assert to_cql(7) == 7


# ----------------------------------------------------------------------------- report


def test_range_counters_and_status() -> None:
    c = dict.fromkeys(COUNTERS, 0)
    assert (remaining(c), range_status(c)) == (0, "PASS")
    c |= {"missing": 2, "extra": 1, "mismatch": 1, "corrected_missing": 2}
    assert (remaining(c), range_status(c)) == (2, "DIFF")
    c |= {"deleted_extra": 1, "corrected_mismatch": 1}
    assert range_status(c) == "PASS"
    assert set(CORRECTED) == {"missing", "mismatch", "extra"}
    assert set(CORRECTED.values()) <= set(COUNTERS)
    failed = not_verified_counters(3)
    assert (failed["error"], failed["retries"], failed["read"], list(failed)) == (
        1,
        3,
        0,
        list(COUNTERS),
    )


def test_run_summary_over_records() -> None:
    records = {f"t:{i:05d}": {"status": "PASS", "read": "2", "valid": "2"} for i in range(60)}
    records["t:00007"] = {"status": "DIFF", "read": 3, "valid": 2, "extra": 1}
    s = run_summary("r", {"tables": ["t"], "diff_file": "d.jsonl"}, records)
    assert (s.status, s.ranges, s.statuses, s.remaining) == ("DIFF", 60, {"PASS": 59, "DIFF": 1}, 1)
    assert (s.counters["read"], s.consistency, s.not_verified) == (121, "LOCAL_QUORUM", [])
    for i in range(55):  # a record without a status was never started
        records[f"t:{i:05d}"] = {}
    s = run_summary("r", {"consistency": "ONE"}, records)
    d = s.as_dict()
    assert (d["status"], d["tables"], d["consistency"]) == ("INCOMPLETE", [], "ONE")
    assert d["not_verified_ranges"] == 55
    assert len(d["not_verified"]) == NOT_VERIFIED_LISTED
    assert d["not_verified"][0] == {
        "task": "t:00000",
        "status": "NOT_STARTED",
        "error_kind": None,
        "error_message": None,
        "retries": 0,
    }
    assert run_summary("r", {}, {}).status == "PASS"


def test_check_reports_ranges_not_verified_before_differences() -> None:
    records: dict[str, dict[str, Any]] = {
        "t:0": {"status": "DIFF", "missing": 1},
        "t:1": {"status": "FAIL", "error_kind": "unavailable", "error": 1},
        "t:2": {"status": "FAIL", "error_kind": "read_timeout", "error": 1},
    }
    with pytest.raises(NotVerifiedError) as info:
        check(run_summary("r", {}, records))
    assert "(reads failed: read_timeout, unavailable)" in info.value.message
    del records["t:1"], records["t:2"]
    with pytest.raises(DifferencesFoundError) as diff:
        check(run_summary("r", {"diff_file": "d.jsonl"}, records))
    assert "details in d.jsonl" in diff.value.message
    check(run_summary("r", {}, {"t:0": {"status": "PASS"}}))


def test_diff_line(t: Table) -> None:
    s = classify(t, row(1, T, "x", 1.0), row(1, T_PG, "y", 1.0), t.key([1, T]))
    assert s is not None
    line = diff_line("r", t, s, s.kind, repaired=True, task="t:00003", at=1.5)
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert json.loads(line) == {
        "run": "r",
        "table": "ks.t",
        "range": "t:00003",
        "kind": "mismatch",
        "key": {"id": 1, "ts": 1704110400123},
        "columns": {"a": {"cassandra": "x", "postgres": "y", "note": None}},
        "repaired": True,
        "at": 1.5,
    }
    assert list(json.loads(line)) == sorted(json.loads(line))  # sorted keys, stable lines
    skipped = diff_line("r", t, s, "skipped", repaired=False, task=None, at=2.0)
    assert json.loads(skipped)["kind"] == "skipped"
    assert json.loads(skipped)["range"] is None


# ----------------------------------------------------------------------------- the cheap check


def test_same_is_equal_values_of_the_same_type(t: Table) -> None:
    nan = float("nan")
    assert t.same((1, T, "x", 1.5, None, None), (1, T, "x", 1.5, None, None))
    assert t.same((1, nan), (1, nan))  # the same object, as `diff` skips it
    assert not t.same((1, nan), (1, float("nan")))
    assert not t.same((1, T, "x"), (1, T_PG, "x"))  # naive vs aware: canonical form decides
    assert not t.same((1, 1), (1, 1.0))  # equal, not the same type
    assert not t.same((1, True), (1, 1))
    assert not t.same((1, [1, 2]), (1, (1, 2)))
    assert not t.same((1, {1, 2}), (1, frozenset({1, 2})))
    assert not t.same((1, "x"), (1, "y"))


def _reference(t: Table, c_rows: list[Any], p_rows: list[Any]) -> RangeComparison:
    """compare_range without the cheap check: every row keyed and classified."""
    out = RangeComparison()
    n = len(t.pk)
    for cg, pg in merge_groups(token_groups(iter(c_rows)), token_groups(iter(p_rows))):
        out.read += len(cg)
        p_by_key = {t.key(r[1 : 1 + n]): r[1:] for r in pg}
        for r in cg:
            key = t.key(r[1 : 1 + n])
            s = classify(t, r[1:], p_by_key.pop(key, None), key)
            if s is None:
                out.valid += 1
            else:
                out.suspects.append(s)
        out.suspects.extend(classify(t, None, p, k) for k, p in p_by_key.items())  # type: ignore[misc]
    return out


def test_the_cheap_check_never_changes_a_verdict(t: Table) -> None:
    """Random rows, most equal on both sides, some equal only in canonical form (aware vs
    naive timestamps, an empty map vs NULL, a set vs a list, equal decimals-like floats),
    some different: compare_range classifies exactly as keying and classifying every row."""
    import random

    rnd = random.Random(6)
    a_values = ["x", "y", "", None]
    f_values = [1.5, -0.0, 0.0, None, 2.25]
    m_values: list[Any] = [None, {}, {"k": 1}, {"k": 2}]
    s_values: list[Any] = [None, [], [1, 2], {1, 2}, [2, 1], [1, 2, 2], {1, 2, 3}]
    for _round in range(300):
        c_rows, p_rows = [], []
        for token in sorted(rnd.sample(range(1000), 12)):
            for id_ in range(rnd.choice([1, 1, 1, 2])):
                c = row(id_, T, rnd.choice(a_values), rnd.choice(f_values))
                c = (*c[:4], rnd.choice(m_values), rnd.choice(s_values))
                side = rnd.random()
                p = (id_, rnd.choice([T, T_PG]), *c[2:])
                if side < 0.2:
                    p = (*p[:2], rnd.choice(a_values), rnd.choice(f_values), *p[4:])
                elif side < 0.35:
                    p = (*p[:4], rnd.choice(m_values), rnd.choice(s_values))
                if side < 0.9:
                    c_rows.append((token, *c))
                if side > 0.05:
                    p_rows.append((token, *p))
        got = compare_range(t, iter(c_rows), iter(p_rows))
        want = _reference(t, c_rows, p_rows)
        assert (got.read, got.valid) == (want.read, want.valid)
        assert [(s.kind, s.key, s.signature) for s in got.suspects] == [
            (s.kind, s.key, s.signature) for s in want.suspects
        ]

"""The pure parts of verify (core.verify_*): token-ordered merge, statements, repair events,
summaries; and the CLI wiring."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from controlplane.cli import app
from controlplane.core.ddl import generate_ddl
from controlplane.core.errors import DifferencesFoundError
from controlplane.core.schema_model import Column, TableModel
from controlplane.core.verify_compare import merge_groups, token_groups
from controlplane.core.verify_repair import repair_events
from controlplane.core.verify_report import check
from controlplane.core.verify_table import Table
from controlplane.services import verify as v

MODEL = TableModel(
    keyspace="ks",
    table="t",
    columns=(
        Column(name="id", cql_type="int", kind="partition_key", position=0),
        Column(name="c", cql_type="int", kind="clustering", position=0),
        Column(name="a", cql_type="text", kind="regular"),
        Column(name="b", cql_type="bigint", kind="regular"),
    ),
)


def test_merge_pairs_token_groups_of_both_sides() -> None:
    cass = [(1, "x"), (1, "y"), (3, "z"), (5, "w")]
    pg = [(1, "x"), (2, "q"), (5, "w"), (6, "e")]
    merged = list(merge_groups(token_groups(iter(cass)), token_groups(iter(pg))))
    assert merged == [
        ([(1, "x"), (1, "y")], [(1, "x")]),
        ([], [(2, "q")]),
        ([(3, "z")], []),
        ([(5, "w")], [(5, "w")]),
        ([], [(6, "e")]),
    ]


def test_table_statements_read_by_token_and_write_through_the_sink_statement() -> None:
    t = Table(MODEL, "20240101-000000-abcdef")
    assert 'token("id") > ? AND token("id") <= ?' in t.cql_scan
    assert 'WRITETIME("a"), TTL("a")' in t.cql_repair
    assert t.pg_range.startswith('SELECT "_cdc_token", "id", "c", "a", "b" FROM "ks_cdc"."t__vt_')
    build = t.token_plan(stored=False).build(copied=10)
    (snapshot,) = [s for s in build if s.startswith("CREATE UNLOGGED TABLE")]
    assert '"ks"."t" AS v' in snapshot
    # the snapshot is written in token order: a range's rows on consecutive pages
    assert snapshot.endswith('ORDER BY k."_cdc_token"')
    # in the snapshot's transaction only (postgres.execute runs the list in one)
    assert build[0] == "SET LOCAL jit = off"
    assert 'ORDER BY "_cdc_token"' in t.pg_range
    assert t.upsert.startswith('INSERT INTO "ks_cdc"."t"')
    assert t.token_table.startswith("t__vt_")
    assert len(t.token_table) == 14


def test_without_a_stored_token_every_live_key_takes_the_token_pass() -> None:
    plan = Table(MODEL, "r").token_plan(stored=False)
    assert plan.keys == 'SELECT "id", "c" FROM "ks"."t"'
    assert plan.snapshot == plan.snapshot_stored_only
    assert '"_cdc_token" IS NULL' not in plan.snapshot


def test_a_stored_token_is_read_from_the_raw_table_and_only_missing_ones_are_computed() -> None:
    t = Table(MODEL, "r")
    plan = t.token_plan(stored=True)
    # the token pass reads only the live rows the writer stored no token for
    assert plan.keys.startswith('SELECT "id", "c" FROM (SELECT ')
    assert '(r."_cdc_token" IS NULL) AND (' in plan.keys
    assert 'FROM "ks_cdc"."t" AS r' in plan.keys
    # with keys copied: the stored tokens' rows and the copied keys' rows, in token order
    with_keys = plan.build(copied=3)[1]
    assert with_keys.startswith(f"CREATE UNLOGGED TABLE {t.pg_token_table} AS SELECT * FROM (")
    assert 'r."_cdc_token" AS "_cdc_token"' in with_keys
    assert 'r."_cdc_token" IS NOT NULL' in with_keys
    assert "UNION ALL" in with_keys
    assert with_keys.endswith('ORDER BY "_cdc_token"')
    # none copied: no join at all
    stored_only = plan.build(copied=0)[1]
    assert "UNION ALL" not in stored_only
    assert plan.key_table not in stored_only
    assert stored_only.endswith('ORDER BY "_cdc_token"')
    # both build the index and drop the key table in the same transaction, without JIT
    for copied in (0, 3):
        build = plan.build(copied)
        assert build[0] == "SET LOCAL jit = off"
        assert build[2] == f'CREATE INDEX ON {t.pg_token_table} ("_cdc_token")'
        assert build[-1] == f"DROP TABLE {plan.key_table}"


def test_the_snapshot_shows_what_the_live_view_shows() -> None:
    # the view and the snapshot's stored-token branch are one query with one extra column
    ddl = generate_ddl(MODEL)
    (view,) = [s for s in ddl.statements if s.startswith("CREATE OR REPLACE VIEW")]
    columns_and_from, visible = view.split(" AS\n", 1)[1].split("\n WHERE ")
    stored_only = Table(MODEL, "r").token_plan(stored=True).snapshot_stored_only
    token_first = 'SELECT r."_cdc_token" AS "_cdc_token",\n       '
    assert columns_and_from.replace("SELECT ", token_first, 1) in stored_only
    assert f'WHERE (r."_cdc_token" IS NOT NULL) AND ({visible})' in stored_only


def _events(c_row: Any, raw: Any) -> list[tuple[Any, ...]]:
    return repair_events(Table(MODEL, "r"), [1, 2], c_row, raw, now_us=1_000_000)


def test_repair_writes_each_cell_with_its_own_write_time() -> None:
    # Cassandra: a="x" written at 100, b=7 at 200 with a TTL of 10 s
    events = _events((1, 2, "x", 7, 100, None, 200, 10), None)
    assert [(e[4], e[5], json.loads(e[6])) for e in events] == [
        (100, "u", ["a"]),
        (200, "u", ["b"]),
    ]
    assert events[0][2:4] == ("x", None)
    assert json.loads(events[1][7]) == {"b": 1_000_000 + 10_000_000}


def test_repair_tombstones_a_cell_null_in_cassandra_just_after_postgres_time() -> None:
    raw = (1, 2, "old", 5, [300, 50], None, None)
    events = _events((1, 2, None, 5, None, None, 50, None), raw)
    by_op = [(e[4], e[5], json.loads(e[6]), e[2]) for e in events]
    assert (301, "u", ["a"], None) in by_op
    assert (50, "u", ["b"], None) in by_op


def test_repair_of_a_key_only_row_inserts_a_row_marker() -> None:
    events = _events((1, 2, None, None, None, None, None, None), None)
    assert [(e[4], e[5]) for e in events] == [(1_000_000, "i")]


def test_delete_extra_is_a_row_tombstone_newer_than_postgres() -> None:
    raw = (1, 2, "x", None, [400, None], 450, None)
    events = _events(None, raw)
    assert [(e[4], e[5], sorted(json.loads(e[6]))) for e in events] == [(451, "d", ["a", "b"])]
    assert _events(None, None) == []


class FakeStore:
    def __init__(self, ranges: dict[str, dict[str, Any]]) -> None:
        self._ranges = ranges

    def run(self, run_id: str) -> dict[str, Any]:
        return {"tables": ["t"], "diff_file": "d.jsonl"}

    def ranges(self, run_id: str) -> dict[str, dict[str, Any]]:
        return self._ranges


def test_summary_and_exit_codes() -> None:
    store = FakeStore(
        {
            "t:0": {"status": "PASS", "read": 5, "valid": 5},
            "t:1": {"status": "DIFF", "read": 3, "valid": 1, "missing": 1, "extra": 1},
        }
    )
    s = v.summarize(store, "r")  # type: ignore[arg-type]
    assert (s.status, s.remaining, s.counters["read"]) == ("DIFF", 2, 8)
    with pytest.raises(DifferencesFoundError) as info:
        check(s)
    assert info.value.exit_code == 6
    store._ranges["t:1"] |= {"corrected_missing": 1, "deleted_extra": 1, "status": "PASS"}
    check(v.summarize(store, "r"))  # type: ignore[arg-type]
    store._ranges["t:2"] = {"status": "STARTED"}
    s = v.summarize(store, "r")  # type: ignore[arg-type]
    assert s.status == "INCOMPLETE"


def test_cli_verify_needs_a_manifest_and_lists_subcommands() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["verify", "--help"])
    assert result.exit_code == 0
    for word in ("--repair", "--delete-extra", "--resume", "--diff-file", "runs", "show"):
        assert word in result.output
    result = runner.invoke(app, ["verify"])
    assert result.exit_code != 0

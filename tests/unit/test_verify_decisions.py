"""The decisions of verify's worker loop, pure in core (issue 15 item 6): the records a range
leaves in Redis, the recheck rounds of its suspects, the counting of differences found and
corrected, which tasks a process works on, when the run's token snapshot may be dropped, and the
checks of a run's options, pipeline and metadata. No server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.errors import CassandraReadError, PostgresError, UsageError
from controlplane.core.manifest_loader import STDIN, LoadedManifest, load_text
from controlplane.core.read_retry import DEFAULT_CONSISTENCY
from controlplane.core.schema_model import Column, TableModel
from controlplane.core.verify_compare import (
    Recheck,
    Suspect,
    classify,
    observed,
    settled_before_us,
)
from controlplane.core.verify_plan import (
    check_options,
    check_table,
    joined_meta,
    one_pipeline,
    open_tasks,
    resumed_tables,
    run_consistency,
    skip_task,
    verified_models,
)
from controlplane.core.verify_report import (
    COUNTERS,
    all_ranges_read,
    corrected,
    count_kinds,
    done_record,
    error_kind,
    failed_attempt,
    finished,
    known_run,
    not_verified_record,
    range_base,
    range_rows,
    remaining,
    run_summary,
    started_record,
)
from controlplane.core.verify_table import Table

PIPELINE = load_text((Path(__file__).parents[2] / "examples" / "pipeline.yaml").read_text())[
    0
].pipeline  # demo: tables users, orders

# id int (partition key), ts timestamp (clustering); regular: a text, n int
MODEL = TableModel(
    keyspace="ks",
    table="t",
    columns=(
        Column(name="id", cql_type="int", kind="partition_key", position=0),
        Column(name="ts", cql_type="timestamp", kind="clustering", position=0),
        Column(name="a", cql_type="text", kind="regular"),
        Column(name="n", cql_type="int", kind="regular"),
    ),
)
T = dt.datetime(2024, 1, 1, 12, 0, 0)


@pytest.fixture
def t() -> Table:
    return Table(MODEL, "run-1")


def _suspect(kind: str, key: Any, sig: str = "s", newest: int | None = None) -> Suspect:
    return Suspect(kind, (key,), key, sig, newest_write_us=newest)


def _counters(**nonzero: int) -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0) | nonzero


# ----------------------------------------------------------------------------- range records

BASE = range_base("t", -10, 10, owner="host:1:ab", consistency="QUORUM")


def test_every_record_of_a_range_carries_its_bounds_owner_and_level() -> None:
    assert BASE == {
        "table": "t",
        "start": -10,
        "end": 10,
        "owner": "host:1:ab",
        "consistency": "QUORUM",
    }
    rec = started_record(BASE, 12.5)
    assert rec == {**BASE, "status": "STARTED", "started_at": 12.5}
    assert "status" not in BASE  # the base is not changed by a record built on it


def test_a_range_read_to_its_end_is_pass_or_diff_with_its_retries() -> None:
    counters = _counters(read=5, valid=5, retries=99)
    rec = done_record(BASE, counters, retries=2, replica="127.0.0.2", failed_attempts=[])
    assert (rec["status"], rec["read"], rec["retries"], rec["replica"]) == (
        "PASS",
        5,
        2,  # the attempts' count, not what the counters said
        "127.0.0.2",
    )
    assert "failed_attempts" not in rec  # only when there were any
    assert counters["retries"] == 99  # the caller's counters are not changed
    assert rec["table"] == "t"
    assert rec["consistency"] == "QUORUM"

    diff = done_record(
        BASE,
        _counters(read=3, valid=1, missing=2, corrected_missing=1),
        retries=0,
        replica=None,  # the driver chose
        failed_attempts=["unavailable@127.0.0.1"],
    )
    assert (diff["status"], remaining(diff), diff["replica"]) == ("DIFF", 1, None)
    assert diff["failed_attempts"] == ["unavailable@127.0.0.1"]

    fixed = done_record(
        BASE,
        _counters(read=2, extra=1, deleted_extra=1),
        retries=0,
        replica=None,
        failed_attempts=[],
    )
    assert fixed["status"] == "PASS"  # every difference corrected


def test_a_failed_attempt_names_the_host_the_error_names_else_the_replica_tried() -> None:
    assert failed_attempt("read_timeout", "10.0.0.9", "10.0.0.1") == "read_timeout@10.0.0.9"
    assert failed_attempt("connection", None, "10.0.0.1") == "connection@10.0.0.1"
    assert failed_attempt("connection", "", "10.0.0.1") == "connection@10.0.0.1"
    assert failed_attempt("no_host", None, None) == "no_host@?"  # the driver chose


def test_the_kind_of_a_failed_read_is_the_read_errors_or_the_errors_class() -> None:
    assert error_kind(CassandraReadError("x", kind="unavailable")) == "unavailable"
    assert error_kind(PostgresError("pg away")) == "PostgresError"
    assert error_kind(ValueError("v")) == "ValueError"


def test_a_range_not_read_is_fail_and_counts_no_row() -> None:
    failed = ["unavailable@127.0.0.1", "unavailable@127.0.0.2"]
    rec = not_verified_record(
        BASE, kind="unavailable", message="read failed", retries=1, failed_attempts=failed
    )
    assert (rec["status"], rec["error_kind"], rec["error_message"]) == (
        "FAIL",
        "unavailable",
        "read failed",
    )
    assert rec["failed_attempts"] == failed
    assert rec["failed_attempts"] is not failed
    assert (rec["error"], rec["retries"]) == (1, 1)  # the counter of failed ranges
    assert all(rec[c] == 0 for c in COUNTERS if c not in ("error", "retries"))
    assert rec["owner"] == "host:1:ab"
    # a failed range is not verified: the run is INCOMPLETE, never rows missing
    s = run_summary("r", {"tables": ["t"]}, {"t:00000": rec})
    assert (s.status, s.remaining, len(s.not_verified)) == ("INCOMPLETE", 0, 1)


# ----------------------------------------------------------------------------- counting


def test_differences_are_counted_by_kind() -> None:
    assert count_kinds([]) == {}
    assert count_kinds(["missing", "extra", "missing", "mismatch"]) == {
        "missing": 2,
        "extra": 1,
        "mismatch": 1,
    }


def test_only_a_repaired_row_read_again_equal_is_corrected() -> None:
    repaired = [
        _suspect("missing", 1),
        _suspect("mismatch", 2),
        _suspect("extra", 3),
        _suspect("mismatch", 4),
    ]
    after = [None, None, None, _suspect("mismatch", 4)]  # row 4 still differs
    keys, added = corrected(repaired, after)
    assert keys == {1, 2, 3}
    assert added == {"corrected_missing": 1, "corrected_mismatch": 1, "deleted_extra": 1}
    assert corrected([], []) == (set(), {})
    assert corrected(repaired[:1], [_suspect("missing", 1)]) == (set(), {})
    with pytest.raises(ValueError, match="zip"):  # a read again per repaired row, never fewer
        corrected(repaired, after[:2])


# ----------------------------------------------------------------------------- rechecks


def test_a_suspect_read_again_is_classified_with_its_newest_write(t: Table) -> None:
    # Table.cql_repair's row: pk + regular values, then (WRITETIME, TTL) per regular column
    c = (1, T, "x", 7, 100, None, 300, 10)
    p = (1, T, "x", 8)
    new = observed(t, c, p, (1, T))
    assert new is not None
    assert new.kind == "mismatch"
    assert set(new.columns) == {"n"}  # the write times are not compared as columns
    assert new.newest_write_us == 300
    assert observed(t, c, (1, T, "x", 7), (1, T)) is None  # the sides agree now
    assert observed(t, None, None, (1, T)) is None
    gone = observed(t, None, p, (1, T))  # deleted in Cassandra: no write time to read
    assert gone is not None
    assert (gone.kind, gone.newest_write_us) == ("extra", None)
    unset = observed(t, (1, T, None, None, None, None, None, None), None, (1, T))
    assert unset is not None
    assert (unset.kind, unset.newest_write_us) == ("missing", None)
    # the signature is classify's over the values only: a write-time change is not a change
    assert new.signature == classify(t, c[:4], p, (1, T)).signature  # type: ignore[union-attr]


def test_settled_means_written_before_one_lag_ago() -> None:
    assert settled_before_us(100.0, 5.0) == 95_000_000
    assert settled_before_us(100.0, 0.0) == 100_000_000
    assert settled_before_us(1.5, 0.25) == 1_250_000


def test_recheck_rounds_sort_suspects_into_matched_settled_and_changing() -> None:
    first = [
        _suspect("mismatch", 1, "a"),  # will match
        _suspect("mismatch", 2, "b"),  # the same difference, written long ago: settled
        _suspect("missing", 3, "c"),  # changes between reads
        _suspect("mismatch", 4, "d"),  # the same, but written within the lag
    ]
    rc = Recheck(list(first))
    rc.round(
        [
            None,
            _suspect("mismatch", 2, "b", newest=10),
            _suspect("missing", 3, "c2"),
            _suspect("mismatch", 4, "d", newest=1000),
        ],
        settled_before_us=1000,
    )
    assert rc.matched == 1
    assert [s.key for s in rc.final] == [2]
    assert [(s.key, s.signature) for s in rc.pending] == [(3, "c2"), (4, "d")]
    # the next round compares with what the last one read
    rc.round([_suspect("missing", 3, "c2"), None], settled_before_us=2000)
    assert (rc.matched, [s.key for s in rc.final], rc.pending) == (2, [2, 3], [])
    assert rc.counts() == {"valid": 2, "rechecked": 2, "skipped": 0}


def test_suspects_still_changing_after_the_last_round_are_skipped() -> None:
    rc = Recheck([_suspect("mismatch", 1, "a"), _suspect("extra", 2, "b")])
    rc.round([_suspect("mismatch", 1, "a2"), _suspect("extra", 2, "b2")], settled_before_us=0)
    assert rc.counts() == {"valid": 0, "rechecked": 0, "skipped": 2}
    assert rc.final == []
    assert Recheck([]).counts() == {"valid": 0, "rechecked": 0, "skipped": 0}
    with pytest.raises(ValueError, match="zip"):  # one observation per pending suspect
        rc.round([None], settled_before_us=0)


# ----------------------------------------------------------------------------- the run


def _summary(statuses: dict[str, str], read: int = 0) -> Any:
    records = {task: {"status": st, "read": read} for task, st in statuses.items()}
    return run_summary("r", {"tables": ["t"], "diff_file": "x"}, records)


@pytest.mark.parametrize(
    ("statuses", "drop"),
    [
        ({"t:0": "PASS", "t:1": "DIFF"}, True),
        ({}, True),  # no range: nothing reads the snapshot
        ({"t:0": "PASS", "t:1": "FAIL"}, False),  # --resume reads the snapshot again
        ({"t:0": "PASS", "t:1": "STARTED"}, False),  # another process is reading it
        ({"t:0": "PASS", "t:1": "NOT_STARTED"}, False),
    ],
)
def test_the_token_snapshot_is_dropped_once_every_range_is_read(
    statuses: dict[str, str], drop: bool
) -> None:
    assert all_ranges_read(_summary(statuses)) is drop


def test_a_finished_summary_carries_this_processs_level_file_and_rate() -> None:
    s = _summary({"t:0": "PASS", "t:1": "PASS"}, read=50)
    done = finished(s, consistency="ONE", diff_file="d.jsonl", elapsed_s=4.0)
    assert (done.consistency, done.diff_file, done.elapsed_s, done.rows_per_s) == (
        "ONE",
        "d.jsonl",
        4.0,
        25.0,
    )
    assert (done.status, done.counters["read"]) == ("PASS", 100)
    assert finished(s, consistency="ONE", diff_file="d", elapsed_s=0).rows_per_s == 0
    assert (s.consistency, s.diff_file) == (DEFAULT_CONSISTENCY, "x")  # not changed


def test_a_run_not_in_redis_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        known_run("r1", None)
    assert "no verify run r1 in Redis" in info.value.message
    assert "cdcctl verify runs" in (info.value.hint or "")
    assert known_run("r1", {}) == {}  # a run without metadata yet is one that exists


def test_range_rows_are_in_task_order_and_named_by_task() -> None:
    rows = range_rows({"t:00002": {"status": "PASS"}, "t:00001": {"status": "FAIL"}})
    assert rows == [{"task": "t:00001", "status": "FAIL"}, {"task": "t:00002", "status": "PASS"}]
    assert range_rows({}) == []


# ----------------------------------------------------------------------------- the plan


def test_delete_extra_needs_repair() -> None:
    check_options(repair=True, delete_extra=True)
    check_options(repair=True, delete_extra=False)
    check_options(repair=False, delete_extra=False)
    with pytest.raises(UsageError, match="--delete-extra only goes with --repair"):
        check_options(repair=False, delete_extra=True)


def _loaded(source: str) -> LoadedManifest:
    return LoadedManifest(PIPELINE, source, f"{source}:1:1")


def test_verify_takes_one_pipeline_and_reads_paths_beside_its_manifest() -> None:
    cwd = Path("/work/here")
    assert one_pipeline([_loaded("/etc/cdc/p.yaml")], cwd) == (PIPELINE, Path("/etc/cdc"))
    assert one_pipeline([_loaded("p.yaml")], cwd)[1] == Path(".")
    assert one_pipeline([_loaded(STDIN)], cwd)[1] == cwd
    assert one_pipeline([_loaded("-")], cwd)[1] == cwd
    for n in (0, 2):
        with pytest.raises(UsageError) as info:
            one_pipeline([_loaded("p.yaml")] * n, cwd)
        assert f"the manifests hold {n}" in info.value.message
        assert info.value.hint == "pass the one manifest of the pipeline to verify"


def test_a_table_option_names_a_table_of_the_pipeline() -> None:
    check_table(None, PIPELINE)
    check_table("orders", PIPELINE)
    with pytest.raises(UsageError, match="table nope is not in pipeline demo"):
        check_table("nope", PIPELINE)


def test_the_run_verifies_the_users_tables_not_the_heartbeat() -> None:
    def model(name: str) -> TableModel:
        return TableModel(keyspace="demo", table=name, columns=MODEL.columns)

    models = [model("users"), model("cdcctl_heartbeat"), model("orders")]
    assert [m.table for m in verified_models(models, PIPELINE, None)] == ["users", "orders"]
    assert [m.table for m in verified_models(models, PIPELINE, "orders")] == ["orders"]
    assert verified_models(models, PIPELINE, "cdcctl_heartbeat") == []
    assert verified_models([], PIPELINE, None) == []


def test_a_resumed_run_keeps_the_tables_it_verifies() -> None:
    meta = {"pipeline": "demo", "tables": ["orders", "gone"]}
    assert resumed_tables("r", meta, "demo", ["users", "orders"]) == ["orders"]
    with pytest.raises(UsageError) as info:
        resumed_tables("r", None, "demo", ["users"])
    assert info.value.message == "no verify run r in Redis"
    assert info.value.hint == "list runs with `cdcctl verify runs`"
    with pytest.raises(UsageError, match="run r verifies pipeline other, not demo"):
        resumed_tables("r", {"pipeline": "other", "tables": ["users"]}, "demo", ["users"])
    with pytest.raises(UsageError, match="none of its tables are in this manifest"):
        resumed_tables("r", meta, "demo", ["users"])


def test_a_joined_run_is_ready_once_its_tables_are_recorded() -> None:
    assert joined_meta("r", {}, "demo") is False
    assert joined_meta("r", {"pipeline": "demo"}, "demo") is False  # written in two steps
    assert joined_meta("r", {"pipeline": "demo", "tables": []}, "demo") is True
    with pytest.raises(UsageError, match="run r belongs to pipeline other"):
        joined_meta("r", {"pipeline": "other", "tables": ["t"]}, "demo")


@pytest.mark.parametrize(
    ("option", "recorded", "current", "expected"),
    [
        (None, "one", "LOCAL_QUORUM", ("ONE", False)),  # the run's level, normalised
        (None, None, "QUORUM", (DEFAULT_CONSISTENCY, False)),  # a run recorded without one
        (None, "", "QUORUM", (DEFAULT_CONSISTENCY, False)),
        ("quorum", "QUORUM", "QUORUM", ("QUORUM", False)),  # the same: nothing to record
        ("one", "QUORUM", "ONE", ("ONE", True)),  # --consistency wins and is recorded
        ("one", None, "ONE", ("ONE", True)),
    ],
)
def test_a_resumed_or_joined_run_reads_at_its_level_unless_told(
    option: str | None, recorded: str | None, current: str, expected: tuple[str, bool]
) -> None:
    assert run_consistency(option, recorded, current) == expected


def test_a_process_works_on_its_tables_ranges_not_read_to_their_end() -> None:
    records: dict[str, dict[str, Any]] = {
        "users:00000": {"status": "PASS"},
        "users:00001": {"status": "FAIL"},
        "orders:00000": {"status": "DIFF"},
        "users:00002": {},  # no status yet: NOT_STARTED
        "other:00000": {"status": "NOT_STARTED"},
        "users:00003": {"status": "STARTED"},  # another process's, or one that died
    }
    mine, todo = open_tasks(records, ["users", "orders"])
    assert mine == ["users:00000", "users:00001", "orders:00000", "users:00002", "users:00003"]
    assert todo == ["users:00001", "users:00002", "users:00003"]
    assert open_tasks(records, {"orders": object()}) == (["orders:00000"], [])  # a dict's keys
    assert open_tasks({}, ["users"]) == ([], [])


@pytest.mark.parametrize(
    ("status", "failed_here", "skip"),
    [
        ("PASS", False, True),
        ("DIFF", False, True),
        ("FAIL", True, True),  # failed in this process: --resume reads it again
        ("FAIL", False, False),  # failed in another process: retaken here
        ("STARTED", True, False),
        ("NOT_STARTED", False, False),
        (None, False, False),
    ],
)
def test_a_worker_passes_over_ranges_done_or_failed_here(
    status: str | None, failed_here: bool, skip: bool
) -> None:
    assert skip_task(status, failed_here) is skip

"""Verify on a cluster (decision 0102): consistency levels, which read errors are retried, the
backoff, the replica order, the adapter's error mapping, and a range that cannot be read being
*not verified* (exit 8) — never rows missing. No network: driver exceptions are built here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cassandra import (
    ConsistencyLevel,
    InvalidRequest,
    OperationTimedOut,
    ReadFailure,
    ReadTimeout,
    Unauthorized,
    Unavailable,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionShutdown
from typer.testing import CliRunner

from controlplane.adapters import cassandra as adapter
from controlplane.cli import app
from controlplane.core import read_retry as rr
from controlplane.core.errors import (
    CassandraReadError,
    NotVerifiedError,
    PostgresError,
    UsageError,
)
from controlplane.core.manifest_loader import load_text
from controlplane.core.schema_model import Column, TableModel
from controlplane.core.verify_report import COUNTERS, check
from controlplane.services import verify as v
from tests.cli import cdcctl

# ----------------------------------------------------------------------------- consistency


def test_consistency_default_is_one_constant_and_names_are_normalised() -> None:
    assert rr.parse_consistency(None) == rr.DEFAULT_CONSISTENCY == "LOCAL_QUORUM"
    assert rr.parse_consistency("") == "LOCAL_QUORUM"
    assert rr.parse_consistency("quorum") == "QUORUM"
    assert rr.parse_consistency(" local-one ") == "LOCAL_ONE"
    for name in rr.CONSISTENCY_LEVELS:  # every accepted name is one the driver knows
        assert isinstance(getattr(ConsistencyLevel, name), int)
    assert v.VerifyOptions(manifests=["x"]).consistency is None  # None: the run's, else default


@pytest.mark.parametrize("bad", ["ANY", "SERIAL", "LOCAL_SERIAL", "FOUR", "1"])
def test_a_level_a_range_read_cannot_use_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        rr.parse_consistency(bad)
    assert info.value.exit_code == 2
    assert bad in info.value.message
    assert info.value.hint is not None
    assert "LOCAL_QUORUM" in info.value.hint


def test_cli_rejects_an_unknown_consistency_before_connecting(tmp_path: Any) -> None:
    # a manifest that does not exist: the level is refused before the manifest is read
    result = cdcctl("verify", "-f", str(tmp_path / "none.yaml"), "--consistency", "MOSTLY")
    assert result.returncode == 2, result.stderr
    assert "MOSTLY" in result.stderr
    assert "is not a consistency level" in result.stderr
    assert "LOCAL_QUORUM" in CliRunner().invoke(app, ["verify", "--help"]).output


# ----------------------------------------------------------------------------- retry decisions


@pytest.mark.parametrize(
    "kind", ["unavailable", "read_timeout", "read_failure", "no_host", "timeout", "connection"]
)
def test_temporary_read_errors_are_retried_within_the_bound(kind: str) -> None:
    policy = rr.RetryPolicy(retries=3, base_s=0.5, cap_s=8)
    decisions = [rr.decide(policy, kind, n, rand=0.999) for n in (1, 2, 3, 4)]
    assert [d.retry for d in decisions] == [True, True, True, False]
    delays = [d.delay_s for d in decisions[:3]]
    assert delays == sorted(delays)
    assert delays[0] > 0
    assert "4 attempts failed" in decisions[3].reason


@pytest.mark.parametrize("kind", ["invalid", "unauthorized", "other", "never-heard-of"])
def test_errors_a_retry_cannot_cure_are_not_retried(kind: str) -> None:
    d = rr.decide(rr.RetryPolicy(retries=5), kind, 1, rand=0.5)
    assert not d.retry
    assert d.delay_s == 0


def test_backoff_has_jitter_and_a_cap() -> None:
    p = rr.RetryPolicy(retries=10, base_s=1, cap_s=4)
    assert p.delay(1, 0.0) == 0.5
    assert p.delay(1, 1.0) == 1.0
    assert p.delay(2, 0.0) == 1.0
    assert p.delay(9, 1.0) == 4.0  # capped
    assert p.worst_case_s() == 1 + 2 + 4 * 8
    assert rr.RetryPolicy(retries=0).worst_case_s() == 0
    assert not rr.decide(rr.RetryPolicy(retries=0), "unavailable", 1, 0.5).retry


# ----------------------------------------------------------------------------- replicas


def test_replicas_local_dc_first_up_first_and_rotated_per_range() -> None:
    reps = [
        rr.Replica("10.0.0.10", "dc1", True),
        rr.Replica("10.0.0.2", "dc1", True),
        rr.Replica("10.0.0.3", "dc1", False),
        rr.Replica("10.1.0.1", "dc2", True),
        rr.Replica("10.0.0.2", "dc1", True),  # twice in the driver's list: once here
        rr.Replica("10.0.0.4", "dc1", None),
    ]
    assert rr.replica_order(reps, "dc1", salt=0) == [
        "10.0.0.2",
        "10.0.0.10",  # numeric, not string, order
        "10.0.0.4",  # unknown before down
        "10.0.0.3",
        "10.1.0.1",  # the remote DC last
    ]
    assert rr.replica_order(reps, "dc1", salt=1)[:2] == ["10.0.0.10", "10.0.0.2"]
    assert rr.replica_order([], "dc1", salt=3) == []
    no_dc = rr.replica_order(reps, None, salt=0)  # no local DC: every DC alike, up first
    assert no_dc[:3] == ["10.0.0.2", "10.0.0.10", "10.1.0.1"]


def test_consecutive_ranges_spread_over_the_replicas() -> None:
    reps = [rr.Replica(f"127.0.0.{i}", "dc1", True) for i in (1, 2, 3)]
    firsts = [rr.replica_for_attempt(rr.replica_order(reps, "dc1", salt=i), 0) for i in range(9)]
    assert {a: firsts.count(a) for a in set(firsts)} == {
        "127.0.0.1": 3,
        "127.0.0.2": 3,
        "127.0.0.3": 3,
    }


def test_each_retry_goes_to_the_next_replica() -> None:
    order = ["a", "b", "c"]
    assert [rr.replica_for_attempt(order, n) for n in range(5)] == ["a", "b", "c", "a", "b"]
    assert rr.replica_for_attempt([], 2) is None


# ----------------------------------------------------------------------------- the adapter


@pytest.mark.parametrize(
    ("exc", "kind", "temporary"),
    [
        (Unavailable("x", consistency=6, required_replicas=2), "unavailable", True),
        (ReadTimeout("x", consistency=6, required_responses=2), "read_timeout", True),
        (ReadFailure("x", consistency=6, required_responses=2), "read_failure", True),
        (OperationTimedOut("x"), "timeout", True),
        (ConnectionShutdown("closed"), "connection", True),
        (ConnectionRefusedError(111, "refused"), "connection", True),
        (NoHostAvailable("none", {"h": Unavailable("u")}), "unavailable", True),
        (NoHostAvailable("none", {"h": ConnectionShutdown("gone")}), "connection", True),
        (NoHostAvailable("none", {}), "no_host", True),
        (InvalidRequest("no such table"), "invalid", False),
        (Unauthorized("no"), "unauthorized", False),
        (ValueError("odd"), "other", False),
    ],
)  # fmt: skip
def test_driver_errors_map_to_read_error_kinds(exc: Exception, kind: str, temporary: bool) -> None:
    err = adapter.read_error(exc, host="127.0.0.2")
    assert isinstance(err, CassandraReadError)
    assert (err.kind, err.temporary, err.host, err.exit_code) == (kind, temporary, "127.0.0.2", 5)
    assert "127.0.0.2" in err.message
    assert kind in err.message


class _Host:
    def __init__(self, address: str, dc: str, up: bool | None) -> None:
        self.address, self.datacenter, self.is_up = address, dc, up


class _TokenMap:
    token_class = int

    def get_replicas(self, keyspace: str, token: int) -> list[_Host]:
        assert (keyspace, token) == ("ks", 42)
        return [_Host("127.0.0.2", "dc1", True), _Host("127.0.0.3", "dc1", False)]


class _Cluster:
    def __init__(self, token_map: Any) -> None:
        self.metadata = type("M", (), {"token_map": token_map})()


def test_range_replicas_from_the_token_map() -> None:
    assert adapter.range_replicas(_Cluster(_TokenMap()), "ks", 42) == [
        rr.Replica("127.0.0.2", "dc1", True),
        rr.Replica("127.0.0.3", "dc1", False),
    ]
    assert adapter.range_replicas(_Cluster(None), "ks", 42) == []


# ----------------------------------------------------------------------------- the range loop

MODEL = TableModel(
    keyspace="ks",
    table="t",
    columns=(
        Column(name="id", cql_type="int", kind="partition_key", position=0),
        Column(name="a", cql_type="text", kind="regular"),
    ),
)


PIPELINE = load_text((Path(__file__).parents[2] / "examples" / "pipeline.yaml").read_text())[
    0
].pipeline


class _Store:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {
            "t:00001": {"table": "t", "start": -10, "end": 10, "status": "NOT_STARTED"}
        }
        self.writes: list[dict[str, Any]] = []

    def range(self, run_id: str, task: str) -> dict[str, Any]:
        return self.records[task]

    def set_range(self, run_id: str, task: str, rec: dict[str, Any]) -> None:
        self.writes.append(dict(rec))
        self.records[task] = dict(rec)

    def run(self, run_id: str) -> dict[str, Any]:
        return {"tables": ["t"], "diff_file": "d.jsonl", "consistency": "QUORUM"}

    def ranges(self, run_id: str) -> dict[str, dict[str, Any]]:
        return self.records


def _verifier(monkeypatch: pytest.MonkeyPatch, attempts: list[Any], retries: int = 3) -> Any:
    """A Verifier without connections: each attempt at the range pops `attempts` (an exception
    to raise, or the counters to return) and records which replica it was sent to."""
    opts = v.VerifyOptions(manifests=[], run_id="r", consistency="QUORUM", read_retries=retries)
    sessions = v.Sessions(
        cluster=None,
        cassandra=None,
        store=_Store(),  # type: ignore[arg-type]
        dsn="",
        local_datacenter="dc1",
    )
    ver: Any = v.Verifier(opts, PIPELINE, [MODEL], sessions)  # no server: sessions passed in
    ver.policy = rr.RetryPolicy(retries=retries, base_s=0.0)
    ver.events = []
    ver.say = lambda kind, data: ver.events.append((kind, dict(data)))
    ver.hosts = []
    monkeypatch.setattr(
        adapter,
        "range_replicas",
        lambda _c, _ks, _end: [rr.Replica(f"127.0.0.{i}", "dc1", True) for i in (1, 2, 3)],
    )

    def attempt(t: Any, rng: Any, task: str, *, host: str | None = None) -> dict[str, int]:
        ver.hosts.append(host)
        nxt = attempts.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        return dict(nxt)

    ver.verify_range = attempt
    return ver


def _read(kind: str, host: str = "") -> CassandraReadError:
    return CassandraReadError(f"read failed: {kind}", kind=kind, host=host or None)


def test_a_failed_read_is_retried_on_the_next_replica_and_counted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok = dict.fromkeys(COUNTERS, 0) | {"read": 7, "valid": 7}
    ver = _verifier(monkeypatch, [_read("connection"), _read("unavailable"), ok])
    ver._do_task("t:00001")
    rec = ver.store.records["t:00001"]
    assert (rec["status"], rec["read"], rec["valid"], rec["retries"]) == ("PASS", 7, 7, 2)
    assert rec["consistency"] == "QUORUM"
    assert rec["failed_attempts"] == ["connection@127.0.0.2", "unavailable@127.0.0.3"]
    assert rec["replica"] == "127.0.0.1"  # the one that answered
    assert ver.hosts == ["127.0.0.2", "127.0.0.3", "127.0.0.1"]  # salt 1: starts at the 2nd
    assert [e[0] for e in ver.events] == ["retry", "retry", "range"]


def test_a_range_that_cannot_be_read_is_not_verified_never_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ver = _verifier(monkeypatch, [_read("unavailable")] * 3, retries=2)
    ver._do_task("t:00001")
    rec = ver.store.records["t:00001"]
    assert rec["status"] == "FAIL"
    assert rec["error_kind"] == "unavailable"
    assert (rec["error_message"], rec["retries"], rec["missing"], rec["read"]) == (
        "read failed: unavailable",
        2,
        0,
        0,
    )
    assert len(ver.hosts) == 3
    s = v.summarize(ver.store, "r")
    assert (s.status, s.remaining, s.consistency) == ("INCOMPLETE", 0, "QUORUM")
    assert s.as_dict()["not_verified"] == [
        {
            "task": "t:00001",
            "status": "FAIL",
            "error_kind": "unavailable",
            "error_message": "read failed: unavailable",
            "retries": 2,
        }
    ]
    with pytest.raises(NotVerifiedError) as info:
        check(s)
    assert info.value.exit_code == 8
    assert "not verified" in info.value.message
    assert "unavailable" in info.value.message
    assert "--resume r" in (info.value.hint or "")


def test_errors_a_retry_cannot_cure_fail_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ver = _verifier(monkeypatch, [_read("invalid")])
    ver._do_task("t:00001")
    assert ver.store.records["t:00001"]["status"] == "FAIL"
    assert ver.store.records["t:00001"]["retries"] == 0
    ver = _verifier(monkeypatch, [PostgresError("pg away")])
    ver._do_task("t:00001")
    assert ver.store.records["t:00001"]["error_message"] == "pg away"
    assert len(ver.hosts) == 1


def test_not_verified_wins_over_differences_in_the_exit_code() -> None:
    store = _Store()
    store.records = {
        "t:00000": {"status": "DIFF", "read": 3, "missing": 1},
        "t:00001": {"status": "FAIL", "error_kind": "read_timeout", "error": 1},
    }
    s = v.summarize(store, "r")  # type: ignore[arg-type]
    assert s.as_dict()["not_verified_ranges"] == 1
    with pytest.raises(NotVerifiedError):
        check(s)


def test_the_verifier_runs_over_sessions_passed_in_and_leaves_them_open() -> None:
    """No connection is built by the Verifier: the caller's sessions are used as they are (the
    UDT fields reach every table) and stay open after `close` (their opener closes them)."""
    closed: list[str] = []

    class Store(_Store):
        def close(self) -> None:
            closed.append("store")

    class Cluster:
        def shutdown(self) -> None:
            closed.append("cluster")

    store, cluster, session = Store(), Cluster(), object()
    udts = {"addr": {"street": "text"}}
    sessions = v.Sessions(cluster, session, store, "", "dc1", udts)  # type: ignore[arg-type]
    ver = v.Verifier(v.VerifyOptions(manifests=[]), PIPELINE, [MODEL], sessions)
    assert (ver.store, ver.cluster, ver.session, ver.local_dc) == (store, cluster, session, "dc1")
    assert ver.tables["t"].udts is udts
    ver.close()
    assert closed == []
    assert ver.stop.is_set()

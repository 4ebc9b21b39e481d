"""Verify's consistency level and failed reads against the real local stack (decision 0102).

One node is enough for the plumbing: at RF=1 every level is met. A read error is produced for
real by raising the keyspace's replication factor above the number of nodes (2 on the single
node stack): ALL then needs more live replicas than exist and Cassandra answers Unavailable.
The ranges are reported *not verified* (exit 8, nothing missing, no line in the diff file);
once the keyspace is back at RF=1, `--resume` (at the run's level, ALL) finishes exactly those
ranges."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session

from controlplane.adapters import postgres
from controlplane.adapters.redis_store import CheckpointStore
from controlplane.core.ddl import generate_ddl, sink_upsert_sql
from controlplane.core.schema_model import TableModel
from controlplane.services.stack import Endpoints
from tests.cli import cdcctl
from tests.integration.verify_support import CQL_TABLE, REGULAR, Sim, pg_password, running_stack
from tests.manifests import local_pipeline
from tests.stackfixture import cql_cluster

pytestmark = pytest.mark.integration

KS = "vf_consistency"
TABLE = "cl"
ROWS = 1200


class _Sim(Sim):
    """verify_support.Sim on this test's own keyspace (its RF is changed here)."""

    def __init__(self, session: Session, dsn: str, table: str) -> None:
        self.session, self.dsn, self.table = session, dsn, table
        self.model = _model(session, table)
        self.upsert = sink_upsert_sql(self.model)
        cols = ["id", "region", "c", *REGULAR]
        ph = ", ".join("?" for _ in cols)
        self.insert = session.prepare(
            f"INSERT INTO {KS}.{table} ({', '.join(cols)}) VALUES ({ph}) USING TIMESTAMP ?"
        )


def _model(session: Session, table: str) -> TableModel:
    rows = session.execute(
        "SELECT column_name, type, kind, position, clustering_order FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (KS, table),
    )
    return TableModel.from_system_schema(KS, table, [r._asdict() for r in rows])


def _rf(session: Session, rf: int) -> None:
    session.execute(
        f"ALTER KEYSPACE {KS} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
    )


@pytest.fixture(scope="module")
def stack() -> Endpoints:
    return running_stack()


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def env(cql: Session, stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Any:
    pg_password()
    cql.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    _rf(cql, 1)
    cql.execute(f"DROP TABLE IF EXISTS {KS}.{TABLE}")
    cql.execute(CQL_TABLE.format(ks=KS, t=TABLE))  # cdc = true: verify refuses tables without
    postgres.execute(
        stack.postgres_dsn,
        [
            f'DROP VIEW IF EXISTS "{KS}"."{TABLE}"',
            f'DROP TABLE IF EXISTS "{KS}_cdc"."{TABLE}" CASCADE',
            f'DROP TABLE IF EXISTS "{KS}_cdc"."{TABLE}__tombstones" CASCADE',
        ],
    )
    postgres.execute(stack.postgres_dsn, generate_ddl(_model(cql, TABLE)).statements)
    _Sim(cql, stack.postgres_dsn, TABLE).load(ROWS)
    manifest = tmp_path_factory.mktemp("vcl") / "vf-consistency.yaml"
    manifest.write_text(local_pipeline("vf-consistency", KS, [TABLE]))
    yield {"manifest": manifest, "redis": stack.redis}
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    postgres.execute(
        stack.postgres_dsn,
        [f'DROP SCHEMA IF EXISTS "{KS}_cdc" CASCADE', f'DROP SCHEMA IF EXISTS "{KS}" CASCADE'],
    )


def verify(env: Any, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    res = cdcctl(
        "verify",
        "-f",
        str(env["manifest"]),
        "--no-progress",
        "-o",
        "json",
        "--lag",
        "0.2",
        "--ranges",
        "8",
        "--workers",
        "2",
        "--diff-file",
        str(tmp_path / "diff.jsonl"),
        *args,
        env={"CDC_PG_PASSWORD": pg_password()},
    )
    return res.returncode, json.loads(res.stdout) if res.stdout.strip() else {}, res.stderr


def test_the_chosen_level_is_used_recorded_and_shown(env: Any, tmp_path: Path) -> None:
    code, out, err = verify(env, tmp_path)
    assert code == 0, err
    assert out["consistency"] == "LOCAL_QUORUM"  # the default
    assert "reading Cassandra at LOCAL_QUORUM" in err
    code, out, err = verify(env, tmp_path, "--consistency", "all")
    assert code == 0, err
    assert (out["consistency"], out["status"], out["counters"]["read"]) == ("ALL", "PASS", ROWS)
    assert out["not_verified_ranges"] == 0
    assert out["counters"]["retries"] == 0
    assert "reading Cassandra at ALL" in err
    shown = cdcctl("verify", "show", out["run"], "--redis-url", env["redis"].url, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["consistency"] == "ALL"
    assert {r["consistency"] for r in detail["range_details"]} == {"ALL"}
    code, out, err = verify(env, tmp_path, "--consistency", "each-quorum")
    assert code == 0, err
    assert (out["consistency"], out["status"], out["counters"]["read"]) == (
        "EACH_QUORUM",
        "PASS",
        ROWS,
    )
    bad = cdcctl("verify", "-f", str(env["manifest"]), "--consistency", "ANY")
    assert bad.returncode == 2
    assert "not a consistency level" in bad.stderr


def test_unavailable_ranges_are_not_verified_then_resume_finishes_them(
    env: Any, cql: Session, tmp_path: Path
) -> None:
    run = f"vf-cl-{uuid.uuid4().hex[:8]}"
    nodes = len(cql.cluster.metadata.all_hosts())
    _rf(cql, nodes + 1)  # ALL of more replicas than nodes cannot be met: Unavailable, for real
    try:
        code, out, err = verify(
            env, tmp_path, "--consistency", "ALL", "--read-retries", "2", "--run-id", run
        )
    finally:
        _rf(cql, 1)
    assert code == 8, err  # not verified: neither 0 nor 6 (differences)
    assert "not verified" in err
    assert "unavailable" in err
    assert out["status"] == "INCOMPLETE"
    assert out["consistency"] == "ALL"
    n = out["ranges"]  # --ranges 8, at least the ring's own ranges (one per vnode token + 1)
    assert n >= 8
    assert out["not_verified_ranges"] == n
    c = out["counters"]
    assert (c["missing"], c["extra"], c["mismatch"], c["valid"], c["read"]) == (0, 0, 0, 0, 0)
    assert out["remaining_differences"] == 0
    assert c["error"] == n
    assert c["retries"] == n * 2  # each range: 2 retries, then given up
    assert {r["error_kind"] for r in out["not_verified"]} == {"unavailable"}
    diff = tmp_path / "diff.jsonl"
    assert not diff.exists() or diff.read_text() == ""  # nothing reported as a difference
    store = CheckpointStore(env["redis"])
    try:
        records = store.ranges(str(run))
        assert {r["status"] for r in records.values()} == {"FAIL"}
        assert all(len(r["failed_attempts"]) == 3 for r in records.values())
    finally:
        store.close()

    # RF back to 1: the same run, resumed at its own level (ALL), verifies every range.
    code, out, err = verify(env, tmp_path, "--resume", str(run))
    assert code == 0, err
    assert (out["status"], out["consistency"]) == ("PASS", "ALL")
    assert out["counters"]["read"] == ROWS  # every row once: the failed attempts counted nothing
    assert out["counters"]["missing"] == 0
    assert out["not_verified_ranges"] == 0

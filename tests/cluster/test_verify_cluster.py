"""`cdcctl verify` on the 3-node cluster (decision 0102): an RF=3 keyspace read at LOCAL_QUORUM
while one node is killed -9 mid-run costs retries, never false differences.

How the kill lands on reads in flight, every time: node 2 is first frozen (SIGSTOP), so the
range reads it coordinates hang (the driver still sees it up: its connections stay open); once
a range routed to it is stuck, the node is killed (SIGKILL). Each stuck read then fails with a
lost connection and is read again on the next replica; the coordinators that still count node
2 as a replica until gossip convicts it answer ReadTimeout, retried with backoff too. At
LOCAL_QUORUM two of three replicas suffice: the run ends PASS with every row read once, zero
missing/extra/mismatched rows and its retries counted; then node 2 is started again and
rejoins (UN)."""

from __future__ import annotations

import json
import os
import signal
import subprocess  # nosec B404  # the CLI under test
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from controlplane.adapters import postgres
from controlplane.adapters.redis_store import CheckpointStore
from controlplane.core.ddl import generate_ddl, sink_upsert_sql
from controlplane.core.read_retry import Replica, replica_order
from controlplane.core.schema_model import TableModel
from controlplane.services import stack_runtime
from tests.cluster.conftest import NODES, Cluster
from tests.integration.verify_support import CQL_TABLE, REGULAR, row_values
from tests.manifests import local_pipeline
from tests.stackfixture import cql_cluster

pytestmark = pytest.mark.cluster

KS = "vc_rf3"
TABLE = "kv"
ROWS = 30_000
VICTIM = 2  # cassandra-2 on 127.0.0.2
DEADLINE_S = 240.0
TS = 1_700_000_000_000_000


def wait_for(
    what: str,
    probe: Callable[[], Any],
    ok: Callable[[Any], bool],
    deadline: float = DEADLINE_S,
    every: float = 0.05,
) -> Any:
    end = time.monotonic() + deadline
    value = probe()
    while not ok(value):
        if time.monotonic() > end:
            pytest.fail(f"{what}: not reached within {deadline:.0f}s; last value: {value!r}")
        time.sleep(every)
        value = probe()
    return value


def _model(session: Session) -> TableModel:
    rows = session.execute(
        "SELECT column_name, type, kind, position, clustering_order FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (KS, TABLE),
    )
    return TableModel.from_system_schema(KS, TABLE, [r._asdict() for r in rows])


@pytest.fixture(scope="module")
def cql(cluster: Cluster) -> Iterator[Session]:
    hosts = [f"127.0.0.{i}" for i in range(1, cluster.stack.s.nodes + 1)]
    c = cql_cluster(cluster.stack.endpoints(), hosts)  # TLS + cdcctl's role (decision 0110)
    session = c.connect()
    yield session
    c.shutdown()


@pytest.fixture(scope="module")
def loaded(
    cluster: Cluster, cql: Session, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """RF=3 keyspace with ROWS rows written at ALL (every replica holds each), the same rows in
    PostgreSQL through the sink's statement; the pipeline's manifest."""
    dsn = cluster.stack.endpoints().postgres_dsn
    cql.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    cql.execute(f"DROP TABLE IF EXISTS {KS}.{TABLE}")
    cql.execute(CQL_TABLE.format(ks=KS, t=TABLE))  # cdc = true: verify refuses tables without
    postgres.execute(
        dsn,
        [
            f'DROP VIEW IF EXISTS "{KS}"."{TABLE}"',
            f'DROP TABLE IF EXISTS "{KS}_cdc"."{TABLE}" CASCADE',
            f'DROP TABLE IF EXISTS "{KS}_cdc"."{TABLE}__tombstones" CASCADE',
        ],
    )
    model = _model(cql)
    postgres.execute(dsn, generate_ddl(model).statements)
    cols = ["id", "region", "c", *REGULAR]
    insert = cql.prepare(
        f"INSERT INTO {KS}.{TABLE} ({', '.join(cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)}) USING TIMESTAMP ?"
    )
    insert.consistency_level = ConsistencyLevel.ALL
    rows = [row_values(i) for i in range(ROWS)]
    params = [(r["id"], r["region"], r["c"], *(r[c] for c in REGULAR), TS) for r in rows]
    for ok, res in execute_concurrent_with_args(cql, insert, params, concurrency=64):
        assert ok, res
    upsert = sink_upsert_sql(model)
    set_cols = json.dumps(sorted(REGULAR))
    events = [
        (r["id"], r["region"], r["c"], *(r[c] for c in REGULAR), TS, "i", set_cols, None, False)
        for r in rows
    ]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(upsert, events)
    manifest = tmp_path_factory.mktemp("vcluster") / "vc-rf3.yaml"
    manifest.write_text(local_pipeline("vc-rf3", KS, [TABLE]))
    yield manifest
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    postgres.execute(
        dsn, [f'DROP SCHEMA IF EXISTS "{KS}_cdc" CASCADE', f'DROP SCHEMA IF EXISTS "{KS}" CASCADE']
    )


def coordinator(task: str) -> str:
    """The replica verify reads a range through first: all three nodes replicate every range
    at RF=3, rotated by the range's index (core.read_retry.replica_order)."""
    nodes = [Replica(f"127.0.0.{i}", "", True) for i in range(1, NODES + 1)]
    return replica_order(nodes, None, salt=int(task.rpartition(":")[2]))[0]


def test_a_node_killed_mid_verify_costs_retries_not_differences(
    cluster: Cluster, loaded: Path, tmp_path: Path
) -> None:
    lay = cluster.stack.lay
    victim = f"cassandra-{VICTIM}"
    victim_addr = f"127.0.0.{VICTIM}"
    pid = stack_runtime.pid_of(lay, victim)
    assert pid is not None
    assert stack_runtime.running(lay, victim)
    run = f"vc-kill-{uuid.uuid4().hex[:8]}"
    store = CheckpointStore(cluster.stack.ctx.redis_endpoint())
    proc = subprocess.Popen(  # nosec B603  # fixed argv
        [
            sys.executable,
            "-m",
            "controlplane",
            "verify",
            "-f",
            str(loaded),
            "--consistency",
            "LOCAL_QUORUM",
            "--ranges",
            "96",
            "--workers",
            "2",
            "--read-retries",
            "8",
            "--run-id",
            run,
            "--lag",
            "0.5",
            "--no-progress",
            "-o",
            "json",
            "--diff-file",
            str(tmp_path / "diff.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CDC_STACK_DIR": str(lay.root)},
    )
    killed = False
    try:
        final = {"PASS", "DIFF", "FAIL"}
        wait_for(
            "6 ranges done",
            lambda: sum(r.get("status") in final for r in store.ranges(run).values()),
            lambda n: n >= 6,
        )
        os.kill(pid, signal.SIGSTOP)  # frozen: reads it coordinates hang, connections stay up

        since: dict[str, float] = {}  # ranges routed to the frozen node: STARTED since when

        def hanging() -> bool:
            now = time.monotonic()
            started = {
                t
                for t, r in store.ranges(run).items()
                if r.get("status") == "STARTED" and coordinator(t) == victim_addr
            }
            for t in set(since) - started:
                del since[t]
            for t in started:
                since.setdefault(t, now)
            return any(now - t0 >= 2 for t0 in since.values())  # a range takes milliseconds

        wait_for("a range read hanging on the frozen node for 2 s", hanging, bool, 90)
        os.kill(pid, signal.SIGKILL)
        killed = True
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)
        if not killed:
            os.kill(pid, signal.SIGCONT)
    try:
        assert proc.returncode == 0, err
        summary = json.loads(out)
        c = summary["counters"]
        assert summary["status"] == "PASS", summary
        assert summary["consistency"] == "LOCAL_QUORUM"
        assert (c["missing"], c["extra"], c["mismatch"], c["skipped"]) == (0, 0, 0, 0)
        assert c["read"] == ROWS  # every row exactly once: failed attempts counted nothing
        assert summary["not_verified_ranges"] == 0
        assert c["retries"] >= 1
        records = store.ranges(run)
        failed = [a for r in records.values() for a in r.get("failed_attempts", [])]
        assert any(a.endswith(f"@{victim_addr}") for a in failed), failed
        assert sum(int(r.get("retries", 0)) for r in records.values()) == c["retries"]
        # the scan spread over the replicas: the two nodes up all along each answered for at
        # least a quarter of the ranges (a third are theirs first, the victim's went on to them)
        replicas = Counter(r["replica"] for r in records.values())
        assert set(replicas) <= {f"127.0.0.{i}" for i in range(1, NODES + 1)}, replicas
        for up in ("127.0.0.1", "127.0.0.3"):
            assert replicas[up] >= len(records) / 4, replicas
        diff = tmp_path / "diff.jsonl"
        assert not diff.exists() or diff.read_text() == ""
        print(
            f"verify with {victim} killed: {c['read']} rows, {summary['ranges']} ranges, "
            f"{c['retries']} retries ({sorted(set(failed))}), {summary['elapsed_s']} s, "
            f"ranges per replica {dict(sorted(replicas.items()))}"
        )
    finally:
        store.close()
        restart_all(cluster)  # node 2 (and whatever died with it) started again, every node UN


def restart_all(cluster: Cluster) -> None:
    """Start what is not running (nodes join one after the other) and wait for every node UN."""
    cluster.stack.up()
    wait_for(
        "every node UN",
        cluster.stack.cluster_view,
        lambda v: v == {f"127.0.0.{i}": "UN" for i in range(1, NODES + 1)},
        every=2,
    )


def verify_cmd(manifest: Path, tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "controlplane",
        "verify",
        "-f",
        str(manifest),
        "--lag",
        "0.5",
        "--no-progress",
        "-o",
        "json",
        "--diff-file",
        str(tmp_path / "diff.jsonl"),
        *args,
    ]


def test_two_nodes_killed_leave_ranges_not_verified_and_resume_finishes_them(
    cluster: Cluster, loaded: Path, tmp_path: Path
) -> None:
    """Two of three nodes killed -9 mid-run: LOCAL_QUORUM cannot be met (Unavailable, or
    ReadTimeout until gossip convicts them). The ranges left are not verified — exit 8, none
    of their rows missing, nothing in the diff file — and `--resume` after the restart reads
    exactly them: every row counted once over the two processes."""
    lay = cluster.stack.lay
    victims = ["cassandra-2", "cassandra-3"]
    pids = [stack_runtime.pid_of(lay, v) for v in victims]
    assert all(pids), pids
    run = f"vc-down-{uuid.uuid4().hex[:8]}"
    store = CheckpointStore(cluster.stack.ctx.redis_endpoint())
    env = {**os.environ, "CDC_STACK_DIR": str(lay.root)}
    args = ["--consistency", "LOCAL_QUORUM", "--ranges", "96", "--workers", "2", "--run-id", run]
    proc = subprocess.Popen(  # nosec B603  # fixed argv
        verify_cmd(loaded, tmp_path, *args, "--read-retries", "1", "--pause-ms", "100"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        try:
            final = {"PASS", "DIFF", "FAIL"}
            wait_for(
                "10 ranges done",
                lambda: sum(r.get("status") in final for r in store.ranges(run).values()),
                lambda n: n >= 10,
            )
            for pid in pids:
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=60)
        assert proc.returncode == 8, err  # not verified: neither 0 nor 6
        summary = json.loads(out)
        c = summary["counters"]
        assert summary["status"] == "INCOMPLETE"
        assert (c["missing"], c["extra"], c["mismatch"]) == (0, 0, 0)
        assert summary["remaining_differences"] == 0
        records = store.ranges(run)
        failed = {t: r for t, r in records.items() if r["status"] == "FAIL"}
        passed = {t: r for t, r in records.items() if r["status"] == "PASS"}
        assert len(failed) == summary["not_verified_ranges"] >= 1
        assert len(passed) + len(failed) == len(records)  # nothing else: no DIFF
        kinds = {r["error_kind"] for r in failed.values()}
        # "unauthorized": with PasswordAuthenticator (decision 0110) a node that cannot reach
        # system_auth's replicas refuses the role's permission check — the same outage
        kinds_of_outage = {"unavailable", "read_timeout", "no_host", "connection", "timeout"}
        assert kinds <= kinds_of_outage | {"unauthorized"}, kinds
        assert all(r["missing"] == 0 and r["read"] == 0 for r in failed.values())
        assert c["read"] == sum(r["read"] for r in passed.values()) < ROWS
        diff = tmp_path / "diff.jsonl"
        assert not diff.exists() or diff.read_text() == ""
        print(
            f"two nodes killed: {len(passed)} ranges passed, {len(failed)} not verified "
            f"({sorted(kinds)}), {c['retries']} retries, exit {proc.returncode}"
        )
    finally:
        restart_all(cluster)
    try:
        resumed = subprocess.run(  # nosec B603  # fixed argv
            verify_cmd(loaded, tmp_path, "--resume", run, "--workers", "2"),
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        assert (summary["status"], summary["consistency"]) == ("PASS", "LOCAL_QUORUM")
        assert summary["counters"]["read"] == ROWS  # every row exactly once over both processes
        after = store.ranges(run)
        for task, rec in passed.items():  # the ranges verified before the kill were kept
            assert after[task]["updated_at"] == rec["updated_at"]
        assert all(after[t]["status"] == "PASS" for t in failed)
    finally:
        store.close()

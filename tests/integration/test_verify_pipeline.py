"""Verify against the real pipeline (agent -> Kafka -> Connect sink -> LWW gate) while a writer
keeps changing Cassandra: rows in flight must be re-checked after the lag, not reported.

Deploys its own pipeline (keyspace `vf_live`, topic prefix `demo`) with `cdcctl apply`, which
restarts the shared agent once when the table is new."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from controlplane.adapters import postgres
from controlplane.core.target import Target
from controlplane.services import verify as svc
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from tests.integration.verify_support import pg_password, running_stack
from tests.manifests import local_pipeline
from tests.stackfixture import apply_on, cql_cluster

pytestmark = pytest.mark.integration

ROWS = 2000
WRITE_FOR_S = 10.0
# Above the pipeline's lag on a loaded 2-core machine shared with other test suites: one run
# saw writes still in flight after 16 s (load average ~10). --lag must exceed the real lag.
LAG_S = 20.0
DELIVER_DEADLINE_S = 180.0
MANIFEST = local_pipeline("vf-live", "vf_live", ["events"])


@pytest.fixture(scope="module")
def stack() -> Endpoints:
    return running_stack()


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    session = cluster.connect()
    yield session
    cluster.shutdown()


def _count(dsn: str) -> int:
    rows = postgres.query(dsn, 'SELECT count(*) FROM "vf_live"."events"')
    return int(rows[0][0])


def test_real_pipeline_with_writes_during_verify(
    cql: Session, stack: Endpoints, tmp_path: Path
) -> None:
    pg_password()
    began = time.monotonic()
    cql.execute(
        "CREATE KEYSPACE IF NOT EXISTS vf_live WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute(
        "CREATE TABLE IF NOT EXISTS vf_live.events (id int, seq int, name text, qty bigint, "
        "PRIMARY KEY (id, seq)) WITH cdc = true"
    )
    manifest = tmp_path / "vf-live.yaml"
    manifest.write_text(MANIFEST)
    apply_on(LocalStack(settings_for()), [manifest])
    applied = time.monotonic()
    ins = cql.prepare("INSERT INTO vf_live.events (id, seq, name, qty) VALUES (?, ?, ?, ?)")
    params = [(i, i % 3, f"n-{i}", i) for i in range(ROWS)]
    for ok, res in execute_concurrent_with_args(cql, ins, params, concurrency=64):
        assert ok, res
    dsn = stack.postgres_dsn
    # A pipeline that does not deliver is a failure, not a reason to skip (it used to skip).
    end = time.monotonic() + DELIVER_DEADLINE_S
    while (delivered := _count(dsn)) < ROWS:
        if time.monotonic() > end:
            pytest.fail(
                f"the pipeline delivered {delivered}/{ROWS} rows in {DELIVER_DEADLINE_S:.0f} s"
            )
        time.sleep(0.5)
    delivered_at = time.monotonic()

    stop = threading.Event()
    written = [0]

    def writer() -> None:
        rnd = random.Random(3)
        upd = cql.prepare("UPDATE vf_live.events SET name = ? WHERE id = ? AND seq = ?")
        while not stop.is_set():
            i = rnd.randrange(ROWS + 100)
            cql.execute(upd, (f"w-{time.time()}", i, i % 3))
            written[0] += 1
            time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    # the writer keeps going through the first ranges of the run, then stops
    threading.Timer(WRITE_FOR_S, stop.set).start()
    try:
        time.sleep(1.0)
        summary = svc.run_verify(
            svc.VerifyOptions(
                manifests=[str(manifest)],
                redis_url=stack.redis or stack.redis_url,
                # Every range with rows in flight waits LAG_S before its recheck: 8 ranges and
                # 8 workers wait together (32 ranges waited 4 times in a row with 8 workers, 103 s
                # of verify, and up to 8 times with 2 x cores; decision 0145).
                ranges=8,
                workers=8,
                lag_s=LAG_S,
                rechecks=4,
                diff_file=tmp_path / "live.jsonl",
            )
        )
    finally:
        stop.set()
        thread.join()
    print(
        f"\napply {applied - began:.0f}s, delivery {delivered_at - applied:.0f}s, "
        f"verify {time.monotonic() - delivered_at:.0f}s: {summary.counters}"
    )
    assert written[0] > 50
    assert summary.remaining == 0, (summary.as_dict(), (tmp_path / "live.jsonl").read_text())
    assert summary.counters["read"] >= ROWS


def test_verify_uses_every_contact_point_ipv6_included(
    cql: Session, stack: Endpoints, tmp_path: Path
) -> None:
    """A target that leaves Cassandra to the manifest: contact points `[::1]:9042` (nothing
    listens there) and `127.0.0.1:<port>`, with the local datacenter. verify parses the IPv6
    one as apply does and gets through the other (before, only the first was ever used)."""
    from controlplane.core.target import (
        CassandraAccess,
        PostgresAccess,
        RedisAccess,
        Target,
    )

    pg_password()
    manifest = tmp_path / "vf-live-v6.yaml"
    manifest.write_text(
        MANIFEST.replace(
            f'contactPoints: ["127.0.0.1:{stack.cassandra_port}"]',
            f'contactPoints: ["[::1]:9042", "127.0.0.1:{stack.cassandra_port}"]\n'
            "      localDatacenter: datacenter1",
        )
    )
    local = svc_targets_local()
    remote_like = Target(
        name="ipv6-test",
        connect=local.connect,
        postgres=PostgresAccess(ca_file=local.postgres.ca_file),
        # The stack's TLS and login, the contact points left to the manifest.
        cassandra=CassandraAccess(
            tls=local.cassandra.tls,
            username=local.cassandra.username,
            password_secret=local.cassandra.password_secret,
        ),
        redis=RedisAccess(url=stack.redis_url),
    )
    summary = svc.run_verify(
        svc.VerifyOptions(
            manifests=[str(manifest)],
            target=remote_like,
            redis_url=stack.redis or stack.redis_url,
            ranges=4,
            lag_s=LAG_S,
            diff_file=tmp_path / "v6.jsonl",
        )
    )
    assert summary.status in ("PASS", "DIFF"), summary.as_dict()
    assert summary.counters["read"] >= ROWS


def svc_targets_local() -> Target:
    from controlplane.services.targets import local_target

    return local_target(None)

"""The initial snapshot on the cluster (decision 0104): rows written before the pipeline existed
arrive exactly once in effect while writes — updates of those rows among them — go on during
`apply` and the agents' snapshots.

Every node's agent snapshots the new table (``snapshot.mode=initial`` on each, read at the
manifest's ``snapshotConsistency``, QUORUM by default), so each pre-existing row arrives once per
agent; the last-write-wins gate makes the copies no-ops, and ranks them below live events, so an
update that races a snapshot read is never overridden by the read's older value (decision 0106).
The test counts the snapshot events against the rows, and compares PostgreSQL with what
Cassandra returns at CL=ALL."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import SimpleStatement

from controlplane.adapters import postgres
from controlplane.services.apply import apply_manifests
from controlplane.services.local_agents import LocalAgents
from controlplane.services.stack import Endpoints
from controlplane.services.targets import local_target
from tests.cluster.conftest import NODES, Cluster
from tests.cluster.test_cluster_stack import DEADLINE_S, pipeline_manifest, wait_for
from tests.stackfixture import connect_http, cql_cluster, kafka_config

pytestmark = pytest.mark.cluster

ROWS_BEFORE = 300


@pytest.fixture(scope="module")
def cql(cluster: Cluster) -> Iterator[Session]:

    s = cluster.stack.s
    hosts = [f"127.0.0.{i}" for i in range(1, s.nodes + 1)]
    # TLS and cdcctl's role, as every client of the stack (decision 0110)
    connection = cql_cluster(cluster.stack.endpoints(), hosts)
    yield connection.connect()
    connection.shutdown()


class SnapshotCount:
    """Counts the snapshot events (``source.snapshot == "true"``) of a topic per row key."""

    def __init__(self, stack: Endpoints, topic: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.per_key: dict[int, int] = {}
        self.live = 0
        self._consumer = Consumer(
            {
                **kafka_config(stack),
                "group.id": f"snapshot-count-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        # Only events produced from now on: a rerun on a kept stack finds the previous run's
        # events in the topic (the keyspace is recreated, the topic is not).
        self._start: dict[int, int] = {}
        metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is not None and metadata.error is None:
            for partition in metadata.partitions:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                self._start[partition] = high
        self._consumer.subscribe([topic])

    def poll(self) -> int:
        for message in self._consumer.consume(num_messages=1000, timeout=1.0):
            value, raw_key = message.value(), message.key()
            if message.error() is not None or not value or not raw_key:
                continue
            if (message.offset() or 0) < self._start.get(message.partition() or 0, 0):
                continue
            payload = json.loads(value)["payload"]
            if payload["source"].get("snapshot") != "true":
                self.live += 1
                continue
            key = int(json.loads(raw_key)["payload"]["id"])
            self.per_key[key] = self.per_key.get(key, 0) + 1
        return sum(self.per_key.values())

    def close(self) -> None:
        self._consumer.close()


class Writer(threading.Thread):
    """Writes at QUORUM until stopped (server timestamps): 70 % updates of pre-existing rows —
    the writes that race the agents' snapshot reads (decision 0106) — and 30 % new rows."""

    def __init__(self, cql: Session, keyspace: str) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.writes = 0
        self.updates = 0
        self.errors: list[str] = []
        self._cql = cql
        self._statement = SimpleStatement(
            f"INSERT INTO {keyspace}.events (id, v) VALUES (%s, %s)",
            consistency_level=ConsistencyLevel.QUORUM,
        )

    def run(self) -> None:
        draw = random.Random(11)  # nosec B311  # test data
        next_new = ROWS_BEFORE
        while not self.stop.is_set():
            update = draw.random() < 0.7
            if update:
                key = draw.randrange(ROWS_BEFORE)
            else:
                key, next_new = next_new, next_new + draw.randrange(1, 3)
            try:
                self._cql.execute(self._statement, (key, f"during-{self.writes}"))
                self.writes += 1
                self.updates += update
            except Exception as exc:  # recorded and asserted below
                self.errors.append(repr(exc))
            self.stop.wait(0.02)


def test_rows_before_the_pipeline_arrive_once_in_effect_with_concurrent_writes(
    cluster: Cluster, cql: Session, tmp_path: Path
) -> None:
    stack = cluster.stack
    keyspace = "clustersnap"
    # A kept stack (CDC_KEEP_STACK=1) still runs the last run's sink: delete it before its
    # tables go, or its task fails on the missing table.
    with connect_http(cluster.stack.endpoints()) as http:
        http.delete(f"/connectors/{keyspace}-jdbc-sink")
        wait_for(
            "the previous run's sink deleted",
            lambda: http.get(f"/connectors/{keyspace}-jdbc-sink").status_code,
            lambda code: code == 404,
        )
    cql.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    cql.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    cql.execute(f"CREATE TABLE {keyspace}.events (id int PRIMARY KEY, v text) WITH cdc = true")
    dsn = stack.postgres_dsn()
    postgres.execute(dsn, [f'DROP SCHEMA IF EXISTS "{keyspace}_cdc" CASCADE'])
    before = SimpleStatement(
        f"INSERT INTO {keyspace}.events (id, v) VALUES (%s, %s)",
        consistency_level=ConsistencyLevel.QUORUM,
    )
    for i in range(ROWS_BEFORE):
        cql.execute(before, (i, f"before-{i}"))

    manifest = tmp_path / "snapshot.yaml"
    manifest.write_text(pipeline_manifest(cluster, keyspace))
    count = SnapshotCount(stack.endpoints(), f"clu.{keyspace}.events")
    writer = Writer(cql, keyspace)
    writer.start()
    try:
        apply_manifests([manifest], local_target(stack.lay.root), agents=LocalAgents(stack.s))
        # Writes keep going while the agents snapshot; then they stop.
        wait_for(
            "snapshot events of every pre-existing row",
            count.poll,
            lambda _n: all(k in count.per_key for k in range(ROWS_BEFORE)),
        )
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert not writer.errors, writer.errors[:3]
    assert writer.writes > 0

    all_read = SimpleStatement(
        f"SELECT id, v FROM {keyspace}.events", consistency_level=ConsistencyLevel.ALL
    )
    expected = {row.id: row.v for row in cql.execute(all_read)}
    assert len(expected) >= ROWS_BEFORE

    def postgres_rows() -> dict[int, Any]:
        return dict(postgres.query(dsn, f'SELECT id, v FROM "{keyspace}"."events"', []))

    def differences(actual: dict[int, Any]) -> int:
        keys = expected.keys() | actual.keys()
        return sum(1 for k in keys if expected.get(k) != actual.get(k))

    end = time.monotonic() + DEADLINE_S
    actual = postgres_rows()
    while differences(actual) and time.monotonic() < end:
        time.sleep(0.5)
        actual = postgres_rows()
    # Late snapshot copies (an agent still snapshotting) must change nothing either.
    settle = time.monotonic() + 15
    while time.monotonic() < settle:
        count.poll()
    count.close()
    actual = postgres_rows()
    copies = sorted(count.per_key.get(k, 0) for k in range(ROWS_BEFORE))
    figures = {
        "rows_before": ROWS_BEFORE,
        "writes_during": writer.writes,
        "updates_of_rows_before": writer.updates,
        "snapshot_events": sum(count.per_key.values()),
        "snapshot_events_per_row": round(sum(count.per_key.values()) / len(count.per_key), 3),
        "min_copies": copies[0],
        "max_copies": copies[-1],
        "differences": differences(actual),
    }
    print(f"\ninitial snapshot on {NODES} nodes: {figures}")
    (stack.lay.root / "snapshot-figures.json").write_text(json.dumps(figures, indent=1))
    assert figures["differences"] == 0, {
        k: (expected.get(k), actual.get(k))
        for k in sorted(expected.keys() | actual.keys())
        if expected.get(k) != actual.get(k)
    }
    # Every agent snapshots: each pre-existing row once per node (never fewer than one).
    assert copies[0] >= 1
    assert copies[-1] <= NODES

"""Capture real Debezium Cassandra change events as the transform's JUnit fixtures.

Runs a scripted CQL workload against the local stack (`cdcctl stack up` first), reads what the
real agent produced to Kafka after each step, and writes one JSON file per scenario to
transforms/src/test/resources/events/ in the format the tests load:
{"scenario", "cql", "topic", "partition", "offset", "key": {schema, payload}, "value": {...}}.

    python scripts/capture_events.py            # regenerate every fixture
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cassandra.cluster import Cluster
from confluent_kafka import Consumer, TopicPartition

from controlplane.services.stack import LocalStack, settings_for

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "transforms" / "src" / "test" / "resources" / "events"
KS = "fixtures"
PREFIX = "cdc"
DEADLINE_S = 60

SETUP = [
    f"DROP KEYSPACE IF EXISTS {KS}",
    f"CREATE KEYSPACE {KS} WITH replication = "
    "{'class': 'SimpleStrategy', 'replication_factor': 1}",
    f"CREATE TABLE {KS}.rows (pk int, ck int, a text, b bigint, c uuid, "
    "PRIMARY KEY (pk, ck)) WITH cdc = true",
    f"CREATE TABLE {KS}.simple (id int PRIMARY KEY, name text, score double) WITH cdc = true",
]

# (scenario, table, cql): each step's events are captured separately.
STEPS: list[tuple[str, str, str]] = [
    (
        "insert",
        "rows",
        f"INSERT INTO {KS}.rows (pk, ck, a, b, c) VALUES (1, 1, 'one', 10, {uuid.UUID(int=1)})",  # noqa: S608
    ),
    ("update_one_column", "rows", f"UPDATE {KS}.rows SET a = 'uno' WHERE pk = 1 AND ck = 1"),  # noqa: S608
    ("update_set_null", "rows", f"UPDATE {KS}.rows SET b = null WHERE pk = 1 AND ck = 1"),  # noqa: S608
    ("delete_one_column", "rows", f"DELETE a FROM {KS}.rows WHERE pk = 1 AND ck = 1"),
    (
        "insert_using_timestamp",
        "rows",
        f"INSERT INTO {KS}.rows (pk, ck, a) VALUES (1, 2, 'old') USING TIMESTAMP 1000",  # noqa: S608
    ),
    (
        "insert_ttl",
        "rows",
        f"INSERT INTO {KS}.rows (pk, ck, a, b) VALUES (1, 3, 'ttl', 3) USING TTL 3600",  # noqa: S608
    ),
    (
        "update_ttl",
        "rows",
        f"UPDATE {KS}.rows USING TTL 600 SET a = 'short' WHERE pk = 1 AND ck = 4",  # noqa: S608
    ),
    ("row_delete", "rows", f"DELETE FROM {KS}.rows WHERE pk = 1 AND ck = 1"),  # noqa: S608
    ("range_delete", "rows", f"DELETE FROM {KS}.rows WHERE pk = 1 AND ck > 1 AND ck <= 3"),  # noqa: S608
    ("partition_delete", "rows", f"DELETE FROM {KS}.rows WHERE pk = 1"),  # noqa: S608
    ("simple_insert", "simple", f"INSERT INTO {KS}.simple (id, name, score) VALUES (7, 'x', 1.5)"),  # noqa: S608
    ("simple_delete", "simple", f"DELETE FROM {KS}.simple WHERE id = 7"),  # noqa: S608
]


def end_offsets(consumer: Consumer, topic: str) -> int:
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
    except Exception:  # the topic does not exist until the agent's first event
        return 0
    return int(high)


def read_from(consumer: Consumer, topic: str, start: int) -> list[dict[str, Any]]:
    """Every record of partition 0 of `topic` from offset `start`, waiting until one arrives."""
    deadline = time.monotonic() + DEADLINE_S
    while end_offsets(consumer, topic) <= start:
        if time.monotonic() > deadline:
            raise SystemExit(f"no event on {topic} after offset {start} within {DEADLINE_S}s")
        time.sleep(0.2)
    time.sleep(1.5)  # one CQL statement can yield several events; let them all land
    high = end_offsets(consumer, topic)
    consumer.assign([TopicPartition(topic, 0, start)])
    out: list[dict[str, Any]] = []
    while len(out) < high - start:
        msg = consumer.poll(5)
        if msg is None:
            break
        if msg.error():
            continue
        out.append(
            {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": json.loads(msg.key()) if msg.key() else None,
                "value": json.loads(msg.value()) if msg.value() else None,
            }
        )
    return out


def main() -> int:
    cluster = Cluster(["127.0.0.1"], protocol_version=5)
    session = cluster.connect()
    consumer = Consumer(
        {
            "bootstrap.servers": "127.0.0.1:9092",
            "group.id": f"capture-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    for stmt in SETUP:
        session.execute(stmt)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("real_*.json"):
        old.unlink()

    # A row that existed before the table had cdc on arrives through the agent's snapshot.
    session.execute(f"CREATE TABLE {KS}.presnap (id int PRIMARY KEY, v text) WITH cdc = false")
    session.execute(f"INSERT INTO {KS}.presnap (id, v) VALUES (1, 'before cdc')")  # noqa: S608
    session.execute(f"ALTER TABLE {KS}.presnap WITH cdc = true")
    # The agent reads table schemas at start; new tables are captured after a restart (this is
    # what `cdcctl apply` does on the local stack too).
    LocalStack(settings_for()).restart_agent()
    snap = read_from(consumer, f"{PREFIX}.{KS}.presnap", 0)
    write(snap, "snapshot_row", "row present before cdc = true (agent snapshot)")

    for scenario, table, cql in STEPS:
        topic = f"{PREFIX}.{KS}.{table}"
        start = end_offsets(consumer, topic)
        session.execute(cql)
        write(read_from(consumer, topic, start), scenario, cql)
    consumer.close()
    cluster.shutdown()
    return 0


def write(events: list[dict[str, Any]], scenario: str, cql: str) -> None:
    for i, ev in enumerate(events):
        name = f"real_{scenario}" + (f"_{i}" if len(events) > 1 else "")
        doc = {"scenario": scenario, "cql": cql, **ev}
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        print(f"{name}: op={ev['value']['payload']['op'] if ev['value'] else None}")


if __name__ == "__main__":
    sys.exit(main())

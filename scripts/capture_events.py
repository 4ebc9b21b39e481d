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
PREFIX = "demo"  # the node's one agent uses the pipelines' prefix (decision 0013)
DEADLINE_S = 60
NO_EVENT_S = 25

SETUP = [
    f"DROP KEYSPACE IF EXISTS {KS}",
    f"CREATE KEYSPACE {KS} WITH replication = "
    "{'class': 'SimpleStrategy', 'replication_factor': 1}",
    f"CREATE TABLE {KS}.rows (pk int, ck int, a text, b bigint, c uuid, "
    "PRIMARY KEY (pk, ck)) WITH cdc = true",
    f"CREATE TABLE {KS}.simple (id int PRIMARY KEY, name text, score double) WITH cdc = true",
    f'CREATE TYPE {KS}.addr (street text, "Zip" int)',
    # every scalar, frozen and non-frozen collections, tuple, frozen UDT, nesting. NOT captured,
    # because they break the node's one agent for every table (seen 2026-11-25, agent 3.4.1.Final):
    # a vector<float, n> column (its driver 4.14 cannot parse the type and runs without schema
    # metadata: "Unable to get KeyValueSchema" for all tables) and a non-frozen UDT column (the
    # snapshot dies with a ClassCastException in SnapshotProcessor.calculateDeletionTs).
    f"CREATE TABLE {KS}.types (id int PRIMARY KEY, a ascii, bi bigint, bl blob, bo boolean, "
    "d date, dc decimal, db double, du duration, f float, ip inet, i int, si smallint, t text, "
    "tm time, ts timestamp, tu timeuuid, ti tinyint, u uuid, vi varint, "
    "l list<text>, s set<int>, m map<text, int>, fl frozen<list<text>>, fs frozen<set<int>>, "
    "fm frozen<map<text, int>>, tup tuple<int, text>, ud frozen<addr>, "
    "nest frozen<map<text, frozen<list<int>>>>, nl list<frozen<list<int>>>) WITH cdc = true",
    f"CREATE TABLE {KS}.stat (pk int, ck int, st text STATIC, v text, "
    "PRIMARY KEY (pk, ck)) WITH cdc = true",
    # composite partition key, DESC clustering. NOT case-sensitive or reserved-word names: the
    # agent's snapshot builds its SELECT with CqlIdentifier.fromCql(name), which folds "Tenant"
    # to tenant and refuses select ("Invalid CQL form [select]: needs double quotes"), and dies,
    # stopping capture for every table on the node.
    f"CREATE TABLE {KS}.comp (tenant text, region int, ck int, c2 text, v text, n int, "
    "PRIMARY KEY ((tenant, region), ck, c2)) "
    "WITH CLUSTERING ORDER BY (ck DESC, c2 ASC) AND cdc = true",
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
    (
        "types_insert",
        "types",
        f"INSERT INTO {KS}.types (id, a, bi, bl, bo, d, dc, db, du, f, ip, i, si, t, tm, ts, tu, "  # noqa: S608
        "ti, u, vi, l, s, m, fl, fs, fm, tup, ud, nest, nl) VALUES (1, 'asc', "
        "-9223372036854775808, 0xcafe, true, '1969-07-20', "
        "123456789012345678901234567890.123456789, "
        "NaN, 1y2mo3w4d5h6m7s8ms9us10ns, -Infinity, '::1', 2147483647, -32768, 'ünï ☃', "
        "'23:59:59.123456789', '1900-01-01 00:00:00.001+0000', "
        "50554d6e-29bb-11e5-b345-feff819cdc9f, -128, 00000000-0000-0000-0000-000000000001, "
        "-123456789012345678901234567890, ['x', 'y', 'x'], {3, 1, 2}, {'k1': 1, 'k2': 2}, "
        "['a', 'b'], {5, 4}, {'z': 26}, (7, 'seven'), {street: 'Main', \"Zip\": 12345}, "
        "{'p': [1, 2], 'q': []}, [[1, 2], [3]])",
    ),
    ("types_list_append", "types", f"UPDATE {KS}.types SET l = l + ['z'] WHERE id = 1"),  # noqa: S608
    ("types_list_overwrite", "types", f"UPDATE {KS}.types SET l = ['only'] WHERE id = 1"),  # noqa: S608
    ("types_set_remove", "types", f"UPDATE {KS}.types SET s = s - {{2}} WHERE id = 1"),  # noqa: S608
    ("types_map_put", "types", f"UPDATE {KS}.types SET m['k3'] = 3 WHERE id = 1"),  # noqa: S608
    ("types_map_delete_key", "types", f"DELETE m['k1'] FROM {KS}.types WHERE id = 1"),
    ("types_collection_null", "types", f"UPDATE {KS}.types SET s = null, fl = null WHERE id = 1"),  # noqa: S608
    ("types_empty_frozen", "types", f"UPDATE {KS}.types SET fl = [], fm = {{}} WHERE id = 1"),  # noqa: S608
    ("static_only", "stat", f"UPDATE {KS}.stat SET st = 's1' WHERE pk = 1"),  # noqa: S608
    ("static_and_row", "stat", f"INSERT INTO {KS}.stat (pk, ck, st, v) VALUES (1, 1, 's2', 'v')"),  # noqa: S608
    (
        "comp_insert",
        "comp",
        f"INSERT INTO {KS}.comp (tenant, region, ck, c2, v, n) "  # noqa: S608
        "VALUES ('acme', 1, 5, 'b', 'v', 9)",
    ),
    (
        "comp_range_delete",
        "comp",
        f"DELETE FROM {KS}.comp WHERE tenant = 'acme' AND region = 1 "  # noqa: S608
        "AND ck = 5 AND c2 >= 'a' AND c2 < 'c'",
    ),
    (
        "comp_range_delete_desc",
        "comp",
        f"DELETE FROM {KS}.comp WHERE tenant = 'acme' AND region = 1 AND ck > 2 AND ck <= 7",  # noqa: S608
    ),
    (
        "comp_partition_delete",
        "comp",
        f"DELETE FROM {KS}.comp WHERE tenant = 'acme' AND region = 1",  # noqa: S608
    ),
]


def end_offsets(consumer: Consumer, topic: str) -> int:
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
    except Exception:  # the topic does not exist until the agent's first event
        return 0
    return int(high)


def read_from(
    consumer: Consumer, topic: str, start: int, deadline_s: float = DEADLINE_S
) -> list[dict[str, Any]]:
    """Every record of partition 0 of `topic` from offset `start`, waiting until one arrives."""
    deadline = time.monotonic() + deadline_s
    while end_offsets(consumer, topic) <= start:
        if time.monotonic() > deadline:
            raise SystemExit(f"no event on {topic} after offset {start} within {deadline_s}s")
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
        try:
            events = read_from(consumer, topic, start, deadline_s=NO_EVENT_S)
        except SystemExit as e:  # the agent emits nothing for some constructs (static rows)
            print(f"{scenario}: NO EVENT ({e})")
            continue
        write(events, scenario, cql)
    consumer.close()
    # Dropped at the end: the agent snapshots every CDC table again when it restarts, and a
    # scratch keyspace has no business in anybody else's restart.
    session.execute(f"DROP KEYSPACE IF EXISTS {KS}")
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

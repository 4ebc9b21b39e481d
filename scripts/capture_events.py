"""Capture real Debezium Cassandra change events as the transform's JUnit fixtures.

Runs a scripted CQL workload against the local stack (`cdcctl stack up` first; the stack of
$CDC_STACK_DIR, on its ports), reads what the real agent produced to Kafka after each step, and
writes one JSON file per scenario to transforms/src/test/resources/events/ in the format the tests
load: {"scenario", "cql", "agent", "topic", "partition", "offset", "key": {schema, payload},
"value": {...}}.

Both Cassandra versions the stack runs: a 5.0 stack's events are ``real_<scenario>.json``, a 4.1
stack's (Debezium's cassandra-4 agent) ``real_c41_<scenario>.json``; a run replaces only the files
of its own version. JUnit's CapturedEventsTest runs every ``real_*`` file.

    python scripts/capture_events.py                           # the default stack (.stack/)
    CDC_STACK_DIR=.stack-c41 python scripts/capture_events.py  # a stack run with Cassandra 4.1
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from controlplane.adapters import cassandra
from controlplane.core.render import parse_properties, without_properties
from controlplane.core.stack_model import pom_properties
from controlplane.services.stack import LocalStack, settings_for

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "transforms" / "src" / "test" / "resources" / "events"
KS = "fixtures"
# File name prefix of each Cassandra version's captures (all start with real_: CapturedEventsTest).
FILE_PREFIX = {"5.0": "real_", "4.1": "real_c41_"}
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
    # every scalar inside a list, set, map (keys and values), tuple and frozen UDT: the agent's
    # schemas for nested values are what the transform's JSON forms and canonical.py rely on.
    # Not captured, because the agent converts only one level of a collection: a collection
    # inside a collection holding timestamp/uuid/inet/decimal/varint/duration/tuple/UDT/set
    # values stops the agent for every table (seen 2026-11-25 with a timestamp key of a map in a
    # frozen list: "Invalid Java object for schema io.debezium.time.Timestamp ... java.util.Date";
    # semantics_checks: nested-collection-breaks-agent). A tuple resets the level (`deep`).
    f"CREATE TYPE {KS}.allt (ts timestamp, bl blob, d date, tm time, du duration, u uuid, "
    "tu timeuuid, ip inet, dc decimal, vi varint, f float, db double, bi bigint, ti tinyint, "
    "si smallint, bo boolean, a ascii, t text)",
    f"CREATE TABLE {KS}.nested (id int PRIMARY KEY, lts list<timestamp>, lbl list<blob>, "
    "ld list<date>, ltm list<time>, ldu list<duration>, lu list<uuid>, lip list<inet>, "
    "ldc list<decimal>, lvi list<varint>, lf list<float>, ldb list<double>, "
    "sts set<timestamp>, sbl frozen<set<blob>>, sdc set<decimal>, mts map<timestamp, blob>, "
    "mdi map<date, inet>, mdc frozen<map<decimal, varint>>, mdb map<double, time>, "
    "mu map<uuid, duration>, tup tuple<timestamp, blob, date, time, duration, uuid, inet, "
    "decimal, varint, float, double>, ud frozen<allt>, "
    "deep frozen<list<frozen<tuple<timestamp, frozen<list<decimal>>>>>>) WITH cdc = true",
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
    (
        "nested_insert",
        "nested",
        f"INSERT INTO {KS}.nested (id, lts, lbl, ld, ltm, ldu, lu, lip, ldc, lvi, lf, ldb, sts, "  # noqa: S608
        "sbl, sdc, mts, mdi, mdc, mdb, mu, tup, ud, deep) VALUES (1, "
        # timestamps as epoch ms: year 1, just before 1970, 1970, the last ms of 9999
        "[-62135596800000, -1, 0, 253402300799999], [0x, 0x00ff, 0xcafe], "
        "['-5877641-06-23', '0001-01-01', '1969-12-31', '+5881580-07-11'], "
        "[0, 86399999999999], [1mo, 45d, 25h, -1y2d3ns, 1ns], "
        "[00000000-0000-0000-0000-000000000001, ffffffff-ffff-ffff-ffff-ffffffffffff], "
        "['10.0.0.1', '::1', '2001:db8::ff00:42:8329'], "
        "[-0.000000000000000000000000000001, 123456789012345678901234567890.1234567890, 1.50], "
        "[1606938044258990275541962092341162602522202993782792835301376, -1, 0], "
        "[NaN, Infinity, -Infinity, 1.1, -0.0], [NaN, Infinity, -Infinity, 0.1, 1e308], "
        "{-1, 253402300799999}, {0x, 0x01}, {1.0, 2.50}, "
        "{-62135596800000: 0x, 0: 0xff}, {'1969-12-31': '::ffff:1.2.3.4', '1970-01-01': '::1'}, "
        "{1.50: -1606938044258990275541962092341162602522202993782792835301376}, "
        "{NaN: 1, -Infinity: 2, 0.5: 3}, {00000000-0000-0000-0000-000000000001: 1mo2d3ns}, "
        "(-1, 0x, '1969-12-31', 1, -1d1ns, 00000000-0000-0000-0000-000000000002, '::1', "
        "-1.0E-30, -1, NaN, -Infinity), "
        "{ts: 0, bl: 0xcafe, d: '1970-01-01', tm: 1, du: 1mo, "
        "u: 00000000-0000-0000-0000-000000000003, "
        "tu: 50554d6e-29bb-11e5-b345-feff819cdc9f, ip: '10.0.0.1', dc: 1.0, vi: 2, f: Infinity, "
        "db: NaN, bi: -9223372036854775808, ti: -128, si: 32767, bo: false, a: '', t: 'ünï'}, "
        "[(-1, [0.0, -1.5]), (253402300799999, [])])",
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


def topic_prefix(stack: LocalStack) -> str:
    """The agent's topic.prefix: the stack's default, or the pipelines' once `cdcctl apply` ran
    (the node's one agent uses the pipelines' prefix, decision 0013)."""
    return parse_properties(stack.agent_properties_path().read_text())["topic.prefix"]


def agent_version(stack: LocalStack) -> str:
    """``debezium-connector-cassandra-4 3.3.0.Final``: which agent wrote the events."""
    f = stack.s.flavour
    pins = pom_properties((ROOT / "compose" / "native" / "pom.xml").read_text())
    return (
        f"{f.agent_artifact} {pins.get(f.agent_pin, '?')} (Cassandra {pins.get(f.cassandra_pin)})"
    )


def is_own(path: Path, version: str) -> bool:
    """Is `path` a capture of this Cassandra version (5.0's prefix is a prefix of 4.1's)?"""
    name = path.name
    others = [
        p for v, p in FILE_PREFIX.items() if v != version and p.startswith(FILE_PREFIX[version])
    ]
    return name.startswith(FILE_PREFIX[version]) and not any(name.startswith(p) for p in others)


def forget_snapshots(stack: LocalStack) -> None:
    """While the agent is stopped: drop this keyspace's tables from its snapshot offsets. It
    snapshots a table once per name, and the keyspace is recreated on every run."""
    props = parse_properties(stack.agent_properties_path().read_text())
    path = Path(props["offset.backing.store.dir"]) / "snapshot_offset.properties"
    if path.exists():
        text = path.read_text()
        doomed = [k for k in parse_properties(text) if k.startswith(f"{KS}.")]
        path.write_text(without_properties(text, doomed))


def main() -> int:
    stack = LocalStack(settings_for())
    version = stack.s.cassandra_version
    ep = stack.endpoints()
    prefix = topic_prefix(stack)
    agent = agent_version(stack)
    print(f"capturing from {agent}, topics {prefix}.{KS}.*, into {OUT}/{FILE_PREFIX[version]}*")
    # TLS and cdcctl's role unless the stack runs --insecure (decision 0110)
    cluster, session = cassandra.connect(
        ep.cassandra_host, ep.cassandra_port, security=ep.cassandra_security
    )
    consumer = Consumer(
        {
            "bootstrap.servers": ep.kafka_bootstrap,
            "group.id": f"capture-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    for stmt in SETUP:
        session.execute(stmt, timeout=120)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("real_*.json"):
        if is_own(old, version):
            old.unlink()

    def write(events: list[dict[str, Any]], scenario: str, cql: str) -> None:
        write_events(events, scenario, cql, FILE_PREFIX[version], agent)

    # A row that existed before the table had cdc on arrives through the agent's snapshot.
    session.execute(f"CREATE TABLE {KS}.presnap (id int PRIMARY KEY, v text) WITH cdc = false")
    session.execute(f"INSERT INTO {KS}.presnap (id, v) VALUES (1, 'before cdc')")  # noqa: S608
    session.execute(f"ALTER TABLE {KS}.presnap WITH cdc = true")
    # The agent reads table schemas at start; new tables are captured after a restart (this is
    # what `cdcctl apply` does on the local stack too).
    # The topic outlives the keyspace: read only what this run's snapshot adds.
    snap_start = end_offsets(consumer, f"{prefix}.{KS}.presnap")
    stack.restart_agent(before_start=lambda: forget_snapshots(stack))
    # Generous: the snapshot takes its turn behind every other CDC table on the shared node.
    snap = read_from(consumer, f"{prefix}.{KS}.presnap", snap_start, deadline_s=300)
    write(snap, "snapshot_row", "row present before cdc = true (agent snapshot)")

    for scenario, table, cql in STEPS:
        topic = f"{prefix}.{KS}.{table}"
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
    # A schema change waits for every node's agreement: more than the driver's 10 s when busy.
    session.execute(f"DROP KEYSPACE IF EXISTS {KS}", timeout=120)
    cluster.shutdown()
    return 0


def write_events(
    events: list[dict[str, Any]], scenario: str, cql: str, file_prefix: str, agent: str
) -> None:
    for i, ev in enumerate(events):
        name = f"{file_prefix}{scenario}" + (f"_{i}" if len(events) > 1 else "")
        doc = {"scenario": scenario, "cql": cql, "agent": agent, **ev}
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        print(f"{name}: op={ev['value']['payload']['op'] if ev['value'] else None}")


if __name__ == "__main__":
    sys.exit(main())

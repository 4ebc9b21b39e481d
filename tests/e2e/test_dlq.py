"""Poison records go to the DLQ with context and the pipeline keeps running; `cdcctl dlq ls`
lists them and `cdcctl dlq replay` sends them back, once.

The tests run in order on one pipeline (`dlq-e2e`, keyspace `dlq_e2e`, one table whose topic has
one partition): every step waits on a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cassandra.cluster import Session
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from controlplane.adapters import kafka, postgres
from controlplane.core.dlq import (
    H_CONNECTOR,
    H_EXC_CLASS,
    H_EXC_MESSAGE,
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    H_TASK,
    H_TOPIC,
    REPLAY_HEADER,
    DlqRecord,
    parse_record,
    replay_group,
)
from controlplane.services.stack import Endpoints, LocalStack
from tests.cli import cdcctl_json
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy, differences, table_model
from tests.stackfixture import session_ports

pytestmark = pytest.mark.e2e

KS = "dlq_e2e"
NAME = "dlq-e2e"
TOPIC = f"demo.{KS}.t"
DLQ = f"{NAME}.dlq"
CONNECTOR = f"{NAME}-jdbc-sink"
BOOTSTRAP = f"127.0.0.1:{session_ports().kafka}"  # the session stack's (port offset)
CONNECT = f"http://127.0.0.1:{session_ports().connect}"
TABLES = {"t": f"CREATE TABLE {KS}.t (id int PRIMARY KEY, v text, n int) WITH cdc = true"}


@pytest.fixture(scope="module")
def pipeline(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """The deployed pipeline's manifest; its DLQ and replay group start empty."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    if DLQ in admin.list_topics(timeout=10).topics:
        for fut in admin.delete_topics([DLQ], operation_timeout=30).values():
            fut.result()
        wait_for(
            f"{DLQ} deleted",
            lambda: DLQ in admin.list_topics(timeout=10).topics,
            lambda present: not present,
        )
    with contextlib.suppress(Exception):  # no such group on a first run
        for fut in admin.delete_consumer_groups([replay_group(NAME)]).values():
            fut.result()
    tmp = tmp_path_factory.mktemp("dlq")
    deploy(cql, local_stack, stack.postgres_dsn, tmp, name=NAME, keyspace=KS, tables=TABLES)
    yield tmp / f"{NAME}.yaml"
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")  # later agent restarts need not snapshot it


def cdcctl(*args: str) -> Any:
    return cdcctl_json(*args, timeout=120)


def dlq_records() -> list[DlqRecord]:
    return [parse_record(r) for r in kafka.read_topic(BOOTSTRAP, DLQ)]


def produce(topic: str, key: bytes | None, value: bytes | None, headers: Any = ()) -> int:
    """Produce one record, return its offset."""
    got: list[Any] = []
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    producer.produce(
        topic, key=key, value=value, headers=list(headers), on_delivery=lambda e, m: got.append(m)
    )
    assert producer.flush(30) == 0
    assert got
    assert got[0].error() is None
    return int(got[0].offset())


def assert_running() -> None:
    status = httpx.get(f"{CONNECT}/connectors/{CONNECTOR}/status", timeout=10).json()
    assert status["connector"]["state"] == "RUNNING", status
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"], status


def write_rows(cql: Session, ids: range) -> None:
    for i in ids:
        cql.execute(f"INSERT INTO {KS}.t (id, v, n) VALUES (%s, %s, %s)", (i, f"v{i}", i))


def pg_count(dsn: str) -> int:
    return int(postgres.query(dsn, f'SELECT count(*) FROM "{KS}"."t"')[0][0])


def an_event(key_id: int | None = None) -> tuple[bytes, bytes, int]:
    """A real agent event from the table topic (of `key_id`, else any): key, value, offset."""
    for r in kafka.read_topic(BOOTSTRAP, TOPIC):
        if r.key is None or r.value is None:
            continue
        if key_id is None or json.loads(r.key)["payload"]["id"] == key_id:
            return r.key, r.value, r.offset
    raise AssertionError(f"no agent event for id={key_id} in {TOPIC}")


class State:
    poison_offsets: list[int] = []  # noqa: RUF012  # shared between the ordered tests


def test_poison_records_go_to_the_dlq_and_the_pipeline_keeps_running(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    write_rows(cql, range(20))
    wait_for("20 rows before the poison", lambda: pg_count(dsn), lambda n: n == 20)

    key, value, _ = an_event()
    envelope = json.loads(value)
    envelope["payload"]["op"] = "x"  # well-formed envelope, an op CassandraToRow does not know
    not_json = produce(TOPIC, key, b"\x00this is not the agent's JSON envelope")
    bad_op = produce(TOPIC, key, json.dumps(envelope).encode())
    State.poison_offsets = [not_json, bad_op]

    write_rows(cql, range(20, 40))
    records = wait_for("2 records in the DLQ", dlq_records, lambda rs: len(rs) == 2)
    model = table_model(cql, KS, "t")
    wait_for("PostgreSQL equals Cassandra", lambda: differences(cql, dsn, model), lambda d: not d)
    assert pg_count(dsn) == 40
    assert_running()

    by_offset = {r.context.offset: r for r in records if r.context is not None}
    assert sorted(by_offset) == [not_json, bad_op]
    for r in records:
        assert r.context is not None
        assert (r.context.topic, r.context.partition) == (TOPIC, 0)
        assert r.context.connector == CONNECTOR
        assert r.context.task == 0
        assert r.replay_of is None
        assert r.raw.key == key  # bytes unchanged
    conv = by_offset[not_json].context
    assert conv is not None
    assert conv.stage == "VALUE_CONVERTER"
    assert conv.exception_class == "org.apache.kafka.connect.errors.DataException"
    assert conv.stacktrace
    transform = by_offset[bad_op].context
    assert transform is not None
    assert transform.stage == "TRANSFORMATION"
    assert transform.exception_class == "org.apache.kafka.connect.errors.DataException"
    assert "unknown op 'x'" in (transform.exception_message or "")

    listed = cdcctl("dlq", "ls", "-f", str(pipeline))
    assert [(r["topic"], r["topic_partition"], r["topic_offset"]) for r in listed] == [
        (TOPIC, 0, not_json),
        (TOPIC, 0, bad_op),
    ]
    assert all(r["pipeline"] == NAME and not r["replayed"] for r in listed)
    shown = cdcctl("dlq", "show", "-f", str(pipeline), f"0:{listed[1]['offset']}")
    assert shown["value"]["json"]["payload"]["op"] == "x"
    assert shown["key"] == {"json": json.loads(key)}
    assert "unknown op" in shown["stacktrace"]
    assert {h["key"] for h in shown["headers"]} >= {H_TOPIC, H_PARTITION, H_OFFSET, H_EXC_CLASS}


def test_replayed_poison_fails_again_and_is_not_replayed_twice(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    assert State.poison_offsets, "runs after the poison test"
    first = [(r.raw.partition, r.raw.offset) for r in dlq_records()]
    assert len(first) == 2

    dry = cdcctl("dlq", "replay", "-f", str(pipeline), "--dry-run")
    assert [r["action"] for r in dry] == ["would replay"] * 2
    done = cdcctl("dlq", "replay", "-f", str(pipeline), "--yes")
    assert [(r["partition"], r["offset"], r["action"]) for r in done] == [
        (p, o, "replayed") for p, o in first
    ]
    assert {r["to"] for r in done} == {f"{TOPIC}/0"}

    records = wait_for("the replayed poison back in the DLQ", dlq_records, lambda rs: len(rs) == 4)
    again = records[2:]
    assert sorted(r.replay_of or "" for r in again) == [f"{DLQ}/{p}/{o}" for p, o in first]
    for r in again:
        assert r.context is not None
        assert r.context.topic == TOPIC
        assert r.context.offset not in State.poison_offsets  # the replayed copies
        # Connect's headers of the first failure were stripped: one set, of the second failure.
        assert [k for k, _ in r.raw.headers].count(H_TOPIC) == 1
        assert [k for k, _ in r.raw.headers].count(REPLAY_HEADER) == 1
    dsn = stack.postgres_dsn
    write_rows(cql, range(40, 45))  # and the pipeline still flows
    model = table_model(cql, KS, "t")
    wait_for("PostgreSQL equals Cassandra", lambda: differences(cql, dsn, model), lambda d: not d)
    assert_running()

    second = cdcctl("dlq", "replay", "-f", str(pipeline), "--yes")
    assert [r["action"] for r in second] == ["skipped", "skipped"]  # failed replays: no loop
    assert all("failed again after a replay" in r["reason"] for r in second)
    assert cdcctl("dlq", "replay", "-f", str(pipeline), "--yes") == []
    listed = cdcctl("dlq", "ls", "-f", str(pipeline))
    assert [r["replayed"] for r in listed] == [True] * 4
    assert len(dlq_records()) == 4  # nothing new failed
    assert_running()


def test_replay_delivers_a_record_whose_failure_was_fixed(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    """The success path of a replay.

    This record is **simulated**: a real agent event whose earlier failure has been fixed since
    (say a PostgreSQL column was too narrow) cannot be produced on demand without breaking the
    shared stack. So the row is written in Cassandra USING TIMESTAMP, its real agent event is
    copied from the table topic, the row is removed from PostgreSQL's raw table (the state the
    failure would have left), and the event is put into the DLQ with the context headers Connect
    writes, pointing at the event's own topic/partition/offset. `dlq replay` must then bring the
    row into PostgreSQL equal to Cassandra.
    """
    dsn = stack.postgres_dsn
    model = table_model(cql, KS, "t")
    cql.execute(f"INSERT INTO {KS}.t (id, v, n) VALUES (1000, 'fixed', 7) USING TIMESTAMP 1000000")
    wait_for(
        "row 1000 in PostgreSQL",
        lambda: postgres.query(dsn, f'SELECT v, n FROM "{KS}"."t" WHERE id = 1000'),
        lambda rows: rows == [("fixed", 7)],
    )
    key, value, offset = an_event(1000)
    assert json.loads(value)["payload"]["source"]["ts_us"] == 1_000_000
    postgres.execute(dsn, [f'DELETE FROM "{KS}_cdc"."t" WHERE id = 1000'])
    assert differences(cql, dsn, model) == ["missing in PostgreSQL: (1000,)"]

    headers = [
        (H_TOPIC, TOPIC.encode()),
        (H_PARTITION, b"0"),
        (H_OFFSET, str(offset).encode()),
        (H_CONNECTOR, CONNECTOR.encode()),
        (H_TASK, b"0"),
        (H_STAGE, b"TASK_PUT"),
        (H_EXC_CLASS, b"org.apache.kafka.connect.errors.ConnectException"),
        (H_EXC_MESSAGE, b"simulated: failed before the fix"),
    ]
    dlq_offset = produce(DLQ, key, value, headers)

    done = cdcctl("dlq", "replay", "-f", str(pipeline), "--yes")
    assert [(r["offset"], r["action"]) for r in done] == [(dlq_offset, "replayed")]
    wait_for("PostgreSQL equals Cassandra", lambda: differences(cql, dsn, model), lambda d: not d)
    assert cdcctl("dlq", "replay", "-f", str(pipeline), "--yes") == []
    assert len(dlq_records()) == 5
    assert_running()

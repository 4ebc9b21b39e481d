"""Duplicates and reordering, for real: a randomized workload (USING TIMESTAMP out of order, ties,
row/partition/range deletes, cell deletes, TTL) runs through the pipeline; its real event stream
is then read back from Kafka and delivered again, every event 1 to 3 times and shuffled across
and within keys (as replicas and retries would), to a replay topic that a second JDBC sink with
the same transform writes into a second PostgreSQL schema. Both copies must equal Cassandra.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import Session
from confluent_kafka import Consumer, Producer, TopicPartition

from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy, differences, table_model
from tests.e2e.torture_ops import BODY, next_op, statements
from tests.stackfixture import session_ports

pytestmark = pytest.mark.e2e

KS = "sem_tort"
REPLAY_KS = "sem_tort_replay"
SEED = 20261125
OPS = 600
BOOTSTRAP = f"127.0.0.1:{session_ports().kafka}"  # the session stack's (port offset)


def workload(cql: Session, rnd: random.Random) -> None:
    prepared = {kind: cql.prepare(cql_text) for kind, cql_text in statements(f"{KS}.t").items()}
    for _ in range(OPS):
        kind, params = next_op(rnd)
        cql.execute(prepared[kind], params)


def read_topic(topic: str) -> list[tuple[bytes | None, bytes | None]]:
    c = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": "sem-tort-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        tp = TopicPartition(topic, 0, 0)
        _, high = c.get_watermark_offsets(tp, timeout=10)
        c.assign([tp])
        out: list[tuple[bytes | None, bytes | None]] = []
        while len(out) < high:
            msg = c.poll(5)
            if msg is None:
                break
            if not msg.error():
                out.append((msg.key(), msg.value()))
        return out
    finally:
        c.close()


def lag(group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    try:
        tp = TopicPartition(topic, 0)
        committed = c.committed([tp], timeout=10)[0].offset
        _, high = c.get_watermark_offsets(tp, timeout=10)
        return int(high - committed) if committed >= 0 else int(high)
    finally:
        c.close()


@pytest.fixture(scope="module")
def torture(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("sem_tort")
    deploy(
        cql,
        local_stack,
        stack.postgres_dsn,
        tmp,
        name="sem-tort",
        keyspace=KS,
        tables={"t": f"CREATE TABLE {KS}.t {BODY}"},
    )
    # The replay pipeline: same transform and sink, its own topic and schema. Its Cassandra
    # table exists only so `apply` can read the schema; nothing is ever written to it.
    deploy(
        cql,
        local_stack,
        stack.postgres_dsn,
        tmp,
        name="sem-tort-replay",
        keyspace=REPLAY_KS,
        tables={"t": f"CREATE TABLE {REPLAY_KS}.t {BODY}"},
    )
    rnd = random.Random(SEED)
    workload(cql, rnd)
    cql.execute(f"INSERT INTO {KS}.t (pk, ck, a) VALUES (99, 0, 'sentinel')")
    yield {"rnd": rnd}
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    cql.execute(f"DROP KEYSPACE IF EXISTS {REPLAY_KS}")


def test_live_pipeline_converges(torture: dict[str, Any], cql: Session, stack: Endpoints) -> None:
    model = table_model(cql, KS, "t")
    wait_for(
        "the live copy equals Cassandra",
        lambda: differences(cql, stack.postgres_dsn, model),
        lambda d: d == [],
        deadline=120,
    )


def test_every_event_1_to_3_times_shuffled_converges(
    torture: dict[str, Any], cql: Session, stack: Endpoints
) -> None:
    model = table_model(cql, KS, "t")
    wait_for(  # the whole stream is in Kafka once the sentinel arrived
        "sentinel",
        lambda: any(k and b"99" in k for k, _ in read_topic(f"demo.{KS}.t")),
        lambda ok: ok,
    )
    events = read_topic(f"demo.{KS}.t")
    rnd: random.Random = torture["rnd"]
    deliveries = [e for e in events for _ in range(rnd.randint(1, 3))]
    rnd.shuffle(deliveries)
    assert len(deliveries) > len(events) > OPS * 0.9
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 20})
    topic = f"demo.{REPLAY_KS}.t"
    for key, value in deliveries:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    wait_for(
        "the replay sink consumed every delivery",
        lambda: lag("connect-sem-tort-replay-jdbc-sink", topic),
        lambda n: n == 0,
        deadline=120,
    )
    # compare Cassandra's table with the replay copy (same columns, another schema)
    replay = model.model_copy(update={"keyspace": REPLAY_KS})
    diffs = differences(cql, stack.postgres_dsn, replay, cassandra_model=model)
    assert diffs == [], "\n".join(diffs[:20])

"""The day-2 writers next to the own sink (decision 0139, 0126 step 8): on a `writer: lww`
pipeline, `cdcctl verify --repair` writes through the gate trigger into rows the merge wrote,
`cdcctl dlq replay` sends a refused record back through the merge with LWW semantics, and the
table's `__purge` function removes what the merge left deleted. The tests run in order on one
pipeline (`lww-ops`, keyspace `lww_ops`, table `t (id int PRIMARY KEY, n int, v text)`: slot 1
is `n`, slot 2 is `v`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cassandra.cluster import Session
from confluent_kafka import Consumer

from controlplane.adapters import postgres
from controlplane.core.ddl import generate_ddl
from controlplane.services.stack import Endpoints, LocalStack
from tests.cli import cdcctl, cdcctl_json
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy, differences, reset_kafka, table_model
from tests.stackfixture import connect_http, ensure_stack, kafka_config

pytestmark = pytest.mark.e2e

KS = "lww_ops"
NAME = "lww-ops"
CONNECTOR = f"{NAME}-jdbc-sink"
RAW = f'"{KS}_cdc"."t"'


@pytest.fixture(scope="module")
def pipeline(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    reset_kafka(NAME, [f"{NAME}.dlq"])  # no DLQ of an earlier run
    tmp = tmp_path_factory.mktemp(KS)
    deploy(
        cql,
        local_stack,
        stack.postgres_dsn,
        tmp,
        name=NAME,
        keyspace=KS,
        tables={"t": f"CREATE TABLE {KS}.t (id int PRIMARY KEY, n int, v text) WITH cdc = true"},
        writer="lww",
    )
    with connect_http(stack) as http:
        config = http.get(f"/connectors/{CONNECTOR}/config").json()
    assert config["connector.class"] == "io.casscdcpg.lwwsink.LwwSinkConnector"
    yield tmp / f"{NAME}.yaml"
    with connect_http(stack, timeout=60) as http:
        http.delete(f"/connectors/{CONNECTOR}")
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")


def equal_to_cassandra(cql: Session, dsn: str, what: str) -> None:
    model = table_model(cql, KS, "t")
    wait_for(what, lambda: differences(cql, dsn, model), lambda d: d == [], deadline=120)


def raw_row(dsn: str, key: int) -> tuple[object, ...] | None:
    rows = postgres.query(
        dsn,
        f'SELECT n, v, "_cdc_op", "_cdc_wt", "_cdc_deleted_at" FROM {RAW} WHERE id = %s',  # nosec B608  # constant names
        [key],
    )
    return tuple(rows[0]) if rows else None


def test_verify_repair_fixes_rows_the_merge_wrote(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    for i in range(1, 21):
        cql.execute(f"INSERT INTO {KS}.t (id, n, v) VALUES (%s, %s, %s)", (i, i, f"v-{i}"))
    equal_to_cassandra(cql, dsn, "20 rows through the lww sink")
    # the merge wrote them (_cdc_op 'm'), and the gate trigger is on the table as with jdbc
    assert {r[2] for r in (raw_row(dsn, i) for i in range(1, 21)) if r} == {"m"}
    (trigger,) = postgres.query(
        dsn,
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = 'cdc_lww'",
        [RAW],
    )
    assert trigger[0] == 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        # a lost row (DELETE bypasses the gate) and a stale value with an older write time
        conn.execute(f"DELETE FROM {RAW} WHERE id = 3")  # nosec B608  # constant names
        with conn.transaction():
            conn.execute(f'ALTER TABLE {RAW} DISABLE TRIGGER "cdc_lww"')
            conn.execute(
                f'UPDATE {RAW} SET v = \'tampered\', "_cdc_wt"[2] = "_cdc_wt"[2] - 1 WHERE id = 4'  # nosec B608  # constant names
            )
            conn.execute(f'ALTER TABLE {RAW} ENABLE TRIGGER "cdc_lww"')
    model = table_model(cql, KS, "t")
    assert len(differences(cql, dsn, model)) == 2
    diff = str(pipeline.parent / "repair.jsonl")  # not a file in the working directory
    res = cdcctl(
        "verify", "-f", str(pipeline), "--repair", "--lag", "0.2", "--diff-file", diff, "-o", "json"
    )
    assert res.returncode == 0, res.stderr
    assert differences(cql, dsn, model) == []
    # repaired through the gate (its ops, not the merge's), and the merge goes on from there
    assert raw_row(dsn, 3) is not None
    assert raw_row(dsn, 3)[2] != "m"  # type: ignore[index]
    cql.execute(f"UPDATE {KS}.t SET v = 'after repair' WHERE id = 4")
    cql.execute(f"UPDATE {KS}.t USING TIMESTAMP 1 SET v = 'too old' WHERE id = 3")
    equal_to_cassandra(cql, dsn, "later writes merged into the repaired rows")
    row = cql.execute(f"SELECT v FROM {KS}.t WHERE id = 3").one()
    assert row.v == "v-3"


def test_dlq_replay_goes_through_the_merge_with_lww_semantics(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    postgres.execute(
        dsn, [f"ALTER TABLE {RAW} ADD CONSTRAINT lww_ops_no_poison CHECK (v <> 'poison')"]
    )
    try:
        # refused by PostgreSQL: the sink isolates it and sends it alone to the DLQ (0128)
        cql.execute(f"INSERT INTO {KS}.t (id, n, v) VALUES (100, 1, 'poison') USING TIMESTAMP 1000")
        cql.execute(f"INSERT INTO {KS}.t (id, n, v) VALUES (101, 1, 'fine')")
        listed = wait_for(
            "the refused record in the DLQ",
            lambda: cdcctl_json("dlq", "ls", "-f", str(pipeline)),
            lambda rs: len(rs) == 1,
            deadline=120,
        )
        assert "lww_ops_no_poison" in str(
            cdcctl_json("dlq", "show", "-f", str(pipeline), f"0:{listed[0]['offset']}")
        )
        # a newer write to n lands meanwhile: the replay must not take it back
        cql.execute(f"UPDATE {KS}.t USING TIMESTAMP 2000 SET n = 2 WHERE id = 100")
        wait_for("the newer n merged", lambda: raw_row(dsn, 100), lambda r: r is not None)
    finally:
        postgres.execute(dsn, [f"ALTER TABLE {RAW} DROP CONSTRAINT lww_ops_no_poison"])
    done = cdcctl_json("dlq", "replay", "-f", str(pipeline), "--yes")
    assert [r["action"] for r in done] == ["replayed"]
    equal_to_cassandra(cql, dsn, "the replayed record merged")
    row = raw_row(dsn, 100)
    assert row is not None
    assert row[:3] == (2, "poison", "m")  # v from the replay, n kept from the newer write
    assert cdcctl_json("dlq", "replay", "-f", str(pipeline), "--yes") == []
    with connect_http(stack) as http:
        status = http.get(f"/connectors/{CONNECTOR}/status").json()
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]


def test_purge_removes_what_the_merge_left_deleted(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    cql.execute(f"DELETE FROM {KS}.t WHERE id = 5")
    cql.execute(f"DELETE FROM {KS}.t WHERE id = 6")
    equal_to_cassandra(cql, dsn, "the deletes merged")
    for key in (5, 6):  # kept in the raw table as tombstoned rows, as the gate keeps them
        row = raw_row(dsn, key)
        assert row is not None
        assert row[4] is not None
    live = postgres.query(dsn, f'SELECT count(*) FROM "{KS}"."t"')[0][0]  # nosec B608  # constant
    purge = generate_ddl(table_model(cql, KS, "t")).names.function("__purge")
    future_us = int((time.time() + 3600) * 1_000_000)
    (purged,) = postgres.query(dsn, f"SELECT {purge}(interval '0 seconds', %s)", [future_us])
    assert purged[0] >= 2
    assert raw_row(dsn, 5) is None
    assert raw_row(dsn, 6) is None
    assert postgres.query(dsn, f'SELECT count(*) FROM "{KS}"."t"')[0][0] == live  # nosec B608  # constant
    # a new write to a purged key is merged as a new row
    cql.execute(f"INSERT INTO {KS}.t (id, n, v) VALUES (5, 55, 'back')")
    equal_to_cassandra(cql, dsn, "a purged key written again")


def topic_values(topic: str, column: str) -> dict[int, object]:
    """{id: the column's value} of every change event on the topic that carries the column."""
    consumer = Consumer(
        {
            **kafka_config(ensure_stack()),
            "group.id": f"lww-ops-probe-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: dict[int, object] = {}
    try:
        for msg in consumer.consume(num_messages=5000, timeout=3):
            value = msg.value()
            if msg.error() or value is None:
                continue
            after = json.loads(value)["payload"].get("after") or {}
            if isinstance(after.get(column), dict):
                out[int(after["id"]["value"])] = after[column].get("value")
    finally:
        consumer.close()
    return out


def test_a_value_for_a_column_added_before_schema_apply_waits_and_is_not_lost(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    """The agent's records carry a new column before `schema apply` updated the sink's SQL: the
    own sink retries such a record instead of applying it without the column (decision 0139)."""
    dsn = stack.postgres_dsn
    cql.execute(f"ALTER TABLE {KS}.t ADD w text")
    # until the agent has seen the ALTER it drops w (docs/semantics.md, Limits): write until an
    # event carries it; those the agent stripped are deleted again so that Cassandra stays the
    # reference
    ids = iter(range(300, 400))

    def write_one() -> dict[int, object]:
        i = next(ids)
        cql.execute(f"INSERT INTO {KS}.t (id, n, w) VALUES (%s, %s, 'early')", (i, i))
        return topic_values(f"demo.{KS}.t", "w")

    carried = wait_for("an event carrying w", write_one, lambda v: "early" in v.values())
    first = min(i for i, v in carried.items() if v == "early")
    for i in range(300, first):
        cql.execute(f"DELETE FROM {KS}.t WHERE id = %s", (i,))
    cql.execute(f"INSERT INTO {KS}.t (id, n, w) VALUES (399, 399, 'after')")
    planned = cdcctl_json("schema", "plan", "-f", str(pipeline))
    assert [(p["action"], p["columns"]) for p in planned] == [("alter", "+w")]
    applied = cdcctl_json("schema", "apply", "-f", str(pipeline))
    assert [p["result"] for p in applied] == ["applied"]
    equal_to_cassandra(cql, dsn, "the rows carrying w, applied with the new SQL")
    (w,) = postgres.query(dsn, f'SELECT w FROM "{KS}"."t" WHERE id = %s', [first])  # nosec B608  # constant names
    assert w == ("early",)
    with connect_http(stack) as http:
        status = http.get(f"/connectors/{CONNECTOR}/status").json()
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]


def test_a_paused_sink_stays_paused_through_schema_apply(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    """`schema apply` stops an lww sink around the ALTER (decision 0139) and puts it back in the
    state the operator left it in: a paused pipeline is not resumed by a schema change."""
    dsn = stack.postgres_dsn
    assert cdcctl("pause", NAME).returncode == 0
    wait_for("the sink paused", lambda: connector_state(stack), lambda s: s == "PAUSED")
    cql.execute(f"ALTER TABLE {KS}.t ADD x text")
    applied = cdcctl_json("schema", "apply", "-f", str(pipeline))
    assert [(p["action"], p["result"]) for p in applied] == [("alter", "applied")]
    assert connector_state(stack) == "PAUSED"
    cql.execute(f"INSERT INTO {KS}.t (id, n, x) VALUES (500, 500, 'while paused')")
    assert cdcctl("resume", NAME).returncode == 0
    equal_to_cassandra(cql, dsn, "the row written while paused, after resume")
    (x,) = postgres.query(dsn, f'SELECT x FROM "{KS}"."t" WHERE id = 500')  # nosec B608  # constant names
    assert x == ("while paused",)


def connector_state(stack: Endpoints) -> str:
    with connect_http(stack) as http:
        status = http.get(f"/connectors/{CONNECTOR}/status").json()
    return str(status["connector"]["state"])

"""An incompatible schema change stops that table and nothing else (issue 4, item 4; decision
0050), against the real stack: a pipeline of t1 and t2, t1 dropped and recreated in Cassandra
with another column type, rows written to both; `cdcctl schema apply` exits 7 naming t1 and the
column, t2 keeps flowing through the same sink connector, t1's PostgreSQL copy is untouched and
`describe` shows it STOPPED; `schema apply --rebuild` then brings t1's new rows, which waited in
Kafka, and both tables equal Cassandra."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from confluent_kafka import Consumer

from controlplane.services.stack import Endpoints, LocalStack
from tests.cli import cdcctl, cdcctl_json
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy, differences, pg_rows, table_model
from tests.stackfixture import session_ports

pytestmark = pytest.mark.e2e
KS = "evo_incompat"
PIPELINE = "evo-incompat"


def connector_healthy() -> bool:
    info = cdcctl_json("describe", "pipeline", PIPELINE)
    return info["state"] == "RUNNING" and all(t["state"] == "RUNNING" for t in info["tasks"])


def topic_ids(topic: str) -> set[int]:
    """Primary keys of every event in a topic, read from the start."""
    consumer = Consumer(
        {
            "bootstrap.servers": f"127.0.0.1:{session_ports().kafka}",
            "group.id": f"evo-incompat-probe-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    ids: set[int] = set()
    try:
        for msg in consumer.consume(num_messages=1000, timeout=3):
            if msg.error() or msg.value() is None:
                continue
            after = json.loads(msg.value())["payload"]["after"]
            ids.add(int(after["id"]["value"]))
    finally:
        consumer.close()
    return ids


@pytest.fixture(scope="module")
def pipeline(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp(KS)
    deploy(
        cql,
        local_stack,
        stack.postgres_dsn,
        tmp,
        name=PIPELINE,
        keyspace=KS,
        tables={
            "t1": f"CREATE TABLE {KS}.t1 (id int PRIMARY KEY, b int) WITH cdc = true",
            "t2": f"CREATE TABLE {KS}.t2 (id int PRIMARY KEY, v text) WITH cdc = true",
        },
    )
    yield tmp / f"{PIPELINE}.yaml"
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")


def test_incompatible_change_stops_only_that_table(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    f = str(pipeline)
    for i in range(1, 6):
        cql.execute(f"INSERT INTO {KS}.t1 (id, b) VALUES (%s, %s)", (i, i))
        cql.execute(f"INSERT INTO {KS}.t2 (id, v) VALUES (%s, %s)", (i, f"v{i}"))
    old_t1, t2 = table_model(cql, KS, "t1"), table_model(cql, KS, "t2")
    for model in (old_t1, t2):
        wait_for(
            f"{model.table} flowing", lambda m=model: differences(cql, dsn, m), lambda d: d == []
        )
    before = pg_rows(dsn, old_t1)

    # the only way a column's type changes in Cassandra 5: DROP + CREATE (its data is deleted)
    cql.execute(f"DROP TABLE {KS}.t1")
    cql.execute(f"CREATE TABLE {KS}.t1 (id int PRIMARY KEY, b text) WITH cdc = true")
    for i in range(10, 15):
        cql.execute(f"INSERT INTO {KS}.t1 (id, b) VALUES (%s, %s)", (i, f"new-{i}"))
        cql.execute(f"INSERT INTO {KS}.t2 (id, v) VALUES (%s, %s)", (i, f"v{i}"))

    planned = cdcctl_json("schema", "plan", "-f", f)
    rows = {p["table"]: p for p in planned}
    assert (rows[f"{KS}.t1"]["action"], rows[f"{KS}.t1"]["columns"]) == ("incompatible", "~b")
    assert "column b changed type integer -> text" in rows[f"{KS}.t1"]["reason"]
    assert rows[f"{KS}.t2"]["action"] == "unchanged"

    applied = cdcctl("schema", "apply", "-f", f)
    assert applied.returncode == 7, applied.stderr
    err = " ".join(applied.stderr.split())  # rich wraps long lines
    assert f"{KS}.t1" in err, err
    assert "column b changed type integer -> text" in err, err
    assert "--rebuild" in err, err

    # the other table keeps flowing through the same connector, which stays healthy
    wait_for("t2's new rows", lambda: differences(cql, dsn, t2), lambda d: d == [])
    wait_for("the sink RUNNING", connector_healthy, bool)
    # t1's new-schema rows are in Kafka (the agent was restarted for the recreated table and
    # snapshotted it) but not in PostgreSQL: its old copy is left exactly as it was
    wait_for(
        "t1's new rows waiting in Kafka",
        lambda: topic_ids(f"demo.{KS}.t1"),
        lambda ids: set(range(10, 15)) <= ids,
    )
    assert pg_rows(dsn, old_t1) == before

    info = cdcctl_json("describe", "pipeline", PIPELINE)
    tables = {t["table"]: t for t in info["tables"]}
    assert tables["t2"]["state"] == "RUNNING"
    assert tables["t1"]["state"] == "STOPPED"
    assert "column b changed type integer -> text" in tables["t1"]["reason"]
    assert info["topics"] == [f"demo.{KS}.t2"]
    plan_text = cdcctl("plan", "-f", f)
    assert plan_text.returncode == 0, plan_text.stderr
    assert f"! stop table {KS}.t1 [{PIPELINE}]" in plan_text.stdout
    # a second apply stops it again and changes nothing else
    again = cdcctl("apply", "-f", f)
    assert again.returncode == 7, again.stderr
    assert not re.search(rf"apply {PIPELINE}: [-+~] ", again.stderr), again.stderr
    # reconcile reports the stop as its own JSON log event and exits 7 like apply
    rec = cdcctl("reconcile", "-f", f, "-o", "json")
    assert rec.returncode == 7, rec.stderr
    assert json.loads(rec.stdout)["stopped"] == [
        {"pipeline": PIPELINE, "table": f"{KS}.t1", "reason": tables["t1"]["reason"]}
    ]
    events = [json.loads(line) for line in rec.stderr.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "table_stopped" and e["table"] == f"{KS}.t1" for e in events)

    # the remedy: rebuild t1 in PostgreSQL; the events that waited in Kafka arrive
    rebuilt = cdcctl("schema", "apply", "-f", f, "--rebuild", f"{KS}.t1", "--yes", "-o", "json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert {r["table"]: r["result"] for r in json.loads(rebuilt.stdout)}[f"{KS}.t1"] == "rebuilt"
    cql.execute(f"INSERT INTO {KS}.t1 (id, b) VALUES (20, 'after rebuild')")
    new_t1 = table_model(cql, KS, "t1")
    wait_for("t1 equal to Cassandra", lambda: differences(cql, dsn, new_t1), lambda d: d == [])
    assert len(pg_rows(dsn, new_t1)) == 6
    assert differences(cql, dsn, t2) == []
    info = cdcctl_json("describe", "pipeline", PIPELINE)
    assert {t["table"]: t["state"] for t in info["tables"]} == {"t1": "RUNNING", "t2": "RUNNING"}
    assert connector_healthy()

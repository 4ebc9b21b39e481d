"""The first pipeline end to end: Cassandra -> agent -> Kafka -> Connect (JDBC sink + our SMT)
-> PostgreSQL, deployed by `cdcctl apply`, observed on both sides."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Session

from controlplane.services.stack import Endpoints
from tests.e2e.conftest import ROWS_BEFORE, pg_rows, wait_for
from tests.stackfixture import connect_http

pytestmark = pytest.mark.e2e


def test_rows_before_and_during_apply_arrive(deployed: dict[str, object], stack: Endpoints) -> None:
    during = deployed["during"]
    assert isinstance(during, list)
    assert during, "the writer wrote nothing during apply"
    want = ROWS_BEFORE + len(during)
    wait_for(
        "all pre-existing and concurrent rows in PostgreSQL",
        lambda: pg_rows(stack.postgres_dsn, "SELECT count(*) FROM e2e.presnap")[0][0],
        lambda n: n == want,
    )
    got = dict(pg_rows(stack.postgres_dsn, "SELECT id, v FROM e2e.presnap"))
    assert got[0] == "before-0"
    assert got[during[-1]] == f"during-{during[-1]}"


def test_insert_update_one_column_and_delete(
    deployed: dict[str, object], cql: Session, stack: Endpoints
) -> None:
    key = uuid.uuid4()
    cql.execute(
        "INSERT INTO e2e.items (id, seq, name, qty, price) VALUES (%s, 1, 'widget', 3, 9.99)",
        (key,),
    )
    cql.execute(
        "INSERT INTO e2e.items (id, seq, name, qty, price) VALUES (%s, 2, 'gadget', 1, 5)", (key,)
    )
    q = "SELECT seq, name, qty, price::text FROM e2e.items WHERE id = %s ORDER BY seq"
    wait_for(
        "INSERT visible",
        lambda: pg_rows(stack.postgres_dsn, q, [key]),
        lambda rows: rows == [(1, "widget", 3, "9.99"), (2, "gadget", 1, "5")],
    )

    cql.execute("UPDATE e2e.items SET qty = 7 WHERE id = %s AND seq = 1", (key,))
    wait_for(
        "UPDATE of one column visible, the others as they were",
        lambda: pg_rows(stack.postgres_dsn, q, [key]),
        lambda rows: rows == [(1, "widget", 7, "9.99"), (2, "gadget", 1, "5")],
    )

    cql.execute("DELETE FROM e2e.items WHERE id = %s AND seq = 2", (key,))
    wait_for(
        "row DELETE visible",
        lambda: pg_rows(stack.postgres_dsn, q, [key]),
        lambda rows: rows == [(1, "widget", 7, "9.99")],
    )


def test_connector_and_task_running(deployed: dict[str, object], stack: Endpoints) -> None:
    with connect_http(stack) as http:
        status = http.get("/connectors/e2e-jdbc-sink/status").json()
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]


def test_the_sink_holds_few_named_postgres_sessions(
    deployed: dict[str, object], stack: Endpoints
) -> None:
    """A sink task's pool keeps 1..4 connections (the Debezium default of 5..32 per task let
    20 pipelines exhaust max_connections=100), named after the pipeline in pg_stat_activity."""
    q = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cdc-sink-e2e'"
    n = wait_for("the sink's sessions", lambda: pg_rows(stack.postgres_dsn, q)[0][0], bool)
    assert 1 <= n <= 4


def test_second_apply_changes_nothing(deployed: dict[str, object], manifest: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controlplane", "apply", "-f", str(manifest), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert {c["action"] for c in json.loads(out.stdout)} == {"unchanged"}

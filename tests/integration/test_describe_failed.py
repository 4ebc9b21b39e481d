"""`cdcctl describe` and `cdcctl get` make a really FAILED sink task impossible to miss.

Pipeline `df-it` (keyspace `df_it`, one table, the sink with tasks.max 2) on the session's local
stack. The failure is real, as in test_reconcile_restarts.py: a CHECK constraint on the raw
table rejects a new row, the JDBC sink's flush fails and Connect marks the task that read it
FAILED; the consumer group hands its partition to the other task, which fails too ("2 of 2").
With the cause removed only task 0 is restarted: "1 of 2 tasks FAILED", a state that stays
until task 1 is restarted. The CLI, as a subprocess, shows the summary line, the state in red
(ANSI with FORCE_COLOR), the worker and the first line of the trace as Connect reports them,
and exits 9 — with -o json too; after `cdcctl restart --failed`, exit 0.
Every wait is on a condition with a deadline."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient
from psycopg.conninfo import conninfo_to_dict

from controlplane.adapters import postgres
from controlplane.core.connector_health import first_line
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from tests.cli import cdcctl
from tests.manifests import local_pipeline
from tests.stackfixture import apply_on, connect_http, cql_cluster, kafka_config

pytestmark = pytest.mark.integration

KS = "df_it"
NAME = "df-it"
CONNECTOR = f"{NAME}-jdbc-sink"
CONSTRAINT = "df_it_reject_new_rows"
DEADLINE_S = 150.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def wait_for(
    what: str,
    probe: Callable[[], Any],
    expect: Callable[[Any], bool],
    deadline: float = DEADLINE_S,
    every: float = 0.5,
) -> Any:
    end = time.monotonic() + deadline
    value = probe()
    while not expect(value):
        if time.monotonic() > end:
            pytest.fail(f"{what}: not reached within {deadline:.0f}s; last value: {value!r}")
        time.sleep(every)
        value = probe()
    return value


def status(stack: Endpoints) -> dict[str, Any]:
    with connect_http(stack) as connect:  # HTTPS and basic auth unless --insecure
        response = connect.get(f"/connectors/{CONNECTOR}/status", timeout=10)
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return dict(response.json())


def task_states(stack: Endpoints) -> list[str]:
    return [t["state"] for t in sorted(status(stack).get("tasks", []), key=lambda t: t["id"])]


def pg_count(dsn: str) -> int:
    return int(postgres.query(dsn, f'SELECT count(*) FROM "{KS}"."t"')[0][0])


def write_rows(cql: Session, ids: range) -> None:
    for i in ids:
        cql.execute(f"INSERT INTO {KS}.t (id, v) VALUES (%s, %s)", (i, f"v{i}"))


def reset(stack: Endpoints, cql: Session) -> None:
    """No connector, topic, consumer group, keyspace or PostgreSQL schema of an earlier run."""
    with connect_http(stack) as connect:
        connect.delete(f"/connectors/{CONNECTOR}")
    admin = AdminClient(kafka_config(stack))
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"demo.{KS}.")]
    for fut in admin.delete_topics(topics, operation_timeout=30).values() if topics else []:
        fut.result()
    with contextlib.suppress(Exception):  # no such group on a first run
        for fut in admin.delete_consumer_groups([f"connect-{CONNECTOR}"]).values():
            fut.result()
    wait_for(
        "old topics deleted",
        lambda: set(topics) & set(admin.list_topics(timeout=10).topics),
        lambda left: not left,
        30,
    )
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    postgres.execute(
        stack.postgres_dsn,
        [f'DROP SCHEMA IF EXISTS "{KS}_cdc" CASCADE', f'DROP SCHEMA IF EXISTS "{KS}" CASCADE'],
    )


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    yield cluster.connect()
    cluster.shutdown()


@pytest.fixture(scope="module")
def pipeline(
    stack: Endpoints, cql: Session, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    local = LocalStack(settings_for())
    os.environ.setdefault("CDC_PG_PASSWORD", local.postgres_password())  # the CLI inherits it
    reset(stack, cql)
    cql.execute(
        f"CREATE KEYSPACE {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute(f"CREATE TABLE {KS}.t (id int PRIMARY KEY, v text) WITH cdc = true")
    path = tmp_path_factory.mktemp("df") / f"{NAME}.yaml"
    path.write_text(manifest_for(stack) + "    tasksMax: 2\n")
    apply_on(local, [path])
    yield path
    with contextlib.suppress(Exception):  # leave the stack as we found it
        reset(stack, cql)


def manifest_for(stack: Endpoints) -> str:
    """local_pipeline's manifest with this stack's endpoints (it may run with a port offset)."""
    pg = conninfo_to_dict(stack.postgres_dsn)
    return (
        # the stock sink: a row PostgreSQL refuses fails its task; the own sink (lww) sends that
        # row to the DLQ and keeps running (decision 0128), so the failure needs writer jdbc
        local_pipeline(NAME, KS, ["t"], writer="jdbc")
        .replace("127.0.0.1:9042", f"{stack.cassandra_host}:{stack.cassandra_port}")
        .replace("127.0.0.1:9092", stack.kafka_bootstrap)
        .replace("http://127.0.0.1:8083", stack.connect_url)
        .replace("port: 5432", f"port: {pg.get('port', 5432)}")
    )


def describe(*args: str) -> Any:
    return cdcctl("describe", "pipeline", NAME, *args, env={"FORCE_COLOR": "1", "COLUMNS": "300"})


def test_a_failed_task_stands_out_in_describe_and_get(
    pipeline: Path, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    write_rows(cql, range(5))
    wait_for("5 rows in PostgreSQL", lambda: pg_count(dsn), lambda n: n == 5)
    wait_for("2 tasks RUNNING", lambda: task_states(stack), lambda s: s == ["RUNNING"] * 2)
    healthy = describe("-o", "json")
    assert healthy.returncode == 0, healthy.stderr
    shown = json.loads(healthy.stdout)
    assert (shown["failed"], shown["health"], shown["failures"]) == (
        False,
        "2 of 2 tasks RUNNING",
        [],
    )

    # A real cause: PostgreSQL refuses every new row of the raw table, the sink's flush fails.
    postgres.execute(
        dsn, [f'ALTER TABLE "{KS}_cdc"."t" ADD CONSTRAINT {CONSTRAINT} CHECK (id < 100) NOT VALID']
    )
    write_rows(cql, range(100, 101))
    # The task that reads the row fails; its consumer leaves the group, the other task is given
    # the partition and fails on the same row: both FAILED, a state that stays.
    wait_for("2 tasks FAILED", lambda: task_states(stack), lambda s: s == ["FAILED"] * 2)
    res = describe("-o", "json")
    assert res.returncode == 9, res.stderr
    shown = json.loads(res.stdout)
    assert (shown["failed"], shown["health"]) == (True, "2 of 2 tasks FAILED")
    assert sorted(f["task"] for f in shown["failures"]) == [0, 1]

    # The cause removed, only task 0 restarted (Connect's REST API): it writes the row, task 1
    # stays FAILED until it is restarted too — one of two tasks FAILED, stably.
    postgres.execute(dsn, [f'ALTER TABLE "{KS}_cdc"."t" DROP CONSTRAINT {CONSTRAINT}'])
    with connect_http(stack) as connect:
        connect.post(f"/connectors/{CONNECTOR}/tasks/0/restart")
    wait_for("task 0 RUNNING", lambda: task_states(stack), lambda s: s == ["RUNNING", "FAILED"])
    wait_for("row 100 written by task 0", lambda: pg_count(dsn), lambda n: n == 6)
    tasks = sorted(status(stack)["tasks"], key=lambda t: t["id"])
    assert [t["state"] for t in tasks] == ["RUNNING", "FAILED"], tasks
    task = next(t for t in tasks if t["state"] == "FAILED")
    assert CONSTRAINT in task["trace"], task["trace"]  # failed for our reason
    head = first_line(task["trace"])
    assert head

    # describe (table): the summary line, the state in red, the worker and the trace's head
    res = describe()
    assert res.returncode == 9, res.stderr
    plain = ANSI.sub("", res.stdout)
    assert f"{CONNECTOR}: 1 of 2 tasks FAILED" in plain
    assert re.search(r"\x1b\[1;31m[^\x1b]*1 of 2 tasks FAILED", res.stdout), res.stdout
    assert re.search(r"\x1b\[1;31mFAILED", res.stdout), res.stdout  # the task's state in red
    row = next(
        line for line in plain.splitlines() if "FAILED" in line and task["worker_id"] in line
    )
    assert head[:60] in row
    err = ANSI.sub("", res.stderr)
    assert f"task {task['id']} on worker {task['worker_id']}" in err
    assert "cdcctl restart NAME --failed" in " ".join(err.split())

    # describe -o json: the same facts, exit 9 as well
    res = describe("-o", "json")
    assert res.returncode == 9, res.stderr
    shown = json.loads(res.stdout)
    assert (shown["failed"], shown["health"]) == (True, "1 of 2 tasks FAILED")
    assert shown["failures"] == [
        {"connector": CONNECTOR, "task": task["id"], "worker": task["worker_id"], "error": head}
    ]
    assert {t["id"]: t["state"] for t in shown["tasks"]} == {t["id"]: t["state"] for t in tasks}

    # get pipelines / connectors: the listing, then exit 9
    res = cdcctl("get", "pipelines", "-o", "json")
    assert res.returncode == 9, res.stderr
    mine = next(r for r in json.loads(res.stdout) if r["connector"] == CONNECTOR)
    assert (mine["failed"], mine["health"]) == (True, "1 of 2 tasks FAILED")
    res = cdcctl("get", "connectors", env={"FORCE_COLOR": "1", "COLUMNS": "300"})
    assert res.returncode == 9, res.stderr
    line = next(x for x in ANSI.sub("", res.stdout).splitlines() if CONNECTOR in x)
    assert "1 of 2 tasks FAILED" in line

    # stack status: Connect's row counts the FAILED connectors, and a red line names the task
    res = cdcctl("stack", "status", env={"FORCE_COLOR": "1", "COLUMNS": "300"})
    assert res.returncode == 0, res.stderr
    red = r"\x1b\[1;31mFAILED: " + re.escape(f"{CONNECTOR} task {task['id']}")
    assert re.search(red, res.stderr), res.stderr
    alarm = " ".join(ANSI.sub("", res.stderr).split())
    assert " ".join(f"on worker {task['worker_id']}: {head[:60]}".split()) in alarm
    res = cdcctl("stack", "status", "-o", "json")
    connect_row = next(r for r in json.loads(res.stdout) if r["name"] == "connect")
    assert re.fullmatch(r"\d+ connectors?, [1-9]\d* FAILED", connect_row["connectors"])

    # the failed task restarted (its cause is gone): healthy again, exit 0
    restarted = cdcctl("restart", NAME, "--failed")
    assert restarted.returncode == 0, restarted.stderr
    wait_for("2 tasks RUNNING", lambda: task_states(stack), lambda s: s == ["RUNNING"] * 2)
    write_rows(cql, range(200, 202))
    wait_for("8 rows in PostgreSQL", lambda: pg_count(dsn), lambda n: n == 8)
    res = describe("-o", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["health"] == "2 of 2 tasks RUNNING"
    res = cdcctl("get", "pipelines", "-o", "json")
    rows = json.loads(res.stdout)
    mine = next(r for r in rows if r["connector"] == CONNECTOR)
    assert (mine["failed"], mine["health"]) == (False, "2 of 2 tasks RUNNING")
    # exit 0 unless another pipeline on this (possibly shared) stack is FAILED
    assert res.returncode == (9 if any(r["failed"] for r in rows) else 0), res.stderr

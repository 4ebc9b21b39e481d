"""`cdcctl reconcile` restarts a really failed sink task with Strimzi's backoff kept in Redis.

Pipeline `rr-it` (keyspace `rr_it`, one table, topic prefix `demo`) on the shared local stack.
The failure is real: a CHECK constraint on the PostgreSQL raw table rejects the new rows, the JDBC
sink's flush fails and Connect marks the task FAILED (docs/dlq.md: PostgreSQL refusing a batch is
not for the DLQ, it fails the task). Then, with the CLI as a subprocess:

1. reconcile restarts the failed task (JSON outcome + `connector_restarted` log line) and records
   attempt 1 and its time in Redis (``cdcctl:reconcile:restarts:<connector>``);
2. the task fails again (the constraint is still there); a reconcile right after does not restart
   it: `restart_backoff` with the remaining wait (2 minutes after the first restart);
3. the constraint is dropped, the backoff is made to have passed by moving ``last_restart`` in
   Redis back (that is all `restart_failed` reads: ``restarts`` and ``last_restart``), reconcile
   restarts it (attempt 2), the task runs and the held-back rows arrive in PostgreSQL.

Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess  # nosec B404  # the CLI under test
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from cassandra.cluster import Session

from controlplane.adapters import postgres
from controlplane.services.reconcile import RESTARTS_PREFIX
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from tests.e2e.semconf import deploy, differences, table_model
from tests.stackfixture import connect_http, cql_cluster, redis_client

pytestmark = pytest.mark.integration

KS = "rr_it"
NAME = "rr-it"
CONNECTOR = f"{NAME}-jdbc-sink"
RESTART_KEY = RESTARTS_PREFIX + CONNECTOR
CONSTRAINT = "rr_it_reject_new_rows"
TABLES = {"t": f"CREATE TABLE {KS}.t (id int PRIMARY KEY, v text) WITH cdc = true"}
DEADLINE_S = 120.0


def wait_for(
    what: str,
    probe: Callable[[], Any],
    expect: Callable[[Any], bool],
    deadline: float = DEADLINE_S,
    every: float = 0.5,
) -> Any:
    """Poll `probe` until `expect(value)` holds; fail with the last value after the deadline."""
    end = time.monotonic() + deadline
    value = probe()
    while not expect(value):
        if time.monotonic() > end:
            pytest.fail(f"{what}: not reached within {deadline:.0f}s; last value: {value!r}")
        time.sleep(every)
        value = probe()
    return value


def connect() -> Any:
    """$CDC_STACK_DIR's Connect REST: HTTPS with basic auth unless --insecure (decision 0114)."""
    return connect_http(LocalStack(settings_for()).endpoints())


def status() -> dict[str, Any]:
    with connect() as http:
        response = http.get(f"/connectors/{CONNECTOR}/status", timeout=10)
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return dict(response.json())


def task_states() -> list[str]:
    return [t["state"] for t in status().get("tasks", [])]


def task_started_since(since: float) -> bool:
    """Whether the session's Connect worker logged a start of the sink's task 0 at or after
    ``since`` (epoch s): a restart counts even when the task fails again before a status poll
    could see it out of FAILED. Connect logs in UTC here, ``[YYYY-MM-DD HH:MM:SS,mmm]``."""
    from controlplane.services.stack import LocalStack
    from tests.stackfixture import session_settings

    log = LocalStack(session_settings()).lay.log_file("connect")
    marker = f"Starting task {CONNECTOR}-0 "
    for line in log.read_text(errors="replace").splitlines():
        if marker in line and line.startswith("["):
            at = datetime.strptime(line[1:20], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            if at.timestamp() >= int(since):
                return True
    return False


def pg_count(dsn: str) -> int:
    return int(postgres.query(dsn, f'SELECT count(*) FROM "{KS}"."t"')[0][0])


def write_rows(cql: Session, ids: range) -> None:
    for i in ids:
        cql.execute(f"INSERT INTO {KS}.t (id, v) VALUES (%s, %s)", (i, f"v{i}"))


def reconcile(manifest: Path, lease_key: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`cdcctl reconcile -f MANIFEST --lease-key KEY -o json`: the outcome and the log lines."""
    done = subprocess.run(  # nosec B603  # fixed argv
        [
            sys.executable,
            "-m",
            "controlplane",
            "reconcile",
            "-f",
            str(manifest),
            "--lease-key",
            lease_key,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"cdcctl reconcile: {done.returncode}\n{done.stderr}"
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return json.loads(done.stdout), logs


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("event") == name and e.get("connector") == CONNECTOR]


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    yield cluster.connect()
    cluster.shutdown()


@pytest.fixture(scope="module")
def store(stack: Endpoints) -> Iterator[redis.Redis]:
    r = redis_client(stack)
    yield r
    r.close()


@pytest.fixture(scope="module")
def pipeline(
    stack: Endpoints,
    cql: Session,
    store: redis.Redis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """The deployed pipeline's manifest, no restart counter of an earlier run; removed after."""
    local = LocalStack(settings_for())
    os.environ.setdefault("CDC_PG_PASSWORD", local.postgres_password())  # the CLI inherits it
    store.delete(RESTART_KEY)
    tmp = tmp_path_factory.mktemp("rr")
    # the stock sink: a row PostgreSQL refuses fails its task; the own sink (lww) sends that row to
    # the DLQ and keeps running (decision 0128), so the failure below needs writer jdbc
    deploy(
        cql, local, stack.postgres_dsn, tmp, name=NAME, keyspace=KS, tables=TABLES, writer="jdbc"
    )
    yield tmp / f"{NAME}.yaml"
    with connect() as http:
        http.delete(f"/connectors/{CONNECTOR}")
    store.delete(RESTART_KEY)
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")  # later agent restarts need not snapshot it
    with contextlib.suppress(Exception):  # PostgreSQL may be restarting (shared stack)
        postgres.execute(
            stack.postgres_dsn,
            [f'DROP SCHEMA IF EXISTS "{KS}" CASCADE', f'DROP SCHEMA IF EXISTS "{KS}_cdc" CASCADE'],
        )


def test_reconcile_restarts_a_failed_task_with_backoff(
    pipeline: Path, cql: Session, stack: Endpoints, store: redis.Redis
) -> None:
    dsn = stack.postgres_dsn
    lease_key = f"cdcctl:reconcile:lease:rr-it:{uuid.uuid4().hex}"
    write_rows(cql, range(5))
    wait_for("5 rows in PostgreSQL", lambda: pg_count(dsn), lambda n: n == 5)
    assert task_states() == ["RUNNING"]

    # A real cause: PostgreSQL refuses every new row of the raw table, the sink's flush fails.
    postgres.execute(
        dsn, [f'ALTER TABLE "{KS}_cdc"."t" ADD CONSTRAINT {CONSTRAINT} CHECK (id < 100) NOT VALID']
    )
    write_rows(cql, range(100, 105))
    wait_for("the sink task FAILED", task_states, lambda s: s == ["FAILED"])
    trace = status()["tasks"][0].get("trace", "")
    assert CONSTRAINT in trace, trace  # failed for our reason, not another

    # 1. restarted, and recorded in Redis
    before = time.time()
    outcome, logs = reconcile(pipeline, lease_key)
    after = time.time()
    assert outcome["acted"] is True
    assert outcome["changes"] == []  # nothing to apply: only a restart
    assert len(outcome["restarts"]) == 1, outcome
    restart = outcome["restarts"][0]
    assert restart["connector"] == CONNECTOR
    assert restart["attempt"] == 1
    assert restart["failed_tasks"] == [0]
    assert restart["connector_failed"] is False
    assert restart["next_backoff_min"] == 2  # 1² + 1
    logged = events(logs, "connector_restarted")
    assert len(logged) == 1, logs
    assert logged[0]["attempt"] == 1
    assert logged[0]["level"] == "warning"
    record = store.hgetall(RESTART_KEY)
    assert record["restarts"] == "1"
    last = float(record["last_restart"])
    assert before - 1 <= last <= after + 1
    next_allowed = last + 2 * 60  # restart_due: now - last_restart >= backoff(restarts) * 60

    # 2. Connect did restart it (its worker counts one more task start: the restarted task may
    # fail again before a status poll sees it out of FAILED), it fails again as the cause is
    # still there; a reconcile right after does not restart it: still in backoff
    wait_for("the task restarted", lambda: task_started_since(before), bool, 30)
    wait_for("the sink task FAILED again", task_states, lambda s: s == ["FAILED"])
    trace = status()["tasks"][0].get("trace", "")
    assert CONSTRAINT in trace, trace
    outcome, logs = reconcile(pipeline, lease_key)
    now = time.time()
    assert outcome["acted"] is True
    assert outcome["restarts"] == []
    assert events(logs, "connector_restarted") == []
    waiting = events(logs, "restart_backoff")
    assert len(waiting) == 1, logs
    assert waiting[0]["restarts"] == 1
    assert 0 < waiting[0]["wait_s"] <= 120
    assert abs(waiting[0]["wait_s"] - (next_allowed - now)) <= 5
    assert store.hgetall(RESTART_KEY) == record  # untouched
    assert task_states() == ["FAILED"]

    # 3. fix the cause, let the backoff pass (as restart_due reads it), reconcile: running again
    postgres.execute(dsn, [f'ALTER TABLE "{KS}_cdc"."t" DROP CONSTRAINT {CONSTRAINT}'])
    store.hset(RESTART_KEY, "last_restart", f"{last - 2 * 60 - 1:.3f}")
    outcome, logs = reconcile(pipeline, lease_key)
    assert [(r["connector"], r["attempt"], r["failed_tasks"]) for r in outcome["restarts"]] == [
        (CONNECTOR, 2, [0])
    ]
    assert outcome["restarts"][0]["next_backoff_min"] == 6  # 2² + 2
    assert [e["attempt"] for e in events(logs, "connector_restarted")] == [2]
    assert store.hget(RESTART_KEY, "restarts") == "2"
    wait_for("the sink task RUNNING", task_states, lambda s: s == ["RUNNING"])
    wait_for("10 rows in PostgreSQL", lambda: pg_count(dsn), lambda n: n == 10)
    model = table_model(cql, KS, "t")
    wait_for("PostgreSQL equals Cassandra", lambda: differences(cql, dsn, model), lambda d: not d)
    assert task_states() == ["RUNNING"]

    # and a reconcile of the healthy pipeline leaves it alone (no restart, no backoff line)
    outcome, logs = reconcile(pipeline, lease_key)
    assert outcome["restarts"] == []
    assert events(logs, "restart_backoff") == []
    assert store.hget(RESTART_KEY, "restarts") == "2"  # reset only after a stable period

"""End-to-end fixtures: the real stack plus a pipeline deployed with `cdcctl apply`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session

from controlplane.adapters import postgres
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from tests.manifests import local_pipeline
from tests.stackfixture import apply_on, cql_cluster, ensure_stack

DEADLINE_S = 90.0

MANIFEST = local_pipeline("e2e", "e2e", ["items", "presnap"])


@pytest.fixture(scope="session")
def stack() -> Endpoints:
    return ensure_stack()


@pytest.fixture(scope="session")
def local_stack(stack: Endpoints) -> LocalStack:
    st = LocalStack(settings_for())
    os.environ.setdefault("CDC_PG_PASSWORD", st.postgres_password())
    return st


@pytest.fixture(scope="session")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifests") / "e2e.yaml"
    path.write_text(MANIFEST)
    return path


def pg_rows(dsn: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return postgres.query(dsn, sql, params)


def wait_for(
    what: str, probe: Callable[[], Any], expect: Callable[[Any], bool], deadline: float = DEADLINE_S
) -> Any:
    """Poll `probe` until `expect(value)` holds; fail with the last value after the deadline."""
    end = time.monotonic() + deadline
    value = probe()
    while not expect(value):
        if time.monotonic() > end:
            pytest.fail(f"{what}: not reached within {deadline:.0f}s; last value: {value!r}")
        time.sleep(0.2)
        value = probe()
    return value


ROWS_BEFORE = 50


@pytest.fixture(scope="session")
def deployed(
    cql: Session, local_stack: LocalStack, manifest: Path, stack: Endpoints
) -> dict[str, object]:
    cql.execute(
        "CREATE KEYSPACE IF NOT EXISTS e2e WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute("DROP TABLE IF EXISTS e2e.items")
    cql.execute("DROP TABLE IF EXISTS e2e.presnap")
    cql.execute(
        "CREATE TABLE e2e.items (id uuid, seq int, name text, qty int, price decimal, "
        "PRIMARY KEY (id, seq)) WITH cdc = true"
    )
    cql.execute("CREATE TABLE e2e.presnap (id int PRIMARY KEY, v text) WITH cdc = true")
    for table in ("items", "presnap"):  # a clean PostgreSQL side for this run
        postgres.execute(
            stack.postgres_dsn,
            [
                f'DROP TABLE IF EXISTS "e2e_cdc"."{table}" CASCADE',
                f'DROP TABLE IF EXISTS "e2e_cdc"."{table}__tombstones" CASCADE',
            ],
        )
    # Rows that exist before the pipeline is applied must arrive too (agent snapshot).
    for i in range(ROWS_BEFORE):
        cql.execute("INSERT INTO e2e.presnap (id, v) VALUES (%s, %s)", (i, f"before-{i}"))

    # ... and rows written while apply runs (and the agent restarts) must not be lost.
    stop = threading.Event()
    during: list[int] = []

    def writer() -> None:
        i = 10_000
        while not stop.is_set():
            cql.execute("INSERT INTO e2e.presnap (id, v) VALUES (%s, %s)", (i, f"during-{i}"))
            during.append(i)
            i += 1
            stop.wait(0.05)

    t = threading.Thread(target=writer)
    t.start()
    try:
        result = apply_on(local_stack, [manifest])
    finally:
        stop.set()
        t.join()
    return {"result": result, "during": during}

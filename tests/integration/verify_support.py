"""Shared by the verify integration tests: a keyspace of our own, tables on both sides, and a
simulated pipeline that writes each Cassandra mutation to PostgreSQL through the sink's own
statement (the LWW gate) with the same write timestamp — optionally after a lag."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from controlplane.adapters import postgres
from controlplane.core.ddl import generate_ddl, sink_upsert_sql
from controlplane.core.errors import CdcError
from controlplane.core.schema_model import TableModel
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from tests.manifests import local_pipeline
from tests.stackfixture import session_settings

KEYSPACE = "vf_verify"
TABLES = ("kinds", "live", "resume", "shared", "restart", "tokens")
REGULAR = ("at", "name", "price", "qty", "u")  # sorted: the gate's slot order

MANIFEST = local_pipeline("vf-verify", KEYSPACE, TABLES)

CQL_TABLE = (
    "CREATE TABLE {ks}.{t} (id int, region text, c int, name text, qty bigint, price decimal, "
    "at timestamp, u uuid, PRIMARY KEY ((id, region), c)) WITH cdc = true"
)


def pg_password() -> str:
    os.environ.setdefault("CDC_PG_PASSWORD", LocalStack(settings_for()).postgres_password())
    return os.environ["CDC_PG_PASSWORD"]


def write_manifest(directory: Path) -> Path:
    path = directory / "vf-verify.yaml"
    path.write_text(MANIFEST)
    return path


def model(session: Session, table: str) -> TableModel:
    rows = session.execute(
        "SELECT column_name, type, kind, position, clustering_order FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (KEYSPACE, table),
    )
    return TableModel.from_system_schema(KEYSPACE, table, [r._asdict() for r in rows])


def create_tables(session: Session, dsn: str, tables: Iterable[str] = TABLES) -> None:
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    for t in tables:
        session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.{t}")
        session.execute(CQL_TABLE.format(ks=KEYSPACE, t=t))
        postgres.execute(
            dsn,
            [
                f'DROP VIEW IF EXISTS "{KEYSPACE}"."{t}"',
                f'DROP TABLE IF EXISTS "{KEYSPACE}_cdc"."{t}" CASCADE',
                f'DROP TABLE IF EXISTS "{KEYSPACE}_cdc"."{t}__tombstones" CASCADE',
            ],
        )
        postgres.execute(dsn, generate_ddl(model(session, t)).statements)


def row_values(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "region": ("eu", "us", "ap")[i % 3],
        "c": i % 7,
        "name": f"name-{i}",
        "qty": i * 1000,
        "price": decimal.Decimal(f"{i}.50"),
        "at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=i * 1001),
        "u": uuid.UUID(int=i + 1),
    }


class Sim:
    """Cassandra writes mirrored into PostgreSQL as the sink would deliver them."""

    def __init__(self, session: Session, dsn: str, table: str) -> None:
        self.session = session
        self.dsn = dsn
        self.table = table
        self.model = model(session, table)
        self.upsert = sink_upsert_sql(self.model)
        cols = ["id", "region", "c", *REGULAR]
        ph = ", ".join("?" for _ in cols)
        self.insert = session.prepare(
            f"INSERT INTO {KEYSPACE}.{table} ({', '.join(cols)}) VALUES ({ph}) USING TIMESTAMP ?"
        )

    def event(self, values: dict[str, Any], ts: int, op: str = "i") -> tuple[Any, ...]:
        return (
            values["id"],
            values["region"],
            values["c"],
            *(values.get(c) for c in REGULAR),
            ts,
            op,
            json.dumps(sorted(REGULAR)),
            None,
            False,
        )

    def cassandra(self, rows: Sequence[dict[str, Any]], ts: int) -> None:
        params = [(r["id"], r["region"], r["c"], *(r[c] for c in REGULAR), ts) for r in rows]
        for ok, res in execute_concurrent_with_args(
            self.session, self.insert, params, concurrency=64
        ):
            assert ok, res

    def postgres(
        self, conn: psycopg.Connection[Any], rows: Sequence[dict[str, Any]], ts: int
    ) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(self.upsert, [self.event(r, ts) for r in rows])  # type: ignore[arg-type]

    def load(self, n: int, ts: int = 1_700_000_000_000_000) -> None:
        rows = [row_values(i) for i in range(n)]
        self.cassandra(rows, ts)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            self.postgres(conn, rows, ts)


def running_stack() -> Endpoints:
    """The local stack's endpoints, without starting anything: verify needs only Cassandra,
    PostgreSQL and Redis, and must not restart services other engineers' tests rely on."""
    stack = LocalStack(session_settings())
    endpoints = stack.endpoints()
    try:
        postgres.ping(endpoints.postgres_dsn)
    except CdcError:
        stack.up()  # nothing running yet: bring the stack up once
        endpoints = stack.endpoints()
    return endpoints

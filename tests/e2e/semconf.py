"""Helpers shared by the semantics e2e tests: deploy a pipeline of own `sem_*` tables and compare
the PostgreSQL view with Cassandra after canonicalisation (controlplane.core.canonical)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from controlplane.adapters import cassandra as cass_adapter
from controlplane.adapters import postgres
from controlplane.core import canonical
from controlplane.core.schema_model import (
    CqlCollection,
    CqlScalar,
    CqlTuple,
    CqlType,
    TableModel,
)
from controlplane.services.stack import LocalStack
from tests.manifests import local_pipeline
from tests.stackfixture import apply_on, connect_http, ensure_stack, kafka_config


def deploy(
    cql: Session,
    stack: LocalStack,
    dsn: str,
    tmp: Path,
    *,
    name: str,
    keyspace: str,
    tables: Mapping[str, str],
    prelude: tuple[str, ...] = (),
    writer: str | None = None,
) -> None:
    """(Re)create `keyspace` with `tables` ({name: CREATE TABLE body}), a clean PostgreSQL side,
    no sink connector, topics or sink offsets of an earlier run, and apply the pipeline (the
    agent restarts to pick the new tables up)."""
    reset_kafka(name, [f"demo.{keyspace}.{t}" for t in tables])
    cql.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    cql.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    for stmt in prelude:
        cql.execute(stmt)
    for body in tables.values():
        cql.execute(body)
    postgres.execute(
        dsn,
        [
            f'DROP SCHEMA IF EXISTS "{keyspace}_cdc" CASCADE',
            f'DROP SCHEMA IF EXISTS "{keyspace}" CASCADE',
        ],
    )
    path = tmp / f"{name}.yaml"
    path.write_text(local_pipeline(name, keyspace, tables.keys(), writer=writer))
    apply_on(stack, [path])


def reset_kafka(pipeline: str, topics: list[str]) -> None:
    connector = f"{pipeline}-jdbc-sink"
    stack = ensure_stack()
    with connect_http(stack) as http:
        http.delete(f"/connectors/{connector}")
    admin = AdminClient(kafka_config(stack))
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for t in topics if t in existing]
    for fut in admin.delete_topics(doomed, operation_timeout=30).values() if doomed else []:
        fut.result()
    with contextlib.suppress(Exception):  # no such group on a first run
        for fut in admin.delete_consumer_groups([f"connect-{connector}"]).values():
            fut.result()
    deadline = time.monotonic() + 30
    while set(doomed) & set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise AssertionError(f"topics {doomed} still exist")
        time.sleep(0.5)


def table_model(cql: Session, keyspace: str, table: str) -> TableModel:
    found = cass_adapter.table_schemas(cql, keyspace, [table])
    return TableModel.from_system_schema(keyspace, table, found[table][1])


def _from_pg_json(t: CqlType, v: Any) -> Any:
    """A jsonb element back to the Python value canonical.py expects (the transform's JSON
    forms: ISO timestamps, "0x.." blobs, ns for time and duration)."""
    if v is None:
        return None
    if isinstance(t, CqlScalar):
        if t.name == "timestamp" and isinstance(v, str):
            return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        if t.name == "blob" and isinstance(v, str) and v.startswith("0x"):
            return bytes.fromhex(v[2:])
        if t.name in ("float", "double") and isinstance(v, str):
            return float(v)
        if t.name == "inet" and isinstance(v, str):
            return v.rpartition("/")[2]
        return v
    if isinstance(t, CqlCollection):
        if t.kind == "map":
            vt = t.args[1]
            return {k: _from_pg_json(vt, x) for k, x in v.items()}
        return [_from_pg_json(t.args[0], x) for x in v]
    if isinstance(t, CqlTuple):
        return [_from_pg_json(it, x) for it, x in zip(t.items, v, strict=False)]
    return v


def pg_value(t: CqlType, v: Any) -> Any:
    if isinstance(t, CqlCollection | CqlTuple):
        return _from_pg_json(t, v)
    if isinstance(t, CqlScalar) and t.name == "duration" and isinstance(v, str):
        return canonical.parse_pg_interval(v)
    return v


def pg_rows(dsn: str, model: TableModel) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The view's rows by primary key; intervals read as ISO 8601 text (months survive)."""
    cols = [c for c in model.columns if c.kind != "static"]
    sel = ", ".join(
        f'"{c.name}"::text' if str(c.type) == "duration" else f'"{c.name}"' for c in cols
    )
    with postgres.connect(dsn) as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        rows = conn.execute(
            f'SELECT {sel} FROM "{model.keyspace}"."{model.table}"'  # test names
        ).fetchall()
    out = {}
    pk = [c.name for c in model.primary_key]
    for r in rows:
        d = {c.name: pg_value(c.type, v) for c, v in zip(cols, r, strict=True)}
        out[tuple(d[k] for k in pk)] = d
    return out


def cass_rows(cql: Session, model: TableModel) -> dict[tuple[Any, ...], dict[str, Any]]:
    cols = [c for c in model.columns if c.kind != "static"]
    sel = ", ".join(f'"{c.name}"' for c in cols)
    out = {}
    for r in cql.execute(f'SELECT {sel} FROM "{model.keyspace}"."{model.table}"'):
        d = dict(zip([c.name for c in cols], r, strict=True))
        out[tuple(canonical.canonical_cassandra(c.type, d[c.name]) for c in model.primary_key)] = d
    return out


def differences(
    cql: Session, dsn: str, model: TableModel, *, cassandra_model: TableModel | None = None
) -> list[str]:
    """Every difference between Cassandra (``cassandra_model``, default ``model``) and the
    PostgreSQL view of ``model``, canonicalised."""
    types = {c.name: c.type for c in model.columns if c.kind != "static"}
    c_rows = cass_rows(cql, cassandra_model or model)
    p_raw = pg_rows(dsn, model)
    p_rows = {
        tuple(canonical.canonical_postgres(c.type, row[c.name]) for c in model.primary_key): row
        for row in p_raw.values()
    }
    out = []
    for key in sorted(set(c_rows) | set(p_rows), key=repr):
        if key not in p_rows:
            out.append(f"missing in PostgreSQL: {key}")
        elif key not in c_rows:
            out.append(f"extra in PostgreSQL: {key}")
        else:
            for col, cmp in canonical.compare_row(types, c_rows[key], p_rows[key]).items():
                out.append(f"{key} {col}: cassandra={cmp.cassandra!r} postgres={cmp.postgres!r}")
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

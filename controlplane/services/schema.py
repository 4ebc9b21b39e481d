"""`cdcctl schema plan|apply -f MANIFEST`: carry Cassandra schema changes (ADD/DROP column, a new
table in a captured keyspace) to PostgreSQL without losing events written around the change.

plan: per table, compare Cassandra's schema with the raw table (core.schema_evolution).
apply: run each table's migration in its own transaction (the raw table is locked meanwhile; the
sink waits and retries, events stay in Kafka), then the ordinary `apply` for what remains (new
tables: DDL, topics, the sink's topic list, the agent restart that makes it read new schemas).
A table whose column types changed is *incompatible*: it is reported with an error and left
alone; the other tables and pipelines go ahead, but `apply` is skipped for that pipeline so its
connector is not touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from controlplane.adapters import postgres, vault
from controlplane.adapters.connect import ConnectClient
from controlplane.core.ddl import pg_names
from controlplane.core.errors import CdcError
from controlplane.core.manifest_loader import LoadedManifest, load_manifests
from controlplane.core.render import sink_connector_name
from controlplane.core.schema_evolution import TableMigration, plan_table
from controlplane.services.apply import apply_pipelines, read_tables
from controlplane.services.stack import LocalStack


class IncompatibleSchemaError(CdcError):
    """A column's type changed: the table cannot be migrated in place."""


@dataclass
class SchemaChange:
    pipeline: str
    migration: TableMigration
    result: str = "planned"  # planned | applied | skipped | failed

    def as_row(self) -> dict[str, str]:
        return {
            "pipeline": self.pipeline,
            "table": self.migration.table,
            "action": self.migration.action,
            "columns": self.migration.summary,
            "result": self.result,
        }


def _dsn(item: LoadedManifest) -> str:
    pg = item.pipeline.spec.sink.postgres
    base = Path(item.source).parent if item.source != "-" else Path.cwd()
    password = vault.resolve(pg.password_secret, base_dir=base)
    return postgres.dsn(pg.host, pg.port, pg.database, pg.user, password)


def _raw_columns(dsn: str, qualified: str) -> dict[str, str] | None:
    rows = postgres.query(
        dsn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        [qualified],
    )
    return {str(n): str(t) for n, t in rows} or None


def plan_schema(loaded: list[LoadedManifest]) -> list[SchemaChange]:
    out: list[SchemaChange] = []
    for item in loaded:
        dsn = _dsn(item)
        for model in read_tables(item.pipeline):
            actual = _raw_columns(dsn, pg_names(model).raw_table)
            out.append(SchemaChange(item.pipeline.name, plan_table(model, actual)))
    return out


def plan_schema_files(paths: Iterable[str | Path]) -> list[SchemaChange]:
    return plan_schema(load_manifests(paths))


def apply_schema(paths: Iterable[str | Path], stack: LocalStack) -> list[SchemaChange]:
    loaded = load_manifests(paths)
    changes = plan_schema(loaded)
    blocked = {c.pipeline for c in changes if c.migration.action == "incompatible"}
    by_name = {item.pipeline.name: item for item in loaded}
    for c in changes:
        if c.migration.action == "alter":
            postgres.execute(_dsn(by_name[c.pipeline]), c.migration.statements)
            c.result = "applied"
        elif c.migration.action == "incompatible":
            c.result = "failed"
        elif c.migration.action == "create":
            c.result = "skipped" if c.pipeline in blocked else "applied"
        else:
            c.result = "unchanged"
    rest = [item for item in loaded if item.pipeline.name not in blocked]
    if rest:
        apply_pipelines(rest, stack)
    for item in rest:
        # a sink task that met an event of the new schema before the migration failed on it;
        # the event is still in Kafka (offsets are committed only after a write): restart it
        with ConnectClient(item.pipeline.spec.connect.url) as connect:
            name = sink_connector_name(item.pipeline)
            if connect.find_config(name) is not None:
                connect.restart(name, include_tasks=True, only_failed=True)
    bad = [c for c in changes if c.result == "failed"]
    if bad:
        names = ", ".join(f"{c.migration.table} ({c.migration.summary})" for c in bad)
        raise IncompatibleSchemaError(
            f"incompatible column type change in {names}: those tables were left as they were "
            "and their pipelines were not applied; everything else was",
            hint="give the column a new name in Cassandra (ADD the new type, backfill, DROP the "
            "old), or drop and recreate the PostgreSQL tables and re-snapshot",
        )
    return changes

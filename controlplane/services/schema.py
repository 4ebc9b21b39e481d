"""`cdcctl schema plan|apply -f MANIFEST`: carry Cassandra schema changes (ADD/DROP column, a new
table in a captured keyspace) to PostgreSQL without losing events written around the change.

plan: per table, compare Cassandra's schema with the raw table (core.schema_evolution).
apply: run each table's migration in its own transaction (the raw table is locked meanwhile; the
sink waits and retries, events stay in Kafka), then the ordinary `apply` for what remains (new
tables: DDL, topics, the sink's topic list, the agent restart that makes it read new schemas).
A table whose column types or primary key changed is *incompatible*: the ordinary apply stops it
(its topic leaves the sink, its PostgreSQL tables stay as they were; decision 0050) and ends with
exit 7; every other table goes ahead. ``--rebuild TABLE`` is the remedy: it drops that table's
PostgreSQL objects first, so the apply recreates them with the new schema and the topic returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from controlplane.adapters import kafka, postgres
from controlplane.adapters.connect import ConnectClient
from controlplane.core.ddl import generate_ddl
from controlplane.core.errors import (
    CdcError,
    ConnectError,
    IncompatibleSchemaError,
    UsageError,
)
from controlplane.core.manifest_loader import LoadedManifest, load_manifests
from controlplane.core.plan import ddl_objects
from controlplane.core.render import sink_connector_name
from controlplane.core.schema_evolution import TableMigration, plan_table, sinks_to_stop
from controlplane.core.schema_model import TableModel
from controlplane.core.target import PipelineEndpoints, Target, endpoints_for
from controlplane.services.apply import (
    AgentRuntime,
    apply_pipelines,
    raw_table_shape,
    read_tables,
)
from controlplane.services.targets import connect_client, pipeline_dsn


@dataclass
class SchemaChange:
    pipeline: str
    migration: TableMigration
    result: str = "planned"  # planned | applied | unchanged | stopped | rebuilt

    def as_row(self) -> dict[str, str]:
        return {
            "pipeline": self.pipeline,
            "table": self.migration.table,
            "action": self.migration.action,
            "columns": self.migration.summary,
            "result": self.result,
            "reason": self.migration.reason,
        }


def _dsn(item: LoadedManifest, target: Target) -> str:
    base = Path(item.source).parent if item.source != "-" else Path.cwd()
    return pipeline_dsn(target, item.pipeline, base_dir=base)


def _plan(
    loaded: list[LoadedManifest], target: Target
) -> list[tuple[LoadedManifest, TableModel, TableMigration]]:
    out = []
    for item in loaded:
        dsn = _dsn(item, target)
        for model in read_tables(item.pipeline, target=target):
            columns, key = raw_table_shape(dsn, generate_ddl(model).names)
            out.append((item, model, plan_table(model, columns, key)))
    return out


def plan_schema(loaded: list[LoadedManifest], target: Target) -> list[SchemaChange]:
    return [SchemaChange(item.pipeline.name, m) for item, _, m in _plan(loaded, target)]


def plan_schema_files(paths: Iterable[str | Path], target: Target) -> list[SchemaChange]:
    return plan_schema(load_manifests(paths), target)


def drop_statements(model: TableModel) -> list[str]:
    """DROP of a table's PostgreSQL objects: live view, raw and tombstone tables, gate functions."""
    objects = ddl_objects(generate_ddl(model).statements)
    return [
        f"DROP {kind.upper()} IF EXISTS {o.name} CASCADE"
        for kind in ("view", "table", "function")
        for o in objects
        if o.kind == kind
    ]


def _rebuild(
    planned: list[tuple[LoadedManifest, TableModel, TableMigration]],
    tables: Sequence[str],
    target: Target,
) -> set[str]:
    """Drop the PostgreSQL objects of the named stopped tables; returns their qualified names."""
    done: set[str] = set()
    for name in tables:
        hits = [
            (item, model, m)
            for item, model, m in planned
            if name in (m.table, model.table) and m.action == "incompatible"
        ]
        if not hits:
            known = sorted(m.table for _, _, m in planned if m.action == "incompatible")
            raise UsageError(
                f"--rebuild {name}: not a table stopped by an incompatible schema change "
                f"(stopped: {', '.join(known) or 'none'})",
                hint="only a stopped table is rebuilt: any other table's rows were consumed "
                "from Kafka already and would be lost",
            )
        for item, model, m in hits:
            postgres.execute(_dsn(item, target), drop_statements(model))
            done.add(m.table)
    return done


def _wait(what: str, check: Callable[[], bool], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise ConnectError(
                f"{what} did not happen within {deadline_s:.0f}s; no schema change was applied",
                hint="see `cdcctl describe pipeline` and the Connect worker's log, then run "
                "`cdcctl schema apply` again",
            )
        time.sleep(0.25)


@dataclass
class _Fence:
    """A ``writer: lww`` sink stopped while its tables' DDL changes (decision 0139)."""

    item: LoadedManifest
    endpoints: PipelineEndpoints
    target: Target
    # the state an operator left the connector in; restored, not overridden, after the DDL
    state_before: str = "RUNNING"

    @property
    def name(self) -> str:
        return sink_connector_name(self.item.pipeline)

    def _client(self) -> ConnectClient:
        client: ConnectClient = connect_client(self.endpoints.connect, self.target)
        return client

    def stop(self, deadline_s: float = 120.0) -> bool:
        """Stop the sink and wait until no task of it can write; False when it does not exist."""
        with self._client() as connect:
            if connect.find_config(self.name) is None:
                return False
            self.state_before = connect.status(self.name).connector.state
            connect.stop(self.name)

            def stopped() -> bool:
                status = connect.status(self.name)
                return status.connector.state == "STOPPED" and not status.tasks

            _wait(f"stopping sink connector {self.name}", stopped, deadline_s)
        # a task's consumer leaves the group when its thread ends: then no put() is running
        group = f"connect-{self.name}"
        _wait(
            f"the tasks of {self.name} leaving consumer group {group}",
            lambda: kafka.group_members(self.endpoints.kafka, group) == 0,
            deadline_s,
        )
        return True

    def restore(self) -> str:
        """Put the sink back in the state it had before :meth:`stop`; returns that state."""
        with self._client() as connect:
            if self.state_before == "PAUSED":
                connect.pause(self.name)
            elif self.state_before != "STOPPED":
                connect.resume(self.name)
        return self.state_before


def apply_schema(
    paths: Iterable[str | Path],
    target: Target,
    *,
    agents: AgentRuntime | None = None,
    rebuild: Sequence[str] = (),
) -> list[SchemaChange]:
    loaded = load_manifests(paths)
    rebuilt = _rebuild(_plan(loaded, target), rebuild, target) if rebuild else set()
    changes = plan_schema(loaded, target)
    by_name = {item.pipeline.name: item for item in loaded}
    log = structlog.get_logger("cdcctl.schema")
    to_stop = sinks_to_stop(
        [(c.pipeline, c.migration.action) for c in changes],
        {item.pipeline.name: item.pipeline.spec.sink.writer for item in loaded},
    )
    fences = [
        _Fence(by_name[name], endpoints_for(target, by_name[name].pipeline), target)
        for name in to_stop
    ]
    stopped: list[_Fence] = []
    migrated = configured = False
    try:
        for fence in fences:
            if fence.stop():
                log.info("lww_sink_stopped_for_ddl", connector=fence.name)
                stopped.append(fence)
        for c in changes:
            if c.migration.action == "alter":
                migrated = True
                postgres.execute(_dsn(by_name[c.pipeline], target), c.migration.statements)
                c.result = "applied"
            elif c.migration.action == "incompatible":
                c.result = "stopped"  # by the apply below
            elif c.migration.action == "create":
                c.result = "rebuilt" if c.migration.table in rebuilt else "applied"
            else:
                c.result = "unchanged"
        try:
            # stops incompatible tables and raises IncompatibleSchemaError (exit 7) after the rest
            apply_pipelines(loaded, target, agents=agents)
            configured = True
        except IncompatibleSchemaError:
            configured = True  # raised for a stopped table after every config was PUT
            raise
    except Exception as exc:
        if stopped and migrated and not configured:
            names = ", ".join(f.name for f in stopped)
            log.error("lww_sink_left_stopped", connectors=names, error=str(exc))
            raise CdcError(
                f"schema apply failed ({exc}) after stopping the lww sink connector(s) {names}; "
                "they stay STOPPED so that their old SQL never writes to a migrated table",
                hint="fix the cause, run `cdcctl schema apply` again (it writes the configs), "
                "then `cdcctl resume PIPELINE`",
            ) from exc
        raise
    finally:
        if configured or not migrated:
            for fence in stopped:
                state = fence.restore()
                log.info("lww_sink_restored", connector=fence.name, state=state)
        for item in loaded:
            # a sink task that met an event of the new schema before the migration failed on it;
            # the event is still in Kafka (offsets are committed only after a write): restart it
            access = endpoints_for(target, item.pipeline).connect
            with connect_client(access, target) as connect:
                name = sink_connector_name(item.pipeline)
                if connect.find_config(name) is not None:
                    connect.restart(name, include_tasks=True, only_failed=True)
    return changes

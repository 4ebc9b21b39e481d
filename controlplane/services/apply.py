"""`cdcctl apply`: make the running pipeline match its manifest, touching only what differs.

For each pipeline: read the Cassandra tables' schemas (they must exist WITH cdc = true), create
the PostgreSQL side (raw tables, last-write-wins gate, live views), hand the sink's password to
Kafka Connect through its secrets file, PUT the JDBC sink config only when it differs from what
Connect holds, and — on the local stack — write the agent's properties and restart it when they
changed (the agent reads table schemas at start).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.adapters import cassandra, kafka, postgres, vault
from controlplane.adapters.connect import ConnectClient
from controlplane.core.ddl import generate_ddl
from controlplane.core.errors import CassandraError
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import LoadedManifest, load_manifests
from controlplane.core.render import RenderContext, password_key, render_pipeline
from controlplane.core.schema_model import TableModel
from controlplane.services.stack import LocalStack

Reporter = Callable[[str], None]


@dataclass
class Change:
    pipeline: str
    kind: str  # postgres | secret | connector | agent
    name: str
    action: str  # created | updated | unchanged | restarted


@dataclass
class ApplyResult:
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)


def render_context(stack: LocalStack) -> RenderContext:
    lay = stack.lay
    return RenderContext(
        state_dir=lay.root,
        secrets_file=lay.secrets_dir / "connect-secrets.properties",
        cassandra_config=lay.config_dir / "cassandra.yaml",
        agent_http_port=stack.s.ports.agent_http,
    )


def read_tables(pipeline: Pipeline) -> list[TableModel]:
    src = pipeline.spec.source.cassandra
    host, _, port = src.contact_points[0].rpartition(":")
    cluster, session = cassandra.connect(host, int(port))
    try:
        found = cassandra.table_schemas(session, pipeline.keyspace, pipeline.tables)
    finally:
        cluster.shutdown()
    models = []
    for table in pipeline.tables:
        if table not in found:
            raise CassandraError(
                f"pipeline {pipeline.name}: table {pipeline.keyspace}.{table} does not exist in "
                "Cassandra",
                hint="create it first (see examples/demo.cql), or remove it from spec.source",
            )
        cdc, rows = found[table]
        if not cdc:
            raise CassandraError(
                f"pipeline {pipeline.name}: table {pipeline.keyspace}.{table} has cdc = false, "
                "so its changes never reach the commit log's cdc_raw",
                hint=f"ALTER TABLE {pipeline.keyspace}.{table} WITH cdc = true",
            )
        models.append(TableModel.from_system_schema(pipeline.keyspace, table, rows))
    return models


def apply_manifests(
    paths: Iterable[str | Path],
    stack: LocalStack,
    *,
    report: Reporter | None = None,
    read_stdin: Callable[[], str] | None = None,
) -> ApplyResult:
    loaded = load_manifests(paths, **({"read_stdin": read_stdin} if read_stdin else {}))
    return apply_pipelines(loaded, stack, report=report)


def apply_pipelines(
    loaded: list[LoadedManifest], stack: LocalStack, *, report: Reporter | None = None
) -> ApplyResult:
    say = report or (lambda _m: None)
    ctx = render_context(stack)
    result = ApplyResult()
    agent_changed = False
    for item in loaded:
        p = item.pipeline
        base = Path(item.source).parent if item.source != "-" else Path.cwd()
        password = vault.resolve(p.spec.sink.postgres.password_secret, base_dir=base)

        say(f"{p.name}: reading Cassandra schema of {p.keyspace}.{{{','.join(p.tables)}}}")
        tables = read_tables(p)

        pg = p.spec.sink.postgres
        dsn = postgres.dsn(pg.host, pg.port, pg.database, pg.user, password)
        for t in tables:
            ddl = generate_ddl(t)
            existed = postgres.relation_exists(dsn, ddl.names.raw_table)
            postgres.execute(dsn, ddl.statements)
            result.changes.append(
                Change(p.name, "postgres", t.qualified_name, "unchanged" if existed else "created")
            )

        rendered = render_pipeline(p, ctx)
        # Create the topics up front, so the sink is assigned them at once instead of after the
        # agent's first event.
        topics = [p.table_topic(t) for t in p.tables] + [p.dlq_topic]
        created = kafka.ensure_topics(",".join(p.spec.kafka.bootstrap_servers), topics)
        for topic in topics:
            action = "created" if topic in created else "unchanged"
            result.changes.append(Change(p.name, "topic", topic, action))
        secret_action = _write_secret(ctx.secrets_file, password_key(p), password)
        result.changes.append(Change(p.name, "secret", password_key(p), secret_action))

        with ConnectClient(p.spec.connect.url) as connect:
            actual = connect.find_config(rendered.sink_name)
            desired = {**rendered.sink_config, "name": rendered.sink_name}
            if actual == desired:
                action = "unchanged"
            else:
                say(f"{p.name}: {'creating' if actual is None else 'updating'} connector")
                connect.put_config(rendered.sink_name, rendered.sink_config)
                action = "created" if actual is None else "updated"
            result.changes.append(Change(p.name, "connector", rendered.sink_name, action))

        paths = rendered.agent_paths
        before = _read(paths.properties), _read(paths.driver_conf)
        after = rendered.agent_properties, rendered.driver_conf
        for d in (paths.directory, paths.relocation_dir, paths.offset_dir):
            d.mkdir(parents=True, exist_ok=True)
        paths.properties.write_text(rendered.agent_properties)
        paths.driver_conf.write_text(rendered.driver_conf)
        pointer_changed = stack.agent_properties_path() != paths.properties
        stack.use_agent_properties(paths.properties)
        a_action = "unchanged" if before == after and not pointer_changed else "updated"
        agent_changed = agent_changed or a_action != "unchanged" or _tables_new(result, p.name)
        result.changes.append(Change(p.name, "agent", str(paths.properties), a_action))

    if agent_changed and stack.agent_running():
        # The agent reads table schemas when it starts: restart it so new tables are captured
        # (its offsets are kept, so nothing written meanwhile is lost).
        say("restarting the Debezium agent so it picks up the new configuration and tables")
        stack.restart_agent()
        result.changes.append(Change("*", "agent", "restart", "restarted"))
    return result


def _tables_new(result: ApplyResult, pipeline: str) -> bool:
    return any(
        c.pipeline == pipeline and c.kind == "postgres" and c.action == "created"
        for c in result.changes
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write_secret(path: Path, key: str, value: str) -> str:
    """Set one key of the Connect worker's secrets file (0600); other keys are kept."""
    lines = _read(path)
    entries: dict[str, str] = {}
    for line in (lines or "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            entries[k] = v
    if entries.get(key) == value:
        return "unchanged"
    action = "updated" if key in entries else "created"
    entries[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in sorted(entries.items())))
    return action

"""`cdcctl plan` and `cdcctl apply`: compute a plan of what differs, then carry out exactly it.

Planning reads the actual state — the Cassandra tables' schemas (they must exist WITH cdc = true),
which PostgreSQL objects exist and which DDL version made them, which topics exist, what the
Connect worker's secrets file holds, each connector's stored config, the agent's files — renders
the desired state from the manifests, and diffs both with the pure functions of `core.plan`.

Applying runs the plan's non-noop changes in order: PostgreSQL DDL (raw tables, last-write-wins
gate, live views), topics, the secret, ``PUT`` of connector configs that differ, the agent's
files, ``DELETE`` of pruned connectors (owned by cdcctl, named by no manifest) — and on the local
stack restarts the agent when its config changed, new tables appeared or a table was dropped and
recreated (it knows tables by id from its start; the ids it was started with are kept beside its
offsets). A second apply finds nothing to do.

A table whose Cassandra schema changed incompatibly (a column's type, the primary key:
core.schema_evolution) is *stopped* (decision 0050): its PostgreSQL objects are left alone, its
topic is left out of the sink's topic list (recorded in the config as ``cdcctl.stopped-tables``),
everything else is applied, the sink's failed tasks are restarted, and apply ends with
`IncompatibleSchemaError` (exit 7) naming the table and the change.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.adapters import cassandra, kafka, postgres, vault
from controlplane.adapters.connect import ConnectClient
from controlplane.core.contexts import connect_url_for
from controlplane.core.ddl import PgNames, TableDdl, generate_ddl
from controlplane.core.errors import CassandraError
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import LoadedManifest, load_manifests
from controlplane.core.plan import (
    Plan,
    ResourceChange,
    StoppedTable,
    ddl_marker,
    ddl_objects,
    plan_agent,
    plan_connector,
    plan_postgres,
    plan_prune,
    plan_secret,
    plan_topics,
    recreated_tables,
    with_recreated_tables,
)
from controlplane.core.render import (
    AgentPaths,
    RenderContext,
    RenderedPipeline,
    parse_properties,
    password_key,
    render_pipeline,
    without_properties,
)
from controlplane.core.schema_evolution import KeyShape, incompatible_error, plan_table
from controlplane.core.schema_model import TableModel
from controlplane.services.contexts import load_config
from controlplane.services.stack import LocalStack

Reporter = Callable[[str], None]

#: Beside the agent's offsets: {keyspace.table: Cassandra table id} as of the agent's last start.
TABLE_IDS_FILE = "table-ids.json"
SNAPSHOT_OFFSETS_FILE = "snapshot_offset.properties"

_PAST = {"create": "created", "update": "updated", "delete": "deleted", "noop": "unchanged"}


@dataclass
class Change:
    pipeline: str
    kind: str  # postgres | topic | secret | connector | agent
    name: str
    action: str  # created | updated | deleted | unchanged | restarted


@dataclass
class ApplyResult:
    changes: list[Change] = field(default_factory=list)
    plan: Plan = field(default_factory=Plan)

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)


@dataclass(frozen=True)
class Target:
    """Command-line overrides of where Kafka Connect is (see core.contexts precedence)."""

    connect_url: str | None = None
    context: str | None = None


@dataclass
class PipelineDesired:
    """What apply needs to carry out one pipeline's changes."""

    pipeline: Pipeline
    password: str
    dsn: str
    connect_url: str
    rendered: RenderedPipeline
    ddl: dict[str, TableDdl]


@dataclass
class PlannedApply:
    plan: Plan
    pipelines: dict[str, PipelineDesired]
    prune_urls: dict[str, str] = field(default_factory=dict)  # pruned connector -> Connect URL
    ctx: RenderContext | None = None
    table_ids: dict[str, str] = field(default_factory=dict)  # keyspace.table -> Cassandra id
    recreated: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (recorded, now)
    agent: AgentPaths | None = None  # the node's agent (one per node, decision 0013)


def render_context(stack: LocalStack) -> RenderContext:
    lay = stack.lay
    return RenderContext(
        state_dir=lay.root,
        secrets_file=lay.secrets_dir / "connect-secrets.properties",
        cassandra_config=lay.config_dir / "cassandra.yaml",
        agent_http_port=stack.s.ports.agent_http,
    )


def _contact(pipeline: Pipeline) -> tuple[str, int]:
    host, _, port = pipeline.spec.source.cassandra.contact_points[0].rpartition(":")
    return host.strip("[]"), int(port)


class _Cassandra:
    """One session per contact point for the whole plan."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int], tuple[Any, Any]] = {}

    def session(self, pipeline: Pipeline) -> Any:
        key = _contact(pipeline)
        if key not in self._sessions:
            self._sessions[key] = cassandra.connect(*key)
        return self._sessions[key][1]

    def close(self) -> None:
        for cluster, _ in self._sessions.values():
            cluster.shutdown()


def read_tables(pipeline: Pipeline, session: Any = None) -> list[TableModel]:
    """The pipeline's Cassandra tables; each must exist and have ``cdc = true``."""
    own = None
    if session is None:
        own = _Cassandra()
        session = own.session(pipeline)
    try:
        found = cassandra.table_schemas(session, pipeline.keyspace, pipeline.tables)
    finally:
        if own is not None:
            own.close()
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


def raw_table_shape(dsn: str, names: PgNames) -> tuple[dict[str, str] | None, KeyShape | None]:
    """The raw table's columns ({name: format_type}; None when it does not exist) and its key
    (None when it or the tombstone table, whose columns are the partition key, is missing)."""
    rows = postgres.query(
        dsn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        [names.raw_table],
    )
    columns = {str(n): str(t) for n, t in rows} or None
    if columns is None:
        return None, None
    primary = postgres.query(
        dsn,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        [names.raw_table],
    )
    partition = postgres.query(
        dsn,
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped AND left(attname, 5) <> '_cdc_' ORDER BY attnum",
        [names.tombstones_table],
    )
    if not primary or not partition:
        return columns, None
    return columns, KeyShape(tuple(str(r[0]) for r in partition), tuple(str(r[0]) for r in primary))


def pipeline_topics(p: Pipeline) -> list[str]:
    return [p.table_topic(t) for t in p.tables] + [p.dlq_topic]


def build_plan(
    loaded: list[LoadedManifest],
    stack: LocalStack,
    *,
    prune: bool = False,
    prune_match: str = "*",
    target: Target | None = None,
    report: Reporter | None = None,
) -> PlannedApply:
    """Gather actual state and diff it against the manifests. Changes nothing."""
    say = report or (lambda _m: None)
    target = target or Target()
    config = load_config()
    ctx = render_context(stack)
    plan = Plan()
    planned = PlannedApply(plan, {}, ctx=ctx)
    secrets = _read_secrets(ctx.secrets_file)
    topics_by_bootstrap: dict[str, set[str]] = {}
    connectors_by_url: dict[str, dict[str, dict[str, str]]] = {}
    agents_seen: set[Path] = set()
    agent_index: int | None = None
    cql = _Cassandra()
    try:
        for item in loaded:
            p = item.pipeline
            base = Path(item.source).parent if item.source not in ("-", "<stdin>") else Path.cwd()
            password = vault.resolve(p.spec.sink.postgres.password_secret, base_dir=base)
            say(f"{p.name}: reading Cassandra schema of {p.keyspace}.{{{','.join(p.tables)}}}")
            tables = read_tables(p, cql.session(p))
            ids = cassandra.table_ids(cql.session(p), p.keyspace)
            planned.table_ids.update({f"{p.keyspace}.{t}": ids[t] for t in p.tables if t in ids})
            pg = p.spec.sink.postgres
            dsn = postgres.pipeline_dsn(pg, password)
            url = connect_url_for(
                p, config, override_url=target.connect_url, override_context=target.context
            )
            stopped: dict[str, str] = {}
            ddls: dict[str, TableDdl] = {}
            for t in tables:
                ddl = generate_ddl(t)
                columns, pk = raw_table_shape(dsn, ddl.names)
                migration = plan_table(t, columns, pk)
                if migration.action == "incompatible":
                    # leave its PostgreSQL objects alone; its topic leaves the sink (below)
                    stopped[t.table] = migration.reason
                    plan.stopped.append(StoppedTable(p.name, t.qualified_name, migration.reason))
                    continue
                ddls[t.table] = ddl
                objects = ddl_objects(ddl.statements)
                existing = postgres.existing_objects(
                    dsn,
                    [o.name for o in objects if o.kind != "function"],
                    [o.name for o in objects if o.kind == "function"],
                )
                marker = (
                    postgres.relation_comment(dsn, ddl.names.raw_table)
                    if ddl.names.raw_table in existing
                    else None
                )
                plan.changes.append(
                    plan_postgres(p.name, t.qualified_name, ddl.statements, existing, marker)
                )
            rendered = render_pipeline(p, ctx, stopped)
            desired = PipelineDesired(p, password, dsn, url, rendered, ddls)
            planned.pipelines[p.name] = desired

            bootstrap = ",".join(p.spec.kafka.bootstrap_servers)
            if bootstrap not in topics_by_bootstrap:
                topics_by_bootstrap[bootstrap] = kafka.existing_topics(bootstrap)
            plan.changes.extend(
                plan_topics(p.name, pipeline_topics(p), topics_by_bootstrap[bootstrap])
            )

            key = password_key(p)
            plan.changes.append(plan_secret(p.name, key, password, secrets.get(key)))

            if url not in connectors_by_url:
                connectors_by_url[url] = _connector_configs(url)
            plan.changes.append(
                plan_connector(
                    p.name,
                    rendered.sink_name,
                    rendered.sink_config,
                    connectors_by_url[url].get(rendered.sink_name),
                )
            )

            paths = rendered.agent_paths
            if paths.properties not in agents_seen:  # one agent per node (decision 0013)
                agents_seen.add(paths.properties)
                planned.agent = paths
                agent_index = len(plan.changes)
                text = _read(paths.properties)
                plan.changes.append(
                    plan_agent(
                        p.name,
                        str(paths.properties),
                        parse_properties(rendered.agent_properties),
                        None if text is None else parse_properties(text),
                        rendered.driver_conf,
                        _read(paths.driver_conf),
                        pointer_ok=stack.agent_properties_path() == paths.properties,
                    )
                )
    finally:
        cql.close()

    if planned.agent is not None and agent_index is not None:
        planned.recreated = recreated_tables(
            _read_table_ids(planned.agent.directory), planned.table_ids
        )
        plan.changes[agent_index] = with_recreated_tables(
            plan.changes[agent_index], planned.recreated
        )

    if prune:
        urls = set(connectors_by_url) or {
            connect_url_for(
                None, config, override_url=target.connect_url, override_context=target.context
            )
        }
        for url in sorted(urls):
            if url not in connectors_by_url:
                connectors_by_url[url] = _connector_configs(url)
            wanted = {
                d.rendered.sink_name for d in planned.pipelines.values() if d.connect_url == url
            }
            for change in plan_prune(connectors_by_url[url], wanted):
                if fnmatch.fnmatchcase(change.pipeline, prune_match):
                    plan.changes.append(change)
                    planned.prune_urls[change.name] = url
    return planned


def _connector_configs(url: str) -> dict[str, dict[str, str]]:
    with ConnectClient(url) as connect:
        listing = connect.list_connectors(expand=("info",))
    return {name: dict(entry.info.config) if entry.info else {} for name, entry in listing.items()}


def plan_manifests(
    paths: Iterable[str | Path],
    stack: LocalStack,
    *,
    prune: bool = False,
    prune_match: str = "*",
    target: Target | None = None,
    report: Reporter | None = None,
    read_stdin: Callable[[], str] | None = None,
) -> PlannedApply:
    loaded = load_manifests(paths, **({"read_stdin": read_stdin} if read_stdin else {}))
    return build_plan(
        loaded, stack, prune=prune, prune_match=prune_match, target=target, report=report
    )


def apply_manifests(
    paths: Iterable[str | Path],
    stack: LocalStack,
    *,
    report: Reporter | None = None,
    read_stdin: Callable[[], str] | None = None,
    prune: bool = False,
    prune_match: str = "*",
    target: Target | None = None,
) -> ApplyResult:
    loaded = load_manifests(paths, **({"read_stdin": read_stdin} if read_stdin else {}))
    return apply_pipelines(
        loaded, stack, report=report, prune=prune, prune_match=prune_match, target=target
    )


def apply_pipelines(
    loaded: list[LoadedManifest],
    stack: LocalStack,
    *,
    report: Reporter | None = None,
    prune: bool = False,
    prune_match: str = "*",
    target: Target | None = None,
) -> ApplyResult:
    planned = build_plan(
        loaded, stack, prune=prune, prune_match=prune_match, target=target, report=report
    )
    result = execute_plan(planned, stack, report=report)
    if planned.plan.stopped:
        say = report or (lambda _m: None)
        for s in planned.plan.stopped:
            say(f"{s.pipeline}: ! stopped table {s.table}: {s.reason}")
        # the sink may have failed on an event of the new schema before its topic was taken out
        restart_failed_sinks(planned, {s.pipeline for s in planned.plan.stopped})
        raise incompatible_error([(s.pipeline, s.table, s.reason) for s in planned.plan.stopped])
    return result


def restart_failed_sinks(planned: PlannedApply, pipelines: Iterable[str]) -> None:
    """Restart the failed tasks of these pipelines' sink connectors (where they exist)."""
    for name in sorted(set(pipelines)):
        d = planned.pipelines.get(name)
        if d is None:
            continue
        with ConnectClient(d.connect_url) as connect:
            if connect.find_config(d.rendered.sink_name) is not None:
                connect.restart(d.rendered.sink_name, include_tasks=True, only_failed=True)


def execute_plan(
    planned: PlannedApply, stack: LocalStack, *, report: Reporter | None = None
) -> ApplyResult:
    """Carry out exactly the plan's changes, in plan order."""
    say = report or (lambda _m: None)
    assert planned.ctx is not None
    ctx = planned.ctx
    result = ApplyResult(plan=planned.plan)
    restart_agent = False
    for change in planned.plan.changes:
        if change.action != "noop":
            say(f"{change.pipeline}: {change.symbol} {change.kind} {change.name}")
            _carry_out(change, planned, ctx, stack)
            if change.kind == "agent" or (change.kind == "postgres" and change.action == "create"):
                restart_agent = True
        result.changes.append(
            Change(change.pipeline, change.kind, change.name, _PAST[change.action])
        )
    if restart_agent and stack.agent_running():
        # The agent reads table schemas when it starts: restart it so new tables are captured
        # (its offsets are kept, so nothing written meanwhile is lost).
        say("restarting the Debezium agent so it picks up the new configuration and tables")
        stack.restart_agent(before_start=lambda: _forget_snapshots(planned))
        result.changes.append(Change("*", "agent", "restart", "restarted"))
    elif not stack.agent_running():
        _forget_snapshots(planned)  # it captures the recreated tables when it starts
    _record_table_ids(planned)
    return result


def _read_table_ids(agent_dir: Path) -> dict[str, str]:
    try:
        value = json.loads(_read(agent_dir / TABLE_IDS_FILE) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _record_table_ids(planned: PlannedApply) -> None:
    """Remember the ids the (restarted or running) agent captures, keeping other pipelines'."""
    if planned.agent is None or not planned.table_ids:
        return
    directory = planned.agent.directory
    ids = _read_table_ids(directory) | planned.table_ids
    directory.mkdir(parents=True, exist_ok=True)
    (directory / TABLE_IDS_FILE).write_text(json.dumps(ids, indent=1, sort_keys=True))


def _forget_snapshots(planned: PlannedApply) -> None:
    """While the agent is stopped: drop recreated tables from its snapshot offsets, so it
    snapshots them when it starts — rows written to them before it captured their new id (it
    skipped those) arrive that way. The old rows are gone: Cassandra deleted them on DROP."""
    if planned.agent is None or not planned.recreated:
        return
    path = planned.agent.offset_dir / SNAPSHOT_OFFSETS_FILE
    text = _read(path)
    if text is not None:
        path.write_text(without_properties(text, planned.recreated))


def _carry_out(
    change: ResourceChange, planned: PlannedApply, ctx: RenderContext, stack: LocalStack
) -> None:
    if change.kind == "connector" and change.action == "delete":
        with ConnectClient(planned.prune_urls[change.name]) as connect:
            connect.delete_connector(change.name)
        return
    d = planned.pipelines[change.pipeline]
    p = d.pipeline
    if change.kind == "postgres":
        table = change.name.rpartition(".")[2]
        ddl = d.ddl[table]
        marker = postgres.comment_on_table_sql(ddl.names.raw_table, ddl_marker(ddl.statements))
        postgres.execute(d.dsn, [*ddl.statements, marker])
    elif change.kind == "topic":
        kafka.ensure_topics(",".join(p.spec.kafka.bootstrap_servers), [change.name])
    elif change.kind == "secret":
        _write_secret(ctx.secrets_file, change.name, d.password)
    elif change.kind == "connector":
        with ConnectClient(d.connect_url) as connect:
            connect.put_config(d.rendered.sink_name, d.rendered.sink_config)
    elif change.kind == "agent":
        paths = d.rendered.agent_paths
        for directory in (paths.directory, paths.relocation_dir, paths.offset_dir):
            directory.mkdir(parents=True, exist_ok=True)
        paths.properties.write_text(d.rendered.agent_properties)
        paths.driver_conf.write_text(d.rendered.driver_conf)
        stack.use_agent_properties(paths.properties)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_secrets(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in (_read(path) or "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            entries[k] = v
    return entries


def _write_secret(path: Path, key: str, value: str) -> str:
    """Set one key of the Connect worker's secrets file (0600); other keys are kept."""
    entries = _read_secrets(path)
    if entries.get(key) == value:
        return "unchanged"
    action = "updated" if key in entries else "created"
    entries[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in sorted(entries.items())))
    return action

"""`cdcctl plan` and `cdcctl apply`: compute a plan of what differs, then carry out exactly it.

Everything is reached through a resolved `Target` (core.target, services.targets): a named
context or the local stack; the stack service itself is never imported here. Planning reads the
actual state — the Cassandra tables' schemas (they must exist WITH cdc = true), which PostgreSQL
objects exist and which DDL version made them, which topics exist, each connector's stored
config, the managed agent's files or the external agents' recorded bundle digests — renders the
desired state from the manifests, and diffs both with the pure functions of `core.plan`.
Secrets never pass through here to Connect: the sink config holds config-provider placeholders
the workers resolve (decision 0070).

Applying runs the plan's non-noop changes in order: PostgreSQL DDL (raw tables, last-write-wins
gate, live views), topics, ``PUT`` of connector configs that differ, the managed agent's files,
``DELETE`` of pruned connectors (owned by cdcctl, named by no manifest) — and on the local
stack restarts the agent when its config changed, new tables appeared or a table was dropped and
recreated (it knows tables by id from its start; the ids it was started with are kept beside its
offsets). External agents are never "configured": their changed bundles are listed as rollouts
for the operator. A second apply finds nothing to do.

A table whose Cassandra schema changed incompatibly (a column's type, the primary key:
core.schema_evolution) is *stopped* (decision 0050): its PostgreSQL objects are left alone, its
topic is left out of the sink's topic list (recorded in the config as ``cdcctl.stopped-tables``),
everything else is applied, the sink's failed tasks are restarted, and apply ends with
`IncompatibleSchemaError` (exit 7) naming the table and the change.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from controlplane.adapters import cassandra, kafka, postgres, tracing, vault
from controlplane.core.ddl import (
    PgNames,
    TableDdl,
    UnsafeIdentifierError,
    generate_ddl,
    sink_identifier_problem,
)
from controlplane.core.errors import CassandraError, ConnectError, UsageError
from controlplane.core.freshness import HEARTBEAT_TABLE, heartbeat_model, heartbeat_table_cql
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import LoadedManifest, load_manifests
from controlplane.core.plan import (
    Plan,
    ResourceChange,
    StoppedTable,
    ddl_marker,
    ddl_objects,
    plan_agent,
    plan_agent_bundles,
    plan_connector,
    plan_postgres,
    plan_prune,
    plan_topics,
    recreated_tables,
    with_recreated_tables,
)
from controlplane.core.render import (
    AGENT_BUNDLES_KEY,
    AgentPaths,
    ManagedAgent,
    RenderContext,
    RenderedPipeline,
    agent_paths,
    parse_properties,
    recorded_bundles,
    render_agent_properties,
    render_driver_conf,
    render_pipeline,
    without_properties,
)
from controlplane.core.schema_evolution import KeyShape, incompatible_error, plan_table
from controlplane.core.schema_model import TableModel
from controlplane.core.target import ConnectAccess, PipelineEndpoints, Target, endpoints_for
from controlplane.services.targets import (
    cassandra_security,
    connect_client,
    named_contexts,
    pipeline_dsn,
)

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


class AgentNodeRuntime(Protocol):
    """One local agent (services.local_agents.LocalAgent): its node, where its properties are."""

    node_id: str
    http_port: int
    cassandra_config: Path

    def properties_path(self) -> Path: ...

    def use_properties(self, path: Path) -> None: ...


class AgentRuntime(Protocol):
    """The local stack's agents (services.local_agents): where node 1's properties are, whether
    they all run, a restart of all of them. ``nodes()`` (optional): one entry per Cassandra node
    of a multi-node stack, each configured on its own (its node id, HTTP port, cassandra.yaml)."""

    def properties_path(self) -> Path: ...

    def use_properties(self, path: Path) -> None: ...

    def running(self) -> bool: ...

    def restart(self, before_start: Callable[[], None] | None = None) -> None: ...


def agent_nodes(agents: AgentRuntime) -> list[Any]:
    """Every node's agent runtime; a runtime without ``nodes()`` is one agent (node 1)."""
    nodes = getattr(agents, "nodes", None)
    return list(nodes()) if callable(nodes) else [agents]


@dataclass
class PipelineDesired:
    """What apply needs to carry out one pipeline's changes."""

    pipeline: Pipeline
    dsn: str
    endpoints: PipelineEndpoints
    rendered: RenderedPipeline
    ddl: dict[str, TableDdl]
    # Every node's managed agent files by properties path (node 1's is rendered.managed_agent).
    agents: dict[str, ManagedAgent] = field(default_factory=dict)

    @property
    def connect(self) -> ConnectAccess:
        return self.endpoints.connect


@dataclass
class PlannedApply:
    plan: Plan
    pipelines: dict[str, PipelineDesired]
    target: Target
    prune_access: dict[str, ConnectAccess] = field(default_factory=dict)  # pruned -> cluster
    table_ids: dict[str, str] = field(default_factory=dict)  # keyspace.table -> Cassandra id
    recreated: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (recorded, now)
    agent: AgentPaths | None = None  # the managed agent of node 1 (one per node, decision 0013)
    agent_nodes: list[AgentPaths] = field(default_factory=list)  # every node's (node 1 first)
    agent_runtimes: dict[str, Any] = field(default_factory=dict)  # properties path -> its agent

    @property
    def rollouts(self) -> list[ResourceChange]:
        """External agents' bundles the operator must roll out (or stop)."""
        return [c for c in self.plan.changes if c.kind == "agent-bundle" and c.action != "noop"]


def render_context(target: Target, agents: AgentRuntime | None) -> RenderContext:
    """Managed agent files only where the target is a local stack whose agent cdcctl runs; the
    local stack's PostgreSQL CA for the sink wherever the target is a local stack."""
    local = target.local
    if local is None:
        return RenderContext()
    # The local stack's workers run here: they can read the stack's CA (decision 0108).
    ca_file = target.postgres.ca_file
    if agents is None:
        return RenderContext(postgres_ca_file=ca_file)
    return RenderContext(
        state_dir=local.state_dir,
        cassandra_config=local.cassandra_config,
        agent_http_port=local.agent_http_port,
        cassandra_node_id=local.node_id,
        agent_security=local.agent_security,
        agent_kafka_tls=local.agent_kafka_tls,
        postgres_ca_file=ca_file,
    )


class _Cassandra:
    """One session per set of contact points for the whole plan."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._sessions: dict[tuple[tuple[str, ...], str], tuple[Any, Any]] = {}

    def session(self, endpoints: PipelineEndpoints) -> Any:
        key = (endpoints.contact_points, endpoints.local_datacenter)
        if key not in self._sessions:
            self._sessions[key] = cassandra.connect(
                list(endpoints.contact_points),
                local_datacenter=endpoints.local_datacenter,
                hint=self._target.hint("Cassandra"),
                security=cassandra_security(self._target),
            )
        return self._sessions[key][1]

    def close(self) -> None:
        for cluster, _ in self._sessions.values():
            cluster.shutdown()


def read_tables(
    pipeline: Pipeline, session: Any = None, *, target: Target | None = None
) -> list[TableModel]:
    """The pipeline's Cassandra tables; each must exist and have ``cdc = true`` (the heartbeat
    table, which apply creates, may not exist yet: its model is known)."""
    own = None
    if session is None:
        from controlplane.services.targets import resolve_target

        target = target or resolve_target()
        own = _Cassandra(target)
        session = own.session(endpoints_for(target, pipeline))
    try:
        found = cassandra.table_schemas(session, pipeline.keyspace, pipeline.captured_tables)
    finally:
        if own is not None:
            own.close()
    models = []
    for table in pipeline.captured_tables:
        if table == HEARTBEAT_TABLE and table not in found:
            # apply creates it (a `cassandra` change) with exactly these columns
            models.append(heartbeat_model(pipeline.keyspace))
            continue
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
    return [p.table_topic(t) for t in p.captured_tables] + [p.dlq_topic]


def build_plan(
    loaded: list[LoadedManifest],
    target: Target,
    *,
    agents: AgentRuntime | None = None,
    prune: bool = False,
    prune_match: str = "*",
    report: Reporter | None = None,
) -> PlannedApply:
    """Gather actual state on `target` and diff it against the manifests. Changes nothing.
    Traced as ``apply.plan`` (its target, how many pipelines and pending changes)."""
    with tracing.span("apply.plan", target=target.name, pipelines=len(loaded)) as span:
        planned = _build_plan(
            loaded,
            target,
            agents=agents,
            prune=prune,
            prune_match=prune_match,
            report=report,
        )
        span.set(changes=len(planned.plan.pending), stopped=len(planned.plan.stopped))
        return planned


def _build_plan(
    loaded: list[LoadedManifest],
    target: Target,
    *,
    agents: AgentRuntime | None = None,
    prune: bool = False,
    prune_match: str = "*",
    report: Reporter | None = None,
) -> PlannedApply:
    say = report or (lambda _m: None)
    contexts = named_contexts()
    base_ctx = render_context(target, agents)
    plan = Plan()
    planned = PlannedApply(plan, {}, target)
    topics_by_bootstrap: dict[str, set[str]] = {}
    connectors_by_url: dict[str, dict[str, dict[str, str]]] = {}
    access_by_url: dict[str, ConnectAccess] = {}
    agents_seen: set[Path] = set()
    providers_checked: set[tuple[str, str]] = set()
    agent_index: int | None = None
    cql = _Cassandra(target)
    try:
        for item in loaded:
            p = item.pipeline
            _check_agent_mode(p, target, agents)
            base = Path(item.source).parent if item.source not in ("-", "<stdin>") else Path.cwd()
            endpoints = endpoints_for(target, p, contexts)
            dsn = pipeline_dsn(target, p, base_dir=base)
            say(f"{p.name}: reading Cassandra schema of {p.keyspace}.{{{','.join(p.tables)}}}")
            session = cql.session(endpoints)
            tables = read_tables(p, session)
            ids = cassandra.table_ids(session, p.keyspace)
            planned.table_ids.update(
                {f"{p.keyspace}.{t}": ids[t] for t in p.captured_tables if t in ids}
            )
            if p.heartbeat:
                # before the PostgreSQL tables: a managed agent restarts after those and must
                # find the Cassandra table (decision 0120)
                plan.changes.append(
                    ResourceChange(
                        p.name,
                        "cassandra",
                        f"{p.keyspace}.{HEARTBEAT_TABLE}",
                        "noop" if HEARTBEAT_TABLE in ids else "create",
                        reason="heartbeat table (cdcctl serve measures freshness with it)",
                    )
                )
            stopped: dict[str, str] = {}
            ddls: dict[str, TableDdl] = {}
            for t in tables:
                _check_sink_identifiers(t)
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
            ctx = dataclasses.replace(base_ctx, secret_versions=_secret_versions(p, target))
            rendered = render_pipeline(p, ctx, stopped, tables)
            bundles = _external_bundles(p, target, session)
            if bundles is not None:
                rendered.sink_config[AGENT_BUNDLES_KEY] = json.dumps(
                    dict(sorted(bundles.items())), separators=(",", ":")
                )
            planned.pipelines[p.name] = PipelineDesired(p, dsn, endpoints, rendered, ddls)

            servers = endpoints.kafka.servers
            if servers not in topics_by_bootstrap:
                topics_by_bootstrap[servers] = kafka.existing_topics(endpoints.kafka)
            plan.changes.extend(
                plan_topics(p.name, pipeline_topics(p), topics_by_bootstrap[servers])
            )

            url = endpoints.connect.url
            access_by_url.setdefault(url, endpoints.connect)
            if url not in connectors_by_url:
                connectors_by_url[url] = _connector_configs(endpoints.connect, target)
            if (
                url,
                "vault",
            ) not in providers_checked and p.spec.sink.postgres.password_secret.vault:
                check_vault_provider(endpoints.connect, target, rendered.sink_config)
                providers_checked.add((url, "vault"))
            actual = connectors_by_url[url].get(rendered.sink_name)
            plan.changes.append(
                plan_connector(p.name, rendered.sink_name, rendered.sink_config, actual)
            )
            if bundles is not None:
                plan.changes.extend(
                    plan_agent_bundles(p.name, bundles, recorded_bundles(actual or {}))
                )

            managed = rendered.managed_agent
            if managed is not None and managed.paths.properties not in agents_seen:
                # one agent per node (decision 0013): every node's agent is configured, each
                # with its own node id, HTTP port and cassandra.yaml
                assert agents is not None
                for index, node in enumerate(agent_nodes(agents)):
                    node_managed = managed if index == 0 else _node_agent(p, ctx, node)
                    desired = planned.pipelines[p.name]
                    desired.agents[str(node_managed.paths.properties)] = node_managed
                    if node_managed.paths.properties in agents_seen:
                        continue
                    agents_seen.add(node_managed.paths.properties)
                    planned.agent_nodes.append(node_managed.paths)
                    planned.agent_runtimes[str(node_managed.paths.properties)] = node
                    if index == 0:
                        planned.agent = node_managed.paths
                        agent_index = len(plan.changes)
                    text = _read(node_managed.paths.properties)
                    plan.changes.append(
                        plan_agent(
                            p.name,
                            str(node_managed.paths.properties),
                            parse_properties(node_managed.properties),
                            None if text is None else parse_properties(text),
                            node_managed.driver_conf,
                            _read(node_managed.paths.driver_conf),
                            pointer_ok=node.properties_path() == node_managed.paths.properties,
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
        if not connectors_by_url:
            access_by_url[target.connect.url] = target.connect
        for url, access in sorted(access_by_url.items()):
            if url not in connectors_by_url:
                connectors_by_url[url] = _connector_configs(access, target)
            wanted = {
                d.rendered.sink_name for d in planned.pipelines.values() if d.connect.url == url
            }
            for change in plan_prune(connectors_by_url[url], wanted):
                if fnmatch.fnmatchcase(change.pipeline, prune_match):
                    plan.changes.append(change)
                    planned.prune_access[change.name] = access
    return planned


def _check_sink_identifiers(table: TableModel) -> None:
    """Column names the Debezium JDBC sink would write unescaped into its statements are refused
    before anything is created (decision 0090)."""
    for column in table.columns:
        problem = sink_identifier_problem(column.name)
        if problem:
            raise UnsafeIdentifierError(
                f"table {table.qualified_name}: column {column.name!r} {problem}; nothing was "
                "applied",
                hint="rename the column in Cassandra (a new column plus a copy), or leave the "
                "table out of spec.source.cassandra.tables",
            )


def _node_agent(p: Pipeline, ctx: RenderContext, node: Any) -> ManagedAgent:
    """The managed agent files of another node of the local stack: its node id, HTTP port and
    cassandra.yaml (the manifest's contact points for the driver, as node 1's)."""
    node_ctx = dataclasses.replace(
        ctx,
        cassandra_node_id=node.node_id,
        agent_http_port=node.http_port,
        cassandra_config=node.cassandra_config,
    )
    return ManagedAgent(
        properties=render_agent_properties(p, node_ctx),
        driver_conf=render_driver_conf(p, node_ctx),
        paths=agent_paths(p, node_ctx),
    )


def _check_agent_mode(p: Pipeline, target: Target, agents: AgentRuntime | None) -> None:
    if p.spec.source.agent.mode == "managed" and (target.local is None or agents is None):
        raise UsageError(
            f"pipeline {p.name}: spec.source.agent.mode is managed (cdcctl runs the agent), but "
            f"the target is {target.describe()}, whose agents cdcctl does not run",
            hint="set spec.source.agent.mode: external and roll out the bundles of "
            "`cdcctl agent render`, or apply to the local stack",
        )


def _secret_versions(p: Pipeline, target: Target) -> dict[str, int]:
    """{pipeline: Vault version} of a Vault-held sink password (rotation restarts the sink)."""
    ref = p.spec.sink.postgres.password_secret
    if ref.vault is None:
        return {}
    return {p.name: vault.read(ref.vault.path, target.vault).version}


def _external_bundles(p: Pipeline, target: Target, session: Any) -> dict[str, str] | None:
    """{node id: bundle digest} of an external-agent pipeline (None when managed)."""
    if p.spec.source.agent.mode != "external":
        return None
    from controlplane.services.agents import bundle_digests_for

    return bundle_digests_for(p, target, session)


# A string key Connect's config validation echoes, probed with a placeholder that names no real
# key: a vault provider on the workers fails on it, a worker without one echoes it unchanged.
PROVIDER_PROBE_KEY = "errors.deadletterqueue.topic.name"
PROVIDER_PROBE_FIELD = "__cdcctl_provider_probe__"


def check_vault_provider(
    access: ConnectAccess, target: Target, sink_config: dict[str, str]
) -> None:
    """Before anything is PUT: the workers must resolve ``${vault:...}``, else the sink would
    log in with the placeholder's text. Kafka Connect does not list config providers, but its
    config validation runs them, so a probe placeholder tells (nothing secret is read)."""
    placeholder = sink_config.get("connection.password", "")
    path = placeholder.removeprefix("${vault:").rpartition(":")[0]
    probe = f"${{vault:{path}:{PROVIDER_PROBE_FIELD}}}"
    config = {**sink_config, PROVIDER_PROBE_KEY: probe}
    try:
        with connect_client(access, target, timeout=30) as connect:
            result = connect.validate_config(config["connector.class"], config)
    except ConnectError as exc:
        if exc.status is None or exc.status in (401, 403):
            raise  # unreachable or unauthorised: not a statement about providers
        return  # the provider ran and refused the probe: it is there
    if result.values.get(PROVIDER_PROBE_KEY) == probe:
        raise ConnectError(
            f"the Kafka Connect workers at {access.url} have no `vault` config provider: the "
            f"sink's password placeholder {placeholder} would reach PostgreSQL unresolved",
            hint="install cass-cdc-pg-vault-config-provider on the workers' plugin.path and set "
            "config.providers=vault,... (docs/deploy.md#2-the-connect-workers), then apply again",
        )


def _connector_configs(access: ConnectAccess, target: Target) -> dict[str, dict[str, str]]:
    with connect_client(access, target) as connect:
        listing = connect.list_connectors(expand=("info",))
    return {name: dict(entry.info.config) if entry.info else {} for name, entry in listing.items()}


def plan_manifests(
    paths: Iterable[str | Path],
    target: Target,
    *,
    agents: AgentRuntime | None = None,
    prune: bool = False,
    prune_match: str = "*",
    report: Reporter | None = None,
    read_stdin: Callable[[], str] | None = None,
) -> PlannedApply:
    loaded = load_manifests(paths, **({"read_stdin": read_stdin} if read_stdin else {}))
    return build_plan(
        loaded, target, agents=agents, prune=prune, prune_match=prune_match, report=report
    )


def apply_manifests(
    paths: Iterable[str | Path],
    target: Target,
    *,
    agents: AgentRuntime | None = None,
    report: Reporter | None = None,
    read_stdin: Callable[[], str] | None = None,
    prune: bool = False,
    prune_match: str = "*",
) -> ApplyResult:
    loaded = load_manifests(paths, **({"read_stdin": read_stdin} if read_stdin else {}))
    return apply_pipelines(
        loaded, target, agents=agents, report=report, prune=prune, prune_match=prune_match
    )


def apply_pipelines(
    loaded: list[LoadedManifest],
    target: Target,
    *,
    agents: AgentRuntime | None = None,
    report: Reporter | None = None,
    prune: bool = False,
    prune_match: str = "*",
) -> ApplyResult:
    planned = build_plan(
        loaded, target, agents=agents, prune=prune, prune_match=prune_match, report=report
    )
    result = execute_plan(planned, agents, report=report)
    # A sink task that failed on a raw table dropped under it (42P01: a table recreated, a
    # PostgreSQL side reset) runs again once apply has created the table.
    created = {
        c.pipeline
        for c in planned.plan.changes
        if c.kind == "postgres" and c.action in ("create", "update")
    }
    if created:
        restart_failed_sinks(planned, created)
    if planned.plan.stopped:
        say = report or (lambda _m: None)
        for s in planned.plan.stopped:
            say(f"{s.pipeline}: ! stopped table {s.table}: {s.reason}")
        # the sink may have failed on an event of the new schema before its topic was taken out
        restart_failed_sinks(planned, {s.pipeline for s in planned.plan.stopped})
        raise incompatible_error([(s.pipeline, s.table, s.reason) for s in planned.plan.stopped])
    return result


def restart_failed_sinks(planned: PlannedApply, pipelines: Iterable[str]) -> None:
    """Restart the failed tasks of these pipelines' sink connectors, where one has failed. A
    connector without a status yet (just created: no worker has started it, or it does not
    exist) has nothing to restart; asking Connect to restart it anyway answers 404."""
    for name in sorted(set(pipelines)):
        d = planned.pipelines.get(name)
        if d is None:
            continue
        with connect_client(d.connect, planned.target) as connect:
            status = connect.find_status(d.rendered.sink_name)
            if status is None:
                continue
            if status.failed_tasks or status.connector.state == "FAILED":
                connect.restart(d.rendered.sink_name, include_tasks=True, only_failed=True)


def execute_plan(
    planned: PlannedApply, agents: AgentRuntime | None, *, report: Reporter | None = None
) -> ApplyResult:
    """Carry out exactly the plan's changes, in plan order. External agents' bundle changes are
    recorded (in the sink's config) and reported as rollouts for the operator, never as done.
    Traced as ``apply.execute`` with one ``apply.change`` span per change that is not a no-op
    (pipeline, kind, name, planned action and result) and ``apply.agent`` for a start or restart
    of the managed agents."""
    with tracing.span("apply.execute", target=planned.target.name) as span:
        result = _execute_plan(planned, agents, report=report)
        span.set(changed=sum(c.action != "unchanged" for c in result.changes))
        return result


def _execute_plan(
    planned: PlannedApply, agents: AgentRuntime | None, *, report: Reporter | None = None
) -> ApplyResult:
    say = report or (lambda _m: None)
    result = ApplyResult(plan=planned.plan)
    restart_agent = False
    for change in planned.plan.changes:
        if change.kind == "agent-bundle":
            action = "unchanged" if change.action == "noop" else "to roll out"
            if change.action != "noop":
                with _change_span(change, action):
                    say(
                        f"{change.pipeline}: {change.symbol} agent bundle of node {change.name} "
                        "changed: roll it out (cdcctl agent render -f ... --out DIR)"
                    )
            result.changes.append(Change(change.pipeline, change.kind, change.name, action))
            continue
        if change.action != "noop":
            with _change_span(change, _PAST[change.action]):
                say(f"{change.pipeline}: {change.symbol} {change.kind} {change.name}")
                _carry_out(change, planned, agents)
            if change.kind == "agent" or (change.kind == "postgres" and change.action == "create"):
                restart_agent = True
        result.changes.append(
            Change(change.pipeline, change.kind, change.name, _PAST[change.action])
        )
    if agents is not None and planned.agent is not None:
        if not agents.running():
            # A managed agent is cdcctl's to run: one that is down (crashed, killed) is started,
            # and resumes from its offsets; recreated tables are re-snapshotted when it starts.
            say("starting the Debezium agent (it was not running)")
            with tracing.span("apply.agent", action="started"):
                agents.restart(before_start=lambda: _forget_snapshots(planned))
            result.changes.append(Change("*", "agent", "start", "started"))
        elif restart_agent:
            # The agent reads table schemas when it starts: restart it so new tables are
            # captured (its offsets are kept, so nothing written meanwhile is lost).
            say("restarting the Debezium agent so it picks up the new configuration and tables")
            with tracing.span("apply.agent", action="restarted"):
                agents.restart(before_start=lambda: _forget_snapshots(planned))
            result.changes.append(Change("*", "agent", "restart", "restarted"))
        _record_table_ids(planned)
    return result


def _change_span(change: ResourceChange, result: str) -> AbstractContextManager[tracing.Span]:
    """The span of one change: names and actions only, never a config value (they may hold
    secrets' placeholders, or worse)."""
    return tracing.span(
        "apply.change",
        pipeline=change.pipeline,
        change_kind=change.kind,
        change_name=change.name,
        change_action=change.action,
        change_result=result,
        change_fields=len(change.fields),
    )


def _read_table_ids(agent_dir: Path) -> dict[str, str]:
    try:
        value = json.loads(_read(agent_dir / TABLE_IDS_FILE) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _record_table_ids(planned: PlannedApply) -> None:
    """Remember the ids the (restarted or running) agents capture, keeping other pipelines'."""
    if planned.agent is None or not planned.table_ids:
        return
    for paths in planned.agent_nodes or [planned.agent]:
        directory = paths.directory
        ids = _read_table_ids(directory) | planned.table_ids
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TABLE_IDS_FILE).write_text(json.dumps(ids, indent=1, sort_keys=True))


def _forget_snapshots(planned: PlannedApply) -> None:
    """While the agent is stopped: drop recreated tables from its snapshot offsets, so it
    snapshots them when it starts — rows written to them before it captured their new id (it
    skipped those) arrive that way. The old rows are gone: Cassandra deleted them on DROP."""
    if planned.agent is None or not planned.recreated:
        return
    for paths in planned.agent_nodes or [planned.agent]:
        path = paths.offset_dir / SNAPSHOT_OFFSETS_FILE
        text = _read(path)
        if text is not None:
            path.write_text(without_properties(text, planned.recreated))


def _carry_out(change: ResourceChange, planned: PlannedApply, agents: AgentRuntime | None) -> None:
    target = planned.target
    if change.kind == "connector" and change.action == "delete":
        with connect_client(planned.prune_access[change.name], target) as connect:
            connect.delete_connector(change.name)
        return
    d = planned.pipelines[change.pipeline]
    if change.kind == "cassandra":
        keyspace = d.pipeline.keyspace
        cql = _Cassandra(target)
        try:
            session = cql.session(d.endpoints)
            cassandra.execute(session, heartbeat_table_cql(keyspace))
            created = cassandra.table_ids(session, keyspace).get(HEARTBEAT_TABLE)
        finally:
            cql.close()
        if created is not None:
            # the agents record the id they capture: without it the next plan would take the
            # table for a recreated one (and restart the agent to snapshot it)
            planned.table_ids[f"{keyspace}.{HEARTBEAT_TABLE}"] = created
    elif change.kind == "postgres":
        table = change.name.rpartition(".")[2]
        ddl = d.ddl[table]
        marker = postgres.comment_on_table_sql(ddl.names.raw_table, ddl_marker(ddl.statements))
        postgres.execute(d.dsn, [*ddl.statements, marker])
    elif change.kind == "topic":
        kafka.ensure_topics(d.endpoints.kafka, [change.name])
    elif change.kind == "connector":
        with connect_client(d.connect, target) as connect:
            connect.put_config(d.rendered.sink_name, d.rendered.sink_config)
    elif change.kind == "agent":
        managed = d.agents.get(change.name) or d.rendered.managed_agent
        assert managed is not None
        assert agents is not None
        paths = managed.paths
        for directory in (paths.directory, paths.relocation_dir, paths.offset_dir):
            directory.mkdir(parents=True, exist_ok=True)
        paths.properties.write_text(managed.properties)
        paths.driver_conf.write_text(managed.driver_conf)
        planned.agent_runtimes.get(change.name, agents).use_properties(paths.properties)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None

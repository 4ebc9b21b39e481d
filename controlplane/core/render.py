"""Render a `Pipeline` into the configs its components run with.

- the Debezium JDBC sink connector config (a flat ``dict[str, str]`` for Kafka Connect),
- the Debezium Cassandra agent's ``.properties`` file (text, and parsed back into a dict),
- the DataStax java-driver ``application.conf`` the agent connects with.

Templates live in ``connectors/``; these functions only fill them, so they are pure apart from
reading the (static) templates. Connector configs are normalised the way Strimzi does it: every
value a string, no nulls, so ``desired == actual`` compares cleanly against what
``GET /connectors/{name}/config`` returns and nothing restarts a connector for nothing.

Secrets never appear: the password becomes a config-provider placeholder (``${vault:...}``,
``${env:...}``, ``${file:<worker path>:...}``) that the Connect workers resolve themselves
(``GET .../config`` returns the raw placeholder, so drift checks never need the secret). Nothing
here depends on the machine cdcctl runs on: two operators render the same sink config.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2

from controlplane.core.ddl import RAW_SCHEMA_SUFFIX, MergeSql, TableMerge, generate_merge
from controlplane.core.manifest import TOMBSTONES_TOPIC_SUFFIX, AgentKafkaTls, Pipeline
from controlplane.core.properties import escape_value, load_properties
from controlplane.core.schema_model import TableModel
from controlplane.core.target import AgentCassandraSecurity

CONNECTORS_DIR = Path(__file__).resolve().parents[2] / "connectors"

SINK_TEMPLATE = "jdbc-sink.json.j2"
# The Debezium JDBC sink wrapped so its tasks wait out a PostgreSQL outage (transforms/, decision
# 0103); every Debezium setting is passed through unchanged.
SINK_CONNECTOR_CLASS = "io.casscdcpg.sink.RetryingJdbcSinkConnector"
LWW_SINK_TEMPLATE = "lww-sink.json.j2"
LWW_SINK_CONNECTOR_CLASS = "io.casscdcpg.lwwsink.LwwSinkConnector"
"""The project's own sink (transforms/lww-sink, decisions 0126/0127): ``spec.sink.writer: lww``."""
LWW_TABLES_KEY = "lww.tables"
LWW_TABLE_PREFIX = "lww.table."
#: The transform's partition-key specs (decision 0154): which tables' row records carry
#: ``_cdc_token``, and each one's partition-key columns and CQL types.
TOKEN_TABLES_KEY = "transforms.cassandraToRow.token.tables"  # noqa: S105  # nosec B105  # a key
TOKEN_TABLE_PREFIX = "transforms.cassandraToRow.token.table."  # noqa: S105  # nosec B105  # a key
AGENT_TEMPLATE = "agent.properties.j2"
DRIVER_TEMPLATE = "driver.conf.j2"

# Ownership markers. Kafka Connect validates only the keys a ConfigDef defines and stores the
# rest verbatim (docs/decisions/0012), so these ride along in the connector config.
OWNER_KEY = "cdcctl.owner"
OWNER_VALUE = "cdcctl"
PIPELINE_KEY = "cdcctl.pipeline"
HASH_KEY = "cdcctl.config-hash"
# Tables stopped by an incompatible schema change (decision 0050): JSON {table: reason}. Their
# topics are left out of `topics`; `describe` shows them as STOPPED with the reason.
STOPPED_KEY = "cdcctl.stopped-tables"
# The Vault version of the sink's password: a rotation changes it, so apply PUTs the config and
# Connect restarts the connector, whose tasks resolve ${vault:...} again (decision 0070).
SECRET_VERSION_KEY = "cdcctl.secret-version"  # noqa: S105  # nosec B105  # pragma: allowlist secret
# External agents' bundle digests {node id: digest} as of the last apply: what `plan` compares the
# rendered bundles with, shared by every operator through Connect (decision 0070).
AGENT_BUNDLES_KEY = "cdcctl.agent-bundles"
MARKER_PREFIX = "cdcctl."
# `topics` when every table of a pipeline is stopped: Connect needs one of topics/topics.regex,
# and a pattern that matches no topic keeps the connector (and its offsets) alive doing nothing.
NO_TOPIC_REGEX = "(?!)"

# Row contract (decision 0002): the SMT sends partition/range tombstones to `<topic>` + this.
TOMBSTONES_SUFFIX = TOMBSTONES_TOPIC_SUFFIX
# The JDBC sink's batch.size is capped by the consumer's max.poll.records (default 500).
_DEFAULT_MAX_POLL_RECORDS = 500
# ConfigTransformer splits ${provider:path:key} at ':' and ends at '}'.
_PLACEHOLDER_UNSAFE = re.compile(r"[:{}\s]")


@dataclass(frozen=True)
class RenderContext:
    """Facts about where the pipeline runs that are not in the manifest: the managed (local
    stack) agent's node. The sink config never depends on it, so it renders the same on every
    machine (the Connect workers resolve secrets themselves, decision 0070)."""

    state_dir: Path | None = None
    """The local stack's state directory; managed agent files go below it. None: no managed
    agent (a remote target; agents are external and rendered as bundles)."""
    cassandra_config: Path | None = None
    """The ``cassandra.yaml`` of the node the managed agent runs beside."""
    agent_http_port: int = 8001
    cassandra_node_id: str = "node1"
    agent_security: AgentCassandraSecurity | None = None
    """TLS and login of the managed agent's driver (the local stack's, decision 0110)."""
    agent_kafka_tls: AgentKafkaTls | None = None
    """TLS and client certificate of the managed agent's Kafka producer (the local stack's,
    decision 0114); None: the manifest's spec.source.agent.install.kafkaTls."""
    templates_dir: Path = field(default=CONNECTORS_DIR)
    postgres_ca_file: str | None = None
    """The CA the sink verifies PostgreSQL with when the manifest names none: the local stack's
    (its workers run on this machine). None for a remote target: a path of cdcctl's machine
    means nothing to its workers, which then use their JVM's trust store (decision 0108)."""
    secret_versions: Mapping[str, int] = field(default_factory=dict)
    """{pipeline: version} of Vault-held sink passwords, recorded in the sink config so a
    rotated password (a new version) makes apply restart the connector (decision 0070)."""


@dataclass(frozen=True)
class AgentPaths:
    directory: Path
    properties: Path
    driver_conf: Path
    relocation_dir: Path
    offset_dir: Path


@dataclass(frozen=True)
class RenderedPipeline:
    """Everything `apply` writes or PUTs for one pipeline."""

    sink_name: str
    sink_config: dict[str, str]
    managed_agent: ManagedAgent | None
    """The local stack's agent files; None when agents are external (bundles, core.agent_bundle)."""


@dataclass(frozen=True)
class ManagedAgent:
    properties: str
    driver_conf: str
    paths: AgentPaths


# --- names ---------------------------------------------------------------------------------


def sink_connector_name(pipeline: Pipeline) -> str:
    return f"{pipeline.name}-jdbc-sink"


def agent_connector_name(pipeline: Pipeline) -> str:
    return f"{pipeline.name}-cassandra-agent"


def password_placeholder(pipeline: Pipeline) -> str:
    """``connection.password`` as a config-provider placeholder the Connect workers resolve:
    ``${vault:<path>:<key>}``, ``${env:<VAR>}`` or ``${file:<worker path>:<key>}``."""
    ref = pipeline.spec.sink.postgres.password_secret
    if ref.vault is not None:
        path, key = ref.vault.path, ref.vault.key
        placeholder = f"${{vault:{path}:{key}}}"
    elif ref.env is not None:
        path, key = ref.env, ""
        placeholder = f"${{env:{ref.env}}}"
    else:
        assert ref.file is not None
        assert ref.key is not None
        path, key = ref.file, ref.key
        if not ref.file.startswith("/"):
            raise ValueError(
                f"pipeline {pipeline.name}: passwordSecret.file {ref.file!r} must be an absolute "
                "path on the Connect workers (they read it with Kafka's FileConfigProvider)"
            )
        placeholder = f"${{file:{path}:{key}}}"
    if _PLACEHOLDER_UNSAFE.search(path) or _PLACEHOLDER_UNSAFE.search(key):
        raise ValueError(
            f"pipeline {pipeline.name}: secret reference {ref.describe()!r} cannot hold ':', "
            "'{', '}' or spaces: Kafka Connect could not parse the ${...} placeholder"
        )
    return placeholder


def agent_paths(pipeline: Pipeline, ctx: RenderContext) -> AgentPaths:
    # Per node, not per pipeline: one agent reads a node's cdc_raw, and its offsets must survive
    # whichever pipeline was applied last (decision 0013).
    if ctx.state_dir is None:
        raise ValueError("managed agent files need the local stack's state directory")
    base = ctx.state_dir / "agent" / ctx.cassandra_node_id
    return AgentPaths(
        directory=base,
        properties=base / "agent.properties",
        driver_conf=base / "driver.conf",
        relocation_dir=base / "relocation",
        offset_dir=base / "offsets",
    )


def sink_schema(pipeline: Pipeline) -> str:
    """The PostgreSQL schema the sink writes into: core.ddl's raw schema of the keyspace."""
    return pipeline.keyspace + RAW_SCHEMA_SUFFIX


PGJDBC_SYSTEM_TRUST_FACTORY = "org.postgresql.ssl.DefaultJavaSSLFactory"
"""pgjdbc's socket factory that trusts the JVM's own CAs (pgjdbc's default wants a root.crt)."""


def jdbc_url(pipeline: Pipeline, ca_file: str | None = None) -> str:
    pg = pipeline.spec.sink.postgres
    host = f"[{pg.host}]" if ":" in pg.host and not pg.host.startswith("[") else pg.host
    # stringtype=unspecified: text parameters are typed by the server, so strings from the
    # transform land in uuid/inet/numeric/timestamptz columns without explicit casts.
    # ApplicationName: the sink's sessions are findable in pg_stat_activity by pipeline.
    # sslmode/sslrootcert: TLS always (decision 0060); the worker reads the CA file locally.
    # Every part is percent-encoded although the manifest already admits only plain host and
    # database names (decision 0090): pgjdbc URL-decodes the database and parameter values, so
    # `?`, `&`, `=`, `#` or `/` can never add a parameter (sslfactory=...) or change the path.
    quote = urllib.parse.quote
    url = (
        f"jdbc:postgresql://{quote(host, safe='[]:')}:{pg.port}/{quote(pg.database, safe='')}"
        "?stringtype=unspecified"
        f"&ApplicationName={quote(sink_application_name(pipeline), safe='')}"
        f"&sslmode={quote(pg.tls.effective_mode, safe='')}"
    )
    verify = pg.tls.effective_mode != "require"  # an explicit `require` checks nothing
    root = pg.tls.ca_file or ca_file
    if verify and root is not None:
        url += f"&sslrootcert={quote(root, safe='/')}"
    elif verify:
        # verify-* without a CA file: the worker JVM's trust store, host name still checked
        url += f"&sslfactory={PGJDBC_SYSTEM_TRUST_FACTORY}"
    return url


def lww_sink_tables_config(merges: Iterable[TableMerge]) -> dict[str, str]:
    """The LWW sink's per-table settings (LwwSinkConfig in transforms/lww-sink reads them):
    ``lww.tables`` lists the targets (a record's topic after routing: the table, or
    ``<table>__tombstones``); ``lww.table.<target>.<part>`` holds each generated statement, and
    ``.columns`` the record fields in COPY order, each percent-encoded (UTF-8, nothing safe), so
    a column name holding a comma or any other character survives the comma-separated list."""
    out: dict[str, str] = {}
    targets: list[str] = []
    for merge in merges:
        for m in (merge.tombstones, merge.rows):
            targets.append(m.target)
            out.update(_lww_target_config(m))
    out[LWW_TABLES_KEY] = ",".join(targets)
    return dict(sorted(out.items()))


def token_config(tables: Iterable[TableModel]) -> dict[str, str]:
    """The transform's partition-key specs (decision 0154; PartitionToken in transforms/ reads
    them): ``token.tables`` lists ``<keyspace>.<table>`` (Cassandra names are ``\\w+``, so dots and
    commas cannot occur in them); ``token.table.<keyspace>.<table>`` the partition-key columns in
    order as ``column:type``, each percent-encoded (UTF-8, nothing safe) as ``lww.table.*.columns``,
    so any column name and a type such as ``frozen<map<int, text>>`` survive the list. A table
    listed here gets ``_cdc_token`` in its row records; none listed, no field (the record as
    before the token existed). Empty when there is no table."""
    quote = urllib.parse.quote
    out: dict[str, str] = {}
    names: list[str] = []
    for t in tables:
        name = f"{t.keyspace}.{t.table}"
        names.append(name)
        out[TOKEN_TABLE_PREFIX + name] = ",".join(
            f"{quote(c.name, safe='')}:{quote(str(c.type), safe='')}" for c in t.partition_key
        )
    if names:
        out[TOKEN_TABLES_KEY] = ",".join(names)
    return dict(sorted(out.items()))


def _lww_target_config(m: MergeSql) -> dict[str, str]:
    prefix = f"{LWW_TABLE_PREFIX}{m.target}."
    return {
        prefix + "columns": ",".join(urllib.parse.quote(c, safe="") for c in m.columns),
        prefix + "stage": m.stage_sql,
        prefix + "copy": m.copy_sql,
        prefix + "lock": m.lock_sql,
        prefix + "prepare": m.prepare_sql,
        prefix + "merge": m.merge_sql,
        prefix + "unlock": m.unlock_sql,
    }


def sink_application_name(pipeline: Pipeline) -> str:
    """``application_name`` of the sink's PostgreSQL sessions (pipeline names are URL-safe)."""
    return f"cdc-sink-{pipeline.name}"


# --- normalisation -------------------------------------------------------------------------


def normalise_config(config: Mapping[str, object]) -> dict[str, str]:
    """Strimzi-style: every value a string (booleans lowercase), nulls dropped, keys sorted."""
    out: dict[str, str] = {}
    for key in sorted(config):
        value = config[key]
        if value is None:
            continue  # Connect rejects null-valued keys
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def config_hash(config: Mapping[str, str]) -> str:
    """Stable hash of a connector config, ignoring cdcctl's own marker keys."""
    payload = {k: v for k, v in config.items() if not k.startswith(MARKER_PREFIX)}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()
    return digest[:16]


def is_owned(config: Mapping[str, str], pipeline_name: str | None = None) -> bool:
    """True when cdcctl created this connector (and for `pipeline_name`, when given)."""
    if config.get(OWNER_KEY) != OWNER_VALUE:
        return False
    return pipeline_name is None or config.get(PIPELINE_KEY) == pipeline_name


# --- templates -----------------------------------------------------------------------------


def escape_property(value: object, *, key: bool = False) -> str:
    """Escape for java.util.Properties (core.properties; non-ASCII becomes \\uXXXX)."""
    return escape_value(value, key=key)


def parse_properties(text: str) -> dict[str, str]:
    """Every entry of a .properties text, unescaped as Java does (core.properties)."""
    return load_properties(text)


def without_properties(text: str, keys: Iterable[str]) -> str:
    """A .properties text without the entries whose (unescaped) key is in ``keys``."""
    doomed = set(keys)
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not (set(parse_properties(line)) & doomed)
    )


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        autoescape=jinja2.select_autoescape(default=False),  # JSON/properties/HOCON, not HTML
        keep_trailing_newline=True,
    )
    env.filters["prop"] = escape_property
    return env


def _render(ctx: RenderContext, template: str, **values: object) -> str:
    return _environment(ctx.templates_dir).get_template(template).render(**values)


# --- renderers -----------------------------------------------------------------------------


def render_sink_config(
    pipeline: Pipeline,
    ctx: RenderContext,
    stopped: Mapping[str, str] | None = None,
    tables: Sequence[TableModel] | None = None,
) -> dict[str, str]:
    """The sink connector config, normalised, with ownership markers and config hash.

    ``stopped``: {table: reason} of tables stopped by an incompatible schema change; their topics
    are not consumed (the committed offsets stay, so consumption resumes there once rebuilt).
    ``tables``: the captured tables' models, which ``writer: lww`` needs for its generated SQL
    (``lww.table.<target>.*``); without them (offline rendering) ``lww.tables`` is empty."""
    stopped = stopped or {}
    spec = pipeline.spec
    lww = spec.sink.writer == "lww"
    lww_tables: dict[str, str] = {}
    if lww:
        lww_tables = lww_sink_tables_config(
            generate_merge(t) for t in tables or () if t.table not in stopped
        )
    # the token spec needs the columns: rendered only with the tables' models (apply), after
    # their DDL gave the raw tables the token column (the stock sink writes every field)
    tokens = token_config(t for t in tables or () if t.table not in stopped)
    topics = rf"{re.escape(pipeline.topic_prefix)}\.{re.escape(pipeline.keyspace)}"
    table_alt = "|".join(re.escape(t) for t in pipeline.captured_tables)
    batch_size = spec.sink.batch_size
    text = _render(
        ctx,
        LWW_SINK_TEMPLATE if lww else SINK_TEMPLATE,
        connector_name=sink_connector_name(pipeline),
        connector_class=LWW_SINK_CONNECTOR_CLASS if lww else SINK_CONNECTOR_CLASS,
        lww_tables=lww_tables,
        token_config=tokens,
        pipeline_name=pipeline.name,
        tasks_max=str(spec.sink.tasks_max + spec.sink.standby_tasks),
        # An explicit list, not a regex: a regex subscription only notices topics created later
        # (the agent creates them on its first event) after metadata.max.age.ms, five minutes.
        topics=",".join(
            pipeline.table_topic(t) for t in pipeline.captured_tables if t not in stopped
        ),
        jdbc_url=jdbc_url(pipeline, ctx.postgres_ca_file),
        username=spec.sink.postgres.user,
        password_placeholder=password_placeholder(pipeline),
        batch_size=str(batch_size),
        max_poll_records=str(batch_size) if batch_size > _DEFAULT_MAX_POLL_RECORDS else "",
        # RegexRouters after our SMT leave a bare table name; the sink's ${topic} placeholder
        # (dots -> underscores, none left) then names the raw table `<ks>_cdc.<table>` that
        # core.ddl creates (decision 0010).
        collection_name_format=f"{sink_schema(pipeline)}.${{topic}}",
        tombstones_suffix=TOMBSTONES_SUFFIX,
        # which agent writes the events: the 4.1 agent's dates need correcting (decision 0113)
        cassandra_version=spec.source.cassandra.version,
        tombstone_topic_regex=rf"{topics}\.({table_alt}){re.escape(TOMBSTONES_SUFFIX)}",
        row_topic_regex=rf"{topics}\.({table_alt})",
        retry_timeout_ms=str(spec.sink.retry.timeout_ms),
        retry_backoff_initial_ms=str(spec.sink.retry.backoff_initial_ms),
        retry_backoff_max_ms=str(spec.sink.retry.backoff_max_ms),
        errors_tolerance=spec.options.errors_tolerance,
        errors_retry_timeout_ms=str(spec.options.errors_retry_timeout_ms),
        errors_log_enable="true" if spec.options.errors_log_enable else "false",
        dlq_topic=pipeline.dlq_topic,
        dlq_replication_factor=str(spec.options.dlq_replication_factor),
    )
    config = normalise_config(json.loads(text))
    version = ctx.secret_versions.get(pipeline.name)
    if version:
        config[SECRET_VERSION_KEY] = str(version)
    if stopped:
        config[STOPPED_KEY] = json.dumps(dict(sorted(stopped.items())), separators=(",", ":"))
        if not config["topics"]:
            del config["topics"]
            config["topics.regex"] = NO_TOPIC_REGEX
    config[HASH_KEY] = config_hash(config)
    return dict(sorted(config.items()))


def stopped_tables(config: Mapping[str, str]) -> dict[str, str]:
    """{table: reason} a sink config records as stopped (empty when none or unreadable)."""
    try:
        value = json.loads(config.get(STOPPED_KEY) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def recorded_bundles(config: Mapping[str, str]) -> dict[str, str]:
    """{node id: digest} a sink config records for its external agents (empty when none)."""
    try:
        value = json.loads(config.get(AGENT_BUNDLES_KEY) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def render_agent_properties(pipeline: Pipeline, ctx: RenderContext) -> str:
    """The agent's ``.properties`` file."""
    paths = agent_paths(pipeline, ctx)
    agent = pipeline.spec.source.agent
    return _render(
        ctx,
        AGENT_TEMPLATE,
        pipeline_name=pipeline.name,
        connector_name=agent_connector_name(pipeline),
        node_id=ctx.cassandra_node_id,
        topic_prefix=pipeline.topic_prefix,
        cassandra_config=ctx.cassandra_config,
        driver_config_file=paths.driver_conf,
        relocation_dir=paths.relocation_dir,
        offset_dir=paths.offset_dir,
        poll_interval_ms=agent.poll_interval_ms,
        snapshot_mode=agent.snapshot_mode.upper(),
        snapshot_consistency=agent.snapshot_consistency,
        decimal_handling_mode=agent.decimal_handling_mode,
        varint_handling_mode=agent.varint_handling_mode,
        http_port=ctx.agent_http_port,
        bootstrap_servers=",".join(pipeline.spec.kafka.bootstrap_servers),
        kafka_tls=ctx.agent_kafka_tls or agent.install.kafka_tls,
    )


def agent_properties(pipeline: Pipeline, ctx: RenderContext) -> dict[str, str]:
    """The agent config as a dict (for plan diffs against the file on disk)."""
    return parse_properties(render_agent_properties(pipeline, ctx))


def render_driver_conf(pipeline: Pipeline, ctx: RenderContext) -> str:
    """The java-driver ``application.conf`` (HOCON) the agent connects to Cassandra with."""
    cassandra = pipeline.spec.source.cassandra
    return _render(
        ctx,
        DRIVER_TEMPLATE,
        pipeline_name=pipeline.name,
        contact_points=list(cassandra.contact_points),
        local_datacenter=cassandra.local_datacenter,
        session_name=agent_connector_name(pipeline),
        security=ctx.agent_security,
    )


def render_pipeline(
    pipeline: Pipeline,
    ctx: RenderContext,
    stopped: Mapping[str, str] | None = None,
    tables: Sequence[TableModel] | None = None,
) -> RenderedPipeline:
    managed = None
    if ctx.state_dir is not None and pipeline.spec.source.agent.mode == "managed":
        managed = ManagedAgent(
            properties=render_agent_properties(pipeline, ctx),
            driver_conf=render_driver_conf(pipeline, ctx),
            paths=agent_paths(pipeline, ctx),
        )
    return RenderedPipeline(
        sink_name=sink_connector_name(pipeline),
        sink_config=render_sink_config(pipeline, ctx, stopped, tables),
        managed_agent=managed,
    )

"""Pipeline manifest v1: the declarative input of `cdcctl apply`.

One document describes one pipeline: which Cassandra tables to capture, through which Kafka and
Kafka Connect, into which PostgreSQL database. Keys are camelCase in YAML (Kubernetes style) and
snake_case in Python. Every model forbids unknown keys so a typo fails validation instead of being
silently ignored. Secrets are references only (``{env: VAR}``, ``{file: path, key: k}``,
``{vault: {path, key}}``): a manifest never holds a password.

Loading from files (with ``file:line:column`` locations) lives in `manifest_loader`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_VERSION = "cdc.casscdcpg.io/v1"
KIND = "Pipeline"

# RFC 1123 label: the name becomes part of connector names, topic names and directories.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Unquoted CQL identifiers are lowercased by Cassandra and limited to 48 characters; Debezium
# names topics after them, so anything else would not match the topics the agent produces.
_CQL_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# host:port, host may be a name, IPv4 or bracketed IPv6.
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})$")
# Kafka topic names: legal characters, at most 249.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


class _Model(BaseModel):
    """Shared config: camelCase aliases, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        str_strip_whitespace=True,
    )


def _check_host_port(value: str) -> str:
    match = _HOST_PORT.match(value)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9042)")
    return value


def _check_cql_ident(value: str) -> str:
    if not _CQL_IDENT.match(value):
        raise ValueError(
            f"{value!r} is not a lowercase CQL identifier (letters, digits, _; max 48)"
        )
    return value


# Item-level validation keeps the list index in error locations (`tables[1]`).
HostPort = Annotated[str, AfterValidator(_check_host_port)]
CqlIdent = Annotated[str, AfterValidator(_check_cql_ident)]


# --- secrets -------------------------------------------------------------------------------


class VaultRef(_Model):
    path: str = Field(min_length=1, description="Secret path in Vault/OpenBao (KV v2).")
    key: str = Field(min_length=1, description="Field of the secret to read.")


class SecretRef(_Model):
    """Where a secret lives. Exactly one of `env`, `file` (with `key`) or `vault`."""

    env: str | None = Field(default=None, description="Environment variable holding the secret.")
    file: str | None = Field(
        default=None, description="Path of a properties/dotenv file holding the secret."
    )
    key: str | None = Field(default=None, description="Key inside `file`.")
    vault: VaultRef | None = Field(default=None, description="Vault/OpenBao secret.")

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_VAR.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        chosen = [n for n in ("env", "file", "vault") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "a secret reference needs exactly one of env, file or vault"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if self.file is not None and not self.key:
            raise ValueError("a file secret reference needs `key`")
        if self.file is None and self.key is not None:
            raise ValueError("`key` only goes with `file` (vault has its own key)")
        return self

    @property
    def kind(self) -> Literal["env", "file", "vault"]:
        if self.env is not None:
            return "env"
        return "file" if self.file is not None else "vault"

    def describe(self) -> str:
        """Where the secret comes from, for messages; never the value."""
        if self.env is not None:
            return f"env:{self.env}"
        if self.file is not None:
            return f"file:{self.file}:{self.key}"
        assert self.vault is not None
        return f"vault:{self.vault.path}#{self.vault.key}"


# --- spec sections -------------------------------------------------------------------------


class CassandraSource(_Model):
    contact_points: list[HostPort] = Field(
        default_factory=lambda: ["127.0.0.1:9042"],
        min_length=1,
        description="Cassandra nodes as host:port.",
    )
    local_datacenter: str = Field(default="datacenter1", min_length=1)
    keyspace: CqlIdent = Field(description="Keyspace whose tables are captured.")
    tables: list[CqlIdent] = Field(min_length=1, description="Tables (all `WITH cdc = true`).")

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: list[str]) -> list[str]:
        dupes = sorted({t for t in value if value.count(t) > 1})
        if dupes:
            raise ValueError(f"tables listed more than once: {', '.join(dupes)}")
        return value


class AgentOptions(_Model):
    """Options of the Debezium Cassandra agent that reads this pipeline's tables."""

    snapshot_mode: Literal["initial", "never", "always"] = Field(
        default="initial", description="Snapshot existing rows: initial, never or always."
    )
    snapshot_consistency: Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"] = "QUORUM"
    # `double` (Debezium's default) loses digits; strings cast exactly into numeric.
    decimal_handling_mode: Literal["string", "precise", "double"] = "string"
    varint_handling_mode: Literal["string", "precise", "long"] = "string"
    poll_interval_ms: int = Field(
        default=100,
        ge=100,
        le=60_000,
        description="cdc_raw, commit-log-complete and event-queue poll interval in ms: it adds "
        "twice to each write's latency (Debezium defaults: 10000 and 1000).",
    )


class Source(_Model):
    cassandra: CassandraSource
    agent: AgentOptions = Field(default_factory=AgentOptions)


class Kafka(_Model):
    bootstrap_servers: list[HostPort] = Field(
        default_factory=lambda: ["127.0.0.1:9092"], min_length=1
    )
    topic_prefix: str | None = Field(
        default=None, description="Debezium topic.prefix; defaults to the pipeline name."
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not _TOPIC.match(value):
            raise ValueError(f"{value!r} is not a valid Kafka topic prefix")
        return value


class ConnectCluster(_Model):
    url: str = Field(default="http://127.0.0.1:8083", description="Kafka Connect REST URL.")
    context: str | None = Field(default=None, description="Named cdcctl context to use instead.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


PostgresTlsMode = Literal["require", "verify-ca", "verify-full"]


class PostgresTls(_Model):
    """TLS of every connection to the sink database: the sink's (pgjdbc) and cdcctl's (psycopg).

    There is no mode without TLS. Without `caFile` the default is `require` (encrypted, server not
    authenticated); with it `verify-full` (CA and host name checked). Decision 0060."""

    mode: PostgresTlsMode | None = Field(
        default=None,
        description="require | verify-ca | verify-full; default verify-full with caFile, "
        "else require.",
    )
    ca_file: str | None = Field(
        default=None,
        min_length=1,
        description="PEM file of the CA that signed the server's certificate, relative to the "
        "manifest; read by cdcctl and by the Kafka Connect worker (same host).",
    )

    @model_validator(mode="after")
    def _mode_and_ca(self) -> PostgresTls:
        if self.mode in ("verify-ca", "verify-full") and self.ca_file is None:
            raise ValueError(f"mode {self.mode} needs caFile (the CA to verify the server with)")
        if self.mode == "require" and self.ca_file is not None:
            raise ValueError(
                "caFile is only used to verify the server: use mode verify-full (or verify-ca), "
                "or drop caFile"
            )
        return self

    @field_validator("ca_file")
    @classmethod
    def _absolute_ca_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Relative to the manifest's folder (the loader passes it), like file secret references:
        # the JDBC URL needs an absolute path, the Connect worker runs in another directory.
        if value is None or Path(value).is_absolute():
            return value
        ctx = info.context if isinstance(info.context, dict) else {}
        base = Path(ctx.get("base_dir") or Path.cwd())
        return os.path.abspath(base / value)

    @property
    def effective_mode(self) -> PostgresTlsMode:
        if self.mode is not None:
            return self.mode
        return "verify-full" if self.ca_file is not None else "require"


class Postgres(_Model):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(default="cdc", min_length=1)
    user: str = Field(min_length=1)
    password_secret: SecretRef = Field(
        description="Reference to the password: {env: VAR} | {file: path, key: k} | "
        "{vault: {path: p, key: k}}. Inline passwords are rejected."
    )
    tls: PostgresTls = Field(
        default_factory=PostgresTls,
        description="TLS of the connections to this database (always on; default mode require).",
    )


class Sink(_Model):
    postgres: Postgres
    batch_size: int = Field(default=500, ge=1, le=100_000)
    tasks_max: int = Field(default=1, ge=1, le=64)


class Options(_Model):
    dlq_topic: str | None = Field(
        default=None, description="Dead-letter topic; defaults to `<pipeline name>.dlq`."
    )
    dlq_replication_factor: int = Field(default=1, ge=1, le=32)
    errors_tolerance: Literal["all", "none"] = "all"
    errors_retry_timeout_ms: int = Field(
        default=0, ge=-1, description="errors.retry.timeout (-1 retries forever)."
    )
    errors_log_enable: bool = True

    @field_validator("dlq_topic")
    @classmethod
    def _dlq(cls, value: str | None) -> str | None:
        if value is not None and not _TOPIC.match(value):
            raise ValueError(f"{value!r} is not a valid Kafka topic name")
        return value


class Spec(_Model):
    source: Source
    kafka: Kafka = Field(default_factory=Kafka)
    connect: ConnectCluster = Field(default_factory=ConnectCluster)
    sink: Sink
    options: Options = Field(default_factory=Options)


class Metadata(_Model):
    name: str = Field(description="DNS label: lowercase letters, digits and '-', max 63.")
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 63 or not _DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a DNS label (lowercase letters, digits and '-', "
                "starting and ending alphanumeric, max 63)"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _LABEL_KEY.match(key):
                raise ValueError(f"label key {key!r} is not a valid label key")
        return value


class Pipeline(_Model):
    """One Cassandra keyspace's tables -> PostgreSQL (schemas named after the keyspace, see ddl)."""

    api_version: Literal["cdc.casscdcpg.io/v1"] = Field(alias="apiVersion")
    kind: Literal["Pipeline"]
    metadata: Metadata
    spec: Spec

    @model_validator(mode="after")
    def _dlq_not_consumed(self) -> Pipeline:
        # A DLQ the sink also reads would loop failed records forever.
        if re.fullmatch(self.topics_regex, self.dlq_topic):
            raise ValueError(f"options.dlqTopic {self.dlq_topic!r} matches the sink's topics")
        return self

    # Resolved defaults, so nobody re-implements them.
    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def topic_prefix(self) -> str:
        return self.spec.kafka.topic_prefix or self.metadata.name

    @property
    def dlq_topic(self) -> str:
        return self.spec.options.dlq_topic or f"{self.metadata.name}.dlq"

    @property
    def keyspace(self) -> str:
        return self.spec.source.cassandra.keyspace

    @property
    def tables(self) -> list[str]:
        return list(self.spec.source.cassandra.tables)

    def table_topic(self, table: str) -> str:
        """The topic Debezium Cassandra writes `table`'s changes to."""
        return f"{self.topic_prefix}.{self.keyspace}.{table}"

    @property
    def topics_regex(self) -> str:
        """Every table topic of this pipeline and its `.tombstones` companion (row contract)."""
        prefix = rf"{re.escape(self.topic_prefix)}\.{re.escape(self.keyspace)}"
        tables = "|".join(re.escape(t) for t in self.tables)
        return rf"{prefix}\.({tables})(\.tombstones)?"


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema of manifest v1 (YAML key names), for `cdcctl manifest schema` and editors."""
    schema = Pipeline.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "urn:casscdcpg:manifest:pipeline:v1"
    schema["title"] = "cass-cdc-pg Pipeline manifest (cdc.casscdcpg.io/v1)"
    return schema

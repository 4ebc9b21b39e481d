"""Pipeline manifest v1: the declarative input of `cdcctl apply`.

One document describes one pipeline: which Cassandra tables to capture, through which Kafka and
Kafka Connect, into which PostgreSQL database. Keys are camelCase in YAML (Kubernetes style) and
snake_case in Python. Every model forbids unknown keys so a typo fails validation instead of being
silently ignored. Secrets are references only (``{env: VAR}``, ``{file: path, key: k}``,
``{vault: {path, key}}``): a manifest never holds a password.

Loading from files (with ``file:line:column`` locations) lives in `manifest_loader`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from controlplane.core.freshness import HEARTBEAT_TABLE

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
# Kafka refuses these two names (Topic.validate) although their characters are legal.
_RESERVED_TOPICS = (".", "..")
MAX_TOPIC_LENGTH = 249
TOMBSTONES_TOPIC_SUFFIX = ".tombstones"
"""The agent's topic of a table's partition/range deletes: ``<table topic>.tombstones``."""
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


class _Model(BaseModel):
    """Shared config: camelCase aliases, unknown keys rejected, immutable; integers and booleans
    strict (YAML 1.1 reads ``yes``/``on``/``true`` as booleans, which pydantic would otherwise
    take as 1; the JSON Schema says integer)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        str_strip_whitespace=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        annotation = field.annotation if field is not None else None
        if annotation in (int, int | None) and (
            isinstance(value, bool) or not isinstance(value, int | None)
        ):
            raise ValueError(_not_an_integer(value))
        if annotation in (bool, bool | None) and not isinstance(value, bool | None):
            raise ValueError(f"{value!r} is not a boolean (true or false)")
        return value


def _not_an_integer(value: Any) -> str:
    if isinstance(value, bool):
        return (
            f"{str(value).lower()} is a boolean, not an integer (YAML reads yes/no/on/off as "
            "booleans too)"
        )
    if isinstance(value, str):
        return f"{value!r} is a string, not an integer (write the number without quotes)"
    return f"{value!r} is not an integer"


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
        default=None,
        description="Path of a properties file holding the secret (with `key`), or of a file "
        "that is the secret (without `key`, e.g. a token file).",
    )
    key: str | None = Field(default=None, min_length=1, description="Key inside `file`.")
    vault: VaultRef | None = Field(default=None, description="Vault/OpenBao secret.")

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_VAR.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("file")
    @classmethod
    def _file_name(cls, value: str | None) -> str | None:
        # Whitespace is stripped first: "" and "  " both name no file.
        if value is not None and not value:
            raise ValueError("`file` of a secret reference is empty: name the file")
        if value is not None and "\x00" in value:
            raise ValueError("`file` of a secret reference holds a NUL character")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        chosen = [n for n in ("env", "file", "vault") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "a secret reference needs exactly one of env, file or vault"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if self.file is not None and not self.file.strip():
            raise ValueError("`file` of a secret reference is empty")
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
            return f"file:{self.file}" + (f":{self.key}" if self.key else "")
        assert self.vault is not None
        return f"vault:{self.vault.path}#{self.vault.key}"


# --- spec sections -------------------------------------------------------------------------


SUPPORTED_CASSANDRA_VERSIONS = ("5.0", "4.1")
"""Source versions cdcctl supports (major.minor); the first is the default."""


def _check_cassandra_version(value: object) -> object:
    if isinstance(value, float | int) and not isinstance(value, bool):
        # YAML reads an unquoted 4.1 as a float (and 5.0 as 5.0); say so instead of guessing.
        raise ValueError(
            f'{value!r} is a number: write the version as a string, e.g. version: "4.1"'
        )
    if value not in SUPPORTED_CASSANDRA_VERSIONS:
        raise ValueError(
            f"{value!r} is not a supported Cassandra version "
            f"({', '.join(SUPPORTED_CASSANDRA_VERSIONS)})"
        )
    return value


CassandraVersion = Annotated[Literal["5.0", "4.1"], BeforeValidator(_check_cassandra_version)]


class CassandraSource(_Model):
    contact_points: list[HostPort] = Field(
        default_factory=lambda: ["127.0.0.1:9042"],
        min_length=1,
        description="Cassandra nodes as host:port.",
    )
    local_datacenter: str = Field(default="datacenter1", min_length=1)
    version: CassandraVersion = Field(
        default="5.0",
        description='The source cluster\'s Cassandra version, 5.0 or 4.1 (quoted: "4.1"). It '
        "says which Debezium agent writes the events: the 4.1 agent writes dates as raw day "
        "numbers, which the sink's transform corrects only when told (decision 0113). "
        "`cdcctl validate --online` checks it against the cluster's release_version. Default 5.0.",
    )
    keyspace: CqlIdent = Field(description="Keyspace whose tables are captured.")
    tables: list[CqlIdent] = Field(min_length=1, description="Tables (all `WITH cdc = true`).")

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: list[str]) -> list[str]:
        dupes = sorted({t for t in value if value.count(t) > 1})
        if dupes:
            raise ValueError(f"tables listed more than once: {', '.join(dupes)}")
        return value


# --- the Debezium agents (one per Cassandra node, decision 0013) ------------------------------

DEFAULT_AGENT_HTTP_PORT = 8000
"""The agent's own default `http.port` (debezium-connector-cassandra CassandraConnectorConfig)."""

# RFC 1123 host name labels; a name made only of digits and dots must be an IPv4 address.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Node ids become directory names (`<out>/<node id>/`) and `cassandra.node.id`.
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Node-side paths land unquoted in a systemd unit, an EnvironmentFile and logback.xml: no
# whitespace, quotes, backslashes, `$` (expansion) or `%` (systemd specifiers).
_NODE_PATH_UNSAFE = re.compile(r"[\s\"'\\$%;`<>&|*?]")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,30}\$?$")
_JVM_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]$")
_LOGBACK_SIZE = re.compile(r"^[1-9][0-9]*(KB|MB|GB)$")


def _check_node_address(value: str) -> str:
    """A node's host as the cluster knows it: IPv4, IPv6 (brackets optional) or a DNS name.
    Normalised (IPv6 compressed, names lowercase) so one host is written one way."""
    if re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]+):[0-9]+", value):
        raise ValueError(
            f"{value!r}: give the host only; the CQL port comes from "
            "spec.source.cassandra.contactPoints"
        )
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if ":" in host:
        if "%" in host:
            raise ValueError(f"{value!r}: IPv6 zone ids (%...) are not supported")
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv6 address") from None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not an IPv4/IPv6 address or a DNS host name")
    return host.rstrip(".").lower()


def derive_node_id(address: str) -> str:
    """The default `nodeId` of a node: ``node-`` + its address with every other character than
    letters and digits as ``-`` (``10.0.0.1`` -> ``node-10-0-0-1``, ``fd00::1`` ->
    ``node-fd00--1``). Stable: the same address always gives the same id."""
    return "node-" + re.sub(r"[^a-z0-9]", "-", _check_node_address(address).lower())[:58]


def _check_node_id(value: str) -> str:
    if not _NODE_ID.match(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a node id (letters, digits, '.', '_', '-'; starting with a letter "
            "or digit; max 63): it names the bundle's directory and cassandra.node.id"
        )
    return value


def _check_node_path(value: str) -> str:
    path = value.rstrip("/") or "/"
    if not path.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path (it is a path on the Cassandra node)")
    if _NODE_PATH_UNSAFE.search(path) or any(ord(c) < 0x20 for c in path):
        raise ValueError(
            f"{value!r} holds whitespace or one of \" ' \\ $ % ; ` < > & | * ?: it is written "
            "unquoted into the systemd unit, agent.env and logback.xml"
        )
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"{value!r} has '.' or '..' components: write the path it means")
    return path


# Variables an agent's environment already uses for something else (agent.env sets JAVA_OPTS).
_RESERVED_AGENT_ENV = frozenset({"JAVA_OPTS"})


def _check_agent_env(value: str) -> str:
    if not _ENV_VAR.match(value):
        raise ValueError(
            f"{value!r} is not an environment variable name (letters, digits, '_'; not "
            "starting with a digit): driver.conf reads it as ${NAME}"
        )
    if value in _RESERVED_AGENT_ENV:
        raise ValueError(f"{value!r} is the agent's JVM options: choose another name")
    return value


def _check_role_name(value: str) -> str:
    if not value:
        raise ValueError("the Cassandra role is empty: name the agents' role")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("the Cassandra role holds a control character")
    return value


NodeAddress = Annotated[str, AfterValidator(_check_node_address)]
NodePath = Annotated[str, AfterValidator(_check_node_path)]
AgentEnvName = Annotated[str, AfterValidator(_check_agent_env)]


class AgentNode(_Model):
    """One Cassandra node and the agent beside it."""

    address: NodeAddress = Field(
        description="The node's host as the cluster knows it (its rpc/native address, as in "
        "system.local and system.peers_v2): IPv4, IPv6 or a DNS name; no port (the CQL port "
        "is the one of spec.source.cassandra.contactPoints)."
    )
    node_id: str | None = Field(
        default=None,
        description="The agent's cassandra.node.id and the bundle's directory name; unique. "
        "Default: derived from the address (10.0.0.1 -> node-10-0-0-1).",
    )
    http_port: int = Field(
        default=DEFAULT_AGENT_HTTP_PORT,
        ge=1,
        le=65535,
        description="The agent's http.port (/ping, /health, /buildinfo). Default 8000.",
    )
    datacenter: str | None = Field(
        default=None,
        min_length=1,
        description="The node's datacenter: its agent's driver routes there. Default: as the "
        "cluster reports it, else spec.source.cassandra.localDatacenter.",
    )

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        return None if value is None else _check_node_id(value)

    @property
    def id(self) -> str:
        """The node id: `nodeId`, else derived from the address."""
        return self.node_id or derive_node_id(self.address)


class AgentKafkaTls(_Model):
    """The agent's producer towards Kafka over TLS with a client certificate (mTLS, decision
    0114): paths on the Cassandra node. No secret goes into the bundle: the key file is read by
    the agent's user only, like Kafka's own PEM key stores."""

    ca_file: NodePath = Field(
        description="PEM CA bundle the agent verifies the brokers with (ssl.truststore, PEM)."
    )
    keystore_file: NodePath = Field(
        description="PEM file holding the agent's unencrypted private key (PKCS#8) and its "
        "certificate chain (ssl.keystore, PEM); readable by the agent's user only."
    )


class AgentCassandraTls(_Model):
    """The agent's java-driver towards Cassandra over TLS, logging in with a role (decision
    0110): a path on the Cassandra node and the NAMES of environment variables. No secret goes
    into the bundle: driver.conf says ``${NAME}``, which the driver resolves from the agent's
    environment (systemd's EnvironmentFile <configDir>/agent-secrets.env, kept on the node)."""

    truststore_file: NodePath = Field(
        description="Trust store holding the CA that signed the Cassandra nodes' certificates "
        "(advanced.ssl-engine-factory.truststore-path): JKS or PKCS12 — the driver's "
        "DefaultSslEngineFactory reads no PEM. Host names are verified against it."
    )
    truststore_password_env: AgentEnvName | None = Field(
        default=None,
        description="Environment variable holding the trust store's password. Needed for a "
        "PKCS12 store whose certificates are encrypted (keytool's default); a JKS store loads "
        "without one. Default unset: no password.",
    )
    username: Annotated[str, AfterValidator(_check_role_name)] = Field(
        description="The Cassandra role the agent logs in as (PlainTextAuthProvider); it needs "
        "SELECT on the captured keyspaces (GRANT SELECT ON ALL KEYSPACES)."
    )
    password_env: AgentEnvName = Field(
        default="CDC_CASSANDRA_PASSWORD",  # nosec B105  # a variable's name
        description="Environment variable holding the role's password. Default "
        "CDC_CASSANDRA_PASSWORD.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> AgentCassandraTls:
        if self.password_env == self.truststore_password_env:
            raise ValueError(
                f"passwordEnv and truststorePasswordEnv are both {self.password_env!r}: "
                "name two variables"
            )
        return self


class AgentInstall(_Model):
    """Where an external agent lives on each Cassandra node (paths on the node, absolute)."""

    dir: NodePath = Field(
        default="/opt/cass-cdc-pg/agent",
        description="Agent installation, its jars in <dir>/lib. Default /opt/cass-cdc-pg/agent.",
    )
    config_dir: NodePath = Field(
        default="/etc/cass-cdc-pg/agent",
        description="Where the bundle's files go (agent.properties, driver.conf, agent.env, "
        "logback.xml). Default /etc/cass-cdc-pg/agent.",
    )
    state_dir: NodePath = Field(
        default="/var/lib/cass-cdc-pg/agent",
        description="Offsets (<stateDir>/offsets) and relocated commit logs "
        "(<stateDir>/relocation). Default /var/lib/cass-cdc-pg/agent.",
    )
    cassandra_config: NodePath = Field(
        default="/etc/cassandra/cassandra.yaml",
        description="The node's cassandra.yaml. Default /etc/cassandra/cassandra.yaml.",
    )
    cassandra_storage_dir: NodePath | None = Field(
        default=None,
        description="-Dcassandra.storagedir of the agent: needed only when cassandra.yaml leaves "
        "commitlog_directory/cdc_raw_directory unset (tarball installs). Default unset.",
    )
    user: str = Field(
        default="cassandra",
        description="Unix user the agent runs as (it deletes processed cdc_raw segments, so "
        "Cassandra's). Default cassandra.",
    )
    java: NodePath = Field(
        default="/usr/bin/java", description="Java 17 executable. Default /usr/bin/java."
    )
    heap: str = Field(default="512M", description="-Xms/-Xmx of the agent JVM. Default 512M.")
    log_dir: NodePath = Field(
        default="/var/log/cass-cdc-pg",
        description="Directory of agent.log and its rotated files. Default /var/log/cass-cdc-pg.",
    )
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = Field(
        default="INFO", description="Root log level. Default INFO."
    )
    log_max_file_size: str = Field(
        default="100MB", description="Size at which agent.log rotates (KB/MB/GB). Default 100MB."
    )
    log_max_files: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Rotated log files kept besides agent.log (logback allows at most 20). "
        "Default 5.",
    )
    kafka_tls: AgentKafkaTls | None = Field(
        default=None,
        description="TLS and the client certificate the agent's Kafka producer uses (paths on "
        "the node). Default unset: plain text, for brokers without TLS.",
    )
    cassandra_tls: AgentCassandraTls | None = Field(
        default=None,
        description="TLS and the login the agent's driver uses towards Cassandra (a trust store "
        "path on the node, the role, the names of the password variables). Default unset: "
        "plain text without a login, for nodes without client encryption and authentication.",
    )

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _UNIX_USER.match(value):
            raise ValueError(f"{value!r} is not a Unix user name")
        return value

    @field_validator("heap")
    @classmethod
    def _heap(cls, value: str) -> str:
        if not _JVM_SIZE.match(value):
            raise ValueError(f"{value!r} is not a JVM heap size (e.g. 512M, 2G)")
        return value

    @field_validator("log_max_file_size")
    @classmethod
    def _log_size(cls, value: str) -> str:
        if not _LOGBACK_SIZE.match(value):
            raise ValueError(f"{value!r} is not a log file size (e.g. 100MB, 1GB)")
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
    mode: Literal["managed", "external"] = Field(
        default="managed",
        description="managed: cdcctl's local stack runs the agent; external: the operator runs "
        "one agent per Cassandra node from the bundles of `cdcctl agent render`. Default managed.",
    )
    nodes: list[AgentNode] = Field(
        default_factory=list,
        description="The Cassandra nodes, one agent each. Default empty: read from the cluster "
        "(system.local and system.peers_v2).",
    )
    install: AgentInstall = Field(
        default_factory=AgentInstall,
        description="Paths and JVM/log settings of external agents on the nodes.",
    )

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, value: list[AgentNode]) -> list[AgentNode]:
        for what, key in (("node id", "id"), ("address", "address")):
            seen: dict[str, int] = {}
            for index, node in enumerate(value):
                first = seen.setdefault(getattr(node, key), index)
                if first != index:
                    raise ValueError(
                        f"nodes[{first}] and nodes[{index}] have the same {what} "
                        f"{getattr(node, key)!r}: one agent per node, each with its own id"
                        + ("; set nodeId on one of them" if key == "id" else "")
                    )
        return value


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
        parts = urllib.parse.urlsplit(value)
        try:
            parts.port  # noqa: B018  # raises on a port that is not a number in 0..65535
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an http(s) URL: {exc}") from None
        if not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL: it names no host")
        return value.rstrip("/")


PostgresTlsMode = Literal["require", "verify-ca", "verify-full"]


class PostgresTls(_Model):
    """TLS of every connection to the sink database: the sink's (pgjdbc) and cdcctl's (psycopg).

    There is no mode without TLS. The default is `verify-full` (CA and host name checked): with
    `caFile` against that CA, else against the target's CA (a context's `postgres.caFile`; the
    local stack's CA), else against the system's trust store. `require` (encrypted, server not
    authenticated) must be asked for. Decision 0060, revised by 0108."""

    mode: PostgresTlsMode | None = Field(
        default=None,
        description="require | verify-ca | verify-full; default verify-full (with caFile, the "
        "target's CA or the system trust store).",
    )
    ca_file: str | None = Field(
        default=None,
        min_length=1,
        description="PEM file of the CA that signed the server's certificate, relative to the "
        "manifest; read by cdcctl and by the Kafka Connect worker (same host).",
    )

    @model_validator(mode="after")
    def _mode_and_ca(self) -> PostgresTls:
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
        return self.mode if self.mode is not None else "verify-full"


# PostgreSQL database names cdcctl accepts: an identifier (letters, digits, `_`, `$`; not starting
# with a digit or `$`) or with `-`, at most 63 bytes. Nothing that means something in a JDBC URL
# (`?`, `&`, `#`, `/`, `=`, `%`) or a libpq connection string (spaces, quotes, backslashes).
_PG_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
# Host name labels as found in practice (RFC 1123 plus `_`, which container names use).
_PG_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _check_pg_host(value: str) -> str:
    """A host name, an IPv4 address or an IPv6 address (brackets optional, dropped): nothing
    else reaches the sink's JDBC URL or cdcctl's libpq connection."""
    bracketed = value.startswith("[") and value.endswith("]")
    host = value[1:-1] if bracketed else value
    if ":" in host or bracketed:
        if "%" in host:
            raise ValueError(f"{value!r}: IPv6 zone ids (%...) are not supported")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv6 address") from None
        return host
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None
        return host
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_PG_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a host name, IPv4 or IPv6 address (letters, digits, '-', '_' "
            "and '.' only)"
        )
    return host


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

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_pg_host(value)

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        if not _PG_DATABASE.match(value):
            raise ValueError(
                f"{value!r} is not a database name cdcctl accepts: letters, digits, '_', '$' "
                "and '-', starting with a letter or '_', at most 63 characters"
            )
        return value

    @field_validator("password_secret")
    @classmethod
    def _worker_readable(cls, value: SecretRef) -> SecretRef:
        # The Connect workers resolve it too: ${file:<path>:<key>} reads key=value files.
        if value.file is not None and not value.key:
            raise ValueError(
                "a file secret reference needs `key` here: the Connect workers read it with "
                "Kafka's FileConfigProvider (${file:<path>:<key>})"
            )
        return value


class SinkRetry(_Model):
    """How the sink task waits out PostgreSQL being away (connection refused or lost, shutting
    down, starting up): the batch is redelivered after a doubling backoff, capped, for at most
    ``timeoutMs``; then the task fails and ``cdcctl reconcile`` restarts it (decision 0103).
    The defaults live here only (the connector's own equal them: ``RetryPolicy.java``)."""

    timeout_ms: int = Field(
        default=600_000,
        ge=-1,
        description=(
            "cdc.retry.timeout.ms: how long a task keeps retrying (-1 forever, 0 fails at once)."
        ),
    )
    backoff_initial_ms: int = Field(
        default=1_000, ge=1, le=3_600_000, description="cdc.retry.backoff.initial.ms."
    )
    backoff_max_ms: int = Field(
        default=15_000,
        ge=1,
        le=3_600_000,
        description="cdc.retry.backoff.max.ms: also how late the sink notices PostgreSQL is back.",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> SinkRetry:
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError(
                f"backoffMaxMs ({self.backoff_max_ms}) is below backoffInitialMs "
                f"({self.backoff_initial_ms})"
            )
        if 0 < self.timeout_ms < self.backoff_initial_ms:
            raise ValueError(
                f"timeoutMs ({self.timeout_ms}) is below backoffInitialMs "
                f"({self.backoff_initial_ms}): the sink would never retry (0 says so)"
            )
        return self


SinkWriter = Literal["jdbc", "lww"]
DEFAULT_SINK_WRITER: SinkWriter = "lww"
"""spec.sink.writer when the manifest does not say (decision 0149)."""
DEFAULT_BATCH_SIZE: dict[str, int] = {"lww": 2000, "jdbc": 500}
"""spec.sink.batchSize when the manifest does not say, by writer (decision 0149): the own sink's
merge costs less per event the larger the batch; the gate trigger's cost per row does not fall."""


def _no_schema_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class Sink(_Model):
    postgres: Postgres
    writer: SinkWriter = Field(
        default=DEFAULT_SINK_WRITER,
        description=(
            "The sink connector: `lww` (the default), the project's own sink "
            "(transforms/lww-sink): COPY of each batch into a staging table and one set-based "
            "last-write-wins merge per table; `jdbc`, the Debezium JDBC sink with the gate "
            "trigger applying each row, the same rules (decisions 0126, 0127, 0149). Same "
            "connector name, topics, offsets and DLQ."
        ),
    )
    batch_size: int = Field(
        # the value used when the manifest says nothing is _batch_size_by_writer's
        default=DEFAULT_BATCH_SIZE[DEFAULT_SINK_WRITER],
        ge=1,
        le=100_000,
        description=(
            "Records per batch (the sink's batch.size; above 500 also the consumer's "
            "max.poll.records). Default by writer: "
            + ", ".join(f"{n} for `{w}`" for w, n in DEFAULT_BATCH_SIZE.items())
            + " (decision 0149)."
        ),
        json_schema_extra=_no_schema_default,
    )
    tasks_max: int = Field(default=1, ge=1, le=64)
    standby_tasks: int = Field(
        default=0,
        ge=0,
        le=8,
        description=(
            "Sink tasks beyond tasksMax (Connect's tasks.max is their sum). With no more "
            "partitions than tasksMax they idle, already started, and take a dead worker's "
            "partitions after consumer.session.timeout.ms instead of waiting for Connect to "
            "restart its task (decision 0101). 1 on a Connect cluster of several workers."
        ),
    )
    retry: SinkRetry = Field(default_factory=SinkRetry)

    @model_validator(mode="before")
    @classmethod
    def _batch_size_by_writer(cls, data: Any) -> Any:
        """No batchSize in the manifest: the writer's default (DEFAULT_BATCH_SIZE)."""
        if isinstance(data, dict) and not {"batchSize", "batch_size"} & data.keys():
            writer = data.get("writer", DEFAULT_SINK_WRITER)
            if isinstance(writer, str) and writer.strip() in DEFAULT_BATCH_SIZE:
                return {**data, "batchSize": DEFAULT_BATCH_SIZE[writer.strip()]}
        return data


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
    heartbeat: bool = Field(
        default=False,
        description=(
            "Carry a heartbeat table (`cdcctl_heartbeat` in the keyspace, CDC on, created by "
            "`cdcctl apply`) whose rows `cdcctl serve` writes every few seconds, to measure "
            "freshness end to end (cdc_pipeline_freshness_seconds; decision 0120). Its "
            "PostgreSQL tables are created like the others; `cdcctl verify` skips it."
        ),
    )

    @field_validator("dlq_topic")
    @classmethod
    def _dlq(cls, value: str | None) -> str | None:
        if value is not None and (not _TOPIC.match(value) or value in _RESERVED_TOPICS):
            raise ValueError(
                f"{value!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-', "
                f"at most {MAX_TOPIC_LENGTH}, not '.' or '..')"
            )
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
    def _topic_names_fit(self) -> Pipeline:
        # <prefix>.<keyspace>.<table>.tombstones: Kafka refuses names over 249 characters
        longest = max(
            (self.table_topic(t) + TOMBSTONES_TOPIC_SUFFIX for t in self.captured_tables), key=len
        )
        if len(longest) > MAX_TOPIC_LENGTH:
            raise ValueError(
                f"spec.kafka.topicPrefix makes topic names too long for Kafka: {longest[:60]!r}... "
                f"has {len(longest)} characters (at most {MAX_TOPIC_LENGTH}); use a shorter "
                "topicPrefix"
            )
        return self

    @model_validator(mode="after")
    def _heartbeat_table_is_cdcctls(self) -> Pipeline:
        if self.heartbeat and HEARTBEAT_TABLE in self.tables:
            raise ValueError(
                f"spec.source.cassandra.tables lists {HEARTBEAT_TABLE}, the table "
                "options.heartbeat adds itself: remove it from tables"
            )
        return self

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
        """The tables the manifest lists: the users' data."""
        return list(self.spec.source.cassandra.tables)

    @property
    def heartbeat(self) -> bool:
        return self.spec.options.heartbeat

    @property
    def captured_tables(self) -> list[str]:
        """Every table the pipeline carries: its tables and, with options.heartbeat, the
        heartbeat table (topics, sink, PostgreSQL tables; decision 0120)."""
        return [*self.tables, HEARTBEAT_TABLE] if self.heartbeat else self.tables

    def table_topic(self, table: str) -> str:
        """The topic Debezium Cassandra writes `table`'s changes to."""
        return f"{self.topic_prefix}.{self.keyspace}.{table}"

    @property
    def topics_regex(self) -> str:
        """Every table topic of this pipeline and its `.tombstones` companion (row contract)."""
        prefix = rf"{re.escape(self.topic_prefix)}\.{re.escape(self.keyspace)}"
        tables = "|".join(re.escape(t) for t in self.captured_tables)
        return rf"{prefix}\.({tables})(\.tombstones)?"


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema of manifest v1 (YAML key names), for `cdcctl manifest schema` and editors."""
    schema = Pipeline.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "urn:casscdcpg:manifest:pipeline:v1"
    schema["title"] = "cass-cdc-pg Pipeline manifest (cdc.casscdcpg.io/v1)"
    return schema

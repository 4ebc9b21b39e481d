"""Targets: where a pipeline's systems are and how cdcctl reaches and authenticates to each.

Pure: the models, the contexts file's shape and the precedence rules. Reading files (the contexts
file, a local stack's token files) and resolving secret references is done in
`services.targets`; clients are built from a resolved `Target` by the services.

Two views of one deployment are kept apart on purpose:

- a **manifest** describes the pipeline in the cluster's own terms — the addresses the Connect
  workers and the agents use (JDBC URL host, bootstrap servers, contact points);
- a **target** describes the operator's access — the addresses, TLS and credentials *cdcctl* uses
  from wherever it runs. Anything a target leaves out is taken from the manifest.

A context in ``~/.config/cdcctl/config.yaml`` is a named target::

    currentContext: prod
    contexts:
      local:
        localStack: /home/me/cass-cdc-pg/.stack      # a stack started by `cdcctl stack up`
      prod:
        connect:
          url: https://connect.prod.example:8083
          caFile: /etc/ssl/prod-ca.pem
          username: cdcctl
          passwordSecret: {vault: {path: secret/cdc/connect, key: password}}
        kafka: {bootstrapServers: ["kafka1.prod.example:9093"],
                tls: {caFile: /etc/ssl/prod-ca.pem, certFile: /home/me/.cdcctl/kafka.crt,
                      keyFile: /home/me/.cdcctl/kafka.key}}
        cassandra: {contactPoints: ["10.0.0.1:9042", "10.0.0.2:9042"], localDatacenter: dc1,
                    tls: {caFile: /etc/ssl/prod-ca.pem}, username: cdcctl,
                    passwordSecret: {vault: {path: secret/cdc/cassandra, key: password}}}
        postgres: {user: cdc_owner, passwordSecret: {env: PGPASSWORD}, caFile: /etc/ssl/pg-ca.pem}
        vault: {address: https://vault.prod.example:8200, caFile: /etc/ssl/prod-ca.pem,
                tokenSecret: {env: VAULT_TOKEN}}
        redis: {url: "rediss://cdcctl@redis.prod.example:6380/0", caFile: /etc/ssl/prod-ca.pem,
                passwordSecret: {env: CDC_REDIS_PASSWORD}}

The older one-line form ``{connectUrl: URL}`` is still read (decision 0020, 0070).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from controlplane.core.manifest import AgentKafkaTls, HostPort, Pipeline, SecretRef

DEFAULT_CONNECT_URL = "http://127.0.0.1:8083"
DEFAULT_VAULT_ADDRESS = "http://127.0.0.1:8200"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_TARGET_NAME = "local"

_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_REDIS_URL = re.compile(r"^rediss?://\S+$")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


def _http_url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


class TlsOptions(_Model):
    """TLS towards one system: which CA to trust (the system's default trust store if unset)."""

    ca_file: str | None = Field(default=None, min_length=1, description="PEM CA bundle.")


class ConnectAccess(_Model):
    url: str = Field(description="Kafka Connect REST URL (http or https).")
    ca_file: str | None = Field(default=None, min_length=1, description="PEM CA bundle.")
    username: str | None = Field(default=None, min_length=1, description="Basic auth user.")
    password_secret: SecretRef | None = Field(
        default=None, description="Basic auth password (a secret reference)."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _auth_pair(self) -> ConnectAccess:
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("basic auth needs both username and passwordSecret")
        return self


class KafkaTls(TlsOptions):
    """TLS towards Kafka (security.protocol SSL), and the client certificate cdcctl
    authenticates with when the brokers require one (mTLS, decision 0114): a PEM certificate
    and its unencrypted PEM private key, paths on cdcctl's machine."""

    cert_file: str | None = Field(
        default=None, min_length=1, description="PEM client certificate (mTLS)."
    )
    key_file: str | None = Field(
        default=None, min_length=1, description="PEM private key of certFile (unencrypted)."
    )

    @model_validator(mode="after")
    def _cert_pair(self) -> KafkaTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a Kafka client certificate needs both certFile and keyFile")
        return self


class KafkaAccess(_Model):
    bootstrap_servers: list[HostPort] | None = Field(
        default=None,
        min_length=1,
        description="Bootstrap servers cdcctl uses (else the manifest's).",
    )
    tls: KafkaTls | None = Field(
        default=None, description="Connect with TLS (SSL protocol), with a client certificate."
    )

    def endpoint(self, servers: str) -> KafkaEndpoint:
        """cdcctl's view of the brokers at `servers`: this access's TLS and certificate."""
        tls = self.tls
        return KafkaEndpoint(
            servers=servers,
            tls=tls is not None,
            ca_file=tls.ca_file if tls else None,
            cert_file=tls.cert_file if tls else None,
            key_file=tls.key_file if tls else None,
        )


class CassandraAccess(_Model):
    """cdcctl's own CQL sessions (apply, validate --online, schema, verify, agent discovery):
    TLS and a PasswordAuthenticator login (decision 0110)."""

    contact_points: list[HostPort] | None = Field(default=None, min_length=1)
    local_datacenter: str | None = Field(default=None, min_length=1)
    tls: TlsOptions | None = Field(
        default=None, description="Connect with TLS (client encryption), verifying the nodes."
    )
    username: str | None = Field(default=None, min_length=1, description="Cassandra role.")
    password_secret: SecretRef | None = Field(
        default=None, description="The role's password (a secret reference)."
    )

    @model_validator(mode="after")
    def _login_pair(self) -> CassandraAccess:
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("cassandra needs both username and passwordSecret, or neither")
        return self


class PostgresAccess(_Model):
    """cdcctl's own PostgreSQL connection: the DDL role may differ from the sink's."""

    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, min_length=1)
    password_secret: SecretRef | None = None
    ca_file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _credentials_pair(self) -> PostgresAccess:
        if (self.user is None) != (self.password_secret is None):
            raise ValueError("postgres needs both user and passwordSecret, or neither")
        return self


class VaultAccess(_Model):
    address: str = Field(default=DEFAULT_VAULT_ADDRESS)
    ca_file: str | None = Field(default=None, min_length=1)
    token_secret: SecretRef = Field(
        default_factory=lambda: SecretRef(env="VAULT_TOKEN"),
        description="Where cdcctl's Vault token is: {env: VAULT_TOKEN} by default.",
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return _http_url(value)


class RedisAccess(_Model):
    """Verify's checkpoints and the reconciler's lease: ``rediss://user@host:port/db`` with the
    ACL user's password as a secret reference and the CA to verify the server (decision 0110)."""

    url: str = Field(default=DEFAULT_REDIS_URL)
    ca_file: str | None = Field(
        default=None, min_length=1, description="PEM CA bundle (needs a rediss:// URL)."
    )
    password_secret: SecretRef | None = Field(
        default=None, description="The ACL user's password (a secret reference)."
    )

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not _REDIS_URL.match(value):
            raise ValueError(f"{redact_url(value)!r} is not a redis:// or rediss:// URL")
        if url_password(value) is not None:
            # The value itself is not repeated: it holds a password.
            raise ValueError(
                "the Redis URL holds a password: write rediss://USER@host:port/db and give the "
                "password as passwordSecret"
            )
        return value

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> RedisAccess:
        if self.ca_file is not None and not self.url.startswith("rediss://"):
            raise ValueError("caFile is for TLS: use a rediss:// URL")
        return self


def url_password(url: str) -> str | None:
    """The password part of a URL's ``user:password@`` (None when it has none)."""
    rest = url.split("://", 1)[-1]
    userinfo, at, _ = rest.partition("@")
    if not at or "/" in userinfo:
        return None
    _, colon, password = userinfo.partition(":")
    return password if colon else None


def url_user(url: str) -> str | None:
    """The user of a URL's ``user[:password]@`` (None when it names none)."""
    rest = url.split("://", 1)[-1]
    userinfo, at, _ = rest.partition("@")
    if not at or "/" in userinfo:
        return None
    return userinfo.partition(":")[0] or None


def redact_url(url: str) -> str:
    """`url` with the password of ``user:password@`` replaced by ``***`` (for messages)."""
    password = url_password(url)
    if password is None:
        return url
    scheme, _, rest = url.partition("://")
    userinfo, _, tail = rest.partition("@")
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{tail}"


@dataclass(frozen=True)
class CassandraClientSecurity:
    """How cdcctl's driver secures its Cassandra sessions, secrets resolved (never printed)."""

    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RedisEndpoint:
    """A Redis URL (no password in it) with the ACL user's resolved password and the CA; its
    text form is the URL, so messages never show the password."""

    url: str
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    def __str__(self) -> str:
        return redact_url(self.url)


class Context(_Model):
    """One named target in the contexts file."""

    local_stack: str | None = Field(
        default=None, description="State directory of a local stack: the context is that stack."
    )
    connect: ConnectAccess | None = None
    kafka: KafkaAccess = Field(default_factory=KafkaAccess)
    cassandra: CassandraAccess = Field(default_factory=CassandraAccess)
    postgres: PostgresAccess = Field(default_factory=PostgresAccess)
    vault: VaultAccess | None = None
    redis: RedisAccess | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_connect_url(cls, data: Any) -> Any:
        # Contexts written before targets existed: {connectUrl: URL}.
        for legacy in ("connectUrl", "connect_url"):
            if isinstance(data, dict) and legacy in data:
                data = dict(data)
                url = data.pop(legacy)
                data.setdefault("connect", {"url": url})
        return data

    @property
    def connect_url(self) -> str:
        return self.connect.url if self.connect else DEFAULT_CONNECT_URL


# --- resolved targets ------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalStackInfo:
    """What a target knows of the local stack it is (None for remote targets)."""

    state_dir: Path
    node_id: str = "node1"
    cassandra_config: Path | None = None
    agent_http_port: int = 8001
    agent_security: AgentCassandraSecurity | None = None
    """TLS trust store and role of the stack's agents towards Cassandra (None: --insecure)."""
    agent_kafka_tls: AgentKafkaTls | None = None
    """CA and PEM key store of the stack's agents towards Kafka (mTLS; None: --insecure)."""


@dataclass(frozen=True)
class AgentCassandraSecurity:
    """What an agent's driver config needs for TLS and its login, without secret values: the
    passwords are the environment variables `password_env` and `truststore_password_env` of the
    agent's process (decision 0110); without `truststore_password_env` the driver loads the
    trust store without a password (a JKS store)."""

    truststore: str
    username: str
    password_env: str = "CDC_CASSANDRA_PASSWORD"  # noqa: S105  # nosec B105  # a name
    truststore_password_env: str | None = "CDC_CASSANDRA_TRUSTSTORE_PASSWORD"  # noqa: S105  # nosec B105  # a name


@dataclass(frozen=True)
class Target:
    """Where everything is and how to authenticate, resolved from context + overrides.

    Endpoints left as None fall back to each pipeline's manifest (`for_pipeline`)."""

    name: str
    connect: ConnectAccess
    kafka: KafkaAccess = field(default_factory=KafkaAccess)
    cassandra: CassandraAccess = field(default_factory=CassandraAccess)
    postgres: PostgresAccess = field(default_factory=PostgresAccess)
    vault: VaultAccess = field(default_factory=VaultAccess)
    redis: RedisAccess = field(default_factory=RedisAccess)
    local: LocalStackInfo | None = None
    connect_overridden: bool = False
    """--connect-url/--context given: the manifest's own spec.connect is then ignored."""

    @property
    def is_local(self) -> bool:
        return self.local is not None

    def describe(self) -> str:
        """How messages name this target: the local stack or the context."""
        if self.local is not None:
            return f"the local stack ({self.local.state_dir})"
        return f"target {self.name!r}"

    def hint(self, what: str) -> str:
        """Where to look when `what` (a system of this target) does not answer."""
        if self.local is not None:
            return f"is the local stack running? try `cdcctl stack status` ({what})"
        return (
            f"check {what} of context {self.name!r} (`cdcctl config get-contexts`), "
            "that it is reachable from here, and its credentials"
        )

    def with_connect(self, connect: ConnectAccess) -> Target:
        return replace(self, connect=connect)


@dataclass(frozen=True)
class KafkaEndpoint:
    """How cdcctl's own Kafka clients reach the brokers: TLS verified with `ca_file`, and the
    client certificate (`cert_file`/`key_file`, mTLS) when the brokers require one."""

    servers: str
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __str__(self) -> str:
        return self.servers


@dataclass(frozen=True)
class PipelineEndpoints:
    """What cdcctl connects to for one pipeline: the target's view, else the manifest's."""

    connect: ConnectAccess
    kafka: KafkaEndpoint
    contact_points: tuple[str, ...]
    local_datacenter: str
    postgres_host: str
    postgres_port: int


def endpoints_for(
    target: Target, pipeline: Pipeline, contexts: dict[str, Context] | None = None
) -> PipelineEndpoints:
    """The endpoints of `pipeline` on `target` (precedence in docs/decisions/0070):

    Connect: --connect-url/--context > the manifest's spec.connect.context > the manifest's
    spec.connect.url when written > the target's. Everything else: the target's when it says,
    else the manifest's."""
    spec = pipeline.spec
    connect = target.connect
    if not target.connect_overridden:
        named = spec.connect.context
        if named:
            if not contexts or named not in contexts:
                from controlplane.core.errors import UsageError

                raise UsageError(
                    f"pipeline {pipeline.name}: spec.connect.context {named!r} is not a known "
                    "context",
                    hint="add it with `cdcctl config set-context` or remove spec.connect.context",
                )
            connect = contexts[named].connect or ConnectAccess(url=DEFAULT_CONNECT_URL)
        elif "url" in spec.connect.model_fields_set and spec.connect.url != connect.url:
            connect = ConnectAccess(url=spec.connect.url)
    cassandra = spec.source.cassandra
    pg = spec.sink.postgres
    return PipelineEndpoints(
        connect=connect,
        kafka=target.kafka.endpoint(
            ",".join(target.kafka.bootstrap_servers or spec.kafka.bootstrap_servers)
        ),
        contact_points=tuple(target.cassandra.contact_points or cassandra.contact_points),
        local_datacenter=target.cassandra.local_datacenter or cassandra.local_datacenter,
        postgres_host=target.postgres.host or pg.host,
        postgres_port=target.postgres.port or pg.port,
    )


def split_host_port(value: str, default_port: int = 9042) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` / bare host -> (host without brackets, port)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, default_port  # a bare IPv6 address or a host name


AgentMode = Literal["managed", "external"]

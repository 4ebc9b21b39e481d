"""The chaos suite's stack and pipeline: the local stack of $CDC_STACK_DIR (never the default
one unless CDC_CHAOS_ALLOW_DEFAULT_STACK=1: the suite kills its services), a keyspace
``chaos_rf<RF>`` with the torture table, deployed afresh with `cdcctl apply`."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile, Session
from cassandra.policies import RoundRobinPolicy
from confluent_kafka.admin import AdminClient

from controlplane.adapters import postgres
from controlplane.services.stack import Endpoints, LocalStack, repo_root, settings_for
from controlplane.services.stack_settings import chosen_settings
from tests.chaos import settings
from tests.cluster.conftest import NODES as CLUSTER_NODES
from tests.cluster.conftest import PORT_OFFSET as CLUSTER_PORT_OFFSET
from tests.cluster.conftest import WORKERS as CLUSTER_WORKERS
from tests.cluster.conftest import cluster_state_dir
from tests.e2e.torture_ops import BODY
from tests.manifests import writer_line
from tests.stackfixture import apply_on, connect_http, cql_cluster, kafka_config


def write_profile(consistency: str) -> str:
    """The execution profile of the workload's writes at ``consistency``."""
    return f"chaos-write-{consistency.upper()}"


@dataclass(frozen=True)
class Pipeline:
    name: str
    keyspace: str
    table: str  # ks.t
    topic: str
    connector: str
    group: str
    manifest: Path


@pytest.fixture(scope="session")
def chaos_stack() -> LocalStack:
    stack = LocalStack(settings_for())
    if stack.lay.root.resolve() == cluster_state_dir().resolve():
        # the cluster profile's dir (./dev test-cluster runs tests/cluster first, then this
        # suite, in one session): the same choices as the `cluster` fixture, so that a chaos run
        # on its own never starts a default single-node stack there
        stack = LocalStack(
            chosen_settings(
                cluster_state_dir(),
                CLUSTER_PORT_OFFSET,
                nodes=CLUSTER_NODES,
                connect_workers=CLUSTER_WORKERS,
            )
        )
    default = (repo_root() / ".stack").resolve()
    if (
        stack.lay.root.resolve() == default
        and os.environ.get("CDC_CHAOS_ALLOW_DEFAULT_STACK") != "1"
    ):
        pytest.exit(
            "the chaos suite kills services: give it its own stack "
            "(CDC_STACK_DIR=... cdcctl stack up --port-offset N), or set "
            "CDC_CHAOS_ALLOW_DEFAULT_STACK=1",
            returncode=4,
        )
    stack.up(persist=True)  # a no-op for what runs
    os.environ["CDC_PG_PASSWORD"] = stack.postgres_password()
    return stack


@pytest.fixture(scope="session")
def endpoints(chaos_stack: LocalStack) -> Endpoints:
    from tests.chaos.support import use_stack

    ep = chaos_stack.endpoints()
    use_stack(ep)  # the helpers' TLS and credentials (decision 0114)
    return ep


@pytest.fixture(scope="session")
def cql(endpoints: Endpoints) -> Iterator[Session]:
    """Default profile: CL=ALL (what the comparison reads); ``write_profile(CL)``: the workload's
    writes at CDC_CHAOS_CL and at the CL of every ``FAULT@CL``."""
    points = list(endpoints.cassandra_contact_points) or [
        f"{endpoints.cassandra_host}:{endpoints.cassandra_port}"
    ]
    hosts = [p.rsplit(":", 1)[0] for p in points]
    profiles = {
        EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(),
            consistency_level=ConsistencyLevel.ALL,
            request_timeout=30,
        )
    }
    levels = {settings.CONSISTENCY} | {f.partition("@")[2].upper() for f in settings.FAULTS}
    for level in levels - {""}:
        profiles[write_profile(level)] = ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(),
            consistency_level=ConsistencyLevel.name_to_value[level],
            request_timeout=10,
        )
    cluster = cql_cluster(endpoints, hosts, execution_profiles=profiles)  # TLS + login (0110)
    session = cluster.connect()
    yield session
    cluster.shutdown()


def manifest_text(name: str, keyspace: str, endpoints: Endpoints) -> str:
    points = list(endpoints.cassandra_contact_points) or [
        f"{endpoints.cassandra_host}:{endpoints.cassandra_port}"
    ]
    host, port = "127.0.0.1", _dsn_port(endpoints.postgres_dsn)
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    cassandra:
      contactPoints: [{", ".join(f'"{p}"' for p in points)}]
      keyspace: {keyspace}
      tables: [t]
  kafka:
    bootstrapServers: ["{endpoints.kafka_bootstrap}"]
    topicPrefix: demo
  connect:
    url: {endpoints.connect_url}
  sink:
{writer_line()}    postgres:
      host: {host}
      port: {port}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
    standbyTasks: {1 if len(endpoints.connect_urls) > 1 else 0}
"""


def _dsn_port(dsn: str) -> int:
    for part in dsn.split():
        if part.startswith("port="):
            return int(part.removeprefix("port="))
    return 5432


def reset_kafka(endpoints: Endpoints, connector: str, topic: str, group: str) -> None:
    """No sink connector, topic or sink offsets of an earlier run."""
    with contextlib.suppress(httpx.HTTPError), connect_http(endpoints) as http:
        http.delete(f"/connectors/{connector}")
    admin = AdminClient(kafka_config(endpoints))
    if topic in admin.list_topics(timeout=10).topics:
        for fut in admin.delete_topics([topic], operation_timeout=30).values():
            fut.result()
    with contextlib.suppress(Exception):  # no such group on a first run
        for fut in admin.delete_consumer_groups([group]).values():
            fut.result()
    deadline = time.monotonic() + 60
    while topic in admin.list_topics(timeout=10).topics:
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} still exists")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def pipeline(
    chaos_stack: LocalStack,
    endpoints: Endpoints,
    cql: Session,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pipeline:
    keyspace = f"chaos_rf{settings.RF}"
    name = f"chaos-rf{settings.RF}"
    p = Pipeline(
        name=name,
        keyspace=keyspace,
        table=f"{keyspace}.t",
        topic=f"demo.{keyspace}.t",
        connector=f"{name}-jdbc-sink",
        group=f"connect-{name}-jdbc-sink",
        manifest=tmp_path_factory.mktemp("chaos") / f"{name}.yaml",
    )
    reset_kafka(endpoints, p.connector, p.topic, p.group)
    cql.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    cql.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.RF}}}"
    )
    cql.execute(f"CREATE TABLE {p.table} {BODY}")
    postgres.execute(
        endpoints.postgres_dsn,
        [
            f'DROP SCHEMA IF EXISTS "{keyspace}_cdc" CASCADE',
            f'DROP SCHEMA IF EXISTS "{keyspace}" CASCADE',
        ],
    )
    p.manifest.write_text(manifest_text(name, keyspace, endpoints))
    apply_on(chaos_stack, [p.manifest])
    return p

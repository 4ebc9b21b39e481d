"""The local cluster profile (`cdcctl stack up --nodes 3 --connect-workers 2`): the production
topology on one machine — every node up and normal, RF=3 reads and writes, one agent per node
with its own node id, Connect workers in one group, and a managed pipeline whose every write
arrives once per replica's agent and once in PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import SimpleStatement
from confluent_kafka import Consumer

from controlplane.adapters import postgres, processes
from controlplane.core.properties import load_properties
from controlplane.services.apply import apply_manifests
from controlplane.services.local_agents import LocalAgents
from controlplane.services.stack import Endpoints
from controlplane.services.targets import local_target
from tests.cli import cdcctl_json
from tests.cluster.conftest import NODES, WORKERS, Cluster
from tests.manifests import writer_line
from tests.stackfixture import connect_http, cql_cluster, kafka_config

pytestmark = pytest.mark.cluster

DEADLINE_S = 180.0


def wait_for(what: str, probe: Callable[[], Any], ok: Callable[[Any], bool]) -> Any:
    """Poll `probe` until `ok(value)`; fail with the last value after the deadline."""
    end = time.monotonic() + DEADLINE_S
    value = probe()
    while not ok(value):
        if time.monotonic() > end:
            pytest.fail(f"{what}: not reached within {DEADLINE_S:.0f}s; last value: {value!r}")
        time.sleep(0.5)
        value = probe()
    return value


@pytest.fixture(scope="module")
def cql(cluster: Cluster) -> Any:
    s = cluster.stack.s
    hosts = [f"127.0.0.{i}" for i in range(1, s.nodes + 1)]
    c = cql_cluster(cluster.stack.endpoints(), hosts)  # TLS + cdcctl's role (decision 0110)
    session = c.connect()
    yield session
    c.shutdown()


def test_every_node_is_up_and_normal(cluster: Cluster) -> None:
    view = cluster.stack.cluster_view()
    assert view == {f"127.0.0.{i}": "UN" for i in range(1, NODES + 1)}


def test_rf3_written_at_quorum_is_read_at_all(cql: Session) -> None:
    cql.execute(
        "CREATE KEYSPACE IF NOT EXISTS cluster_rf3 WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    cql.execute("CREATE TABLE IF NOT EXISTS cluster_rf3.kv (k int PRIMARY KEY, v text)")
    marker = uuid.uuid4().hex
    write = SimpleStatement(
        "INSERT INTO cluster_rf3.kv (k, v) VALUES (%s, %s)",
        consistency_level=ConsistencyLevel.QUORUM,
    )
    for k in range(20):
        cql.execute(write, (k, f"{marker}-{k}"))
    read = SimpleStatement(
        "SELECT k, v FROM cluster_rf3.kv WHERE k = %s", consistency_level=ConsistencyLevel.ALL
    )
    rows = {r.k: r.v for k in range(20) for r in cql.execute(read, (k,))}
    assert rows == {k: f"{marker}-{k}" for k in range(20)}
    # ALL needs every replica: each of the 3 nodes holds the keyspace's data.
    hosts = {str(h.endpoint.address) for h in cql.cluster.metadata.all_hosts() if h.is_up}
    assert hosts == {f"127.0.0.{i}" for i in range(1, NODES + 1)}


def test_each_agent_is_healthy_on_its_own_port_with_its_own_node_id(cluster: Cluster) -> None:
    agents = LocalAgents(cluster.stack.s).nodes()
    assert [a.node_id for a in agents] == [f"node{i}" for i in range(1, NODES + 1)]
    assert len({a.http_port for a in agents}) == NODES
    for a in agents:
        r = httpx.get(f"{a.http_url()}/health", timeout=5)
        assert r.status_code == 200, (a.name, r.text)
        assert r.json()["cassandra-cdc-health-check"]["healthy"] is True
        # The process answering on this port is this agent's, run with its own node's files.
        pid = processes.read_pid(cluster.stack.lay.pid_file(a.name))
        assert pid is not None
        proc = psutil.Process(pid)
        listening = {
            c.laddr.port for c in proc.net_connections(kind="inet") if c.status == "LISTEN"
        }
        assert a.http_port in listening, (a.name, listening)
        props = load_properties(Path(proc.cmdline()[-1]).read_text())
        assert props["cassandra.node.id"] == a.node_id
        assert props["http.port"] == str(a.http_port)
        assert props["cassandra.config"] == str(a.cassandra_config)


def test_connect_workers_form_one_group(cluster: Cluster) -> None:
    ep = cluster.stack.endpoints()
    urls = ep.connect_urls
    assert len(urls) == WORKERS

    def http(url: str) -> httpx.Client:
        return connect_http(ep, url)  # type: ignore[no-any-return]

    for url in urls:
        with http(url) as c:
            r = c.get("/connectors")
        assert r.status_code == 200, (url, r.text)
    # A connector created through the second worker is known to the first: one group, one
    # config topic (the request is forwarded to the group's leader).
    name = f"cluster-probe-{uuid.uuid4().hex[:8]}"
    config = {  # a sink that never gets a record: its topic is not written to
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "topics": f"{name}-nothing",
        "tasks.max": "1",
        "connection.url": "jdbc:postgresql://127.0.0.1:1/none",
        "connection.username": "probe",
        "connection.password": "probe",  # pragma: allowlist secret
    }
    with http(urls[-1]) as c:
        created = c.put(f"/connectors/{name}/config", json=config)
    assert created.status_code in (200, 201), created.text
    try:
        with http(urls[0]) as first:
            wait_for(
                f"{name} listed by {urls[0]}",
                lambda: first.get("/connectors").json(),
                lambda names: name in names,
            )
    finally:
        with http(urls[0]) as c:
            c.delete(f"/connectors/{name}")


def test_status_lists_every_node_agent_and_worker(cluster: Cluster) -> None:
    rows = cdcctl_json("stack", "status", "--state-dir", str(cluster.stack.lay.root))
    by_name = {r["name"]: r for r in rows}
    expected = (
        [f"cassandra{'' if i == 1 else f'-{i}'}" for i in range(1, NODES + 1)]
        + [f"agent{'' if i == 1 else f'-{i}'}" for i in range(1, NODES + 1)]
        + [f"connect{'' if i == 1 else f'-{i}'}" for i in range(1, WORKERS + 1)]
    )
    for name in expected:
        row = by_name[name]
        assert row["state"] == "running", row
        assert row["pid"], row
        assert row["rss_mib"], row
    assert len({by_name[n]["pid"] for n in expected}) == len(expected)
    assert {by_name[f"cassandra-{i}"]["address"] for i in range(2, NODES + 1)} == {
        f"127.0.0.{i}" for i in range(2, NODES + 1)
    }
    agent_ports = {by_name[n]["port"] for n in expected if n.startswith("agent")}
    worker_ports = {by_name[n]["port"] for n in expected if n.startswith("connect")}
    assert (len(agent_ports), len(worker_ports)) == (NODES, WORKERS)


# --- a managed pipeline on the cluster -----------------------------------------------------------


def pipeline_manifest(cluster: Cluster, keyspace: str) -> str:
    p = cluster.stack.s.ports
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {keyspace}
spec:
  source:
    cassandra:
      contactPoints: ["127.0.0.1:{p.cassandra}"]
      keyspace: {keyspace}
      tables: [events]
  kafka:
    bootstrapServers: ["127.0.0.1:{p.kafka}"]
    topicPrefix: clu
  connect:
    url: {"https" if cluster.stack.s.tls else "http"}://127.0.0.1:{p.connect}
  sink:
{writer_line()}    postgres:
      host: 127.0.0.1
      port: {p.postgres}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
"""


class TopicCount:
    """Reads a table topic as it grows: the change events of this run's rows (by their marker),
    raw and distinct by where each replica's commit log had them (segment file, position)."""

    def __init__(self, stack: Endpoints, topic: str, marker: str) -> None:
        self.marker = marker
        self.raw = 0
        self.distinct: set[tuple[str, int]] = set()
        self._consumer = Consumer(
            {
                **kafka_config(stack),
                "group.id": f"cluster-count-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([topic])

    def poll(self) -> tuple[int, int]:
        for message in self._consumer.consume(num_messages=1000, timeout=1.0):
            if message.error() is not None or not message.value():
                continue
            payload = json.loads(message.value())["payload"]
            value = ((payload.get("after") or {}).get("v") or {}).get("value") or ""
            if not value.startswith(self.marker):
                continue
            self.raw += 1
            source = payload["source"]
            self.distinct.add((source["file"], int(source["pos"])))
        return self.raw, len(self.distinct)

    def close(self) -> None:
        self._consumer.close()


def test_managed_pipeline_carries_every_write_once_per_replica(
    cluster: Cluster, cql: Session, tmp_path: Path
) -> None:
    stack = cluster.stack
    keyspace = "clusterpipe"
    cql.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    cql.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    cql.execute(f"CREATE TABLE {keyspace}.events (id int PRIMARY KEY, v text) WITH cdc = true")
    dsn = stack.postgres_dsn()
    postgres.execute(
        dsn,
        [
            f'DROP TABLE IF EXISTS "{keyspace}_cdc"."events" CASCADE',
            f'DROP TABLE IF EXISTS "{keyspace}_cdc"."events__tombstones" CASCADE',
        ],
    )
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(pipeline_manifest(cluster, keyspace))
    topic = f"clu.{keyspace}.events"

    result = apply_manifests([manifest], local_target(stack.lay.root), agents=LocalAgents(stack.s))
    applied = {c.name for c in result.changes if c.kind == "agent"}
    # Every node's agent got its own properties, and all were (re)started.
    for node in range(1, NODES + 1):
        props_path = stack.lay.root / "agent" / f"node{node}" / "agent.properties"
        assert str(props_path) in applied
        props = load_properties(props_path.read_text())
        assert props["cassandra.node.id"] == f"node{node}"
        assert props["http.port"] == str(stack.s.ports.agent_http_of(node))
        assert LocalAgents(stack.s).agent(node).properties_path() == props_path
    assert LocalAgents(stack.s).running()

    writes = 200
    marker = uuid.uuid4().hex[:8]
    count = TopicCount(stack.endpoints(), topic, marker)
    write = SimpleStatement(
        f"INSERT INTO {keyspace}.events (id, v) VALUES (%s, %s)",
        consistency_level=ConsistencyLevel.QUORUM,
    )
    for i in range(writes):
        cql.execute(write, (i, f"{marker}-{i}"))

    wait_for(
        "every write in PostgreSQL",
        lambda: postgres.query(
            dsn, f"SELECT count(*) FROM {keyspace}.events WHERE v LIKE %s", [f"{marker}-%"]
        )[0][0],
        lambda n: n == writes,
    )
    # Each replica's agent emits the change it received: RF=3 with every node up means 3 events
    # per write, one from each replica's commit log (the LWW gate makes the copies no-ops).
    try:
        raw, distinct = wait_for(
            f"{NODES * writes} distinct events in {topic}",
            count.poll,
            lambda counts: counts[1] >= NODES * writes,
        )
        deadline = time.monotonic() + 10  # late re-reads of the same positions, if any
        while time.monotonic() < deadline:
            raw, distinct = count.poll()
    finally:
        count.close()
    figures = {
        "writes": writes,
        "events": raw,
        "distinct_events": distinct,
        "events_per_write": round(raw / writes, 3),
        "distinct_events_per_write": round(distinct / writes, 3),
    }
    print(f"\nevents per write on {topic}: {figures}")
    (stack.lay.root / "events-per-write.json").write_text(json.dumps(figures, indent=1))
    # One event per replica (distinct commit log positions): exactly RF.
    assert distinct == NODES * writes
    # The 3.4.1 agent may emit a position twice when it re-reads its live segment
    # (real-time processing); never fewer than one per replica.
    assert raw >= distinct

"""End-to-end latency of single writes: Cassandra INSERT acknowledged -> row visible in the
PostgreSQL live view, p50/p95 over many writes, for the shipped settings and for variants that
show which setting dominates; and the shipped settings on each supported Cassandra version
(5.0 and 4.1, back to back: issue 13).

Runs a second stack on shifted ports in a temporary state dir (beside the default one; its load
adds noise). Writes docs/benchmarks.md#latency.

    python -m pytest tests/performance/test_latency.py -m performance -s
    python -m pytest tests/performance/test_latency.py -m performance -s -k by_cassandra_version
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from controlplane.adapters import cassandra
from controlplane.core.manifest import AgentOptions
from controlplane.core.stack_model import (
    CASSANDRA_VERSIONS,
    DEFAULT_CASSANDRA_VERSION,
    Ports,
    StackLayout,
    StackSettings,
)
from controlplane.services.stack import LocalStack
from tests.performance.report import machine, percentile, write_section
from tests.stackfixture import apply_on

pytestmark = pytest.mark.performance

OFFSET = 21000
WRITES = int(os.environ.get("CDC_BENCH_WRITES", "100"))
WARMUP = 10

MANIFEST = """\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: lat
spec:
  source:
    cassandra:
      version: "{version}"
      contactPoints: ["127.0.0.1:{cassandra}"]
      keyspace: lat
      tables: [t]
    agent:
      pollIntervalMs: {poll}
  kafka:
    bootstrapServers: ["127.0.0.1:{kafka}"]
    topicPrefix: lat
  sink:
    postgres:
      host: 127.0.0.1
      port: {postgres}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
"""


def measure(st: LocalStack, tmp: Path, poll_ms: int) -> list[float]:
    p = st.s.ports
    manifest = tmp / f"lat-{st.s.cassandra_version}-{poll_ms}.yaml"
    manifest.write_text(
        MANIFEST.format(
            cassandra=p.cassandra,
            kafka=p.kafka,
            postgres=p.postgres,
            poll=poll_ms,
            version=st.s.cassandra_version,
        )
    )
    # the variable the stack hands its Connect workers (the sink resolves ${env:...} there)
    os.environ["CDC_PG_PASSWORD"] = st.postgres_password()
    security = st.endpoints().cassandra_security  # TLS + cdcctl's role (decision 0110)
    cluster, session = cassandra.connect("127.0.0.1", p.cassandra, security=security)
    try:
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS lat WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(
            "CREATE TABLE IF NOT EXISTS lat.t (id uuid PRIMARY KEY, v text) WITH cdc = true"
        )
        apply_on(st, [manifest])
        insert = session.prepare("INSERT INTO lat.t (id, v) VALUES (?, ?)")
        latencies: list[float] = []
        with psycopg.connect(st.endpoints().postgres_dsn, autocommit=True) as pg:
            for i in range(WARMUP + WRITES):
                key = uuid.uuid4()
                t0 = time.monotonic()
                session.execute(insert, (key, f"v{i}"))
                # the first writes also wait for the new sink task to start (not measured)
                deadline = t0 + (60 if i >= WARMUP else 300)
                while not pg.execute("SELECT 1 FROM lat.t WHERE id = %s", (key,)).fetchone():
                    if time.monotonic() > deadline:
                        raise AssertionError(f"write {i} not visible after {deadline - t0:.0f} s")
                    time.sleep(0.005)
                if i >= WARMUP:
                    latencies.append(time.monotonic() - t0)
        return latencies
    finally:
        cluster.shutdown()


def run_variant(
    tmp: Path,
    name: str,
    sync_ms: int,
    polls: list[int],
    cassandra_version: str = DEFAULT_CASSANDRA_VERSION,
) -> dict[int, list[float]]:
    root = tmp / name
    settings = StackSettings(
        layout=StackLayout(root=root),
        ports=Ports().shifted(OFFSET),
        commitlog_sync_period_ms=sync_ms,
        cassandra_version=cassandra_version,
    )
    st = LocalStack(settings)
    try:
        # persisted: `apply` resolves the local stack as its target from the state dir's
        # stack.json (ports, version, credentials)
        st.up(persist=True)
        return {poll: measure(st, tmp, poll) for poll in polls}
    finally:
        st.down(clean=True)
        shutil.rmtree(root, ignore_errors=True)


def test_latency(tmp_path: Path) -> None:
    shipped_sync = StackSettings(layout=StackLayout(root=tmp_path)).commitlog_sync_period_ms
    results: list[tuple[int, int, list[float]]] = []
    for sync_ms, polls in ((1000, [1000, 100]), (100, [1000, 100])):
        for poll, lat in run_variant(tmp_path, f"sync{sync_ms}", sync_ms, polls).items():
            results.append((sync_ms, poll, lat))
    rows = "\n".join(
        f"| {sync} ms | {poll} ms | {len(lat)} | {percentile(lat, 50):.2f} s | "
        f"{percentile(lat, 95):.2f} s | {max(lat):.2f} s |"
        for sync, poll, lat in results
    )
    body = f"""## End-to-end latency of single writes

Command: `python -m pytest tests/performance/test_latency.py -m performance -s` — a second stack on
ports +{OFFSET}; one INSERT at a time (after {WARMUP} warm-up writes), timed from just before the
CQL write to the row being visible in the PostgreSQL live view (polled every 5 ms).
Machine: {machine()}.

| `commitlog_sync_period` | agent `pollIntervalMs` | writes | p50 | p95 | max |
|---|---|---|---|---|---|
{rows}

Shipped: `commitlog_sync_period: {shipped_sync}ms` (`cdcctl stack`) and `pollIntervalMs: 100`
(examples/pipeline.yaml and the manifest default). The agent waits `pollIntervalMs` twice in
series (the commit-log directory poll and its queue's `poll.interval.ms`) and a write is
readable only after the commit-log sync: the largest of the two settings dominates — either at
1 s gives ~1 s (p95 up to 2 s when both are), both at 100 ms give p50 ~0.2 s, p95 ~0.3 s.
"""
    write_section("latency", body)
    print(body)
    assert all(lat for _, _, lat in results)


def test_latency_by_cassandra_version(tmp_path: Path) -> None:
    """The shipped settings on each supported Cassandra, one stack after the other (same
    machine, minutes apart), so the rows compare the versions and not the machine's load."""
    shipped_sync = StackSettings(layout=StackLayout(root=tmp_path)).commitlog_sync_period_ms
    shipped_poll = AgentOptions().poll_interval_ms
    results: list[tuple[str, list[float]]] = []
    loads: list[float] = []
    for version in CASSANDRA_VERSIONS:
        loads.append(os.getloadavg()[0])
        got = run_variant(tmp_path, f"c{version}", shipped_sync, [shipped_poll], version)
        results.append((version, got[shipped_poll]))
        loads.append(os.getloadavg()[0])
    load = f"{min(loads):.0f} to {max(loads):.0f}"

    def runs(version: str) -> str:
        st = LocalStack(StackSettings(layout=StackLayout(root=tmp_path), cassandra_version=version))
        v, flavour = st.versions(), st.s.flavour
        return (
            f"cassandra-all {v['cassandra']} on Java {flavour.cassandra_jdk}, "
            f"{flavour.agent_artifact} {v['agent']}"
        )

    rows = "\n".join(
        f"| {version} | {runs(version)} | {len(lat)} | {percentile(lat, 50):.2f} s | "
        f"{percentile(lat, 95):.2f} s | {max(lat):.2f} s |"
        for version, lat in results
    )
    body = f"""## End-to-end latency of single writes, per Cassandra version

Command: `python -m pytest tests/performance/test_latency.py -m performance -s -k
by_cassandra_version` — as above (ports +{OFFSET}, {WARMUP} warm-up writes, 5 ms polls of the
live view), with the shipped settings (`commitlog_sync_period: {shipped_sync}ms`,
`pollIntervalMs: {shipped_poll}`), one fresh stack per version, one after the other.
Machine: {machine()}; 1-min load average LOAD around the runs.

| Cassandra | runs | writes | p50 | p95 | max |
|---|---|---|---|---|---|
{rows}

Both agents read the live commit-log segment as its `_cdc.idx` advances
(`commit.log.real.time.processing.enabled=true`, `commit.log.marked.complete.poll.interval.ms` and
`cdc.dir.poll.interval.ms` at the stack's poll interval: names and defaults — false, 10000,
10000 — from debezium-connector-cassandra-core 3.3.0.Final's `CassandraConnectorConfig`, whose
`CommitLogIdxParser` the cassandra-4 agent runs; decision 0118).
"""
    write_section("latency-versions", body.replace("LOAD", load))
    print(body)
    assert all(lat for _, lat in results)

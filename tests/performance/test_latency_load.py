"""Latency under sustained load (issue 15 item 5): Cassandra ack -> visible in the PostgreSQL
live view, p50/p95/p99, while a paced load of 1,000 and then 5,000 writes/s runs through the same
pipeline (same agent, same Kafka topics' broker, same sink connector and task, same PostgreSQL).

One pipeline `ll` carries two tables: `ll.load` (the load: `tests/performance/loadgen.py`'s
LoadGenerator, prepared INSERTs with execute_async, N client threads, a bounded in-flight window,
token-bucket pacing) and `ll.probe` (LatencyProbe: a timestamped row every 75 ms on its own
connection, the ack time recorded; a watcher looks the acked ids up by primary key in the
PostgreSQL view `ll.probe` every 5 ms). The sink task reads both topics, so the probe rows queue
behind the load wherever the load queues. After each rate the load rows are counted in
PostgreSQL (every acked write must arrive). Writes docs/benchmarks.md#latency-under-load and
docs/benchmarks/latency-under-load.png.

The stack: `$CDC_STACK_DIR`'s when set (brought up if needed and left running), else its own in a
temporary state dir at `--port-offset` $CDC_BENCH_PORT_OFFSET (default 4000), torn down after.

    CDC_STACK_DIR=.stack-h python -m pytest tests/performance/test_latency_load.py \\
        -m performance -s -p no:cacheprovider

Overrides for short trials: CDC_BENCH_RATES (default "1000,5000"), CDC_BENCH_SECONDS (60),
CDC_BENCH_WARMUP_SECONDS (20), CDC_BENCH_THREADS (2), CDC_BENCH_WINDOW (512).
"""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from controlplane.core.stack_model import Ports, StackLayout, StackSettings
from controlplane.services.stack import LocalStack, settings_for
from tests.performance.loadgen import LatencyProbe, LoadGenerator, LoadStats, ProbeSample
from tests.performance.report import DOC, machine, percentile, plot, write_section
from tests.stackfixture import apply_on, cql_cluster

pytestmark = pytest.mark.performance

RATES = [int(r) for r in os.environ.get("CDC_BENCH_RATES", "1000,5000").split(",")]
SECONDS = float(os.environ.get("CDC_BENCH_SECONDS", "60"))
WARMUP_SECONDS = float(os.environ.get("CDC_BENCH_WARMUP_SECONDS", "20"))
WARMUP_RATE = 500
THREADS = int(os.environ.get("CDC_BENCH_THREADS", "2"))
WINDOW = int(os.environ.get("CDC_BENCH_WINDOW", "512"))
PORT_OFFSET = int(os.environ.get("CDC_BENCH_PORT_OFFSET", "4000"))
PROBE_INTERVAL_S = 0.075
#: how long the rows of one rate may take to arrive after the load stopped
ARRIVAL_TIMEOUT_S = 600.0
PNG = DOC.parent / "benchmarks" / "latency-under-load.png"
PAYLOAD = "x" * 64

MANIFEST = """\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: ll
spec:
  source:
    cassandra:
      version: "{version}"
      contactPoints: ["127.0.0.1:{cassandra}"]
      keyspace: ll
      tables: [load, probe]
  kafka:
    bootstrapServers: ["127.0.0.1:{kafka}"]
    topicPrefix: ll
  sink:
    postgres:
      host: 127.0.0.1
      port: {postgres}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
"""


@dataclass
class Phase:
    name: str
    rate: int
    load: LoadStats
    samples: list[ProbeSample]
    probe_errors: list[str]
    loadavg: list[float]
    #: rows of this phase in PostgreSQL when the count stopped changing or matched
    arrived: int
    #: seconds from the end of the load until every acked row was in PostgreSQL (None: never)
    catch_up_s: float | None
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def latencies(self) -> list[float]:
        return [s.latency_s for s in self.samples if s.latency_s is not None]

    @property
    def missing(self) -> int:
        return sum(1 for s in self.samples if s.visible is None)


@contextmanager
def bench_stack(tmp: Path) -> Iterator[LocalStack]:
    """$CDC_STACK_DIR's stack (kept running), or an own one at PORT_OFFSET (torn down)."""
    if os.environ.get("CDC_STACK_DIR"):
        st = LocalStack(settings_for())
        st.up()
        yield st
        return
    root = tmp / "stack"
    st = LocalStack(
        StackSettings(layout=StackLayout(root=root), ports=Ports().shifted(PORT_OFFSET))
    )
    try:
        st.up(persist=True)
        yield st
    finally:
        st.down(clean=True)
        shutil.rmtree(root, ignore_errors=True)


def service_cpu(st: LocalStack) -> dict[str, float]:
    """CPU seconds so far of each stack service (the process and its children)."""
    out: dict[str, float] = {}
    for s in st.status():
        if s.pid is None:
            continue
        try:
            proc = psutil.Process(s.pid)
            procs = [proc, *proc.children(recursive=True)]
            out[s.name] = sum(sum(p.cpu_times()[:2]) for p in procs)
        except psutil.Error:
            continue
    return out


def count_rows(dsn: str, lo: int, hi: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as pg:
        row = pg.execute(
            "SELECT count(*) FROM ll.load WHERE id >= %s AND id < %s", (lo, hi)
        ).fetchone()
        return int(row[0]) if row else 0


def wait_arrived(dsn: str, lo: int, hi: int, want: int) -> tuple[int, float | None]:
    """Poll the count of load rows in [lo, hi) until it reaches `want` (deadline)."""
    t0 = time.monotonic()
    deadline = t0 + ARRIVAL_TIMEOUT_S
    got = 0
    while time.monotonic() < deadline:
        got = count_rows(dsn, lo, hi)
        if got >= want:
            return got, time.monotonic() - t0
        time.sleep(0.5)
    return got, None


def run_phase(
    st: LocalStack,
    session: Any,
    probe_session: Any,
    index: int,
    name: str,
    rate: int,
    seconds: float,
    visible_timeout_s: float = 120.0,
) -> Phase:
    dsn = st.endpoints().postgres_dsn
    insert = session.prepare("INSERT INTO ll.load (id, v, n) VALUES (?, ?, ?)")
    probe_insert = probe_session.prepare("INSERT INTO ll.probe (id, written_at) VALUES (?, ?)")
    base = index * 1_000_000_000

    watch = psycopg.connect(dsn, autocommit=True)

    def visible(ids: list[int]) -> list[int]:
        return [r[0] for r in watch.execute("SELECT id FROM ll.probe WHERE id = ANY(%s)", (ids,))]

    def write_probe(i: int) -> None:
        probe_session.execute(probe_insert, (i, datetime.now(UTC)))

    probe = LatencyProbe(
        write_probe, visible, first_id=index * 1_000_000, interval_s=PROBE_INTERVAL_S
    )
    gen = LoadGenerator(
        session,
        insert,
        lambda i: (base + i, PAYLOAD, i),
        rate=rate,
        threads=THREADS,
        window=WINDOW,
    )
    loads: list[float] = []
    sampling = threading.Event()
    sampling.set()

    def sample_load() -> None:
        while sampling.is_set():
            loads.append(os.getloadavg()[0])
            time.sleep(1.0)

    sampler = threading.Thread(target=sample_load, daemon=True)
    cpu0 = service_cpu(st)
    sampler.start()
    try:
        probe.start()
        stats = gen.run(seconds)
        probe.stop_writing()
        cpu1 = service_cpu(st)
        sampling.clear()
        probe.wait_visible(visible_timeout_s)
        samples = probe.stop()
        arrived, catch_up = wait_arrived(dsn, base, base + 1_000_000_000, stats.acked)
    finally:
        sampling.clear()
        watch.close()
    cpu = {k: (cpu1[k] - cpu0[k]) / stats.elapsed_s for k in cpu1 if k in cpu0}
    cpu["benchmark (load generator, probe, watcher)"] = stats.cpu_share
    return Phase(name, rate, stats, samples, probe.write_errors, loads, arrived, catch_up, cpu)


HEADER = (
    "| target | achieved (load) | failed writes | load rows in PostgreSQL | probes | p50 | p95 "
    "| p99 | max | catch-up after the load | load average during |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def describe(p: Phase) -> str:
    lat = p.latencies
    la = p.loadavg or [os.getloadavg()[0]]
    return (
        f"| {p.rate:,}/s | {p.load.achieved_rate:,.0f}/s ({p.load.acked:,} acked in "
        f"{p.load.elapsed_s:.0f} s) | {p.load.failed} | {p.arrived:,} "
        f"{'= acked' if p.arrived == p.load.acked else '!= acked'} | {len(lat)} "
        f"({p.missing} unseen) | {percentile(lat, 50):.2f} s | {percentile(lat, 95):.2f} s | "
        f"{percentile(lat, 99):.2f} s | {max(lat, default=float('nan')):.2f} s | "
        f"{'n/a' if p.catch_up_s is None else f'{p.catch_up_s:.1f} s'} | "
        f"{min(la):.1f} to {max(la):.1f} (mean {statistics.fmean(la):.1f}) |"
    )


def test_latency_under_load(tmp_path: Path) -> None:
    before = os.getloadavg()
    with bench_stack(tmp_path) as st:
        p = st.s.ports
        manifest = tmp_path / "ll.yaml"
        manifest.write_text(
            MANIFEST.format(
                cassandra=p.cassandra,
                kafka=p.kafka,
                postgres=p.postgres,
                version=st.s.cassandra_version,
            )
        )
        os.environ["CDC_PG_PASSWORD"] = st.postgres_password()
        ep = st.endpoints()
        load_cluster, probe_cluster = cql_cluster(ep), cql_cluster(ep)
        try:
            session, probe_session = load_cluster.connect(), probe_cluster.connect()
            session.default_timeout = 30
            session.execute(
                "CREATE KEYSPACE IF NOT EXISTS ll WITH replication = "
                "{'class': 'SimpleStrategy', 'replication_factor': 1}"
            )
            session.execute(
                "CREATE TABLE IF NOT EXISTS ll.load (id bigint PRIMARY KEY, v text, n int) "
                "WITH cdc = true"
            )
            session.execute(
                "CREATE TABLE IF NOT EXISTS ll.probe (id bigint PRIMARY KEY, written_at "
                "timestamp) WITH cdc = true"
            )
            apply_on(st, [manifest])
            # each run gets key ranges of its own: a reused stack keeps earlier runs' rows
            run = int(time.time()) % 1000 * 10
            # first row through (the new sink task starting), then a warm-up at a low rate
            warm = run_phase(
                st, session, probe_session, run, "start", WARMUP_RATE, 1.0, visible_timeout_s=300
            )
            assert warm.latencies, "the first probe rows never arrived"
            warm = run_phase(
                st, session, probe_session, run + 1, "warm-up", WARMUP_RATE, WARMUP_SECONDS
            )
            print(f"warm-up: {describe(warm)}")
            phases = []
            for k, rate in enumerate(RATES):
                phase = run_phase(
                    st, session, probe_session, run + 2 + k, f"{rate}/s", rate, SECONDS
                )
                print(describe(phase), phase.load.errors, phase.probe_errors)
                print({k: round(v, 2) for k, v in phase.cpu.items()})
                phases.append(phase)
        finally:
            load_cluster.shutdown()
            probe_cluster.shutdown()
        versions = st.versions()
        cassandra_version = f"{st.s.cassandra_version} (cassandra-all {versions['cassandra']})"
        ports = f"+{st.s.ports.cassandra - Ports().cassandra}"
    after = os.getloadavg()

    plot(
        PNG,
        {
            f"{ph.rate:,} writes/s": (
                [s.at_s for s in ph.samples if s.latency_s is not None],
                ph.latencies,
            )
            for ph in phases
        },
        title="Probe latency under load: Cassandra ack -> visible in PostgreSQL",
        xlabel="seconds since the load started",
        ylabel="latency (s)",
    )
    rows = "\n".join(describe(ph) for ph in phases)
    cpu_rows = "\n".join(
        f"| {ph.rate:,}/s | "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(ph.cpu.items(), key=lambda kv: -kv[1]))
        + " |"
        for ph in phases
    )
    body = f"""## Latency under sustained load

Command: `CDC_STACK_DIR=.stack-h python -m pytest tests/performance/test_latency_load.py -m
performance -s -p no:cacheprovider` (stack at ports {ports}; without `CDC_STACK_DIR` the test
brings up its own at `--port-offset` 4000 in a temporary state dir). One pipeline, two tables:
`ll.load` takes a paced load (`tests/performance/loadgen.py`: prepared INSERTs of ~90 bytes,
`execute_async` from {THREADS} client threads, at most {WINDOW} in flight, token-bucket pacing)
for {SECONDS:.0f} s per rate after a {WARMUP_SECONDS:.0f} s warm-up at {WARMUP_RATE}/s;
`ll.probe` gets a timestamped row every {PROBE_INTERVAL_S * 1000:.0f} ms on its own connection,
and latency = first sighting of the row's id in the PostgreSQL view `ll.probe` (looked up by
primary key every 5 ms) - the Cassandra ack. Same agent, Kafka, sink connector and task (both
topics), PostgreSQL. Shipped settings. Cassandra {cassandra_version}.
Machine: {machine()}. **Shared**: other sessions ran their own stacks on the same 2 cores;
1-min load average {before[0]:.1f} before, {after[0]:.1f} after; per rate in the table.

{HEADER}
{rows}

"catch-up": from the end of the load until the count of its rows in PostgreSQL equalled the
acked writes. Bar (issue 15): p95 <= 1 s and p99 <= 2 s at 5,000 writes/s.
Over time: ![latency under load](benchmarks/latency-under-load.png)

CPU (cores busy, averaged over the load; each stack service with its children):

| target | CPU |
|---|---|
{cpu_rows}
"""
    write_section("latency-under-load", body)
    print(body)
    assert all(ph.latencies for ph in phases)

"""Latency under sustained load (issue 15 item 5): Cassandra ack -> visible in the PostgreSQL
live view, p50/p95/p99, while a paced load of 1,000 and then 5,000 writes/s runs through the same
pipeline (same agent, same Kafka topics' broker, same sink connector and task, same PostgreSQL).

One pipeline `ll` carries two tables: `ll.load` (the load: prepared INSERTs sent asynchronously
from N client threads, a bounded in-flight window, token-bucket pacing; by
`tests/performance/LoadGen.java` on the Java driver the agent ships (`javaload.py`, decision
0155), or with CDC_BENCH_GENERATOR=python by `loadgen.py`'s LoadGenerator on the Python driver)
and `ll.probe` (LatencyProbe: a timestamped row every 75 ms on its own
connection, the ack time recorded; a watcher looks the acked ids up by primary key in the
PostgreSQL view `ll.probe` every 5 ms, or less often so as to look up at most
WATCH_LOOKUPS_PER_S ids a second). The sink task reads both topics, so the probe rows queue
behind the load wherever the load queues. After each rate the load rows are counted in
PostgreSQL (every acked write must arrive). Writes docs/benchmarks.md#latency-under-load and
docs/benchmarks/latency-under-load.png.

The stack: `$CDC_STACK_DIR`'s when set (brought up if needed and left running), else its own in a
temporary state dir at `--port-offset` $CDC_BENCH_PORT_OFFSET (default 4000), torn down after.

    CDC_STACK_DIR=.stack-h python -m pytest tests/performance/test_latency_load.py \\
        -m performance -s -p no:cacheprovider

Overrides for short trials: CDC_BENCH_RATES (default "1000,5000"), CDC_BENCH_SECONDS (60),
CDC_BENCH_WARMUP_SECONDS (20), CDC_BENCH_THREADS (2), CDC_BENCH_WINDOW (512),
CDC_BENCH_GENERATOR (java | python; java).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
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
from tests.performance.javaload import (
    CassandraTarget,
    JavaLoadGenerator,
    compile_loadgen,
    driver_classpath,
)
from tests.performance.loadgen import LatencyProbe, LoadGenerator, LoadStats, ProbeSample
from tests.performance.report import DOC, machine, percentile, plot, write_section
from tests.stackfixture import apply_on, cql_cluster, kafka_config

pytestmark = pytest.mark.performance

RATES = [int(r) for r in os.environ.get("CDC_BENCH_RATES", "1000,5000").split(",")]
SECONDS = float(os.environ.get("CDC_BENCH_SECONDS", "60"))
WARMUP_SECONDS = float(os.environ.get("CDC_BENCH_WARMUP_SECONDS", "20"))
WARMUP_RATE = 500
THREADS = int(os.environ.get("CDC_BENCH_THREADS", "2"))
WINDOW = int(os.environ.get("CDC_BENCH_WINDOW", "512"))
#: which load generator sends the load: "java" (LoadGen.java) or "python" (loadgen.py)
GENERATOR = os.environ.get("CDC_BENCH_GENERATOR", "java")
PORT_OFFSET = int(os.environ.get("CDC_BENCH_PORT_OFFSET", "4000"))
PROBE_INTERVAL_S = 0.075
#: how long the rows of one rate may take to arrive after the load stopped
ARRIVAL_TIMEOUT_S = 600.0
PNG = DOC.parent / "benchmarks" / "latency-under-load.png"
PAYLOAD = "x" * 64
#: every how many load writes one is timed through the pipeline as well
SAMPLE_EVERY = int(os.environ.get("CDC_BENCH_SAMPLE_EVERY", "100"))
#: ids a watcher looks up in PostgreSQL per second at most (decision 0155): every 5 ms while
#: fewer than 100 are pending, less often behind a backlog (800 pending ids every 5 ms took
#: ~0.15 cores of PostgreSQL and ~0.13 of this process)
WATCH_LOOKUPS_PER_S = 20_000.0
SINK_GROUP = "connect-ll-jdbc-sink"
LOAD_TOPIC = "ll.ll.load"
GENERATOR_TEXT = {
    "java": "the Java generator `tests/performance/LoadGen.java` on the agent's Java driver 4, "
    "`CDC_BENCH_GENERATOR=java` (decision 0155)",
    "python": "the Python generator `tests/performance/loadgen.py` on the cassandra-driver's "
    "`execute_async`, `CDC_BENCH_GENERATOR=python`",
}
#: the CPU table's rows for this process and for the Java generator's
BENCH = {
    "python": "benchmark (load generator, probe, watchers)",
    "java": "benchmark (probe, watchers)",
}
JAVA_GENERATOR = "load generator (java)"

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


def java_generator(st: LocalStack, build_dir: Path) -> JavaLoadGenerator:
    """LoadGen on the stack's JDK and the agent's driver jars, compiled into `build_dir`,
    writing `ll.load` on the stack's Cassandra as cdcctl connects to it (not started)."""
    st.ctx.resolve_artifacts({"agent"})  # cached: the agent's classpath directory
    jars = driver_classpath(st.ctx.lib("agent"))
    classes = compile_loadgen(st.ctx.java(), jars, build_dir)
    ep = st.endpoints()
    sec = ep.cassandra_security
    target = CassandraTarget(
        ep.cassandra_host,
        ep.cassandra_port,
        ca_file=sec.ca_file if sec.tls else None,
        username=sec.username,
        password=sec.password,
    )
    return JavaLoadGenerator(
        st.ctx.java(),
        [classes, *jars],
        target,
        "ll.load",
        payload=PAYLOAD,
        threads=THREADS,
        window=WINDOW,
        sample_every=SAMPLE_EVERY,
        progress=lambda e: print(f"  load: {e}"),
    )


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
    #: service -> (CPU seconds, seconds waiting for a CPU) per second of load
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: every SAMPLE_EVERY-th load row, timed like the probe rows (looked up in ll.load)
    load_samples: list[ProbeSample] = field(default_factory=list)
    #: (seconds since the load started, events in ll.ll.load not yet committed by the sink)
    lag: list[tuple[float, int]] = field(default_factory=list)
    #: load events the agent produced to Kafka while the load ran, per second
    produced_rate: float = 0.0

    @property
    def latencies(self) -> list[float]:
        return [s.latency_s for s in self.samples if s.latency_s is not None]

    @property
    def missing(self) -> int:
        return sum(1 for s in self.samples if s.visible is None)

    @property
    def load_latencies(self) -> list[float]:
        return [s.latency_s for s in self.load_samples if s.latency_s is not None]


class LagSampler:
    """Every second: the end offsets of the load topic (events the agent produced) and the sink
    group's committed offsets (Connect commits every offset.flush.interval.ms, 1 s)."""

    def __init__(self, st: LocalStack) -> None:
        from confluent_kafka import Consumer

        conf = kafka_config(
            st.endpoints(),
            **{"group.id": SINK_GROUP, "enable.auto.commit": False},
        )
        self.consumer = Consumer(conf)
        parts = self.consumer.list_topics(LOAD_TOPIC, timeout=30).topics[LOAD_TOPIC].partitions
        self.parts = sorted(parts)
        self.points: list[tuple[float, int, int]] = []  # (t, produced, committed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = 0.0

    def offsets(self) -> tuple[int, int]:
        from confluent_kafka import TopicPartition

        tps = [TopicPartition(LOAD_TOPIC, p) for p in self.parts]
        ends = sum(self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
        done = sum(max(tp.offset, 0) for tp in self.consumer.committed(tps, timeout=10))
        return ends, done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ends, done = self.offsets()
                self.points.append((time.monotonic() - self.t0, ends, done))
            except Exception as exc:  # a missed sample, not a failed benchmark
                print(f"lag sample failed: {exc}")
            self._stop.wait(1.0)

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.consumer.close()


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


def sched(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of all threads of `pid`, from
    /proc/<pid>/task/*/schedstat (Linux); zeros where it cannot be read."""
    run = wait = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue
        run += int(fields[0]) / 1e9
        wait += int(fields[1]) / 1e9
    return run, wait


def service_cpu(st: LocalStack) -> dict[str, tuple[float, float]]:
    """(CPU seconds, run-queue wait seconds) so far of each stack service (with children)."""
    out: dict[str, tuple[float, float]] = {}
    for s in st.status():
        if s.pid is None:
            continue
        try:
            proc = psutil.Process(s.pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        run = wait = 0.0
        for p in procs:
            r, w = sched(p.pid)
            run, wait = run + r, wait + w
        if run > 0:
            out[s.name] = (run, wait)
    return out


def count_rows(dsn: str, lo: int, hi: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as pg:
        row = pg.execute(
            "SELECT count(*) FROM ll.load WHERE id >= %s AND id < %s", (lo, hi)
        ).fetchone()
        return int(row[0]) if row else 0


def wait_arrived(dsn: str, lo: int, hi: int, want: int, since: float) -> tuple[int, float | None]:
    """Poll the count of load rows in [lo, hi) until it reaches `want` (deadline); the seconds
    from `since` (monotonic: the end of the load) until then."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    got = 0
    while time.monotonic() < deadline:
        got = count_rows(dsn, lo, hi)
        if got >= want:
            return got, time.monotonic() - since
        time.sleep(0.2)
    return got, None


def run_phase(
    st: LocalStack,
    session: Any,
    probe_session: Any,
    index: int,
    name: str,
    rate: int,
    seconds: float,
    java: JavaLoadGenerator | None,
    visible_timeout_s: float = 120.0,
) -> Phase:
    """One rate: the load by the (started) Java generator when `java` is given, else by the
    Python one on `session`."""
    dsn = st.endpoints().postgres_dsn
    probe_insert = probe_session.prepare("INSERT INTO ll.probe (id, written_at) VALUES (?, ?)")
    base = index * 1_000_000_000

    watch = psycopg.connect(dsn, autocommit=True)

    def visible(ids: list[int]) -> list[int]:
        return [r[0] for r in watch.execute("SELECT id FROM ll.probe WHERE id = ANY(%s)", (ids,))]

    def write_probe(i: int) -> None:
        probe_session.execute(probe_insert, (i, datetime.now(UTC)))

    probe = LatencyProbe(
        write_probe,
        visible,
        first_id=index * 1_000_000,
        interval_s=PROBE_INTERVAL_S,
        max_lookups_per_s=WATCH_LOOKUPS_PER_S,
    )
    load_watch = psycopg.connect(dsn, autocommit=True)

    def load_visible(ids: list[int]) -> list[int]:
        rows = load_watch.execute(
            "SELECT id FROM ll.load WHERE id = ANY(%s)", ([base + i for i in ids],)
        )
        return [r[0] - base for r in rows]

    load_probe = LatencyProbe(None, load_visible, max_lookups_per_s=WATCH_LOOKUPS_PER_S)
    send: Callable[[], LoadStats]
    if java is not None:
        send = functools.partial(
            java.run, seconds, rate=rate, base=base, on_sample_ack=load_probe.acked
        )
    else:
        send = functools.partial(
            LoadGenerator(
                session,
                session.prepare("INSERT INTO ll.load (id, v, n) VALUES (?, ?, ?)"),
                lambda i: (base + i, PAYLOAD, i),
                rate=rate,
                threads=THREADS,
                window=WINDOW,
                sample_every=SAMPLE_EVERY,
                on_sample_ack=load_probe.acked,
            ).run,
            seconds,
        )
    lag = LagSampler(st)
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
        lag.start()
        probe.start()
        load_probe.start()
        produced0 = lag.offsets()[0]
        own_cpu0 = time.process_time()
        stats = send()
        load_end = time.monotonic()
        own_cpu = time.process_time() - own_cpu0
        produced1 = lag.offsets()[0]
        probe.stop_writing()
        cpu1 = service_cpu(st)
        sampling.clear()
        probe.wait_visible(visible_timeout_s)
        samples = probe.stop()
        arrived, catch_up = wait_arrived(
            dsn, base, base + 1_000_000_000, stats.acked, since=load_end
        )
        load_probe.wait_visible(60.0)
        load_samples = load_probe.stop()
    finally:
        sampling.clear()
        lag.stop()
        watch.close()
        load_watch.close()
    cpu = {
        k: (
            (cpu1[k][0] - cpu0[k][0]) / stats.elapsed_s,
            (cpu1[k][1] - cpu0[k][1]) / stats.elapsed_s,
        )
        for k in cpu1
        if k in cpu0
    }
    # this process's own threads come and go (senders, probe): its CPU from process_time, and
    # no run-queue figure (the threads that exited took theirs with them); the Java generator
    # measures its own
    cpu[BENCH[stats.generator]] = (own_cpu / stats.elapsed_s, float("nan"))
    if stats.generator == "java":
        cpu[JAVA_GENERATOR] = (stats.cpu_share, float("nan"))
    return Phase(
        name,
        rate,
        stats,
        samples,
        probe.write_errors,
        loads,
        arrived,
        catch_up,
        cpu,
        load_samples=load_samples,
        lag=[(t, ends - done) for t, ends, done in lag.points],
        produced_rate=(produced1 - produced0) / stats.elapsed_s,
    )


HEADER = (
    "| target | achieved (load) | failed writes | load rows in PostgreSQL | probes | p50 | p95 "
    "| p99 | max | catch-up after the load | load average during |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def probe_create_times(st: LocalStack, topic: str = "ll.ll.probe") -> dict[int, float]:
    """Probe id -> the earliest Kafka CreateTime (epoch s) of its events: when the agent's
    producer took the event (the agent may send a position twice)."""
    from confluent_kafka import Consumer, TopicPartition

    conf = kafka_config(
        st.endpoints(), **{"group.id": f"ll-bench-{os.getpid()}", "enable.auto.commit": False}
    )
    consumer = Consumer(conf)
    out: dict[int, float] = {}
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {}
        for part in parts:
            _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=30)
            ends[part] = hi
        consumer.assign([TopicPartition(topic, part, 0) for part in parts])
        todo = {part for part, hi in ends.items() if hi > 0}
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            key = msg.key()
            if key:
                pid = int(json.loads(key)["payload"]["id"])
                ts = msg.timestamp()[1] / 1000
                out[pid] = min(ts, out.get(pid, ts))
            if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                todo.discard(msg.partition() or 0)
    finally:
        consumer.close()
    return out


def split(p: Phase, created: dict[int, float]) -> tuple[list[float], list[float]]:
    """Per probe: (CreateTime - ack, visible - CreateTime), for the probes with both."""
    agent, rest = [], []
    for smp in p.samples:
        if smp.latency_s is None or smp.id not in created:
            continue
        agent.append(created[smp.id] - smp.acked_wall)
        rest.append(smp.acked_wall + smp.latency_s - created[smp.id])
    return agent, rest


def describe_queue(p: Phase) -> str:
    lat = p.load_latencies
    peak = max((n for _t, n in p.lag), default=0)
    return (
        f"| {p.rate:,}/s | {len(lat)} ({len(p.load_samples) - len(lat)} unseen) | "
        f"{percentile(lat, 50):.2f} s | {percentile(lat, 95):.2f} s | {percentile(lat, 99):.2f} s "
        f"| {max(lat, default=float('nan')):.2f} s | {p.produced_rate:,.0f}/s | {peak:,} |"
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
    assert GENERATOR in BENCH, f"CDC_BENCH_GENERATOR must be one of {sorted(BENCH)}"
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
        java = java_generator(st, tmp_path / "loadgen") if GENERATOR == "java" else None
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
            if java is not None:
                java.start()  # one JVM for every phase: it compiles its code in the warm-up
            # each run gets key ranges of its own: a reused stack keeps earlier runs' rows
            run = int(time.time()) % 1000 * 10
            # first row through (the new sink task starting), then a warm-up at a low rate
            warm = run_phase(
                st,
                session,
                probe_session,
                run,
                "start",
                WARMUP_RATE,
                1.0,
                java,
                visible_timeout_s=300,
            )
            assert warm.latencies, "the first probe rows never arrived"
            warm = run_phase(
                st, session, probe_session, run + 1, "warm-up", WARMUP_RATE, WARMUP_SECONDS, java
            )
            print(f"warm-up: {describe(warm)}")
            phases = []
            for k, rate in enumerate(RATES):
                phase = run_phase(
                    st, session, probe_session, run + 2 + k, f"{rate}/s", rate, SECONDS, java
                )
                print(
                    describe(phase),
                    f"window full {phase.load.window_full}x",
                    f"generator {phase.load.cpu_ms_per_write:.3f} ms CPU per write",
                    phase.load.errors,
                    phase.probe_errors,
                )
                print({k: (round(r, 2), round(w, 2)) for k, (r, w) in phase.cpu.items()})
                phases.append(phase)
        finally:
            if java is not None:
                java.close()
            load_cluster.shutdown()
            probe_cluster.shutdown()
        created = probe_create_times(st)
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
        }
        | {
            f"{ph.rate:,} writes/s, load rows": (
                [s.at_s for s in ph.load_samples if s.latency_s is not None],
                ph.load_latencies,
            )
            for ph in phases
        },
        title="Latency under load: Cassandra ack -> visible in PostgreSQL",
        xlabel="seconds since the load started",
        ylabel="latency (s)",
    )
    plot(
        PNG.with_name("latency-under-load-lag.png"),
        {
            f"{ph.rate:,} writes/s": ([t for t, _ in ph.lag], [n for _, n in ph.lag])
            for ph in phases
        },
        title="Sink consumer lag on the load topic (events not yet committed by the sink)",
        xlabel="seconds since the load started",
        ylabel="events",
    )
    rows = "\n".join(describe(ph) for ph in phases)
    queue_rows = "\n".join(describe_queue(ph) for ph in phases)
    split_rows = []
    for ph in phases:
        agent, rest = split(ph, created)
        split_rows.append(
            f"| {ph.rate:,}/s | {len(agent)} | {percentile(agent, 50):.2f} s / "
            f"{percentile(agent, 95):.2f} s / {percentile(agent, 99):.2f} s | "
            f"{percentile(rest, 50):.2f} s / {percentile(rest, 95):.2f} s / "
            f"{percentile(rest, 99):.2f} s |"
        )
    split_table = "\n".join(split_rows)
    cpu_rows = "\n".join(
        f"| {ph.rate:,}/s | "
        + ", ".join(
            f"{k} {run:.2f} / {'?' if wait != wait else f'{wait:.2f}'}"
            for k, (run, wait) in sorted(ph.cpu.items(), key=lambda kv: -kv[1][0])
            if run >= 0.005
        )
        + " |"
        for ph in phases
    )
    generator_cpu = ", ".join(
        f"{ph.load.cpu_ms_per_write:.3f} ms at {ph.rate:,}/s" for ph in phases
    )
    body = f"""## Latency under sustained load

Command: `CDC_STACK_DIR=.stack-h python -m pytest tests/performance/test_latency_load.py -m
performance -s -p no:cacheprovider` (stack at ports {ports}; without `CDC_STACK_DIR` the test
brings up its own at `--port-offset` 4000 in a temporary state dir). One pipeline, two tables:
`ll.load` takes a paced load ({GENERATOR_TEXT[GENERATOR]}: prepared INSERTs of ~90 bytes, sent
asynchronously from {THREADS} client threads, at most {WINDOW} in flight, token-bucket pacing)
for {SECONDS:.0f} s per rate after a {WARMUP_SECONDS:.0f} s warm-up at {WARMUP_RATE}/s;
`ll.probe` gets a timestamped row every {PROBE_INTERVAL_S * 1000:.0f} ms on its own connection,
and latency = first sighting of the row's id in the PostgreSQL view `ll.probe` (looked up by
primary key every 5 ms, less often behind a backlog: at most {WATCH_LOOKUPS_PER_S:,.0f} ids a
second) - the Cassandra ack. Same agent, Kafka, sink connector and task (both
topics), PostgreSQL. Shipped settings. Cassandra {cassandra_version}.
Machine: {machine()}. 1-min load average {before[0]:.1f} before, {after[0]:.1f} after; per rate
in the table.

{HEADER}
{rows}

"catch-up": from the end of the load until the count of its rows in PostgreSQL equalled the
acked writes. Bar (issue 15): p95 <= 1 s and p99 <= 2 s at 5,000 writes/s.
Over time: ![latency under load](benchmarks/latency-under-load.png)

The load rows themselves: every {SAMPLE_EVERY}th load write timed the same way (ack -> its id
visible in `ll.load`). The sink task reads the probe topic and the load topic together, one
fetch serving both partitions, so a backlog on the load topic delays load rows more than probe
rows: these are the figures a user of the loaded table sees. "produced" = events the agent put
on the load topic per second of load (its copies included); "peak lag" = the sink group's
largest backlog on the load topic (committed offsets, sampled every second;
![lag](benchmarks/latency-under-load-lag.png)).

| target | load rows timed | p50 | p95 | p99 | max | produced | peak sink lag |
|---|---|---|---|---|---|---|---|
{queue_rows}

Where the time goes: each probe's latency split at the Kafka CreateTime of its event (set by the
agent's producer when it takes the event; the earliest copy): before = commit-log sync, the
agent's directory/segment poll, its queue and processing; after = producer send, broker,
Connect's consumer poll, the sink's batch (transform, upsert, LWW trigger, commit).

| target | probes | ack -> Kafka p50 / p95 / p99 | Kafka -> visible p50 / p95 / p99 |
|---|---|---|---|
{split_table}

CPU per service, averaged over the load: seconds on a CPU / seconds runnable but waiting for a
CPU, per second (all threads of the service and its children, from `/proc/*/task/*/schedstat`;
a wait larger than the run time means the service was starved of CPU, not idle):

| target | on CPU / waiting for a CPU |
|---|---|
{cpu_rows}

The load generator's own CPU per acked write: {generator_cpu}.
"""
    write_section("latency-under-load", body)
    print(body)
    assert all(ph.latencies for ph in phases)

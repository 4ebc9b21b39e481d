"""Sink writers compared on one pre-filled topic (issue 15 item 3): the project's own sink
(`writer: lww`, COPY + one set-based LWW merge per batch and table) against the stock Debezium
JDBC sink with the gate trigger (`writer: jdbc`, the default until decision 0149) and the stock
sink without the gate (a plain unconditional upsert: the floor an LWW sink has to beat), each with
1, 2 and 4 tasks over 4 partitions.

One topic with 4 partitions is filled with N (default 1,000,000) events in the exact shape the
real agent produces (the captured fixture `real_update_one_column` of table
(pk int, ck int, a text, b bigint, c uuid); 70 % updates of one or two columns, 20 % inserts,
10 % row deletes over 100,000 keys, write times increasing with jitter so they arrive out of
order). Three pipelines are applied with `cdcctl apply` (their own keyspace and PostgreSQL schema
each), their connectors are pointed at the shared topic and stopped; every run resets the
connector's offsets, empties its tables, sets `tasks.max`, resumes and times to consumer lag 0.
A warm-up pass per variant comes first (the worker's JIT; the figures are from the runs after
it). After the 1-task runs the live views of `lww` and `jdbc` (gate) must be equal row for row
(the benchmark fails otherwise: a fast wrong sink is no result).

CPU per event is read from /proc for the Connect worker(s) and for every PostgreSQL process.
Writes docs/benchmarks.md (section "sink-writers") and docs/benchmarks/sink-writers.png.

    CDC_BENCH_EVENTS=1000000 python -m pytest tests/performance/test_sink_writers.py \\
        -m performance -s

Knobs: CDC_BENCH_TASKS (default "1,2,4"), CDC_BENCH_WRITERS (default "lww,gate,plain"),
CDC_BENCH_SCALE (the writers run with more than 1 task; default "lww,gate"), CDC_BENCH_WARMUP
(0: no warm-up drain), CDC_BENCH_BATCH (batch.size and max.poll.records of every variant;
default as rendered).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from cassandra.cluster import Session
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from controlplane.adapters import postgres
from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import cql, local_stack, stack  # noqa: F401  # fixtures
from tests.e2e.semconf import deploy
from tests.performance.report import DOC, machine, plot, write_section
from tests.stackfixture import connect_http, kafka_config

pytestmark = pytest.mark.performance

N = int(os.environ.get("CDC_BENCH_EVENTS", "1000000"))
TASKS = [int(t) for t in os.environ.get("CDC_BENCH_TASKS", "1,2,4").split(",") if t]
WRITERS = [w for w in os.environ.get("CDC_BENCH_WRITERS", "lww,gate,plain").split(",") if w]
BATCH = os.environ.get("CDC_BENCH_BATCH", "")
#: the writers also run with more than one task (the others only with 1: the reference points)
SCALED = [w for w in os.environ.get("CDC_BENCH_SCALE", "lww,gate").split(",") if w]
#: a warm-up drain per variant before the timed ones (0: none; over 1M events the JIT's share
#: is small)
WARMUP = os.environ.get("CDC_BENCH_WARMUP", "1") != "0"
PARTITIONS = 4
KEYS = 100_000
FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "transforms/src/test/resources/events/real_update_one_column.json"
)
TABLE = "(pk int, ck int, a text, b bigint, c uuid, PRIMARY KEY (pk, ck)) WITH cdc = true"
SHARED_KS = "snk_bench"
TOPIC = f"demo.{SHARED_KS}.rows"


@dataclass(frozen=True)
class Variant:
    """One sink under test: its pipeline (keyspace, PostgreSQL schema) and manifest writer."""

    key: str
    label: str
    keyspace: str
    writer: str
    gate: bool = True

    @property
    def pipeline(self) -> str:
        return self.keyspace.replace("_", "-")

    @property
    def connector(self) -> str:
        return f"{self.pipeline}-jdbc-sink"

    @property
    def schema(self) -> str:
        return f"{self.keyspace}_cdc"


VARIANTS = {
    v.key: v
    for v in (
        Variant("lww", "own sink (COPY + set-based LWW merge)", "snk_lww", "lww"),
        Variant("gate", "stock JDBC sink + LWW gate trigger", "snk_gate", "jdbc"),
        Variant("plain", "stock JDBC sink, gate off (plain upsert)", "snk_plain", "jdbc", False),
    )
}


@dataclass
class Run:
    """One connector draining the topic: overall and steady-state rate, CPU per event."""

    rate: float  # events/s from resume to consumer lag 0 (task start included)
    steady: float  # events/s while the lag fell from 80 % to 20 % of the events
    connect_us: float  # Connect worker CPU per event, µs
    postgres_us: float  # PostgreSQL CPU (all its processes) per event, µs


def events(n: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs of the agent's JSON with schemas, generated as they are produced."""
    doc = json.loads(FIXTURE.read_text())
    key_schema = json.dumps(doc["key"]["schema"], separators=(",", ":"))
    val_schema = json.dumps(doc["value"]["schema"], separators=(",", ":"))
    base = doc["value"]["payload"]
    base["source"]["keyspace"] = SHARED_KS
    rnd = random.Random(7)
    ts0 = 1_800_000_000_000_000

    def cell(v: object, deleted: int | None = None) -> dict[str, object]:
        return {"value": v, "deletion_ts": deleted, "set": True}

    for i in range(n):
        key_no = rnd.randrange(KEYS)
        pk, ck = key_no // 5, key_no % 5
        r = rnd.random()
        op = "u" if r < 0.7 else ("i" if r < 0.9 else "d")
        p = copy.deepcopy(base)
        ts = ts0 + i * 10 + rnd.randrange(-5000, 5000)
        p["op"] = op
        p["source"]["ts_us"] = ts
        after = p["after"]
        after["pk"]["value"], after["ck"]["value"] = pk, ck
        if op == "i":
            after["a"], after["b"] = cell(f"a{i}"), cell(i)
            after["c"] = cell(f"00000000-0000-0000-0000-{i:012d}")
        elif op == "u":
            after["a"] = cell(f"u{i}")
            after["b"] = cell(i) if rnd.random() < 0.5 else None
            after["c"] = None
        else:
            after["a"], after["b"], after["c"] = cell(None, ts), cell(None, ts), cell(None, ts)
        key = f'{{"schema":{key_schema},"payload":{{"pk":{pk},"ck":{ck}}}}}'
        value = f'{{"schema":{val_schema},"payload":{json.dumps(p, separators=(",", ":"))}}}'
        yield key.encode(), value.encode()


def fill_topic(endpoints: Endpoints) -> float:
    """(Re)create TOPIC with PARTITIONS partitions and produce N events into it; seconds taken."""
    admin = AdminClient(kafka_config(endpoints))
    if TOPIC in admin.list_topics(timeout=10).topics:
        for fut in admin.delete_topics([TOPIC], operation_timeout=60).values():
            fut.result()
        wait_for(lambda: TOPIC not in admin.list_topics(timeout=10).topics, 60, "topic deleted")
    for fut in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
        fut.result()
    producer = Producer(
        kafka_config(
            endpoints,
            **{
                "linger.ms": 50,
                "batch.size": 1 << 20,
                "compression.type": "lz4",
                "queue.buffering.max.kbytes": 1 << 20,
            },
        )
    )
    t0 = time.monotonic()
    for key, value in events(N):
        while True:
            try:
                producer.produce(TOPIC, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(300) == 0
    return time.monotonic() - t0


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.5)


def lag(endpoints: Endpoints, group: str) -> int:
    """Events of TOPIC not yet committed by `group`, over every partition."""
    consumer = Consumer(kafka_config(endpoints, **{"group.id": group}))
    try:
        parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        total = 0
        for tp in consumer.committed(parts, timeout=10):
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            total += int(high - tp.offset) if tp.offset >= 0 else int(high)
        return total
    finally:
        consumer.close()


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def stack_cpu(stack_root: Path) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of this stack's Connect worker(s) and PostgreSQL processes (the
    postmaster started from its state dir and every child), by pid; other stacks on the machine
    are left out."""
    connect, pg = [], []
    root = str(stack_root)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or ())
        if root not in cmd:
            continue
        if "ConnectDistributed" in cmd:
            connect.append(proc.info["pid"])
        elif Path(proc.info["cmdline"][0]).name == "postgres":
            with contextlib.suppress(psutil.Error):
                pg = [proc.pid, *(c.pid for c in proc.children(recursive=True))]
    assert connect, f"no Connect worker of {root} found"
    assert pg, f"no PostgreSQL of {root} found"
    return cpu_seconds(connect), cpu_seconds(pg)


def used(before: dict[int, float], after: dict[int, float]) -> float:
    # a sink's PostgreSQL backend starts with its task: absent before, counted from zero
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


class Bench:
    """The shared topic, the three connectors on it, and one timed drain at a time."""

    def __init__(self, endpoints: Endpoints, stack_root: Path) -> None:
        self.endpoints = endpoints
        self.root = stack_root
        self.http = connect_http(endpoints, timeout=60)

    def state(self, name: str) -> str:
        return str(self.http.get(f"/connectors/{name}/status").json()["connector"]["state"])

    def point_at_shared_topic(self, v: Variant) -> str:
        """Stop `v`'s connector and make it read TOPIC (its routers map it to its own tables)."""
        self.stop(v)
        cfg = self.http.get(f"/connectors/{v.connector}/config").json()
        cfg["topics"] = TOPIC
        for k in ("transforms.rowTable.regex", "transforms.tombstoneTable.regex"):
            cfg[k] = cfg[k].replace(v.keyspace, SHARED_KS)
        # the transform's token spec names the table by the topic's keyspace (decision 0154)
        token_tables = "transforms.cassandraToRow.token.tables"
        if token_tables in cfg:
            cfg[token_tables] = cfg[token_tables].replace(f"{v.keyspace}.", f"{SHARED_KS}.")
            prefix = "transforms.cassandraToRow.token.table."
            spec = cfg.pop(f"{prefix}{v.keyspace}.rows")
            cfg[f"{prefix}{SHARED_KS}.rows"] = spec
        if BATCH:
            cfg["batch.size"] = cfg["consumer.override.max.poll.records"] = BATCH
        self.http.put(f"/connectors/{v.connector}/config", json=cfg).raise_for_status()
        self.stop(v)
        return str(cfg.get("batch.size", "?"))

    def stop(self, v: Variant) -> None:
        self.http.put(f"/connectors/{v.connector}/stop").raise_for_status()
        wait_for(lambda: self.state(v.connector) == "STOPPED", 120, f"{v.connector} STOPPED")

    def reset(self, v: Variant, dsn: str, tasks: int) -> None:
        """Offsets to the start, tables empty, `tasks` tasks; the connector stays STOPPED."""
        self.stop(v)
        self.http.delete(f"/connectors/{v.connector}/offsets").raise_for_status()
        cfg = self.http.get(f"/connectors/{v.connector}/config").json()
        if cfg.get("tasks.max") != str(tasks):
            cfg["tasks.max"] = str(tasks)
            self.http.put(f"/connectors/{v.connector}/config", json=cfg).raise_for_status()
            self.stop(v)
        postgres.execute(dsn, [f'TRUNCATE "{v.schema}"."rows", "{v.schema}"."rows__tombstones"'])
        wait_for(lambda: lag(self.endpoints, f"connect-{v.connector}") == N, 60, "offsets reset")

    def drain(self, v: Variant) -> Run:
        group = f"connect-{v.connector}"
        c0, p0 = stack_cpu(self.root)
        self.http.put(f"/connectors/{v.connector}/resume").raise_for_status()
        t0 = time.monotonic()
        samples: list[tuple[float, int]] = []
        while True:
            remaining = lag(self.endpoints, group)
            samples.append((time.monotonic() - t0, remaining))
            if remaining == 0:
                break
            status = self.http.get(f"/connectors/{v.connector}/status").json()
            failed = [t for t in status["tasks"] if t["state"] == "FAILED"]
            assert not failed, failed[0].get("trace", "")[:2000]
            assert time.monotonic() - t0 < 3600, f"{v.connector}: still {remaining} behind"
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        c1, p1 = stack_cpu(self.root)  # before the stop: the sink's backends are still there
        self.stop(v)
        a = next(s for s in samples if s[1] <= 0.8 * N)
        b = next(s for s in samples if s[1] <= 0.2 * N)
        steady = (a[1] - b[1]) / (b[0] - a[0]) if b[0] > a[0] else float("nan")
        return Run(N / elapsed, steady, used(c0, c1) / N * 1e6, used(p0, p1) / N * 1e6)


def _rate(results: dict[tuple[str, int], Run], writer: str, tasks: int) -> float:
    run = results.get((writer, tasks))
    return run.rate if run else 0.0


def live_rows(dsn: str, keyspace: str) -> list[tuple[Any, ...]]:
    """The live view (schema = the keyspace) in key order."""
    query = f'SELECT pk, ck, a, b, c FROM "{keyspace}"."rows" ORDER BY 1, 2'
    return [tuple(r) for r in postgres.query(dsn, query)]


def test_sink_writers(
    cql: Session,  # noqa: F811  # the e2e fixtures imported above
    local_stack: LocalStack,  # noqa: F811
    stack: Endpoints,  # noqa: F811
    tmp_path: Path,
) -> None:
    dsn = stack.postgres_dsn
    chosen = [VARIANTS[w] for w in WRITERS]
    for v in chosen:
        deploy(
            cql,
            local_stack,
            dsn,
            tmp_path,
            name=v.pipeline,
            keyspace=v.keyspace,
            tables={"rows": f"CREATE TABLE {v.keyspace}.rows {TABLE}"},
            writer=v.writer,
        )
        # nothing is written in Cassandra: drop the keyspace so agent restarts skip it
        cql.execute(f"DROP KEYSPACE {v.keyspace}")
        if not v.gate:
            postgres.execute(dsn, [f'ALTER TABLE "{v.schema}"."rows" DISABLE TRIGGER "cdc_lww"'])
    bench = Bench(stack, local_stack.lay.root)
    batch = {v.key: bench.point_at_shared_topic(v) for v in chosen}
    fill_s = fill_topic(stack)

    for v in chosen if WARMUP else []:  # warm-up: the worker's JIT, PostgreSQL's caches
        bench.reset(v, dsn, 1)
        warm = bench.drain(v)
        print(f"warm-up {v.key}: {warm.rate:,.0f}/s")

    results: dict[tuple[str, int], Run] = {}
    try:
        measure(bench, chosen, dsn, results)
    finally:
        bench.http.close()
    report(chosen, results, batch, fill_s)


def measure(
    bench: Bench, chosen: list[Variant], dsn: str, results: dict[tuple[str, int], Run]
) -> None:
    for tasks in TASKS:
        for v in chosen:
            if tasks > 1 and v.key not in SCALED:
                continue
            bench.reset(v, dsn, tasks)
            results[v.key, tasks] = r = bench.drain(v)
            print(f"{v.key} x{tasks}: {r}")
        if {"lww", "gate"} <= set(WRITERS):
            lww_rows, gate_rows = live_rows(dsn, "snk_lww"), live_rows(dsn, "snk_gate")
            assert lww_rows, "no live row at all"
            assert lww_rows == gate_rows, (
                f"{tasks} task(s): lww and gate differ ({len(lww_rows)} vs {len(gate_rows)} rows)"
            )
            for ks in ("snk_lww", "snk_gate"):  # the token is part of the measured work (0154)
                query = f'SELECT count(*) FROM "{ks}_cdc"."rows" WHERE "_cdc_token" IS NULL'
                assert postgres.query(dsn, query) == [(0,)], f"{ks}: rows without a token"


def report(
    chosen: list[Variant], results: dict[tuple[str, int], Run], batch: dict[str, str], fill: float
) -> None:
    png = DOC.parent / "benchmarks" / "sink-writers.png"
    plot(
        png,
        {
            v.label: ([float(t) for t in TASKS], [_rate(results, v.key, t) for t in TASKS])
            for v in chosen
        },
        title=f"Sink throughput, {N:,} events, 4 partitions",
        xlabel="sink tasks",
        ylabel="events/s (resume to lag 0)",
        kind="bar",
    )

    def ratio(a: str, b: str, tasks: int) -> str:
        if (a, tasks) not in results or (b, tasks) not in results:
            return "n/a"
        return f"{results[a, tasks].rate / results[b, tasks].rate:.2f}"

    plain_1 = results.get(("plain", 1))

    rows = "\n".join(
        f"| {v.label} | {t} | {r.rate:,.0f} | {r.steady:,.0f} | {r.connect_us:.0f} | "
        f"{r.postgres_us:.0f} |"
        for t in TASKS
        for v in chosen
        if (r := results.get((v.key, t))) is not None
    )
    ratios = "\n".join(
        f"| {t} | {ratio('lww', 'gate', t)} | "
        + (
            f"{results['lww', t].rate / plain_1.rate:.2f}"
            if plain_1 and ("lww", t) in results
            else "n/a"
        )
        + " |"
        for t in TASKS
    )
    cmd = (
        f"CDC_BENCH_EVENTS={N} python -m pytest tests/performance/test_sink_writers.py "
        "-m performance -s"
    )
    if not WARMUP:
        cmd = f"CDC_BENCH_WARMUP=0 {cmd}"
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    warm = ", after one warm-up pass per variant" if WARMUP else ", no warm-up pass"
    write_section(
        "sink-writers",
        f"""## Sink writers: own LWW sink vs stock JDBC sink (issue 15)

Command: `{cmd}`
{N:,} events in the captured agent shape (JsonConverter with schemas; 70 % one/two-column
updates, 20 % inserts, 10 % row deletes over {KEYS:,} keys, reordered write times) in one topic
with {PARTITIONS} partitions (filled in {fill:.0f} s), drained by each variant in turn from
offset 0 into empty tables, timed from resume to consumer lag 0 (task start included){warm}.
"Steady" is the rate while the lag fell from 80 % to 20 %. CPU per
event from /proc: the Connect worker and every PostgreSQL process over the whole run. Batch
size per variant: {", ".join(f"{k} {b}" for k, b in batch.items())}. The own sink's and the
gate's live views were compared after every task count: equal row for row.
Machine: {machine()}; load average at the end {load} (the single-node stack: Kafka, Connect,
PostgreSQL, Cassandra and the agent on the same 2 cores).

| variant | tasks | events/s | steady events/s | Connect CPU µs/event | PostgreSQL CPU µs/event |
|---|---|---|---|---|---|
{rows}

| tasks | own / stock + gate, same tasks (bar 2.0) | own / stock, no gate, 1 task (bar 1.0) |
|---|---|---|
{ratios}

![sink throughput by tasks](benchmarks/{png.name})
""",
    )

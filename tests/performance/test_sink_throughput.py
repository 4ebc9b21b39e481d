"""Sink throughput with the LWW gate vs a plain unconditional upsert, one sink task each.

A topic is pre-filled with N (default 1,000,000) events in the exact shape the real agent
produces (JsonConverter with schemas, taken from the captured fixture `real_update_one_column`
of table (pk int, ck int, a text, b bigint, c uuid)): 70 % updates of one or two columns, 20 %
inserts, 10 % row deletes, over 100,000 keys, write times increasing with jitter (reordering).
Two sink connectors with the same transform read it one after the other: `sem-bench` into the
gated raw table, `sem-bench-plain` into a copy whose gate trigger is disabled (what the stock
sink does: INSERT ... ON CONFLICT DO UPDATE, unconditional). Each is timed from resume to
consumer lag 0. Writes docs/benchmarks.md, section "Sink throughput".

    CDC_BENCH_EVENTS=1000000 python -m pytest tests/performance/test_sink_throughput.py \\
        -m performance -s
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from pathlib import Path

import httpx
import pytest
from cassandra.cluster import Session
from confluent_kafka import Producer

from controlplane.adapters import postgres
from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import cql, local_stack, stack  # noqa: F401  # fixtures
from tests.e2e.semconf import deploy
from tests.e2e.test_torture import lag
from tests.performance.report import machine, write_section

pytestmark = pytest.mark.performance

N = int(os.environ.get("CDC_BENCH_EVENTS", "1000000"))
FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "transforms/src/test/resources/events/real_update_one_column.json"
)
TABLE = "(pk int, ck int, a text, b bigint, c uuid, PRIMARY KEY (pk, ck)) WITH cdc = true"
CONNECT = "http://127.0.0.1:8083"


def events(n: int, topic_ks: str) -> tuple[list[bytes], list[bytes]]:
    doc = json.loads(FIXTURE.read_text())
    key_schema = json.dumps(doc["key"]["schema"], separators=(",", ":"))
    val_schema = json.dumps(doc["value"]["schema"], separators=(",", ":"))
    base = doc["value"]["payload"]
    base["source"]["keyspace"] = topic_ks
    rnd = random.Random(7)
    keys, values = [], []
    ts0 = 1_800_000_000_000_000
    for i in range(n):
        pk, ck = rnd.randrange(20000), rnd.randrange(5)
        r = rnd.random()
        op = "u" if r < 0.7 else ("i" if r < 0.9 else "d")
        p = copy.deepcopy(base)
        ts = ts0 + i * 10 + rnd.randrange(-5000, 5000)
        p["op"] = op
        p["source"]["ts_us"] = ts
        after = p["after"]
        after["pk"]["value"], after["ck"]["value"] = pk, ck

        def cell(v: object, deleted: int | None = None) -> dict[str, object]:
            return {"value": v, "deletion_ts": deleted, "set": True}

        if op == "i":
            after["a"], after["b"] = cell(f"a{i}"), cell(i)
            after["c"] = cell(f"00000000-0000-0000-0000-{i:012d}")
        elif op == "u":
            after["a"] = cell(f"u{i}")
            after["b"] = cell(i) if rnd.random() < 0.5 else None
            after["c"] = None
        else:
            after["a"], after["b"], after["c"] = cell(None, ts), cell(None, ts), cell(None, ts)
        keys.append((f'{{"schema":{key_schema},"payload":{{"pk":{pk},"ck":{ck}}}}}').encode())
        values.append(
            f'{{"schema":{val_schema},"payload":{json.dumps(p, separators=(",", ":"))}}}'.encode()
        )
    return keys, values


def wait_state(name: str, state: str) -> None:
    for _ in range(120):
        s = httpx.get(f"{CONNECT}/connectors/{name}/status", timeout=10).json()
        if s["connector"]["state"] == state:
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} not {state}")


def run(name: str, topic: str, n: int) -> float:
    group = f"connect-{name}"
    httpx.put(f"{CONNECT}/connectors/{name}/resume", timeout=30).raise_for_status()
    t0 = time.monotonic()
    while True:
        remaining = lag(group, topic)
        if remaining == 0:
            break
        status = httpx.get(f"{CONNECT}/connectors/{name}/status", timeout=10).json()
        assert all(t["state"] == "RUNNING" for t in status["tasks"]), status
        time.sleep(1)
    elapsed = time.monotonic() - t0
    httpx.put(f"{CONNECT}/connectors/{name}/stop", timeout=30)
    return n / elapsed


def test_sink_throughput_gate_vs_plain_upsert(
    cql: Session,  # noqa: F811  # the e2e fixtures imported above
    local_stack: LocalStack,  # noqa: F811
    stack: Endpoints,  # noqa: F811
    tmp_path: Path,
) -> None:
    dsn = stack.postgres_dsn
    deploy(
        cql,
        local_stack,
        dsn,
        tmp_path,
        name="sem-bench",
        keyspace="sem_bench",
        tables={"rows": f"CREATE TABLE sem_bench.rows {TABLE}"},
    )
    deploy(
        cql,
        local_stack,
        dsn,
        tmp_path,
        name="sem-bench-plain",
        keyspace="sem_bench_plain",
        tables={"rows": f"CREATE TABLE sem_bench_plain.rows {TABLE}"},
    )
    # nothing will be written in Cassandra: drop the tables so agent restarts skip them
    cql.execute("DROP KEYSPACE sem_bench")
    cql.execute("DROP KEYSPACE sem_bench_plain")
    postgres.execute(dsn, ['ALTER TABLE "sem_bench_plain_cdc"."rows" DISABLE TRIGGER "cdc_lww"'])
    topic = "demo.sem_bench.rows"
    plain = "sem-bench-plain-jdbc-sink"
    cfg = httpx.get(f"{CONNECT}/connectors/{plain}/config", timeout=10).json()
    cfg["topics"] = topic
    for k in ("transforms.rowTable.regex", "transforms.tombstoneTable.regex"):
        cfg[k] = cfg[k].replace("sem_bench_plain", "sem_bench")
    httpx.put(f"{CONNECT}/connectors/{plain}/config", json=cfg, timeout=30).raise_for_status()
    for name in ("sem-bench-jdbc-sink", plain):
        httpx.put(f"{CONNECT}/connectors/{name}/stop", timeout=30).raise_for_status()
        wait_state(name, "STOPPED")

    t0 = time.monotonic()
    keys, values = events(N, "sem_bench")
    producer = Producer(
        {
            "bootstrap.servers": "127.0.0.1:9092",
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 1 << 20,
        }
    )
    for k, v in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, key=k, value=v)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    del keys, values
    fill_s = time.monotonic() - t0

    gated = run("sem-bench-jdbc-sink", topic, N)
    plain_rate = run(plain, topic, N)
    ratio = gated / plain_rate
    rows = postgres.query(dsn, 'SELECT count(*) FROM "sem_bench_cdc"."rows"')[0][0]
    print(f"gate {gated:,.0f}/s plain {plain_rate:,.0f}/s ratio {ratio:.2f} rows {rows}")
    cmd = (
        f"CDC_BENCH_EVENTS={N} python -m pytest tests/performance/test_sink_throughput.py "
        "-m performance -s"
    )
    verdict = (
        "met"
        if gated >= 10000 and ratio >= 0.7
        else "NOT met: see docs/decisions/0040-sink-throughput.md"
    )
    write_section(
        "sink-throughput",
        f"""## Sink throughput

Command: `{cmd}`
on the shared local stack (Kafka, Connect, PostgreSQL, Cassandra on the same machine; other
sessions' pipelines may have run meanwhile). {N:,} events in the captured agent shape
(JsonConverter with schemas, ~4.5 KB each; 70 % one/two-column updates, 20 % inserts, 10 % row
deletes over 100,000 keys, reordered write times) pre-filled in one topic partition (filled in
{fill_s:.0f} s); one sink task each (stock Debezium JDBC sink 3.6.0 + CassandraToRow, batch.size
as rendered), timed from resume to consumer lag 0, one after the other.
Machine: {machine()}.

| variant | events/s per task |
|---|---|
| JDBC sink + transform + LWW gate trigger | {gated:,.0f} |
| same sink + transform, gate trigger disabled (plain unconditional upsert) | {plain_rate:,.0f} |
| ratio gate / plain | {ratio:.2f} |

Bar: >= 10,000 events/s per task and ratio >= 0.7
({verdict}).
""",
    )

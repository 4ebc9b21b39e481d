"""Verify throughput against a raw token-range full scan, and verify's peak memory at two
table sizes (it must not grow with the table). Writes the "verify" section of
docs/benchmarks.md.

    python -m pytest tests/performance/test_verify_benchmark.py -m performance -s
    VF_BENCH_SIZES=1000000,4000000 (default) — rows of the two measurements

Loading: Cassandra with unlogged batches through execute_concurrent; PostgreSQL with COPY
straight into the raw table with the gate's state columns filled as the gate would fill them
(trigger disabled only for the load), so the live view shows exactly the Cassandra rows; then
VACUUM (ANALYZE), the state autovacuum keeps a long-written table in.

Settling: after each load Cassandra's memtables are flushed and the table compacted
(``nodetool flush`` and ``nodetool compact``, both waited for), and the node's flush and
compaction pools must be idle, before the raw scan and verify are measured, so neither of the
two measurements pays for the bulk load's background work (decision 0142).
"""

from __future__ import annotations

import decimal
import json
import os
import re
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType

from controlplane.adapters import nodetool, postgres
from controlplane.core.ddl import generate_ddl
from controlplane.core.schema_model import Column, TableModel
from controlplane.core.stack_model import nodetool_command, nodetool_login
from controlplane.core.token_ranges import tokenizer
from controlplane.services.stack import LocalStack, settings_for
from tests.integration.verify_support import pg_password, running_stack
from tests.manifests import local_pipeline
from tests.performance.report import machine, write_section
from tests.stackfixture import cql_cluster

pytestmark = pytest.mark.performance

KS = "vf_bench"
TABLE = "rows"
TS = 1_700_000_000_000_000
SIZES = [int(x) for x in os.environ.get("VF_BENCH_SIZES", "1000000,4000000").split(",")]


def model(table: str = TABLE) -> TableModel:
    return TableModel(
        keyspace=KS,
        table=table,
        columns=(
            Column(name="id", cql_type="bigint", kind="partition_key", position=0),
            Column(name="name", cql_type="text", kind="regular"),
            Column(name="qty", cql_type="bigint", kind="regular"),
            Column(name="price", cql_type="decimal", kind="regular"),
        ),
    )


MANIFEST = local_pipeline("vf-bench", KS, [TABLE])

# The raw scan: the same driver settings as verify (protocol 5, tuple rows, fetch size 1000,
# LOCAL_QUORUM, same ranges from the same split, same number of worker threads).
RAW_SCAN = textwrap.dedent(
    """
    import json, os, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from controlplane.adapters import cassandra
    from controlplane.core.token_ranges import default_range_count, split_ring
    from controlplane.services.stack import LocalStack, settings_for
    ep = LocalStack(settings_for()).endpoints()  # CDC_STACK_DIR's stack: TLS and cdcctl's role
    cluster, session = cassandra.scan_session(
        ep.cassandra_host, ep.cassandra_port, security=ep.cassandra_security
    )
    ranges = split_ring(default_range_count(os.cpu_count() or 1), cassandra.ring_tokens(cluster))
    stmt = cassandra.prepare(session, "SELECT token(id), id, name, qty, price FROM {ks}.{t} "
                             "WHERE token(id) > ? AND token(id) <= ?")
    def scan(r):
        return sum(1 for _ in cassandra.stream(session, stmt, (r.start, r.end), fetch_size=1000))
    t0 = time.monotonic()
    with ThreadPoolExecutor(max(2, 2 * (os.cpu_count() or 1))) as ex:
        rows = sum(ex.map(scan, ranges))
    elapsed = time.monotonic() - t0
    cluster.shutdown()
    print(json.dumps({{"rows": rows, "elapsed_s": elapsed}}))
    """
).format(ks=KS, t=TABLE)


@pytest.fixture(scope="module")
def cql() -> Iterator[Session]:
    cluster = cql_cluster(running_stack())  # TLS and cdcctl's role unless --insecure
    session = cluster.connect()
    yield session
    # the agent snapshots every CDC table on the node: do not leave millions of rows to it
    session.execute(f"DROP KEYSPACE IF EXISTS {KS}", timeout=120)
    cluster.shutdown()


def _create(cql: Session, dsn: str, table: str = TABLE) -> None:
    cql.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute(f"DROP TABLE IF EXISTS {KS}.{table}")
    cql.execute(
        f"CREATE TABLE {KS}.{table} (id bigint PRIMARY KEY, name text, qty bigint, "
        "price decimal) WITH cdc = true"
    )
    postgres.execute(
        dsn,
        [
            f'DROP VIEW IF EXISTS "{KS}"."{table}"',
            f'DROP TABLE IF EXISTS "{KS}_cdc"."{table}" CASCADE',
            f'DROP TABLE IF EXISTS "{KS}_cdc"."{table}__tombstones" CASCADE',
        ],
    )
    postgres.execute(dsn, generate_ddl(model(table)).statements)


def _load(cql: Session, dsn: str, start: int, stop: int, table: str = TABLE) -> float:
    t0 = time.monotonic()
    ins = cql.prepare(
        f"INSERT INTO {KS}.{table} (id, name, qty, price) VALUES (?, ?, ?, ?) USING TIMESTAMP {TS}"
    )
    # unlogged multi-partition batches of 100 through execute_concurrent: ~6x the rows/s of
    # one INSERT per request on this machine (one coordinator, so no extra hops)
    chunk = 20_000
    for lo in range(start, stop, chunk):
        batches = []
        for b_lo in range(lo, min(stop, lo + chunk), 100):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for i in range(b_lo, min(stop, b_lo + 100)):
                batch.add(ins, (i, f"name-{i}", i * 7, decimal.Decimal(i) / 100))
            batches.append((batch, ()))
        for ok, res in execute_concurrent(cql, batches, concurrency=32):
            assert ok, res
    raw = f'"{KS}_cdc"."{table}"'
    cols = (
        "id, name, price, qty, _cdc_writetime, _cdc_op, _cdc_set, _cdc_wt, _cdc_exp, _cdc_live_ts, "
        "_cdc_token"
    )
    # the partition token as the pipeline's transform stores it with each row (decision 0154)
    token = tokenizer(["bigint"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(f'ALTER TABLE {raw} DISABLE TRIGGER "cdc_lww"')
            with conn.cursor().copy(f"COPY {raw} ({cols}) FROM STDIN") as copy:
                for i in range(start, stop):
                    copy.write_row(
                        (
                            i,
                            f"name-{i}",
                            decimal.Decimal(i) / 100,
                            i * 7,
                            TS,
                            "i",
                            '["name","price","qty"]',
                            [TS, TS, TS],
                            [None, None, None],
                            TS,
                            token((i,)),
                        )
                    )
            conn.execute(f'ALTER TABLE {raw} ENABLE TRIGGER "cdc_lww"')
        # as autovacuum leaves a table the pipeline has written for a while: hint bits set and
        # the visibility map built, so the first full read (verify's token pass) does not pay
        # for the bulk load (rewriting every page it reads)
        conn.execute(f"VACUUM (ANALYZE) {raw}")
    return time.monotonic() - t0


def _nodetool(*args: str, timeout: float = 60.0) -> str:
    """nodetool against node 1 of the local stack (CDC_STACK_DIR's), with its JMX login."""
    ctx = LocalStack(settings_for()).ctx
    ctx.resolve_artifacts({"cassandra"})
    argv = nodetool_command(
        ctx.cassandra_java(),
        ctx.lib("cassandra"),
        ctx.s.ports.cassandra_jmx_of(1),
        cassandra_version=ctx.s.cassandra_version,
        login=nodetool_login(ctx.s),
    )
    return nodetool.run([*argv, *args], timeout=timeout)


def _busy_pools(tpstats: str) -> dict[str, int]:
    """Active + pending tasks of the flush and compaction pools in ``nodetool tpstats``."""
    out = {}
    for line in tpstats.splitlines():
        m = re.match(
            r"(CompactionExecutor|MemtableFlushWriter|MemtablePostFlush)\s+(\d+)\s+(\d+)", line
        )
        if m:
            out[m.group(1)] = int(m.group(2)) + int(m.group(3))
    return out


def _settle(table: str = TABLE, timeout_s: float = 900.0, quiet_polls: int = 3) -> float:
    """Cassandra as a table written long ago is: memtables flushed, the table compacted into
    one SSTable, and no flush or compaction running or queued on the node (``quiet_polls``
    consecutive ``tpstats`` a second apart: a flush may queue a compaction just after it).
    The same state before the raw scan and before verify, whatever the load left behind.
    Returns the seconds it took."""
    t0 = time.monotonic()
    _nodetool("flush", KS, table, timeout=timeout_s)
    _nodetool("compact", KS, table, timeout=timeout_s)  # returns when the compaction is done
    quiet = 0
    while quiet < quiet_polls:
        pools = _busy_pools(_nodetool("tpstats"))
        assert "CompactionExecutor" in pools, "nodetool tpstats: no CompactionExecutor line"
        quiet = quiet + 1 if not any(pools.values()) else 0
        assert time.monotonic() - t0 < timeout_s, f"Cassandra still busy: {pools}"
        time.sleep(1)  # the next poll (bounded by the deadline above)
    return time.monotonic() - t0


def _run(cmd: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run a Python child; its JSON output and its peak RSS in MiB (a fresh child each time)."""
    wrapper = textwrap.dedent(
        """
        import resource, runpy, subprocess, sys, json
        p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        err = p.stderr[-2000:]
        print(json.dumps({"rc": p.returncode, "out": p.stdout, "err": err, "rss": rss}))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, check=True
    )
    data = json.loads(res.stdout)
    assert data["rc"] == 0, data["err"]
    return json.loads(data["out"]), float(data["rss"])


def test_verify_throughput_and_memory(cql: Session, tmp_path: Path) -> None:
    endpoints = running_stack()
    dsn = endpoints.postgres_dsn
    env = {**os.environ, "CDC_PG_PASSWORD": pg_password(), "CDC_REDIS_URL": endpoints.redis_url}
    manifest = tmp_path / "bench.yaml"
    manifest.write_text(MANIFEST)
    _create(cql, dsn)
    results: list[dict[str, Any]] = []
    loaded = 0
    for size in SIZES:
        load_s = _load(cql, dsn, loaded, size)
        loaded = size
        settle_s = _settle()
        scan, scan_rss = _run([sys.executable, "-c", RAW_SCAN], env)
        assert scan["rows"] == size
        summary, verify_rss = _run(
            [
                sys.executable,
                "-m",
                "controlplane",
                "verify",
                "-f",
                str(manifest),
                "--lag",
                "0",
                "--no-progress",
                "-o",
                "json",
                "--diff-file",
                str(tmp_path / f"diff-{size}.jsonl"),
            ],
            env,
        )
        assert summary["counters"]["valid"] == size, summary
        scan_rate = scan["rows"] / scan["elapsed_s"]
        results.append(
            {
                "rows": size,
                "load_s": load_s,
                "settle_s": settle_s,
                "scan_s": scan["elapsed_s"],
                "scan_rate": scan_rate,
                "scan_rss": scan_rss,
                "verify_s": summary["elapsed_s"],
                "verify_rate": summary["rows_per_s"],
                "verify_rss": verify_rss,
                "ranges": summary["ranges"],
            }
        )
        print(results[-1])
    lines = [
        "## Verify",
        "",
        "Command: `python -m pytest tests/performance/test_verify_benchmark.py -m performance -s`",
        f"(`VF_BENCH_SIZES={','.join(map(str, SIZES))}`; table `{KS}.{TABLE}`: bigint key, "
        "text, bigint, decimal; one row per partition; the running local stack, single "
        "Cassandra node; default ranges (8 x cores, ring-aligned) and workers (2 x cores) for "
        "both; `cdcctl verify --lag 0`, nothing differs; after each load the table is flushed "
        "and compacted and the node's flush and compaction pools idle before both "
        "measurements, decision 0142). Machine: " + machine() + ".",
        "",
        "| rows | raw token-range scan | verify (incl. the PostgreSQL snapshot) | ratio "
        "| verify peak RSS | raw scan peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['scan_rate']:,.0f} rows/s ({r['scan_s']:.1f} s) "
            f"| {r['verify_rate']:,.0f} rows/s ({r['verify_s']:.1f} s) "
            f"| {r['verify_rate'] / r['scan_rate']:.2f} | {r['verify_rss']:.0f} MiB "
            f"| {r['scan_rss']:.0f} MiB |"
        )
    lines += [
        "",
        "Ratio = verify rows/s / raw scan rows/s. Peak RSS is the child process's "
        "`ru_maxrss`. Load time (Cassandra concurrent inserts + PostgreSQL COPY): "
        + ", ".join(
            f"{r['rows']:,} rows {r['load_s']:.0f} s (settling {r['settle_s']:.0f} s)"
            for r in results
        )
        + f". 1-minute load average at the end: {os.getloadavg()[0]:.1f} (the machine is "
        "shared; compare ratios measured in one run, not absolute rows/s).",
        "",
        "What the ratio means: the raw scan only iterates the driver's rows; verify also "
        "builds the PostgreSQL token snapshot (the live rows with the partition token the "
        "pipeline stored in `_cdc_token`, written in token order and indexed: decisions 0154, "
        "0157; the load stores the token as the transform does), streams it in token order and "
        "compares every row, on "
        "the same 2 cores as Cassandra and PostgreSQL. A row is first compared as the drivers "
        "return it (same types, equal values: one C-level tuple comparison) and canonicalised "
        "only when that says nothing (decision 0133), so the scan phase runs close to the raw "
        "scan; more processes sharing a run "
        "(`--run-id`) on more machines scale it. Peak memory does not grow with the table: a "
        "page per side per worker, not the rows.",
    ]
    write_section("verify", "\n".join(lines))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0

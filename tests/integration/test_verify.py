"""`cdcctl verify` against the real Cassandra, PostgreSQL and Redis of the local stack.

PostgreSQL is filled the way the pipeline fills it — the sink's statement through the LWW gate,
with Cassandra's write timestamps (verify_support.Sim) — so each test controls exactly what
differs. Then PostgreSQL is tampered with, verify must find each kind of difference exactly,
repair it through the gate, and a second verify must be clean."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cassandra.cluster import Session

from controlplane.adapters.redis_store import CheckpointStore
from controlplane.core.token_ranges import partition_token
from controlplane.services import verify as svc
from controlplane.services.stack import Endpoints
from tests.cli import cdcctl as run_cdcctl
from tests.integration.verify_support import (
    KEYSPACE,
    Sim,
    create_tables,
    pg_password,
    row_values,
    running_stack,
    write_manifest,
)
from tests.manifests import local_pipeline
from tests.stackfixture import cql_cluster

pytestmark = pytest.mark.integration

TS0 = 1_700_000_000_000_000


@pytest.fixture(scope="module")
def stack() -> Endpoints:
    return running_stack()


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def env(cql: Session, stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pg_password()
    create_tables(cql, stack.postgres_dsn)
    return {
        "manifest": write_manifest(tmp_path_factory.mktemp("verify")),
        "dsn": stack.postgres_dsn,
        "redis": stack.redis,
    }


def opts(env: dict[str, Any], table: str, tmp_path: Path, **kw: Any) -> svc.VerifyOptions:
    return svc.VerifyOptions(
        manifests=[str(env["manifest"])],
        redis_url=env["redis"],
        table=table,
        ranges=kw.pop("ranges", 16),
        workers=kw.pop("workers", 2),
        lag_s=kw.pop("lag_s", 0.2),
        diff_file=kw.pop("diff_file", tmp_path / f"{table}-{time.monotonic_ns()}.jsonl"),
        **kw,
    )


def cdcctl(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cdcctl(*args, env={"CDC_PG_PASSWORD": pg_password()})


def test_postgres_side_tokens_equal_cassandra_tokens(cql: Session, env: dict[str, Any]) -> None:
    sim = Sim(cql, env["dsn"], "tokens")
    sim.load(300)
    cass = {
        (r.id, r.region): r.t
        for r in cql.execute(f"SELECT token(id, region) AS t, id, region FROM {KEYSPACE}.tokens")
    }
    with psycopg.connect(env["dsn"]) as conn:
        pg = conn.execute(f'SELECT DISTINCT id, region FROM "{KEYSPACE}"."tokens"').fetchall()
    assert len(pg) == len(cass) > 0
    for id_, region in pg:
        assert partition_token(["int", "text"], [id_, region]) == cass[(id_, region)]


def test_token_pass_copies_keys_with_copy_text_special_characters(
    cql: Session, env: dict[str, Any], tmp_path: Path
) -> None:
    """The token pass writes keys as COPY text lines (decision 0141): text keys holding a tab,
    a newline, a carriage return, a backslash, ``\\N`` or ``\\.`` must reach the key table
    as themselves, or the snapshot's join loses their rows (counted missing)."""
    create_tables(cql, env["dsn"], ["oddkeys"])
    sim = Sim(cql, env["dsn"], "oddkeys")
    regions = ["eu\tx", "a\\b", "n\nl", "c\rr", "\\N", "\\.", "zürich ✓", ""]
    rows = [{**row_values(i), "region": regions[i % len(regions)]} for i in range(160)]
    sim.cassandra(rows, TS0)
    with psycopg.connect(env["dsn"], autocommit=True) as conn:
        sim.postgres(conn, rows, TS0)
    manifest = tmp_path / "oddkeys.yaml"  # a pipeline of its own: TABLES' runs stay as they are
    manifest.write_text(local_pipeline("vf-verify-odd", KEYSPACE, ["oddkeys"]))
    summary = svc.run_verify(opts({**env, "manifest": manifest}, "oddkeys", tmp_path))
    assert summary.counters["read"] == summary.counters["valid"] == len(rows)
    assert summary.remaining == 0
    assert summary.status == "PASS"


def test_stored_tokens_are_read_and_only_rows_without_one_take_the_token_pass(
    cql: Session, env: dict[str, Any], tmp_path: Path
) -> None:
    """The writer stores each row's partition token in the raw table's ``_cdc_token``
    (decision 0157): the snapshot reads it, and only rows without one (written before the
    column existed) are tokenised client-side. Half the rows get Cassandra's own tokens;
    differences on both halves are still found exactly."""
    create_tables(cql, env["dsn"], ["stored"])
    n = 240
    sim = Sim(cql, env["dsn"], "stored")
    sim.load(n, TS0)
    raw = f'"{KEYSPACE}_cdc"."stored"'
    key = "id = %s AND region = %s AND c = %s"
    tokens = {
        (r.id, r.region): r.t
        for r in cql.execute(f"SELECT token(id, region) AS t, id, region FROM {KEYSPACE}.stored")
    }
    extra = row_values(100_002)  # even id: stored token
    with psycopg.connect(env["dsn"], autocommit=True) as conn:
        conn.execute(f'ALTER TABLE {raw} ADD COLUMN IF NOT EXISTS "_cdc_token" bigint')
        sim.postgres(conn, [extra], TS0)
        tokens[(extra["id"], extra["region"])] = partition_token(
            ["int", "text"], [extra["id"], extra["region"]]
        )
        with conn.transaction():
            conn.execute(f'ALTER TABLE {raw} DISABLE TRIGGER "cdc_lww"')
            conn.execute(f'UPDATE {raw} SET "_cdc_token" = NULL')
            with conn.cursor() as cur:
                cur.executemany(
                    f'UPDATE {raw} SET "_cdc_token" = %s WHERE id = %s AND region = %s',
                    [(t, i, r) for (i, r), t in tokens.items() if i % 2 == 0],
                )
            for i in (10, 11):  # lost rows, one with a stored token and one without
                v = row_values(i)
                conn.execute(f"DELETE FROM {raw} WHERE {key}", (v["id"], v["region"], v["c"]))
            for i in (20, 21):  # stale values on both halves
                v = row_values(i)
                conn.execute(
                    f"UPDATE {raw} SET name = 'tampered', \"_cdc_wt\"[2] = {TS0 - 1} WHERE {key}",
                    (v["id"], v["region"], v["c"]),
                )
            conn.execute(f'ALTER TABLE {raw} ENABLE TRIGGER "cdc_lww"')
        (unstored,) = conn.execute(
            f'SELECT count(*) FROM {raw} WHERE "_cdc_token" IS NULL'
        ).fetchone() or (0,)
    assert 0 < unstored < n
    manifest = tmp_path / "stored.yaml"
    manifest.write_text(local_pipeline("vf-verify-stored", KEYSPACE, ["stored"]))
    summary = svc.run_verify(opts({**env, "manifest": manifest}, "stored", tmp_path))
    c = summary.counters
    assert (c["read"], c["valid"]) == (n, n - 4)
    assert (c["missing"], c["mismatch"], c["extra"], c["error"]) == (2, 2, 1, 0)
    store = CheckpointStore(env["redis"])
    try:
        meta = store.run(summary.run_id) or {}
    finally:
        store.close()
    # the token pass computed exactly the rows without a stored token
    assert int(meta["tokens:stored"]) == unstored


def test_finds_each_kind_exactly_then_repairs_through_the_gate(
    cql: Session, env: dict[str, Any], tmp_path: Path
) -> None:
    n = 300
    sim = Sim(cql, env["dsn"], "kinds")
    sim.load(n, TS0)
    raw = f'"{KEYSPACE}_cdc"."kinds"'
    gone, stale, deleted = row_values(10), row_values(20), row_values(30)
    extra, tomb = row_values(100_000), row_values(100_001)
    # deleted in both (Cassandra and, via the gate, PostgreSQL): must count as absent
    cql.execute(
        f"DELETE FROM {KEYSPACE}.kinds USING TIMESTAMP {TS0 + 5} "
        "WHERE id = %s AND region = %s AND c = %s",
        (deleted["id"], deleted["region"], deleted["c"]),
    )
    with psycopg.connect(env["dsn"], autocommit=True) as conn:
        key = "id = %s AND region = %s AND c = %s"
        # 1. a lost row: the raw row is gone (DELETE bypasses the gate's INSERT/UPDATE trigger)
        conn.execute(f"DELETE FROM {raw} WHERE {key}", (gone["id"], gone["region"], gone["c"]))
        # 2. a stale value: PostgreSQL holds an older name (as if an update had been lost)
        with conn.transaction():
            conn.execute(f'ALTER TABLE {raw} DISABLE TRIGGER "cdc_lww"')
            conn.execute(
                f"UPDATE {raw} SET name = 'tampered', \"_cdc_wt\"[2] = {TS0 - 1} WHERE {key}",
                (stale["id"], stale["region"], stale["c"]),
            )
            conn.execute(f'ALTER TABLE {raw} ENABLE TRIGGER "cdc_lww"')
        # 3. an extra row PostgreSQL has and Cassandra never had
        sim.postgres(conn, [extra, tomb], TS0)
        # a row tombstoned in PostgreSQL only (kept in the raw table): absent, not extra
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sim.upsert, sim.event(tomb, TS0 + 1, op="d"))
            cur.execute(sim.upsert, sim.event(deleted, TS0 + 5, op="d"))

    # verify through the CLI, as users run it: exit code 6 and the counters
    diff1 = tmp_path / "first.jsonl"
    manifest = str(env["manifest"])
    common = ["-f", manifest, "--table", "kinds", "--lag", "0.2", "--ranges", "16", "-o", "json"]
    res = cdcctl("verify", *common, "--diff-file", str(diff1))
    assert res.returncode == 6, res.stderr
    first = json.loads(res.stdout)
    c = first["counters"]
    assert (c["read"], c["valid"]) == (n - 1, n - 3)
    assert (c["missing"], c["mismatch"], c["extra"], c["error"]) == (1, 1, 1, 0)
    assert first["status"] == "DIFF"
    records = [json.loads(line) for line in diff1.read_text().splitlines()]
    kinds = {r["kind"]: r for r in records}
    assert sorted(kinds) == ["extra", "mismatch", "missing"]
    assert kinds["missing"]["key"] == {"id": 10, "region": gone["region"], "c": gone["c"]}
    assert kinds["extra"]["key"]["id"] == 100_000
    assert kinds["mismatch"]["columns"] == {
        "name": {"cassandra": "name-20", "postgres": "tampered", "note": None}
    }

    # repair (and delete the extra row): everything corrected through the gate
    fixed = svc.run_verify(opts(env, "kinds", tmp_path, repair=True, delete_extra=True))
    fc = fixed.counters
    assert (fc["missing"], fc["mismatch"], fc["extra"]) == (1, 1, 1)
    assert (fc["corrected_missing"], fc["corrected_mismatch"], fc["deleted_extra"]) == (1, 1, 1)
    assert fixed.status == "PASS"
    assert fixed.remaining == 0
    with psycopg.connect(env["dsn"]) as conn:
        (name,) = conn.execute(
            f'SELECT name FROM "{KEYSPACE}"."kinds" WHERE id = 20 AND region = %s AND c = %s',
            (stale["region"], stale["c"]),
        ).fetchone() or (None,)
        assert name == "name-20"
        # the extra row was tombstoned through the gate, not deleted: still in the raw table
        deleted_at = conn.execute(
            f'SELECT "_cdc_deleted_at" FROM {raw} WHERE id = 100000'
        ).fetchone()
        assert deleted_at is not None
        assert deleted_at[0] is not None

    # Prometheus metrics of this process's runs (served only when asked, nothing pushed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    svc.serve_metrics(port)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'cdc_verify_rows_total{table="vf_verify.kinds"}' in metrics
    assert (
        'cdc_verify_differences_total{kind="corrected_mismatch",table="vf_verify.kinds"}' in metrics
    )
    assert 'cdc_verify_runs_total{result="PASS"}' in metrics

    res = cdcctl("verify", *common, "--diff-file", str(tmp_path / "third.jsonl"))
    assert res.returncode == 0, res.stderr
    third = json.loads(res.stdout)
    assert third["counters"]["valid"] == n - 1
    assert third["remaining_differences"] == 0

    # runs and show
    runs = json.loads(cdcctl("verify", "runs", "-o", "json").stdout)
    assert third["run"] in {r["run"] for r in runs}
    shown = cdcctl("verify", "show", first["run"], "-o", "json")
    assert shown.returncode == 0
    detail = json.loads(shown.stdout)
    assert detail["counters"]["missing"] == 1
    assert {r["status"] for r in detail["range_details"]} <= {"PASS", "DIFF"}


def test_live_writes_do_not_produce_false_differences(
    cql: Session, env: dict[str, Any], tmp_path: Path
) -> None:
    """A writer keeps updating Cassandra while verify runs; the simulated pipeline delivers each
    write to PostgreSQL 1 s later. Verify re-checks differing rows after its lag (2 s), so it
    reports nothing. Every range sees writes in flight and waits out the lag at least once: 8
    workers wait for 8 ranges at a time (with 2, the 32 ranges' waits took ~80 s one after the
    other; decision 0145)."""
    n = 3000
    sim = Sim(cql, env["dsn"], "live")
    sim.load(n, TS0)
    update = cql.prepare(
        f"UPDATE {KEYSPACE}.live USING TIMESTAMP ? SET name = ? "
        "WHERE id = ? AND region = ? AND c = ?"
    )
    inflight: deque[tuple[float, tuple[Any, ...]]] = deque()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        rnd = random.Random(1)
        while not stop.is_set():
            i = rnd.randrange(n + 200)  # updates of existing rows and new rows
            r = row_values(i)
            ts = int(time.time() * 1_000_000)
            name = f"live-{ts}"
            cql.execute(update, (ts, name, r["id"], r["region"], r["c"]))
            event = (
                r["id"],
                r["region"],
                r["c"],
                None,
                name,
                None,
                None,
                None,
                ts,
                "u",
                '["name"]',
                None,
                False,
            )
            inflight.append((time.monotonic() + 1.0, event))
            written[0] += 1
            time.sleep(0.005)

    def pipeline() -> None:
        with psycopg.connect(env["dsn"], autocommit=True) as conn:
            while not stop.is_set() or inflight:
                if inflight and inflight[0][0] <= time.monotonic():
                    _, event = inflight.popleft()
                    conn.execute(sim.upsert, event)
                else:
                    time.sleep(0.01)

    threads = [threading.Thread(target=writer), threading.Thread(target=pipeline)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        summary = svc.run_verify(
            opts(env, "live", tmp_path, lag_s=2.0, rechecks=4, ranges=32, workers=8)
        )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert written[0] > 100
    assert summary.remaining == 0, summary.as_dict()
    assert summary.status == "PASS"
    assert summary.counters["read"] >= n
    assert summary.counters["rechecked"] > 0, "rows in flight were seen and re-checked"
    print(f"\n{written[0]} writes during verify: {summary.counters}")


def test_udt_field_types_come_from_the_schema_tables(cql: Session) -> None:
    """verify compares jsonb UDT values by their declared field types, read at connect time."""
    from controlplane.adapters import cassandra

    cql.execute(
        "CREATE KEYSPACE IF NOT EXISTS vf_udt WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute("DROP TYPE IF EXISTS vf_udt.point")
    cql.execute("CREATE TYPE vf_udt.point (x float, at timestamp, tags frozen<list<blob>>)")
    try:
        assert cassandra.udt_fields(cql, "vf_udt") == {
            "point": {"x": "float", "at": "timestamp", "tags": "frozen<list<blob>>"}
        }
        assert list(cassandra.udt_fields(cql, "vf_udt")["point"]) == ["x", "at", "tags"]
        assert cassandra.udt_fields(cql, "vf_no_such_keyspace") == {}
    finally:
        cql.execute("DROP KEYSPACE vf_udt")

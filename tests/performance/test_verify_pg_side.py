"""Decision 0030: how verify reads PostgreSQL — primary-key lookups per page of Cassandra rows
(CDM's way) or a token-ordered scan through a side table of client-computed partition tokens.

    python -m pytest tests/performance/test_verify_pg_side.py -m performance -s

Both loops run single-threaded over the same ranges and compare every row with the same
canonical comparison; the printed figures are recorded in
docs/decisions/0030-verify-postgres-side.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import Session

from controlplane.adapters import cassandra, postgres
from controlplane.core.token_ranges import partition_token, split_ring
from controlplane.core.verify_compare import merge_groups, token_groups
from controlplane.core.verify_table import Table
from tests.integration.verify_support import pg_password, running_stack
from tests.performance import test_verify_benchmark as bench
from tests.stackfixture import cql_cluster

pytestmark = pytest.mark.performance

ROWS = int(os.environ.get("VF_SIDE_ROWS", "200000"))
SIDE = "side"


@pytest.fixture(scope="module")
def cql() -> Iterator[Session]:
    cluster = cql_cluster(running_stack())  # TLS and cdcctl's role unless --insecure
    session = cluster.connect()
    yield session
    # the agent snapshots every CDC table on the node: do not leave millions of rows to it
    session.execute(f"DROP KEYSPACE IF EXISTS {bench.KS}", timeout=120)
    cluster.shutdown()


def test_pk_lookups_vs_token_side_table(cql: Session) -> None:
    pg_password()
    ep = running_stack()
    dsn = ep.postgres_dsn
    bench._create(cql, dsn, SIDE)
    bench._load(cql, dsn, 0, ROWS, SIDE)
    table = Table(bench.model(SIDE), "decision-0030")
    cluster, session = cassandra.scan_session(
        ep.cassandra_host, ep.cassandra_port, security=ep.cassandra_security
    )
    scan = cassandra.prepare(session, table.cql_scan)
    ranges = split_ring(16, cassandra.ring_tokens(cluster))
    conn = postgres.verify_connect(dsn)
    by_ids = f'SELECT id, name, price, qty FROM "vf_bench"."{SIDE}" WHERE id = ANY(%s)'

    # (A) CDM's way: for each page of Cassandra rows, one PostgreSQL lookup of those keys
    t0 = time.monotonic()
    matched_a = 0
    for r in ranges:
        page: list[tuple[Any, ...]] = []
        rows = cassandra.stream(session, scan, (r.start, r.end), fetch_size=1000)
        for row in [*rows, None]:
            if row is not None:
                page.append(row[1:])
            if len(page) == 1000 or (row is None and page):
                found = {p[0]: p for p in postgres.fetch(conn, by_ids, [[p[0] for p in page]])}
                matched_a += sum(
                    1 for p in page if p[0] in found and not table.diff(p, found[p[0]])
                )
                page = []
    a_s = time.monotonic() - t0

    # (B) token side table: build it (client-side Murmur3 + COPY), then merge token-ordered scans
    t0 = time.monotonic()
    plan = table.token_plan(stored=False)
    postgres.execute(dsn, plan.prepare)
    with postgres.verify_connect(dsn) as src, postgres.connect(dsn) as dst:
        keys = postgres.stream(src, plan.keys, [], itersize=10_000)
        copied = postgres.copy_rows(
            dst, plan.copy, ((*k, partition_token(table.part_types, k)) for k in keys)
        )
    postgres.execute(dsn, plan.build(copied))
    build_s = time.monotonic() - t0
    matched_b = 0
    for r in ranges:
        c_rows = cassandra.stream(session, scan, (r.start, r.end), fetch_size=1000)
        p_rows = postgres.stream(conn, table.pg_range, (r.start, r.end))
        for cg, pg in merge_groups(token_groups(c_rows), token_groups(p_rows)):
            by_key = {p[1]: p[1:] for p in pg}
            matched_b += sum(
                1 for c in cg if c[1] in by_key and not table.diff(c[1:], by_key[c[1]])
            )
    b_s = time.monotonic() - t0
    postgres.execute(dsn, table.pg_token_drop)
    conn.close()
    cluster.shutdown()
    assert matched_a == matched_b == ROWS
    print(
        f"\nrows={ROWS} (A) pk lookups per page: {a_s:.1f} s = {ROWS / a_s:,.0f} rows/s "
        f"(no extra rows found by construction); (B) side table: build {build_s:.1f} s, "
        f"total {b_s:.1f} s = {ROWS / b_s:,.0f} rows/s (extra rows found)"
    )

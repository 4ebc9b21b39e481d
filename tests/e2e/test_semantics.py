"""Cassandra's semantics through the real pipeline: last-write-wins per column on the write
timestamp (USING TIMESTAMP out of order), row/partition/range tombstones that a late older write
cannot get past, a delete winning a timestamp tie, TTL expiry in the live view, static columns.

Each test writes, then writes a *sentinel* row on the same table: every topic has one partition
and the agent emits in commit-log order, so once the sentinel is in PostgreSQL every earlier
event of the table has been applied. Then PostgreSQL's view must equal what Cassandra returns
(after canonicalisation), and where it matters, an exact expected content.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import Session

from controlplane.adapters import postgres
from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy, differences, table_model
from tests.stackfixture import connect_http, ensure_stack, kafka_config

pytestmark = pytest.mark.e2e

KS = "sem_lww"
TABLES = {
    "ev": f"CREATE TABLE {KS}.ev (pk text, ck int, a text, b int, "
    "PRIMARY KEY (pk, ck)) WITH cdc = true",
    # composite partition key, DESC clustering, a static column
    "cp": f"CREATE TABLE {KS}.cp (t text, r int, ck int, c2 text, v text, st text STATIC, "
    "PRIMARY KEY ((t, r), ck, c2)) WITH CLUSTERING ORDER BY (ck DESC, c2 ASC) AND cdc = true",
}
_seq = itertools.count(1)


@pytest.fixture(scope="module")
def lww(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    deploy(
        cql,
        local_stack,
        stack.postgres_dsn,
        tmp_path_factory.mktemp("sem_lww"),
        name="sem-lww",
        keyspace=KS,
        tables=TABLES,
    )
    yield
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")  # later agent restarts need not snapshot it


def settle(cql: Session, dsn: str, table: str) -> None:
    """Write a sentinel and wait until it is in PostgreSQL: everything before it is applied."""
    n = next(_seq)
    if table == "ev":
        cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a) VALUES ('sentinel', 0, %s)", (str(n),))
        sql = f"SELECT a FROM {KS}.ev WHERE pk = 'sentinel' AND ck = 0"
    else:
        cql.execute(
            f"INSERT INTO {KS}.cp (t, r, ck, c2, v) VALUES ('sentinel', 0, 0, '', %s)", (str(n),)
        )
        sql = f"SELECT v FROM {KS}.cp WHERE t = 'sentinel'"
    wait_for(
        f"sentinel {n} on {table}",
        lambda: postgres.query(dsn, sql),
        lambda rows: rows == [(str(n),)],
    )


def view(dsn: str, table: str, where: str, params: list[Any]) -> list[tuple[Any, ...]]:
    cols = "ck, a, b" if table == "ev" else "ck, c2, v"
    return postgres.query(
        dsn,
        f"SELECT {cols} FROM {KS}.{table} WHERE {where} ORDER BY 1, 2",  # test SQL
        params,
    )


def assert_equal_to_cassandra(cql: Session, dsn: str, table: str) -> None:
    diffs = differences(cql, dsn, table_model(cql, KS, table))
    assert diffs == [], "\n".join(diffs)


def test_using_timestamp_out_of_order_last_write_wins_per_column(
    lww: None, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    cql.execute(
        f"INSERT INTO {KS}.ev (pk, ck, a, b) VALUES ('ooo', 1, 'new', 1) USING TIMESTAMP 2000"
    )
    cql.execute(
        f"UPDATE {KS}.ev USING TIMESTAMP 1000 SET a = 'old', b = 2 WHERE pk = 'ooo' AND ck = 1"
    )
    cql.execute(f"UPDATE {KS}.ev USING TIMESTAMP 3000 SET b = 3 WHERE pk = 'ooo' AND ck = 1")
    cql.execute(f"UPDATE {KS}.ev USING TIMESTAMP 2500 SET b = 4 WHERE pk = 'ooo' AND ck = 1")
    settle(cql, dsn, "ev")
    assert view(dsn, "ev", "pk = %s", ["ooo"]) == [(1, "new", 3)]
    assert_equal_to_cassandra(cql, dsn, "ev")


def test_row_delete_is_a_tombstone_a_late_older_write_cannot_resurrect(
    lww: None, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a, b) VALUES ('rd', 1, 'x', 1) USING TIMESTAMP 1000")
    cql.execute(f"DELETE FROM {KS}.ev USING TIMESTAMP 3000 WHERE pk = 'rd' AND ck = 1")
    cql.execute(f"UPDATE {KS}.ev USING TIMESTAMP 2000 SET a = 'late' WHERE pk = 'rd' AND ck = 1")
    settle(cql, dsn, "ev")
    assert view(dsn, "ev", "pk = %s", ["rd"]) == []
    assert_equal_to_cassandra(cql, dsn, "ev")
    # a write newer than the tombstone brings the row back with only the newer cell
    cql.execute(f"UPDATE {KS}.ev USING TIMESTAMP 4000 SET b = 9 WHERE pk = 'rd' AND ck = 1")
    settle(cql, dsn, "ev")
    assert view(dsn, "ev", "pk = %s", ["rd"]) == [(1, None, 9)]
    assert_equal_to_cassandra(cql, dsn, "ev")


def test_cell_delete_and_set_null(lww: None, cql: Session, stack: Endpoints) -> None:
    dsn = stack.postgres_dsn
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a, b) VALUES ('cell', 1, 'x', 1)")
    cql.execute(f"DELETE a FROM {KS}.ev WHERE pk = 'cell' AND ck = 1")
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a, b) VALUES ('cell', 2, 'y', 2)")
    cql.execute(f"UPDATE {KS}.ev SET b = null WHERE pk = 'cell' AND ck = 2")
    # a row created by UPDATE only disappears when its last cell is deleted
    cql.execute(f"UPDATE {KS}.ev SET a = 'u' WHERE pk = 'cell' AND ck = 3")
    cql.execute(f"DELETE a FROM {KS}.ev WHERE pk = 'cell' AND ck = 3")
    settle(cql, dsn, "ev")
    assert view(dsn, "ev", "pk = %s", ["cell"]) == [(1, None, 1), (2, "y", None)]
    assert_equal_to_cassandra(cql, dsn, "ev")


def test_same_timestamp_delete_wins_in_either_order(
    lww: None, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a) VALUES ('tie', 1, 'w') USING TIMESTAMP 5000")
    cql.execute(f"DELETE FROM {KS}.ev USING TIMESTAMP 5000 WHERE pk = 'tie' AND ck = 1")
    cql.execute(f"DELETE FROM {KS}.ev USING TIMESTAMP 6000 WHERE pk = 'tie' AND ck = 2")
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a) VALUES ('tie', 2, 'w') USING TIMESTAMP 6000")
    settle(cql, dsn, "ev")
    assert view(dsn, "ev", "pk = %s", ["tie"]) == []
    assert_equal_to_cassandra(cql, dsn, "ev")


def test_partition_delete_covers_rows_and_late_older_writes(
    lww: None, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    for ck in (1, 2, 3):
        cql.execute(
            f"INSERT INTO {KS}.ev (pk, ck, a) VALUES ('pd', %s, 'x') USING TIMESTAMP 1000", (ck,)
        )
    cql.execute(f"DELETE FROM {KS}.ev USING TIMESTAMP 3000 WHERE pk = 'pd'")
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a) VALUES ('pd', 4, 'late') USING TIMESTAMP 2000")
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a) VALUES ('pd', 5, 'new') USING TIMESTAMP 4000")
    settle(cql, dsn, "ev")
    assert view(dsn, "ev", "pk = %s", ["pd"]) == [(5, "new", None)]
    assert_equal_to_cassandra(cql, dsn, "ev")


def test_range_delete_on_desc_clustering_and_composite_partition_key(
    lww: None, cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    for ck in range(1, 8):
        for c2 in ("a", "b", "c"):
            cql.execute(
                f"INSERT INTO {KS}.cp (t, r, ck, c2, v) VALUES ('acme', 1, %s, %s, 'v') "
                "USING TIMESTAMP 1000",
                (ck, c2),
            )
    cql.execute(f"INSERT INTO {KS}.cp (t, r, ck, c2, v) VALUES ('acme', 2, 3, 'a', 'other')")
    # DESC column: ck in (2, 5]; then within ck = 7, c2 in [a, c)
    cql.execute(
        f"DELETE FROM {KS}.cp USING TIMESTAMP 3000 WHERE t = 'acme' AND r = 1 "
        "AND ck > 2 AND ck <= 5"
    )
    cql.execute(
        f"DELETE FROM {KS}.cp USING TIMESTAMP 3000 WHERE t = 'acme' AND r = 1 AND ck = 7 "
        "AND c2 >= 'a' AND c2 < 'c'"
    )
    # a late older write inside the range stays deleted; a newer one comes back
    cql.execute(
        f"INSERT INTO {KS}.cp (t, r, ck, c2, v) VALUES ('acme', 1, 4, 'a', 'late') "
        "USING TIMESTAMP 2000"
    )
    cql.execute(
        f"INSERT INTO {KS}.cp (t, r, ck, c2, v) VALUES ('acme', 1, 4, 'b', 'newer') "
        "USING TIMESTAMP 4000"
    )
    settle(cql, dsn, "cp")
    got = view(dsn, "cp", "t = %s AND r = %s", ["acme", 1])
    want = sorted(
        [(ck, c2, "v") for ck in (1, 2, 6) for c2 in ("a", "b", "c")]
        + [(7, "c", "v"), (4, "b", "newer")]
    )
    assert got == want
    assert view(dsn, "cp", "t = %s AND r = %s", ["acme", 2]) == [(3, "a", "other")]
    assert_equal_to_cassandra(cql, dsn, "cp")


def test_static_column_is_not_carried(lww: None, cql: Session, stack: Endpoints) -> None:
    """The agent skips static rows: the rest of the row arrives, the static value does not."""
    dsn = stack.postgres_dsn
    cql.execute(f"INSERT INTO {KS}.cp (t, r, ck, c2, v, st) VALUES ('st', 1, 1, 'a', 'v', 's')")
    settle(cql, dsn, "cp")
    assert view(dsn, "cp", "t = %s", ["st"]) == [(1, "a", "v")]
    raw = postgres.query(dsn, f"SELECT st FROM {KS}_cdc.cp WHERE t = 'st'")
    assert raw == [(None,)]


def test_ttl_expiry_is_visible_in_the_view(lww: None, cql: Session, stack: Endpoints) -> None:
    """A TTL'd cell shows until its expiry second, then reads null; a row whose only content
    expired disappears; Cassandra sends no event for either."""
    dsn = stack.postgres_dsn
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a, b) VALUES ('ttl', 1, 'gone', 1) USING TTL 4")
    cql.execute(f"INSERT INTO {KS}.ev (pk, ck, a, b) VALUES ('ttl', 2, 'stays', 2)")
    cql.execute(f"UPDATE {KS}.ev USING TTL 4 SET a = 'brief' WHERE pk = 'ttl' AND ck = 2")
    t0 = time.monotonic()
    settle(cql, dsn, "ev")
    if time.monotonic() - t0 < 3:  # only meaningful while the cells are still live
        assert view(dsn, "ev", "pk = %s", ["ttl"]) == [(1, "gone", 1), (2, "brief", 2)]
    wait_for(
        "TTL expiry in the view",
        lambda: view(dsn, "ev", "pk = %s", ["ttl"]),
        lambda rows: rows == [(2, None, 2)],
        deadline=30,
    )
    assert [tuple(r) for r in cql.execute(f"SELECT ck, a, b FROM {KS}.ev WHERE pk = 'ttl'")] == [
        (2, None, 2)
    ]
    assert_equal_to_cassandra(cql, dsn, "ev")


def test_replaying_the_whole_topic_changes_nothing(
    lww: None, cql: Session, stack: Endpoints
) -> None:
    """Stop the sink, rewind its offsets to 0 through Connect's REST API, resume: every event is
    delivered again and the view is unchanged."""

    dsn = stack.postgres_dsn
    settle(cql, dsn, "ev")
    before = postgres.query(dsn, f"SELECT * FROM {KS}.ev ORDER BY pk, ck")
    versions = f"SELECT pk, ck, xmin::text FROM {KS}_cdc.ev WHERE pk <> 'sentinel' ORDER BY 1, 2"
    raw_before = postgres.query(dsn, versions)
    url = "/connectors/sem-lww-jdbc-sink"
    with connect_http(stack, timeout=60) as http:
        http.put(f"{url}/stop").raise_for_status()
        wait_for(
            "sink stopped",
            lambda: http.get(f"{url}/status").json()["connector"]["state"],
            lambda s: s == "STOPPED",
        )
        http.delete(f"{url}/offsets").raise_for_status()
        http.put(f"{url}/resume").raise_for_status()
    settle(cql, dsn, "ev")
    wait_for(
        "sink consumed the replay",
        lambda: _lag("connect-sem-lww-jdbc-sink", f"demo.{KS}.ev"),
        lambda lag: lag == 0,
    )
    after = postgres.query(dsn, f"SELECT * FROM {KS}.ev ORDER BY pk, ck")
    assert [r for r in after if r[0] != "sentinel"] == [r for r in before if r[0] != "sentinel"]
    # not one new row version: the gate turned every replayed event into a no-op
    assert postgres.query(dsn, versions) == raw_before
    assert_equal_to_cassandra(cql, dsn, "ev")


def _lag(group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(kafka_config(ensure_stack(), **{"group.id": group}))
    try:
        tp = TopicPartition(topic, 0)
        committed = c.committed([tp], timeout=10)[0].offset
        _, high = c.get_watermark_offsets(tp, timeout=10)
        return high - committed if committed >= 0 else high
    finally:
        c.close()

"""The randomized operation mix of the torture test, shared with the chaos suite (tests/chaos):
USING TIMESTAMP out of order with ties, inserts with a frozen collection, partial updates (cell
set/null), TTL, row/cell/range/partition deletes, on a table ``(pk int, ck int, a text, b int,
f frozen<list<int>>)``. One call of :func:`next_op` draws exactly what the torture test always
drew, so its seed keeps meaning the same workload."""

from __future__ import annotations

import random
from typing import Any

BODY = "(pk int, ck int, a text, b int, f frozen<list<int>>, PRIMARY KEY (pk, ck)) WITH cdc = true"
BASE_TS = 1_700_000_000_000_000
"""Write timestamps (µs) are BASE_TS plus one of 200 ms steps: few distinct times, so ties and
disorder between statements are common."""

KINDS = (
    "insert",
    "update_a",
    "update_b_ttl",
    "delete_row",
    "delete_cell",
    "delete_range",
    "delete_partition",
)


def statements(table: str) -> dict[str, str]:
    """CQL of every kind of operation on ``table`` (``ks.t``), parameters as :func:`next_op`
    returns them."""
    return {
        "insert": f"INSERT INTO {table} (pk, ck, a, b, f) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?",
        "update_a": f"UPDATE {table} USING TIMESTAMP ? SET a = ? WHERE pk = ? AND ck = ?",
        "update_b_ttl": (
            f"UPDATE {table} USING TIMESTAMP ? AND TTL ? SET b = ? WHERE pk = ? AND ck = ?"
        ),
        "delete_row": f"DELETE FROM {table} USING TIMESTAMP ? WHERE pk = ? AND ck = ?",
        "delete_cell": f"DELETE f FROM {table} USING TIMESTAMP ? WHERE pk = ? AND ck = ?",
        "delete_partition": f"DELETE FROM {table} USING TIMESTAMP ? WHERE pk = ?",
        "delete_range": (
            f"DELETE FROM {table} USING TIMESTAMP ? WHERE pk = ? AND ck >= ? AND ck < ?"
        ),
    }


def next_op(
    rnd: random.Random, *, partitions: int = 6, rows: int = 8, base_ts: int = BASE_TS
) -> tuple[str, tuple[Any, ...]]:
    """One random operation: its kind (a key of :func:`statements`) and its parameters."""
    ts = base_ts + rnd.randrange(0, 200) * 1000  # few distinct times: ties and disorder
    pk, ck = rnd.randrange(partitions), rnd.randrange(rows)
    r = rnd.random()
    if r < 0.35:
        f = [rnd.randrange(5) for _ in range(rnd.randrange(3))] or None
        return "insert", (pk, ck, f"v{rnd.randrange(50)}", rnd.randrange(100), f, ts)
    if r < 0.55:
        return "update_a", (ts, rnd.choice([None, f"u{rnd.randrange(50)}"]), pk, ck)
    if r < 0.70:
        ttl = rnd.choice([0, 0, 86400])
        return "update_b_ttl", (ts, ttl, rnd.randrange(100), pk, ck)
    if r < 0.80:
        return "delete_row", (ts, pk, ck)
    if r < 0.87:
        return "delete_cell", (ts, pk, ck)
    if r < 0.93:
        lo = rnd.randrange(rows)
        return "delete_range", (ts, pk, lo, lo + rnd.randrange(1, 4))
    return "delete_partition", (ts, pk)

"""A pure-Python reference of the last-write-wins semantics the PostgreSQL gate implements.

It is deliberately *declarative*: the visible state is computed from the set of events, never
from their arrival order, so it is order- and duplicate-independent by construction. Comparing
the gate (which sees events one by one, shuffled and duplicated) against it proves convergence.

Rules (Cassandra's, docs/semantics.md):
- a row's tombstone time is the newest row delete, partition delete or covering range delete;
- a cell takes the newest write newer than that tombstone (a tie goes to the tombstone); between
  writes with the same time: a null (cell tombstone) wins, then a cell with a TTL over one
  without, then the later expiry, then the greater value;
- the row marker is the newest INSERT newer than the tombstone; an INSERT whose every set cell has
  an expiry gives the marker the latest of them;
- a row is visible iff its marker is live or any cell is non-null and not expired; an expired
  cell reads as null;
- a snapshot copy (``snapshot=True``) ranks below every live event (decision 0106): its time is
  when the agent's query ran, not when the value was written, so it must never beat a live write
  that raced the read. Among snapshot copies the later read wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Key = tuple[Any, ...]
_INF = 2**63 - 1
SNAPSHOT_RANK_SHIFT = 2**62
"""Subtracted from a snapshot copy's time: it then ranks below every live write later than about
144,000 BC (2**62 µs before the epoch) and cannot overflow a bigint."""


@dataclass(frozen=True)
class RowEvent:
    """A row record of the row contract: op ``i``/``u``/``d`` on one primary key."""

    key: Key
    op: Literal["i", "u", "d"]
    ts: int
    values: Mapping[str, Any] = field(default_factory=dict)  # the set columns only
    expiry: Mapping[str, int] = field(default_factory=dict)
    snapshot: bool = False

    @property
    def rank_ts(self) -> int:
        """The time the gate compares: a snapshot copy's is shifted below every live event's."""
        return self.ts - SNAPSHOT_RANK_SHIFT if self.snapshot else self.ts


@dataclass(frozen=True)
class Bound:
    """A clustering bound: a prefix of clustering values, inclusive or not."""

    values: tuple[Any, ...]
    inclusive: bool = True


@dataclass(frozen=True)
class TombstoneEvent:
    """A partition delete (``op='p'``) or a range delete (``op='r'`` with bounds)."""

    partition: Key
    ts: int
    op: Literal["p", "r"] = "p"
    start: Bound | None = None
    end: Bound | None = None


Event = RowEvent | TombstoneEvent


def _cmp_prefix(row: Sequence[Any], bound: Sequence[Any], desc: Sequence[bool]) -> int:
    for value, b, d in zip(row, bound, desc, strict=False):
        if value != b:
            less = value < b
            return (1 if less else -1) if d else (-1 if less else 1)
    return 0


def covers(t: TombstoneEvent, clustering: Sequence[Any], desc: Sequence[bool]) -> bool:
    if t.op == "p":
        return True
    if t.start is not None:
        c = _cmp_prefix(clustering, t.start.values, desc)
        if c < 0 or (c == 0 and not t.start.inclusive):
            return False
    if t.end is not None:
        c = _cmp_prefix(clustering, t.end.values, desc)
        if c > 0 or (c == 0 and not t.end.inclusive):
            return False
    return True


def _cell_rank(ts: int, value: Any, exp: int | None) -> tuple[Any, ...]:
    # Tuples compare left to right: time, then null-beats-value, then expiring-beats-not and the
    # later expiry, then value (Cassandra's Cells.resolveRegular).
    return (ts, value is None, -_INF if exp is None else exp, value)


def _row_expiry(e: RowEvent) -> int | None:
    if e.op != "i" or not e.expiry or any(c not in e.expiry for c in e.values):
        return None
    return max(e.expiry.values())


def visible_rows(
    events: Iterable[Event],
    *,
    columns: Sequence[str],
    partition_size: int,
    now_us: int,
    clustering_desc: Sequence[bool] = (),
) -> dict[Key, dict[str, Any]]:
    """What the live view shows: primary key -> {column: value} for every visible row."""
    rows: dict[Key, list[RowEvent]] = {}
    tombs: list[TombstoneEvent] = []
    for e in events:  # a duplicate changes no maximum: no dedupe needed
        if isinstance(e, TombstoneEvent):
            tombs.append(e)
        else:
            rows.setdefault(e.key, []).append(e)
    out: dict[Key, dict[str, Any]] = {}
    for key, evs in rows.items():
        part, ck = key[:partition_size], key[partition_size:]
        deleted = max(
            [e.rank_ts for e in evs if e.op == "d"]
            + [t.ts for t in tombs if t.partition == part and covers(t, ck, clustering_desc)],
            default=None,
        )
        floor = -(2**63) if deleted is None else deleted
        live = [e for e in evs if e.op != "d" and e.rank_ts > floor]
        marker = max(
            (
                (e.rank_ts, _INF if (x := _row_expiry(e)) is None else x)
                for e in live
                if e.op == "i"
            ),
            default=None,
        )
        row: dict[str, Any] = {}
        any_cell = False
        for col in columns:
            cands = [
                _cell_rank(e.rank_ts, e.values[col], e.expiry.get(col))
                for e in live
                if col in e.values
            ]
            value = None
            if cands:
                _, _, exp, v = max(cands)
                if v is not None and (exp == -_INF or exp > now_us):  # -_INF: no TTL
                    value = v
                    any_cell = True
            row[col] = value
        if any_cell or (marker is not None and marker[1] > now_us):
            out[key] = row
    return out

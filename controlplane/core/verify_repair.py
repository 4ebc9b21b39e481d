"""What ``cdcctl verify --repair`` writes (docs/verify.md): sink-shaped events that make
PostgreSQL's raw row converge to Cassandra's through the last-write-wins gate, and the value
conversions between the two drivers' Python values. Pure: the rows are passed in; the service
reads them and executes the sink's statement (``Table.upsert``) with these events."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.core.verify_table import Table


def to_cql(v: Any) -> Any:
    """A psycopg value as a Cassandra driver parameter."""
    if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(v)
    return v


def to_pg(v: Any) -> Any:
    """A Cassandra driver value as a psycopg parameter."""
    if hasattr(v, "days_from_epoch") and hasattr(v, "date"):  # cassandra.util.Date
        return v.date()
    if hasattr(v, "nanosecond_time") and hasattr(v, "time"):  # cassandra.util.Time
        return v.time()
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    if hasattr(v, "nanoseconds") and hasattr(v, "months"):  # cassandra.util.Duration
        return f"{v.months} months {v.days} days {v.nanoseconds // 1000} microseconds"
    return v


def repair_events(
    t: Table,
    pk: Sequence[Any],
    c_row: Sequence[Any] | None,
    raw: Sequence[Any] | None,
    now_us: int,
) -> list[tuple[Any, ...]]:
    """Sink-shaped events (pk, regular values, _cdc_writetime, _cdc_op, _cdc_set, _cdc_expiry,
    _cdc_snapshot) that make the raw row converge to ``c_row`` through the gate.

    ``c_row``: Cassandra's pk + regular values + (WRITETIME, TTL) per regular column, or None
    when Cassandra has no row. ``raw``: the raw PostgreSQL row (pk + regular values, _cdc_wt,
    _cdc_live_ts, _cdc_deleted_at), or None.

    - Each Cassandra cell is written with its own WRITETIME (and expiry from its TTL), one event
      per distinct (write time, expiry) so the gate compares each column on its true time.
    - A cell null in Cassandra but not in PostgreSQL gets a cell tombstone one microsecond newer
      than PostgreSQL's write time of it (Cassandra does not expose a tombstone's time).
    - A row Cassandra has with no non-null cell gets an INSERT (row marker) at ``now_us``.
    - A row Cassandra does not have gets a row tombstone newer than anything PostgreSQL holds.
    """
    n, reg = len(t.pk), t.reg
    events: list[tuple[Any, ...]] = []

    def event(op: str, ts: int, values: Mapping[str, Any], expiry: Mapping[str, int]) -> None:
        events.append(
            (
                *pk,
                *(to_pg(values.get(c)) for c in reg),
                ts,
                op,
                json.dumps(sorted(values)),
                json.dumps(dict(expiry)) if expiry else None,
                False,
            )
        )

    raw_vals = list(raw[n : n + len(reg)]) if raw else [None] * len(reg)
    raw_wt = list(raw[n + len(reg)] or []) if raw else []
    if c_row is None:
        if raw is None:
            return events
        times = [x for x in raw_wt if x is not None] + [x for x in raw[-2:] if x is not None]
        event("d", max(times, default=now_us) + 1, dict.fromkeys(reg), {})
        return events
    groups: dict[tuple[int, int | None], dict[str, Any]] = {}
    expiries: dict[tuple[int, int | None], dict[str, int]] = {}
    for i, col in enumerate(reg):
        value = c_row[n + i]
        wt = c_row[n + len(reg) + 2 * i]
        ttl = c_row[n + len(reg) + 2 * i + 1]
        if value is not None and wt is not None:
            exp = now_us + int(ttl) * 1_000_000 if ttl else None
            groups.setdefault((int(wt), exp), {})[col] = value
            if exp is not None:
                expiries.setdefault((int(wt), exp), {})[col] = exp
        elif value is None and raw_vals[i] is not None:
            ts = (raw_wt[i] if i < len(raw_wt) and raw_wt[i] is not None else now_us) + 1
            groups.setdefault((ts, None), {})[col] = None
    for (ts, _exp), values in sorted(groups.items(), key=lambda kv: kv[0][0]):
        event("u", ts, values, expiries.get((ts, _exp), {}))
    if all(c_row[n + i] is None for i in range(len(reg))):
        event("i", now_us, {}, {})
    return events

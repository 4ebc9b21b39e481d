"""One canonical form per CQL type, so a Cassandra value and its PostgreSQL copy compare equal
exactly when the pipeline copied it faithfully.

Used by ``cdcctl verify`` and by the semantics tests; keep it pure (no I/O, no driver sessions).

Inputs are what the drivers return: the DataStax Python driver for Cassandra
(``datetime`` naive UTC, ``cassandra.util.Date`` / ``Time`` / ``Duration``, ``SortedSet``,
``OrderedMapSerializedKey``, named tuples for UDTs, ``str`` for inet) and psycopg 3 for
PostgreSQL (aware ``datetime``, ``date``, ``time``, ``Decimal``, ``UUID``, ``bytes``,
``ipaddress`` objects, lists for arrays, dicts/lists for jsonb; intervals as
:class:`PgInterval` — psycopg's own ``timedelta`` cannot hold months, see
:func:`parse_pg_interval`).

Canonical values are JSON-serialisable (``None``, ``bool``, ``int``, ``float``, ``str``,
``list``, ``dict``) so differences can be written as JSONL as they are compared.

=================  ===================  ==============================================
CQL                PostgreSQL           canonical form
=================  ===================  ==============================================
ascii/text/varchar text                 ``str``
tinyint..bigint    smallint..bigint     ``int``; counter ``int``
boolean            boolean              ``bool``
float              real                 ``float`` rounded to 32 bits; NaN/Infinity as text
double             double precision     ``float``; NaN/Infinity as text
decimal, varint    numeric              ``str`` of the normalised number (1.0 == 1.00)
uuid, timeuuid     uuid                 lowercase ``str``
timestamp (ms)     timestamptz (µs)     epoch milliseconds ``int``; a PostgreSQL value with
                                        sub-millisecond digits is a mismatch (flagged)
date               date                 ISO ``str`` (days since epoch outside Python's range)
time (ns)          time (µs)            nanoseconds ``int``; Cassandra's sub-µs digits are
                                        truncated by the pipeline: equal, with a note
duration           interval             ``[months, days, nanoseconds]``; sub-µs truncation
                                        noted like ``time``
blob               bytea                lowercase hex ``str``
inet               inet                 compressed address ``str`` (same bytes, same text)
list<T>            array / jsonb        ``list`` in order
set<T>             array / jsonb        ``list`` sorted by canonical JSON
map<K,V>           jsonb / pairs        ``[[k, v], ...]`` sorted by canonical key
tuple, UDT         jsonb / composite    ``list`` / ``dict`` with sorted keys, explicit nulls
=================  ===================  ==============================================

An empty collection is ``None``: Cassandra does not distinguish an empty collection from null.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from controlplane.core.schema_model import (
    CqlCollection,
    CqlCustom,
    CqlScalar,
    CqlTuple,
    CqlType,
    CqlUdt,
    CqlVector,
    parse_cql_type,
)

Canon = None | bool | int | float | str | list[Any] | dict[str, Any]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_US = dt.timedelta(microseconds=1)


class PgInterval(NamedTuple):
    """A PostgreSQL ``interval`` as PostgreSQL stores it: months, days, microseconds."""

    months: int
    days: int
    microseconds: int


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing one column: canonical values of both sides, and why."""

    equal: bool
    cassandra: Canon
    postgres: Canon
    note: str | None = None


# ----------------------------------------------------------------------------- helpers


def _as_type(t: CqlType | str) -> CqlType:
    return parse_cql_type(t) if isinstance(t, str) else t


def canonical_json(value: Canon) -> str:
    """Deterministic JSON text of a canonical value (sorted keys, explicit nulls)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _float(v: Any, bits: int) -> Canon:
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if bits == 32:
        f = struct.unpack("<f", struct.pack("<f", f))[0]
    return f


def _decimal(v: Any) -> str:
    d = v if isinstance(v, decimal.Decimal) else decimal.Decimal(str(v))
    if not d.is_finite():
        return str(d)
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


def _epoch_us(v: dt.datetime) -> int:
    aware = v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
    return (aware - _EPOCH) // _US


def _timestamp_us(v: Any) -> int:
    if isinstance(v, dt.datetime):
        return _epoch_us(v)
    if isinstance(v, int | float):  # the driver returns raw ms when out of datetime's range
        return int(v) * 1000
    raise TypeError(f"not a timestamp: {v!r}")


def _date(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    days = getattr(v, "days_from_epoch", None)  # cassandra.util.Date
    if days is not None:
        try:
            return (_EPOCH_DATE + dt.timedelta(days=int(days))).isoformat()
        except OverflowError:
            return str(int(days))
    if isinstance(v, int):
        return (_EPOCH_DATE + dt.timedelta(days=v)).isoformat()
    return str(v)


def _time_ns(v: Any) -> int:
    ns = getattr(v, "nanosecond_time", None)  # cassandra.util.Time
    if ns is not None:
        return int(ns)
    if isinstance(v, dt.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000_000 + v.microsecond * 1000
    if isinstance(v, dt.timedelta):
        return (v // _US) * 1000
    if isinstance(v, int):
        return v
    raise TypeError(f"not a time: {v!r}")


def _duration(v: Any) -> list[int]:
    if isinstance(v, PgInterval):
        return [v.months, v.days, v.microseconds * 1000]
    if hasattr(v, "nanoseconds") and hasattr(v, "months"):  # cassandra.util.Duration
        return [int(v.months), int(v.days), int(v.nanoseconds)]
    if isinstance(v, dt.timedelta):  # psycopg's default loader (no months): days + µs
        return [0, v.days, (v.seconds * 1_000_000 + v.microseconds) * 1000]
    if isinstance(v, str):
        return _duration(parse_pg_interval(v))
    raise TypeError(f"not a duration: {v!r}")


def _inet(v: Any) -> str:
    if isinstance(v, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        v = v.ip
    return ipaddress.ip_address(v).compressed


def _bytes(v: Any) -> str:
    if isinstance(v, str):  # bytea in hex text form
        return v[2:].lower() if v.startswith("\\x") else v.encode().hex()
    return bytes(v).hex()


def _uuid(v: Any) -> str:
    return str(v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))).lower()


_SCALARS: dict[str, Any] = {
    "ascii": str,
    "text": str,
    "varchar": str,
    "tinyint": int,
    "smallint": int,
    "int": int,
    "bigint": int,
    "counter": int,
    "varint": _decimal,
    "decimal": _decimal,
    "boolean": bool,
    "float": lambda v: _float(v, 32),
    "double": lambda v: _float(v, 64),
    "uuid": _uuid,
    "timeuuid": _uuid,
    "timestamp": lambda v: _timestamp_us(v) // 1000,
    "date": _date,
    "time": _time_ns,
    "duration": _duration,
    "blob": _bytes,
    "inet": _inet,
}


def _sort_key(value: Canon) -> str:
    return canonical_json(value)


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _items(v: Any) -> list[tuple[Any, Any]]:
    if isinstance(v, Mapping):
        return list(v.items())
    return [(k, val) for k, val in v]  # a list of pairs (e.g. a jsonb array of [k, v])


def _from_json_key(t: CqlType, key: Any) -> Any:
    """jsonb object keys are text; turn them back into the key type's Python value."""
    if not isinstance(key, str) or not isinstance(t, CqlScalar):
        return key
    if t.name in ("tinyint", "smallint", "int", "bigint", "counter"):
        return int(key)
    if t.name in ("varint", "decimal"):
        return decimal.Decimal(key)
    if t.name in ("float", "double"):
        return float(key)
    if t.name == "boolean":
        return key == "true"
    return key


def generic(v: Any) -> Canon:
    """Canonical form guided by the Python value only (UDT fields, whose types we lack)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return _float(v, 64)
    if isinstance(v, decimal.Decimal):
        return _decimal(v)
    if isinstance(v, uuid.UUID):
        return _uuid(v)
    if isinstance(v, dt.datetime):
        return _timestamp_us(v) // 1000
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time) or hasattr(v, "nanosecond_time"):
        return _time_ns(v)
    if hasattr(v, "days_from_epoch"):
        return _date(v)
    if isinstance(v, PgInterval) or hasattr(v, "nanoseconds"):
        return _duration(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return _bytes(v)
    if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return _inet(v)
    if hasattr(v, "_asdict"):  # a UDT as the driver returns it (named tuple)
        return {str(k): generic(x) for k, x in sorted(v._asdict().items())}
    if isinstance(v, Mapping):
        return {str(k): generic(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, set | frozenset) or type(v).__name__ == "SortedSet":
        return sorted((generic(x) for x in v), key=_sort_key) or None
    if isinstance(v, list | tuple):
        return [generic(x) for x in v]
    return str(v)


def _canon(t: CqlType, v: Any) -> Canon:
    if v is None:
        return None
    if isinstance(t, CqlScalar):
        fn = _SCALARS.get(t.name)
        if fn is None:
            return generic(v)
        result: Canon = fn(v)
        return result
    if isinstance(t, CqlCollection):
        v = _maybe_json(v)
        if t.kind == "map":
            kt, vt = t.args
            pairs = [[_canon(kt, _from_json_key(kt, k)), _canon(vt, x)] for k, x in _items(v)]
            return sorted(pairs, key=lambda p: _sort_key(p[0])) or None
        items = [_canon(t.args[0], x) for x in v]
        if t.kind == "set":
            items.sort(key=_sort_key)
        return items or None
    if isinstance(t, CqlTuple):
        v = _maybe_json(v)
        if isinstance(v, Mapping):  # a composite/jsonb with field names: keep the order
            v = list(v.values())
        return [_canon(it, x) for it, x in zip(t.items, v, strict=False)]
    if isinstance(t, CqlVector):
        v = _maybe_json(v)
        return [_canon(t.element, x) for x in v]
    if isinstance(t, CqlUdt | CqlCustom):
        return generic(_maybe_json(v))
    raise TypeError(f"unknown CQL type {t!r}")  # pragma: no cover - CqlType is closed


def canonical_cassandra(t: CqlType | str, value: Any) -> Canon:
    """Canonical form of a value as the Cassandra Python driver returns it."""
    return _canon(_as_type(t), value)


def canonical_postgres(t: CqlType | str, value: Any) -> Canon:
    """Canonical form of a value as psycopg returns it for the column's PostgreSQL type."""
    tt = _as_type(t)
    if isinstance(tt, CqlScalar) and tt.name == "timestamp" and value is not None:
        return _timestamp_us(value) // 1000
    return _canon(tt, value)


def compare(t: CqlType | str, cassandra_value: Any, postgres_value: Any) -> Comparison:
    """Compare one column. Equal when the canonical forms are equal, with two precision rules:
    a PostgreSQL timestamp with sub-millisecond digits cannot have come from Cassandra
    (mismatch); Cassandra's sub-microsecond ``time``/``duration`` digits are truncated by the
    pipeline (documented in docs/semantics.md), so they compare equal with a note."""
    tt = _as_type(t)
    c = _canon(tt, cassandra_value)
    p = canonical_postgres(tt, postgres_value)
    if isinstance(tt, CqlScalar) and tt.name == "timestamp" and postgres_value is not None:
        sub = _timestamp_us(postgres_value) % 1000
        if sub:
            return Comparison(False, c, p, f"postgres value has sub-millisecond digits ({sub} µs)")
    truncated = "cassandra nanoseconds truncated to microseconds"
    if (
        isinstance(tt, CqlScalar)
        and tt.name == "time"
        and isinstance(c, int)
        and isinstance(p, int)
        and c // 1000 * 1000 == p
        and c != p
    ):
        return Comparison(True, c, p, truncated)
    if (
        isinstance(tt, CqlScalar)
        and tt.name == "duration"
        and isinstance(c, list)
        and isinstance(p, list)
        and c[:2] == p[:2]
        and c[2] // 1000 * 1000 == p[2]
        and c != p
    ):
        return Comparison(True, c, p, truncated)
    return Comparison(c == p, c, p)


def compare_row(
    types: Mapping[str, CqlType | str],
    cassandra_row: Mapping[str, Any],
    postgres_row: Mapping[str, Any],
) -> dict[str, Comparison]:
    """The columns (of ``types``) whose values differ; empty when the rows match."""
    out: dict[str, Comparison] = {}
    for name, t in types.items():
        cmp = compare(t, cassandra_row.get(name), postgres_row.get(name))
        if not cmp.equal:
            out[name] = cmp
    return out


# ----------------------------------------------------------------------------- intervals

_ISO_INTERVAL = re.compile(
    r"^P(?:(?P<y>-?\d+)Y)?(?:(?P<mo>-?\d+)M)?(?:(?P<w>-?\d+)W)?(?:(?P<d>-?\d+)D)?"
    r"(?:T(?:(?P<h>-?\d+)H)?(?:(?P<mi>-?\d+)M)?(?:(?P<s>-?\d+(?:\.\d+)?)S)?)?$"
)


def parse_pg_interval(text: str) -> PgInterval:
    """Parse PostgreSQL's ``IntervalStyle = iso_8601`` output (``P1Y2M3DT4H5M6.5S``) into
    months, days, microseconds — exactly what PostgreSQL stores."""
    m = _ISO_INTERVAL.match(text.strip())
    if m is None or text.strip() == "P":
        if text.strip() in ("PT0S", "P0D"):
            return PgInterval(0, 0, 0)
        raise ValueError(f"not an ISO 8601 interval: {text!r}")
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    months = int(g.get("y", 0)) * 12 + int(g.get("mo", 0))
    days = int(g.get("w", 0)) * 7 + int(g.get("d", 0))
    sec = decimal.Decimal(g.get("s", "0"))
    us = (int(g.get("h", 0)) * 3600 + int(g.get("mi", 0)) * 60) * 1_000_000 + int(
        (sec * 1_000_000).to_integral_value()
    )
    return PgInterval(months, days, us)

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

Inside a collection, tuple or UDT the PostgreSQL side is jsonb in the transform's JSON forms
(docs/transform.md; ``CqlJson.java``), decoded here by the element's CQL type: timestamp as
ISO-8601 UTC text (``Instant.toString``: ``1969-12-31T23:59:59.999Z``, ``+10000-01-01T00:00:00Z``)
or epoch ms; date ``[+-]yyyy-mm-dd``; blob ``"0x<hex>"``; inet as the agent's
``InetAddress.toString`` (``"/10.0.0.1"``); uuid, decimal and varint as text; float and double as
numbers, NaN/±Infinity as text; time as integer ns (exact); duration as ONE integer of ns with
months counted as 30 days, read back like the view reads the top-level column
(``justify_interval``: 30 days -> 1 month, 24 h -> 1 day), so a duration with days >= 30 or a
time part >= 24 h compares unequal, as it is not carried faithfully; map keys as the JSON text
of the key. A UDT's field types come from ``udts`` (UDT name -> {field: type}); without them
the field types are inferred from the Cassandra driver's values (float when the value is exact
in 32 bits, inet when PostgreSQL holds ``"/"+address``).
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
_DAY_NS = 86_400 * 10**9

#: UDT name -> its fields in declaration order, {field name: CQL type}.
UdtFields = Mapping[str, Mapping[str, "CqlType | str"]]


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
    if isinstance(v, int | float):  # epoch ms: a jsonb element, or a raw driver value
        return int(v) * 1000
    raise TypeError(f"not a timestamp: {v!r}")


_ISO_INSTANT = re.compile(
    r"^(?P<y>[+-]?\d{4,})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"T(?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?Z$"
)
_ISO_DATE = re.compile(r"^(?P<y>[+-]?\d{4,})-(?P<mo>\d{2})-(?P<d>\d{2})$")


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, any year (java.time's calendar;
    Python's ``date`` stops at 1..9999)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _timestamp_ms(v: Any) -> int | str:
    """Epoch ms of a Cassandra timestamp. A driver ``datetime`` is rounded to the nearest ms:
    the driver builds it through a float (year 9999's .999 arrives as .998993) and Cassandra
    holds whole ms. An ISO string (the transform's jsonb form) with sub-ms digits stays text,
    so it never equals a Cassandra value."""
    if isinstance(v, dt.datetime):
        return (_epoch_us(v) + 500) // 1000
    if isinstance(v, str):
        m = _ISO_INSTANT.match(v)
        if m is None:
            return v
        frac = (m["f"] or "").ljust(9, "0")
        if int(frac[3:]):
            return v
        days = _days_from_civil(int(m["y"]), int(m["mo"]), int(m["d"]))
        secs = (days * 24 + int(m["h"])) * 3600 + int(m["mi"]) * 60 + int(m["s"] or 0)
        return secs * 1000 + int(frac[:3])
    return _timestamp_us(v) // 1000


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
    if isinstance(v, str):
        m = _ISO_DATE.match(v)
        if m is not None:  # the transform's form, any year (LocalDate.toString)
            return _date(_days_from_civil(int(m["y"]), int(m["mo"]), int(m["d"])))
        return v
    if isinstance(v, int):
        try:
            return (_EPOCH_DATE + dt.timedelta(days=v)).isoformat()
        except OverflowError:
            return str(v)
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
    if isinstance(v, int):  # a jsonb element: the agent's ns with months as 30 days
        return _duration_from_ns(v)
    raise TypeError(f"not a duration: {v!r}")


def _duration_from_ns(ns: int) -> list[int]:
    """Months, days, ns of the agent's one ns count, split as the view's ``justify_interval``
    splits the top-level column: 24 h make a day, 30 days a month, every part the count's sign."""
    sign = -1 if ns < 0 else 1
    days, rest = divmod(abs(ns), _DAY_NS)
    months, days = divmod(days, 30)
    return [sign * months, sign * days, sign * rest]


def _inet(v: Any) -> str:
    if isinstance(v, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        v = v.ip
    if isinstance(v, str):  # the agent's InetAddress.toString(): "host/address", host often empty
        v = v.rpartition("/")[2]
    return ipaddress.ip_address(v).compressed


def _bytes(v: Any) -> str:
    if isinstance(v, str):  # bytea in hex text form, or the transform's jsonb "0x<hex>"
        if v.startswith(("\\x", "0x")):
            return v[2:].lower()
        return v.encode().hex()
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
    "timestamp": _timestamp_ms,
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


#: Scalars the transform writes as JSON strings: a map key of these is the string itself.
_STRING_FORMS = frozenset(
    {"ascii", "text", "varchar", "timestamp", "date", "blob", "uuid", "timeuuid", "inet"}
    | {"decimal", "varint", "float", "double"}  # numbers: parsed from the text, not via JSON
)


def _from_json_key(t: CqlType, key: Any) -> Any:
    """jsonb object keys are text: the JSON text of a non-text key with the quotes of a string
    form removed (``CqlJson``); turn them back into a value the key type's canonical takes."""
    if not isinstance(key, str):
        return key
    if isinstance(t, CqlScalar):
        if t.name in _STRING_FORMS:
            return key
        if t.name in ("tinyint", "smallint", "int", "bigint", "counter"):
            return int(key)
        if t.name == "boolean":
            return key == "true"
        return key
    try:  # a frozen collection, tuple or UDT key: its JSON text
        return json.loads(key)
    except ValueError:
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
        return _timestamp_ms(v)
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


def _udt_fields(udts: UdtFields, name: str) -> dict[str, CqlType] | None:
    fields = udts.get(name)
    if fields is None:
        return None
    return {k: _as_type(ft) for k, ft in fields.items()}


def _canon(t: CqlType, v: Any, udts: UdtFields) -> Canon:
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
            pairs = [
                [_canon(kt, _from_json_key(kt, k), udts), _canon(vt, x, udts)] for k, x in _items(v)
            ]
            return sorted(pairs, key=lambda p: _sort_key(p[0])) or None
        items = [_canon(t.args[0], x, udts) for x in v]
        if t.kind == "set":
            items.sort(key=_sort_key)
        return items or None
    if isinstance(t, CqlTuple):
        v = _maybe_json(v)
        if isinstance(v, Mapping):  # a composite/jsonb with field names: keep the order
            v = list(v.values())
        return [_canon(it, x, udts) for it, x in zip(t.items, v, strict=False)]
    if isinstance(t, CqlVector):
        v = _maybe_json(v)
        return [_canon(t.element, x, udts) for x in v]
    if isinstance(t, CqlUdt):
        v = _maybe_json(v)
        fields = _udt_fields(udts, t.name)
        if fields is None:
            return generic(v)
        entries = v.items() if isinstance(v, Mapping) else zip(fields, v, strict=False)
        out: dict[str, Any] = {}
        for k, x in entries:
            ft = fields.get(str(k))
            out[str(k)] = generic(x) if ft is None else _canon(ft, x, udts)
        return dict(sorted(out.items()))
    if isinstance(t, CqlCustom):
        return generic(_maybe_json(v))
    raise TypeError(f"unknown CQL type {t!r}")  # pragma: no cover - CqlType is closed


# ----------------------------------------------------------------------------- UDT inference

_ANY = CqlScalar("_any")  # no type known: generic()


def _infer(c: Any, p: Any, name: str, found: dict[str, dict[str, CqlType]]) -> CqlType:
    """The CQL type of a UDT field as far as the driver's Python value ``c`` (and its
    PostgreSQL counterpart ``p``) tell; UDTs found on the way go to ``found`` under ``name``."""
    if c is None:
        return _ANY
    if isinstance(c, bool):
        return CqlScalar("boolean")
    if isinstance(c, int):  # any integer type; int() reads a varint's JSON text too
        return CqlScalar("bigint")
    if isinstance(c, float):
        exact32 = math.isfinite(c) and struct.unpack("<f", struct.pack("<f", c))[0] == c
        return CqlScalar("float" if exact32 else "double")
    if isinstance(c, str):
        inet = isinstance(p, str) and p != c and p.startswith("/") and _is_ip(c)
        return CqlScalar("inet" if inet else "text")
    scalar = _infer_scalar(c)
    if scalar is not None:
        return CqlScalar(scalar)
    if hasattr(c, "_asdict"):  # a UDT (named tuple)
        pm = _maybe_json(p)
        pm = pm if isinstance(pm, Mapping) else {}
        found[name] = {
            k: _infer(x, pm.get(k), f"{name}.{k}", found) for k, x in c._asdict().items()
        }
        return CqlUdt(name, frozen=True)
    pv = _maybe_json(p)
    if isinstance(c, Mapping):
        kc, vc = _first_pair(c)
        kp, vp = _first_pair(pv)
        return CqlCollection(
            "map", (_infer(kc, kp, f"{name}.key", found), _infer(vc, vp, f"{name}.value", found))
        )
    if isinstance(c, tuple):
        ps = pv if isinstance(pv, list) else []
        ps = ps + [None] * (len(c) - len(ps))
        return CqlTuple(
            tuple(
                _infer(x, y, f"{name}.{i}", found)
                for i, (x, y) in enumerate(zip(c, ps, strict=False))
            )
        )
    if isinstance(c, list | set | frozenset) or type(c).__name__ == "SortedSet":
        first = next(iter(c), None)
        item = f"{name}.item"
        if isinstance(c, list):
            pfirst = pv[0] if isinstance(pv, list) and pv else None
            return CqlCollection("list", (_infer(first, pfirst, item, found),))
        return CqlCollection("set", (_infer(first, None, item, found),))
    return _ANY


def _first_pair(v: Any) -> tuple[Any, Any]:
    """The first entry of a map (driver map, jsonb object or list of pairs), else Nones."""
    if isinstance(v, Mapping | list) and v:
        pair = _items(v)[0]
        return pair[0], pair[1]
    return None, None


def _infer_scalar(c: Any) -> str | None:
    if isinstance(c, decimal.Decimal):
        return "decimal"
    if isinstance(c, uuid.UUID):
        return "uuid"
    if isinstance(c, dt.datetime):
        return "timestamp"
    if isinstance(c, dt.date) or hasattr(c, "days_from_epoch"):
        return "date"
    if isinstance(c, dt.time) or hasattr(c, "nanosecond_time"):
        return "time"
    if hasattr(c, "nanoseconds") and hasattr(c, "months"):
        return "duration"
    if isinstance(c, bytes | bytearray | memoryview):
        return "blob"
    if isinstance(c, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return "inet"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _infer_udts(t: CqlType, c: Any, p: Any, udts: UdtFields) -> UdtFields:
    """``udts`` plus field types inferred from the values for every UDT of ``t`` not in it."""
    found: dict[str, dict[str, CqlType]] = {}

    def walk(tt: CqlType, cv: Any, pv: Any) -> CqlType:
        if cv is None:
            return tt
        if isinstance(tt, CqlUdt):
            if tt.name in udts or not hasattr(cv, "_asdict"):
                return tt
            _infer(cv, pv, tt.name, found)
            return tt
        pj = _maybe_json(pv)
        if isinstance(tt, CqlCollection):
            if tt.kind == "map":
                kt, vt = tt.args
                kc, vc = _first_pair(cv)
                _kp, vp = _first_pair(pj)
                walk(kt, kc, None)
                walk(vt, vc, vp)
            else:
                first = next(iter(cv), None)
                pfirst = pj[0] if isinstance(pj, list) and pj and tt.kind == "list" else None
                walk(tt.args[0], first, pfirst)
        elif isinstance(tt, CqlTuple) and isinstance(cv, tuple):
            ps = pj if isinstance(pj, list) else []
            for i, it in enumerate(tt.items):
                walk(it, cv[i] if i < len(cv) else None, ps[i] if i < len(ps) else None)
        return tt

    walk(t, c, p)
    if not found:
        return udts
    merged: dict[str, Mapping[str, CqlType | str]] = dict(udts)
    for k, fields in found.items():
        merged.setdefault(k, fields)
    return merged


# ----------------------------------------------------------------------------- public API


def canonical_cassandra(t: CqlType | str, value: Any, *, udts: UdtFields | None = None) -> Canon:
    """Canonical form of a value as the Cassandra Python driver returns it."""
    return _canon(_as_type(t), value, udts or {})


def canonical_postgres(t: CqlType | str, value: Any, *, udts: UdtFields | None = None) -> Canon:
    """Canonical form of a value as psycopg returns it for the column's PostgreSQL type
    (jsonb for collections, tuples and UDTs, in the transform's forms)."""
    tt = _as_type(t)
    if isinstance(tt, CqlScalar) and tt.name == "timestamp" and value is not None:
        return _timestamp_us(value) // 1000
    return _canon(tt, value, udts or {})


def compare(
    t: CqlType | str,
    cassandra_value: Any,
    postgres_value: Any,
    *,
    udts: UdtFields | None = None,
) -> Comparison:
    """Compare one column. Equal when the canonical forms are equal, with two precision rules:
    a PostgreSQL timestamp with sub-millisecond digits cannot have come from Cassandra
    (mismatch); Cassandra's sub-microsecond ``time``/``duration`` digits are truncated by the
    pipeline (documented in docs/semantics.md), so they compare equal with a note.

    ``udts`` gives UDT field types (name -> {field: CQL type}); a UDT not in it has its field
    types inferred from the Cassandra value."""
    tt = _as_type(t)
    known = _infer_udts(tt, cassandra_value, postgres_value, udts or {})
    c = _canon(tt, cassandra_value, known)
    p = canonical_postgres(tt, postgres_value, udts=known)
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
    *,
    udts: UdtFields | None = None,
) -> dict[str, Comparison]:
    """The columns (of ``types``) whose values differ; empty when the rows match."""
    out: dict[str, Comparison] = {}
    for name, t in types.items():
        cmp = compare(t, cassandra_row.get(name), postgres_row.get(name), udts=udts)
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

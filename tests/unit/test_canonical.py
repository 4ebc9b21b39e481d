"""The per-type canonical comparison of Cassandra (driver) and PostgreSQL (psycopg) values."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid
from collections import namedtuple
from typing import Any

import pytest
from cassandra.cqltypes import DoubleType, UTF8Type
from cassandra.util import Date, Duration, OrderedMapSerializedKey, SortedSet, Time

from controlplane.core.canonical import (
    PgInterval,
    canonical_cassandra,
    canonical_json,
    canonical_postgres,
    compare,
    compare_row,
    generic,
    parse_pg_interval,
)

UTC = dt.UTC
U = uuid.UUID("8E3B0A3C-5D1F-4C55-9B1A-0D5E3F7A1B2C")

EQUAL: list[tuple[str, Any, Any]] = [
    ("text", "héllo", "héllo"),
    ("ascii", "a", "a"),
    ("int", 5, 5),
    ("tinyint", -3, -3),
    ("bigint", 2**62, 2**62),
    ("boolean", True, True),
    ("float", 1.1, 1.1),  # the driver gives 1.100000023841858, psycopg 1.1
    ("double", 0.1, 0.1),
    ("double", float("nan"), float("nan")),
    ("decimal", decimal.Decimal("1.0"), decimal.Decimal("1.00")),
    ("decimal", decimal.Decimal("100"), decimal.Decimal("1E+2")),
    ("decimal", decimal.Decimal("0.000"), decimal.Decimal("0")),
    ("varint", 12345678901234567890, decimal.Decimal("12345678901234567890")),
    ("uuid", U, U),
    ("timeuuid", U, str(U).upper()),
    (
        "timestamp",
        dt.datetime(2024, 1, 1, 12, 0, 0, 123000),
        dt.datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC),
    ),
    (
        "timestamp",
        dt.datetime(2024, 1, 1, 12, 0, 0),
        dt.datetime(2024, 1, 1, 14, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ),
    (
        "timestamp",
        dt.datetime(1960, 5, 1, 0, 0, 0, 1000),
        dt.datetime(1960, 5, 1, 0, 0, 0, 1000, tzinfo=UTC),
    ),
    ("date", Date(dt.date(2024, 2, 3)), dt.date(2024, 2, 3)),
    ("time", Time(dt.time(1, 2, 3, 456789)), dt.time(1, 2, 3, 456789)),
    ("duration", Duration(1, 2, 3000), PgInterval(1, 2, 3)),
    ("blob", b"\x00\xff", b"\x00\xff"),
    ("inet", "10.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
    ("inet", "::1", ipaddress.IPv6Interface("::1/128")),
    ("list<int>", [3, 1, 2], [3, 1, 2]),
    ("set<text>", SortedSet(["b", "a"]), ["b", "a"]),
    ("frozen<set<int>>", SortedSet([2, 10]), "[10, 2]"),
    ("map<int, text>", OrderedMapSerializedKey(None, 0), None),
    ("map<int, text>", {2: "b", 1: "a"}, {"1": "a", "2": "b"}),
    ("list<int>", [], None),
    ("set<int>", None, []),
    ("tuple<int, text>", (1, "a"), [1, "a"]),
    ("tuple<int, text>", (1, None), {"f0": 1, "f1": None}),
    ("vector<float, 2>", [1.5, 2.0], [1.5, 2.0]),
    ("text", None, None),
]


@pytest.mark.parametrize(
    ("cql", "cass", "pg"), EQUAL, ids=[f"{e[0]}-{i}" for i, e in enumerate(EQUAL)]
)
def test_equal_values_compare_equal(cql: str, cass: Any, pg: Any) -> None:
    result = compare(cql, cass, pg)
    assert result.equal, result
    # canonical forms are JSON-serialisable
    canonical_json(result.cassandra)
    canonical_json(result.postgres)


DIFFERENT: list[tuple[str, Any, Any]] = [
    ("text", "a", "b"),
    ("text", "a", None),
    ("int", 1, 2),
    ("decimal", decimal.Decimal("1.0"), decimal.Decimal("1.01")),
    ("float", 1.1, 1.2),
    ("uuid", U, uuid.UUID(int=1)),
    ("timestamp", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)),
    ("date", Date(dt.date(2024, 2, 3)), dt.date(2024, 2, 4)),
    ("time", Time(dt.time(1, 2, 3)), dt.time(1, 2, 4)),
    ("duration", Duration(1, 2, 3000), PgInterval(0, 32, 3)),
    ("blob", b"\x00", b"\x01"),
    ("inet", "10.0.0.1", ipaddress.IPv4Address("10.0.0.2")),
    ("list<int>", [1, 2], [2, 1]),
    ("set<int>", SortedSet([1]), [1, 2]),
    ("boolean", True, False),
]


@pytest.mark.parametrize(("cql", "cass", "pg"), DIFFERENT)
def test_different_values_compare_different(cql: str, cass: Any, pg: Any) -> None:
    assert not compare(cql, cass, pg).equal


def test_postgres_sub_millisecond_timestamp_is_flagged() -> None:
    result = compare(
        "timestamp",
        dt.datetime(2024, 1, 1, 0, 0, 0, 1000),
        dt.datetime(2024, 1, 1, 0, 0, 0, 1500, tzinfo=UTC),
    )
    assert not result.equal
    assert result.note is not None
    assert "sub-millisecond" in result.note


def test_time_nanoseconds_truncation_is_equal_with_a_note() -> None:
    result = compare("time", Time(3_000_000_123_456), dt.time(0, 50, 0, 123))
    assert result.equal
    assert result.note is not None
    assert "truncated" in result.note
    assert result.cassandra == 3_000_000_123_456


def test_duration_nanoseconds_truncation_is_equal_with_a_note() -> None:
    result = compare("duration", Duration(0, 0, 1_500), PgInterval(0, 0, 1))
    assert result.equal
    assert result.note


def test_canonical_forms() -> None:
    assert canonical_cassandra("decimal", decimal.Decimal("1.500")) == "1.5"
    assert canonical_cassandra("uuid", U) == str(U).lower()
    assert canonical_cassandra("timestamp", dt.datetime(1970, 1, 1, 0, 0, 1)) == 1000
    assert canonical_postgres("timestamp", dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1000
    assert canonical_cassandra("blob", b"\xab") == "ab"
    assert canonical_cassandra("set<int>", SortedSet([3, 1])) == [1, 3]
    assert canonical_cassandra("map<text, int>", {"b": 2, "a": 1}) == [["a", 1], ["b", 2]]
    assert canonical_cassandra("double", float("inf")) == "Infinity"
    assert canonical_cassandra("date", Date(-(10**7))) == str(-(10**7))  # outside Python's dates


def test_udt_is_canonical_json_with_sorted_keys_and_explicit_nulls() -> None:
    Address = namedtuple("Address", ["street", "zip", "geo"])
    cass = Address("Main", 12345, None)
    pg = {"zip": 12345, "geo": None, "street": "Main"}
    result = compare("frozen<address>", cass, pg)
    assert result.equal
    assert canonical_json(result.cassandra) == '{"geo":null,"street":"Main","zip":12345}'
    assert not compare("frozen<address>", cass, {"zip": 12345, "street": "Main"}).equal


def test_generic_handles_driver_and_psycopg_values() -> None:
    assert generic(Duration(1, 2, 3)) == [1, 2, 3]
    assert generic(decimal.Decimal("2.50")) == "2.5"
    assert generic({"b": [1], "a": None}) == {"a": None, "b": [1]}


def test_compare_row_lists_only_differing_columns() -> None:
    types = {"a": "int", "b": "text", "c": "decimal"}
    diff = compare_row(
        types,
        {"a": 1, "b": "x", "c": decimal.Decimal("1.0")},
        {"a": 1, "b": "y", "c": decimal.Decimal("1")},
    )
    assert list(diff) == ["b"]
    assert (diff["b"].cassandra, diff["b"].postgres) == ("x", "y")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1Y2M3DT4H5M6.5S", PgInterval(14, 3, (4 * 3600 + 5 * 60) * 1_000_000 + 6_500_000)),
        ("PT0S", PgInterval(0, 0, 0)),
        ("P-1M-2DT-0.000003S", PgInterval(-1, -2, -3)),
        ("P1W", PgInterval(0, 7, 0)),
    ],
)
def test_parse_pg_interval(text: str, expected: PgInterval) -> None:
    assert parse_pg_interval(text) == expected


def test_parse_pg_interval_rejects_other_styles() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_pg_interval("1 mon 2 days")


# ----------------------------------------------------------------------------- nested (jsonb)
# Left: what the Cassandra driver returns; right: the transform's JSON (CqlJson.java) as psycopg
# parses the jsonb, forms taken from transforms/src/test/resources/events/real_nested_insert.json.

DAY = 86_400 * 10**9
F32_1_1 = 1.100000023841858  # the driver's float 1.1
Allt = namedtuple("Allt", ["ts", "bl", "d", "tm", "du", "ip", "dc", "vi", "f", "db"])
ALLT_TYPES = {
    "allt": {
        "ts": "timestamp",
        "bl": "blob",
        "d": "date",
        "tm": "time",
        "du": "duration",
        "ip": "inet",
        "dc": "decimal",
        "vi": "varint",
        "f": "float",
        "db": "double",
    }
}
ALLT_C = Allt(
    dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
    b"\xca\xfe",
    Date(-(2**31)),
    Time(1),
    Duration(-1, -29, -(DAY - 1)),
    "::1",
    decimal.Decimal("1.50"),
    -(2**200),
    F32_1_1,
    float("nan"),
)
ALLT_P = {
    "ts": "1969-12-31T23:59:59.999Z",
    "bl": "0xcafe",
    "d": "-5877641-06-23",
    "tm": 1,
    "du": -(59 * DAY + DAY - 1),
    "ip": "/0:0:0:0:0:0:0:1",
    "dc": "1.5",
    "vi": str(-(2**200)),
    "f": 1.1,
    "db": "NaN",
}


def omap(pairs: list[tuple[Any, Any]], key_type: Any, value_type: Any = UTF8Type) -> Any:
    m = OrderedMapSerializedKey(key_type, 5)
    for k, v in pairs:
        m._insert_unchecked(k, key_type.serialize(k, 5), v)
    return m


NESTED_EQUAL: list[tuple[str, Any, Any]] = [
    (
        "list<timestamp>",
        [
            dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
            dt.datetime(1, 1, 1),
            dt.datetime(1970, 1, 1),
        ],
        ["1969-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z"],
    ),
    # the driver reads year 9999's .999 through a float as .998993; Cassandra holds whole ms
    (
        "list<timestamp>",
        [dt.datetime(9999, 12, 31, 23, 59, 59, 998993)],
        ["9999-12-31T23:59:59.999Z"],
    ),
    ("list<timestamp>", [dt.datetime(1970, 1, 1, 0, 0, 1)], [1000]),  # epoch ms also accepted
    ("frozen<set<timestamp>>", SortedSet([dt.datetime(2024, 1, 1)]), ["2024-01-01T00:00:00Z"]),
    ("list<blob>", [b"", b"\x00\xff"], ["0x", "0x00ff"]),
    (
        "list<date>",
        [Date(-(2**31)), Date(0), Date(2**31 - 1)],
        ["-5877641-06-23", "1970-01-01", "+5881580-07-11"],
    ),
    ("list<date>", [Date(dt.date(1, 1, 1))], ["0001-01-01"]),
    ("list<time>", [Time(0), Time(DAY - 1)], [0, DAY - 1]),  # ns kept exactly in jsonb
    (
        "list<duration>",
        [Duration(0, 29, DAY - 1), Duration(1, 0, 0), Duration(-14, -3, -1), Duration(0, 0, 1)],
        [29 * DAY + DAY - 1, 30 * DAY, -(423 * DAY) - 1, 1],
    ),
    ("list<uuid>", [U], [str(U).lower()]),
    ("set<timeuuid>", SortedSet([U]), [str(U).upper()]),
    (
        "list<inet>",
        ["::1", "1.2.3.4", "2001:db8::ff00:42:8329"],
        ["/0:0:0:0:0:0:0:1", "/1.2.3.4", "/2001:db8:0:0:0:ff00:42:8329"],
    ),
    (
        "list<decimal>",
        [decimal.Decimal("1.50"), decimal.Decimal("-1E-30")],
        ["1.5", "-0.0000000000000000000000000000010"],
    ),
    ("list<varint>", [2**200, -1], [str(2**200), "-1"]),
    (
        "list<float>",
        [F32_1_1, float("nan"), float("inf"), float("-inf"), -0.0],
        [1.1, "NaN", "Infinity", "-Infinity", -0.0],
    ),
    ("list<double>", [0.1, 5e-324, 1e308, float("-inf")], [0.1, 5e-324, 1e308, "-Infinity"]),
    (
        "map<timestamp, blob>",
        {dt.datetime(1, 1, 1): b"", dt.datetime(1970, 1, 1): b"\xff"},
        {"0001-01-01T00:00:00Z": "0x", "1970-01-01T00:00:00Z": "0xff"},
    ),
    (
        "map<double, time>",
        omap([(float("nan"), Time(1)), (0.5, Time(3))], DoubleType),
        {"NaN": 1, "0.5": 3},
    ),
    ("map<float, date>", {F32_1_1: Date(0)}, {"1.1": "1970-01-01"}),
    ("frozen<map<decimal, varint>>", {decimal.Decimal("1.50"): -5}, {"1.50": "-5"}),
    ("map<date, inet>", {Date(-1): "1.2.3.4"}, {"1969-12-31": "/1.2.3.4"}),
    ("map<uuid, duration>", {U: Duration(1, 2, 3)}, {str(U): 32 * DAY + 3}),
    ("map<boolean, int>", {True: 1}, {"true": 1}),
    ("map<frozen<tuple<int, text>>, int>", {(1, "a"): 2}, {'[1,"a"]': 2}),
    (
        "tuple<timestamp, blob, date, time, duration, uuid, inet, decimal, varint, float, double>",
        (
            dt.datetime(1970, 1, 1),
            b"",
            Date(0),
            Time(1),
            Duration(0, -1, -1),
            U,
            "::1",
            decimal.Decimal("-0.000"),
            2**70,
            float("nan"),
            float("-inf"),
        ),
        [
            "1970-01-01T00:00:00Z",
            "0x",
            "1970-01-01",
            1,
            -DAY - 1,
            str(U),
            "/0:0:0:0:0:0:0:1",
            "0.000",
            str(2**70),
            "NaN",
            "-Infinity",
        ],
    ),
    (
        "frozen<list<frozen<tuple<timestamp, frozen<list<decimal>>>>>>",
        [(dt.datetime(1, 1, 1), [decimal.Decimal("0.0")]), (None, None)],
        [["0001-01-01T00:00:00Z", ["0"]], [None, None]],
    ),
]


@pytest.mark.parametrize(
    ("cql", "cass", "pg"), NESTED_EQUAL, ids=[f"{e[0]}-{i}" for i, e in enumerate(NESTED_EQUAL)]
)
def test_nested_values_in_the_transforms_json_forms_compare_equal(
    cql: str, cass: Any, pg: Any
) -> None:
    result = compare(cql, cass, pg)
    assert result.equal, result
    canonical_json(result.cassandra)
    canonical_json(result.postgres)


NESTED_DIFFERENT: list[tuple[str, Any, Any]] = [
    ("list<timestamp>", [dt.datetime(1970, 1, 1)], ["1970-01-01T00:00:00.001Z"]),
    ("list<timestamp>", [dt.datetime(1970, 1, 1)], ["1970-01-01T00:00:00.000001Z"]),  # sub-ms
    ("list<timestamp>", [dt.datetime(1970, 1, 1)], ["not a time"]),
    # the agent's JsonConverter writes a blob slice's whole backing array (nested-blob-wrong-bytes)
    (
        "frozen<set<blob>>",
        SortedSet([b"", b"\x01"]),
        ["0x00000002000000000000000101", "0x00000002000000000000000101"],
    ),
    ("tuple<int, blob>", (1, b"\xca\xfe"), [1, "0x0000000400000001000000020cafe"]),
    # a date in a collection in a collection arrives as Cassandra's raw day (nested-date-shifted)
    ("frozen<list<frozen<list<date>>>>", [[Date(0)]], [["-5877641-06-23"]]),
    # months are 30 days in the agent's ns: 45 days reads back as 1 month 15 days
    ("list<duration>", [Duration(0, 45, 0)], [45 * DAY]),
    ("list<duration>", [Duration(0, 0, 25 * 3600 * 10**9)], [25 * 3600 * 10**9]),
    ("list<inet>", ["10.0.0.1"], ["/10.0.0.2"]),
    ("list<blob>", [b"\x01"], ["0x02"]),
    ("list<date>", [Date(0)], ["1970-01-02"]),
    ("list<decimal>", [decimal.Decimal("1.5")], ["1.50001"]),
    ("list<double>", [float("nan")], ["Infinity"]),
    ("map<timestamp, int>", {dt.datetime(1970, 1, 1): 1}, {"1970-01-01T00:00:00.001Z": 1}),
]


@pytest.mark.parametrize(("cql", "cass", "pg"), NESTED_DIFFERENT)
def test_nested_values_copied_unfaithfully_compare_different(cql: str, cass: Any, pg: Any) -> None:
    assert not compare(cql, cass, pg).equal


def test_udt_fields_typed_by_metadata_or_inferred_from_the_driver_value() -> None:
    typed = compare("frozen<allt>", ALLT_C, ALLT_P, udts=ALLT_TYPES)
    assert typed.equal, typed
    inferred = compare("frozen<allt>", ALLT_C, ALLT_P)
    assert inferred.equal, inferred
    assert canonical_cassandra("frozen<allt>", ALLT_C, udts=ALLT_TYPES) == typed.cassandra
    wrong = {**ALLT_P, "bl": "0xcafe00"}
    assert not compare("frozen<allt>", ALLT_C, wrong, udts=ALLT_TYPES).equal
    assert not compare("frozen<allt>", ALLT_C, wrong).equal
    # a list of UDTs, a UDT in a map
    assert compare("list<frozen<allt>>", [ALLT_C, None], [ALLT_P, None], udts=ALLT_TYPES).equal
    assert compare("map<text, frozen<allt>>", {"k": ALLT_C}, {"k": ALLT_P}).equal


def test_typed_udt_float_field_is_strict_about_double_values() -> None:
    double = {"allt": {**ALLT_TYPES["allt"], "f": "double"}}
    assert not compare("frozen<allt>", ALLT_C, ALLT_P, udts=double).equal


def test_canonical_nested_forms() -> None:
    assert canonical_postgres("list<timestamp>", ["+10000-01-01T00:00:00Z"]) == [253402300800000]
    assert canonical_postgres("list<timestamp>", ["0000-12-31T23:59:59.999Z"]) == [-62135596800001]
    assert canonical_postgres("list<date>", ["+10000-01-01"]) == ["2932897"]
    assert canonical_postgres("list<duration>", [-(31 * DAY) - 5]) == [[-1, -1, -5]]
    assert (
        canonical_cassandra("timestamp", dt.datetime(9999, 12, 31, 23, 59, 59, 998993))
        == 253402300799999
    )

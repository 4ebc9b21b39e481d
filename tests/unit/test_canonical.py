"""The per-type canonical comparison of Cassandra (driver) and PostgreSQL (psycopg) values."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid
from collections import namedtuple
from typing import Any

import pytest
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

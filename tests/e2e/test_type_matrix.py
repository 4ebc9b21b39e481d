"""Every CQL type the agent can carry, with edge values, through the real pipeline: PostgreSQL
equals Cassandra after canonicalisation (controlplane.core.canonical).

Not here because they stop the node's one agent for every table (docs/semantics.md, "What the
source cannot carry"; `cdcctl validate` refuses them): vector, non-frozen UDT, case-sensitive or
reserved-word column names, a set nested in a collection/tuple/UDT (the agent's snapshot dies on
it: "Invalid Java object for schema with type ARRAY: class java.util.LinkedHashSet"). The
keyspace is dropped at the end, so later agent restarts do not snapshot it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any, NamedTuple

import pytest
from cassandra.cluster import Session
from cassandra.util import Duration

from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy, differences, pg_rows, table_model

pytestmark = pytest.mark.e2e

KS = "sem_types"
COLUMNS = (
    "id int PRIMARY KEY, a ascii, bi bigint, bl blob, bo boolean, d date, dc decimal, "
    "db double, du duration, f float, ip inet, i int, si smallint, t text, tm time, "
    "ts timestamp, tu timeuuid, ti tinyint, u uuid, vi varint, vc varchar, "
    "l list<text>, s set<int>, m map<text, int>, mi map<int, text>, "
    "fl frozen<list<text>>, fs frozen<set<timestamp>>, fm frozen<map<text, int>>, "
    "tup tuple<int, text, double>, ud frozen<addr>, nest frozen<map<text, frozen<list<int>>>>, "
    "nl list<frozen<list<int>>>, lb list<blob>, su set<uuid>"
)
NAMES = [c.split()[0] for c in COLUMNS.split(", ") if not c.startswith("id ")]
NAMES = [n for n in NAMES if n not in ("KEY",)]

UTC = dt.UTC
ROWS: dict[int, dict[str, Any]] = {
    1: {  # ordinary values
        "a": "ascii",
        "bi": 42,
        "bl": b"\xca\xfe",
        "bo": True,
        "d": dt.date(2024, 2, 29),
        "dc": decimal.Decimal("9.99"),
        "db": 3.5,
        "du": Duration(14, 25, (5 * 3600 + 6 * 60 + 7) * 10**9 + 8_009_010),
        "f": 1.25,
        "ip": "192.168.1.20",
        "i": 7,
        "si": 300,
        "t": "hello",
        "tm": (23 * 3600 + 59 * 60 + 59) * 10**9 + 123_456_789,
        "ts": dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
        "tu": uuid.UUID("50554d6e-29bb-11e5-b345-feff819cdc9f"),
        "ti": 5,
        "u": uuid.UUID(int=1),
        "vi": 12345,
        "vc": "varchar",
        "l": ["x", "y", "x"],
        "s": {3, 1, 2},
        "m": {"k1": 1, "k2": 2},
        "mi": {1: "one", -5: "minus five"},
        "fl": ["a", "b"],
        "fs": {dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
        "fm": {"z": 26},
        "tup": (7, "seven", 0.5),
        "ud": {"street": "Main", "zip": 12345},
        "nest": {"p": [1, 2], "q": []},
        "nl": [[1, 2], [3]],
        "lb": [b"", b"\x00\xff"],
        "su": {uuid.UUID(int=2), uuid.UUID(int=1)},
    },
    2: {  # maxima, unicode, empty strings, huge numbers, far future
        "a": "",
        "bi": 2**63 - 1,
        "bl": b"",
        "bo": False,
        "d": dt.date(9999, 12, 31),
        "dc": decimal.Decimal("123456789012345678901234567890.123456789012345678901234567890"),
        "db": float("inf"),
        "du": Duration(0, 0, 1),
        "f": float("nan"),
        "ip": "2001:db8::ff00:42:8329",
        "i": 2**31 - 1,
        "si": 2**15 - 1,
        # no U+0000: PostgreSQL text cannot hold it (docs/semantics.md, "Limits")
        "t": "ünïcödé ☃ 𝄞 \t\"'\\",
        "tm": 0,
        # whole seconds: the Python driver reads year-9999 milliseconds through a float (.999
        # comes back .998); PostgreSQL holds them exactly
        "ts": dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "tu": uuid.UUID("ffffffff-ffff-1fff-bfff-ffffffffffff"),
        "ti": 127,
        "u": uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff"),
        "vi": 2**200,
        "vc": "𝄞",
        "l": ["ünï", ""],
        "s": {2**31 - 1, -(2**31)},
        "m": {"": 0, "☃": -1},
        "mi": {2**31 - 1: ""},
        "fl": [""],
        "fs": {dt.datetime(1900, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)},
        "fm": {"a": 1},
        "tup": (None, "", float("-inf")),
        "ud": {"street": "", "zip": None},
        "nest": {"": []},
        "nl": [[]],
        "lb": [b"\x01"],
        "su": {uuid.UUID(int=0)},
    },
    3: {  # minima, the past
        "a": "~",
        "bi": -(2**63),
        "bl": bytes(range(256)),
        "d": dt.date(1, 1, 1),
        "dc": decimal.Decimal("-0.000000000000000000000000000001"),
        "db": float("-inf"),
        "du": Duration(-1, -2, -3000),
        "f": float("-inf"),
        "ip": "0.0.0.0",  # noqa: S104  # an inet value, not a bind address
        "i": -(2**31),
        "si": -(2**15),
        "t": "x" * 10000,
        "tm": 1,
        "ts": dt.datetime(1, 1, 1, 0, 0, 0, 0, tzinfo=UTC),
        "ti": -128,
        "vi": -(2**200),
        "db_": None,
    },
    4: {},  # only the key: every nullable column null (the row marker keeps it visible)
    5: {  # empty collections: null in Cassandra
        "l": [],
        "s": set(),
        "m": {},
        "fl": [],
        "fm": {},
        "nl": [],
        "t": "",
    },
}


class Addr(NamedTuple):
    """The frozen<addr> UDT as the driver writes and reads it."""

    street: str | None
    zip: int | None


@pytest.fixture(scope="module")
def matrix(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    deploy(
        cql,
        local_stack,
        stack.postgres_dsn,
        tmp_path_factory.mktemp("sem_types"),
        name="sem-types",
        keyspace=KS,
        prelude=(f"CREATE TYPE {KS}.addr (street text, zip int)",),
        tables={"matrix": f"CREATE TABLE {KS}.matrix ({COLUMNS}) WITH cdc = true"},
    )
    cql.cluster.register_user_type(KS, "addr", Addr)
    for key, values in ROWS.items():
        vals = {k: v for k, v in values.items() if k in NAMES}
        if "ud" in vals:
            vals["ud"] = Addr(**vals["ud"])
        cols = ["id", *vals]
        marks = ", ".join(["?"] * len(cols))
        stmt = cql.prepare(f"INSERT INTO {KS}.matrix ({', '.join(cols)}) VALUES ({marks})")
        cql.execute(stmt, [key, *vals.values()])
    yield
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")


def test_every_type_and_edge_value_arrives_equal(
    matrix: None, cql: Session, stack: Endpoints
) -> None:
    model = table_model(cql, KS, "matrix")
    wait_for(
        "all matrix rows in PostgreSQL",
        lambda: sorted(k[0] for k in pg_rows(stack.postgres_dsn, model)),
        lambda keys: keys == sorted(ROWS),
    )
    diffs = differences(cql, stack.postgres_dsn, model)
    assert diffs == [], "\n".join(diffs)


def test_updates_to_null_and_frozen_overwrites_arrive_equal(
    matrix: None, cql: Session, stack: Endpoints
) -> None:
    model = table_model(cql, KS, "matrix")
    wait_for(
        "matrix rows present",
        lambda: len(pg_rows(stack.postgres_dsn, model)),
        lambda n: n >= len(ROWS),
    )
    cql.execute(f"UPDATE {KS}.matrix SET t = null, fl = ['new'], tup = null WHERE id = 1")
    cql.execute(f"DELETE dc, ud FROM {KS}.matrix WHERE id = 2")
    cql.execute(f"UPDATE {KS}.matrix SET fm = {{'b': 2}}, d = '1969-07-20' WHERE id = 3")

    def diffs() -> list[str]:
        return differences(cql, stack.postgres_dsn, model)

    wait_for("updates visible and equal", diffs, lambda d: d == [])

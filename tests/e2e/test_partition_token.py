"""The partition token the writer stores with every row (decision 0154), through the real
pipeline and each writer: every raw-table row's ``_cdc_token`` equals Cassandra's ``token(pk)``
for its key (all rows compared), NULL only where the transform must refuse (a decimal key without
a fraction part); a raw table created before the column existed gains it on ``apply`` and a row's
next event fills it in.

The values cover each partition-key type the transform serialises, their edges (negative
numbers, non-ASCII text, empty components of composite keys, NaN and infinities, IPv4 and IPv6),
bound through the Python driver as an application writes them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session
from cassandra.util import Date, Time

from controlplane.adapters import postgres
from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy
from tests.manifests import local_pipeline
from tests.stackfixture import apply_on, session_cassandra_version

pytestmark = pytest.mark.e2e

KS = "sem_tokens"
UTC = dt.UTC

#: table -> (partition-key CQL types, rows of key values)
TABLES: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
    "k_int": (["int"], [(0,), (-1,), (2**31 - 1,), (-(2**31),)]),
    "k_bigint": (["bigint"], [(0,), (-1,), (2**63 - 1,), (-(2**63),)]),
    "k_smallint": (["smallint"], [(-(2**15),), (2**15 - 1,)]),
    "k_tinyint": (["tinyint"], [(-128,), (127,)]),
    "k_boolean": (["boolean"], [(True,), (False,)]),
    "k_text": (["text"], [("a",), ("ünï ☃ 𝄞",), ("x" * 100,)]),
    "k_ascii": (["ascii"], [("ascii ~",)]),
    "k_varchar": (["varchar"], [("varchar-ÿ",)]),
    "k_blob": (["blob"], [(b"\x00",), (b"\x80" * 15,), (b"\xca\xfe",)]),
    "k_uuid": (["uuid"], [(uuid.UUID(int=0),), (uuid.UUID(int=2**128 - 1),)]),
    "k_timeuuid": (["timeuuid"], [(uuid.UUID("50554d6e-29bb-11e5-b345-feff819cdc9f"),)]),
    "k_timestamp": (
        ["timestamp"],
        [
            (dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),),
            (dt.datetime(2026, 12, 5, 8, 30, 1, 123000, tzinfo=UTC),),
        ],
    ),
    "k_date": (["date"], [(Date(-165),), (Date(0),), (Date(2932896),)]),
    "k_time": (["time"], [(Time(0),), (Time(86399999999999),)]),
    "k_float": (["float"], [(-1.5,), (-0.0,), (math.nan,), (math.inf,)]),
    "k_double": (["double"], [(3.5,), (-2.25e-300,), (-math.inf,)]),
    "k_inet": (["inet"], [("127.0.0.1",), ("2001:db8::ff00:42:8329",), ("::1",)]),
    "k_varint": (["varint"], [(0,), (-129,), (2**200,), (-(2**200),)]),
    "k_decimal": (
        ["decimal"],
        [
            (decimal.Decimal("-7.25"),),
            (decimal.Decimal("123456789012345678901234567890.12"),),
            # no fraction part: the transform cannot tell 1000 from 1E+3, so no token
            (decimal.Decimal("1000"),),
        ],
    ),
    "k_comp": (
        ["text", "int", "uuid"],
        [("", 0, uuid.UUID(int=5)), ("acme", -7, uuid.UUID(int=2**127))],
    ),
    "k_comp2": (["ascii", "date"], [("", Date(-1)), ("z", Date(20000))]),
}
#: A blob in a composite partition key: the agent sends the whole composite buffer as the blob
#: (the key PostgreSQL gets is not Cassandra's), so the transform gives no token at all.
BLOB_COMPOSITE = ("k_comp_blob", ["blob", "int"], [(b"", 1), (b"\xff\x00", 2)])
#: keys the transform must give no token (NULL), by table
NO_TOKEN: dict[str, set[str]] = {"k_decimal": {"1000"}}
#: key types the 4.1 agent carries lossily (decision 0113): no token there
LOSSY_ON_41 = {"k_decimal", "k_varint"}


def _tables() -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    if session_cassandra_version() == "4.1":
        return {t: v for t, v in TABLES.items() if t not in LOSSY_ON_41}
    return TABLES


def _ddl(table: str, types: list[str]) -> str:
    cols = ", ".join(f"k{i} {t}" for i, t in enumerate(types))
    pk = ", ".join(f"k{i}" for i in range(len(types)))
    return f"CREATE TABLE {KS}.{table} ({cols}, v int, PRIMARY KEY (({pk}))) WITH cdc = true"


def _write(cql: Session, table: str, types: list[str], rows: list[tuple[Any, ...]], v: int) -> None:
    pk = ", ".join(f"k{i}" for i in range(len(types)))
    marks = ", ".join("?" * len(types))
    stmt = cql.prepare(f"INSERT INTO {KS}.{table} ({pk}, v) VALUES ({marks}, ?)")
    for row in rows:
        cql.execute(stmt, [*row, v])


def _cassandra_tokens(cql: Session, table: str, n: int) -> dict[str, int]:
    """{key as PostgreSQL's text of the key columns: token(pk)} (text: one form on both sides)."""
    pk = ", ".join(f"k{i}" for i in range(n))
    return {
        _key_text(r[1:]): r[0] for r in cql.execute(f"SELECT token({pk}), {pk} FROM {KS}.{table}")
    }


def _key_text(values: Any) -> str:
    out = []
    for v in values:
        if isinstance(v, bytes):
            out.append(v.hex())
        elif isinstance(v, Date):
            out.append(str(v.days_from_epoch))
        elif isinstance(v, Time):
            out.append(str(v.nanosecond_time))
        elif isinstance(v, dt.datetime):
            out.append(str((v - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)))
        elif isinstance(v, float):
            out.append(repr(v))
        elif isinstance(v, decimal.Decimal):
            out.append(format(v, "f"))
        else:
            out.append(str(v))
    return "|".join(out)


def _pg_tokens(dsn: str, table: str, types: list[str]) -> dict[str, int | None]:
    """{the same key text: _cdc_token} of the raw table (values read back into driver forms)."""
    cols = ", ".join(f'"k{i}"' for i in range(len(types)))
    rows = postgres.query(dsn, f'SELECT {cols}, "_cdc_token" FROM "{KS}_cdc"."{table}"')
    out = {}
    for r in rows:
        values = [_from_pg(t, v) for t, v in zip(types, r[:-1], strict=True)]
        out[_key_text(values)] = r[-1]
    return out


def _from_pg(cql_type: str, v: Any) -> Any:
    if cql_type == "blob":
        return bytes(v)
    if cql_type == "date":
        return Date((v - dt.date(1970, 1, 1)).days)
    if cql_type == "timestamp":
        return v.astimezone(UTC).replace(tzinfo=None)
    if cql_type == "time":
        return Time(v)  # raw storage: nanoseconds
    if cql_type == "inet":
        # raw storage: the agent's InetAddress.toString(), "/<address>" (uncompressed IPv6)
        return str(ipaddress.ip_address(str(v).rpartition("/")[2]))
    if cql_type == "float":
        return float(v)
    return v


def _assert_tokens(cql: Session, dsn: str, tables: dict[str, Any]) -> int:
    """Every row of every table: the stored token is Cassandra's (or NULL where refused)."""
    compared = 0
    wrong = []
    for table, (types, _) in tables.items():
        want = _cassandra_tokens(cql, table, len(types))
        got = _pg_tokens(dsn, table, types)
        if sorted(got) != sorted(want):
            wrong.append((table, "keys differ", sorted(want), sorted(got)))
            continue
        for key, token in want.items():
            expected = None if key in NO_TOKEN.get(table, set()) else token
            if got[key] != expected:
                wrong.append((table, key, expected, got[key]))
            compared += 1
    assert wrong == []
    return compared


def _arrived(dsn: str, tables: dict[str, Any], v: int) -> dict[str, int]:
    """Rows per table whose v is the given one."""
    out = {}
    for table in tables:
        rows = postgres.query(dsn, f'SELECT count(*) FROM "{KS}_cdc"."{table}" WHERE v = %s', [v])
        out[table] = rows[0][0]
    return out


@pytest.fixture(params=["lww", "jdbc"])
def deployed(
    request: pytest.FixtureRequest,
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    writer = request.param
    tables = _tables()
    tmp = tmp_path_factory.mktemp(f"sem_tokens_{writer}")
    deploy(
        cql,
        local_stack,
        stack.postgres_dsn,
        tmp,
        name="sem-tokens",
        keyspace=KS,
        tables={
            **{t: _ddl(t, types) for t, (types, _) in tables.items()},
            BLOB_COMPOSITE[0]: _ddl(BLOB_COMPOSITE[0], BLOB_COMPOSITE[1]),
        },
        writer=writer,
    )
    yield writer, tmp
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")


def test_every_row_stores_cassandras_partition_token(
    deployed: tuple[str, Path], cql: Session, local_stack: LocalStack, stack: Endpoints
) -> None:
    writer, tmp = deployed
    dsn = stack.postgres_dsn
    tables = _tables()
    for table, (types, rows) in tables.items():
        _write(cql, table, types, rows, 1)
    want = {t: len(rows) for t, (_, rows) in tables.items()}
    wait_for(f"rows through {writer}", lambda: _arrived(dsn, tables, 1), lambda got: got == want)
    assert _assert_tokens(cql, dsn, tables) == sum(want.values())

    blob_table, blob_types, blob_rows = BLOB_COMPOSITE
    _write(cql, blob_table, blob_types, blob_rows, 1)
    wait_for(
        "the blob-composite rows",
        lambda: _arrived(dsn, {blob_table: None}, 1),
        lambda got: got == {blob_table: len(blob_rows)},
    )
    tokens = postgres.query(dsn, f'SELECT "_cdc_token" FROM "{KS}_cdc"."{blob_table}"')
    assert tokens == [(None,)] * len(blob_rows)

    # An existing deployment: a raw table without the column (as before decision 0154) and an
    # older DDL marker. `apply` adds the column (before the sink's new config) and the rows'
    # next events fill it in; meanwhile the column is NULL, never wrong.
    table = "k_comp"
    raw = f'"{KS}_cdc"."{table}"'
    postgres.execute(
        dsn,
        [
            f'ALTER TABLE {raw} DROP COLUMN "_cdc_token"',
            f"COMMENT ON TABLE {raw} IS 'cdcctl:ddl-sha256=0000000000000000'",
        ],
    )
    path = tmp / "sem-tokens.yaml"
    path.write_text(local_pipeline("sem-tokens", KS, [*tables, BLOB_COMPOSITE[0]], writer=writer))
    apply_on(local_stack, [path])
    types, rows = tables[table]
    assert set(_pg_tokens(dsn, table, types).values()) == {None}
    _write(cql, table, types, rows, 2)
    wait_for(
        "the re-written rows",
        lambda: _arrived(dsn, {table: None}, 2),
        lambda got: got == {table: len(rows)},
    )
    _assert_tokens(cql, dsn, {table: tables[table]})

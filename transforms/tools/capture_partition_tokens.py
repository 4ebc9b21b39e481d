#!/usr/bin/env python3
"""Capture partition tokens from a real Cassandra for PartitionTokenTest (decision 0154).

For every partition-key type the transform serialises, and a few composite keys, this creates a
table in keyspace ``tok_fixtures``, writes the values below through the Python driver (bound
values, so Cassandra stores exactly the driver's bytes), reads ``SELECT token(<pk>), <pk>`` back
and writes one entry per row to src/test/resources/tokens/partition_tokens.json:

    {"table": ..., "types": [cql types], "key": {"schema": ..., "payload": ...}, "token": N}

``key`` is the event key as the Debezium agent writes it (the Connect schema and JSON value of
each column: docs/transform.md, the type table; the captured real_types_insert.json), so the
test reads it with the project's CassandraJsonConverter exactly as the sink does. ``token`` is
null for the values the transform must refuse (a decimal without a fraction part, decision 0154).

Run against a running stack (the keyspace is dropped at the end):
    CDC_STACK_DIR=<stack dir> PYTHONPATH=$PWD \
        .venv/bin/python transforms/tools/capture_partition_tokens.py
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import ipaddress
import json
import math
import pathlib
import uuid
from typing import Any

from cassandra.util import Date, Time

from tests.stackfixture import cql_cluster, ensure_stack

OUT = (
    pathlib.Path(__file__).resolve().parent.parent
    / "src/test/resources/tokens/partition_tokens.json"
)
KS = "tok_fixtures"

#: The agent's Connect schema of a key column per CQL type.
SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "int32"},
    "bigint": {"type": "int64"},
    "smallint": {"type": "int16"},
    "tinyint": {"type": "int8"},
    "boolean": {"type": "boolean"},
    "text": {"type": "string"},
    "varchar": {"type": "string"},
    "ascii": {"type": "string"},
    "blob": {"type": "bytes"},
    "uuid": {"type": "string", "name": "io.debezium.data.Uuid", "version": 1},
    "timeuuid": {"type": "string", "name": "io.debezium.data.Uuid", "version": 1},
    "timestamp": {"type": "int64", "name": "io.debezium.time.Timestamp", "version": 1},
    "date": {"type": "int32", "name": "io.debezium.time.Date", "version": 1},
    "time": {"type": "int64"},
    "float": {"type": "float"},
    "double": {"type": "double"},
    "inet": {"type": "string"},
    "varint": {"type": "string"},
    "decimal": {"type": "string"},
}

UTC = dt.UTC
#: Single-column keys (Cassandra refuses an empty one: "Key may not be empty"; the composites
#: below have empty components).
VALUES: dict[str, list[Any]] = {
    "int": [0, 1, -1, 2147483647, -2147483648, 42],
    "bigint": [0, -1, 9223372036854775807, -9223372036854775808, 1764080100000000],
    "smallint": [0, -32768, 32767, -2],
    "tinyint": [0, -128, 127, -1],
    "boolean": [True, False],
    "text": [
        "a",
        "hello",
        "ünï ☃",
        "日本語テキスト",
        "x" * 15,
        "y" * 16,
        "z" * 17,
        "0123456789" * 7,
    ],
    "varchar": ["varchar-ÿ"],
    "ascii": ["ascii", "ASCII with spaces ~"],
    "blob": [b"\x00", b"\xff", b"\xca\xfe", b"\x01\x02\x03" * 7 + b"\xfe", b"\x80" * 15],
    "uuid": [
        uuid.UUID(int=0),
        uuid.UUID("00000000-0000-0000-0000-000000000001"),
        uuid.UUID("5b6f0e2a-9c1d-4e3f-8a7b-6c5d4e3f2a1b"),
        uuid.UUID(int=2**128 - 1),
    ],
    "timeuuid": [
        uuid.UUID("50554d6e-29bb-11e5-b345-feff819cdc9f"),
        uuid.UUID("d2177dd0-eaa2-11de-a572-001b779c76e3"),
    ],
    "timestamp": [
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(1900, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        dt.datetime(2026, 12, 5, 8, 30, 1, 123000, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
    "date": [Date(0), Date(-165), Date(19782), Date(-719162), Date(2932896)],
    "time": [Time(0), Time(1), Time(86399999999999), Time(45296789012345)],
    "float": [0.0, -0.0, 1.25, -1.5, 3.4028234663852886e38, math.nan, math.inf, -math.inf],
    "double": [0.0, -0.0, 3.5, -2.25e-300, 1.7976931348623157e308, math.nan, math.inf, -math.inf],
    "inet": [
        "127.0.0.1",
        "10.1.2.3",
        "255.255.255.255",
        "::1",
        "2001:db8::ff00:42:8329",
        "fe80::1",
    ],
    "varint": [0, 1, -1, 127, 128, -128, -129, 255, 256, 123456789012345678901234567890, -(2**200)],
    "decimal": [
        decimal.Decimal("1.5"),
        decimal.Decimal("-0.0000000000000000000000000000010"),
        decimal.Decimal("123456789012345678901234567890.123456789"),
        decimal.Decimal("0.0"),
        decimal.Decimal("-7.25"),
        # refused (no fraction part: the scale may have been negative), token null
        decimal.Decimal("1000"),
        decimal.Decimal("1E+3"),
    ],
}

COMPOSITES: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
    "comp_text_int": (["text", "int"], [("", 0), ("acme", 7), ("ünï", -1), ("t" * 20, 2147483647)]),
    "comp_uuid_date_bigint": (
        ["uuid", "date", "bigint"],
        [
            (uuid.UUID(int=5), Date(-1), -9223372036854775808),
            (uuid.UUID("5b6f0e2a-9c1d-4e3f-8a7b-6c5d4e3f2a1b"), Date(20000), 0),
        ],
    ),
    "comp_blob_boolean": (["blob", "boolean"], [(b"", True), (b"\xff\x00", False)]),
    "comp_ascii_text": (["ascii", "text"], [("", ""), ("a", "日本")]),
}


def payload(cql_type: str, v: Any) -> Any:
    """The JSON value the agent writes for a key value (read back from Cassandra)."""
    if cql_type == "blob":
        return base64.b64encode(v).decode()
    if cql_type in ("uuid", "timeuuid"):
        return str(v)
    if cql_type == "timestamp":
        return (v - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)
    if cql_type == "date":
        return v.days_from_epoch
    if cql_type == "time":
        return v.nanosecond_time
    if cql_type in ("float", "double"):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if cql_type == "inet":
        ip = ipaddress.ip_address(v)
        if ip.version == 4:
            return "/" + str(ip)
        # java.net.Inet6Address.toString(): every group, lowercase hex, no zero compression
        return "/" + ":".join(f"{int(g, 16):x}" for g in ip.exploded.split(":"))
    if cql_type == "varint":
        return str(v)
    if cql_type == "decimal":
        return format(v, "f")  # BigDecimal.toPlainString()
    return v


def entries(
    session: Any, table: str, types: list[str], rows: list[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    cols = [f"k{i}" for i in range(len(types))]
    pk = ", ".join(cols)
    coldefs = ", ".join(f"{c} {t}" for c, t in zip(cols, types, strict=True))
    session.execute(f"CREATE TABLE {KS}.{table} ({coldefs}, v int, PRIMARY KEY (({pk})))")
    insert = session.prepare(
        f"INSERT INTO {KS}.{table} ({pk}, v) VALUES ({', '.join('?' * len(cols))}, 1)"  # noqa: S608  # fixed names
    )
    for row in rows:
        session.execute(insert, row)
    out = []
    for r in session.execute(f"SELECT token({pk}), {pk} FROM {KS}.{table}"):  # noqa: S608  # fixed names
        values = list(r)[1:]
        refused = types == ["decimal"] and "." not in format(values[0], "f")
        out.append(
            {
                "table": table,
                "types": types,
                "key": {
                    "schema": {
                        "type": "struct",
                        "fields": [
                            dict(SCHEMAS[t], optional=True, field=c)
                            for c, t in zip(cols, types, strict=True)
                        ],
                        "optional": False,
                        "name": f"io.debezium.connector.cassandra.cdc.{KS}.{table}.Key",
                    },
                    "payload": {
                        c: payload(t, v) for c, t, v in zip(cols, types, values, strict=True)
                    },
                },
                "token": None if refused else r[0],
            }
        )
    return out


def main() -> None:
    stack = ensure_stack()
    cluster = cql_cluster(stack)
    session = cluster.connect()
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {KS}")
        replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        session.execute(f"CREATE KEYSPACE {KS} WITH replication = {replication}")
        out = []
        for t, values in VALUES.items():
            out += entries(session, f"single_{t}", [t], [(v,) for v in values])
        for table, (types, rows) in COMPOSITES.items():
            out += entries(session, table, types, rows)
        version = session.execute("SELECT release_version FROM system.local").one()[0]
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(
            json.dumps(
                {"captured_from": f"Cassandra {version}, SELECT token(pk), pk", "entries": out},
                indent=1,
                ensure_ascii=False,
            )
            + "\n"
        )
        print(f"{len(out)} entries from Cassandra {version} -> {OUT}")
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {KS}")
        cluster.shutdown()


if __name__ == "__main__":
    main()

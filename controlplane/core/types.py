"""CQL -> PostgreSQL type mapping.

Scalars map fully. Precision notes (see docs/semantics.md):
- ``time`` is nanoseconds in Cassandra, microseconds in PostgreSQL: the last three digits are lost.
- ``timestamp`` is milliseconds in Cassandra; ``timestamptz`` holds it exactly.
- ``duration`` (months, days, ns) -> ``interval`` (months, days, µs): sub-µs digits are lost.
Collections, tuples, UDTs, vectors and custom types parse (schema_model) but are not mapped yet;
counters are never replicated (Debezium skips counter tables).
"""

from __future__ import annotations

from controlplane.core.schema_model import (
    Column,
    CqlCollection,
    CqlCustom,
    CqlScalar,
    CqlTuple,
    CqlType,
    CqlUdt,
    CqlVector,
    SchemaError,
)


class UnsupportedTypeError(SchemaError):
    """A column whose CQL type the pipeline cannot replicate (yet)."""


SCALAR_TYPES: dict[str, str] = {
    "ascii": "text",
    "text": "text",
    "varchar": "text",
    "int": "integer",
    "bigint": "bigint",
    "smallint": "smallint",
    "tinyint": "smallint",  # PostgreSQL has no 1-byte integer
    "boolean": "boolean",
    "float": "real",
    "double": "double precision",
    "decimal": "numeric",
    "varint": "numeric",
    "uuid": "uuid",
    "timeuuid": "uuid",
    "timestamp": "timestamptz",
    "date": "date",
    "time": "time",  # µs: Cassandra's ns precision is truncated
    "blob": "bytea",
    "inet": "inet",
    "duration": "interval",  # µs: Cassandra's ns precision is truncated
}

#: PostgreSQL types whose ``>`` must use byte order, as Cassandra's UTF8Type/AsciiType compare.
TEXT_PG_TYPES = frozenset({"text"})


def _remedy(t: CqlType) -> str:
    if isinstance(t, CqlScalar) and t.name == "counter":
        return (
            "counter tables are skipped by the Debezium Cassandra connector; remove this table "
            "from the pipeline or copy it with a periodic batch job"
        )
    if isinstance(t, CqlCollection) and not t.frozen:
        return (
            "non-frozen collections arrive as element deltas without add/remove; "
            "make the column frozen<...> or exclude it from the pipeline"
        )
    return "collections, tuples, UDTs and vectors are not mapped yet; exclude the column"


def pg_type(column: Column, *, keyspace: str, table: str) -> str:
    """The PostgreSQL type for a Cassandra column, or UnsupportedTypeError naming it."""
    t = column.type
    if isinstance(t, CqlScalar) and t.name in SCALAR_TYPES:
        return SCALAR_TYPES[t.name]
    kind = {
        CqlScalar: "type",
        CqlCollection: "collection type",
        CqlTuple: "tuple type",
        CqlUdt: "user-defined type",
        CqlVector: "vector type",
        CqlCustom: "custom type",
    }[type(t)]
    raise UnsupportedTypeError(
        f"{keyspace}.{table}.{column.name}: {kind} {column.cql_type} is not supported",
        hint=_remedy(t),
    )

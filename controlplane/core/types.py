"""CQL -> PostgreSQL type mapping.

Scalars map fully. Precision notes (see docs/semantics.md):
- ``time`` is nanoseconds in Cassandra, microseconds in PostgreSQL: the last three digits are lost.
- ``timestamp`` is milliseconds in Cassandra; ``timestamptz`` holds it exactly.
- ``duration`` (months, days, ns) -> ``interval`` (months, days, µs): sub-µs digits are lost.
Collections (frozen or not, nested), tuples and frozen UDTs -> ``jsonb``: the transform writes
each such value as canonical JSON (docs/semantics.md, "Types"). Non-frozen collections map too,
but carry only the elements a mutation touched (`semantics_checks` warns). Refused: counters
(Debezium skips counter tables), vectors and non-frozen UDTs (they stop the Debezium agent for
every table on the node, see `semantics_checks`) and custom types.
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


#: PostgreSQL type of every collection, tuple and frozen UDT column (canonical JSON).
JSON_PG_TYPE = "jsonb"


def _remedy(t: CqlType) -> str:
    if isinstance(t, CqlScalar) and t.name == "counter":
        return (
            "counter tables are skipped by the Debezium Cassandra connector; remove this table "
            "from the pipeline or copy it with a periodic batch job"
        )
    if isinstance(t, CqlVector):
        return (
            "the Debezium Cassandra agent cannot parse vector types and then drops the events "
            "of every table on the node; keep vectors out of CDC-enabled tables"
        )
    if isinstance(t, CqlUdt):
        return "the Debezium agent's snapshot dies on non-frozen UDTs; use frozen<" + t.name + ">"
    return "no PostgreSQL mapping for this type; exclude the table or change the column's type"


def _json_ok(t: CqlType) -> bool:
    """Collections, tuples and frozen UDTs whose parts are all mappable."""
    if isinstance(t, CqlScalar):
        return t.name in SCALAR_TYPES
    if isinstance(t, CqlCollection):
        return all(_json_ok(a) for a in t.args)
    if isinstance(t, CqlTuple):
        return all(_json_ok(a) for a in t.items)
    # a UDT's fields are checked by Cassandra; every native field type is carried
    return isinstance(t, CqlUdt)


def is_json_type(t: CqlType) -> bool:
    return isinstance(t, CqlCollection | CqlTuple | CqlUdt)


def pg_type(column: Column, *, keyspace: str, table: str) -> str:
    """The PostgreSQL type for a Cassandra column, or UnsupportedTypeError naming it."""
    t = column.type
    if isinstance(t, CqlScalar) and t.name in SCALAR_TYPES:
        return SCALAR_TYPES[t.name]
    top_ok = not (isinstance(t, CqlUdt) and not t.frozen)
    if is_json_type(t) and top_ok and _json_ok(t):
        return JSON_PG_TYPE
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

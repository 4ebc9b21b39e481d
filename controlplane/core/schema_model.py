"""A Cassandra table as the schema mapper needs it, and a parser for CQL type strings.

The models mirror what ``system_schema.columns`` reports (``kind``, ``position``,
``clustering_order``, ``type``) so the Cassandra adapter can build them row by row; everything
here is pure and immutable so DDL generated from it is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from controlplane.core.errors import CdcError

ColumnKind = Literal["partition_key", "clustering", "regular", "static"]
ClusteringOrder = Literal["asc", "desc", "none"]


class SchemaError(CdcError):
    """A Cassandra schema the mapper cannot represent (bad type string, unsupported construct)."""


# --------------------------------------------------------------------------- type AST


@dataclass(frozen=True)
class CqlScalar:
    """A native type: ``int``, ``text``, ``timestamp`` ... (lower-case, as system_schema says)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class CqlCollection:
    """``list<T>``, ``set<T>`` or ``map<K, V>``; ``frozen`` when written inside ``frozen<...>``."""

    kind: Literal["list", "set", "map"]
    args: tuple[CqlType, ...]
    frozen: bool = False

    def __str__(self) -> str:
        inner = f"{self.kind}<{', '.join(str(a) for a in self.args)}>"
        return f"frozen<{inner}>" if self.frozen else inner


@dataclass(frozen=True)
class CqlTuple:
    """``tuple<...>`` (always frozen in Cassandra, whether written or not)."""

    items: tuple[CqlType, ...]
    frozen: bool = False

    def __str__(self) -> str:
        inner = f"tuple<{', '.join(str(a) for a in self.items)}>"
        return f"frozen<{inner}>" if self.frozen else inner


@dataclass(frozen=True)
class CqlUdt:
    """A user-defined type, by its (unquoted) name."""

    name: str
    frozen: bool = False

    def __str__(self) -> str:
        inner = _cql_ident(self.name)
        return f"frozen<{inner}>" if self.frozen else inner


@dataclass(frozen=True)
class CqlVector:
    """``vector<T, n>`` (Cassandra 5)."""

    element: CqlType
    dimension: int

    def __str__(self) -> str:
        return f"vector<{self.element}, {self.dimension}>"


@dataclass(frozen=True)
class CqlCustom:
    """A custom type given as a quoted Java class name (``'org.apache...'``)."""

    class_name: str

    def __str__(self) -> str:
        return "'" + self.class_name.replace("'", "''") + "'"


CqlType = CqlScalar | CqlCollection | CqlTuple | CqlUdt | CqlVector | CqlCustom

#: Native CQL types (Cassandra 5). Anything else unquoted is taken as a UDT name.
NATIVE_TYPES = frozenset(
    {
        "ascii",
        "bigint",
        "blob",
        "boolean",
        "counter",
        "date",
        "decimal",
        "double",
        "duration",
        "float",
        "inet",
        "int",
        "smallint",
        "text",
        "time",
        "timestamp",
        "timeuuid",
        "tinyint",
        "uuid",
        "varchar",
        "varint",
    }
)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<quoted>"(?:[^"]|"")*")
      | (?P<string>'(?:[^']|'')*')
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
      | (?P<number>[0-9]+)
      | (?P<punct>[<>,])
    )""",
    re.VERBOSE,
)


def _cql_ident(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if not m or m.end() == pos:
                raise self._error(f"unexpected character at offset {pos}")
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def _error(self, why: str) -> SchemaError:
        return SchemaError(
            f"cannot parse CQL type {self.text!r}: {why}",
            hint="pass the type exactly as system_schema.columns.type reports it",
        )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self._error("unexpected end")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        _kind, got = self.take()
        if got != value:
            raise self._error(f"expected {value!r}, got {got!r}")

    def args(self) -> list[CqlType]:
        self.expect("<")
        out = [self.type()]
        while self.peek() == ("punct", ","):
            self.take()
            out.append(self.type())
        self.expect(">")
        return out

    def type(self, frozen: bool = False) -> CqlType:
        kind, tok = self.take()
        if kind == "string":
            return CqlCustom(tok[1:-1].replace("''", "'"))
        if kind == "quoted":
            return CqlUdt(tok[1:-1].replace('""', '"'), frozen=frozen)
        if kind != "ident":
            raise self._error(f"expected a type, got {tok!r}")
        low = tok.lower()
        if low == "frozen":
            self.expect("<")
            inner = self.type(frozen=True)
            self.expect(">")
            return inner
        if low in ("list", "set"):
            (elem,) = self._arity(self.args(), 1, low)
            return CqlCollection(low, (elem,), frozen=frozen)  # type: ignore[arg-type]
        if low == "map":
            k, v = self._arity(self.args(), 2, low)
            return CqlCollection("map", (k, v), frozen=frozen)
        if low == "tuple":
            return CqlTuple(tuple(self.args()), frozen=frozen)
        if low == "vector":
            self.expect("<")
            elem = self.type()
            self.expect(",")
            nkind, num = self.take()
            if nkind != "number" or int(num) < 1:
                raise self._error("vector dimension must be a positive integer")
            self.expect(">")
            return CqlVector(elem, int(num))
        if low in NATIVE_TYPES:
            return CqlScalar(low)
        # Unquoted identifiers are case-insensitive in CQL: a UDT name is folded to lower case.
        return CqlUdt(low.split(".")[-1], frozen=frozen)

    def _arity(self, args: list[CqlType], n: int, what: str) -> list[CqlType]:
        if len(args) != n:
            raise self._error(f"{what} takes {n} type argument(s), got {len(args)}")
        return args

    def parse(self) -> CqlType:
        result = self.type()
        if self.peek() is not None:
            raise self._error(f"unexpected {self.peek()[1]!r} after the type")  # type: ignore[index]
        return result


@cache
def parse_cql_type(text: str) -> CqlType:
    """Parse a CQL type string as system_schema reports it into a small AST."""
    if not text.strip():
        raise SchemaError("empty CQL type string", hint="a column needs a type")
    return _Parser(text).parse()


# --------------------------------------------------------------------------- table model


class Column(BaseModel):
    """One row of ``system_schema.columns``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    cql_type: str
    kind: ColumnKind
    position: int = -1
    clustering_order: ClusteringOrder = "none"

    @field_validator("cql_type")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_cql_type(value)
        return value

    @property
    def type(self) -> CqlType:
        return parse_cql_type(self.cql_type)


class TableModel(BaseModel):
    """A Cassandra table: keyspace, name and columns (any order; helpers sort them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keyspace: str
    table: str
    columns: tuple[Column, ...]

    @model_validator(mode="after")
    def _consistent(self) -> TableModel:
        where = f"{self.keyspace}.{self.table}"
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"{where}: duplicate column(s) {', '.join(dupes)}")
        if not self.partition_key:
            raise SchemaError(f"{where}: a table needs at least one partition key column")
        for kind, cols in (("partition_key", self.partition_key), ("clustering", self.clustering)):
            if [c.position for c in cols] != list(range(len(cols))):
                raise SchemaError(
                    f"{where}: {kind} positions must be 0..{len(cols) - 1}, "
                    f"got {[c.position for c in cols]}"
                )
        return self

    @property
    def qualified_name(self) -> str:
        return f"{self.keyspace}.{self.table}"

    def _of(self, kind: ColumnKind) -> tuple[Column, ...]:
        return tuple(sorted((c for c in self.columns if c.kind == kind), key=lambda c: c.position))

    @property
    def partition_key(self) -> tuple[Column, ...]:
        return self._of("partition_key")

    @property
    def clustering(self) -> tuple[Column, ...]:
        return self._of("clustering")

    @property
    def primary_key(self) -> tuple[Column, ...]:
        return self.partition_key + self.clustering

    @property
    def regular(self) -> tuple[Column, ...]:
        """Regular columns by name (Cassandra's own order; also the write-time slot order)."""
        return tuple(sorted((c for c in self.columns if c.kind == "regular"), key=lambda c: c.name))

    @property
    def static(self) -> tuple[Column, ...]:
        return tuple(sorted((c for c in self.columns if c.kind == "static"), key=lambda c: c.name))

    @classmethod
    def from_system_schema(
        cls, keyspace: str, table: str, rows: Iterable[Mapping[str, Any]]
    ) -> TableModel:
        """Build from ``system_schema.columns`` rows (keys: column_name, type, kind, position,
        clustering_order)."""
        return cls(
            keyspace=keyspace,
            table=table,
            columns=tuple(
                Column(
                    name=r["column_name"],
                    cql_type=r["type"],
                    kind=r["kind"],
                    position=r.get("position", -1),
                    clustering_order=r.get("clustering_order", "none"),
                )
                for r in rows
            ),
        )

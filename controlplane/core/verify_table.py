"""What the verify of one table reads and compares (docs/verify.md): the CQL and SQL statements
of its scans, look-ups and token side table, its primary-key comparison key, and the regular
columns in which a Cassandra row and its PostgreSQL copy differ. Pure: statements are text,
values are compared in canonical form (core.canonical); services.verify runs them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.core.canonical import (
    Canon,
    Comparison,
    UdtFields,
    canonical_cassandra,
    canonical_json,
    compare,
)
from controlplane.core.ddl import live_rows_sql, pg_names, quote_ident, sink_upsert_sql
from controlplane.core.schema_model import Column, CqlType, TableModel
from controlplane.core.types import pg_type

TOKEN_COL = "_cdc_token"  # noqa: S105  # nosec B105  # a column name, not a secret

#: Key types both drivers return as equal, equally hashed Python values (str, int, UUID, bool,
#: bytes, Decimal; varint: int vs Decimal, equal and same hash).
RAW_KEY_TYPES = frozenset(
    {
        "ascii",
        "text",
        "varchar",
        "int",
        "bigint",
        "smallint",
        "tinyint",
        "uuid",
        "timeuuid",
        "boolean",
        "blob",
        "varint",
        "decimal",
    }
)


def _pg_type(cql_type: str) -> str:
    col = Column(name="k", cql_type=cql_type, kind="regular")
    return pg_type(col, keyspace="-", table="-")


@dataclass(frozen=True)
class TokenPlan:
    """How one table's token-ordered snapshot is built: run ``prepare``, COPY the token of each
    key ``keys`` returns into ``copy`` (pk..., token), then run ``build(copied)`` in one
    transaction."""

    prepare: list[str]
    keys: str
    copy: str
    #: the snapshot's query when the token pass copied keys, and when it copied none
    snapshot: str
    snapshot_stored_only: str
    table: str
    key_table: str

    def build(self, copied: int) -> list[str]:
        tk = quote_ident(TOKEN_COL)
        query = self.snapshot if copied else self.snapshot_stored_only
        return [
            # the join's expressions are compiled once and run once: JIT's fixed cost (~0.35 s
            # of CPU on the build machine at 1M rows) bought nothing (decision 0151)
            "SET LOCAL jit = off",
            f"CREATE UNLOGGED TABLE {self.table} AS {query}",
            f"CREATE INDEX ON {self.table} ({tk})",
            f"ANALYZE {self.table}",
            f"DROP TABLE {self.key_table}",
        ]


class Table:
    """Everything the verify of one table needs: names, statements, column types."""

    def __init__(self, model: TableModel, run_id: str) -> None:
        self.model = model
        self.names = pg_names(model)
        self.pk = [c.name for c in model.primary_key]
        self.part = [c.name for c in model.partition_key]
        self.part_types = [c.cql_type for c in model.partition_key]
        self.pk_types = [c.cql_type for c in model.primary_key]
        self.reg = [c.name for c in model.regular]
        self.types: dict[str, CqlType] = {c.name: c.type for c in model.columns}
        self.pk_raw = [c.cql_type in RAW_KEY_TYPES for c in model.primary_key]
        run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:8]
        self.token_table = f"{model.table}__vt_{run_hash}"
        q = quote_ident
        ks, tb = q(model.keyspace), q(model.table)
        cols = ", ".join(q(c) for c in self.pk + self.reg)
        tok = f"token({', '.join(q(c) for c in self.part)})"
        where_pk = " AND ".join(f"{q(c)} = ?" for c in self.pk)
        self.cql_scan = f"SELECT {tok}, {cols} FROM {ks}.{tb} WHERE {tok} > ? AND {tok} <= ?"  # noqa: S608  # nosec B608  # quoted identifiers
        self.cql_by_pk = f"SELECT {cols} FROM {ks}.{tb} WHERE {where_pk}"  # noqa: S608  # nosec B608  # quoted identifiers
        meta = "".join(f", WRITETIME({q(c)}), TTL({q(c)})" for c in self.reg)
        self.cql_repair = f"SELECT {cols}{meta} FROM {ks}.{tb} WHERE {where_pk}"  # noqa: S608  # nosec B608  # quoted identifiers
        # The snapshot the ranges read: the live view's rows with their partition token,
        # written in token order and read per range through its token index, so a range's rows
        # lie on consecutive pages (decision 0141). The token comes from the raw table's
        # "_cdc_token" where the writer stored it (decision 0157); for the other rows (written
        # before the column existed, or a key type the writer cannot hash) the token pass
        # COPYs (pk, token) from the client into kt and the snapshot joins it (decision 0030).
        tt = f"{q(self.names.raw_schema)}.{q(self.token_table)}"
        kt = f"{q(self.names.raw_schema)}.{q(f'{model.table}__vk_{run_hash}')}"
        self.pg_token_table = tt
        self._kt = kt
        tk = q(TOKEN_COL)
        self.pg_range = (
            f"SELECT {tk}, {cols} FROM {tt} "  # noqa: S608  # nosec B608  # quoted identifiers
            f"WHERE {tk} > %s AND {tk} <= %s ORDER BY {tk}"
        )
        where_pg = " AND ".join(f"{q(c)} = %s" for c in self.pk)
        self.pg_by_pk = f"SELECT {cols} FROM {self.names.live_view} WHERE {where_pg}"  # noqa: S608  # nosec B608  # quoted identifiers (PgNames, quote_ident), values as %s
        self.pg_raw_by_pk = (
            f'SELECT {cols}, "_cdc_wt", "_cdc_live_ts", "_cdc_deleted_at" '  # noqa: S608  # nosec B608  # quoted identifiers (PgNames, quote_ident), values as %s
            f"FROM {self.names.raw_table} WHERE {where_pg}"
        )
        self.upsert = sink_upsert_sql(model)
        self.pg_token_drop = [f"DROP TABLE IF EXISTS {tt}", f"DROP TABLE IF EXISTS {kt}"]
        #: UDT field types of the keyspace (set once connected): compare reads jsonb by them
        self.udts: UdtFields = {}

    def token_plan(self, stored: bool) -> TokenPlan:
        """The statements that build this run's token-ordered snapshot. ``stored``: the raw
        table has the writer's ``_cdc_token`` column (decision 0157), so only rows without a
        stored token go through the client-side token pass; otherwise every key does."""
        q = quote_ident
        tt, kt, tk = self.pg_token_table, self._kt, q(TOKEN_COL)
        pk_cols = ", ".join(q(c) for c in self.pk)
        pk_defs = ", ".join(f"{q(c.name)} {_pg_type(c.cql_type)}" for c in self.model.primary_key)
        join = " AND ".join(f"v.{q(c)} = k.{q(c)}" for c in self.pk)
        vcols = ", ".join(f"v.{q(c)}" for c in self.pk + self.reg)
        if stored:
            missing = live_rows_sql(self.model, also=f"r.{tk} IS NULL")
            keys = f"SELECT {pk_cols} FROM ({missing}) AS v"  # noqa: S608  # nosec B608  # quoted identifiers
            with_token = live_rows_sql(
                self.model, lead=[f"r.{tk} AS {tk}"], also=f"r.{tk} IS NOT NULL"
            )
            joined = f"SELECT k.{tk}, {vcols} FROM {kt} AS k JOIN ({missing}) AS v ON {join}"  # noqa: S608  # nosec B608  # quoted identifiers
            snapshot = f"SELECT * FROM ({with_token}\nUNION ALL\n{joined}) AS s ORDER BY {tk}"  # noqa: S608  # nosec B608  # quoted identifiers
            stored_only = f"SELECT * FROM ({with_token}) AS s ORDER BY {tk}"  # noqa: S608  # nosec B608  # quoted identifiers
        else:
            keys = f"SELECT {pk_cols} FROM {self.names.live_view}"  # noqa: S608  # nosec B608  # quoted identifiers
            snapshot = stored_only = (
                f"SELECT k.{tk}, {vcols} FROM {kt} AS k "  # noqa: S608  # nosec B608  # quoted identifiers
                f"JOIN {self.names.live_view} AS v ON {join} ORDER BY k.{tk}"
            )
        return TokenPlan(
            prepare=[
                f"DROP TABLE IF EXISTS {tt}",
                f"DROP TABLE IF EXISTS {kt}",
                f"CREATE UNLOGGED TABLE {kt} ({pk_defs}, {tk} bigint NOT NULL)",
            ],
            keys=keys,
            copy=f"COPY {kt} ({pk_cols}, {tk}) FROM STDIN",
            snapshot=snapshot,
            snapshot_stored_only=stored_only,
            table=tt,
            key_table=kt,
        )

    @property
    def name(self) -> str:
        return self.model.qualified_name

    def key(self, values: Sequence[Any]) -> Any:
        """A primary key that is equal for a Cassandra row and its PostgreSQL copy: the value
        itself where both drivers return equal Python values (text, integers, uuid...), the
        canonical JSON otherwise (timestamps, dates, inet...)."""
        return tuple(
            v if raw else canonical_json(canonical_cassandra(self.types[c], v))
            for c, v, raw in zip(self.pk, values, self.pk_raw, strict=True)
        )

    def key_dict(self, values: Sequence[Any]) -> dict[str, Any]:
        return {
            c: canonical_cassandra(self.types[c], v) for c, v in zip(self.pk, values, strict=True)
        }

    def canon_row(self, row: Sequence[Any]) -> list[Canon]:
        """A row laid out as pk + reg, each value in canonical form (the signature of a missing
        or extra row)."""
        cols = self.pk + self.reg
        return [canonical_cassandra(self.types[c], v) for c, v in zip(cols, row, strict=True)]

    @staticmethod
    def same(c_row: Sequence[Any], p_row: Sequence[Any]) -> bool:
        """The cheap check before any canonical form: every value of the two rows (any layout,
        the same on both sides) is the same object, or of the same Python type and equal —
        the rule `diff` skips a column by, applied to the whole row at C speed. True means the
        canonical forms are equal too (the keys match and no column differs); False says
        nothing: the row is compared in canonical form."""
        return c_row == p_row and list(map(type, c_row)) == list(map(type, p_row))

    def diff(self, c_row: Sequence[Any], p_row: Sequence[Any]) -> dict[str, Comparison]:
        """Differing regular columns of two rows laid out as pk + reg."""
        n = len(self.pk)
        out: dict[str, Comparison] = {}
        for i, col in enumerate(self.reg, start=n):
            a, b = c_row[i], p_row[i]
            if a is b or (type(a) is type(b) and a == b):
                continue  # same Python type and equal: the canonical forms are equal too
            cmp = compare(self.types[col], a, b, udts=self.udts)
            if not cmp.equal:
                out[col] = cmp
        return out

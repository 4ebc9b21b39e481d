"""PostgreSQL DDL for one Cassandra table: raw table, LWW gate trigger, tombstones, live view.

Layout (docs/decisions/0003-lww-gate-in-postgres.md):
- ``"<ks>_cdc"."<table>"``: the raw table the JDBC sink upserts into. Primary key as in
  Cassandra, the data columns, the row-contract input columns (``_cdc_writetime``, ``_cdc_op``,
  ``_cdc_set``, ``_cdc_expiry``, ``_cdc_snapshot``) and the gate's state:
  ``_cdc_wt bigint[]`` / ``_cdc_exp bigint[]`` (write time / expiry µs per regular column, slot =
  position in ``TableModel.regular``), ``_cdc_live_ts`` / ``_cdc_live_exp`` (row marker of the
  newest INSERT), ``_cdc_deleted_at`` (newest row/partition/range tombstone covering the row), and
  ``_cdc_token``, the Murmur3 partition token of the row's key as the transform computed it
  (decision 0154; NULL = unknown; a known token is never replaced by NULL). An existing raw table
  gains it through ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` in the same statements.
- ``"<ks>_cdc"."<table>__tombstones"``: partition and range tombstones (row contract); an AFTER
  trigger applies each one to existing rows, the gate consults it for rows created later.
- ``"<ks>"."<table>"``: the view users query; hides deleted and expired rows and cells.

The gate is a BEFORE INSERT OR UPDATE trigger, because the stock sink sends
``INSERT ... ON CONFLICT (pk) DO UPDATE SET c = EXCLUDED.c`` for every column: the INSERT part
builds a fresh row, the UPDATE part merges the event into OLD per column on the write time.
Everything generated is a pure function of the TableModel, so plan/diff can compare text.

Column names come from Cassandra and may hold anything a quoted CQL identifier can (decision
0090): they appear only as quoted identifiers (`quote_ident`) or string literals
(`quote_literal`), never in comments; each function body is dollar-quoted with a tag that does
not occur in it (`dollar_quote`); names PostgreSQL cannot hold are refused before any DDL runs.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from controlplane.core.lww_model import SNAPSHOT_RANK_SHIFT
from controlplane.core.schema_model import Column, CqlCollection, SchemaError, TableModel
from controlplane.core.types import JSON_PG_TYPE, TEXT_PG_TYPES, pg_type

#: CQL types the raw table stores as the agent sends them, converted in the view: the agent
#: sends time and duration as integer nanoseconds (duration with months as 30 days) and inet as
#: Java's InetAddress.toString() (``hostname/address``, usually ``/127.0.0.1``).
RAW_STORAGE: dict[str, str] = {"time": "bigint", "duration": "bigint", "inet": "text"}


def view_expression(cql: str, ref: str) -> str:
    """SQL turning the raw value ``ref`` of a RAW_STORAGE type into its PostgreSQL type."""
    if cql == "time":
        return f"(time '00:00' + ({ref} / 1000) * interval '1 microsecond')"
    if cql == "duration":
        return f"justify_interval(({ref} / 1000) * interval '1 microsecond')"
    if cql == "inet":
        return f"(regexp_replace({ref}, '^[^/]*/', ''))::inet"
    return ref


PG_MAX_IDENT_BYTES = 63
RAW_SCHEMA_SUFFIX = "_cdc"
META_PREFIX = "_cdc_"
#: First key of the advisory lock pair that serialises tombstones against new rows.
LOCK_CLASS = 0x43444350  # "CDCP"

CONTRACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_cdc_writetime", "bigint"),
    ("_cdc_op", "text"),
    ("_cdc_set", "text"),
    ("_cdc_expiry", "text"),
    ("_cdc_snapshot", "boolean"),
)
STATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_cdc_wt", "bigint[]"),
    ("_cdc_exp", "bigint[]"),
    ("_cdc_live_ts", "bigint"),
    ("_cdc_live_exp", "bigint"),
    ("_cdc_deleted_at", "bigint"),
)
#: The row's Murmur3 partition token (decision 0154): the transform's ``_cdc_token`` field, kept
#: by the gate and the merge as ``coalesce(new, old)`` (a key's token never changes). Last column
#: of the raw table, so a table created with it and one that gained it by ALTER look the same.
TOKEN_COLUMN = "_cdc_token"  # noqa: S105  # nosec B105  # a column name
TOKEN_TYPE = "bigint"  # noqa: S105  # nosec B105  # a column type
#: ``_cdc_op`` of a row written by the set-based merge: the gate trigger lets it through.
MERGE_OP = "m"
#: Transaction-local setting the merge's transaction sets to 'on' (with MERGE_OP, see lww_trigger).
MERGE_SETTING = "cdc.lww_merge"
_MIN = "(-9223372036854775808)::bigint"
_MAX = "9223372036854775807::bigint"
_NOW_US = "(extract(epoch FROM now()) * 1000000)::bigint"
#: Raw types with a max() aggregate of their own in PostgreSQL (the merge's tie-break on value).
_HAS_MAX = frozenset(
    {"text", "smallint", "integer", "bigint", "real", "double precision", "numeric"}
    | {"date", "timestamptz", "inet", "interval"}
)


class UnsafeIdentifierError(SchemaError):
    """A Cassandra name PostgreSQL cannot hold as it is: nothing is created for its table.
    Exit 5, as for anything a component holds that cdcctl cannot carry."""

    exit_code = 5


def quote_ident(name: str) -> str:
    """Always-quoted PostgreSQL identifier: case and reserved words survive as they are."""
    if not name:
        raise UnsafeIdentifierError("an empty identifier cannot be created in PostgreSQL")
    if "\x00" in name:
        raise UnsafeIdentifierError(
            f"identifier {name!r} holds a NUL character, which PostgreSQL cannot store",
            hint="rename the Cassandra object",
        )
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        raise UnsafeIdentifierError(
            f"identifier {name!r} is not valid Unicode (a lone surrogate)",
            hint="rename the Cassandra object",
        ) from None
    if size > PG_MAX_IDENT_BYTES:
        raise UnsafeIdentifierError(
            f"identifier {name!r} is longer than PostgreSQL's {PG_MAX_IDENT_BYTES} bytes",
            hint="PostgreSQL would truncate it silently; rename the Cassandra object",
        )
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A string constant that reads the same whatever ``standard_conforming_strings`` says: with
    a backslash in it, an escape string (``E'...'``, backslashes doubled), as PostgreSQL's own
    ``quote_literal`` writes it."""
    if "\x00" in value:
        raise UnsafeIdentifierError(f"{value!r} holds a NUL character")
    quoted = "'" + value.replace("'", "''") + "'"
    if "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted


def dollar_quote(body: str, tag: str = "fn") -> str:
    """``$fn$<body>$fn$``, with a tag that does not occur in the body: ``$fn$`` when it does not,
    else one derived from the body's hash (checked again, so the body can never end the quote).
    Function bodies hold column names, and a name may hold ``$fn$``."""
    candidate = f"${tag}$"
    digest = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
    for i in range(len(digest) - 8):
        if candidate not in body:
            return f"{candidate}{body}{candidate}"
        candidate = f"${tag}_{digest[i : i + 8]}$"
    raise UnsafeIdentifierError("no dollar-quote tag fits this function body")  # not reachable


def _function(lines: Sequence[str]) -> str:
    """A CREATE FUNCTION statement: two header lines (the second ending in ``AS``), then the
    body, dollar-quoted with a tag that does not occur in it."""
    header, body = lines[:2], lines[2:]
    return "\n".join(header) + " " + dollar_quote("\n" + "\n".join(body) + "\n")


def sink_identifier_problem(name: str) -> str | None:
    """Why the Debezium JDBC sink could not use `name` as a column name safely, or None.

    The sink renders identifiers with Hibernate (7.2.6 in the pinned 3.6.0.Final plugin):
    ``Dialect.toQuotedIdentifier`` is ``openQuote + name + closeQuote`` without doubling a ``"``
    inside, and ``Identifier.toIdentifier`` first trims whitespace and strips one pair of
    `` ` ``, ``[]`` or ``""`` around the name. A ``"`` in a column name therefore ends the
    identifier inside the sink's own ``INSERT ... ON CONFLICT`` statement, and the other forms
    write to another column. `generate_ddl` does not call this (cdcctl's own DDL quotes every
    name correctly); it is for the caller that plans a pipeline (decision 0090)."""
    if '"' in name:
        return 'holds a double quote ("), which the JDBC sink does not escape in its statements'
    if name != name.strip():
        return "starts or ends with whitespace, which the JDBC sink trims"
    if len(name) > 2 and (name[0], name[-1]) in (("`", "`"), ("[", "]")):
        return "is enclosed in ` or [], which the JDBC sink strips as quote marks"
    return None


class PgNames(BaseModel):
    """Where a Cassandra table lives in PostgreSQL (unquoted names)."""

    model_config = ConfigDict(frozen=True)

    raw_schema: str
    view_schema: str
    table: str
    tombstones: str
    view: str

    @property
    def raw_table(self) -> str:
        return f"{quote_ident(self.raw_schema)}.{quote_ident(self.table)}"

    @property
    def tombstones_table(self) -> str:
        return f"{quote_ident(self.raw_schema)}.{quote_ident(self.tombstones)}"

    @property
    def live_view(self) -> str:
        return f"{quote_ident(self.view_schema)}.{quote_ident(self.view)}"

    def function(self, suffix: str) -> str:
        return f"{quote_ident(self.raw_schema)}.{quote_ident(self.table + suffix)}"


def pg_names(table: TableModel) -> PgNames:
    return PgNames(
        raw_schema=table.keyspace + RAW_SCHEMA_SUFFIX,
        view_schema=table.keyspace,
        table=table.table,
        tombstones=f"{table.table}__tombstones",
        view=table.table,
    )


class TableDdl(BaseModel):
    """The generated statements, in execution order; ``sql`` is the script ``plan`` shows."""

    model_config = ConfigDict(frozen=True)

    names: PgNames
    statements: tuple[str, ...]

    @property
    def sql(self) -> str:
        return "".join(s + ";\n\n" for s in self.statements)


def _lock_key(table: TableModel) -> int:
    crc = zlib.crc32(table.qualified_name.encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _check(table: TableModel) -> None:
    where = table.qualified_name
    # Static columns are kept in the raw table (the transform sends them, always null: the
    # agent skips static rows) but not in the view; semantics_checks warns about them.
    for c in table.primary_key:
        if pg_type(c, keyspace=table.keyspace, table=table.table) == JSON_PG_TYPE:
            raise SchemaError(
                f"{where}.{c.name}: a collection, tuple or UDT in the primary key is not supported",
                hint="the JDBC sink keys rows by scalar columns; exclude the table",
            )
    for c in table.columns:
        if c.name.startswith(META_PREFIX):
            raise SchemaError(
                f"{where}.{c.name}: column names starting with {META_PREFIX!r} are reserved "
                "for the pipeline's metadata",
                hint="rename the Cassandra column",
            )
        try:
            quote_ident(c.name)
        except UnsafeIdentifierError as exc:
            raise UnsafeIdentifierError(
                f"table {where}, column {c.name!r}: {exc.message}; nothing was created",
                hint=exc.hint or "rename the Cassandra column",
            ) from None
    names = pg_names(table)
    for n in (
        names.raw_schema,
        names.tombstones,
        table.table + "__tomb_apply",
        table.table + "__in_range",
        table.table + "__bound_cmp",
        table.table + "__tomb_pk",
    ):
        try:
            quote_ident(n)
        except UnsafeIdentifierError as exc:
            raise UnsafeIdentifierError(
                f"table {where}: {exc.message}; nothing was created", hint=exc.hint
            ) from None


class _Gen:
    def __init__(self, table: TableModel) -> None:
        _check(table)
        self.t = table
        self.n = pg_names(table)
        self.types = {
            c.name: pg_type(c, keyspace=table.keyspace, table=table.table) for c in table.columns
        }
        self.raw_types = {
            c.name: RAW_STORAGE.get(str(c.type), self.types[c.name]) for c in table.columns
        }
        self.lock = f"{LOCK_CLASS}, {_lock_key(table)}"

    def q(self, c: Column) -> str:
        return quote_ident(c.name)

    def coldef(self, c: Column) -> str:
        return f"{self.q(c)} {self.raw_types[c.name]}"

    def view_col(self, c: Column, ref: str) -> str:
        return view_expression(str(c.type), ref)

    def cmp_collate(self, c: Column) -> str:
        # Cassandra orders text by UTF-8 bytes; COLLATE "C" makes PostgreSQL agree.
        return ' COLLATE "C"' if self.raw_types[c.name] in TEXT_PG_TYPES else ""

    def nonfrozen_collections(self) -> list[Column]:
        return [
            c for c in self.t.regular if isinstance(c.type, CqlCollection) and not c.type.frozen
        ]

    # ------------------------------------------------------------------ tables

    def raw_table(self) -> str:
        cols = [self.coldef(c) + " NOT NULL" for c in self.t.primary_key]
        cols += [self.coldef(c) for c in self.t.regular]
        cols += [self.coldef(c) for c in self.t.static]
        cols += [f"{quote_ident(n)} {ty}" for n, ty in CONTRACT_COLUMNS + STATE_COLUMNS]
        cols.append(f"{quote_ident(TOKEN_COLUMN)} {TOKEN_TYPE}")
        pk = ", ".join(self.q(c) for c in self.t.primary_key)
        body = ",\n  ".join([*cols, f"PRIMARY KEY ({pk})"])
        return f"CREATE TABLE IF NOT EXISTS {self.n.raw_table} (\n  {body}\n)"

    def raw_table_token(self) -> str:
        """A raw table created before decision 0154 gains the token column (NULL until a row's
        next event); run before the connector config that emits the field is written."""
        return (
            f"ALTER TABLE {self.n.raw_table} ADD COLUMN IF NOT EXISTS"
            f" {quote_ident(TOKEN_COLUMN)} {TOKEN_TYPE}"
        )

    def tombstones_table(self) -> str:
        cols = ['"_cdc_tombstone_id" text PRIMARY KEY']
        cols += [self.coldef(c) + " NOT NULL" for c in self.t.partition_key]
        cols += [
            '"_cdc_writetime" bigint NOT NULL',
            "\"_cdc_op\" text NOT NULL CHECK (\"_cdc_op\" IN ('p', 'r'))",
            '"_cdc_range_start" text',
            '"_cdc_range_end" text',
        ]
        body = ",\n  ".join(cols)
        return f"CREATE TABLE IF NOT EXISTS {self.n.tombstones_table} (\n  {body}\n)"

    def tombstones_index(self) -> str:
        pk = ", ".join(self.q(c) for c in self.t.partition_key)
        name = quote_ident(self.t.table + "__tomb_pk")
        return (
            f"CREATE INDEX IF NOT EXISTS {name} ON {self.n.tombstones_table} "
            f'({pk}, "_cdc_writetime")'
        )

    # ------------------------------------------------------------------ range tombstones

    def bound_cmp(self) -> str:
        """Compare a row's clustering values with a range bound in clustering order.

        The bound is the JSON of Debezium's ``{method, values: [{name, value, type}]}``; the
        result is -1, 0 (equal on the bound's prefix) or 1."""
        params = ", ".join(self.raw_types[c.name] for c in self.t.clustering)
        nb = len(self.t.clustering) + 1
        lines = [
            f"CREATE OR REPLACE FUNCTION {self.n.function('__bound_cmp')}({params}, jsonb)",
            "RETURNS integer LANGUAGE plpgsql STABLE AS",
            "DECLARE",
            "  v_vals jsonb;",
            "  v text;",
            "BEGIN",
            f"  v_vals := ${nb} -> 'values';",
            "  IF v_vals IS NULL THEN",
            "    RETURN 0;",
            "  END IF;",
        ]
        for i, c in enumerate(self.t.clustering, start=1):
            names = f"{quote_literal(c.name)}, {quote_literal(quote_ident(c.name))}"
            lt, gt = ("1", "-1") if c.clustering_order == "desc" else ("-1", "1")
            ty = self.raw_types[c.name]
            coll = self.cmp_collate(c)
            lines += [
                "  v := NULL;",
                "  IF jsonb_typeof(v_vals) = 'array' THEN",
                "    SELECT e.item ->> 'value' INTO v FROM jsonb_array_elements(v_vals) AS e(item)",
                f"     WHERE e.item ->> 'name' IN ({names}) LIMIT 1;",
                "  ELSIF jsonb_typeof(v_vals) = 'object' THEN",
                f"    v := coalesce(v_vals -> {quote_literal(c.name)} ->> 'value',"
                f" v_vals ->> {quote_literal(c.name)});",
                "  END IF;",
                "  IF v IS NULL THEN",
                "    RETURN 0;",
                "  END IF;",
                f"  IF ${i}{coll} < v::{ty}{coll} THEN",
                f"    RETURN {lt};",
                f"  ELSIF ${i}{coll} > v::{ty}{coll} THEN",
                f"    RETURN {gt};",
                "  END IF;",
            ]
        lines += ["  RETURN 0;", "END"]
        return _function(lines)

    def in_range(self) -> str:
        params = ", ".join(self.raw_types[c.name] for c in self.t.clustering)
        m = len(self.t.clustering)
        args = ", ".join(f"${i}" for i in range(1, m + 1))
        s, e = f"${m + 1}", f"${m + 2}"
        cmp = self.n.function("__bound_cmp")
        return _function(
            [
                f"CREATE OR REPLACE FUNCTION {self.n.function('__in_range')}({params}, text, text)",
                "RETURNS boolean LANGUAGE sql STABLE AS",
                "  SELECT (CASE WHEN sc > 0 THEN true WHEN sc < 0 THEN false",
                "               ELSE coalesce(sm IN ('INCL_START_BOUND',"
                " 'EXCL_END_INCL_START_BOUNDARY'), true) END)",
                "     AND (CASE WHEN ec < 0 THEN true WHEN ec > 0 THEN false",
                "               ELSE coalesce(em IN ('INCL_END_BOUND',"
                " 'INCL_END_EXCL_START_BOUNDARY'), true) END)",
                f"  FROM (SELECT {cmp}({args}, {s}::jsonb) AS sc, {s}::jsonb ->> 'method' AS sm,",
                f"               {cmp}({args}, {e}::jsonb) AS ec, {e}::jsonb ->> 'method' AS em) b",
            ]
        )

    def tombstone_match(self, row: str, tomb: str) -> str:
        """SQL condition: tombstone ``tomb`` covers the row whose columns are ``row``.x."""
        conds = [f"{tomb}.{self.q(c)} = {row}.{self.q(c)}" for c in self.t.partition_key]
        if self.t.clustering:
            cks = ", ".join(f"{row}.{self.q(c)}" for c in self.t.clustering)
            conds.append(
                f"({tomb}.\"_cdc_op\" = 'p' OR {self.n.function('__in_range')}"
                f'({cks}, {tomb}."_cdc_range_start", {tomb}."_cdc_range_end"))'
            )
        return " AND ".join(conds)

    # ------------------------------------------------------------------ the gate

    def lww_function(self) -> str:
        reg = self.t.regular
        nreg = len(reg)
        L: list[str] = []
        a = L.append
        a(f"CREATE OR REPLACE FUNCTION {self.n.function('__lww')}()")
        a("RETURNS trigger LANGUAGE plpgsql AS")
        a("#variable_conflict use_variable")
        a("DECLARE")
        a('  v_ts bigint := NEW."_cdc_writetime";')
        a('  v_op text := NEW."_cdc_op";')
        a("  v_set jsonb;")
        a("  v_xin jsonb;")
        a("  v_del bigint;")
        a("  v_wt bigint[];")
        a("  v_exp bigint[];")
        a("  v_live bigint;")
        a("  v_live_exp bigint;")
        a("  v_row_exp bigint;")
        a("BEGIN")
        a("  IF v_ts IS NULL OR v_op IS NULL OR v_op NOT IN ('i', 'u', 'd') THEN")
        a("    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',")
        a(
            "      MESSAGE = format('%I.%I: a change needs _cdc_writetime and _cdc_op in (i, u, d),"
            " got %s/%s', TG_TABLE_SCHEMA, TG_TABLE_NAME, v_ts, v_op),"
        )
        a("      HINT = 'write through the row contract (docs/decisions/0002-row-contract.md)';")
        a("  END IF;")
        a("  -- a snapshot copy's time is when the agent's query ran, not the value's write time:")
        a("  -- it ranks below every live event, so a write racing the read wins (decision 0106)")
        a('  IF NEW."_cdc_snapshot" THEN')
        a(f"    v_ts := v_ts - {SNAPSHOT_RANK_SHIFT};")
        a("  END IF;")
        a("  v_set := coalesce(NEW.\"_cdc_set\"::jsonb, '[]'::jsonb);")
        a("  v_xin := coalesce(NEW.\"_cdc_expiry\"::jsonb, '{}'::jsonb);")
        for c in self.nonfrozen_collections():
            # an empty non-frozen collection is null in Cassandra (the agent sends [] or {})
            a(f"  IF NEW.{self.q(c)} IN ('[]'::jsonb, '{{}}'::jsonb) THEN")
            a(f"    NEW.{self.q(c)} := NULL;")
            a("  END IF;")
        a("  IF TG_OP = 'UPDATE' THEN")
        a("    -- a key's partition token never changes: an event without one keeps the stored one")
        a(
            f"    NEW.{quote_ident(TOKEN_COLUMN)} := coalesce(NEW.{quote_ident(TOKEN_COLUMN)},"
            f" OLD.{quote_ident(TOKEN_COLUMN)});"
        )
        a('    v_del := OLD."_cdc_deleted_at";')
        a('    v_wt := OLD."_cdc_wt";')
        a('    v_exp := OLD."_cdc_exp";')
        a('    v_live := OLD."_cdc_live_ts";')
        a('    v_live_exp := OLD."_cdc_live_exp";')
        a("  ELSE")
        a("    -- a tombstone writer holds this lock exclusively while it applies a tombstone, so")
        a("    -- a row created concurrently either sees the tombstone here or gets it applied")
        a(f"    PERFORM pg_advisory_xact_lock_shared({self.lock});")
        a('    SELECT max(tb."_cdc_writetime") INTO v_del')
        a(f"      FROM {self.n.tombstones_table} AS tb")
        a(f"     WHERE {self.tombstone_match('NEW', 'tb')};")
        a(f"    v_wt := array_fill(NULL::bigint, ARRAY[{nreg}]);")
        a(f"    v_exp := array_fill(NULL::bigint, ARRAY[{nreg}]);")
        a("  END IF;")
        a("  IF v_op = 'd' AND (v_del IS NULL OR v_ts > v_del) THEN")
        a("    v_del := v_ts;")
        a("  END IF;")
        for i, c in enumerate(reg, start=1):
            col = f"NEW.{self.q(c)}"
            old = f"OLD.{self.q(c)}"
            key = quote_literal(c.name)
            nexp = f"(v_xin ->> {key})::bigint"
            co = self.cmp_collate(c)
            wins = f"v_op <> 'd' AND v_set ? {key} AND v_ts > coalesce(v_del, {_MIN})"
            a(f"  -- regular column {i}")
            a("  IF TG_OP = 'INSERT' THEN")
            a(f"    IF {wins} THEN")
            a(f"      v_wt[{i}] := v_ts;")
            a(f"      v_exp[{i}] := {nexp};")
            a("    ELSE")
            a(f"      {col} := NULL;")
            a("    END IF;")
            a(f"  ELSIF {wins} AND (v_wt[{i}] IS NULL OR v_ts > v_wt[{i}]")
            # Same write time, as Cassandra's Cells.resolveRegular: a cell tombstone (null)
            # wins, then an expiring cell over one without TTL, then the later expiry, then the
            # greater value — deterministic, so replicas' events converge (decision 0103's chaos
            # run found Cassandra keeping the TTL'd cell where the gate kept the greater value).
            a(f"      OR (v_ts = v_wt[{i}] AND {old} IS NOT NULL AND ({col} IS NULL")
            a(f"          OR coalesce({nexp}, {_MIN}) > coalesce(v_exp[{i}], {_MIN})")
            a(f"          OR (coalesce({nexp}, {_MIN}) = coalesce(v_exp[{i}], {_MIN})")
            a(f"              AND {col}{co} > {old}{co})))) THEN")
            a(f"    v_wt[{i}] := v_ts;")
            a(f"    v_exp[{i}] := {nexp};")
            a(f"  ELSIF v_wt[{i}] IS NOT NULL AND v_wt[{i}] <= coalesce(v_del, {_MIN}) THEN")
            a("    -- shadowed by a row tombstone: a tie goes to the tombstone, as in Cassandra")
            a(f"    {col} := NULL;")
            a(f"    v_wt[{i}] := NULL;")
            a(f"    v_exp[{i}] := NULL;")
            a("  ELSE")
            a(f"    {col} := {old};")
            a("  END IF;")
        a("  -- row marker (INSERT liveness): the newest INSERT newer than the row tombstone")
        a(f"  IF v_op = 'i' AND v_ts > coalesce(v_del, {_MIN}) THEN")
        a("    -- an INSERT ... USING TTL gives every cell and the row marker the same expiry")
        a("    IF v_xin <> '{}'::jsonb AND NOT EXISTS (")
        a("        SELECT 1 FROM jsonb_array_elements_text(v_set) AS s(name)")
        a("         WHERE NOT v_xin ? s.name)")
        a("    THEN")
        a("      SELECT max(x.value::bigint) INTO v_row_exp FROM jsonb_each_text(v_xin) AS x;")
        a("    END IF;")
        a("    IF v_live IS NULL OR v_ts > v_live OR (v_ts = v_live")
        a(f"        AND coalesce(v_row_exp, {_MAX}) > coalesce(v_live_exp, {_MAX})) THEN")
        a("      v_live := v_ts;")
        a("      v_live_exp := v_row_exp;")
        a("    END IF;")
        a("  END IF;")
        a(f"  IF v_live <= coalesce(v_del, {_MIN}) THEN")
        a("    v_live := NULL;")
        a("    v_live_exp := NULL;")
        a("  END IF;")
        a('  NEW."_cdc_wt" := v_wt;')
        a('  NEW."_cdc_exp" := v_exp;')
        a('  NEW."_cdc_live_ts" := v_live;')
        a('  NEW."_cdc_live_exp" := v_live_exp;')
        a('  NEW."_cdc_deleted_at" := v_del;')
        if nreg:
            data_new = ", ".join(f"NEW.{self.q(c)}" for c in reg)
            data_old = ", ".join(f"OLD.{self.q(c)}" for c in reg)
            a(f"  IF TG_OP = 'UPDATE' AND ({data_new}, v_wt, v_exp, v_live, v_live_exp, v_del,")
            a(f'      NEW."{TOKEN_COLUMN}")')
            a(f'      IS NOT DISTINCT FROM ({data_old}, OLD."_cdc_wt", OLD."_cdc_exp",')
        else:
            a("  IF TG_OP = 'UPDATE' AND (v_wt, v_exp, v_live, v_live_exp, v_del,")
            a(f'      NEW."{TOKEN_COLUMN}")')
            a('      IS NOT DISTINCT FROM (OLD."_cdc_wt", OLD."_cdc_exp",')
        a('      OLD."_cdc_live_ts", OLD."_cdc_live_exp", OLD."_cdc_deleted_at",')
        a(f'      OLD."{TOKEN_COLUMN}") THEN')
        a("    -- the event lost everywhere: skip the write, leave no dead tuple")
        a("    RETURN NULL;")
        a("  END IF;")
        a("  RETURN NEW;")
        a("END")
        return _function(L)

    def lww_trigger(self) -> str:
        # A row the set-based merge (generate_merge) already gated carries _cdc_op = MERGE_OP and
        # is written in a transaction that set MERGE_SETTING: the trigger skips only such rows
        # (a record cannot set a session setting, so no event can bypass the gate).
        return (
            f'CREATE OR REPLACE TRIGGER "cdc_lww" BEFORE INSERT OR UPDATE ON {self.n.raw_table}\n'
            f'  FOR EACH ROW WHEN (NEW."_cdc_op" IS DISTINCT FROM {quote_literal(MERGE_OP)}'
            f" OR current_setting({quote_literal(MERGE_SETTING)}, true)"
            f" IS DISTINCT FROM 'on')\n"
            f"  EXECUTE FUNCTION {self.n.function('__lww')}()"
        )

    def tomb_apply_function(self) -> str:
        cond = self.tombstone_match("r", "NEW")
        return _function(
            [
                f"CREATE OR REPLACE FUNCTION {self.n.function('__tomb_apply')}()",
                "RETURNS trigger LANGUAGE plpgsql AS",
                "BEGIN",
                "  -- exclusive against the gate's shared lock: no row of this table is being",
                "  -- created in another open transaction while the tombstone is applied",
                f"  PERFORM pg_advisory_xact_lock({self.lock});",
                "  -- each covered row gets a row delete at the tombstone's time, through the gate",
                f"  UPDATE {self.n.raw_table} AS r SET \"_cdc_op\" = 'd',",  # noqa: S608  # nosec B608  # quoted idents
                '         "_cdc_writetime" = NEW."_cdc_writetime", "_cdc_set" = NULL,',
                '         "_cdc_expiry" = NULL, "_cdc_snapshot" = false',
                f"   WHERE {cond}",
                '     AND (r."_cdc_deleted_at" IS NULL'
                ' OR r."_cdc_deleted_at" < NEW."_cdc_writetime");',
                "  RETURN NULL;",
                "END",
            ]
        )

    def tomb_apply_trigger(self) -> str:
        return (
            'CREATE OR REPLACE TRIGGER "cdc_tomb_apply" AFTER INSERT OR UPDATE'
            f" ON {self.n.tombstones_table}\n"
            f"  FOR EACH ROW EXECUTE FUNCTION {self.n.function('__tomb_apply')}()"
        )

    # ------------------------------------------------------------------ reading

    def visible(self, r: str, now: str) -> str:
        """SQL condition: the row has a live row marker or any live non-null cell at ``now``."""
        parts = [
            f'({r}."_cdc_live_ts" IS NOT NULL'
            f' AND ({r}."_cdc_live_exp" IS NULL OR {r}."_cdc_live_exp" > {now}))'
        ]
        for i, c in enumerate(self.t.regular, start=1):
            parts.append(
                f"({r}.{self.q(c)} IS NOT NULL"
                f' AND ({r}."_cdc_exp"[{i}] IS NULL OR {r}."_cdc_exp"[{i}] > {now}))'
            )
        return "\n     OR ".join(parts)

    def live_select(self, lead: Sequence[str] = (), also: str | None = None) -> str:
        """The live view's query: primary key and regular columns as the view shows them, of
        the raw rows visible now. ``lead``: raw-table expressions (``r.`` the raw row) put
        before the columns; ``also``: a condition on ``r`` ANDed to the visibility rule."""
        cols = [*lead]
        cols += [f"{self.view_col(c, 'r.' + self.q(c))} AS {self.q(c)}" for c in self.t.primary_key]
        for i, c in enumerate(self.t.regular, start=1):
            cols.append(
                f'CASE WHEN r."_cdc_exp"[{i}] IS NULL OR r."_cdc_exp"[{i}] > n.now_us'
                f" THEN {self.view_col(c, 'r.' + self.q(c))} END AS {self.q(c)}"
            )
        sel = ",\n       ".join(cols)
        where = self.visible("r", "n.now_us")
        if also is not None:
            where = f"({also}) AND ({where})"
        return (
            f"SELECT {sel}\n"  # noqa: S608  # nosec B608  # quoted identifiers
            f"  FROM {self.n.raw_table} AS r\n"
            f"  CROSS JOIN (SELECT {_NOW_US} AS now_us) AS n\n"
            f" WHERE {where}"
        )

    def view(self) -> str:
        return f"CREATE OR REPLACE VIEW {self.n.live_view} AS\n{self.live_select()}"

    def purge_function(self) -> str:
        idx = range(1, len(self.t.regular) + 1)
        newest = ", ".join(
            [
                'r."_cdc_deleted_at"',
                'r."_cdc_live_ts"',
                'r."_cdc_live_exp"',
                *(f'r."_cdc_wt"[{i}], r."_cdc_exp"[{i}]' for i in idx),
            ]
        )
        return _function(
            [
                f"CREATE OR REPLACE FUNCTION {self.n.function('__purge')}"
                "(p_grace interval, p_now_us bigint DEFAULT NULL)",
                "RETURNS bigint LANGUAGE plpgsql AS",
                "#variable_conflict use_variable",
                "-- Like gc_grace_seconds: drop rows nothing live is left in and tombstones older",
                "-- than the grace period. A write older than a purged tombstone can resurrect",
                "-- data afterwards, exactly as in Cassandra.",
                "DECLARE",
                "  v_now bigint := coalesce(p_now_us,"
                " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);",
                "  v_cut bigint;",
                "  v_rows bigint;",
                "  v_tombs bigint;",
                "BEGIN",
                "  v_cut := v_now - (extract(epoch FROM p_grace) * 1000000)::bigint;",
                f"  DELETE FROM {self.n.raw_table} AS r",  # noqa: S608  # nosec B608  # quoted identifiers
                f"   WHERE NOT ({self.visible('r', 'v_now')})",
                f"     AND greatest({newest}) < v_cut;",
                "  GET DIAGNOSTICS v_rows = ROW_COUNT;",
                f'  DELETE FROM {self.n.tombstones_table} WHERE "_cdc_writetime" < v_cut;',  # noqa: S608  # nosec B608  # quoted identifiers (PgNames)
                "  GET DIAGNOSTICS v_tombs = ROW_COUNT;",
                "  RETURN v_rows + v_tombs;",
                "END",
            ]
        )

    def statements(self) -> tuple[str, ...]:
        out = [
            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.n.raw_schema)}",
            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.n.view_schema)}",
            self.raw_table(),
            self.raw_table_token(),
            self.tombstones_table(),
            self.tombstones_index(),
        ]
        if self.t.clustering:
            out += [self.bound_cmp(), self.in_range()]
        out += [
            self.lww_function(),
            self.lww_trigger(),
            self.tomb_apply_function(),
            self.tomb_apply_trigger(),
            self.purge_function(),
            self.view(),
        ]
        return tuple(out)


def generate_ddl(table: TableModel) -> TableDdl:
    """All DDL for one Cassandra table, in order; idempotent (IF NOT EXISTS / OR REPLACE)."""
    gen = _Gen(table)
    return TableDdl(names=gen.n, statements=gen.statements())


def live_rows_sql(table: TableModel, lead: Sequence[str] = (), also: str | None = None) -> str:
    """The live view's query over the raw table (the one definition the view is made of), with
    raw-table expressions ``lead`` before its columns and a condition ``also`` on the raw row
    ``r``: for readers that need a raw column beside what the view shows (verify's snapshot
    reads the stored partition token, decision 0157)."""
    return _Gen(table).live_select(lead, also)


def sink_upsert_sql(table: TableModel) -> str:
    """The statement the stock JDBC sink sends for a row record (psycopg ``%s`` placeholders):
    every column inserted, every non-key column updated from EXCLUDED, no guard."""
    names = pg_names(table)
    keys = [c.name for c in table.primary_key]
    rest = (
        [c.name for c in table.regular]
        + [c.name for c in table.static]
        + [n for n, _ in CONTRACT_COLUMNS]
    )
    return _upsert(names.raw_table, keys, rest)


def sink_tombstone_upsert_sql(table: TableModel) -> str:
    """The sink's statement for a tombstone record into ``<table>__tombstones``."""
    names = pg_names(table)
    rest = [c.name for c in table.partition_key] + [
        "_cdc_writetime",
        "_cdc_op",
        "_cdc_range_start",
        "_cdc_range_end",
    ]
    return _upsert(names.tombstones_table, ["_cdc_tombstone_id"], rest)


def _upsert(target: str, keys: Sequence[str], rest: Sequence[str]) -> str:
    cols = ", ".join(quote_ident(c) for c in [*keys, *rest])
    ph = ", ".join(["%s"] * (len(keys) + len(rest)))
    pk = ", ".join(quote_ident(c) for c in keys)
    sets = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in rest)
    # identifiers are quoted by quote_ident, values are placeholders
    return f"INSERT INTO {target} ({cols}) VALUES ({ph}) ON CONFLICT ({pk}) DO UPDATE SET {sets}"  # noqa: S608  # nosec B608  # quoted identifiers, values as %s


# ---------------------------------------------------------------------- the set-based merge
#
# The project's own sink (transforms/lww-sink, decision 0126) COPYs a batch into a staging table
# per target table and applies it with one statement. The merge below computes, for every key of
# the batch, the state the gate trigger would reach after applying the batch's events one by one
# in any order: the gate's rules are maxima (per column on (write time, null, expiry, value), the
# row marker on (write time, expiry), the row tombstone on write time), so reducing the batch and
# the existing row with the same orderings gives the same state (lww_model.visible_rows is the
# declarative statement of it).

#: Staging tables: ``<table>__stg_<hash>`` for rows, ``<table>__tstg_<hash>`` for tombstones
#: (Cassandra table names have at most 48 characters, so both fit PostgreSQL's 63 bytes).
ROW_STAGE_SUFFIX = "__stg_"
TOMBSTONE_STAGE_SUFFIX = "__tstg_"


class MergeSql(BaseModel):
    """What the sink needs to apply one batch to one target (a raw table or its tombstones).

    ``target`` is the record's topic after the sink's routing (the table name, or
    ``<table>__tombstones``); ``columns`` the record fields in the staging table's (and COPY's)
    order. The sink, per batch: ``lock_sql`` (session level, before the transaction; may be
    empty), then in one REPEATABLE READ transaction ``copy_sql``, ``prepare_sql`` (may be empty)
    and ``merge_sql``, commit, then ``unlock_sql``. ``stage_sql`` creates the session's staging
    table (a temporary table emptied at every commit) once per connection."""

    model_config = ConfigDict(frozen=True)

    target: str
    columns: tuple[str, ...]
    stage_sql: str
    copy_sql: str
    lock_sql: str
    prepare_sql: str
    merge_sql: str
    unlock_sql: str


class TableMerge(BaseModel):
    """The set-based merge of one Cassandra table: its rows and its tombstones."""

    model_config = ConfigDict(frozen=True)

    rows: MergeSql
    tombstones: MergeSql


def _stage_name(table: TableModel, suffix: str) -> str:
    # the hash of the qualified name keeps two keyspaces' "orders" apart in one session
    return f"{table.table}{suffix}{zlib.crc32(table.qualified_name.encode()):08x}"


class _MergeGen:
    def __init__(self, table: TableModel) -> None:
        self.g = _Gen(table)
        self.t = table
        self.n = self.g.n

    def keys(self, alias: str) -> str:
        return ", ".join(f"{alias}.{self.g.q(c)}" for c in self.t.primary_key)

    def join(self, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{self.g.q(c)} = {b}.{self.g.q(c)}" for c in self.t.primary_key)

    def stage_ddl(self, name: str, cols: Sequence[str]) -> str:
        body = ",\n  ".join(cols)
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {quote_ident(name)} (\n  {body}\n)"
            " ON COMMIT DELETE ROWS"
        )

    def copy_sql(self, name: str, columns: Sequence[str]) -> str:
        cols = ", ".join(quote_ident(c) for c in columns)
        return f"COPY pg_temp.{quote_ident(name)} ({cols}) FROM STDIN"

    # ------------------------------------------------------------------ rows

    def row_columns(self) -> tuple[str, ...]:
        # static columns are not staged: the agent never sends them (semantics_checks warns)
        data = [c.name for c in (*self.t.primary_key, *self.t.regular)]
        return (*data, *(n for n, _ in CONTRACT_COLUMNS), TOKEN_COLUMN)

    def row_stage(self, name: str) -> str:
        cols = [self.g.coldef(c) + " NOT NULL" for c in self.t.primary_key]
        cols += [self.g.coldef(c) for c in self.t.regular]
        cols += [
            '"_cdc_writetime" bigint NOT NULL',
            "\"_cdc_op\" text NOT NULL CHECK (\"_cdc_op\" IN ('i', 'u', 'd'))",
            '"_cdc_set" text',
            '"_cdc_expiry" text',
            '"_cdc_snapshot" boolean',
            f"{quote_ident(TOKEN_COLUMN)} {TOKEN_TYPE}",
        ]
        return self.stage_ddl(name, cols)

    def max_of(self, c: Column, expr: str, where: str) -> str:
        """An aggregate giving the greatest ``expr`` (a value of column c) among the rows
        matching ``where``, in the column's order: ``max()`` where PostgreSQL has one for the
        type, else through a one-element array (``max(anyarray)`` compares with the element
        type's btree order: uuid, bytea, boolean, jsonb have no ``max()`` of their own)."""
        co = self.g.cmp_collate(c)
        if self.g.raw_types[c.name] in _HAS_MAX:
            return f"max({expr}{co}) FILTER (WHERE {where})"
        return f"(max(ARRAY[{expr}{co}]) FILTER (WHERE {where}))[1]"

    def events_cte(self, name: str) -> str:
        """``ev``: one row per staged event, the gate's inputs decoded once (inner query, not
        flattened: ``_cdc_set`` and ``_cdc_expiry`` are parsed once per event), then per regular
        column i the event's rank as a candidate for the cell, ``_cdc_r<i>`` = ARRAY[time, value
        is null, expiry or MIN] (NULL when the event does not write the cell: a row delete or a
        column it does not set), and ``_cdc_l``, its rank as a candidate for the row marker,
        ARRAY[time, expiry or MAX] (INSERTs only) — the orderings of lww_model._cell_rank and
        the marker, compared as arrays."""
        nonfrozen = {c.name for c in self.g.nonfrozen_collections()}
        inner = [f"s.{self.g.q(c)}" for c in self.t.primary_key]
        for c in self.t.regular:
            q = self.g.q(c)
            if c.name in nonfrozen:
                # an empty non-frozen collection is null in Cassandra (the agent sends [] or {})
                inner.append(
                    f"CASE WHEN s.{q} IN ('[]'::jsonb, '{{}}'::jsonb) THEN NULL ELSE s.{q} END"
                    f" AS {q}"
                )
            else:
                inner.append(f"s.{q}")
        inner += [
            # a snapshot copy ranks below every live event (decision 0106)
            f's."_cdc_writetime" - CASE WHEN s."_cdc_snapshot" THEN {SNAPSHOT_RANK_SHIFT}'
            ' ELSE 0 END AS "_cdc_ts"',
            's."_cdc_writetime"',
            's."_cdc_op"',
            'coalesce(s."_cdc_set"::jsonb, \'[]\'::jsonb) AS "_cdc_setj"',
            's."_cdc_expiry"::jsonb AS "_cdc_xj"',
            f"s.{quote_ident(TOKEN_COLUMN)}",
        ]
        outer = [f"d.{self.g.q(c)}" for c in (*self.t.primary_key, *self.t.regular)]
        outer += ['d."_cdc_ts"', 'd."_cdc_writetime"', 'd."_cdc_op"']
        outer.append(f"d.{quote_ident(TOKEN_COLUMN)}")
        for i, c in enumerate(self.t.regular, start=1):
            q, key = self.g.q(c), quote_literal(c.name)
            outer.append(
                f'CASE WHEN d."_cdc_op" <> \'d\' AND d."_cdc_setj" ? {key}\n'
                f'              THEN ARRAY[d."_cdc_ts", (d.{q} IS NULL)::integer,'
                f' coalesce((d."_cdc_xj" ->> {key})::bigint, {_MIN})] END AS "_cdc_r{i}"'
            )
        # an INSERT ... USING TTL gives the marker the latest cell expiry when every set cell
        # expires (the gate's v_row_exp)
        row_exp = (
            'CASE WHEN d."_cdc_xj" IS NOT NULL AND d."_cdc_xj" <> \'{}\'::jsonb\n'
            "               AND NOT EXISTS (\n"
            '               SELECT 1 FROM jsonb_array_elements_text(d."_cdc_setj") AS s(name)\n'
            '                WHERE d."_cdc_xj" -> s.name IS NULL)\n'
            "             THEN (SELECT max(x.value::bigint)"
            ' FROM jsonb_each_text(d."_cdc_xj") AS x) END'
        )
        outer.append(
            "CASE WHEN d.\"_cdc_op\" = 'i'\n"
            f'              THEN ARRAY[d."_cdc_ts", coalesce({row_exp}, {_MAX})] END AS "_cdc_l"'
        )
        isel = ",\n                 ".join(inner)
        osel = ",\n         ".join(outer)
        return (
            f"ev AS (\n  SELECT {osel}\n"  # noqa: S608  # nosec B608  # quoted identifiers
            f"    FROM (SELECT {isel}\n"
            f"            FROM pg_temp.{quote_ident(name)} AS s OFFSET 0) AS d\n)"
        )

    def window_cte(self) -> str:
        """``w``: each event with its key's best rank per regular column (``_cdc_m<i>``): one
        sort of the batch by key serves every column."""
        keys = self.keys("e")
        best = "".join(
            f',\n         max(e."_cdc_r{i}") OVER k AS "_cdc_m{i}"'
            for i in range(1, len(self.t.regular) + 1)
        )
        return (
            f"w AS (\n  SELECT e.*{best}\n"  # noqa: S608  # nosec B608  # quoted identifiers
            f"    FROM ev AS e\n  WINDOW k AS (PARTITION BY {keys})\n)"
        )

    def keys_cte(self) -> str:
        """``k``: one row per key of the batch: its newest row delete and raw write time, per
        regular column the batch's winning rank (``_cdc_r<i>``) and value (``_cdc_v<i>``, the
        greatest among the events of that rank: the last tie-break of _cell_rank), and the
        best row-marker candidate."""
        keys = self.keys("w")
        cols = [
            keys,
            'max(w."_cdc_ts") FILTER (WHERE w."_cdc_op" = \'d\') AS "_cdc_bdel"',
            'max(w."_cdc_writetime") AS "_cdc_bwt"',
            # one key, one token: max() takes the one the events carry (NULL when none does)
            f"max(w.{quote_ident(TOKEN_COLUMN)}) AS {quote_ident(TOKEN_COLUMN)}",
        ]
        for i, c in enumerate(self.t.regular, start=1):
            cols.append(f'max(w."_cdc_m{i}") AS "_cdc_r{i}"')
            best = self.max_of(c, f"w.{self.g.q(c)}", f'w."_cdc_r{i}" = w."_cdc_m{i}"')
            cols.append(f'{best} AS "_cdc_v{i}"')
        cols.append('max(w."_cdc_l") AS "_cdc_l"')
        sel = ",\n         ".join(cols)
        return (
            f"k AS (\n  SELECT {sel}\n"  # noqa: S608  # nosec B608  # quoted identifiers
            f"    FROM w\n   GROUP BY {keys}\n)"
        )

    def base_cte(self) -> str:
        """``b``: each key joined once with its stored row. The inner query (not flattened:
        its expressions are computed once) gives the row tombstone after the batch
        (``_cdc_del``: the stored row's, or for a new row the newest partition/range tombstone
        covering it, as the gate's INSERT path, then the batch's row deletes), per regular
        column whether the batch's winner beats the stored cell (``_cdc_n<i>``, the same
        ranking) and the best row marker of the two. The outer query gives each cell's winner
        (``_cdc_w<i>`` time, ``_cdc_v<i>`` value, ``_cdc_x<i>`` expiry), not yet compared with
        the row tombstone."""
        first = self.g.q(self.t.primary_key[0])
        tomb = (
            f'(SELECT max(tb."_cdc_writetime") FROM {self.n.tombstones_table} AS tb'  # noqa: S608  # nosec B608  # quoted identifiers
            f" WHERE {self.g.tombstone_match('k', 'tb')})"
        )
        inner = [
            self.keys("k"),
            'k."_cdc_bwt"',
            f'greatest(CASE WHEN o.{first} IS NOT NULL THEN o."_cdc_deleted_at"\n'
            f"                          ELSE {tomb} END,\n"
            '                     k."_cdc_bdel") AS "_cdc_del"',
            'greatest(k."_cdc_l", CASE WHEN o."_cdc_live_ts" IS NOT NULL\n'
            '                     THEN ARRAY[o."_cdc_live_ts",'
            f' coalesce(o."_cdc_live_exp", {_MAX})] END) AS "_cdc_l"',
            # the batch's token, else the stored one (decision 0154)
            f"coalesce(k.{quote_ident(TOKEN_COLUMN)}, o.{quote_ident(TOKEN_COLUMN)})"
            f" AS {quote_ident(TOKEN_COLUMN)}",
        ]
        outer = [self.keys("j"), 'j."_cdc_bwt"', 'j."_cdc_del"', 'j."_cdc_l"']
        outer.append(f"j.{quote_ident(TOKEN_COLUMN)}")
        for i, c in enumerate(self.t.regular, start=1):
            q, co = self.g.q(c), self.g.cmp_collate(c)
            stored = (
                f'ARRAY[o."_cdc_wt"[{i}], (o.{q} IS NULL)::integer,'
                f' coalesce(o."_cdc_exp"[{i}], {_MIN})]'
            )
            inner += [
                f'k."_cdc_r{i}"',
                f'k."_cdc_v{i}"',
                f'o.{q} AS "_cdc_o{i}"',
                f'o."_cdc_wt"[{i}] AS "_cdc_ow{i}"',
                f'o."_cdc_exp"[{i}] AS "_cdc_ox{i}"',
                f'k."_cdc_r{i}" IS NOT NULL AND (o."_cdc_wt"[{i}] IS NULL\n'
                f'           OR k."_cdc_r{i}" > {stored}\n'
                f'           OR (k."_cdc_r{i}" = {stored}'
                f' AND k."_cdc_v{i}"{co} > o.{q}{co})) AS "_cdc_n{i}"',
            ]
            n = f'j."_cdc_n{i}"'
            outer += [
                f'CASE WHEN {n} THEN j."_cdc_r{i}"[1] ELSE j."_cdc_ow{i}" END AS "_cdc_w{i}"',
                f'CASE WHEN {n} THEN j."_cdc_v{i}" ELSE j."_cdc_o{i}" END AS "_cdc_v{i}"',
                f'CASE WHEN {n} THEN nullif(j."_cdc_r{i}"[3], {_MIN})'
                f' ELSE j."_cdc_ox{i}" END AS "_cdc_x{i}"',
            ]
        isel = ",\n                 ".join(inner)
        osel = ",\n         ".join(outer)
        return (
            f"b AS (\n  SELECT {osel}\n"  # noqa: S608  # nosec B608  # quoted identifiers
            f"    FROM (SELECT {isel}\n"
            # the stored row by its primary key, whatever the estimates: a LATERAL subquery
            # with LIMIT is not flattened into a join the planner could make a hash join over
            # the whole raw table (the batch's key count is never estimated: the staging table
            # is never analyzed); the key is unique, so LIMIT 1 drops nothing
            "            FROM k LEFT JOIN LATERAL (\n"
            f"                   SELECT * FROM {self.n.raw_table} AS r\n"
            f"                    WHERE {self.join('r', 'k')} LIMIT 1) AS o ON true\n"
            "          OFFSET 0) AS j\n)"
        )

    def row_merge(self, name: str) -> str:
        reg = self.t.regular
        ctes = [self.events_cte(name), self.window_cte(), self.keys_cte(), self.base_cte()]
        data = [self.g.q(c) for c in reg]
        state = [
            '"_cdc_wt"',
            '"_cdc_exp"',
            '"_cdc_live_ts"',
            '"_cdc_live_exp"',
            '"_cdc_deleted_at"',
        ]
        contract = [quote_ident(n) for n, _ in CONTRACT_COLUMNS]
        token = [quote_ident(TOKEN_COLUMN)]
        target_cols = [self.g.q(c) for c in self.t.primary_key] + data + contract + state + token
        floor = f'coalesce(b."_cdc_del", {_MIN})'

        # a cell or marker survives only when newer than the row tombstone: a tie goes to the
        # tombstone, as in Cassandra; else the cell is NULL/NULL/NULL (no marker)
        def live(i: int, what: str) -> str:
            return f'CASE WHEN b."_cdc_w{i}" > {floor} THEN b."_cdc_{what}{i}" END'

        n = range(1, len(reg) + 1)
        wts = ",\n               ".join(live(i, "w") for i in n)
        exps = ",\n               ".join(live(i, "x") for i in n)
        marker = f'b."_cdc_l"[1] > {floor}'
        values = [
            *(f"b.{self.g.q(c)}" for c in self.t.primary_key),
            *(live(i, "v") for i in n),
            # the contract columns say who wrote the row: the merge, at the batch's newest time
            'b."_cdc_bwt"',
            quote_literal(MERGE_OP),
            "NULL",
            "NULL",
            "false",
            f"ARRAY[{wts}]::bigint[]",
            f"ARRAY[{exps}]::bigint[]",
            f'CASE WHEN {marker} THEN b."_cdc_l"[1] END',
            f'CASE WHEN {marker} THEN nullif(b."_cdc_l"[2], {_MAX}) END',
            'b."_cdc_del"',
            f"b.{quote_ident(TOKEN_COLUMN)}",
        ]
        # the token is compared too: a row written before it existed gains it on its next event
        changed = data + state + token
        sets = ",\n      ".join(f"{c} = EXCLUDED.{c}" for c in data + contract + state + token)
        old = ", ".join(f"t.{c}" for c in changed)
        new = ", ".join(f"EXCLUDED.{c}" for c in changed)
        pk = ", ".join(self.g.q(c) for c in self.t.primary_key)
        sel = ",\n       ".join(values)
        return (
            "WITH " + ",\n".join(ctes) + "\n"  # noqa: S608  # nosec B608  # quoted identifiers
            f"INSERT INTO {self.n.raw_table} AS t ({', '.join(target_cols)})\n"  # nosec B608  # quoted identifiers
            f"SELECT {sel}\n"
            "  FROM b\n"
            f"ON CONFLICT ({pk}) DO UPDATE SET\n      {sets}\n"
            # a batch that changes nothing leaves no dead tuple, as the gate's RETURN NULL
            f"  WHERE ({old}) IS DISTINCT FROM ({new})"
        )

    def rows(self) -> MergeSql:
        name = _stage_name(self.t, ROW_STAGE_SUFFIX)
        columns = self.row_columns()
        return MergeSql(
            target=self.t.table,
            columns=columns,
            stage_sql=self.row_stage(name),
            copy_sql=self.copy_sql(name, columns),
            # session-level twin of the gate's shared lock: held from before the transaction's
            # snapshot to after its commit, so a tombstone committed meanwhile is either seen by
            # the merge or applies itself to the merged rows (decision 0126)
            lock_sql=f"SELECT pg_advisory_lock_shared({self.g.lock})",
            prepare_sql=f"SELECT set_config({quote_literal(MERGE_SETTING)}, 'on', true)",
            merge_sql=self.row_merge(name),
            unlock_sql=f"SELECT pg_advisory_unlock_shared({self.g.lock})",
        )

    # ------------------------------------------------------------------ tombstones

    def tombstones(self) -> MergeSql:
        name = _stage_name(self.t, TOMBSTONE_STAGE_SUFFIX)
        columns = (
            "_cdc_tombstone_id",
            *(c.name for c in self.t.partition_key),
            "_cdc_writetime",
            "_cdc_op",
            "_cdc_range_start",
            "_cdc_range_end",
        )
        cols = ['"_cdc_tombstone_id" text NOT NULL']
        cols += [self.g.coldef(c) + " NOT NULL" for c in self.t.partition_key]
        cols += [
            '"_cdc_writetime" bigint NOT NULL',
            "\"_cdc_op\" text NOT NULL CHECK (\"_cdc_op\" IN ('p', 'r'))",
            '"_cdc_range_start" text',
            '"_cdc_range_end" text',
        ]
        quoted = ", ".join(quote_ident(c) for c in columns)
        # the id is the hash of the content: a known id is the same tombstone, so DO NOTHING
        # equals the stock sink's DO UPDATE minus the re-run of the apply trigger
        merge = (
            f"INSERT INTO {self.n.tombstones_table} ({quoted})\n"  # nosec B608  # quoted identifiers
            f"SELECT {quoted} FROM pg_temp.{quote_ident(name)}\n"
            'ON CONFLICT ("_cdc_tombstone_id") DO NOTHING'
        )
        return MergeSql(
            target=self.n.tombstones,
            columns=columns,
            stage_sql=self.stage_ddl(name, cols),
            copy_sql=self.copy_sql(name, columns),
            lock_sql="",
            prepare_sql="",
            merge_sql=merge,
            unlock_sql="",
        )


def generate_merge(table: TableModel) -> TableMerge:
    """The set-based LWW merge of one table for the project's own sink (decision 0126): the
    gate's rules as one statement per batch, generated beside the trigger from the same model."""
    gen = _MergeGen(table)
    return TableMerge(rows=gen.rows(), tombstones=gen.tombstones())

"""The DDL generator: layout, quoting, determinism, refusals. No database here (see
tests/integration/test_lww_gate.py for the behaviour)."""

from __future__ import annotations

import pytest

from controlplane.core.ddl import (
    generate_ddl,
    pg_names,
    quote_ident,
    sink_tombstone_upsert_sql,
    sink_upsert_sql,
)
from controlplane.core.schema_model import Column, SchemaError, TableModel


def orders() -> TableModel:
    # A case-sensitive keyspace, a reserved-word table and columns, a quote in a name.
    return TableModel.from_system_schema(
        "Shop",
        "order",
        [
            {"column_name": "user", "type": "text", "kind": "regular"},
            {"column_name": "id", "type": "uuid", "kind": "partition_key", "position": 0},
            {"column_name": "Region", "type": "text", "kind": "partition_key", "position": 1},
            {
                "column_name": "select",
                "type": "timestamp",
                "kind": "clustering",
                "position": 0,
                "clustering_order": "desc",
            },
            {"column_name": 'say "hi"', "type": "int", "kind": "regular"},
            {"column_name": "amount", "type": "decimal", "kind": "regular"},
        ],
    )


def test_model_helpers() -> None:
    t = orders()
    assert [c.name for c in t.partition_key] == ["id", "Region"]
    assert [c.name for c in t.clustering] == ["select"]
    assert [c.name for c in t.primary_key] == ["id", "Region", "select"]
    assert [c.name for c in t.regular] == ["amount", 'say "hi"', "user"]
    assert t.qualified_name == "Shop.order"


def test_quote_ident() -> None:
    assert quote_ident("order") == '"order"'
    assert quote_ident("MixedCase") == '"MixedCase"'
    assert quote_ident('a"b') == '"a""b"'
    with pytest.raises(SchemaError, match="63 bytes"):
        quote_ident("x" * 64)


def test_layout_and_names() -> None:
    ddl = generate_ddl(orders())
    assert ddl.names == pg_names(orders())
    assert ddl.names.raw_table == '"Shop_cdc"."order"'
    assert ddl.names.tombstones_table == '"Shop_cdc"."order__tombstones"'
    assert ddl.names.live_view == '"Shop"."order"'
    kinds = [s.split("(")[0].split(" AS\n")[0] for s in ddl.statements]
    assert kinds == [
        'CREATE SCHEMA IF NOT EXISTS "Shop_cdc"',
        'CREATE SCHEMA IF NOT EXISTS "Shop"',
        'CREATE TABLE IF NOT EXISTS "Shop_cdc"."order" ',
        'ALTER TABLE "Shop_cdc"."order" ADD COLUMN IF NOT EXISTS "_cdc_token" bigint',
        'CREATE TABLE IF NOT EXISTS "Shop_cdc"."order__tombstones" ',
        'CREATE INDEX IF NOT EXISTS "order__tomb_pk" ON "Shop_cdc"."order__tombstones" ',
        'CREATE OR REPLACE FUNCTION "Shop_cdc"."order__bound_cmp"',
        'CREATE OR REPLACE FUNCTION "Shop_cdc"."order__in_range"',
        'CREATE OR REPLACE FUNCTION "Shop_cdc"."order__lww"',
        'CREATE OR REPLACE TRIGGER "cdc_lww" BEFORE INSERT OR UPDATE ON "Shop_cdc"."order"\n'
        "  FOR EACH ROW WHEN ",
        'CREATE OR REPLACE FUNCTION "Shop_cdc"."order__tomb_apply"',
        'CREATE OR REPLACE TRIGGER "cdc_tomb_apply" AFTER INSERT OR UPDATE ON '
        '"Shop_cdc"."order__tombstones"\n  FOR EACH ROW EXECUTE FUNCTION '
        '"Shop_cdc"."order__tomb_apply"',
        'CREATE OR REPLACE FUNCTION "Shop_cdc"."order__purge"',
        'CREATE OR REPLACE VIEW "Shop"."order"',
    ]


def test_raw_table_columns() -> None:
    raw = generate_ddl(orders()).statements[2]
    assert raw == (
        'CREATE TABLE IF NOT EXISTS "Shop_cdc"."order" (\n'
        '  "id" uuid NOT NULL,\n'
        '  "Region" text NOT NULL,\n'
        '  "select" timestamptz NOT NULL,\n'
        '  "amount" numeric,\n'
        '  "say ""hi""" integer,\n'
        '  "user" text,\n'
        '  "_cdc_writetime" bigint,\n'
        '  "_cdc_op" text,\n'
        '  "_cdc_set" text,\n'
        '  "_cdc_expiry" text,\n'
        '  "_cdc_snapshot" boolean,\n'
        '  "_cdc_wt" bigint[],\n'
        '  "_cdc_exp" bigint[],\n'
        '  "_cdc_live_ts" bigint,\n'
        '  "_cdc_live_exp" bigint,\n'
        '  "_cdc_deleted_at" bigint,\n'
        '  "_cdc_token" bigint,\n'
        '  PRIMARY KEY ("id", "Region", "select")\n'
        ")"
    )


def test_tombstones_table_has_partition_key_only() -> None:
    tomb = generate_ddl(orders()).statements[4]
    assert '"id" uuid NOT NULL' in tomb
    assert '"Region" text NOT NULL' in tomb
    assert '"select"' not in tomb
    assert "\"_cdc_op\" IN ('p', 'r')" in tomb


def test_desc_clustering_reverses_range_comparison() -> None:
    cmp_fn = generate_ddl(orders()).statements[6]
    assert "IF $1 < v::timestamptz THEN\n    RETURN 1;" in cmp_fn
    assert "'select', '\"select\"'" in cmp_fn  # plain and CQL-quoted bound names both match


def test_no_clustering_means_no_range_functions() -> None:
    t = TableModel(
        keyspace="ks",
        table="kv",
        columns=(
            Column(name="k", cql_type="text", kind="partition_key", position=0),
            Column(name="v", cql_type="text", kind="regular"),
        ),
    )
    sql = generate_ddl(t).sql
    assert "__in_range" not in sql
    assert "__bound_cmp" not in sql


def test_key_only_table() -> None:
    t = TableModel(
        keyspace="ks",
        table="keys",
        columns=(Column(name="k", cql_type="int", kind="partition_key", position=0),),
    )
    sql = generate_ddl(t).sql
    assert "array_fill(NULL::bigint, ARRAY[0])" in sql
    assert 'r."_cdc_live_ts" IS NOT NULL' in sql


def test_deterministic() -> None:
    a = generate_ddl(orders()).sql
    shuffled = orders().model_copy(update={"columns": tuple(reversed(orders().columns))})
    assert generate_ddl(shuffled).sql == a
    assert generate_ddl(orders()).sql == a


def test_sink_statements_match_the_jdbc_sink_shape() -> None:
    up = sink_upsert_sql(orders())
    assert up.startswith(
        'INSERT INTO "Shop_cdc"."order" ("id", "Region", "select", "amount", "say ""hi""", '
        '"user", "_cdc_writetime", "_cdc_op", "_cdc_set", "_cdc_expiry", "_cdc_snapshot") '
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        'ON CONFLICT ("id", "Region", "select") DO UPDATE SET "amount" = EXCLUDED."amount", '
    )
    assert up.endswith('"_cdc_snapshot" = EXCLUDED."_cdc_snapshot"')
    tomb = sink_tombstone_upsert_sql(orders())
    assert 'ON CONFLICT ("_cdc_tombstone_id") DO UPDATE SET "id" = EXCLUDED."id"' in tomb


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        (
            (Column(name="k", cql_type="frozen<list<int>>", kind="partition_key", position=0),),
            "ks.t.k: a collection, tuple or UDT in the primary key",
        ),
        (
            (
                Column(name="k", cql_type="int", kind="partition_key", position=0),
                Column(name="_cdc_op", cql_type="int", kind="regular"),
            ),
            "ks.t._cdc_op: column names starting with",
        ),
        (
            (
                Column(name="k", cql_type="int", kind="partition_key", position=0),
                Column(name="c" * 64, cql_type="int", kind="regular"),
            ),
            "63 bytes",
        ),
    ],
)
def test_refusals(columns: tuple[Column, ...], match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        generate_ddl(TableModel(keyspace="ks", table="t", columns=columns))


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ((Column(name="v", cql_type="int", kind="regular"),), "at least one partition key"),
        (
            (
                Column(name="k", cql_type="int", kind="partition_key", position=0),
                Column(name="k", cql_type="int", kind="regular"),
            ),
            "duplicate column",
        ),
        (
            (Column(name="k", cql_type="int", kind="partition_key", position=1),),
            "positions must be",
        ),
    ],
)
def test_model_validation(columns: tuple[Column, ...], match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        TableModel(keyspace="ks", table="t", columns=columns)


def test_bad_type_string_is_rejected_at_model_build() -> None:
    with pytest.raises(SchemaError, match="cannot parse CQL type"):
        Column(name="v", cql_type="list<", kind="regular")


def test_static_columns_stay_in_the_raw_table_not_in_the_view() -> None:
    t = TableModel(
        keyspace="ks",
        table="t",
        columns=(
            Column(name="k", cql_type="int", kind="partition_key", position=0),
            Column(name="c", cql_type="int", kind="clustering", position=0),
            Column(name="s", cql_type="text", kind="static"),
            Column(name="v", cql_type="text", kind="regular"),
        ),
    )
    stmts = generate_ddl(t).statements
    raw = next(s for s in stmts if s.startswith("CREATE TABLE") and '"t"' in s.split("(")[0])
    view = next(s for s in stmts if s.startswith("CREATE OR REPLACE VIEW"))
    assert '"s" text' in raw
    assert '"s"' not in view


def test_the_token_column_reaches_existing_raw_tables_and_the_gate_keeps_it() -> None:
    """Decision 0154: the raw table's last column; an existing table gains it idempotently right
    after its CREATE; the gate keeps the stored token when an event has none, and a token
    arriving for a row that had none is a change (not skipped)."""
    ddl = generate_ddl(orders())
    raw = ddl.statements[2]
    assert raw.splitlines()[-4:-2] == ['  "_cdc_deleted_at" bigint,', '  "_cdc_token" bigint,']
    assert ddl.statements[3] == (
        'ALTER TABLE "Shop_cdc"."order" ADD COLUMN IF NOT EXISTS "_cdc_token" bigint'
    )
    lww = next(s for s in ddl.statements if '"order__lww"()' in s)
    update = lww.index("  IF TG_OP = 'UPDATE' THEN")
    keep = lww.index('NEW."_cdc_token" := coalesce(NEW."_cdc_token", OLD."_cdc_token");')
    assert update < keep < lww.index("  ELSE", update)
    skip = lww[lww.index("IS NOT DISTINCT FROM") - 200 : lww.index("RETURN NULL;")]
    assert 'NEW."_cdc_token"' in skip
    assert 'OLD."_cdc_token"' in skip

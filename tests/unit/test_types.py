"""CQL -> PostgreSQL type mapping: one case per CQL type, checked in the generated DDL."""

from __future__ import annotations

import pytest

from controlplane.core.ddl import RAW_STORAGE, generate_ddl
from controlplane.core.errors import CdcError
from controlplane.core.schema_model import (
    Column,
    CqlCollection,
    CqlCustom,
    CqlScalar,
    CqlTuple,
    CqlUdt,
    CqlVector,
    SchemaError,
    TableModel,
    parse_cql_type,
)
from controlplane.core.types import UnsupportedTypeError, pg_type


def table_with(cql_type: str) -> TableModel:
    return TableModel(
        keyspace="ks",
        table="t",
        columns=(
            Column(name="id", cql_type="int", kind="partition_key", position=0),
            Column(name="v", cql_type=cql_type, kind="regular"),
        ),
    )


@pytest.mark.parametrize(
    ("cql", "pg"),
    [
        ("ascii", "text"),
        ("text", "text"),
        ("varchar", "text"),
        ("int", "integer"),
        ("bigint", "bigint"),
        ("smallint", "smallint"),
        ("tinyint", "smallint"),
        ("boolean", "boolean"),
        ("float", "real"),
        ("double", "double precision"),
        ("decimal", "numeric"),
        ("varint", "numeric"),
        ("uuid", "uuid"),
        ("timeuuid", "uuid"),
        ("timestamp", "timestamptz"),
        ("date", "date"),
        ("time", "time"),
        ("blob", "bytea"),
        ("inet", "inet"),
        ("duration", "interval"),
    ],
)
def test_scalar_maps_in_ddl(cql: str, pg: str) -> None:
    if cql in RAW_STORAGE:  # stored as the agent sends it, converted in the view (below)
        return
    ddl = generate_ddl(table_with(cql))
    raw_table = ddl.statements[2]
    assert f'\n  "v" {pg},\n' in raw_table
    # the view passes the column through, hiding an expired cell
    assert 'THEN r."v" END AS "v"' in ddl.statements[-1]


@pytest.mark.parametrize("cql", ["text", "ascii", "varchar"])
def test_text_ties_compare_bytewise_like_cassandra(cql: str) -> None:
    gate = next(s for s in generate_ddl(table_with(cql)).statements if '__lww"()' in s)
    assert 'NEW."v" COLLATE "C" > OLD."v" COLLATE "C"' in gate


def test_non_text_ties_compare_natively() -> None:
    gate = next(s for s in generate_ddl(table_with("int")).statements if '__lww"()' in s)
    assert 'NEW."v" > OLD."v"' in gate
    assert "COLLATE" not in gate


@pytest.mark.parametrize(
    ("cql", "fragment"),
    [
        ("counter", "counter tables are skipped"),
        ("address", "non-frozen UDTs"),
        ("vector<float, 3>", "cannot parse vector types"),
        ("'org.apache.cassandra.db.marshal.BytesType'", "no PostgreSQL mapping"),
        ("frozen<list<counter>>", "no PostgreSQL mapping"),
    ],
)
def test_unsupported_types_name_the_column_and_a_remedy(cql: str, fragment: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        generate_ddl(table_with(cql))
    err = info.value
    assert isinstance(err, CdcError)
    assert err.message.startswith("ks.t.v: ")
    assert cql in err.message
    assert err.hint is not None
    assert fragment in err.hint


def test_pg_type_direct() -> None:
    col = Column(name="c", cql_type="timeuuid", kind="regular")
    assert pg_type(col, keyspace="k", table="t") == "uuid"


# ------------------------------------------------------------------ the type parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("text", CqlScalar("text")),
        ("TEXT", CqlScalar("text")),
        ("frozen<list<int>>", CqlCollection("list", (CqlScalar("int"),), frozen=True)),
        (
            "map<text, frozen<tuple<int, text>>>",
            CqlCollection(
                "map",
                (CqlScalar("text"), CqlTuple((CqlScalar("int"), CqlScalar("text")), frozen=True)),
            ),
        ),
        ("vector<float, 3>", CqlVector(CqlScalar("float"), 3)),
        ('frozen<"MyType">', CqlUdt("MyType", frozen=True)),
        ('"we""ird"', CqlUdt('we"ird')),
        ("address", CqlUdt("address")),
        (
            "set<frozen<map<uuid, blob>>>",
            CqlCollection(
                "set",
                (CqlCollection("map", (CqlScalar("uuid"), CqlScalar("blob")), frozen=True),),
            ),
        ),
        ("'org.apache.Foo'", CqlCustom("org.apache.Foo")),
    ],
)
def test_parse_cql_type(text: str, expected: object) -> None:
    assert parse_cql_type(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "frozen<list<int>>",
        "map<text, frozen<tuple<int, text>>>",
        "vector<float, 3>",
        'frozen<"MyType">',
    ],
)
def test_parse_round_trips(text: str) -> None:
    assert str(parse_cql_type(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "list<int",
        "map<int>",
        "list<int, int>",
        "vector<float>",
        "vector<float, 0>",
        "int>",
        "a b",
    ],
)
def test_parse_errors_are_schema_errors(text: str) -> None:
    with pytest.raises(SchemaError, match="CQL type"):
        parse_cql_type(text)


@pytest.mark.parametrize(
    "cql",
    [
        "list<int>",
        "set<text>",
        "map<text, int>",
        "frozen<list<int>>",
        "frozen<tuple<int, text>>",
        "tuple<int, text>",
        "frozen<address>",
        "frozen<map<text, frozen<list<int>>>>",
        "list<frozen<set<int>>>",
    ],
)
def test_collections_tuples_and_frozen_udts_are_jsonb(cql: str) -> None:
    ddl = generate_ddl(table_with(cql)).sql
    assert '"v" jsonb' in ddl


@pytest.mark.parametrize(
    ("cql", "raw", "view"),
    [
        ("time", '"v" bigint', "time '00:00' + "),
        ("duration", '"v" bigint', "justify_interval("),
        ("inet", '"v" text', "regexp_replace("),
    ],
)
def test_types_the_agent_sends_in_another_form_convert_in_the_view(
    cql: str, raw: str, view: str
) -> None:
    ddl = generate_ddl(table_with(cql)).sql
    assert raw in ddl
    assert view in ddl


def test_empty_nonfrozen_collection_is_null() -> None:
    gate = next(s for s in generate_ddl(table_with("set<int>")).statements if '__lww"()' in s)
    assert """IF NEW."v" IN ('[]'::jsonb, '{}'::jsonb) THEN""" in gate
    gate = next(
        s for s in generate_ddl(table_with("frozen<set<int>>")).statements if '__lww"()' in s
    )
    assert 'IF NEW."v" IN' not in gate

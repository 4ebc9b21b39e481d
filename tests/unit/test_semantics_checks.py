"""semantics_checks: what `cdcctl validate` says the source cannot capture faithfully."""

from __future__ import annotations

import pytest

from controlplane.core.schema_model import Column, TableModel
from controlplane.core.semantics_checks import TableOptions, check_table, has_errors


def table(*cols: tuple[str, str, str]) -> TableModel:
    columns = [Column(name="id", cql_type="int", kind="partition_key", position=0)]
    columns += [Column(name=n, cql_type=t, kind=k) for n, t, k in cols]  # type: ignore[arg-type]
    return TableModel(keyspace="ks", table="t", columns=tuple(columns))


def codes(t: TableModel, opts: TableOptions | None = None) -> list[tuple[str, str]]:
    return [(f.severity, f.code) for f in check_table(t, opts or TableOptions(cdc=True))]


def test_a_plain_table_has_no_findings() -> None:
    assert codes(table(("v", "text", "regular"), ("f", "frozen<list<int>>", "regular"))) == []


@pytest.mark.parametrize(
    ("col", "expected"),
    [
        (("c", "counter", "regular"), ("error", "counter-table")),
        (("v", "vector<float, 3>", "regular"), ("error", "vector-breaks-agent")),
        (("u", "addr", "regular"), ("error", "nonfrozen-udt-breaks-agent")),
        (("l", "list<frozen<set<int>>>", "regular"), ("error", "nested-set-breaks-agent-snapshot")),
        (
            ("n", "frozen<list<frozen<map<timestamp, int>>>>", "regular"),
            ("error", "nested-collection-breaks-agent"),
        ),
        (
            ("n", "map<text, frozen<list<decimal>>>", "regular"),
            ("error", "nested-collection-breaks-agent"),
        ),
        (
            ("n", "list<frozen<list<frozen<tuple<int>>>>>", "regular"),
            ("error", "nested-collection-breaks-agent"),
        ),
        (("n", "list<frozen<list<date>>>", "regular"), ("error", "nested-date-shifted")),
        (("b", "frozen<set<blob>>", "regular"), ("error", "nested-blob-wrong-bytes")),
        (("b", "tuple<int, blob>", "regular"), ("error", "nested-blob-wrong-bytes")),
        (("b", "list<frozen<list<blob>>>", "regular"), ("error", "nested-blob-wrong-bytes")),
        (("Name", "text", "regular"), ("error", "identifier-breaks-agent-snapshot")),
        (("select", "text", "regular"), ("error", "identifier-breaks-agent-snapshot")),
        (("l", "list<int>", "regular"), ("warning", "nonfrozen-collection")),
        (("m", "map<text, int>", "regular"), ("warning", "nonfrozen-collection")),
        (("s", "text", "static"), ("warning", "static-column")),
        (("t", "time", "regular"), ("info", "nanoseconds-truncated")),
    ],
)
def test_column_findings(col: tuple[str, str, str], expected: tuple[str, str]) -> None:
    found = check_table(table(col), TableOptions(cdc=True))
    assert expected in [(f.severity, f.code) for f in found]
    f = next(f for f in found if f.code == expected[1])
    assert f.column == col[0]
    assert f.message.startswith("ks.t")
    assert f.remedy


@pytest.mark.parametrize(
    "cql",
    [
        "list<frozen<list<int>>>",  # ints, text, floats, booleans, time: nothing to convert
        "frozen<map<text, frozen<list<double>>>>",
        "frozen<list<frozen<tuple<timestamp, frozen<list<decimal>>>>>>",  # a tuple starts over
        "list<timestamp>",
        "map<timestamp, blob>",  # non-frozen: each element its own buffer
        "list<blob>",
        "blob",
    ],
)
def test_nested_values_the_agent_carries(cql: str) -> None:
    found = {f.code for f in check_table(table(("n", cql, "regular")), TableOptions(cdc=True))}
    assert not found & {
        "nested-collection-breaks-agent",
        "nested-date-shifted",
        "nested-blob-wrong-bytes",
    }


def test_a_blob_in_a_composite_partition_key_is_an_error() -> None:
    composite = TableModel(
        keyspace="ks",
        table="t",
        columns=(
            Column(name="b", cql_type="blob", kind="partition_key", position=0),
            Column(name="d", cql_type="date", kind="partition_key", position=1),
        ),
    )
    found = check_table(composite, TableOptions(cdc=True))
    (f,) = [f for f in found if f.code == "composite-key-blob-wrong-bytes"]
    assert (f.severity, f.column) == ("error", "b")
    assert has_errors(found)
    # a blob alone in the partition key is carried exactly (the e2e token test's k_blob)
    single = TableModel(
        keyspace="ks",
        table="t",
        columns=(Column(name="b", cql_type="blob", kind="partition_key", position=0),),
    )
    assert codes(single) == []


def test_table_options() -> None:
    opts = TableOptions(
        cdc=False,
        materialized_views=("by_v",),
        secondary_indexes=("t_v_idx",),
        triggers=("audit",),
        default_time_to_live=60,
    )
    got = codes(table(("v", "text", "regular")), opts)
    assert got[0] == ("error", "cdc-disabled")  # errors first
    assert set(got) == {
        ("error", "cdc-disabled"),
        ("info", "materialized-view-skipped"),
        ("info", "secondary-index-skipped"),
        ("warning", "trigger-unsupported"),
        ("info", "default-ttl"),
    }


def test_missing_table_and_has_errors() -> None:
    found = check_table(table(), TableOptions(cdc=False, exists=False))
    assert [f.code for f in found] == ["table-missing"]
    assert has_errors(found)
    assert not has_errors(check_table(table(("l", "list<int>", "regular")), TableOptions(cdc=True)))
    assert found[0].as_dict()["severity"] == "error"


ADDR = ("addr", (("street", "text"), ("photo", "blob")))
POINT = ("point", (("at", "timestamp"), ("tags", "frozen<set<text>>")))
PLAIN = ("plain", (("n", "int"), ("s", "text")))


@pytest.mark.parametrize(
    ("cql", "udts", "expected"),
    [
        # a blob field is a slice of the UDT's serialized value, like a blob in a tuple
        ("frozen<addr>", (ADDR,), {"nested-blob-wrong-bytes"}),
        # a UDT inside a collection inside a collection: its fields are not converted
        ("frozen<list<frozen<list<frozen<plain>>>>>", (PLAIN,), {"nested-collection-breaks-agent"}),
        # a set inside a UDT is a nested set, as inside a tuple
        ("frozen<point>", (POINT,), {"nested-set-breaks-agent-snapshot"}),
        # nothing wrong inside: no finding, with or without the field types
        ("frozen<plain>", (PLAIN,), set()),
        ("frozen<addr>", (), set()),  # field types unknown (offline): nothing can be said
    ],
)
def test_udt_fields_are_looked_into_when_known(
    cql: str, udts: tuple[tuple[str, tuple[tuple[str, str], ...]], ...], expected: set[str]
) -> None:
    opts = TableOptions(cdc=True, udts=udts)
    found = {f.code for f in check_table(table(("u", cql, "regular")), opts)}
    nested = {
        "nested-blob-wrong-bytes",
        "nested-collection-breaks-agent",
        "nested-set-breaks-agent-snapshot",
        "nested-date-shifted",
    }
    assert found & nested == expected


def test_a_udt_in_a_collection_in_a_collection_is_named_udt() -> None:
    opts = TableOptions(cdc=True, udts=(PLAIN,))
    t = table(("u", "frozen<list<frozen<list<frozen<plain>>>>>", "regular"))
    f = next(f for f in check_table(t, opts) if f.code == "nested-collection-breaks-agent")
    assert "UDT values" in f.message

"""core.schema_evolution: the per-table diff and the slot-remapping migration."""

from __future__ import annotations

from controlplane.core.schema_evolution import plan_table, sinks_to_stop
from controlplane.core.schema_model import Column, TableModel


def model(*regular: tuple[str, str]) -> TableModel:
    cols = [Column(name="id", cql_type="int", kind="partition_key", position=0)]
    cols += [Column(name=n, cql_type=t, kind="regular") for n, t in regular]
    return TableModel(keyspace="ks", table="t", columns=tuple(cols))


ACTUAL = {"id": "integer", "b": "text", "d": "integer", "_cdc_wt": "bigint[]"}


def test_new_table_is_created() -> None:
    m = plan_table(model(("b", "text")), None)
    assert m.action == "create"
    assert any(s.startswith("CREATE TABLE") for s in m.statements)


def test_unchanged() -> None:
    assert plan_table(model(("b", "text"), ("d", "int")), ACTUAL).action == "unchanged"


def test_add_column_remaps_slots_in_one_locked_migration() -> None:
    m = plan_table(model(("b", "text"), ("c", "timestamp"), ("d", "int")), ACTUAL)
    assert (m.action, m.added, m.summary) == ("alter", ("c",), "+c")
    sql = "\n".join(m.statements)
    assert m.statements[0].startswith("LOCK TABLE")
    assert 'ADD COLUMN "c" timestamptz' in sql
    # old slots: b=1, d=2; new: b=1, c=2 (new, null), d=3
    assert '"_cdc_wt" = ARRAY["_cdc_wt"[1], NULL::bigint, "_cdc_wt"[2]]::bigint[]' in sql
    assert sql.index("DISABLE TRIGGER") < sql.index("UPDATE") < sql.index("ENABLE TRIGGER")
    assert "CREATE OR REPLACE VIEW" in sql


def test_drop_column() -> None:
    m = plan_table(model(("d", "int")), ACTUAL)
    assert (m.action, m.dropped) == ("alter", ("b",))
    assert 'ARRAY["_cdc_wt"[2]]::bigint[]' in "\n".join(m.statements)


def test_type_change_is_incompatible_and_has_no_statements() -> None:
    m = plan_table(model(("b", "int"), ("d", "int")), ACTUAL)
    assert (m.action, m.changed, m.statements) == ("incompatible", ("b",), ())
    assert m.summary == "~b"


def test_types_named_differently_by_format_type_match() -> None:
    actual = {"id": "integer", "ts": "timestamp with time zone", "j": "jsonb", "tm": "bigint"}
    m = plan_table(model(("ts", "timestamp"), ("j", "frozen<list<int>>"), ("tm", "time")), actual)
    assert m.action == "unchanged"


def test_only_lww_sinks_of_tables_altered_in_place_are_stopped_around_the_ddl() -> None:
    migrations = [
        ("a", "alter"),
        ("a", "unchanged"),
        ("b", "alter"),
        ("c", "create"),
        ("d", "incompatible"),
        ("e", "unchanged"),
        ("f", "alter"),
        ("f", "alter"),
    ]
    writers = {"a": "lww", "b": "jdbc", "c": "lww", "d": "lww", "e": "lww", "f": "lww"}
    # jdbc names each record's fields and goes through the gate: never stopped
    assert sinks_to_stop(migrations, writers) == ["a", "f"]
    assert sinks_to_stop([], writers) == []
    assert sinks_to_stop([("x", "alter")], {}) == []  # a pipeline of no known writer

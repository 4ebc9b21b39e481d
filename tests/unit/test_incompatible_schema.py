"""Decision 0050, the pure parts: an incompatible change (a column's type, the primary key) is
found, worded, rendered as a sink that leaves that table's topic out, planned as a stop, and a
dropped-and-recreated table makes the agent restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.core.errors import CdcError, IncompatibleSchemaError
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.plan import (
    FieldChange,
    Plan,
    ResourceChange,
    StoppedTable,
    plan_connector,
    recreated_tables,
    with_recreated_tables,
)
from controlplane.core.render import (
    NO_TOPIC_REGEX,
    STOPPED_KEY,
    RenderContext,
    render_sink_config,
    stopped_tables,
    without_properties,
)
from controlplane.core.schema_evolution import KeyShape, incompatible_error, plan_table
from controlplane.core.schema_model import Column, TableModel

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml"
ACTUAL = {"id": "integer", "b": "integer", "_cdc_wt": "bigint[]"}
PG_KEY = KeyShape(("id",), ("id",))


def model(b_type: str = "int", *, clustering_b: bool = False) -> TableModel:
    cols = [Column(name="id", cql_type="int", kind="partition_key", position=0)]
    if clustering_b:
        cols.append(Column(name="b", cql_type=b_type, kind="clustering", position=0))
    else:
        cols.append(Column(name="b", cql_type=b_type, kind="regular"))
    return TableModel(keyspace="ks", table="t1", columns=tuple(cols))


@pytest.fixture
def pipeline() -> Pipeline:
    return load_manifests([EXAMPLE])[0].pipeline


@pytest.fixture
def ctx(tmp_path: Path) -> RenderContext:
    return RenderContext(
        state_dir=tmp_path / "state",
        cassandra_config=tmp_path / "state" / "cassandra.yaml",
    )


# --- detection and wording -----------------------------------------------------------------


def test_unchanged_key_is_compatible() -> None:
    assert plan_table(model(), ACTUAL, PG_KEY).action == "unchanged"


def test_type_change_names_column_and_both_types() -> None:
    m = plan_table(model("text"), ACTUAL, PG_KEY)
    assert (m.action, m.changed, m.summary) == ("incompatible", ("b",), "~b")
    assert m.reason == "column b changed type integer -> text"
    assert m.statements == ()


def test_primary_key_change_is_incompatible() -> None:
    m = plan_table(model(clustering_b=True), ACTUAL, PG_KEY)
    assert m.action == "incompatible"
    assert m.summary == "~PRIMARY KEY"
    assert m.reason == "primary key changed ((id)) -> ((id), b)"


def test_partition_split_change_is_incompatible() -> None:
    # same columns, same order, but (id, b) was the partition key and is now id + clustering b
    m = plan_table(model(clustering_b=True), ACTUAL, KeyShape(("id", "b"), ("id", "b")))
    assert m.reason == "primary key changed ((id, b)) -> ((id), b)"


def test_unknown_key_is_not_compared() -> None:
    assert plan_table(model(clustering_b=True), ACTUAL, None).action == "unchanged"


def test_compatible_migration_has_no_reason() -> None:
    m = plan_table(model(), {**ACTUAL, "gone": "text"}, PG_KEY)
    assert (m.action, m.reason) == ("alter", "")


def test_error_message_names_table_column_and_remedy() -> None:
    err = incompatible_error([("p", "ks.t1", "column b changed type integer -> text")])
    assert isinstance(err, IncompatibleSchemaError)
    assert isinstance(err, CdcError)
    assert err.exit_code == 7
    assert "ks.t1 of pipeline p: column b changed type integer -> text" in err.message
    assert "Every other table was applied" in err.message
    assert err.hint is not None
    assert "--rebuild ks.t1 --yes" in err.hint


# --- rendering -----------------------------------------------------------------------------


def test_stopped_table_leaves_the_topic_list_and_is_recorded(
    pipeline: Pipeline, ctx: RenderContext
) -> None:
    normal = render_sink_config(pipeline, ctx)
    assert normal["topics"] == "demo.demo.users,demo.demo.orders"
    assert STOPPED_KEY not in normal
    config = render_sink_config(pipeline, ctx, {"users": "column b changed type int -> text"})
    assert config["topics"] == "demo.demo.orders"
    assert stopped_tables(config) == {"users": "column b changed type int -> text"}
    # the routing and everything else are the same: only the subscription changes
    same = {k for k in normal if normal[k] == config.get(k)}
    assert set(normal) - same == {"topics", "cdcctl.config-hash"}
    # and it is a difference the plan shows, so apply PUTs it
    change = plan_connector("demo", "demo-jdbc-sink", config, normal)
    assert change.action == "update"
    assert {f.key for f in change.fields} == {"topics", "cdcctl.config-hash", STOPPED_KEY}


def test_every_table_stopped_subscribes_to_nothing(pipeline: Pipeline, ctx: RenderContext) -> None:
    config = render_sink_config(pipeline, ctx, {"users": "x", "orders": "y"})
    assert "topics" not in config
    assert config["topics.regex"] == NO_TOPIC_REGEX
    assert json.loads(config[STOPPED_KEY]) == {"orders": "y", "users": "x"}


def test_stopped_tables_of_foreign_or_broken_configs() -> None:
    assert stopped_tables({}) == {}
    assert stopped_tables({STOPPED_KEY: "not json"}) == {}
    assert stopped_tables({STOPPED_KEY: "[1]"}) == {}


# --- plan ----------------------------------------------------------------------------------


def test_plan_lines_show_the_stop_first() -> None:
    plan = Plan(
        [
            ResourceChange(
                "p", "connector", "p-jdbc-sink", "update", (FieldChange("topics", "a,b", "b"),)
            )
        ],
        [StoppedTable("p", "ks.t1", "column b changed type integer -> text")],
    )
    lines = plan.lines()
    assert lines[0] == "! stop table ks.t1 [p]  (column b changed type integer -> text)"
    assert lines[-1].endswith("1 table(s) stopped.")
    assert plan.to_dict()["stopped"] == [
        {"pipeline": "p", "table": "ks.t1", "reason": "column b changed type integer -> text"}
    ]


def test_recreated_tables_restart_the_agent() -> None:
    recorded = {"ks.t1": "id-1", "ks.t2": "id-2"}
    current = {"ks.t1": "id-9", "ks.t2": "id-2", "ks.new": "id-3"}
    recreated = recreated_tables(recorded, current)
    assert recreated == {"ks.t1": ("id-1", "id-9")}  # never-recorded tables are not "recreated"
    noop = ResourceChange("p", "agent", "/a/agent.properties", "noop")
    change = with_recreated_tables(noop, recreated)
    assert change.action == "update"
    assert change.fields == (FieldChange("table-id ks.t1", "id-1", "id-9"),)
    assert "recreated" in change.reason
    assert with_recreated_tables(noop, {}) is noop


def test_snapshot_offsets_forget_only_the_recreated_table() -> None:
    text = "#Wed Nov 25 20:31:33 UTC 2026\nks.t1=\\:-1\nks.t10=\\:-1\nother.t1=\\:-1\n"
    assert without_properties(text, {"ks.t1"}) == (
        "#Wed Nov 25 20:31:33 UTC 2026\nks.t10=\\:-1\nother.t1=\\:-1\n"
    )


def test_rebuild_asks_before_dropping_tables(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from controlplane.cli import app

    args = ["schema", "apply", "-f", str(tmp_path / "none.yaml"), "--rebuild", "ks.t1"]
    result = CliRunner().invoke(app, args, input="n\n")
    assert result.exit_code != 0
    assert "Drop the PostgreSQL tables of ks.t1" in result.output
    assert "Aborted" in result.output

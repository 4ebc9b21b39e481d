"""`spec.sink.writer: jdbc | lww` (decision 0127): manifest -> connector config."""

from __future__ import annotations

import pytest

from controlplane.core.ddl import generate_merge
from controlplane.core.manifest import manifest_json_schema
from controlplane.core.manifest_loader import check_text, load_text
from controlplane.core.render import (
    LWW_SINK_CONNECTOR_CLASS,
    SINK_CONNECTOR_CLASS,
    RenderContext,
    lww_sink_tables_config,
    render_sink_config,
)
from controlplane.core.schema_model import Column, TableModel

MANIFEST = """\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata: {{name: demo}}
spec:
  source:
    cassandra: {{contactPoints: ["127.0.0.1:9042"], keyspace: demo, tables: [users, orders]}}
  sink:
{writer}    postgres:
      host: 127.0.0.1
      user: cdc
      passwordSecret: {{env: CDC_PG_PASSWORD}}
"""


def table(name: str) -> TableModel:
    return TableModel(
        keyspace="demo",
        table=name,
        columns=(
            Column(name="id", cql_type="int", kind="partition_key", position=0),
            Column(name="v", cql_type="text", kind="regular"),
        ),
    )


def config(writer: str, **kwargs: object) -> dict[str, str]:
    line = f"    writer: {writer}\n" if writer else ""
    pipeline = load_text(MANIFEST.format(writer=line))[0].pipeline
    return render_sink_config(pipeline, RenderContext(), **kwargs)  # type: ignore[arg-type]


def test_default_is_the_stock_sink_unchanged() -> None:
    assert config("") == config("jdbc")
    assert config("")["connector.class"] == SINK_CONNECTOR_CLASS
    assert not any(k.startswith("lww.") for k in config(""))


def test_lww_renders_the_own_sink_with_the_same_shared_keys() -> None:
    tables = [table("users"), table("orders")]
    jdbc, lww = config("jdbc"), config("lww", tables=tables)
    assert lww["connector.class"] == LWW_SINK_CONNECTOR_CLASS
    assert lww["name"] == jdbc["name"]  # one connector, one consumer group, either writer
    shared = (
        "key.converter",
        "value.converter",
        "transforms",
        "errors.",
        "cdc.retry.",
        "cdcctl.",
        "connection.",
        "topics",
        "tasks.max",
        "batch.size",
    )
    for key, value in jdbc.items():
        if key.startswith(shared) and key != "cdcctl.config-hash" and "pool" not in key:
            assert lww.get(key) == value, key
    assert not any(k.startswith(("insert.mode", "collection.name", "connection.pool")) for k in lww)
    expected = lww_sink_tables_config(generate_merge(t) for t in tables)
    assert {k: v for k, v in lww.items() if k.startswith("lww.")} == expected
    assert lww["lww.tables"] == "users__tombstones,users,orders__tombstones,orders"


def test_lww_leaves_stopped_tables_out() -> None:
    lww = config("lww", tables=[table("users"), table("orders")], stopped={"orders": "why"})
    assert lww["lww.tables"] == "users__tombstones,users"


def test_lww_without_table_models_renders_no_tables() -> None:
    assert config("lww")["lww.tables"] == ""


def test_a_wrong_writer_is_reported_at_its_position() -> None:
    text = MANIFEST.format(writer="    writer: fast\n")
    _, problems = check_text(text, "p.yaml")
    assert [(p.location, p.message) for p in problems] == [
        ("p.yaml:8:13", "spec.sink.writer: Input should be 'jdbc' or 'lww'")
    ]


@pytest.mark.parametrize("writer", ["jdbc", "lww"])
def test_json_schema_lists_the_writers(writer: str) -> None:
    sink = manifest_json_schema()["$defs"]["Sink"]["properties"]["writer"]
    assert writer in sink["enum"]
    assert sink["default"] == "jdbc"

"""`spec.sink.writer: jdbc | lww` (decision 0127): manifest -> connector config."""

from __future__ import annotations

import urllib.parse

import pytest

from controlplane.core.ddl import generate_merge
from controlplane.core.manifest import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SINK_WRITER,
    manifest_json_schema,
)
from controlplane.core.manifest_loader import check_text, load_text
from controlplane.core.render import (
    LWW_SINK_CONNECTOR_CLASS,
    SINK_CONNECTOR_CLASS,
    TOKEN_TABLE_PREFIX,
    TOKEN_TABLES_KEY,
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


def test_default_is_the_own_sink() -> None:
    """Decision 0149: no writer in the manifest is `lww`, with its batch of 2000."""
    tables = [table("users"), table("orders")]
    assert config("", tables=tables) == config("lww", tables=tables)
    assert config("")["connector.class"] == LWW_SINK_CONNECTOR_CLASS
    assert config("")["batch.size"] == "2000"
    # a batch of 2000 needs a poll of 2000 (put() applies what one poll returns)
    assert config("")["consumer.override.max.poll.records"] == "2000"


def test_jdbc_is_the_stock_sink_with_its_batch_of_500() -> None:
    jdbc = config("jdbc")
    assert jdbc["connector.class"] == SINK_CONNECTOR_CLASS
    assert not any(k.startswith("lww.") for k in jdbc)
    assert jdbc["batch.size"] == "500"
    assert "consumer.override.max.poll.records" not in jdbc  # independent of the override policy


@pytest.mark.parametrize("writer", ["", "jdbc", "lww"])
@pytest.mark.parametrize("size", [1, 500, 2000, 5000])
def test_an_explicit_batch_size_wins(writer: str, size: int) -> None:
    line = f"    writer: {writer}\n" if writer else ""
    text = MANIFEST.format(writer=f"{line}    batchSize: {size}\n")
    pipeline = load_text(text)[0].pipeline
    assert pipeline.spec.sink.batch_size == size
    rendered = render_sink_config(pipeline, RenderContext())
    assert rendered["batch.size"] == str(size)
    assert rendered.get("consumer.override.max.poll.records") == (str(size) if size > 500 else None)


def test_the_batch_default_follows_the_writer() -> None:
    for writer, size in DEFAULT_BATCH_SIZE.items():
        line = f"    writer: {writer}\n"
        assert load_text(MANIFEST.format(writer=line))[0].pipeline.spec.sink.batch_size == size
    default = load_text(MANIFEST.format(writer=""))[0].pipeline.spec.sink
    assert default.batch_size == DEFAULT_BATCH_SIZE[DEFAULT_SINK_WRITER]


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
    )  # batch.size differs by default (decision 0149): test_an_explicit_batch_size_wins
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
    assert sink["default"] == DEFAULT_SINK_WRITER == "lww"


def test_json_schema_gives_the_batch_default_by_writer() -> None:
    batch = manifest_json_schema()["$defs"]["Sink"]["properties"]["batchSize"]
    assert "default" not in batch  # no single default: an editor must not fill one in
    assert "2000 for `lww`, 500 for `jdbc`" in batch["description"]


def composite(name: str, first: str) -> TableModel:
    return TableModel(
        keyspace="demo",
        table=name,
        columns=(
            Column(name=first, cql_type="text", kind="partition_key", position=0),
            Column(name="b", cql_type="decimal", kind="partition_key", position=1),
            Column(name="c", cql_type="int", kind="clustering", position=0),
            Column(name="v", cql_type="text", kind="regular"),
        ),
    )


@pytest.mark.parametrize("writer", ["jdbc", "lww"])
def test_both_writers_tell_the_transform_each_tables_partition_key(writer: str) -> None:
    """Decision 0154: the transform's token spec, rendered for either writer from the table
    models; column names and types percent-encoded (PartitionToken decodes them)."""
    hostile = 'a,b:c%+ü "x"'
    rendered = config(writer, tables=[table("users"), composite("orders", hostile)])
    assert rendered[TOKEN_TABLES_KEY] == "demo.users,demo.orders"
    assert rendered[TOKEN_TABLE_PREFIX + "demo.users"] == "id:int"
    spec = rendered[TOKEN_TABLE_PREFIX + "demo.orders"]
    pairs = [item.split(":") for item in spec.split(",")]
    decoded = [tuple(urllib.parse.unquote(x) for x in pair) for pair in pairs]
    assert decoded == [(hostile, "text"), ("b", "decimal")]
    assert all(len(p) == 2 for p in pairs)  # nothing unencoded splits an entry


@pytest.mark.parametrize("writer", ["jdbc", "lww"])
def test_no_token_spec_without_models_or_for_stopped_tables(writer: str) -> None:
    assert not any(k.startswith("transforms.cassandraToRow.token") for k in config(writer))
    rendered = config(writer, tables=[table("users"), table("orders")], stopped={"orders": "why"})
    assert rendered[TOKEN_TABLES_KEY] == "demo.users"
    assert TOKEN_TABLE_PREFIX + "demo.orders" not in rendered

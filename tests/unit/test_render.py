"""Rendering a pipeline into the sink connector config, agent properties and driver.conf."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import load_manifests, load_text
from controlplane.core.render import (
    HASH_KEY,
    RenderContext,
    agent_properties,
    config_hash,
    escape_property,
    is_owned,
    normalise_config,
    parse_properties,
    password_placeholder,
    render_agent_properties,
    render_driver_conf,
    render_pipeline,
    render_sink_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml"
SECRET = "s3cr3t-value-that-must-never-appear"


@pytest.fixture
def pipeline() -> Pipeline:
    return load_manifests([EXAMPLE])[0].pipeline


@pytest.fixture
def jdbc_pipeline(pipeline: Pipeline) -> Pipeline:
    """The example with `writer: jdbc` and no batchSize: the stock sink's defaults."""
    data = pipeline.model_dump(by_alias=True, exclude_unset=True)
    data["spec"]["sink"]["writer"] = "jdbc"
    del data["spec"]["sink"]["batchSize"]
    return Pipeline.model_validate(data)


@pytest.fixture
def ctx(tmp_path: Path) -> RenderContext:
    return RenderContext(
        state_dir=tmp_path / "state",
        cassandra_config=tmp_path / "state" / "cassandra" / "cassandra.yaml",
        agent_http_port=8001,
    )


def test_sink_config(jdbc_pipeline: Pipeline, ctx: RenderContext) -> None:
    config = render_sink_config(jdbc_pipeline, ctx)
    expected = {
        "name": "demo-jdbc-sink",
        # Debezium's JDBC sink, its tasks riding through a PostgreSQL outage (decision 0103)
        "connector.class": "io.casscdcpg.sink.RetryingJdbcSinkConnector",
        "tasks.max": "1",
        "cdc.retry.timeout.ms": "600000",
        "cdc.retry.backoff.initial.ms": "1000",
        "cdc.retry.backoff.max.ms": "15000",
        "connection.url": (
            "jdbc:postgresql://127.0.0.1:5432/cdc?stringtype=unspecified"
            "&ApplicationName=cdc-sink-demo&sslmode=verify-full"
            "&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory"
        ),
        "connection.username": "cdc",
        "connection.password": "${vault:secret/cdc/postgres:password}",
        "connection.pool.min_size": "1",
        "connection.pool.max_size": "4",
        "connection.pool.acquire_increment": "1",
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "delete.enabled": "false",
        "truncate.enabled": "false",
        "schema.evolution": "none",
        "use.reduction.buffer": "false",
        "batch.size": "500",
        "collection.name.format": "demo_cdc.${topic}",
        "quote.identifiers": "true",
        "transforms.cassandraToRow.tombstones.topic.suffix": ".tombstones",
        "transforms": "cassandraToRow,tombstoneTable,rowTable",
        "transforms.cassandraToRow.type": "io.casscdcpg.transforms.CassandraToRow",
        "transforms.tombstoneTable.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.tombstoneTable.replacement": "$1__tombstones",
        "transforms.rowTable.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.rowTable.replacement": "$1",
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": "demo.dlq",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true",
        # the stock JsonConverter's results for keys, without re-parsing the key's schema
        # per record (decision 0147)
        "key.converter": "io.casscdcpg.transforms.CassandraJsonConverter",
        "key.converter.schemas.enable": "true",
        # reads the agent's "NaN"/"Infinity" as such (the stock converter reads 0.0)
        "value.converter": "io.casscdcpg.transforms.CassandraJsonConverter",
        "value.converter.schemas.enable": "true",
        "cdcctl.owner": "cdcctl",
        "cdcctl.pipeline": "demo",
    }
    for key, value in expected.items():
        assert config[key] == value, key
    assert "consumer.override.max.poll.records" not in config  # batch.size fits the default 500


def _route(config: dict[str, str], topic: str) -> str:
    """Apply the two RegexRouters the way Kafka Connect does (Matcher.matches + replaceFirst)."""
    for alias in ("tombstoneTable", "rowTable"):
        regex = config[f"transforms.{alias}.regex"]
        replacement = config[f"transforms.{alias}.replacement"].replace("$1", r"\1")
        if re.fullmatch(regex, topic):
            topic = re.sub(regex, replacement, topic, count=1)
    return topic


def test_standby_tasks_add_to_tasks_max(pipeline: Pipeline, ctx: RenderContext) -> None:
    sink = pipeline.spec.sink.model_copy(update={"tasks_max": 3, "standby_tasks": 1})
    spec = pipeline.spec.model_copy(update={"sink": sink})
    config = render_sink_config(pipeline.model_copy(update={"spec": spec}), ctx)
    assert config["tasks.max"] == "4"


def test_topics_and_target_tables(jdbc_pipeline: Pipeline, ctx: RenderContext) -> None:
    config = render_sink_config(jdbc_pipeline, ctx)
    assert config["topics"] == "demo.demo.users,demo.demo.orders"
    fmt = config["collection.name.format"]
    cases = {
        "demo.demo.users": "demo_cdc.users",
        "demo.demo.orders": "demo_cdc.orders",
        # The SMT renames partition/range tombstones to <topic>.tombstones before the routers.
        "demo.demo.users.tombstones": "demo_cdc.users__tombstones",
        "demo.demo.orders.tombstones": "demo_cdc.orders__tombstones",
    }
    for topic, table in cases.items():
        # DefaultCollectionNamingStrategy: ${topic} with dots replaced by underscores.
        routed = _route(config, topic)
        assert fmt.replace("${topic}", routed.replace(".", "_")) == table


def test_no_secret_value_anywhere(
    pipeline: Pipeline, ctx: RenderContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDC_PG_PASSWORD", SECRET)
    rendered = render_pipeline(pipeline, ctx)
    assert rendered.managed_agent is not None
    agent = rendered.managed_agent
    blobs = [*rendered.sink_config.values(), agent.properties, agent.driver_conf]
    assert all(SECRET not in blob for blob in blobs)
    assert rendered.sink_config["connection.password"] == password_placeholder(pipeline)
    assert rendered.sink_config["connection.password"] == "${vault:secret/cdc/postgres:password}"


def test_every_value_is_a_string(pipeline: Pipeline, ctx: RenderContext) -> None:
    config = render_sink_config(pipeline, ctx)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in config.items())
    assert list(config) == sorted(config)


def test_rendering_is_deterministic_and_hash_tracks_content(
    pipeline: Pipeline, ctx: RenderContext
) -> None:
    a, b = render_sink_config(pipeline, ctx), render_sink_config(pipeline, ctx)
    assert a == b
    assert a[HASH_KEY] == config_hash(a)
    bigger = pipeline.model_copy(
        update={
            "spec": pipeline.spec.model_copy(
                update={"sink": pipeline.spec.sink.model_copy(update={"batch_size": 3000})}
            )
        }
    )
    c = render_sink_config(bigger, ctx)
    assert c[HASH_KEY] != a[HASH_KEY]
    assert c["batch.size"] == "3000"
    assert c["consumer.override.max.poll.records"] == "3000"


def test_ownership(pipeline: Pipeline, ctx: RenderContext) -> None:
    config = render_sink_config(pipeline, ctx)
    assert is_owned(config)
    assert is_owned(config, "demo")
    assert not is_owned(config, "other")
    assert not is_owned({"name": "hand-made"})


def test_normalise_config() -> None:
    assert normalise_config({"b": True, "a": 5, "c": None, "d": ["x", "y"], "e": "s"}) == {
        "a": "5",
        "b": "true",
        "d": "x,y",
        "e": "s",
    }


def test_agent_properties(pipeline: Pipeline, ctx: RenderContext) -> None:
    props = agent_properties(pipeline, ctx)
    base = ctx.state_dir / "agent" / "node1"
    assert props == {
        "connector.name": "demo-cassandra-agent",
        "cassandra.node.id": "node1",
        "topic.prefix": "demo",
        "cassandra.config": str(ctx.cassandra_config),
        "cassandra.driver.config.file": str(base / "driver.conf"),
        "commit.log.relocation.dir": str(base / "relocation"),
        "offset.backing.store.dir": str(base / "offsets"),
        "offset.flush.interval.ms": "1000",
        "max.offset.flush.size": "100",
        "commit.log.post.processing.enabled": "true",
        "commit.log.real.time.processing.enabled": "true",
        "commit.log.marked.complete.poll.interval.ms": "100",
        "cdc.dir.poll.interval.ms": "100",
        "poll.interval.ms": "100",
        "snapshot.mode": "INITIAL",
        "snapshot.consistency": "QUORUM",
        "decimal.handling.mode": "string",
        "varint.handling.mode": "string",
        "http.port": "8001",
        "kafka.producer.bootstrap.servers": "127.0.0.1:9092",
        "kafka.producer.acks": "all",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    }
    text = render_agent_properties(pipeline, ctx)
    assert text.startswith("# Debezium Cassandra agent for pipeline demo")


def test_properties_escaping_round_trips() -> None:
    tricky = " lead\\back=eq:colon\n#hash ünï"
    line = f"{escape_property('a key=x', key=True)}={escape_property(tricky)}"
    assert line.isascii()
    assert parse_properties(line) == {"a key=x": tricky}
    assert escape_property(True) == "true"


def test_driver_conf(ctx: RenderContext) -> None:
    text = """\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata: {name: two-nodes}
spec:
  source:
    cassandra:
      contactPoints: ["10.0.0.1:9042", "10.0.0.2:9042"]
      localDatacenter: dc-east
      keyspace: shop
      tables: [carts]
  sink:
    writer: jdbc
    postgres: {user: cdc, passwordSecret: {env: PGPASS}}
"""
    pipeline = load_text(text)[0].pipeline
    conf = render_driver_conf(pipeline, ctx)
    assert 'contact-points = ["10.0.0.1:9042", "10.0.0.2:9042"]' in conf
    assert 'load-balancing-policy.local-datacenter = "dc-east"' in conf
    assert "reconnect-on-init = true" in conf
    assert conf.count("{") == conf.count("}")
    sink = render_sink_config(pipeline, ctx)
    assert sink["collection.name.format"] == "shop_cdc.${topic}"
    assert sink["topics"] == "two-nodes.shop.carts"


def test_placeholders_per_secret_kind_and_unsafe_references(pipeline: Pipeline) -> None:
    def with_secret(ref: dict[str, object]) -> Pipeline:
        data = pipeline.model_dump(by_alias=True, exclude_unset=True)
        data["spec"]["sink"]["postgres"]["passwordSecret"] = ref
        return Pipeline.model_validate(data)

    vault_ref = {"vault": {"path": "secret/cdc/postgres", "key": "password"}}
    assert password_placeholder(with_secret(vault_ref)) == "${vault:secret/cdc/postgres:password}"
    assert password_placeholder(with_secret({"env": "PG_PW"})) == "${env:PG_PW}"
    file_ref = {"file": "/etc/kafka/secrets/pg.properties", "key": "password"}
    placeholder = password_placeholder(with_secret(file_ref))
    assert placeholder == "${file:/etc/kafka/secrets/pg.properties:password}"
    with pytest.raises(ValueError, match="absolute path on the Connect workers"):
        password_placeholder(with_secret({"file": "pg.properties", "key": "password"}))
    with pytest.raises(ValueError, match="placeholder"):
        password_placeholder(with_secret({"vault": {"path": "secret/a:b", "key": "password"}}))


def test_sink_config_is_the_same_from_any_machine(pipeline: Pipeline, tmp_path: Path) -> None:
    here = RenderContext(state_dir=tmp_path / "a", cassandra_config=tmp_path / "a.yaml")
    there = RenderContext()
    assert render_sink_config(pipeline, here) == render_sink_config(pipeline, there)
    assert render_pipeline(pipeline, there).managed_agent is None


def test_secret_version_is_recorded(pipeline: Pipeline) -> None:
    config = render_sink_config(pipeline, RenderContext(secret_versions={"demo": 3}))
    assert config["cdcctl.secret-version"] == "3"
    assert "cdcctl.secret-version" not in render_sink_config(pipeline, RenderContext())

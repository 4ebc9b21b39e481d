"""The differential test of the project's own sink (decisions 0126, 0127): one captured topic,
two sinks. The pipeline's stock JDBC sink (gate trigger, row by row) writes `<ks>_cdc`; a second
connector, `writer: lww` (COPY + set-based merge per batch), consumes the same topic into a twin
schema. Both live views must equal Cassandra and each other, the raw state must be equal where
decision 0126 says it is (data and gate state; not the contract columns, not a null cell's
expiry), and a whole-topic replay through the new sink (offsets reset) changes no row.

It always runs the stock sink as the reference, whatever $CDC_SINK_WRITER says."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session

from controlplane.adapters import postgres
from controlplane.core.ddl import STATE_COLUMNS, generate_ddl, quote_ident
from controlplane.core.manifest_loader import load_text
from controlplane.core.render import render_sink_config, sink_connector_name
from controlplane.core.schema_model import TableModel
from controlplane.services.apply import render_context
from controlplane.services.stack import Endpoints, LocalStack
from controlplane.services.targets import local_target
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import deploy, differences, reset_kafka, table_model
from tests.e2e.test_torture import lag
from tests.e2e.torture_ops import BODY, next_op, statements
from tests.manifests import local_pipeline
from tests.stackfixture import connect_http

pytestmark = pytest.mark.e2e

KS = "lww_diff"
TWIN_KS = "lww_diff_twin"
TWIN = "lww-diff-twin"
POISON = "lww-diff-poison"
SEED = 20261204
OPS = 300


@pytest.fixture(scope="module")
def twin(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    dsn = stack.postgres_dsn
    for name in (TWIN, POISON):  # no connector, no offsets, no DLQ of an earlier run
        reset_kafka(name, [f"{name}.dlq"])
    deploy(
        cql,
        local_stack,
        dsn,
        tmp_path_factory.mktemp("lww_diff"),
        name="lww-diff",
        keyspace=KS,
        tables={"t": f"CREATE TABLE {KS}.t {BODY}"},
        writer="jdbc",
    )
    model = table_model(cql, KS, "t")
    twin_model = start_lww_copy(local_stack, stack, TWIN, model, TWIN_KS)
    rnd = random.Random(SEED)
    prepared = {kind: cql.prepare(text) for kind, text in statements(f"{KS}.t").items()}
    for _ in range(OPS):
        kind, params = next_op(rnd)
        cql.execute(prepared[kind], params)
    cql.execute(f"INSERT INTO {KS}.t (pk, ck, a) VALUES (99, 0, 'sentinel')")
    yield {"model": model, "twin": twin_model, "connector": f"{TWIN}-jdbc-sink"}
    with connect_http(stack, timeout=60) as http:
        for name in (TWIN, POISON):
            http.delete(f"/connectors/{name}-jdbc-sink")
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")


def start_lww_copy(
    local_stack: LocalStack,
    stack: Endpoints,
    name: str,
    model: TableModel,
    keyspace: str,
    extra_ddl: tuple[str, ...] = (),
) -> TableModel:
    """A `writer: lww` connector `name` on the pipeline's topic (from its start) into the schema
    of `keyspace` (created afresh, then `extra_ddl`); its twin table model."""
    dsn = stack.postgres_dsn
    twin_model = model.model_copy(update={"keyspace": keyspace})
    postgres.execute(
        dsn,
        [
            f"DROP SCHEMA IF EXISTS {quote_ident(keyspace + '_cdc')} CASCADE",
            f"DROP SCHEMA IF EXISTS {quote_ident(keyspace)} CASCADE",
            *generate_ddl(twin_model).statements,
            *extra_ddl,
        ],
    )
    (loaded,) = load_text(local_pipeline(name, model.keyspace, [model.table], writer="lww"))
    ctx = render_context(local_target(local_stack.lay.root), None)
    config = render_sink_config(loaded.pipeline, ctx, tables=[twin_model])
    connector = sink_connector_name(loaded.pipeline)
    assert config["connector.class"] == "io.casscdcpg.lwwsink.LwwSinkConnector"
    with connect_http(stack, timeout=60) as http:
        http.put(f"/connectors/{connector}/config", json=config).raise_for_status()
        wait_for(
            f"{connector}'s task RUNNING",
            lambda: task_states(http, connector),
            lambda states: states == ["RUNNING"],
        )
    return twin_model


def task_states(http: Any, connector: str) -> list[str]:
    return [t["state"] for t in http.get(f"/connectors/{connector}/status").json().get("tasks", [])]


def raw_state(dsn: str, model: TableModel) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Data and gate state of every stored row; a null cell's expiry left out (decision 0126)."""
    keys = [c.name for c in model.primary_key]
    regular = [c.name for c in model.regular]
    state = [n for n, _ in STATE_COLUMNS]
    cols = ", ".join(quote_ident(c) for c in [*keys, *regular, *state])
    table = f"{quote_ident(model.keyspace + '_cdc')}.{quote_ident(model.table)}"
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in postgres.query(dsn, f"SELECT {cols} FROM {table}"):  # nosec B608  # quoted identifiers
        n, m = len(keys), len(regular)
        data = dict(zip(regular, r[n : n + m], strict=True))
        st = dict(zip(state, r[n + m :], strict=True))
        st["_cdc_exp"] = [
            x if data[c] is not None else None
            for c, x in zip(regular, st["_cdc_exp"] or [], strict=True)
        ]
        out[tuple(r[:n])] = data | st
    return out


def test_both_sinks_equal_cassandra_and_each_other(
    twin: dict[str, Any], cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    model, twin_model = twin["model"], twin["twin"]
    for what, m in (("stock sink", model), ("lww sink", twin_model)):
        wait_for(
            f"the {what}'s copy equals Cassandra",
            lambda m=m: differences(cql, dsn, m, cassandra_model=model),
            lambda d: d == [],
            deadline=180,
        )
    view = "SELECT * FROM {}.t ORDER BY 1, 2"
    assert postgres.query(dsn, view.format(TWIN_KS)) == postgres.query(dsn, view.format(KS))
    assert raw_state(dsn, twin_model) == raw_state(dsn, model)


def test_replaying_the_whole_topic_through_the_lww_sink_changes_nothing(
    twin: dict[str, Any], cql: Session, stack: Endpoints
) -> None:
    dsn = stack.postgres_dsn
    model, twin_model = twin["model"], twin["twin"]
    wait_for(
        "the lww sink's copy equals Cassandra",
        lambda: differences(cql, dsn, twin_model, cassandra_model=model),
        lambda d: d == [],
        deadline=180,
    )
    versions = f"SELECT pk, ck, xmin::text FROM {TWIN_KS}_cdc.t ORDER BY 1, 2"
    before = postgres.query(dsn, versions)
    url = f"/connectors/{twin['connector']}"
    with connect_http(stack, timeout=60) as http:
        http.put(f"{url}/stop").raise_for_status()
        wait_for(
            "lww sink stopped",
            lambda: http.get(f"{url}/status").json()["connector"]["state"],
            lambda s: s == "STOPPED",
        )
        http.delete(f"{url}/offsets").raise_for_status()
        http.put(f"{url}/resume").raise_for_status()
    group = f"connect-{twin['connector']}"
    wait_for("the replay consumed", lambda: lag(group, f"demo.{KS}.t"), lambda n: n == 0)
    assert postgres.query(dsn, versions) == before, "a replayed event wrote a row version"
    assert differences(cql, dsn, twin_model, cassandra_model=model) == []


def test_manifest_round_trip_of_the_writer(tmp_path: Path) -> None:
    (loaded,) = load_text(local_pipeline("w", KS, ["t"], writer="lww"))
    assert loaded.pipeline.spec.sink.writer == "lww"


def test_a_record_postgresql_refuses_goes_alone_to_the_dlq(
    twin: dict[str, Any], cql: Session, local_stack: LocalStack, stack: Endpoints
) -> None:
    """0126 step 5: a third lww connector on the same topic writes into a schema whose raw table
    refuses one value (a CHECK, as a column too narrow would); its batch is halved until that
    record is alone: it lands in the DLQ, every other row is written, the task keeps running."""
    from controlplane.adapters import kafka
    from controlplane.core.dlq import parse_record
    from tests.stackfixture import ensure_stack

    model = twin["model"]
    poison_ks = "lww_diff_poison"
    check = (
        f"ALTER TABLE {quote_ident(poison_ks + '_cdc')}.t ADD CONSTRAINT no_poison"
        " CHECK (a IS DISTINCT FROM 'poison')"
    )
    for ck, a in ((1, "fine"), (2, "poison"), (3, "also fine")):
        cql.execute(f"INSERT INTO {KS}.t (pk, ck, a) VALUES (77, %s, %s)", (ck, a))
    copy = start_lww_copy(local_stack, stack, POISON, model, poison_ks, (check,))
    ep = ensure_stack().kafka
    assert ep is not None
    records = wait_for(
        "one record in the poison connector's DLQ",
        lambda: [parse_record(r) for r in kafka.read_topic(ep, f"{POISON}.dlq")],
        lambda rs: len(rs) >= 1,
        deadline=180,
    )
    dsn = stack.postgres_dsn
    wait_for(
        "every other row written",
        lambda: differences(cql, dsn, copy, cassandra_model=model),
        lambda d: d == ["missing in PostgreSQL: (77, 2)"],
        deadline=180,
    )
    assert len(records) == 1
    (r,) = records
    assert r.context is not None
    assert r.context.exception_class == "org.postgresql.util.PSQLException"
    assert "no_poison" in (r.context.exception_message or "")
    assert b'"poison"' in (r.raw.value or b"")
    with connect_http(stack, timeout=60) as http:
        assert task_states(http, f"{POISON}-jdbc-sink") == ["RUNNING"]


def test_switching_the_pipeline_to_lww_keeps_its_connector_and_offsets(
    twin: dict[str, Any], cql: Session, local_stack: LocalStack, stack: Endpoints, tmp_path: Path
) -> None:
    """`writer: jdbc` -> `lww` by `cdcctl apply`: the same connector (name, consumer group,
    offsets) now runs the own sink; the view keeps equal to Cassandra and new writes arrive."""
    from tests.stackfixture import apply_on

    model = twin["model"]
    path = tmp_path / "lww-diff.yaml"
    path.write_text(local_pipeline("lww-diff", KS, ["t"], writer="lww"))
    apply_on(local_stack, [path])
    connector = "lww-diff-jdbc-sink"
    with connect_http(stack, timeout=60) as http:
        # right after the PUT, Connect may answer 409 (rebalance) before the new config is read
        config = wait_for(
            "the connector's config naming the own sink",
            lambda: http.get(f"/connectors/{connector}/config"),
            lambda r: (
                r.status_code == 200
                and r.json().get("connector.class") == "io.casscdcpg.lwwsink.LwwSinkConnector"
            ),
        ).json()
        assert config["lww.tables"] == "t__tombstones,t"
        wait_for(
            "the switched connector's task RUNNING",
            lambda: task_states(http, connector),
            lambda states: states == ["RUNNING"],
        )
    cql.execute(f"INSERT INTO {KS}.t (pk, ck, a) VALUES (78, 1, 'after the switch')")
    wait_for(
        "the switched pipeline equals Cassandra",
        lambda: differences(cql, stack.postgres_dsn, model),
        lambda d: d == [],
        deadline=180,
    )

"""Freshness end to end and `cdcctl serve`'s metrics (decision 0120), without any server: the
heartbeat table a pipeline carries, the freshness figure, verify results per table and the
metrics text of one scrape. The alert rules are unit-tested by `promtool test rules`
(tests/unit/test_cdc_raw.py runs dashboards/alerts_test.yml)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from controlplane.adapters import metrics_http
from controlplane.core.ddl import generate_ddl
from controlplane.core.freshness import (
    HEARTBEAT_TABLE,
    ConnectorObservation,
    Observations,
    VerifyObservation,
    freshness_seconds,
    heartbeat_insert_cql,
    heartbeat_model,
    heartbeat_table_cql,
    serve_gauges,
    verify_table_results,
)
from controlplane.core.manifest import Pipeline
from controlplane.core.render import RenderContext, render_sink_config
from controlplane.services.serve import newest_heartbeat_sql


def manifest(heartbeat: bool, tables: list[str] | None = None) -> Pipeline:
    doc: dict[str, Any] = {
        "apiVersion": "cdc.casscdcpg.io/v1",
        "kind": "Pipeline",
        "metadata": {"name": "shop"},
        "spec": {
            "source": {"cassandra": {"keyspace": "shop", "tables": tables or ["orders"]}},
            "sink": {
                "postgres": {"database": "cdc", "user": "cdc", "passwordSecret": {"env": "X"}}
            },
            "options": {"heartbeat": heartbeat},
        },
    }
    return Pipeline.model_validate(yaml.safe_load(yaml.safe_dump(doc)))


def test_a_heartbeat_pipeline_carries_the_heartbeat_table_through_topics_and_sink() -> None:
    p = manifest(True)
    assert p.tables == ["orders"]  # the users' tables (verify, validate)
    assert p.captured_tables == ["orders", HEARTBEAT_TABLE]
    assert p.table_topic(HEARTBEAT_TABLE) == "shop.shop.cdcctl_heartbeat"
    sink = render_sink_config(p, RenderContext())
    assert sink["topics"] == "shop.shop.orders,shop.shop.cdcctl_heartbeat"
    assert HEARTBEAT_TABLE in p.topics_regex


def test_without_heartbeat_nothing_changes() -> None:
    p = manifest(False)
    assert p.captured_tables == p.tables == ["orders"]
    assert render_sink_config(p, RenderContext())["topics"] == "shop.shop.orders"


def test_listing_the_heartbeat_table_with_heartbeat_on_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"options\.heartbeat adds itself"):
        manifest(True, ["orders", HEARTBEAT_TABLE])


def test_the_heartbeat_table_cql_and_its_model_agree() -> None:
    create = heartbeat_table_cql("shop")
    assert create.startswith('CREATE TABLE IF NOT EXISTS "shop".cdcctl_heartbeat ')
    assert "(pipeline text PRIMARY KEY, beat timestamp) WITH cdc = true" in create
    assert heartbeat_insert_cql("shop").endswith("USING TIMESTAMP ?")
    model = heartbeat_model("shop")
    assert [(c.name, c.cql_type, c.kind) for c in model.columns] == [
        ("pipeline", "text", "partition_key"),
        ("beat", "timestamp", "regular"),
    ]
    # The PostgreSQL side is generated like any table's, so apply creates it the same way.
    ddl = generate_ddl(model)
    assert ddl.names.raw_table == '"shop_cdc"."cdcctl_heartbeat"'
    assert ddl.names.raw_table in newest_heartbeat_sql("shop")
    assert '"_cdc_live_ts"' in newest_heartbeat_sql("shop")


def test_freshness_is_now_minus_the_newest_write_time() -> None:
    assert freshness_seconds(1_000.0, 997_500_000) == pytest.approx(2.5)
    assert freshness_seconds(1_000.0, None) is None
    # a clock a little behind the writer's never gives a negative delay
    assert freshness_seconds(1_000.0, 1_000_200_000) == 0.0


def test_verify_results_per_table() -> None:
    records = {
        "orders:0": {"status": "OK"},
        "orders:1": {"status": "DIFF"},
        "users:0": {"status": "OK"},
        "items:0": {"status": "OK"},
        "items:1": {"status": "FAIL"},
    }
    assert verify_table_results(["orders", "users", "items", "gone"], records) == {
        "orders": "DIFF",
        "users": "PASS",
        "items": "INCOMPLETE",
        "gone": "INCOMPLETE",
    }


def observations() -> Observations:
    return Observations(
        heartbeat_newest_us={"shop": 995_000_000, "new": None},
        connectors=[
            ConnectorObservation("shop", "shop-jdbc-sink", "RUNNING", ("RUNNING", "FAILED")),
            ConnectorObservation("gone", "gone-jdbc-sink", "MISSING"),
        ],
        dlq_records={("shop", "shop.dlq"): 3},
        consumer_lag={("shop", "connect-shop-jdbc-sink"): 42},
        verify=[VerifyObservation("shop", "orders", "PASS", 900.0)],
        restarts={("shop", "shop-jdbc-sink"): 2},
        heartbeats={("shop", "ok"): 7},
        reconciles={"ok": 1},
        last_collect_s=999.0,
    )


def test_one_scrape_of_serve() -> None:
    text = metrics_http.exposition(lambda: serve_gauges(observations(), 1_000.0))
    lines = set(text.splitlines())
    assert 'cdc_pipeline_freshness_seconds{pipeline="shop"} 5.0' in lines
    # no heartbeat arrived yet: no freshness (absent, not 0)
    assert not any('pipeline="new"' in line for line in lines)
    assert (
        'cdc_connector_state{connector="shop-jdbc-sink",pipeline="shop",state="RUNNING"} 1.0'
        in lines
    )
    assert (
        'cdc_connector_state{connector="shop-jdbc-sink",pipeline="shop",state="FAILED"} 0.0'
        in lines
    )
    assert (
        'cdc_connector_state{connector="gone-jdbc-sink",pipeline="gone",state="MISSING"} 1.0'
        in lines
    )
    assert (
        'cdc_connector_tasks{connector="shop-jdbc-sink",pipeline="shop",state="FAILED"} 1.0'
        in lines
    )
    assert 'cdc_dlq_records{pipeline="shop",topic="shop.dlq"} 3.0' in lines
    assert 'cdc_consumer_lag_records{group="connect-shop-jdbc-sink",pipeline="shop"} 42.0' in lines
    assert 'cdc_verify_last_result{pipeline="shop",result="PASS",table="orders"} 1.0' in lines
    assert "# TYPE cdc_reconcile_restarts_total counter" in lines
    assert 'cdc_reconcile_restarts_total{connector="shop-jdbc-sink",pipeline="shop"} 2.0' in lines
    assert 'cdc_heartbeat_writes_total{pipeline="shop",result="ok"} 7.0' in lines
    assert "cdc_serve_last_collect_timestamp_seconds 999.0" in lines


def test_freshness_grows_with_the_scrape_clock_between_collections() -> None:
    obs = observations()
    first = {g.name: g for g in serve_gauges(obs, 1_000.0)}
    later = {g.name: g for g in serve_gauges(obs, 1_060.0)}
    assert first["cdc_pipeline_freshness_seconds"].samples == ((("shop",), 5.0),)
    assert later["cdc_pipeline_freshness_seconds"].samples == ((("shop",), 65.0),)

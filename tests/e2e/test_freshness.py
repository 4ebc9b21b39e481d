"""Freshness end to end and `cdcctl serve` on the real stack (decisions 0120, 0121).

One pipeline with ``options.heartbeat: true`` (keyspace ``fresh_e2e``) is applied, and
`cdcctl serve` runs as a user runs it (a subprocess on the stack's serve port, which the stack's
Prometheus scrapes as job ``cdcctl-serve``):

1. freshness is small; the agent stops: freshness grows past 60 s and ``CdcPipelineStale``
   fires in the stack's Prometheus, and so does ``CdcAgentDown`` (its exporter is gone); the
   agent starts: freshness falls back and both alerts resolve;
2. a poison record reaches the sink: the DLQ depth serve exports rises and ``CdcDlqGrowing``
   fires.

The alerts are the shipped rules of dashboards/alerts.yml, `for:` and all (decision 0121): the
waits below are their durations plus a scrape and an evaluation interval (5 s each in a test
session's stack, decision 0145) and slack for a loaded machine. Serve's reconciler runs with a
long --interval: it would restart the stopped agent (a managed agent is cdcctl's to run) — which
is what it is for, but not here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cassandra.cluster import Session
from confluent_kafka import Producer

from controlplane.adapters import kafka, postgres
from controlplane.core.freshness import HEARTBEAT_TABLE
from controlplane.services.apply import plan_manifests
from controlplane.services.local_agents import LocalAgents
from controlplane.services.stack import Endpoints, LocalStack
from controlplane.services.targets import local_target
from tests import faults
from tests.cli import cdcctl_json
from tests.e2e.conftest import wait_for
from tests.e2e.semconf import reset_kafka
from tests.e2e.test_alerts import alerts, rounds_s, wait_firing
from tests.e2e.test_dashboards import panel_exprs
from tests.e2e.test_prometheus import query
from tests.manifests import local_pipeline
from tests.stackfixture import apply_on, kafka_config, session_ports

pytestmark = pytest.mark.e2e

KS = "fresh_e2e"
NAME = "fresh-e2e"
TOPIC = f"demo.{KS}.t"
DLQ = f"{NAME}.dlq"
STALE_AFTER_S = 60  # CdcPipelineStale's threshold in dashboards/alerts.yml
# threshold/for + scrape + evaluation + slack for a loaded 2-core machine
ALERT_DEADLINE_S = 360.0


@pytest.fixture(scope="module")
def pipeline(
    cql: Session,
    local_stack: LocalStack,
    stack: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    reset_kafka(NAME, [TOPIC, f"demo.{KS}.{HEARTBEAT_TABLE}", DLQ])
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    cql.execute(
        f"CREATE KEYSPACE {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute(f"CREATE TABLE {KS}.t (id int PRIMARY KEY, v text) WITH cdc = true")
    postgres.execute(
        stack.postgres_dsn,
        [f'DROP SCHEMA IF EXISTS "{KS}_cdc" CASCADE', f'DROP SCHEMA IF EXISTS "{KS}" CASCADE'],
    )
    path = tmp_path_factory.mktemp("fresh") / f"{NAME}.yaml"
    path.write_text(local_pipeline(NAME, KS, ["t"], heartbeat=True))
    result = apply_on(local_stack, [path])
    created = {(c.kind, c.name) for c in result.changes if c.action == "created"}
    # apply created the heartbeat table in Cassandra and its tables in PostgreSQL
    assert ("cassandra", f"{KS}.{HEARTBEAT_TABLE}") in created, result.changes
    assert ("postgres", f"{KS}.{HEARTBEAT_TABLE}") in created, result.changes
    # and nothing is left to do (the agents recorded the new table's id: no re-snapshot)
    again = plan_manifests(
        [path], local_target(local_stack.lay.root), agents=LocalAgents(local_stack.s)
    )
    assert not again.plan.has_changes, again.plan.lines()
    yield path
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")  # later agent restarts need not snapshot it


@pytest.fixture(scope="module")
def serve(
    pipeline: Path, local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`cdcctl serve` on the stack's serve port; yields its /metrics URL."""
    port = session_ports().serve
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(  # our own CLI, fixed argv
            [
                sys.executable,
                "-m",
                "controlplane",
                "serve",
                "-f",
                str(pipeline),
                "--state-dir",
                str(local_stack.lay.root),
                "--metrics-port",
                str(port),
                "--interval",
                "3600",
                "--heartbeat-interval",
                "2",
                "--collect-interval",
                "3",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "CDC_STACK_DIR": str(local_stack.lay.root)},
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for("serve's /metrics", lambda: _get(url), lambda text: text is not None, 120)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"\nserve's log ({log}):\n{log.read_text()[-3000:]}")


def _get(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def metric(url: str, name: str, **labels: str) -> float | None:
    """The value of one series in serve's /metrics now (None: absent)."""
    text = _get(url) or ""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return None


def firing(prometheus_url: str, alert: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=10).json()
    return [
        a
        for a in answer["data"]["alerts"]
        if a["labels"].get("alertname") == alert
        and a["labels"].get("pipeline") == NAME
        and a["state"] == "firing"
    ]


def freshness(url: str) -> float | None:
    return metric(url, "cdc_pipeline_freshness_seconds", pipeline=NAME)


def test_freshness_grows_while_the_agent_is_down_the_alert_fires_and_it_recovers(
    serve: str, local_stack: LocalStack, stack: Endpoints
) -> None:
    began = time.monotonic()
    first = wait_for(
        "a small freshness", lambda: freshness(serve), lambda f: f is not None and f < 30, 300
    )
    print(f"\nfreshness {first:.1f}s, {time.monotonic() - began:.0f}s after serve started")
    assert not firing(stack.prometheus_url, "CdcPipelineStale")

    stopped = faults.kill(local_stack, "agent", signal.SIGTERM)
    try:
        grown = wait_for(
            f"freshness past {STALE_AFTER_S}s",
            lambda: freshness(serve),
            lambda f: f is not None and f > STALE_AFTER_S,
            STALE_AFTER_S + 120,
        )
        # it keeps growing while the agent is down (serve writes heartbeats all along)
        assert grown >= STALE_AFTER_S
        alert = wait_for(
            "CdcPipelineStale firing",
            lambda: firing(stack.prometheus_url, "CdcPipelineStale"),
            bool,
            ALERT_DEADLINE_S,
        )
        fired_after = time.monotonic() - stopped
        print(
            f"CdcPipelineStale fired {fired_after:.0f}s after the agent stopped: "
            f"{alert[0]['annotations']['summary']}"
        )
        assert metric(serve, "cdc_heartbeat_writes_total", pipeline=NAME, result="ok")
        # The same outage fires CdcAgentDown (the agent's exporter is gone; `for: 1m`, shorter
        # than the freshness wait above): one agent outage covers both rules (decision 0143).
        down = wait_firing(stack.prometheus_url, "CdcAgentDown", node="node1")
        assert down["labels"]["job"] == "debezium-agent"
        assert down["annotations"]["summary"] == "The Debezium agent of Cassandra node1 is down"
    finally:
        restarting = time.monotonic()
        faults.restart(local_stack, "agent")
    started = time.monotonic()
    back = wait_for(
        "freshness back below 30s",
        lambda: freshness(serve),
        lambda f: f is not None and f < 30,
        300,
    )
    print(
        f"freshness back to {back:.1f}s {time.monotonic() - started:.0f}s after the agent was "
        f"ready (`stack up agent` took {started - restarting:.0f}s)"
    )
    wait_for(
        "CdcPipelineStale resolved",
        lambda: firing(stack.prometheus_url, "CdcPipelineStale"),
        lambda f: not f,
        180,
    )
    wait_for(
        "CdcAgentDown resolved",
        lambda: [
            a
            for a in alerts(stack.prometheus_url)
            if a["labels"].get("alertname") == "CdcAgentDown"
        ],
        lambda found: not found,
        rounds_s(stack.prometheus_url),
    )
    # the other series serve exports for the pipeline
    assert metric(serve, "cdc_connector_state", pipeline=NAME, state="RUNNING") == 1.0
    assert metric(serve, "cdc_consumer_lag_records", pipeline=NAME) is not None
    assert metric(serve, "cassandra_cdc_raw_bytes", node="node1") is not None


def test_a_growing_dlq_is_exported_and_alerted(serve: str, cql: Session, stack: Endpoints) -> None:
    cql.execute(f"INSERT INTO {KS}.t (id, v) VALUES (1, 'one')")
    dsn = stack.postgres_dsn
    wait_for(
        "row 1 in PostgreSQL",
        lambda: postgres.query(dsn, f'SELECT count(*) FROM "{KS}"."t"')[0][0],
        lambda n: n == 1,
        180,
    )
    before = wait_for(
        "the DLQ depth exported",
        lambda: metric(serve, "cdc_dlq_records", pipeline=NAME, topic=DLQ),
        lambda v: v is not None,
        120,
    )
    assert stack.kafka is not None
    key = next(r.key for r in kafka.read_topic(stack.kafka, TOPIC) if r.key)
    producer = Producer(kafka_config(stack))  # TLS with cdcctl's certificate (decision 0114)
    producer.produce(TOPIC, key=key, value=b"\x00not the agent's JSON envelope")
    assert producer.flush(30) == 0
    depth = wait_for(
        "the DLQ depth rising",
        lambda: metric(serve, "cdc_dlq_records", pipeline=NAME, topic=DLQ),
        lambda v: v is not None and v > before,
        180,
    )
    rose = time.monotonic()
    print(f"\nDLQ depth {before:.0f} -> {depth:.0f}")
    wait_for(
        "CdcDlqGrowing firing", lambda: firing(stack.prometheus_url, "CdcDlqGrowing"), bool, 300
    )
    print(f"CdcDlqGrowing fired {time.monotonic() - rose:.0f}s after the depth rose")


def test_the_last_verify_result_per_table(
    serve: str, pipeline: Path, local_stack: LocalStack
) -> None:
    """`cdcctl verify` of the pipeline: serve exports its result for the user table; the
    heartbeat table is not verified."""
    summary = cdcctl_json(
        "verify",
        "-f",
        str(pipeline),
        "--state-dir",
        str(local_stack.lay.root),
        "--no-progress",
        timeout=600,
    )
    assert summary["tables"] == ["t"], summary
    wait_for(
        "cdc_verify_last_result PASS for table t",
        lambda: metric(serve, "cdc_verify_last_result", pipeline=NAME, table="t", result="PASS"),
        lambda v: v == 1.0,
        120,
    )


def test_the_dashboards_serve_panels_return_samples(serve: str, stack: Endpoints) -> None:
    """The dashboard's panels on serve's metrics (freshness, DLQ depth, verify, lag) return data
    from the stack's Prometheus while serve runs (the others: test_prometheus.py)."""
    panels = panel_exprs(of_serve=True)
    assert len(panels) >= 4, panels
    for expr in panels:
        result = wait_for(
            f"a sample for {expr}",
            lambda expr=expr: query(stack.prometheus_url, expr),  # type: ignore[misc]
            bool,
            90,
        )
        assert all(len(s["value"]) == 2 for s in result)


def test_serve_once_prints_one_collection_as_json(pipeline: Path, local_stack: LocalStack) -> None:
    samples = cdcctl_json(
        "serve",
        "-f",
        str(pipeline),
        "--state-dir",
        str(local_stack.lay.root),
        "--once",
        timeout=300,
    )
    by_name = {
        (s["name"], s["labels"].get("pipeline"), s["labels"].get("state")): s for s in samples
    }
    assert by_name[("cdc_pipeline_freshness_seconds", NAME, None)]["value"] < 60
    assert by_name[("cdc_connector_state", NAME, "RUNNING")]["value"] == 1.0

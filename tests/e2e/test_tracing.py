"""Tracing end to end (decisions 0122, 0123): `cdcctl apply` with the stack's OTLP endpoint set
sends its trace to the stack's Jaeger, and Jaeger's query API returns it — the command's root
span, the plan, and one span per change — carrying the run id of the log lines, and no secret."""

from __future__ import annotations

import json
import os
import secrets
import subprocess  # nosec B404  # runs our own CLI with a fixed argv
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cassandra.cluster import Session

from controlplane.adapters import postgres
from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import wait_for
from tests.manifests import local_pipeline

pytestmark = pytest.mark.e2e

KEYSPACE = "traced"
TRACE_DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def traced_manifest(
    cql: Session, stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    cql.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    # A fresh table on both sides: apply has changes to make (PostgreSQL DDL, topic, connector).
    cql.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.events")
    cql.execute(f"CREATE TABLE {KEYSPACE}.events (id int PRIMARY KEY, v text) WITH cdc = true")
    postgres.execute(
        stack.postgres_dsn,
        [
            f'DROP TABLE IF EXISTS "{KEYSPACE}_cdc"."events" CASCADE',
            f'DROP TABLE IF EXISTS "{KEYSPACE}_cdc"."events__tombstones" CASCADE',
        ],
    )
    path = tmp_path_factory.mktemp("traced") / "traced.yaml"
    path.write_text(local_pipeline(KEYSPACE, KEYSPACE, ["events"]))
    return path


def _traces(jaeger: str, run_id: str) -> list[dict[str, Any]]:
    """Jaeger's traces of service cdcctl holding a span tagged with this run id."""
    params = {"service": "cdcctl", "tags": json.dumps({"cdcctl.run_id": run_id}), "limit": "20"}
    try:
        answer = httpx.get(f"{jaeger}/api/traces", params=params, timeout=5)
    except httpx.HTTPError:
        return []
    if answer.status_code != 200:
        return []
    data: list[dict[str, Any]] = answer.json().get("data") or []
    return data


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def test_an_apply_trace_is_found_in_jaeger_with_its_spans(
    local_stack: LocalStack, stack: Endpoints, traced_manifest: Path
) -> None:
    assert local_stack.running("jaeger"), "the stack's Jaeger is not running"
    run_id = f"trace-{secrets.token_hex(4)}"
    password = local_stack.postgres_password()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_endpoint,
        "CDCCTL_RUN_ID": run_id,
        "CDC_PG_PASSWORD": password,
    }
    out = subprocess.run(  # nosec B603  # fixed argv
        [sys.executable, "-m", "controlplane", "apply", "-f", str(traced_manifest), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    applied = [c for c in json.loads(out.stdout) if c["action"] != "unchanged"]
    assert applied, "apply had nothing to change: the test needs a fresh pipeline"

    def complete(traces: list[dict[str, Any]]) -> bool:
        names = [s["operationName"] for t in traces for s in t["spans"]]
        return "cdcctl apply" in names and "apply.execute" in names

    traces = wait_for(
        f"the trace of run {run_id} in Jaeger ({stack.jaeger_url})",
        lambda: _traces(stack.jaeger_url, run_id),
        complete,
        deadline=TRACE_DEADLINE_S,
    )
    (trace,) = traces  # one run, one trace
    spans = trace["spans"]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["operationName"], []).append(span)
    (root,) = by_name["cdcctl apply"]
    assert not root.get("references"), "the command's span is the root of the trace"
    assert trace["processes"][root["processID"]]["serviceName"] == "cdcctl"
    assert _tags(root)["cdcctl.exit_code"] == 0
    (plan,) = by_name["apply.plan"]
    (execute,) = by_name["apply.execute"]
    for child in (plan, execute):
        assert child["references"][0]["spanID"] == root["spanID"]
    # One span per change apply made (the agent's restart is a span of its own).
    changes = [_tags(s) for s in by_name.get("apply.change", [])]
    made = [c for c in applied if c["pipeline"] != "*"]  # "*": the agents' start or restart
    assert sorted((c["cdcctl.change_kind"], c["cdcctl.change_name"]) for c in changes) == sorted(
        (c["kind"], c["name"]) for c in made
    )
    assert {c["cdcctl.pipeline"] for c in changes} == {KEYSPACE}
    restarts = [c for c in applied if c["pipeline"] == "*"]
    assert len(by_name.get("apply.agent", [])) == len(restarts)
    assert all(s["references"][0]["spanID"] == execute["spanID"] for s in by_name["apply.change"])
    # Every span carries the run id of the log lines; no span carries the password.
    assert all(_tags(s)["cdcctl.run_id"] == run_id for s in spans)
    assert password not in json.dumps(trace)

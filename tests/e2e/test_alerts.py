"""The alert rules fire for real in the stack's own Prometheus when their condition is caused
(issue 14 item 4; decision 0125): a sink task that fails (CdcSinkTaskFailed). CdcAgentDown fires
during the agent outage of tests/e2e/test_freshness.py (one outage for both rules, decision 0143);
CdcRawAlmostFull is fired by test_cdc_raw_full.py (marker ``cdcfull``: it restarts
Cassandra with a small cdc_total_space).

Every rule keeps its production `for:`; each test waits on Prometheus's /api/v1/alerts with a
deadline of `for:` + two scrape/evaluation rounds + slack. The test session's Prometheus scrapes
and evaluates every 5 s (the stack's default is 15 s; decision 0145)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest
import yaml

from controlplane.services.stack import Endpoints
from tests.e2e.conftest import wait_for
from tests.e2e.test_dashboards import DASHBOARDS
from tests.stackfixture import connect_http

pytestmark = pytest.mark.e2e

# A condition is seen at the next scrape and `for:` starts at the next evaluation: two rounds of
# the running Prometheus's interval (5 s in a test session's stack, 15 s in one started by
# `cdcctl stack up`; decision 0145), plus 45 s of slack for a loaded machine.
SLACK_S = 45.0


def duration_s(text: str) -> float:
    """A Prometheus duration of one unit ("15s", "1m") in seconds."""
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]


def rule_for_s(alert: str) -> float:
    """The `for:` of `alert` in dashboards/alerts.yml, in seconds."""
    groups = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())["groups"]
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    return duration_s(str(rule.get("for", "0s")))


def rounds_s(prom: str) -> float:
    """Two scrape/evaluation rounds of the Prometheus at `prom` (its loaded config) + slack."""
    r = httpx.get(f"{prom}/api/v1/status/config", timeout=10)
    r.raise_for_status()
    config = yaml.safe_load(r.json()["data"]["yaml"])["global"]
    interval = max(duration_s(config["scrape_interval"]), duration_s(config["evaluation_interval"]))
    return 2 * interval + SLACK_S


def alerts(prom: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom}/api/v1/alerts", timeout=10)
    r.raise_for_status()
    found: list[dict[str, Any]] = r.json()["data"]["alerts"]
    return found


def wait_firing(prom: str, alert: str, **labels: str) -> dict[str, Any]:
    def firing(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            a
            for a in found
            if a["labels"].get("alertname") == alert
            and a["state"] == "firing"
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    found = wait_for(
        f"{alert} {labels} firing",
        lambda: firing(alerts(prom)),
        bool,
        deadline=rule_for_s(alert) + rounds_s(prom),
    )
    return found[0]  # type: ignore[no-any-return]


def test_a_failed_sink_task_fires_cdc_sink_task_failed(stack: Endpoints) -> None:
    """A JDBC sink connector whose database cannot be reached: its task fails at start (the
    sink resolves the SQL dialect from the connection), deterministically and without touching
    the pipelines of the other tests."""
    name = f"alert-failed-task-{uuid.uuid4().hex[:6]}"
    config = {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": f"{name}.none",
        # port 1 on loopback: nothing listens there
        "connection.url": "jdbc:postgresql://127.0.0.1:1/none",
        "connection.username": "nobody",
        "connection.password": secrets.token_urlsafe(12),
    }
    url = f"/connectors/{name}"
    connect = connect_http(stack)  # HTTPS and basic auth (decision 0114)
    connect.put(f"{url}/config", json=config).raise_for_status()
    try:
        wait_for(
            "the task FAILED",
            lambda: connect.get(f"{url}/status").json().get("tasks", []),
            lambda tasks: [t["state"] for t in tasks] == ["FAILED"],
            deadline=60,
        )
        alert = wait_firing(stack.prometheus_url, "CdcSinkTaskFailed", connector=name)
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"] == f"Sink connector {name} has failed tasks"
    finally:
        connect.delete(url)
        connect.close()

"""The stack's Prometheus scrapes Connect, answers the dashboard's queries, loads the rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml

from controlplane.services.stack import Endpoints
from tests.e2e.conftest import wait_for
from tests.e2e.test_dashboards import DASHBOARDS, panel_exprs
from tests.stackfixture import connect_http

pytestmark = pytest.mark.e2e

# A scrape happens every 5 s in a test session's stack (15 s in one `cdcctl stack up` started,
# decision 0145) and the first one up to an interval after start: two rounds plus slack.
DEADLINE_S = 90.0


def query(prom: str, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=10)
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


@pytest.fixture(scope="module")
def prom(stack: Endpoints, request: pytest.FixtureRequest) -> str:
    # Connector metrics exist only while a connector does: on a stack with none, deploy the e2e
    # pipeline (session-scoped, shared with the other e2e tests); otherwise use what runs.
    with connect_http(stack) as http:
        connectors = http.get("/connectors").json()
    if not connectors:
        request.getfixturevalue("deployed")
    return stack.prometheus_url


def test_connect_target_is_up(prom: str) -> None:
    result = wait_for(
        'up{job="kafka-connect"} == 1',
        lambda: query(prom, 'up{job="kafka-connect"}'),
        lambda res: [s["value"][1] for s in res] == ["1"],
        deadline=DEADLINE_S,
    )
    assert result[0]["metric"]["instance"].startswith("127.0.0.1:")


def test_every_dashboard_panel_returns_samples(prom: str) -> None:
    """Every panel but those of `cdcctl serve`'s metrics (test_freshness.py, where serve runs)."""
    panels = panel_exprs(of_serve=False)
    assert panels, "the dashboard has no panel queries"
    for expr in panels:
        result = wait_for(
            f"a sample for {expr}",
            lambda expr=expr: query(prom, expr),  # type: ignore[misc]
            bool,
            deadline=DEADLINE_S,
        )
        assert all(len(s["value"]) == 2 for s in result)


def test_alert_rules_of_dashboards_are_loaded(prom: str) -> None:
    want = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())["groups"]
    r = httpx.get(f"{prom}/api/v1/rules", timeout=10)
    r.raise_for_status()
    have = {g["name"]: {rule["name"] for rule in g["rules"]} for g in r.json()["data"]["groups"]}
    assert have == {g["name"]: {rule["alert"] for rule in g["rules"]} for g in want}
    # The rules are evaluated, not just parsed: every one reports a health after a round.
    wait_for(
        "every rule evaluated",
        lambda: [
            rule.get("health")
            for g in httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
            for rule in g["rules"]
        ],
        lambda healths: healths and all(h == "ok" for h in healths),
        deadline=DEADLINE_S,
    )

"""The alert rules and dashboard are valid, and every metric they use exists on a live exporter
of the stack: Connect's, the Cassandra node's and the agent's JMX exporters (decision 0124) and
the cdc_raw exporter."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from controlplane.services.stack import Endpoints, LocalStack
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
# The metrics of the stack's exporters (metrics of `cdcctl serve` are checked where it runs).
METRIC = re.compile(r"\b((?:kafka|cassandra|debezium|jvm)_[a-z0-9_]+)")
# What `cdcctl serve` exports (controlplane/core/freshness.py): freshness, DLQ depth, lag, verify.
SERVE_METRIC = re.compile(r"\bcdc_[a-z0-9_]+")


def panel_exprs(*, of_serve: bool) -> list[str]:
    """The dashboard's queries that use `cdcctl serve`'s metrics (or the others): those return
    data only while a serve runs, so tests/e2e/test_freshness.py checks them with its serve."""
    dash = json.loads((DASHBOARDS / "pipeline.json").read_text())
    return [
        t["expr"]
        for p in dash["panels"]
        for t in p["targets"]
        if bool(SERVE_METRIC.search(t["expr"])) == of_serve
    ]


def exprs() -> list[str]:
    rules = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    out = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dash = json.loads((DASHBOARDS / "pipeline.json").read_text())
    out += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    return out


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_promtool_accepts_rules_and_config() -> None:
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        out = subprocess.run(
            ["promtool", *args], cwd=DASHBOARDS, capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr


def metric_names(url: str) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0]
        for line in httpx.get(url, timeout=10).text.splitlines()
        if line and not line.startswith("#")
    }


def test_every_metric_exists_on_the_running_exporters(
    deployed: dict[str, object], stack: Endpoints, local_stack: LocalStack
) -> None:
    wanted = {m for e in exprs() for m in METRIC.findall(e)}
    assert wanted, "the rules name no metric"
    ports = local_stack.s.ports
    urls = [
        f"http://127.0.0.1:{port}/metrics"
        for port in (
            ports.connect_metrics,
            ports.cassandra_metrics,
            ports.agent_metrics,
            ports.cdc_exporter,
        )
    ]
    names = wait_for(
        "every metric of the rules and the dashboard on the stack's exporters",
        lambda: set().union(*(metric_names(u) for u in urls)),
        lambda have: wanted <= have,
        deadline=60,
    )
    assert wanted <= names


def test_exporter_rules_keep_the_scrapes_small(local_stack: LocalStack) -> None:
    """The Cassandra and agent exporters' rules (decision 0124) keep a few hundred series at
    most (a catch-all rule gives ~2,000 on a Cassandra node)."""
    ports = local_stack.s.ports
    for port in (ports.cassandra_metrics, ports.agent_metrics):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        series = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert 50 < len(series) < 300, (port, len(series))

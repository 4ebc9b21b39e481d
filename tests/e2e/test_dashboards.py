"""The alert rules and dashboard are valid, and every metric they use exists on a live worker."""

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
METRIC = re.compile(r"\b(kafka_[a-z0-9_]+)")


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


def test_every_metric_exists_on_the_running_worker(
    deployed: dict[str, object], stack: Endpoints, local_stack: LocalStack
) -> None:
    wanted = {m for e in exprs() for m in METRIC.findall(e)}
    assert wanted, "the rules name no metric"
    url = f"http://127.0.0.1:{local_stack.s.ports.connect_metrics}/metrics"
    names = wait_for(
        "the sink's metrics on the JMX exporter",
        lambda: {
            line.split("{")[0].split(" ")[0]
            for line in httpx.get(url, timeout=10).text.splitlines()
        },
        lambda have: wanted <= have,
        deadline=60,
    )
    assert wanted <= names

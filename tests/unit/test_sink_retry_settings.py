"""The sink's PostgreSQL-outage retry settings (decision 0103) as rendered: manifest -> connector
config -> plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controlplane.core.errors import ManifestError
from controlplane.core.manifest import SinkRetry
from controlplane.core.manifest_loader import load_text
from controlplane.core.plan import plan_connector
from controlplane.core.render import SINK_CONNECTOR_CLASS, RenderContext, render_sink_config

ROOT = Path(__file__).resolve().parents[2]
RETRY_POLICY_JAVA = ROOT / "transforms/src/main/java/io/casscdcpg/sink/RetryPolicy.java"

MANIFEST = """\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata: {{name: demo}}
spec:
  source:
    cassandra: {{contactPoints: ["127.0.0.1:9042"], keyspace: demo, tables: [users]}}
  sink:
    writer: jdbc
    postgres:
      host: 127.0.0.1
      user: cdc
      passwordSecret: {{env: CDC_PG_PASSWORD}}
{retry}
"""


def sink_config(retry: str = "") -> dict[str, str]:
    pipeline = load_text(MANIFEST.format(retry=retry))[0].pipeline
    return render_sink_config(pipeline, RenderContext())


def test_defaults_ride_through_a_two_minute_outage_with_a_bounded_backoff() -> None:
    config = sink_config()
    assert config["connector.class"] == SINK_CONNECTOR_CLASS
    timeout = int(config["cdc.retry.timeout.ms"])
    initial = int(config["cdc.retry.backoff.initial.ms"])
    cap = int(config["cdc.retry.backoff.max.ms"])
    assert timeout >= 2 * 60_000, "the sink must wait out an outage of at least 2 minutes"
    assert 0 < initial <= cap <= 30_000, "PostgreSQL back -> the sink writes within the cap"
    # Debezium's own flush retries cover only JDBCConnectionException with
    # connection.restart.on.errors=true and never the table-metadata read: not relied upon.
    assert "connection.restart.on.errors" not in config


def test_manifest_values_are_rendered() -> None:
    retry = "    retry: {timeoutMs: -1, backoffInitialMs: 500, backoffMaxMs: 60000}"
    config = sink_config(retry)
    assert config["cdc.retry.timeout.ms"] == "-1"
    assert config["cdc.retry.backoff.initial.ms"] == "500"
    assert config["cdc.retry.backoff.max.ms"] == "60000"


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ("{backoffInitialMs: 2000, backoffMaxMs: 1000}", "below backoffInitialMs"),
        ("{timeoutMs: 500, backoffInitialMs: 1000}", "never retry"),
        ("{timeoutMs: -2}", "greater than or equal to -1"),
        ("{backoffMaxMs: 0}", "greater than or equal to 1"),
        ("{retries: 3}", "retries"),
    ],
)
def test_bad_retry_settings_are_refused(retry: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        sink_config(f"    retry: {retry}")


def test_zero_timeout_means_fail_at_once() -> None:
    assert sink_config("    retry: {timeoutMs: 0}")["cdc.retry.timeout.ms"] == "0"


def test_one_place_for_the_defaults() -> None:
    """The connector's own defaults (used when someone runs it without cdcctl) equal the
    manifest's: RetryPolicy.java's DEFAULT_* constants."""
    java = RETRY_POLICY_JAVA.read_text()
    constants = {
        m["name"]: int(m["value"].replace("_", ""))
        for m in re.finditer(r"DEFAULT_(?P<name>\w+) = (?P<value>[\d_]+)L;", java)
    }
    model = SinkRetry()
    assert constants == {
        "TIMEOUT_MS": model.timeout_ms,
        "BACKOFF_INITIAL_MS": model.backoff_initial_ms,
        "BACKOFF_MAX_MS": model.backoff_max_ms,
    }


def test_a_changed_retry_setting_is_an_ordinary_config_update() -> None:
    before = sink_config()
    after = sink_config("    retry: {timeoutMs: 1200000}")
    change = plan_connector("demo", "demo-jdbc-sink", after, before)
    assert change.action == "update"
    keys = {f.key: (f.before, f.after) for f in change.fields}
    assert keys.pop("cdc.retry.timeout.ms") == ("600000", "1200000")
    assert set(keys) == {"cdcctl.config-hash"}


def test_an_existing_stock_sink_is_switched_to_the_retrying_one() -> None:
    old = dict(sink_config())
    for key in ("cdc.retry.timeout.ms", "cdc.retry.backoff.initial.ms", "cdc.retry.backoff.max.ms"):
        del old[key]
    old["connector.class"] = "io.debezium.connector.jdbc.JdbcSinkConnector"
    change = plan_connector("demo", "demo-jdbc-sink", sink_config(), old)
    assert change.action == "update"
    fields = {f.key: f for f in change.fields}
    assert fields["connector.class"].after == SINK_CONNECTOR_CLASS
    assert fields["cdc.retry.timeout.ms"].before is None

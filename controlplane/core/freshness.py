"""Freshness end to end, and what `cdcctl serve` exports (decision 0120). Pure: no I/O here.

A pipeline with ``spec.options.heartbeat: true`` carries one more table, ``cdcctl_heartbeat``
in its keyspace (CDC on, created by `cdcctl apply`). `cdcctl serve` writes one row per pipeline
into it every few seconds with an explicit write timestamp (``USING TIMESTAMP``); the row takes
the real path — agent, Kafka, Connect, the sink's transform and the LWW gate — and the gate
keeps that timestamp in the raw table's ``_cdc_live_ts``. So

    freshness = now - newest heartbeat write time visible in PostgreSQL

covers every hop. `serve` reads it at each collection and exports
``cdc_pipeline_freshness_seconds``; the scrape computes ``now`` itself, so the gauge keeps
growing while nothing arrives (and while PostgreSQL cannot be read: nothing is visible then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controlplane.core.cdc_raw import Gauge
from controlplane.core.schema_model import TableModel

HEARTBEAT_TABLE = "cdcctl_heartbeat"
# system_schema.columns rows of the heartbeat table: apply plans its PostgreSQL tables from
# these before the Cassandra table exists (the plan changes nothing), and they are exactly what
# Cassandra reports once `heartbeat_table_cql` has created it.
_HEARTBEAT_COLUMNS: tuple[dict[str, object], ...] = (
    {
        "column_name": "pipeline",
        "type": "text",
        "kind": "partition_key",
        "position": 0,
        "clustering_order": "none",
    },
    {
        "column_name": "beat",
        "type": "timestamp",
        "kind": "regular",
        "position": -1,
        "clustering_order": "none",
    },
)
#: Connector states of Kafka Connect's status API (each exported, 1 for the current one).
CONNECTOR_STATES: tuple[str, ...] = (
    "RUNNING",
    "PAUSED",
    "STOPPED",
    "FAILED",
    "UNASSIGNED",
    "RESTARTING",
)
VERIFY_RESULTS: tuple[str, ...] = ("PASS", "DIFF", "INCOMPLETE")


def heartbeat_model(keyspace: str) -> TableModel:
    return TableModel.from_system_schema(keyspace, HEARTBEAT_TABLE, _HEARTBEAT_COLUMNS)


def heartbeat_table_cql(keyspace: str) -> str:
    """CREATE TABLE of the heartbeat table (CDC on; idempotent). The keyspace name passed the
    manifest's CQL identifier check; it is quoted all the same."""
    ks = '"' + keyspace.replace('"', '""') + '"'
    return (
        f"CREATE TABLE IF NOT EXISTS {ks}.{HEARTBEAT_TABLE} "
        "(pipeline text PRIMARY KEY, beat timestamp) WITH cdc = true "
        "AND comment = 'cdcctl heartbeat: cdcctl serve writes it to measure freshness'"
    )


def heartbeat_insert_cql(keyspace: str) -> str:
    """The heartbeat write: (pipeline, beat as datetime, write timestamp µs)."""
    ks = '"' + keyspace.replace('"', '""') + '"'
    return f"INSERT INTO {ks}.{HEARTBEAT_TABLE} (pipeline, beat) VALUES (?, ?) USING TIMESTAMP ?"  # noqa: S608  # nosec B608  # quoted keyspace, CQL


def freshness_seconds(now_s: float, newest_write_us: int | None) -> float | None:
    """now minus the newest heartbeat write time in PostgreSQL; None when none arrived yet."""
    if newest_write_us is None:
        return None
    return max(now_s - newest_write_us / 1_000_000, 0.0)


def verify_table_results(
    tables: Iterable[str], range_records: Mapping[str, Mapping[str, object]]
) -> dict[str, str]:
    """{table: PASS|DIFF|INCOMPLETE} of one verify run from its range records (task keys are
    ``<table>:<range>``), as the run's own summary judges them."""
    by_table: dict[str, list[str]] = {t: [] for t in tables}
    for task, rec in range_records.items():
        table = task.split(":", 1)[0]
        if table in by_table:
            by_table[table].append(str(rec.get("status", "NOT_STARTED")))
    out = {}
    for table, statuses in by_table.items():
        if not statuses or any(s in ("FAIL", "STARTED", "NOT_STARTED") for s in statuses):
            out[table] = "INCOMPLETE"
        elif "DIFF" in statuses:
            out[table] = "DIFF"
        else:
            out[table] = "PASS"
    return out


@dataclass(frozen=True)
class ConnectorObservation:
    pipeline: str
    connector: str
    state: str  # a CONNECTOR_STATES value, or MISSING when Connect does not know it
    task_states: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyObservation:
    pipeline: str
    table: str
    result: str  # VERIFY_RESULTS
    run_started_s: float


@dataclass
class Observations:
    """What `cdcctl serve` last saw of each pipeline (each part refreshed by its collector; a
    part that failed keeps its last values out: `None` / missing keys) and what it counted."""

    # pipeline -> newest heartbeat write time (µs) visible in PostgreSQL (None: none yet)
    heartbeat_newest_us: dict[str, int | None] = field(default_factory=dict)
    connectors: list[ConnectorObservation] = field(default_factory=list)
    dlq_records: dict[tuple[str, str], int] = field(default_factory=dict)  # (pipeline, topic)
    consumer_lag: dict[tuple[str, str], int] = field(default_factory=dict)  # (pipeline, group)
    verify: list[VerifyObservation] = field(default_factory=list)
    cdc_raw: list[Gauge] = field(default_factory=list)
    # counters (since serve started)
    restarts: dict[tuple[str, str], int] = field(default_factory=dict)  # (pipeline, connector)
    heartbeats: dict[tuple[str, str], int] = field(default_factory=dict)  # (pipeline, result)
    reconciles: dict[str, int] = field(default_factory=dict)  # result: ok | failed | idle
    collect_errors: dict[str, int] = field(default_factory=dict)  # part
    last_collect_s: float | None = None


def serve_gauges(obs: Observations, now_s: float) -> list[Gauge]:
    """The metric families of one scrape of `cdcctl serve` (names in docs/serve.md)."""
    fresh = []
    for pipeline, newest in sorted(obs.heartbeat_newest_us.items()):
        value = freshness_seconds(now_s, newest)
        if value is not None:
            fresh.append(((pipeline,), round(value, 3)))
    out = [
        Gauge(
            "cdc_pipeline_freshness_seconds",
            "Now minus the newest heartbeat write time (Cassandra write timestamp) visible in "
            "PostgreSQL: the whole path's delay (agent, Kafka, Connect, LWW gate).",
            ("pipeline",),
            tuple(fresh),
        ),
        Gauge(
            "cdc_pipeline_heartbeat_written_seconds",
            "Cassandra write time (Unix seconds) of the newest heartbeat visible in PostgreSQL.",
            ("pipeline",),
            tuple(
                ((p,), n / 1_000_000)
                for p, n in sorted(obs.heartbeat_newest_us.items())
                if n is not None
            ),
        ),
        Gauge(
            "cdc_connector_state",
            "1 for the sink connector's current state (Kafka Connect status), 0 for the others.",
            ("pipeline", "connector", "state"),
            tuple(
                ((c.pipeline, c.connector, s), 1.0 if c.state == s else 0.0)
                for c in obs.connectors
                for s in (*CONNECTOR_STATES, "MISSING")
            ),
        ),
        Gauge(
            "cdc_connector_tasks",
            "Sink tasks per state.",
            ("pipeline", "connector", "state"),
            tuple(
                ((c.pipeline, c.connector, s), float(c.task_states.count(s)))
                for c in obs.connectors
                for s in CONNECTOR_STATES
            ),
        ),
        Gauge(
            "cdc_dlq_records",
            "Records in the pipeline's dead-letter topic (log end minus log start offsets).",
            ("pipeline", "topic"),
            tuple(((p, t), float(n)) for (p, t), n in sorted(obs.dlq_records.items())),
        ),
        Gauge(
            "cdc_consumer_lag_records",
            "Records the sink's consumer group has not committed yet, over its partitions.",
            ("pipeline", "group"),
            tuple(((p, g), float(n)) for (p, g), n in sorted(obs.consumer_lag.items())),
        ),
        Gauge(
            "cdc_verify_last_result",
            "1 for the result of the newest `cdcctl verify` run that covered the table.",
            ("pipeline", "table", "result"),
            tuple(
                ((v.pipeline, v.table, r), 1.0 if v.result == r else 0.0)
                for v in obs.verify
                for r in VERIFY_RESULTS
            ),
        ),
        Gauge(
            "cdc_verify_last_run_timestamp_seconds",
            "When the newest verify run that covered the table started (Unix seconds).",
            ("pipeline", "table"),
            tuple(((v.pipeline, v.table), v.run_started_s) for v in obs.verify),
        ),
        *obs.cdc_raw,
        Gauge(
            "cdc_reconcile_restarts_total",
            "Failed connector/task restarts `cdcctl serve`'s reconciler did.",
            ("pipeline", "connector"),
            tuple(((p, c), float(n)) for (p, c), n in sorted(obs.restarts.items())),
            kind="counter",
        ),
        Gauge(
            "cdc_reconcile_runs_total",
            "Reconcile rounds by result (ok, idle: another reconciler holds the lease, failed).",
            ("result",),
            tuple(((r,), float(n)) for r, n in sorted(obs.reconciles.items())),
            kind="counter",
        ),
        Gauge(
            "cdc_heartbeat_writes_total",
            "Heartbeat rows written to Cassandra, by result (ok, failed).",
            ("pipeline", "result"),
            tuple(((p, r), float(n)) for (p, r), n in sorted(obs.heartbeats.items())),
            kind="counter",
        ),
        Gauge(
            "cdc_serve_collect_errors_total",
            "Collections that failed, by part (its series keep their last values or vanish).",
            ("part",),
            tuple(((part,), float(n)) for part, n in sorted(obs.collect_errors.items())),
            kind="counter",
        ),
    ]
    if obs.last_collect_s is not None:
        out.append(
            Gauge(
                "cdc_serve_last_collect_timestamp_seconds",
                "When the last collection finished (Unix seconds).",
                (),
                (((), obs.last_collect_s),),
            )
        )
    return out

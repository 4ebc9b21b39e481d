"""`cdcctl serve`: one long-running process for a fleet of pipelines (decision 0120).

Three loops, each in its own thread, and a metrics endpoint:
- the reconciler (services.reconcile, under its Redis lease) every ``reconcile_interval_s``;
- the heartbeat writer: one row per pipeline with ``options.heartbeat`` into its keyspace's
  ``cdcctl_heartbeat`` every ``heartbeat_interval_s``, with the write timestamp given;
- the collector, every ``collect_interval_s``: the newest heartbeat visible in PostgreSQL,
  connector and task states, DLQ depth, consumer lag, the newest verify result per table (from
  verify's run records in Redis) and cdc_raw per node.
A scrape renders the last observations (core.freshness.serve_gauges) with the scrape's own
clock, so freshness grows between collections and while a part cannot be read. A part that
fails is counted (cdc_serve_collect_errors_total) and logged; the loops never end on an error.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from controlplane.adapters import cassandra, kafka, metrics_http, postgres
from controlplane.adapters.redis_store import CheckpointStore
from controlplane.core.cdc_raw import Gauge
from controlplane.core.ddl import pg_names
from controlplane.core.errors import CdcError, ConnectError
from controlplane.core.freshness import (
    HEARTBEAT_TABLE,
    ConnectorObservation,
    Observations,
    VerifyObservation,
    heartbeat_insert_cql,
    heartbeat_model,
    serve_gauges,
    verify_table_results,
)
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.render import sink_connector_name
from controlplane.core.target import RedisEndpoint, Target, endpoints_for
from controlplane.services import cdc_raw
from controlplane.services.apply import AgentRuntime
from controlplane.services.apply import _Cassandra as CassandraSessions
from controlplane.services.reconcile import LEASE_KEY, Reconciler
from controlplane.services.targets import connect_client, pipeline_dsn

DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
DEFAULT_COLLECT_INTERVAL_S = 10.0
DEFAULT_RECONCILE_INTERVAL_S = 120.0
# Verify runs looked at for the newest result per table (newest first).
VERIFY_RUNS_LOOKED_AT = 20
HEARTBEAT_CONSISTENCY = "ONE"  # one replica is enough: every replica's agent carries it


def newest_heartbeat_sql(keyspace: str) -> str:
    """The newest write time (µs) the LWW gate kept for a pipeline's heartbeat row."""
    raw = pg_names(heartbeat_model(keyspace)).raw_table
    return (
        f'SELECT greatest("_cdc_live_ts", "_cdc_wt"[1]) FROM {raw} '  # noqa: S608  # nosec B608  # quoted idents
        "WHERE pipeline = %s"
    )


class Serve:
    def __init__(
        self,
        paths: list[str],
        target: Target,
        *,
        agents: AgentRuntime | None,
        redis: RedisEndpoint,
        reconcile: bool = True,
        reconcile_interval_s: float = DEFAULT_RECONCILE_INTERVAL_S,
        heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
        collect_interval_s: float = DEFAULT_COLLECT_INTERVAL_S,
        lease_ttl_s: float = 0.0,
        lease_key: str = LEASE_KEY,
        cdc_raw_sources: list[cdc_raw.NodeSource] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.paths = paths
        self.target = target
        self.redis = redis
        self.reconcile_interval_s = reconcile_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.collect_interval_s = collect_interval_s
        self.cdc_raw_sources = cdc_raw_sources or []
        self.clock = clock
        self.obs = Observations()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cql = CassandraSessions(target)
        self._prepared: dict[tuple[int, str], Any] = {}
        self.log = structlog.get_logger("cdcctl.serve")
        self.reconciler = (
            Reconciler(
                paths,
                target,
                agents=agents,
                redis_url=redis,
                lease_ttl_s=lease_ttl_s or max(30.0, 3 * reconcile_interval_s),
                lease_key=lease_key,
            )
            if reconcile
            else None
        )

    # --- the pipelines, read again every round (a manifest may change under a running serve)

    def pipelines(self) -> list[tuple[Pipeline, Path]]:
        out = []
        for item in load_manifests(self.paths):
            base = Path(item.source).parent if item.source not in ("-", "<stdin>") else Path.cwd()
            out.append((item.pipeline, base))
        return out

    # --- counting ------------------------------------------------------------------------

    def _count(self, table: dict[Any, int], key: Any, n: int = 1) -> None:
        with self._lock:
            table[key] = table.get(key, 0) + n

    def _failed(self, part: str, exc: Exception) -> None:
        self._count(self.obs.collect_errors, part)
        self.log.warning("collect_failed", part=part, error=str(exc), type=type(exc).__name__)

    # --- the reconciler --------------------------------------------------------------------

    def reconcile_once(self) -> None:
        rec = self.reconciler
        if rec is None:
            return
        try:
            outcome = rec.once()
        except Exception as exc:  # one failed round must not end serve
            self._count(self.obs.reconciles, "failed")
            self.log.error("reconcile_failed", error=str(exc), type=type(exc).__name__)
            return
        self._count(self.obs.reconciles, "ok" if outcome.acted else "idle")
        sinks = {sink_connector_name(p): p.name for p, _ in self._safe_pipelines("reconcile")}
        for r in outcome.restarts:
            connector = str(r["connector"])
            self._count(self.obs.restarts, (sinks.get(connector, ""), connector))

    def _reconcile_loop(self) -> None:
        rec = self.reconciler
        assert rec is not None
        try:
            while not self._stop.is_set():
                self.reconcile_once()
                end = time.monotonic() + self.reconcile_interval_s
                while not self._stop.wait(min(1.0, max(end - time.monotonic(), 0))):
                    if time.monotonic() >= end:
                        break
                    if rec.lease.held:
                        rec.lease.extend()
        finally:
            if rec.lease.held:
                rec.lease.release()

    # --- the heartbeat ---------------------------------------------------------------------

    def beat_once(self) -> None:
        for p, _ in self._safe_pipelines("heartbeat"):
            if not p.heartbeat:
                continue
            try:
                session = self._cql.session(endpoints_for(self.target, p))
                key = (id(session), p.keyspace)
                if key not in self._prepared:
                    self._prepared[key] = cassandra.prepare(
                        session, heartbeat_insert_cql(p.keyspace), consistency=HEARTBEAT_CONSISTENCY
                    )
                now = self.clock()
                write_us = int(now * 1_000_000)
                beat = datetime.fromtimestamp(now, UTC)
                cassandra.write(session, self._prepared[key], (p.name, beat, write_us))
            except CdcError as exc:
                self._count(self.obs.heartbeats, (p.name, "failed"))
                self.log.warning("heartbeat_failed", pipeline=p.name, error=str(exc))
            else:
                self._count(self.obs.heartbeats, (p.name, "ok"))

    # --- the collector ---------------------------------------------------------------------

    def _safe_pipelines(self, part: str) -> list[tuple[Pipeline, Path]]:
        try:
            return self.pipelines()
        except CdcError as exc:
            self._failed(part, exc)
            return []

    def collect_once(self) -> None:
        pipelines = self._safe_pipelines("manifests")
        newest: dict[str, int | None] = {}
        connectors: list[ConnectorObservation] = []
        dlq: dict[tuple[str, str], int] = {}
        lag: dict[tuple[str, str], int] = {}
        for p, base in pipelines:
            endpoints = endpoints_for(self.target, p)
            sink = sink_connector_name(p)
            if p.heartbeat:
                try:
                    dsn = pipeline_dsn(self.target, p, base_dir=base)
                    rows = postgres.query(dsn, newest_heartbeat_sql(p.keyspace), [p.name])
                    newest[p.name] = int(rows[0][0]) if rows and rows[0][0] is not None else None
                except CdcError as exc:
                    self._failed("postgres", exc)
                    # nothing visible now: freshness keeps growing from the last one seen
                    newest[p.name] = self.obs.heartbeat_newest_us.get(p.name)
            try:
                with connect_client(endpoints.connect, self.target) as client:
                    status = client.status(sink)
                connectors.append(
                    ConnectorObservation(
                        p.name,
                        sink,
                        status.connector.state,
                        tuple(t.state for t in status.tasks),
                    )
                )
            except ConnectError as exc:
                if exc.status == 404:
                    connectors.append(ConnectorObservation(p.name, sink, "MISSING"))
                else:
                    self._failed("connect", exc)
            try:
                depth = kafka.topic_records(endpoints.kafka, p.dlq_topic)
                if depth is not None:
                    dlq[(p.name, p.dlq_topic)] = depth
                group = f"connect-{sink}"
                rows_lag = kafka.consumer_lag(endpoints.kafka, group)
                lag[(p.name, group)] = sum(
                    v for r in rows_lag if isinstance(v := r.get("lag"), int)
                )
            except CdcError as exc:
                self._failed("kafka", exc)
        # published before the slower parts: a Redis that does not answer (its client rides
        # out restarts for a while) must not hold freshness back
        with self._lock:
            self.obs.heartbeat_newest_us = newest
            self.obs.connectors = connectors
            self.obs.dlq_records = dlq
            self.obs.consumer_lag = lag
        verify = self._verify_results({p.name for p, _ in pipelines})
        raw: list[Gauge] | None = None
        if self.cdc_raw_sources:
            try:
                raw = cdc_raw.gauges(self.cdc_raw_sources)
            except CdcError as exc:
                self._failed("cdc_raw", exc)
        with self._lock:
            if verify is not None:
                self.obs.verify = verify
            if raw is not None:
                self.obs.cdc_raw = raw
            self.obs.last_collect_s = self.clock()

    def _verify_results(self, pipelines: set[str]) -> list[VerifyObservation] | None:
        """The newest verify result of each table of these pipelines (None: Redis failed)."""
        try:
            store = CheckpointStore(self.redis)
        except CdcError as exc:
            self._failed("redis", exc)
            return None
        seen: dict[tuple[str, str], VerifyObservation] = {}
        try:
            for run_id in store.runs(VERIFY_RUNS_LOOKED_AT):
                meta = store.run(run_id) or {}
                pipeline = str(meta.get("pipeline", ""))
                if pipeline not in pipelines:
                    continue
                tables = [str(t) for t in meta.get("tables", [])]
                results = verify_table_results(tables, store.ranges(run_id))
                started = float(meta.get("created_at", 0.0))
                for table, result in results.items():
                    seen.setdefault(
                        (pipeline, table), VerifyObservation(pipeline, table, result, started)
                    )
        except CdcError as exc:
            self._failed("redis", exc)
            return None
        finally:
            store.close()
        return [seen[k] for k in sorted(seen)]

    # --- running ---------------------------------------------------------------------------

    def gauges(self) -> list[Gauge]:
        with self._lock:
            snapshot = copy.deepcopy(self.obs)
        return serve_gauges(snapshot, self.clock())

    def _loop(self, name: str, step: Callable[[], None], interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                step()
            except Exception as exc:  # a loop of serve never ends on an error
                self._failed(name, exc)
            self._stop.wait(interval_s)

    def start(self) -> None:
        loops: list[tuple[str, Callable[[], None]]] = [
            (
                "heartbeat",
                lambda: self._loop("heartbeat", self.beat_once, self.heartbeat_interval_s),
            ),
            ("collect", lambda: self._loop("collect", self.collect_once, self.collect_interval_s)),
        ]
        if self.reconciler is not None:
            loops.append(("reconcile", self._reconcile_loop))
        for name, run in loops:
            thread = threading.Thread(target=run, name=f"serve-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def serve(
        self, host: str, port: int, on_error: Callable[[Exception], None]
    ) -> metrics_http.MetricsServer:
        return metrics_http.serve(self.gauges, host, port, on_error)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._cql.close()


def once(server: Serve) -> list[Gauge]:
    """One heartbeat and one collection, then the metrics (`cdcctl serve --once`)."""
    server.beat_once()
    server.collect_once()
    return server.gauges()


__all__ = ["HEARTBEAT_TABLE", "Serve", "once"]

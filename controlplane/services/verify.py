"""`cdcctl verify`: prove PostgreSQL's live views hold what Cassandra holds, range by range.

Algorithm (docs/verify.md):

1. The token ring is split into ranges (core.token_ranges, aligned to the ring's own ranges);
   each (table, range) is a *task* with a checkpoint in Redis (adapters.redis_store).
2. Before the scan, the partition token of every PostgreSQL row is computed client-side (Murmur3
   over the serialized partition key) and COPYed into an unlogged side table
   ``"<ks>_cdc"."<table>__vt_<run>"`` indexed on the token (decision 0030).
3. Workers (threads; several processes share a run through Redis leases) take tasks. A task
   streams Cassandra ``WHERE token(pk) > ? AND token(pk) <= ?`` page by page and PostgreSQL's
   live view joined with the side table, both in token order, and merges them one token at a
   time: memory holds one page per side, never the table.
4. Rows that differ are *suspects*: after the pipeline lag both sides are read again by primary
   key until two observations agree (a row still changing after ``rechecks`` rounds is
   *skipped*), so a live pipeline does not produce false differences.
5. With ``repair`` the Cassandra row (values, WRITETIME, TTL) is written through the sink's
   statement, i.e. through the last-write-wins gate; with ``delete_extra`` extra rows get a row
   tombstone through the gate. The row is read again to count it corrected.
6. Differences go to a JSONL file; counters and status per range to Redis; the run fails with
   `DifferencesFoundError` while differences remain.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.adapters import cassandra, metrics_http, postgres, private_files, tracing
from controlplane.adapters.redis_store import DEFAULT_RUN_RETENTION_S, CheckpointStore
from controlplane.core.canonical import (
    Comparison,
    UdtFields,
    canonical_cassandra,
    canonical_json,
    compare,
)
from controlplane.core.ddl import pg_names, quote_ident, sink_upsert_sql
from controlplane.core.errors import (
    CassandraReadError,
    CdcError,
    DifferencesFoundError,
    NotVerifiedError,
    UsageError,
)
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.read_retry import (
    DEFAULT_CONSISTENCY,
    RetryPolicy,
    decide,
    parse_consistency,
    replica_for_attempt,
    replica_order,
)
from controlplane.core.schema_model import CqlType, TableModel
from controlplane.core.target import RedisEndpoint, Target, endpoints_for
from controlplane.core.token_ranges import (
    TokenRange,
    default_range_count,
    partition_token,
    split_ring,
)
from controlplane.services.targets import cassandra_security

COUNTERS = (
    "read",
    "valid",
    "mismatch",
    "missing",
    "extra",
    "corrected_mismatch",
    "corrected_missing",
    "deleted_extra",
    "skipped",
    "error",
    "rechecked",  # rows that differed at first and matched when read again after the lag
    "retries",  # range reads done again after a temporary Cassandra failure (decision 0102)
)
FINAL = frozenset({"PASS", "DIFF"})
NOT_VERIFIED_LISTED = 50  # ranges listed in a summary (all are counted)
TOKEN_COL = "_cdc_token"  # noqa: S105  # nosec B105  # a column name, not a secret

Progress = Callable[[str, Mapping[str, Any]], None]

# ----------------------------------------------------------------------------- metrics

METRICS = metrics_http.Counters()
RUNS = METRICS.counter("cdc_verify_runs", "Verify runs finished, by result", ["result"])
RANGES = METRICS.counter(
    "cdc_verify_ranges", "Token ranges verified, by status", ["table", "status"]
)
ROWS = METRICS.counter("cdc_verify_rows", "Cassandra rows read by verify", ["table"])
RETRIES = METRICS.counter(
    "cdc_verify_read_retries",
    "Range reads done again after a temporary Cassandra failure, by error kind",
    ["table", "kind"],
)
DIFFS = METRICS.counter(
    "cdc_verify_differences",
    "Differences found (missing, extra, mismatch) and corrected",
    ["table", "kind"],
)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Expose the verify metrics on ``http://addr:port/metrics`` for the life of the process."""
    METRICS.serve(addr, port)


# ----------------------------------------------------------------------------- options


@dataclass
class VerifyOptions:
    manifests: Sequence[str]
    redis_url: str | RedisEndpoint = "redis://127.0.0.1:6379/0"
    table: str | None = None
    ranges: int | None = None
    workers: int = 0  # 0: 2 x cores
    repair: bool = False
    delete_extra: bool = False
    resume: str | None = None
    run_id: str | None = None
    diff_file: Path | None = None
    lag_s: float = 5.0
    rechecks: int = 3
    fetch_size: int = 1000
    lease_ttl_ms: int = 30_000
    keep_token_table: bool = False
    pause_ms: int = 0  # pause after each range: throttles the load on Cassandra
    keep_s: int = DEFAULT_RUN_RETENTION_S  # the run's keys expire this long after its last write
    target: Target | None = None  # where Cassandra and PostgreSQL are (None: resolve_target())
    #: Cassandra reads' consistency level; None: the run's own when resuming or joining, else
    #: core.read_retry.DEFAULT_CONSISTENCY
    consistency: str | None = None
    read_retries: int = RetryPolicy().retries  # attempts of a range after its first (0: none)


@dataclass
class RunSummary:
    run_id: str
    status: str
    tables: list[str]
    ranges: int
    statuses: dict[str, int]
    counters: dict[str, int]
    diff_file: str | None
    elapsed_s: float = 0.0
    rows_per_s: float = 0.0
    consistency: str = DEFAULT_CONSISTENCY
    #: ranges not verified: FAIL (reads failed after their retries), STARTED or NOT_STARTED
    not_verified: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        c = self.counters
        return (
            c["missing"]
            + c["mismatch"]
            + c["extra"]
            - c["corrected_missing"]
            - c["corrected_mismatch"]
            - c["deleted_extra"]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "status": self.status,
            "tables": self.tables,
            "ranges": self.ranges,
            "range_status": self.statuses,
            "counters": self.counters,
            "remaining_differences": self.remaining,
            "diff_file": self.diff_file,
            "elapsed_s": round(self.elapsed_s, 2),
            "rows_per_s": round(self.rows_per_s, 1),
            "consistency": self.consistency,
            "not_verified_ranges": len(self.not_verified),
            "not_verified": self.not_verified[:NOT_VERIFIED_LISTED],
        }


# ----------------------------------------------------------------------------- a table


def _to_cql(v: Any) -> Any:
    """A psycopg value as a Cassandra driver parameter."""
    import ipaddress

    if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(v)
    return v


def _to_pg(v: Any) -> Any:
    """A Cassandra driver value as a psycopg parameter."""
    import datetime as dt

    if hasattr(v, "days_from_epoch") and hasattr(v, "date"):  # cassandra.util.Date
        return v.date()
    if hasattr(v, "nanosecond_time") and hasattr(v, "time"):  # cassandra.util.Time
        return v.time()
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    if hasattr(v, "nanoseconds") and hasattr(v, "months"):  # cassandra.util.Duration
        return f"{v.months} months {v.days} days {v.nanoseconds // 1000} microseconds"
    return v


class Table:
    """Everything the verify of one table needs: names, statements, column types."""

    def __init__(self, model: TableModel, run_id: str) -> None:
        self.model = model
        self.names = pg_names(model)
        self.pk = [c.name for c in model.primary_key]
        self.part = [c.name for c in model.partition_key]
        self.part_types = [c.cql_type for c in model.partition_key]
        self.reg = [c.name for c in model.regular]
        self.types: dict[str, CqlType] = {c.name: c.type for c in model.columns}
        self.pk_raw = [c.cql_type in _RAW_KEY_TYPES for c in model.primary_key]
        run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:8]
        self.token_table = f"{model.table}__vt_{run_hash}"
        q = quote_ident
        ks, tb = q(model.keyspace), q(model.table)
        cols = ", ".join(q(c) for c in self.pk + self.reg)
        tok = f"token({', '.join(q(c) for c in self.part)})"
        where_pk = " AND ".join(f"{q(c)} = ?" for c in self.pk)
        self.cql_scan = f"SELECT {tok}, {cols} FROM {ks}.{tb} WHERE {tok} > ? AND {tok} <= ?"  # noqa: S608  # nosec B608  # quoted identifiers
        self.cql_by_pk = f"SELECT {cols} FROM {ks}.{tb} WHERE {where_pk}"  # noqa: S608  # nosec B608  # quoted identifiers
        meta = "".join(f", WRITETIME({q(c)}), TTL({q(c)})" for c in self.reg)
        self.cql_repair = f"SELECT {cols}{meta} FROM {ks}.{tb} WHERE {where_pk}"  # noqa: S608  # nosec B608  # quoted identifiers
        # kt: (pk, token) COPYed from the client; tt: the live view's rows with their token,
        # built from kt by one join, then read per range through its token index.
        tt = f"{q(self.names.raw_schema)}.{q(self.token_table)}"
        kt = f"{q(self.names.raw_schema)}.{q(f'{model.table}__vk_{run_hash}')}"
        self.pg_token_table = tt
        join = " AND ".join(f"v.{q(c)} = k.{q(c)}" for c in self.pk)
        vcols = ", ".join(f"v.{q(c)}" for c in self.pk + self.reg)
        tk = q(TOKEN_COL)
        self.pg_range = (
            f"SELECT {tk}, {cols} FROM {tt} "  # noqa: S608  # nosec B608  # quoted identifiers
            f"WHERE {tk} > %s AND {tk} <= %s ORDER BY {tk}"
        )
        where_pg = " AND ".join(f"{q(c)} = %s" for c in self.pk)
        self.pg_by_pk = f"SELECT {cols} FROM {self.names.live_view} WHERE {where_pg}"  # noqa: S608  # nosec B608  # quoted identifiers (PgNames, quote_ident), values as %s
        self.pg_raw_by_pk = (
            f'SELECT {cols}, "_cdc_wt", "_cdc_live_ts", "_cdc_deleted_at" '  # noqa: S608  # nosec B608  # quoted identifiers (PgNames, quote_ident), values as %s
            f"FROM {self.names.raw_table} WHERE {where_pg}"
        )
        self.pg_keys = f"SELECT {', '.join(q(c) for c in self.pk)} FROM {self.names.live_view}"  # noqa: S608  # nosec B608  # quoted identifiers (PgNames, quote_ident), values as %s
        self.upsert = sink_upsert_sql(model)
        pk_defs = ", ".join(f"{q(c.name)} {_pg_type(c.cql_type)}" for c in model.primary_key)
        self.pg_token_ddl = [
            f"DROP TABLE IF EXISTS {tt}",
            f"DROP TABLE IF EXISTS {kt}",
            f"CREATE UNLOGGED TABLE {kt} ({pk_defs}, {tk} bigint NOT NULL)",
        ]
        self.pg_token_copy = f"COPY {kt} ({', '.join(q(c) for c in self.pk)}, {tk}) FROM STDIN"
        self.pg_token_index = [
            f"CREATE UNLOGGED TABLE {tt} AS SELECT k.{tk}, {vcols} "  # noqa: S608  # nosec B608  # quoted identifiers (PgNames, quote_ident), values as %s
            f"FROM {kt} AS k JOIN {self.names.live_view} AS v ON {join}",
            f"CREATE INDEX ON {tt} ({tk})",
            f"ANALYZE {tt}",
            f"DROP TABLE {kt}",
        ]
        self.pg_token_drop = [f"DROP TABLE IF EXISTS {tt}", f"DROP TABLE IF EXISTS {kt}"]
        self.prepared: dict[str, Any] = {}
        #: UDT field types of the keyspace (set once connected): compare reads jsonb by them
        self.udts: UdtFields = {}

    @property
    def name(self) -> str:
        return self.model.qualified_name

    def key(self, values: Sequence[Any]) -> Any:
        """A primary key that is equal for a Cassandra row and its PostgreSQL copy: the value
        itself where both drivers return equal Python values (text, integers, uuid...), the
        canonical JSON otherwise (timestamps, dates, inet...)."""
        return tuple(
            v if raw else canonical_json(canonical_cassandra(self.types[c], v))
            for c, v, raw in zip(self.pk, values, self.pk_raw, strict=True)
        )

    def key_dict(self, values: Sequence[Any]) -> dict[str, Any]:
        return {
            c: canonical_cassandra(self.types[c], v) for c, v in zip(self.pk, values, strict=True)
        }

    def diff(self, c_row: Sequence[Any], p_row: Sequence[Any]) -> dict[str, Comparison]:
        """Differing regular columns of two rows laid out as pk + reg."""
        n = len(self.pk)
        out: dict[str, Comparison] = {}
        for i, col in enumerate(self.reg, start=n):
            a, b = c_row[i], p_row[i]
            if a is b or (type(a) is type(b) and a == b):
                continue  # same Python type and equal: the canonical forms are equal too
            cmp = compare(self.types[col], a, b, udts=self.udts)
            if not cmp.equal:
                out[col] = cmp
        return out


#: Key types both drivers return as equal, equally hashed Python values (str, int, UUID, bool,
#: bytes, Decimal; varint: int vs Decimal, equal and same hash).
_RAW_KEY_TYPES = frozenset(
    {
        "ascii",
        "text",
        "varchar",
        "int",
        "bigint",
        "smallint",
        "tinyint",
        "uuid",
        "timeuuid",
        "boolean",
        "blob",
        "varint",
        "decimal",
    }
)


def _pg_type(cql_type: str) -> str:
    from controlplane.core.schema_model import Column
    from controlplane.core.types import pg_type

    col = Column(name="k", cql_type=cql_type, kind="regular")
    return pg_type(col, keyspace="-", table="-")


# ----------------------------------------------------------------------------- the run


@dataclass
class _Suspect:
    kind: str  # missing | extra | mismatch
    pk: tuple[Any, ...]  # Cassandra-side (driver) values when known, else PostgreSQL's
    key: Any
    signature: str
    columns: dict[str, Comparison] = field(default_factory=dict)
    newest_write_us: int | None = None  # Cassandra's newest WRITETIME of the row, when read


class Verifier:
    """One process's part of a verify run."""

    consistency: str = DEFAULT_CONSISTENCY  # of the run's reads; set from the options and run

    def __init__(
        self,
        opts: VerifyOptions,
        pipeline: Pipeline,
        models: list[TableModel],
        dsn: str,
        *,
        progress: Progress | None = None,
    ) -> None:
        self.o = opts
        self.p = pipeline
        self.dsn = dsn
        self.say = progress or (lambda _kind, _data: None)
        self.store = CheckpointStore(opts.redis_url, retention_s=opts.keep_s)
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"
        self.run_id = opts.resume or opts.run_id or _new_run_id()
        self.tables = {m.table: Table(m, self.run_id) for m in models}
        self.lock = threading.Lock()
        self.held: set[str] = set()
        self.stop = threading.Event()
        self.local = threading.local()
        self.conns: list[Any] = []  # every worker thread's PostgreSQL connection
        self.diff_path = opts.diff_file
        self.workers = opts.workers or max(2, 2 * (os.cpu_count() or 1))
        target = opts.target
        assert target is not None
        where = endpoints_for(target, pipeline)
        self.cluster, self.session = cassandra.scan_session(
            list(where.contact_points),
            local_datacenter=where.local_datacenter,
            hint=target.hint("Cassandra"),
            security=cassandra_security(target),
        )
        self.local_dc = where.local_datacenter
        self.policy = RetryPolicy(retries=max(0, opts.read_retries))
        self.consistency = parse_consistency(opts.consistency)
        udts = cassandra.udt_fields(self.session, pipeline.keyspace)
        for t in self.tables.values():
            t.udts = udts

    def _prepare_statements(self) -> None:
        """Every table's statements, read at the run's consistency level."""
        cl = self.consistency
        for t in self.tables.values():
            t.prepared = {
                "scan": cassandra.prepare(self.session, t.cql_scan, consistency=cl),
                "by_pk": cassandra.prepare(self.session, t.cql_by_pk, consistency=cl),
                "repair": cassandra.prepare(self.session, t.cql_repair, consistency=cl),
            }

    # ------------------------------------------------------------------ setup

    def _tasks(self) -> dict[str, dict[str, Any]]:
        count = self.o.ranges or default_range_count(os.cpu_count() or 1)
        ranges = split_ring(count, cassandra.ring_tokens(self.cluster))
        tasks: dict[str, dict[str, Any]] = {}
        for t in self.tables.values():
            for i, r in enumerate(ranges):
                tasks[f"{t.model.table}:{i:05d}"] = {
                    "table": t.model.table,
                    "start": r.start,
                    "end": r.end,
                }
        return tasks

    def prepare_run(self) -> dict[str, Any]:
        if self.o.resume:
            meta = self.store.run(self.run_id)
            if meta is None:
                raise UsageError(
                    f"no verify run {self.run_id} in Redis",
                    hint="list runs with `cdcctl verify runs`",
                )
            if meta.get("pipeline") != self.p.name:
                raise UsageError(
                    f"run {self.run_id} verifies pipeline {meta.get('pipeline')}, not {self.p.name}"
                )
            self.tables = {k: v for k, v in self.tables.items() if k in meta["tables"]}
            if not self.tables:
                raise UsageError(f"run {self.run_id}: none of its tables are in this manifest")
            self._run_consistency(meta)
        else:
            tasks = self._tasks()
            meta = {
                "pipeline": self.p.name,
                "keyspace": self.p.keyspace,
                "tables": sorted(self.tables),
                "ranges": len(tasks) // max(1, len(self.tables)),
                "repair": self.o.repair,
                "delete_extra": self.o.delete_extra,
                "started_by": self.owner,
                "diff_file": str(self.diff_path) if self.diff_path else None,
                "consistency": self.consistency,
            }
            if not self.store.create_run(self.run_id, meta, tasks):
                meta = self._joined_meta()  # another process created it: join, take its ranges
                self._run_consistency(meta)
        # The diff file is this process's: --diff-file, else verify-<run id>.jsonl here. A path
        # in the run's metadata is never written to (anyone who can write to Redis could aim it
        # at any file this user can append to; decision 0090); it stays as the creator's record.
        if self.diff_path is None:
            self.diff_path = default_diff_path(self.run_id)
        if not meta.get("diff_file"):
            self.store.update_run(self.run_id, diff_file=str(self.diff_path))
        return meta

    def _run_consistency(self, meta: dict[str, Any]) -> None:
        """Resuming or joining: read at the run's consistency level unless --consistency says
        otherwise (e.g. resume at a level the cluster can meet now); the run records the
        level of its latest process, and each range record the level it was read at."""
        if self.o.consistency is None:
            self.consistency = parse_consistency(meta.get("consistency") or None)
        elif meta.get("consistency") != self.consistency:
            self.store.update_run(self.run_id, consistency=self.consistency)
            meta["consistency"] = self.consistency

    def _joined_meta(self, timeout_s: float = 30) -> dict[str, Any]:
        """The metadata of a run another process is creating (it writes it right after)."""
        end = time.monotonic() + timeout_s
        while True:
            meta = self.store.run(self.run_id) or {}
            if "tables" in meta:
                if meta.get("pipeline") != self.p.name:
                    raise UsageError(
                        f"run {self.run_id} belongs to pipeline {meta.get('pipeline')}"
                    )
                return meta
            if time.monotonic() > end:
                raise UsageError(f"run {self.run_id} exists but was never completed in Redis")
            time.sleep(0.1)

    def build_token_tables(self) -> None:
        """Each table's side table of (pk, token) for rows visible in PostgreSQL, built once
        per run by whichever process holds the build lease; the others wait for it."""
        for t in self.tables.values():
            lease = f"build:{t.model.table}"
            while True:
                if self.store.run(self.run_id) is not None and self._token_ready(t):
                    break
                if self.store.acquire(self.run_id, lease, self.owner, 600_000):
                    try:
                        if not self._token_ready(t):
                            self.say("build", {"table": t.name})
                            rows = self._build_token_table(t)
                            self.store.update_run(self.run_id, **{f"tokens:{t.model.table}": rows})
                    finally:
                        self.store.release(self.run_id, lease, self.owner)
                    break
                time.sleep(0.5)

    def _token_ready(self, t: Table) -> bool:
        meta = self.store.run(self.run_id) or {}
        return f"tokens:{t.model.table}" in meta and postgres.relation_exists(
            self.dsn, t.pg_token_table
        )

    def _build_token_table(self, t: Table) -> int:
        postgres.execute(self.dsn, t.pg_token_ddl)
        npart = len(t.part)
        types = t.part_types
        with postgres.verify_connect(self.dsn) as src, postgres.connect(self.dsn) as dst:
            rows = (
                (*k, partition_token(types, k[:npart]))
                for k in postgres.stream(src, t.pg_keys, [], itersize=10_000)
            )
            n = postgres.copy_rows(dst, t.pg_token_copy, rows)
        postgres.execute(self.dsn, t.pg_token_index)
        return n

    def drop_token_tables(self) -> None:
        if self.o.keep_token_table:
            return
        postgres.execute(self.dsn, [s for t in self.tables.values() for s in t.pg_token_drop])

    # ------------------------------------------------------------------ work loop

    def run(self) -> RunSummary:
        """The whole run, traced as ``verify.run`` with one ``verify.range`` span per token range
        this process works on (table, bounds, status, rows, retries)."""
        with tracing.span(
            "verify.run",
            verify_run=self.run_id,
            tables=",".join(sorted(self.tables)),
            workers=self.workers,
            consistency=self.consistency,
            repair=bool(self.o.repair),
        ) as span:
            summary = self._run()
            span.set(
                status=summary.status,
                ranges=summary.ranges,
                rows=summary.counters.get("read", 0),
                remaining=summary.remaining,
            )
            return summary

    def _run(self) -> RunSummary:
        started = time.monotonic()
        meta = self.prepare_run()
        self._prepare_statements()
        records = self.store.ranges(self.run_id)
        mine = [k for k in records if k.split(":")[0] in self.tables]
        todo = [k for k in mine if records[k].get("status") not in FINAL]
        if todo:
            self.build_token_tables()
        random.shuffle(todo)  # several processes start on different ranges
        self.say(
            "start",
            {
                "run": self.run_id,
                "total": len(mine),
                "done": len(mine) - len(todo),
                "consistency": self.consistency,
            },
        )
        queue = list(todo)
        keeper = threading.Thread(target=self._keep_leases, daemon=True)
        keeper.start()
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="verify") as ex:
                # Each worker in a copy of this context: its ranges' spans are children of
                # verify.run (a thread does not inherit the context it was started from).
                futures = [
                    ex.submit(contextvars.copy_context().run, self._worker, queue)
                    for _ in range(self.workers)
                ]
                for fut in futures:
                    fut.result()
        finally:
            self.stop.set()
        summary = summarize(self.store, self.run_id, meta)
        summary.consistency = self.consistency
        summary.diff_file = str(self.diff_path)
        summary.elapsed_s = time.monotonic() - started
        summary.rows_per_s = (
            summary.counters["read"] / summary.elapsed_s if summary.elapsed_s else 0
        )
        if summary.statuses.get("PASS", 0) + summary.statuses.get("DIFF", 0) == summary.ranges:
            self.drop_token_tables()
        RUNS.labels(summary.status).inc()
        return summary

    def _take(self, queue: list[str]) -> str | None:
        with self.lock:
            return queue.pop() if queue else None

    def _worker(self, queue: list[str]) -> None:
        waiting: list[str] = []
        while True:
            task = self._take(queue)
            if task is None:
                if not waiting:
                    return
                time.sleep(0.5)
                task = waiting.pop(0)
            status = self.store.range(self.run_id, task).get("status")
            if status in FINAL or (status == "FAIL" and task in self._failed_here):
                continue
            if not self.store.acquire(self.run_id, task, self.owner, self.o.lease_ttl_ms):
                waiting.append(task)  # another process works on it; come back when it is free
                continue
            with self.lock:
                self.held.add(task)
            try:
                if self.store.range(self.run_id, task).get("status") in FINAL:
                    continue
                self._do_task(task)
                if self.o.pause_ms:
                    time.sleep(self.o.pause_ms / 1000)
            finally:
                with self.lock:
                    self.held.discard(task)
                self.store.release(self.run_id, task, self.owner)

    @property
    def _failed_here(self) -> set[str]:
        if not hasattr(self, "_failed"):
            self._failed: set[str] = set()
        return self._failed

    def _keep_leases(self) -> None:
        every = self.o.lease_ttl_ms / 3000
        while not self.stop.wait(every):
            with self.lock:
                held = list(self.held)
            for task in held:
                # Redis away: the lease may lapse, and another process may redo the range
                with contextlib.suppress(CdcError):
                    self.store.extend(self.run_id, task, self.owner, self.o.lease_ttl_ms)

    def _do_task(self, task: str) -> None:
        with tracing.span("verify.range", verify_run=self.run_id, task=task) as span:
            self._verify_task(task, span)

    def _verify_task(self, task: str, span: tracing.Span) -> None:
        rec = self.store.range(self.run_id, task)
        t = self.tables[rec["table"]]
        rng = TokenRange(int(rec["start"]), int(rec["end"]))
        span.set(table=rec["table"], range_start=rng.start, range_end=rng.end)
        base = {"table": rec["table"], "start": rng.start, "end": rng.end, "owner": self.owner}
        base["consistency"] = self.consistency
        self.store.set_range(
            self.run_id, task, {**base, "status": "STARTED", "started_at": time.time()}
        )
        order = replica_order(
            cassandra.range_replicas(self.cluster, t.model.keyspace, rng.end),
            self.local_dc,
            salt=_task_index(task),
        )
        retries = 0
        failed: list[str] = []  # "kind@host" of each failed attempt
        while True:
            host = replica_for_attempt(order, retries)
            try:
                counters = self.verify_range(t, rng, task, host=host)
                break
            except CassandraReadError as exc:
                self._reset_pg()
                failed.append(f"{exc.kind}@{exc.host or host or '?'}")
                decision = decide(self.policy, exc.kind, len(failed), random.random())  # noqa: S311  # nosec B311  # jitter
                if not decision.retry or self.stop.is_set():
                    self._not_verified(t, task, base, exc, retries, failed)
                    span.set(status="FAIL", error_kind=exc.kind, retries=retries)
                    return
                retries += 1
                RETRIES.labels(t.name, exc.kind).inc()
                self.say(
                    "retry",
                    {
                        "task": task,
                        "kind": exc.kind,
                        "host": host,
                        "next": replica_for_attempt(order, retries),
                        "delay_s": decision.delay_s,
                        "attempt": retries + 1,
                    },
                )
                # Nothing of the failed attempt counts: the range is read again from its start
                # (its suspects re-checked and repaired, through the gate, again: idempotent).
                time.sleep(decision.delay_s)
            except CdcError as exc:  # PostgreSQL or Redis: not a replica's failure
                self._reset_pg()
                self._not_verified(t, task, base, exc, retries, failed)
                span.set(status="FAIL", error_kind=type(exc).__name__, retries=retries)
                return
        counters["retries"] = retries
        remaining = (
            counters["missing"]
            + counters["mismatch"]
            + counters["extra"]
            - counters["corrected_missing"]
            - counters["corrected_mismatch"]
            - counters["deleted_extra"]
        )
        status = "DIFF" if remaining else "PASS"
        done = {**base, "status": status, **counters, "replica": host}  # None: driver's choice
        if failed:
            done["failed_attempts"] = failed
        self.store.set_range(self.run_id, task, done)
        span.set(status=status, rows=counters["read"], remaining=remaining, retries=retries)
        RANGES.labels(t.name, status).inc()
        self.say(
            "range", {"task": task, "status": status, "rows": counters["read"], "retries": retries}
        )

    def _reset_pg(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:  # a stream may have left a transaction open
            conn.close()

    def _not_verified(
        self,
        t: Table,
        task: str,
        base: dict[str, Any],
        exc: CdcError,
        retries: int,
        failed: list[str],
    ) -> None:
        """The range could not be read: FAIL, i.e. not verified — none of its rows counted
        valid or missing; `--resume` reads it again."""
        counters = dict.fromkeys(COUNTERS, 0)
        counters["error"] = 1
        counters["retries"] = retries
        self._failed_here.add(task)
        kind = getattr(exc, "kind", type(exc).__name__)
        self.store.set_range(
            self.run_id,
            task,
            {
                **base,
                "status": "FAIL",
                "error_kind": kind,
                "error_message": str(exc),  # not "error": that is the counter of failed ranges
                "failed_attempts": failed,
                **counters,
            },
        )
        RANGES.labels(t.name, "FAIL").inc()
        self.say(
            "range",
            {
                "task": task,
                "status": "FAIL",
                "rows": 0,
                "retries": retries,
                "error": str(exc),
                "kind": kind,
            },
        )

    # ------------------------------------------------------------------ one range

    def _pg(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = postgres.verify_connect(self.dsn)
            self.local.conn = conn
            with self.lock:
                self.conns.append(conn)
        return conn

    def verify_range(
        self, t: Table, rng: TokenRange, task: str, *, host: str | None = None
    ) -> dict[str, int]:
        """One attempt at a range: Cassandra's rows read through ``host`` (a replica of the
        range; None: the driver chooses). Raises on a failed read; counts nothing then."""
        counters = dict.fromkeys(COUNTERS, 0)
        suspects: list[_Suspect] = []
        c_rows = cassandra.stream(
            self.session,
            t.prepared["scan"],
            (rng.start, rng.end),
            fetch_size=self.o.fetch_size,
            host=host,
        )
        p_rows = postgres.stream(self._pg(), t.pg_range, (rng.start, rng.end))
        first_seen = time.monotonic()
        for c_group, p_group in _merge(_groups(c_rows), _groups(p_rows)):
            counters["read"] += len(c_group)
            p_by_key = {t.key(r[1 : 1 + len(t.pk)]): r[1:] for r in p_group}
            for r in c_group:
                row = r[1:]
                key = t.key(row[: len(t.pk)])
                p = p_by_key.pop(key, None)
                s = self._classify(t, row, p, key)
                if s is None:
                    counters["valid"] += 1
                else:
                    suspects.append(s)
            for key, p in p_by_key.items():
                suspects.append(self._classify(t, None, p, key))  # type: ignore[arg-type]
        ROWS.labels(t.name).inc(counters["read"])
        if suspects:
            final = self._recheck(t, suspects, first_seen, counters)
            self._report(t, task, final, counters)
        return counters

    def _classify(
        self, t: Table, c: Sequence[Any] | None, p: Sequence[Any] | None, key: Any
    ) -> _Suspect | None:
        n = len(t.pk)
        if c is None and p is None:
            return None
        if p is None:
            assert c is not None
            return _Suspect("missing", tuple(c[:n]), key, canonical_json(["m", _canon_row(t, c)]))
        if c is None:
            return _Suspect("extra", tuple(p[:n]), key, canonical_json(["e", _canon_row(t, p)]))
        cols = t.diff(c, p)
        if not cols:
            return None
        sig = canonical_json(["x", {k: [v.cassandra, v.postgres] for k, v in sorted(cols.items())}])
        return _Suspect("mismatch", tuple(c[:n]), key, sig, cols)

    def _observe(self, t: Table, suspects: list[_Suspect]) -> list[_Suspect | None]:
        """Read each suspect's row again on both sides (by primary key), with Cassandra's
        write times so a recent write can be told from a settled difference."""
        c_res = cassandra.execute_concurrent(
            self.session, t.prepared["repair"], [[_to_cql(v) for v in s.pk] for s in suspects]
        )
        width = len(t.pk) + len(t.reg)
        out: list[_Suspect | None] = []
        conn = self._pg()
        for s, c_rows in zip(suspects, c_res, strict=True):
            p_rows = postgres.fetch(conn, t.pg_by_pk, [_to_pg(v) for v in s.pk])
            c = c_rows[0] if c_rows else None
            p = p_rows[0] if p_rows else None
            new = self._classify(t, c[:width] if c else None, p, s.key)
            if new is not None and c is not None:
                times = [w for w in c[width::2] if w is not None]
                new.newest_write_us = max(times, default=None)
            out.append(new)
        return out

    def _recheck(
        self, t: Table, suspects: list[_Suspect], first_seen: float, counters: dict[str, int]
    ) -> list[_Suspect]:
        """Keep only differences that stay the same across two reads one lag apart."""
        pending = suspects
        final: list[_Suspect] = []
        wait_until = first_seen + self.o.lag_s
        for _round in range(max(1, self.o.rechecks)):
            delay = wait_until - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = self._observe(t, pending)
            still: list[_Suspect] = []
            settled_before = int((time.time() - self.o.lag_s) * 1_000_000)
            for old, new in zip(pending, now, strict=True):
                if new is None:
                    counters["valid"] += 1
                    counters["rechecked"] += 1
                elif new.signature == old.signature and (
                    new.newest_write_us is None or new.newest_write_us < settled_before
                ):
                    final.append(new)  # the same twice, and no write of the last lag: settled
                else:
                    still.append(new)
            pending = still
            if not pending:
                break
            wait_until = time.monotonic() + self.o.lag_s
        counters["skipped"] += len(pending)  # still changing: not judged this run
        for s in pending:
            self._write_diff(t, s, "skipped", repaired=False)
        return final

    # ------------------------------------------------------------------ report and repair

    def _report(self, t: Table, task: str, final: list[_Suspect], counters: dict[str, int]) -> None:
        for s in final:
            counters[s.kind] += 1
            DIFFS.labels(t.name, s.kind).inc()
        fixed: set[Any] = set()
        if self.o.repair and final:
            to_fix = [s for s in final if s.kind != "extra" or self.o.delete_extra]
            if to_fix:
                self._repair(t, to_fix)
                after = self._observe(t, to_fix)
                for s, new in zip(to_fix, after, strict=True):
                    if new is None:
                        fixed.add(s.key)
                        kind = {
                            "missing": "corrected_missing",
                            "mismatch": "corrected_mismatch",
                            "extra": "deleted_extra",
                        }[s.kind]
                        counters[kind] += 1
                        DIFFS.labels(t.name, kind).inc()
        for s in final:
            self._write_diff(t, s, s.kind, repaired=s.key in fixed, task=task)

    def _write_diff(
        self, t: Table, s: _Suspect, kind: str, *, repaired: bool, task: str | None = None
    ) -> None:
        rec = {
            "run": self.run_id,
            "table": t.name,
            "range": task,
            "kind": kind,
            "key": t.key_dict(s.pk),
            "columns": {
                c: {"cassandra": v.cassandra, "postgres": v.postgres, "note": v.note}
                for c, v in sorted(s.columns.items())
            },
            "repaired": repaired,
            "at": time.time(),
        }
        line = json.dumps(rec, sort_keys=True, default=str) + "\n"
        assert self.diff_path is not None
        with self.lock, private_files.open_append(self.diff_path) as fh:
            fh.write(line)

    def _repair(self, t: Table, suspects: list[_Suspect]) -> None:
        """Write Cassandra's current row through the sink's statement (the LWW gate)."""
        c_res = cassandra.execute_concurrent(
            self.session, t.prepared["repair"], [[_to_cql(v) for v in s.pk] for s in suspects]
        )
        conn = self._pg()
        params: list[tuple[Any, ...]] = []
        now_us = int(time.time() * 1_000_000)
        for s, rows in zip(suspects, c_res, strict=True):
            pk_pg = [_to_pg(v) for v in s.pk]
            raw = postgres.fetch(conn, t.pg_raw_by_pk, pk_pg)
            params.extend(
                repair_events(t, pk_pg, rows[0] if rows else None, raw[0] if raw else None, now_us)
            )
        if params:
            postgres.execute_many(conn, t.upsert, params)

    def close(self) -> None:
        self.stop.set()
        for conn in self.conns:
            conn.close()
        self.cluster.shutdown()
        self.store.close()


def repair_events(
    t: Table,
    pk: Sequence[Any],
    c_row: Sequence[Any] | None,
    raw: Sequence[Any] | None,
    now_us: int,
) -> list[tuple[Any, ...]]:
    """Sink-shaped events (pk, regular values, _cdc_writetime, _cdc_op, _cdc_set, _cdc_expiry,
    _cdc_snapshot) that make the raw row converge to ``c_row`` through the gate.

    ``c_row``: Cassandra's pk + regular values + (WRITETIME, TTL) per regular column, or None
    when Cassandra has no row. ``raw``: the raw PostgreSQL row (pk + regular values, _cdc_wt,
    _cdc_live_ts, _cdc_deleted_at), or None.

    - Each Cassandra cell is written with its own WRITETIME (and expiry from its TTL), one event
      per distinct (write time, expiry) so the gate compares each column on its true time.
    - A cell null in Cassandra but not in PostgreSQL gets a cell tombstone one microsecond newer
      than PostgreSQL's write time of it (Cassandra does not expose a tombstone's time).
    - A row Cassandra has with no non-null cell gets an INSERT (row marker) at ``now_us``.
    - A row Cassandra does not have gets a row tombstone newer than anything PostgreSQL holds.
    """
    n, reg = len(t.pk), t.reg
    events: list[tuple[Any, ...]] = []

    def event(op: str, ts: int, values: Mapping[str, Any], expiry: Mapping[str, int]) -> None:
        events.append(
            (
                *pk,
                *(_to_pg(values.get(c)) for c in reg),
                ts,
                op,
                json.dumps(sorted(values)),
                json.dumps(dict(expiry)) if expiry else None,
                False,
            )
        )

    raw_vals = list(raw[n : n + len(reg)]) if raw else [None] * len(reg)
    raw_wt = list(raw[n + len(reg)] or []) if raw else []
    if c_row is None:
        if raw is None:
            return events
        times = [x for x in raw_wt if x is not None] + [x for x in raw[-2:] if x is not None]
        event("d", max(times, default=now_us) + 1, dict.fromkeys(reg), {})
        return events
    groups: dict[tuple[int, int | None], dict[str, Any]] = {}
    expiries: dict[tuple[int, int | None], dict[str, int]] = {}
    for i, col in enumerate(reg):
        value = c_row[n + i]
        wt = c_row[n + len(reg) + 2 * i]
        ttl = c_row[n + len(reg) + 2 * i + 1]
        if value is not None and wt is not None:
            exp = now_us + int(ttl) * 1_000_000 if ttl else None
            groups.setdefault((int(wt), exp), {})[col] = value
            if exp is not None:
                expiries.setdefault((int(wt), exp), {})[col] = exp
        elif value is None and raw_vals[i] is not None:
            ts = (raw_wt[i] if i < len(raw_wt) and raw_wt[i] is not None else now_us) + 1
            groups.setdefault((ts, None), {})[col] = None
    for (ts, _exp), values in sorted(groups.items(), key=lambda kv: kv[0][0]):
        event("u", ts, values, expiries.get((ts, _exp), {}))
    if all(c_row[n + i] is None for i in range(len(reg))):
        event("i", now_us, {}, {})
    return events


def _task_index(task: str) -> int:
    """``orders:00017`` -> 17: spreads consecutive ranges over the replicas."""
    tail = task.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _canon_row(t: Table, row: Sequence[Any]) -> list[Any]:
    cols = t.pk + t.reg
    return [canonical_cassandra(t.types[c], v) for c, v in zip(cols, row, strict=True)]


def _groups(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """Consecutive rows with the same token (column 0)."""
    current: int | None = None
    buf: list[tuple[Any, ...]] = []
    for row in rows:
        if row[0] != current:
            if buf:
                yield current, buf  # type: ignore[misc]
            current, buf = row[0], [row]
        else:
            buf.append(row)
    if buf:
        yield current, buf  # type: ignore[misc]


def _merge(
    a: Iterator[tuple[int, list[tuple[Any, ...]]]], b: Iterator[tuple[int, list[tuple[Any, ...]]]]
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Pair token groups of two token-ordered streams (an empty list where a side has none)."""
    ga, gb = next(a, None), next(b, None)
    while ga is not None or gb is not None:
        if gb is None or (ga is not None and ga[0] < gb[0]):
            assert ga is not None
            yield ga[1], []
            ga = next(a, None)
        elif ga is None or gb[0] < ga[0]:
            yield [], gb[1]
            gb = next(b, None)
        else:
            yield ga[1], gb[1]
            ga, gb = next(a, None), next(b, None)


def default_diff_path(run_id: str) -> Path:
    """``verify-<run id>.jsonl`` in the current directory, the run id reduced to letters,
    digits, ``.``, ``_`` and ``-`` (a run id is user input: ``--run-id ../../x`` must not
    leave the directory); a reduced id gets a hash of the original so two ids never share a
    file."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:100]
    if safe != run_id:
        safe += "-" + hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return Path(f"verify-{safe}.jsonl")


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


# ----------------------------------------------------------------------------- entry points


def summarize(
    store: CheckpointStore, run_id: str, meta: Mapping[str, Any] | None = None
) -> RunSummary:
    meta = meta or store.run(run_id)
    if meta is None:
        raise UsageError(f"no verify run {run_id} in Redis", hint="see `cdcctl verify runs`")
    records = store.ranges(run_id)
    statuses: dict[str, int] = {}
    counters = dict.fromkeys(COUNTERS, 0)
    not_verified: list[dict[str, Any]] = []
    for task, rec in sorted(records.items()):
        status = rec.get("status", "NOT_STARTED")
        statuses[status] = statuses.get(status, 0) + 1
        for c in COUNTERS:
            counters[c] += int(rec.get(c, 0))
        if status not in FINAL:
            not_verified.append(
                {
                    "task": task,
                    "status": status,
                    "error_kind": rec.get("error_kind"),
                    "error_message": rec.get("error_message"),
                    "retries": int(rec.get("retries", 0)),
                }
            )
    if statuses.get("FAIL") or statuses.get("STARTED") or statuses.get("NOT_STARTED"):
        status = "INCOMPLETE"
    elif statuses.get("DIFF"):
        status = "DIFF"
    else:
        status = "PASS"
    return RunSummary(
        run_id=run_id,
        status=status,
        tables=list(meta.get("tables", [])),
        ranges=len(records),
        statuses=statuses,
        counters=counters,
        diff_file=meta.get("diff_file"),
        consistency=str(meta.get("consistency") or DEFAULT_CONSISTENCY),
        not_verified=not_verified,
    )


def _pipeline(manifests: Sequence[str]) -> tuple[Pipeline, Path]:
    loaded = load_manifests(manifests)
    if len(loaded) != 1:
        raise UsageError(
            f"verify takes one pipeline, the manifests hold {len(loaded)}",
            hint="pass the one manifest of the pipeline to verify",
        )
    item = loaded[0]
    base = Path(item.source).parent if item.source != "-" else Path.cwd()
    return item.pipeline, base


def verify(opts: VerifyOptions, *, progress: Progress | None = None) -> RunSummary:
    """Run (or resume, or join) a verify run; raises DifferencesFoundError while differences
    remain and CdcError when ranges failed (resume with ``--resume``)."""
    summary = run_verify(opts, progress=progress)
    check(summary)
    return summary


def run_verify(opts: VerifyOptions, *, progress: Progress | None = None) -> RunSummary:
    """Run (or resume, or join) a verify run and return its summary, clean or not."""
    from controlplane.services.apply import read_tables

    if opts.delete_extra and not opts.repair:
        raise UsageError("--delete-extra only goes with --repair")
    pipeline, base = _pipeline(opts.manifests)
    if opts.table and opts.table not in pipeline.tables:
        raise UsageError(f"table {opts.table} is not in pipeline {pipeline.name}")
    from controlplane.services.targets import pipeline_dsn, resolve_target

    target = opts.target or resolve_target()
    opts.target = target
    dsn = pipeline_dsn(target, pipeline, base_dir=base)
    # the users' tables only: not the heartbeat table the pipeline carries (decision 0120)
    models = [
        m
        for m in read_tables(pipeline, target=target)
        if m.table in pipeline.tables and opts.table in (None, m.table)
    ]
    verifier = Verifier(opts, pipeline, models, dsn, progress=progress)
    try:
        return verifier.run()
    finally:
        verifier.close()


def check(summary: RunSummary) -> None:
    """Raise for a run that is not clean: failed/unfinished ranges first, then differences."""
    if summary.status == "INCOMPLETE":
        kinds = sorted({str(r["error_kind"]) for r in summary.not_verified if r["error_kind"]})
        why = f" (reads failed: {', '.join(kinds)})" if kinds else ""
        raise NotVerifiedError(
            f"verify run {summary.run_id}: {len(summary.not_verified)} of {summary.ranges} "
            f"range(s) not verified{why} at {summary.consistency}; they are not counted as "
            "differences",
            hint=f"resume it with `cdcctl verify -f MANIFEST --resume {summary.run_id}` "
            "(e.g. once the nodes are back, or with --consistency the cluster can meet)",
        )
    if summary.remaining > 0:
        raise DifferencesFoundError(
            f"verify run {summary.run_id}: {summary.remaining} difference(s) remain "
            f"(missing {summary.counters['missing']}, mismatch {summary.counters['mismatch']}, "
            f"extra {summary.counters['extra']}); details in {summary.diff_file}",
            hint="repair with --repair (and --delete-extra for extra rows), then verify again",
        )


def list_runs(redis_url: str | RedisEndpoint, limit: int = 50) -> list[dict[str, Any]]:
    store = CheckpointStore(redis_url)
    try:
        out = []
        for run_id in store.runs(limit):
            s = summarize(store, run_id)
            out.append(s.as_dict())
        return out
    finally:
        store.close()


def show_run(
    redis_url: str | RedisEndpoint, run_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    store = CheckpointStore(redis_url)
    try:
        summary = summarize(store, run_id)
        ranges = [{"task": k, **v} for k, v in sorted(store.ranges(run_id).items())]
        return summary.as_dict(), ranges
    finally:
        store.close()

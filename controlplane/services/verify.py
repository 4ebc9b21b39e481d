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

This module is the orchestration: the worker loop, its leases, sessions, Redis store and
progress. What it runs, and every decision it takes without I/O, is pure and lives in core: the
statements and row comparison of a table (core.verify_table), the merge and classification of a
range and the recheck rounds of its suspects (core.verify_compare), the repair events
(core.verify_repair), the counters, the records a range leaves, the summary, when the token
snapshot may be dropped and the diff-file lines (core.verify_report), and the checks of the
options, pipeline and a resumed or joined run, the run's tasks and metadata, which tasks are left
to do and which differences a repair writes (core.verify_plan).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.adapters import cassandra, metrics_http, postgres, private_files, tracing
from controlplane.adapters.redis_store import DEFAULT_RUN_RETENTION_S, CheckpointStore
from controlplane.core.canonical import UdtFields
from controlplane.core.errors import CassandraReadError, CdcError, UsageError
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
from controlplane.core.schema_model import TableModel
from controlplane.core.target import RedisEndpoint, Target, endpoints_for
from controlplane.core.token_ranges import (
    TokenRange,
    default_range_count,
    split_ring,
    tokenizer,
)
from controlplane.core.verify_compare import (
    Recheck,
    Suspect,
    compare_range,
    observed,
    settled_before_us,
)
from controlplane.core.verify_plan import (
    check_options,
    check_table,
    joined_meta,
    one_pipeline,
    open_tasks,
    plan_tasks,
    resumed_tables,
    run_consistency,
    run_meta,
    skip_task,
    task_index,
    to_repair,
    verified_models,
)
from controlplane.core.verify_repair import repair_events, to_cql, to_pg
from controlplane.core.verify_report import (
    COUNTERS,
    FINAL,
    RunSummary,
    all_ranges_read,
    check,
    corrected,
    count_kinds,
    default_diff_path,
    diff_line,
    done_record,
    error_kind,
    failed_attempt,
    finished,
    known_run,
    not_verified_record,
    range_base,
    range_rows,
    remaining,
    run_summary,
    started_record,
)
from controlplane.core.verify_table import TOKEN_COL, Table
from controlplane.core.verify_tokens import copy_lines
from controlplane.services.targets import cassandra_security

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


# ----------------------------------------------------------------------------- sessions


@dataclass
class Sessions:
    """What a `Verifier` reads and records through, opened and closed by its caller
    (`open_sessions`; tests pass fakes): the driver's cluster (token map, replicas) and scan
    session, the checkpoint store, the keyspace's UDT fields, and the PostgreSQL DSN each
    worker thread opens its own connection from (a psycopg connection is one thread's)."""

    cluster: Any
    cassandra: Any
    store: CheckpointStore
    dsn: str
    local_datacenter: str | None = None
    udts: UdtFields = field(default_factory=dict)


@contextlib.contextmanager
def open_sessions(
    target: Target,
    pipeline: Pipeline,
    dsn: str,
    redis_url: str | RedisEndpoint,
    *,
    keep_s: int = DEFAULT_RUN_RETENTION_S,
) -> Iterator[Sessions]:
    """The pipeline's Cassandra scan session and the checkpoint store, closed on exit."""
    where = endpoints_for(target, pipeline)
    cluster, session = cassandra.scan_session(
        list(where.contact_points),
        local_datacenter=where.local_datacenter,
        hint=target.hint("Cassandra"),
        security=cassandra_security(target),
    )
    try:
        store = CheckpointStore(redis_url, retention_s=keep_s)
        try:
            yield Sessions(
                cluster=cluster,
                cassandra=session,
                store=store,
                dsn=dsn,
                local_datacenter=where.local_datacenter,
                udts=cassandra.udt_fields(session, pipeline.keyspace),
            )
        finally:
            store.close()
    finally:
        cluster.shutdown()


# ----------------------------------------------------------------------------- the run


class Verifier:
    """One process's part of a verify run."""

    consistency: str = DEFAULT_CONSISTENCY  # of the run's reads; set from the options and run

    def __init__(
        self,
        opts: VerifyOptions,
        pipeline: Pipeline,
        models: list[TableModel],
        sessions: Sessions,
        *,
        progress: Progress | None = None,
    ) -> None:
        """A run over ``sessions`` the caller opened (`open_sessions`) and closes: the
        Verifier builds no connection but its worker threads' PostgreSQL ones."""
        self.o = opts
        self.p = pipeline
        self.dsn = sessions.dsn
        self.say = progress or (lambda _kind, _data: None)
        self.store = sessions.store
        self.cluster, self.session = sessions.cluster, sessions.cassandra
        self.local_dc = sessions.local_datacenter
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"
        self.run_id = opts.resume or opts.run_id or _new_run_id()
        self.tables = {m.table: Table(m, self.run_id) for m in models}
        for t in self.tables.values():
            t.udts = sessions.udts
        #: each table's prepared Cassandra statements (scan, by_pk, repair), by table name
        self.prepared: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.held: set[str] = set()
        self._failed_here: set[str] = set()  # ranges this process failed (not retaken here)
        self.stop = threading.Event()
        self.local = threading.local()
        self.conns: list[Any] = []  # every worker thread's PostgreSQL connection
        self.diff_path = opts.diff_file
        self.workers = opts.workers or max(2, 2 * (os.cpu_count() or 1))
        self.policy = RetryPolicy(retries=max(0, opts.read_retries))
        self.consistency = parse_consistency(opts.consistency)

    def _prepare_statements(self) -> None:
        """Every table's statements, read at the run's consistency level."""
        cl = self.consistency
        for t in self.tables.values():
            self.prepared[t.model.table] = {
                "scan": cassandra.prepare(self.session, t.cql_scan, consistency=cl),
                "by_pk": cassandra.prepare(self.session, t.cql_by_pk, consistency=cl),
                "repair": cassandra.prepare(self.session, t.cql_repair, consistency=cl),
            }

    # ------------------------------------------------------------------ setup

    def _tasks(self) -> dict[str, dict[str, Any]]:
        count = self.o.ranges or default_range_count(os.cpu_count() or 1)
        return plan_tasks(self.tables, split_ring(count, cassandra.ring_tokens(self.cluster)))

    def prepare_run(self) -> dict[str, Any]:
        if self.o.resume:
            meta = self.store.run(self.run_id)
            kept = resumed_tables(self.run_id, meta, self.p.name, self.tables)
            assert meta is not None
            self.tables = {k: v for k, v in self.tables.items() if k in kept}
            self._run_consistency(meta)
        else:
            tasks = self._tasks()
            meta = run_meta(
                pipeline=self.p.name,
                keyspace=self.p.keyspace,
                tables=self.tables,
                range_count=len(tasks) // max(1, len(self.tables)),
                repair=self.o.repair,
                delete_extra=self.o.delete_extra,
                started_by=self.owner,
                diff_file=str(self.diff_path) if self.diff_path else None,
                consistency=self.consistency,
            )
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
        self.consistency, record = run_consistency(
            self.o.consistency, meta.get("consistency"), self.consistency
        )
        if record:
            self.store.update_run(self.run_id, consistency=self.consistency)
            meta["consistency"] = self.consistency

    def _joined_meta(self, timeout_s: float = 30) -> dict[str, Any]:
        """The metadata of a run another process is creating (it writes it right after)."""
        end = time.monotonic() + timeout_s
        while True:
            meta = self.store.run(self.run_id) or {}
            if joined_meta(self.run_id, meta, self.p.name):
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
        """The token-ordered snapshot the ranges read (decisions 0030, 0141, 0157): the live
        view's rows with the partition token the writer stored, and for keys without one the
        token computed here, COPYed into the run's key table and joined in. Returns the rows
        whose token was computed here."""
        stored = postgres.has_column(self.dsn, t.names.raw_table, TOKEN_COL)
        plan = t.token_plan(stored)
        postgres.execute(self.dsn, plan.prepare)
        npart = len(t.part)
        lines = copy_lines(t.pk_types, npart)
        with postgres.verify_connect(self.dsn) as src, postgres.connect(self.dsn) as dst:
            if lines is not None:  # a batch of keys to COPY text lines at a time
                n = 0

                def chunks() -> Iterator[str]:
                    nonlocal n
                    for keys in postgres.batches(src, plan.keys, [], itersize=10_000):
                        n += len(keys)
                        yield lines(keys)

                postgres.copy_text(dst, plan.copy, chunks())
            else:  # a key type without a text form in core.verify_tokens: row by row
                token = tokenizer(t.part_types)
                rows = (
                    (*k, token(k[:npart]))
                    for k in postgres.stream(src, plan.keys, [], itersize=10_000)
                )
                n = postgres.copy_rows(dst, plan.copy, rows)
        postgres.execute(self.dsn, plan.build(n))
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
        mine, todo = open_tasks(self.store.ranges(self.run_id), self.tables)
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
        summary = finished(
            summarize(self.store, self.run_id, meta),
            consistency=self.consistency,
            diff_file=str(self.diff_path),
            elapsed_s=time.monotonic() - started,
        )
        if all_ranges_read(summary):
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
            if skip_task(status, task in self._failed_here):
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
        base = range_base(
            rec["table"], rng.start, rng.end, owner=self.owner, consistency=self.consistency
        )
        self.store.set_range(self.run_id, task, started_record(base, time.time()))
        order = replica_order(
            cassandra.range_replicas(self.cluster, t.model.keyspace, rng.end),
            self.local_dc,
            salt=task_index(task),
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
                failed.append(failed_attempt(exc.kind, exc.host, host))
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
        done = done_record(base, counters, retries=retries, replica=host, failed_attempts=failed)
        status = done["status"]
        self.store.set_range(self.run_id, task, done)
        span.set(status=status, rows=done["read"], remaining=remaining(done), retries=retries)
        RANGES.labels(t.name, status).inc()
        self.say(
            "range", {"task": task, "status": status, "rows": done["read"], "retries": retries}
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
        self._failed_here.add(task)
        kind = error_kind(exc)
        rec = not_verified_record(
            base, kind=kind, message=str(exc), retries=retries, failed_attempts=failed
        )
        self.store.set_range(self.run_id, task, rec)
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
        c_rows = cassandra.stream(
            self.session,
            self.prepared[t.model.table]["scan"],
            (rng.start, rng.end),
            fetch_size=self.o.fetch_size,
            host=host,
        )
        p_rows = postgres.stream(self._pg(), t.pg_range, (rng.start, rng.end))
        first_seen = time.monotonic()
        found = compare_range(t, c_rows, p_rows)
        counters["read"] += found.read
        counters["valid"] += found.valid
        ROWS.labels(t.name).inc(counters["read"])
        if found.suspects:
            final = self._recheck(t, found.suspects, first_seen, counters)
            self._report(t, task, final, counters)
        return counters

    def _observe(self, t: Table, suspects: list[Suspect]) -> list[Suspect | None]:
        """Read each suspect's row again on both sides (by primary key), with Cassandra's
        write times so a recent write can be told from a settled difference."""
        c_res = cassandra.execute_concurrent(
            self.session,
            self.prepared[t.model.table]["repair"],
            [[to_cql(v) for v in s.pk] for s in suspects],
        )
        out: list[Suspect | None] = []
        conn = self._pg()
        for s, c_rows in zip(suspects, c_res, strict=True):
            p_rows = postgres.fetch(conn, t.pg_by_pk, [to_pg(v) for v in s.pk])
            out.append(
                observed(t, c_rows[0] if c_rows else None, p_rows[0] if p_rows else None, s.key)
            )
        return out

    def _recheck(
        self, t: Table, suspects: list[Suspect], first_seen: float, counters: dict[str, int]
    ) -> list[Suspect]:
        """Keep only differences that stay the same across two reads one lag apart."""
        rc = Recheck(suspects)
        wait_until = first_seen + self.o.lag_s
        for _round in range(max(1, self.o.rechecks)):
            delay = wait_until - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = self._observe(t, rc.pending)
            rc.round(now, settled_before_us(time.time(), self.o.lag_s))
            if not rc.pending:
                break
            wait_until = time.monotonic() + self.o.lag_s
        for name, n in rc.counts().items():
            counters[name] += n
        for s in rc.pending:  # still changing: not judged this run
            self._write_diff(t, s, "skipped", repaired=False)
        return rc.final

    # ------------------------------------------------------------------ report and repair

    def _report(self, t: Table, task: str, final: list[Suspect], counters: dict[str, int]) -> None:
        self._count(t, counters, count_kinds(s.kind for s in final))
        fixed: set[Any] = set()
        if self.o.repair and final:
            to_fix = [
                final[i]
                for i in to_repair([s.kind for s in final], delete_extra=self.o.delete_extra)
            ]
            if to_fix:
                self._repair(t, to_fix)
                fixed, added = corrected(to_fix, self._observe(t, to_fix))
                self._count(t, counters, added)
        for s in final:
            self._write_diff(t, s, s.kind, repaired=s.key in fixed, task=task)

    @staticmethod
    def _count(t: Table, counters: dict[str, int], added: Mapping[str, int]) -> None:
        """Differences found or corrected, into the range's counters and the metrics."""
        for kind, n in added.items():
            counters[kind] += n
            DIFFS.labels(t.name, kind).inc(n)

    def _write_diff(
        self, t: Table, s: Suspect, kind: str, *, repaired: bool, task: str | None = None
    ) -> None:
        line = diff_line(self.run_id, t, s, kind, repaired=repaired, task=task, at=time.time())
        assert self.diff_path is not None
        with self.lock, private_files.open_append(self.diff_path) as fh:
            fh.write(line)

    def _repair(self, t: Table, suspects: list[Suspect]) -> None:
        """Write Cassandra's current row through the sink's statement (the LWW gate)."""
        c_res = cassandra.execute_concurrent(
            self.session,
            self.prepared[t.model.table]["repair"],
            [[to_cql(v) for v in s.pk] for s in suspects],
        )
        conn = self._pg()
        params: list[tuple[Any, ...]] = []
        now_us = int(time.time() * 1_000_000)
        for s, rows in zip(suspects, c_res, strict=True):
            pk_pg = [to_pg(v) for v in s.pk]
            raw = postgres.fetch(conn, t.pg_raw_by_pk, pk_pg)
            params.extend(
                repair_events(t, pk_pg, rows[0] if rows else None, raw[0] if raw else None, now_us)
            )
        if params:
            postgres.execute_many(conn, t.upsert, params)

    def close(self) -> None:
        """Stop the lease keeper and close the worker threads' PostgreSQL connections; the
        sessions passed in stay open (their opener closes them)."""
        self.stop.set()
        for conn in self.conns:
            conn.close()


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


# ----------------------------------------------------------------------------- entry points


def summarize(
    store: CheckpointStore, run_id: str, meta: Mapping[str, Any] | None = None
) -> RunSummary:
    meta = known_run(run_id, meta or store.run(run_id))
    return run_summary(run_id, meta, store.ranges(run_id))


def verify(opts: VerifyOptions, *, progress: Progress | None = None) -> RunSummary:
    """Run (or resume, or join) a verify run; raises DifferencesFoundError while differences
    remain and CdcError when ranges failed (resume with ``--resume``)."""
    summary = run_verify(opts, progress=progress)
    check(summary)
    return summary


def run_verify(opts: VerifyOptions, *, progress: Progress | None = None) -> RunSummary:
    """Run (or resume, or join) a verify run and return its summary, clean or not."""
    from controlplane.services.apply import read_tables

    check_options(repair=opts.repair, delete_extra=opts.delete_extra)
    pipeline, base = one_pipeline(load_manifests(opts.manifests), Path.cwd())
    check_table(opts.table, pipeline)
    from controlplane.services.targets import pipeline_dsn, resolve_target

    target = opts.target or resolve_target()
    opts.target = target
    dsn = pipeline_dsn(target, pipeline, base_dir=base)
    models = verified_models(read_tables(pipeline, target=target), pipeline, opts.table)
    with open_sessions(target, pipeline, dsn, opts.redis_url, keep_s=opts.keep_s) as sessions:
        verifier = Verifier(opts, pipeline, models, sessions, progress=progress)
        try:
            return verifier.run()
        finally:
            verifier.close()


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
        return summary.as_dict(), range_rows(store.ranges(run_id))
    finally:
        store.close()

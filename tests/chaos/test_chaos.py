"""Chaos: a randomized workload of every operation (the torture mix: inserts, partial updates,
USING TIMESTAMP out of order, row/cell/range/partition deletes, TTL, a frozen collection) from
several client threads at a chosen consistency level and replication factor, a fault injected
while it runs, then: the sink consumes again (timed), PostgreSQL equals Cassandra read at
CL=ALL (canonicalised, zero differences), and `cdcctl verify` agrees.

Faults (CDC_CHAOS_FAULTS, each CDC_CHAOS_ROUNDS times):
- ``none``: no fault, the load runs CDC_CHAOS_NONE_S (30 s): the workload alone at the chosen
  consistency (CDC_CHAOS_CL=ONE or QUORUM); the topic must end with at least RF events per
  acknowledged write (every replica's agent sends its own copy) besides the usual checks;
  ``FAULT@CL`` runs a fault's rounds at another write consistency (``none@ONE`` beside QUORUM);
- ``postgres``: PostgreSQL crashes (SIGQUIT, immediate shutdown) and stays down
  CDC_CHAOS_PG_OUTAGE_S (130 s); the sink must ride through by itself: no task FAILED, no
  reconcile (nothing here runs one), no restart of the task;
- ``connect``: kill -9 of the worker running the sink task; with several workers the task must
  move (failover time), then the worker is restarted with `cdcctl stack up`;
- ``kafka``: Kafka stopped (SIGTERM) and restarted with `cdcctl stack up`; ``kafka9``: the
  same with kill -9 (log recovery at the next start);
- ``cassandra`` (a cluster, RF=3, writes at QUORUM): kill -9 of one Cassandra node
  (``cassandra-2``) while the writes continue, restarted with `cdcctl stack up`, waited until
  node 1 sees it UN; the hints replay to it through its commit log;
- ``agent`` (a cluster): kill -9 of one node's agent (``agent-2``), restarted with `cdcctl stack
  up`: the other replicas' agents carry the changes meanwhile, it resumes from its offsets.

Run: ``CDC_STACK_DIR=... just chaos`` (settings in tests/chaos/settings.py). Figures go to
docs/reliability.md (section per RF) and ``<state dir>/chaos-results.json``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session

from controlplane.core.schema_model import TableModel
from controlplane.services.stack import Endpoints, LocalStack
from tests import faults
from tests.chaos import settings
from tests.chaos.conftest import Pipeline, write_profile
from tests.chaos.report import write_report
from tests.chaos.support import (
    Deadline,
    Load,
    TaskWatch,
    committed,
    consuming_tasks,
    events,
    task_states,
    wait_until,
)
from tests.e2e.semconf import differences, table_model

pytestmark = pytest.mark.chaos

RESULTS: list[Round] = []
NODE_VICTIM = "cassandra-2"
AGENT_VICTIM = "agent-2"
CLUSTER_FAULTS = {"cassandra", "agent"}


@dataclass
class Round:
    fault: str
    round: int
    rf: int
    consistency: str
    threads: int
    fault_s: float = 0.0
    """How long the faulty service was down (signal -> ready again)."""
    recover_s: float = 0.0
    """Service back (ready) -> the sink commits offsets again. Connect with several workers:
    kill -> the task consumes on another worker (failover)."""
    sink_stalled_s: float = 0.0
    """Fault -> the sink commits offsets again."""
    restart_s: float = 0.0
    """`cdcctl stack up SERVICE` wall time."""
    converge_s: float = 0.0
    """Load stopped -> PostgreSQL equals Cassandra."""
    writes: int = 0
    failed_writes: int = 0
    events: int = 0
    differences: int = -1
    verify: dict[str, Any] = field(default_factory=dict)
    task_states: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.events - self.writes

    @property
    def ratio(self) -> float:
        """Events per acknowledged write (~RF when every replica's agent sent its copy)."""
        return self.events / self.writes if self.writes else 0.0


def _urls(endpoints: Endpoints) -> list[str]:
    return list(endpoints.connect_urls) or [endpoints.connect_url]


def _worker_instance(endpoints: Endpoints, worker_id: str) -> str:
    """The stack instance (``connect``, ``connect-2``...) of a Connect worker id (host:port)."""
    port = worker_id.rsplit(":", 1)[-1]
    for i, url in enumerate(_urls(endpoints), start=1):
        if url.rstrip("/").endswith(f":{port}"):
            return "connect" if i == 1 else f"connect-{i}"
    raise AssertionError(f"task runs on {worker_id}, not a worker of this stack")


def _sink_worker(endpoints: Endpoints, p: Pipeline) -> tuple[str, str]:
    """The worker whose task consumes the topic now (a standby task holds no partition), and a
    note of where the other tasks run."""
    tasks = task_states(_urls(endpoints), p.connector)
    active = consuming_tasks(endpoints.kafka_bootstrap, p.group, p.connector) or {0}
    victim = _worker_instance(endpoints, tasks[min(active)][1])
    others = [
        f"task {i} on {_worker_instance(endpoints, w)}"
        for i, (_, w) in enumerate(tasks)
        if i not in active
    ]
    note = f"consuming task {min(active)} on {victim}"
    return victim, note + (f", standby {', '.join(others)}" if others else "")


def _progress(endpoints: Endpoints, p: Pipeline) -> int:
    """The sink's committed offsets now; retried while Kafka is still loading its group
    coordinator (NOT_COORDINATOR right after a restart)."""
    value, _ = wait_until(
        "the sink's committed offsets are readable",
        lambda: committed(endpoints.kafka_bootstrap, p.group, p.topic),
        lambda _n: True,
        settings.RECOVER_DEADLINE_S,
    )
    return int(value)


def _await_progress(endpoints: Endpoints, p: Pipeline, after: int, what: str) -> float:
    """Monotonic time the sink's committed offsets passed ``after``."""
    _, at = wait_until(
        what,
        lambda: committed(endpoints.kafka_bootstrap, p.group, p.topic),
        lambda n: n > after,
        settings.RECOVER_DEADLINE_S,
    )
    return at


def _inject(fault: str, stack: LocalStack, endpoints: Endpoints, p: Pipeline, r: Round) -> None:
    if fault == "none":
        before = _progress(endpoints, p)
        time.sleep(settings.NONE_S)  # the load alone: its length is the point
        _await_progress(endpoints, p, before, "the sink commits under the load")
        r.notes.append(f"no fault; {settings.NONE_S:g} s of load")
    elif fault == "postgres":
        before = _progress(endpoints, p)
        sent = faults.kill(stack, "postgres", signal.SIGQUIT)
        back, restart = faults.resume_after(stack, "postgres", sent, settings.PG_OUTAGE_S)
        r.restart_s, r.fault_s = restart.seconds, back - sent
        stuck = _progress(endpoints, p)
        if stuck != before:
            r.notes.append(f"committed offsets moved while PostgreSQL was down ({before}->{stuck})")
        at = _await_progress(endpoints, p, stuck, "the sink writes again after PostgreSQL is back")
        r.recover_s, r.sink_stalled_s = at - back, at - sent
    elif fault == "connect":
        victim, placement = _sink_worker(endpoints, p)
        r.notes.append(placement)
        workers = len(_urls(endpoints))
        sent = faults.kill(stack, victim, signal.SIGKILL)
        stuck = _progress(endpoints, p)
        if workers > 1:
            at = _await_progress(endpoints, p, stuck, f"the sink's task leaves the dead {victim}")
            r.recover_s = r.sink_stalled_s = at - sent
            r.notes.append(f"killed {victim} of {workers} workers; task failed over")
            restart = faults.restart(stack, victim)
            r.restart_s, r.fault_s = restart.seconds, time.monotonic() - sent
        else:
            restart = faults.restart(stack, victim)
            back = time.monotonic()
            r.restart_s, r.fault_s = restart.seconds, back - sent
            at = _await_progress(endpoints, p, stuck, "the sink consumes again after the restart")
            r.recover_s, r.sink_stalled_s = at - back, at - sent
    elif fault == "cassandra":
        before = _progress(endpoints, p)
        sent = faults.kill(stack, NODE_VICTIM, signal.SIGKILL)
        # the other replicas' agents carry the changes: the sink keeps going while the node is down
        at = _await_progress(endpoints, p, before, f"the sink consumes with {NODE_VICTIM} down")
        r.sink_stalled_s = max(0.0, at - sent)
        restart = faults.restart(stack, NODE_VICTIM)
        _, up = wait_until(
            f"node 1 sees {NODE_VICTIM} UN",
            stack.cluster_view,
            lambda v: set(v.values()) == {"UN"} and len(v) == stack.s.nodes,
            settings.RECOVER_DEADLINE_S,
            every_s=2.0,
        )
        r.restart_s, r.fault_s = restart.seconds, up - sent
        stuck = _progress(endpoints, p)
        at = _await_progress(endpoints, p, stuck, f"the sink consumes after {NODE_VICTIM} is UN")
        r.recover_s = at - up
        r.notes.append(f"kill -9 {NODE_VICTIM}; writes at {r.consistency} continued")
    elif fault == "agent":
        before = _progress(endpoints, p)
        sent = faults.kill(stack, AGENT_VICTIM, signal.SIGKILL)
        at = _await_progress(endpoints, p, before, f"the sink consumes with {AGENT_VICTIM} down")
        r.sink_stalled_s = max(0.0, at - sent)
        restart = faults.restart(stack, AGENT_VICTIM)
        back = time.monotonic()
        r.restart_s, r.fault_s = restart.seconds, back - sent
        stuck = _progress(endpoints, p)
        at = _await_progress(endpoints, p, stuck, f"the sink consumes after {AGENT_VICTIM} is back")
        r.recover_s = at - back
        r.notes.append(f"kill -9 {AGENT_VICTIM}")
    elif fault in ("kafka", "kafka9"):
        sig = signal.SIGKILL if fault == "kafka9" else signal.SIGTERM
        sent = faults.kill(stack, "kafka", sig, timeout=120)
        restart = faults.restart(stack, "kafka")
        back = time.monotonic()
        r.restart_s, r.fault_s = restart.seconds, back - sent
        stuck = _progress(endpoints, p)
        at = _await_progress(endpoints, p, stuck, "the sink consumes again after Kafka is back")
        r.recover_s, r.sink_stalled_s = at - back, at - sent
    else:
        raise AssertionError(f"unknown fault {fault!r}")
    dead = [s for s in stack.s.instances() if not faults.running(stack, s)]
    if dead:  # a fault took another service down with it: a finding, recorded and repaired
        r.notes.append(f"also down after the fault: {', '.join(dead)} (restarted)")
        faults.restart(stack, *dead)


def _verify(stack: LocalStack, p: Pipeline, cwd: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "controlplane",
        "verify",
        "-f",
        str(p.manifest),
        "--state-dir",
        str(stack.lay.root),
        "--consistency",
        "ALL",
        "-o",
        "json",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, cwd=cwd)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        out = {"status": "unreadable", "stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}
    out["exit_code"] = proc.returncode
    return out


def _run_round(
    spec: str,
    n: int,
    stack: LocalStack,
    endpoints: Endpoints,
    cql: Session,
    p: Pipeline,
    model: TableModel,
    cwd: Path,
) -> tuple[Round, TaskWatch]:
    fault, _, level = spec.partition("@")  # FAULT or FAULT@CL
    r = Round(spec, n, settings.RF, level.upper() or settings.CONSISTENCY, settings.THREADS)
    RESULTS.append(r)
    events_before = events(endpoints.kafka_bootstrap, p.topic)
    load = Load(
        cql,
        p.table,
        settings.THREADS,
        settings.RATE,
        seed=settings.SEED + zlib.crc32(f"{spec}/{n}".encode()) % 10_000,
        partitions=settings.PARTITIONS,
        rows=settings.ROWS,
        profile=write_profile(r.consistency),
    ).start()
    with TaskWatch(_urls(endpoints), p.connector) as watch:
        try:
            wait_until("the workload writes", lambda: load.writes, lambda w: w > 0, 60)
            time.sleep(settings.WARMUP_S)  # load before the fault: its length is the point
            _inject(fault, stack, endpoints, p, r)
            time.sleep(settings.TAIL_S)  # load after recovery, then stop it
        finally:
            load.stop()
        stopped = time.monotonic()
        r.writes, r.failed_writes = load.writes, load.failures
        try:
            # every acknowledged write is an event in the topic (RF replicas each send one)
            r.events, _ = wait_until(
                "the topic holds an event per write",
                lambda: events(endpoints.kafka_bootstrap, p.topic) - events_before,
                lambda e: e >= r.writes,
                settings.CONVERGE_DEADLINE_S,
            )
            diffs, at = wait_until(
                "PostgreSQL equals Cassandra (CL=ALL)",
                lambda: differences(cql, endpoints.postgres_dsn, model),
                lambda d: d == [],
                settings.CONVERGE_DEADLINE_S,
                every_s=1.0,
            )
            r.converge_s, r.differences = at - stopped, len(diffs)
            if fault == "none":
                # no fault: every replica applied every write, so each replica's agent sent its
                # copy: RF events per acknowledged write (more where an agent sent one twice)
                r.events, _ = wait_until(
                    f"the topic holds {settings.RF} events per acknowledged write",
                    lambda: events(endpoints.kafka_bootstrap, p.topic) - events_before,
                    lambda e: e >= settings.RF * r.writes,
                    settings.CONVERGE_DEADLINE_S,
                )
        except Deadline as exc:
            left = differences(cql, endpoints.postgres_dsn, model)
            r.differences = len(left)
            r.notes.append(f"{str(exc)[:200]}; differences: {'; '.join(left[:5])}")
    r.task_states = dict(watch.seen)
    r.verify = _verify(stack, p, cwd)
    extra = {"duplicates": r.duplicates, "events_per_write": round(r.ratio, 3)}
    print(f"\nchaos {spec} round {n}: {json.dumps(asdict(r) | extra)}")
    _save(stack)  # after every round: a run cut short keeps its figures
    return r, watch


@pytest.mark.parametrize("spec", settings.FAULTS)
def test_fault_under_load(
    spec: str,
    chaos_stack: LocalStack,
    endpoints: Endpoints,
    cql: Session,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    fault = spec.partition("@")[0]
    if fault in CLUSTER_FAULTS and chaos_stack.s.nodes < 2:
        pytest.skip(f"the {fault} fault needs a cluster (cdcctl stack up --nodes 3)")
    model = table_model(cql, pipeline.keyspace, "t")
    for n in range(1, settings.ROUNDS + 1):
        r, watch = _run_round(spec, n, chaos_stack, endpoints, cql, pipeline, model, tmp_path)
        assert not watch.failed, f"the sink task was FAILED during the {fault} fault: {watch.seen}"
        if fault == "none":
            assert r.writes > 0, r
            assert r.events >= settings.RF * r.writes, r.notes
        assert r.differences == 0, r.notes
        assert r.verify.get("exit_code") == 0, r.verify
        assert r.verify.get("remaining_differences") == 0, r.verify
        if fault == "postgres":
            assert r.sink_stalled_s >= settings.PG_OUTAGE_S, "the outage was shorter than asked"


def _save(stack: LocalStack) -> None:
    rows = [
        asdict(r) | {"duplicates": r.duplicates, "events_per_write": round(r.ratio, 3)}
        for r in RESULTS
    ]
    out = stack.lay.root / "chaos-results.json"
    out.write_text(json.dumps({"at": datetime.now(UTC).isoformat(), "rounds": rows}, indent=1))
    write_report(RESULTS, nodes=stack.s.nodes, workers=stack.s.connect_workers)


@pytest.fixture(scope="session", autouse=True)
def _report(chaos_stack: LocalStack) -> Any:
    yield
    if RESULTS:  # rounds that failed half-way too
        _save(chaos_stack)

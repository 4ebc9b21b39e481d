"""Agent soak (issue 11 item 8): a steady write load for N minutes; every agent's resident memory,
the achieved write rate, the sink's lag and cdc_raw sampled every 30 s; JSON + a markdown table.

    CDC_STACK_DIR=$PWD/.stack-h2 python -m tests.performance.soak_agent --minutes 30 --rate 2000

It asserts nothing over time: it reports the RSS slope per agent (MiB per 10 minutes, a least-
squares fit over the samples after the warm-up, and over all of them), whether the target rate
was reached, and the rendered ``offset.flush.interval.ms`` of each agent (with 0 the 3.4.1
agent queues one offset-flush task per record without bound, dbz#1791). ``--doc`` writes the
table into docs/reliability.md ("Agent soak", between BEGIN/END markers).

The workload: ``--threads`` client threads, each keeping up to ``--inflight`` asynchronous
driver requests (``execute_async``) in flight and pacing its share of ``--rate`` with a
schedule (no catching up in bursts after a stall: a late thread just starts from now), single-row
inserts of ~100 bytes into a CDC table over 100,000 keys, captured by a pipeline deployed with
`cdcctl apply` (keyspace ``soak``). The stack must run (`cdcctl stack up`); it refuses the
default ``.stack/`` unless ``--allow-default-stack``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile, Session
from cassandra.policies import RoundRobinPolicy

from controlplane.adapters import postgres, processes
from controlplane.services import stack_runtime
from controlplane.services.cdc_raw import local_sources, measure
from controlplane.services.stack import LocalStack, repo_root, settings_for
from tests.chaos.conftest import manifest_text, reset_kafka
from tests.chaos.support import committed, events
from tests.performance.report import machine
from tests.stackfixture import apply_on, cql_cluster

KEYSPACE = "soak"
PIPELINE = "soak"
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
SECTION = "agent-soak"


@dataclass
class Sample:
    t_s: float  # since the load started
    agent_rss_mib: dict[str, float]
    writes: int  # acknowledged so far
    failed: int
    rate_wps: float  # acknowledged writes/s since the previous sample
    events: int  # records in the topic
    committed: int  # the sink group's committed offsets
    sink_lag: int  # events - committed
    cdc_raw_mib: dict[str, float]
    load_avg_1m: float


@dataclass
class Result:
    started_utc: str
    minutes: float
    target_rate: int
    threads: int
    inflight: int
    rf: int
    machine: str
    offset_flush_interval_ms: dict[str, str]
    samples: list[Sample] = field(default_factory=list)
    achieved_rate: float = 0.0
    rate_reached: bool = False
    slope_mib_per_10min: dict[str, float] = field(default_factory=dict)
    slope_after_warmup_mib_per_10min: dict[str, float] = field(default_factory=dict)
    warmup_s: float = 0.0
    notes: list[str] = field(default_factory=list)


class Load:
    """Paced asynchronous single-row inserts from several threads."""

    def __init__(self, session: Session, rate: int, threads: int, inflight: int) -> None:
        self.session = session
        self.stmt = session.prepare(f"INSERT INTO {KEYSPACE}.t (id, v, n) VALUES (?, ?, ?)")
        self.rate = rate
        self.threads = threads
        self.inflight = inflight
        self.acked = 0
        self.failed = 0
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._workers.append(t)

    def _done(self, _rows: Any, sem: threading.Semaphore) -> None:
        with self._lock:
            self.acked += 1
        sem.release()

    def _fail(self, exc: Exception, sem: threading.Semaphore) -> None:
        with self._lock:
            self.failed += 1
            key = type(exc).__name__
            self.errors[key] = self.errors.get(key, 0) + 1
        sem.release()

    def _run(self, index: int) -> None:
        rnd = random.Random(index)
        sem = threading.Semaphore(self.inflight)
        interval = self.threads / self.rate
        next_at = time.monotonic()
        payload = "x" * 80
        while not self._stop.is_set():
            now = time.monotonic()
            if next_at > now:
                self._stop.wait(next_at - now)
            elif now - next_at > 1.0:
                next_at = now  # behind by more than a second: no burst to catch up
            next_at += interval
            if not sem.acquire(timeout=5):
                continue  # every slot busy for 5 s: the server is stalled; try again
            key = rnd.randrange(100_000)
            fut = self.session.execute_async(self.stmt, (key, payload, rnd.randrange(1000)))
            fut.add_callbacks(self._done, self._fail, callback_args=(sem,), errback_args=(sem,))

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.acked, self.failed


def slope_per_10min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB), in MiB per 10 minutes."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return float("nan")
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return sxy / sxx * 600


def agent_pids(stack: LocalStack) -> dict[str, int]:
    out = {}
    for name in stack.s.instances_of("agent"):
        pid = stack_runtime.pid_of(stack.lay, name)
        if pid is None or not processes.alive(pid):
            raise SystemExit(f"soak: {name} is not running in {stack.lay.root}: `cdcctl stack up`")
        out[name] = pid
    return out


def flush_settings(stack: LocalStack) -> dict[str, str]:
    """``offset.flush.interval.ms`` as rendered into each agent's properties (absent: the
    agent's default, 0)."""
    out = {}
    for i, name in enumerate(stack.s.instances_of("agent"), start=1):
        props = stack_runtime.read_properties(stack.lay.agent_properties(i))
        out[name] = props.get("offset.flush.interval.ms", "absent (agent default 0)")
    return out


def deploy(stack: LocalStack, session: Session, workdir: Path, rf: int) -> tuple[str, str]:
    ep = stack.endpoints()
    topic, group = f"demo.{KEYSPACE}.t", f"connect-{PIPELINE}-jdbc-sink"
    reset_kafka(ep, f"{PIPELINE}-jdbc-sink", topic, group)
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
    session.execute(
        f"CREATE KEYSPACE {KEYSPACE} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
    )
    session.execute(
        f"CREATE TABLE {KEYSPACE}.t (id int PRIMARY KEY, v text, n int) WITH cdc = true"
    )
    postgres.execute(
        ep.postgres_dsn,
        [
            f'DROP SCHEMA IF EXISTS "{KEYSPACE}_cdc" CASCADE',
            f'DROP SCHEMA IF EXISTS "{KEYSPACE}" CASCADE',
        ],
    )
    path = workdir / f"{PIPELINE}.yaml"
    path.write_text(manifest_text(PIPELINE, KEYSPACE, ep))
    apply_on(stack, [path])  # restarts the agents: the RSS is measured from a fresh JVM
    return topic, group


def markdown(r: Result) -> str:
    agents = list(r.offset_flush_interval_ms)
    head = (
        f"Measured by `python -m tests.performance.soak_agent --minutes {r.minutes:g} "
        f"--rate {r.target_rate} --rf {r.rf}` ({r.threads} threads x up to {r.inflight} async "
        f"requests in flight; keyspace at RF={r.rf}, so each agent sees "
        f"{'every write' if r.rf >= 3 else f'{r.rf} in 3 writes on 3 nodes'}), "
        f"started {r.started_utc}; {r.machine}.\n\n"
        f"Rendered `offset.flush.interval.ms`: "
        + ", ".join(f"{a} {v}" for a, v in r.offset_flush_interval_ms.items())
        + ".\n\n"
    )
    cols = [
        "min",
        *[f"{a} RSS MiB" for a in agents],
        "writes/s",
        "failed",
        "sink lag",
        "cdc_raw MiB",
        "load 1m",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in r.samples:
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{s.t_s / 60:.1f}",
                    *[f"{s.agent_rss_mib.get(a, float('nan')):.0f}" for a in agents],
                    f"{s.rate_wps:.0f}",
                    str(s.failed),
                    str(s.sink_lag),
                    "/".join(f"{v:.0f}" for v in s.cdc_raw_mib.values()),
                    f"{s.load_avg_1m:.1f}",
                ]
            )
            + " |"
        )
    summary = [
        "",
        f"Achieved {r.achieved_rate:.0f} writes/s on average against a target of "
        f"{r.target_rate} ({'reached' if r.rate_reached else 'NOT reached'}: at least 95 % of "
        "the target counts as reached).",
    ]
    for a in agents:
        summary.append(
            f"{a}: RSS slope {r.slope_mib_per_10min.get(a, float('nan')):+.1f} MiB per 10 min over "
            f"the run, {r.slope_after_warmup_mib_per_10min.get(a, float('nan')):+.1f} MiB per "
            f"10 min after the first {r.warmup_s / 60:.0f} min (warm-up: heap and code cache "
            "growing to their working size)."
        )
    summary += [f"Note: {n}" for n in r.notes]
    return head + "\n".join(lines) + "\n" + "\n\n".join(summary) + "\n"


def write_doc(text: str) -> None:
    import re

    doc = DOC.read_text()
    block = f"<!-- BEGIN {SECTION} -->\n{text.rstrip()}\n<!-- END {SECTION} -->"
    pattern = re.compile(rf"<!-- BEGIN {SECTION} -->.*?<!-- END {SECTION} -->", re.S)
    doc = (
        pattern.sub(lambda _m: block, doc)
        if pattern.search(doc)
        else f"{doc.rstrip()}\n\n{block}\n"
    )
    DOC.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=2000, help="target writes/s (all threads)")
    ap.add_argument("--rf", type=int, default=3, help="replication factor of the soak keyspace")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=64, help="async requests per thread")
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--warmup-min", type=float, default=5.0, help="left out of the second slope")
    ap.add_argument("--out", type=Path, default=None, help="directory for soak.json / soak.md")
    ap.add_argument("--doc", action="store_true", help="write the table into docs/reliability.md")
    ap.add_argument("--allow-default-stack", action="store_true")
    args = ap.parse_args(argv)

    stack = LocalStack(settings_for())
    if stack.lay.root.resolve() == (repo_root() / ".stack").resolve() and not (
        args.allow_default_stack
    ):
        print("soak: give it its own stack (CDC_STACK_DIR=...)", file=sys.stderr)
        return 2
    out_dir = args.out or stack.lay.root / "soak"
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["CDC_PG_PASSWORD"] = stack.postgres_password()
    ep = stack.endpoints()
    profile = ExecutionProfile(
        load_balancing_policy=RoundRobinPolicy(),
        consistency_level=ConsistencyLevel.ONE,
        request_timeout=10,
    )
    # TLS and cdcctl's role unless the stack runs --insecure (decision 0110)
    cluster = cql_cluster(ep, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    session = cluster.connect()
    try:
        topic, group = deploy(stack, session, out_dir, args.rf)
        pids = agent_pids(stack)
        procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        result = Result(
            started_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            minutes=args.minutes,
            target_rate=args.rate,
            threads=args.threads,
            inflight=args.inflight,
            rf=args.rf,
            machine=machine(),
            offset_flush_interval_ms=flush_settings(stack),
            warmup_s=args.warmup_min * 60,
        )
        sources = local_sources(stack.lay.root)
        load = Load(session, args.rate, args.threads, args.inflight)
        began = time.monotonic()
        load.start()
        last_t, last_acked = began, 0
        end = began + args.minutes * 60
        next_sample = began
        while True:
            time.sleep(max(0.0, next_sample - time.monotonic()))
            now = time.monotonic()
            acked, failed = load.counts()
            ev = events(ep.kafka_bootstrap, topic)
            com = committed(ep.kafka_bootstrap, group, topic)
            rss = {}
            for name, p in procs.items():
                with contextlib.suppress(psutil.Error):
                    rss[name] = p.memory_info().rss / 2**20
            if len(rss) < len(procs):
                result.notes.append(f"an agent was gone at {(now - began) / 60:.1f} min")
            dt = now - last_t
            sample = Sample(
                t_s=round(now - began, 1),
                agent_rss_mib={k: round(v, 1) for k, v in rss.items()},
                writes=acked,
                failed=failed,
                rate_wps=round((acked - last_acked) / dt, 1) if dt > 0 else 0.0,
                events=ev,
                committed=com,
                sink_lag=ev - com,
                cdc_raw_mib={u.node: round(u.bytes / 2**20, 1) for u in measure(sources)},
                load_avg_1m=os.getloadavg()[0],
            )
            result.samples.append(sample)
            print(json.dumps(asdict(sample)), flush=True)
            last_t, last_acked = now, acked
            if now >= end - 0.5:
                break
            next_sample = min(next_sample + args.sample_s, end)
        load.stop()
        acked, failed = load.counts()
        elapsed = time.monotonic() - began
        result.achieved_rate = acked / elapsed
        result.rate_reached = result.achieved_rate >= 0.95 * args.rate
        if load.errors:
            result.notes.append(f"failed writes by error: {load.errors}")
        for name in procs:
            pts = [
                (s.t_s, s.agent_rss_mib[name]) for s in result.samples if name in s.agent_rss_mib
            ]
            result.slope_mib_per_10min[name] = round(slope_per_10min(pts), 2)
            late = [p for p in pts if p[0] >= result.warmup_s]
            result.slope_after_warmup_mib_per_10min[name] = round(slope_per_10min(late), 2)
        (out_dir / "soak.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
        text = markdown(result)
        (out_dir / "soak.md").write_text(text)
        print(text)
        if args.doc:
            write_doc(text)
        print(f"soak: {out_dir / 'soak.json'}, {out_dir / 'soak.md'}", file=sys.stderr)
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

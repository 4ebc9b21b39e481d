"""An agent down for long: cdc_raw fills up (issue 11 item 7; docs/reliability.md#cdc_raw-full).

On a stack whose node has a small ``cdc_total_space`` and ``cdc_block_writes: true`` (this
test's fixture sets them: `stack up --cdc-total-space-mib N --cdc-block-writes`), with the agent
stopped:

1. writes to a CDC table fill cdc_raw past 80 % (measured by `cdcctl cdc-raw usage`, as
   Cassandra counts it) — and the Prometheus alert ``CdcRawAlmostFull`` fires in the stack's own
   Prometheus (scraping `cdcctl cdc-raw export`), while Cassandra still accepts every write;
2. writes go on until Cassandra rejects them: the client gets the error (the message is
   asserted), the rejected rows are not in Cassandra, writes to a table without CDC still work;
3. the documented recovery: start the agent; it drains cdc_raw, writes are accepted again, the
   application re-sends what was rejected, and PostgreSQL ends equal to Cassandra (0
   differences, `cdcctl verify` PASS), the alert resolves.

Marker ``cdcfull`` (its own: it restarts the stack's Cassandra with other settings and stops
the agent): `just cdc-full`. It refuses the default `.stack/` like the chaos suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile, Session
from cassandra.policies import RoundRobinPolicy

from controlplane.adapters import postgres
from controlplane.core.errors import UsageError
from controlplane.core.stack_model import choices_of
from controlplane.services import stack_runtime, stack_settings
from controlplane.services.cdc_raw import local_sources, measure
from controlplane.services.stack import Endpoints, LocalStack, repo_root, settings_for
from controlplane.services.stack_settings import chosen_settings
from tests import faults
from tests.chaos.conftest import manifest_text, reset_kafka
from tests.chaos.support import wait_until
from tests.e2e.semconf import cass_rows, differences, table_model
from tests.stackfixture import apply_on, cql_cluster

pytestmark = pytest.mark.cdcfull

# Small enough to fill in seconds, several segments (1 MiB each on the stack) above the alert.
SPACE_MIB = int(os.environ.get("CDC_FULL_SPACE_MIB", "48"))
# A keyspace and pipeline of their own per run: a run that failed with the agent down leaves
# changes in cdc_raw that the restarted agent sends later — to the old run's topic, not ours.
RUN = uuid.uuid4().hex[:6]
KEYSPACE = f"cdcfull_{RUN}"
PIPELINE = f"cdcfull-{RUN}"
PAYLOAD = 32_000  # bytes per row: ~30 rows per 1 MiB segment, few writes on a loaded machine
ALERT = "CdcRawAlmostFull"
# What the client gets (Cassandra 5.0.2, protocol v5): a WriteFailure, reason UNKNOWN — the
# coordinator's local write threw CDCWriteException (CommitLogSegmentManagerCDC.throwIfForbidden),
# whose message only reaches the node's log (StorageProxy: "Failed to apply mutation locally").
CLIENT_ERROR = "WriteFailure: Error from server: code=1500 [Replica(s) failed to execute write]"
REJECTED = f"CDCWriteException: Rejecting mutation to keyspace {KEYSPACE}. Free up space in"


# --- the stack, the pipeline ----------------------------------------------------------------


@pytest.fixture(scope="module")
def full_stack() -> LocalStack:
    root = settings_for().layout.root
    if root.resolve() == (repo_root() / ".stack").resolve():
        pytest.exit(
            "the cdc_raw-full test restarts Cassandra with a small cdc_total_space and stops the "
            "agent: give it its own stack (CDC_STACK_DIR=...)",
            returncode=4,
        )
    stack = LocalStack(chosen_settings(None, cdc_total_space_mib=SPACE_MIB, cdc_block_writes=True))
    was = stack_settings.persisted_choices(stack.lay.root)
    want = choices_of(stack.s)
    only_cdc_differs = (
        was is not None
        and was != want
        and replace(was, cdc_total_space_mib=SPACE_MIB, cdc_block_writes=True) == want
    )
    if only_cdc_differs:
        # The CDC settings live in cassandra.yaml: the nodes and their agents restart with
        # them (`up` re-renders the configs); the rest of the stack keeps running.
        stack_settings.save(stack.s)
        for name in [*stack.s.instances_of("agent"), *stack.s.instances_of("cassandra")]:
            stack_runtime.stop(stack.lay, name)
    try:
        stack.up(persist=True)
    except UsageError:
        # Running with other choices: every service is restarted with these (data kept).
        stack.down()
        stack.up(persist=True)
    os.environ["CDC_PG_PASSWORD"] = stack.postgres_password()
    return stack


@pytest.fixture(scope="module")
def endpoints(full_stack: LocalStack) -> Endpoints:
    return full_stack.endpoints()


@pytest.fixture(scope="module")
def cql(endpoints: Endpoints) -> Iterator[Session]:
    profile = ExecutionProfile(
        load_balancing_policy=RoundRobinPolicy(),
        consistency_level=ConsistencyLevel.ONE,
        request_timeout=30,
    )
    # TLS and cdcctl's role unless the stack runs --insecure (decision 0110)
    cluster = cql_cluster(endpoints, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def manifest(
    full_stack: LocalStack,
    endpoints: Endpoints,
    cql: Session,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cdcfull") / f"{PIPELINE}.yaml"
    reset_kafka(
        endpoints, f"{PIPELINE}-jdbc-sink", f"demo.{KEYSPACE}.t", f"connect-{PIPELINE}-jdbc-sink"
    )
    cql.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
    cql.execute(
        f"CREATE KEYSPACE {KEYSPACE} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute(f"CREATE TABLE {KEYSPACE}.t (id int PRIMARY KEY, v text, w int) WITH cdc = true")
    # Not captured: writes to it must go on while cdc_raw is full.
    cql.execute(f"CREATE TABLE {KEYSPACE}.plain (id int PRIMARY KEY, v text)")
    postgres.execute(
        endpoints.postgres_dsn,
        [
            f'DROP SCHEMA IF EXISTS "{KEYSPACE}_cdc" CASCADE',
            f'DROP SCHEMA IF EXISTS "{KEYSPACE}" CASCADE',
        ],
    )
    path.write_text(manifest_text(PIPELINE, KEYSPACE, endpoints))
    apply_on(full_stack, [path])
    yield path
    # This run's connector, topic and keyspace go (the PostgreSQL schema stays for a look).
    reset_kafka(
        endpoints, f"{PIPELINE}-jdbc-sink", f"demo.{KEYSPACE}.t", f"connect-{PIPELINE}-jdbc-sink"
    )
    cql.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")


# --- helpers ------------------------------------------------------------------------------


def cdcctl_json(stack: LocalStack, *args: str) -> Any:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane",
            *args,
            "--state-dir",
            str(stack.lay.root),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        out = {"stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}
    return proc.returncode, out


def used_percent(stack: LocalStack) -> float:
    """node1's cdc_raw in per cent of cdc_total_space, measured in-process (cheap: the loops
    that fill cdc_raw ask after every batch)."""
    return 100 * measure(local_sources(stack.lay.root))[0].ratio


def usage(stack: LocalStack) -> dict[str, Any]:
    """node1's cdc_raw as `cdcctl cdc-raw usage -o json` reports it."""
    rc, rows = cdcctl_json(stack, "cdc-raw", "usage")
    assert rc == 0, rows
    return dict(rows[0])


def alerts(prometheus_url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=10).json()
    return [a for a in answer["data"]["alerts"] if a["labels"].get("alertname") == ALERT]


def firing(prometheus_url: str) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts(prometheus_url)
        if a["state"] == "firing" and a["labels"].get("node") == "node1"
    ]


class Writer:
    """Rows of ~4 KB into the CDC table from a pool of threads, in batches; remembers what
    Cassandra acknowledged and what it rejected (with the error)."""

    def __init__(self, cql: Session) -> None:
        self.cql = cql
        self.stmt = cql.prepare(f"INSERT INTO {KEYSPACE}.t (id, v, w) VALUES (?, ?, ?)")
        self.next_id = 0
        self.acked: dict[int, str] = {}
        self.rejected: dict[int, str] = {}
        self.errors: list[str] = []
        self.pool = ThreadPoolExecutor(8)

    def _one(self, i: int) -> None:
        value = f"{i}:{uuid.uuid4().hex}".ljust(PAYLOAD, "x")
        try:
            self.cql.execute(self.stmt, (i, value, i % 97))
        except Exception as exc:
            self.rejected[i] = value
            self.errors.append(f"{type(exc).__name__}: {exc}")
        else:
            self.acked[i] = value

    def batch(self, n: int) -> int:
        """Write n new rows; returns how many were rejected."""
        before = len(self.rejected)
        ids = range(self.next_id, self.next_id + n)
        self.next_id += n
        list(self.pool.map(self._one, ids))
        return len(self.rejected) - before

    def accepted_again(self, deadline_s: float) -> int:
        """Write one row at a time until Cassandra accepts one, then re-send every rejected row
        (as an application retries); returns how many single writes were rejected meanwhile.
        Cassandra re-measures cdc_raw only when something asks (a rejected write, a new segment),
        at most every cdc_free_space_check_interval: the first write after the drain may still
        be rejected."""
        before = len(self.rejected)
        wait_until(
            "a write to the CDC table accepted",
            lambda: self.batch(1),
            lambda rejected: rejected == 0,
            deadline_s,
            every_s=0.5,
        )
        stale = len(self.rejected) - before
        resend = dict(self.rejected)
        self.rejected.clear()
        for i, value in sorted(resend.items()):
            self.cql.execute(self.stmt, (i, value, i % 97))
            self.acked[i] = value
        return stale

    def until(self, done: Callable[[], bool], deadline_s: float, n: int = 100) -> None:
        end = time.monotonic() + deadline_s
        while not done():
            if time.monotonic() > end:
                raise AssertionError(
                    f"not within {deadline_s:.0f}s: {len(self.acked)} rows acknowledged, "
                    f"{len(self.rejected)} rejected"
                )
            self.batch(n)


# --- the test -------------------------------------------------------------------------------


def test_agent_down_cdc_raw_fills_alert_fires_writes_rejected_then_recovery_loses_nothing(
    full_stack: LocalStack, endpoints: Endpoints, cql: Session, manifest: Path
) -> None:
    stack = full_stack
    prom = endpoints.prometheus_url
    began = time.monotonic()
    # An earlier run may have left cdc_raw full: the agent (started by the fixture) drains it.
    start, _ = wait_until(
        "cdc_raw below the alert at the start",
        lambda: usage(stack),
        lambda u: u["used_percent"] < 50,
        300,
        every_s=2,
    )
    assert start["cdc_total_space_bytes"] == SPACE_MIB * 2**20, start
    assert start["cdc_block_writes"] is True, start
    system_log = stack.lay.service_dir("cassandra") / "logs" / "system.log"
    log_offset = system_log.stat().st_size
    writer = Writer(cql)
    writer.accepted_again(120)
    # The pipeline works: a first batch arrives in PostgreSQL.
    assert writer.batch(50) == 0, writer.errors[:3]
    model = table_model(cql, KEYSPACE, "t")
    wait_until(
        "the first rows in PostgreSQL",
        lambda: differences(cql, endpoints.postgres_dsn, model),
        lambda d: not d,
        120,
        every_s=1,
    )
    assert not firing(prom)

    # 1. The agent stops; writes fill cdc_raw past 80 %, every one accepted.
    faults.kill(stack, "agent", signal.SIGTERM)
    writer.until(lambda: used_percent(stack) > 82, 600, n=16)
    at_alert = usage(stack)
    assert not writer.rejected, writer.errors[:3]
    assert at_alert["state"] == "alert", at_alert

    # The alert fires in the stack's Prometheus (a scrape round + `for: 1m`) before Cassandra
    # refuses anything: cdc_raw does not drain while the agent is down.
    fired, fired_at = wait_until(
        f"{ALERT} firing in {prom}", lambda: firing(prom), bool, 240, every_s=2
    )
    print(
        f"\n{ALERT} fired {fired_at - began:.0f}s into the test at "
        f"{at_alert['used_percent']} % ({fired[0]['annotations']['summary']})"
    )
    assert not writer.rejected

    # 2. Writes go on until Cassandra rejects them, to the client.
    writer.until(lambda: bool(writer.rejected), 600, n=16)
    full = usage(stack)
    print(f"cdc_raw full: {full}; first error: {writer.errors[0]}")
    assert full["state"].startswith("full"), full
    assert writer.errors[0].startswith(CLIENT_ERROR), writer.errors[0]
    with system_log.open() as fh:
        fh.seek(log_offset)
        assert REJECTED in fh.read(), f"no {REJECTED!r} in {system_log}"
    # Every further write to the CDC table is rejected as well...
    assert writer.batch(20) == 20, writer.errors[-3:]
    # ...and none of the rejected rows is in Cassandra,
    rejected_ids = sorted(writer.rejected)
    found = cql.execute(
        f"SELECT id FROM {KEYSPACE}.t WHERE id IN ({', '.join(map(str, rejected_ids[:100]))})"
    )
    assert list(found) == []
    # ...while a table without CDC takes writes.
    cql.execute(f"INSERT INTO {KEYSPACE}.plain (id, v) VALUES (1, 'still writable')")

    # 3. Recovery: start the agent; it drains cdc_raw and writes are accepted again.
    faults.restart(stack, "agent")
    wait_until(
        "cdc_raw drained below the alert",
        lambda: usage(stack),
        lambda u: u["used_percent"] < 50,
        300,
        every_s=2,
    )
    drained_at = time.monotonic()
    # The application re-sends what Cassandra rejected (the client got the error for each).
    resend = len(writer.rejected)
    stale = writer.accepted_again(120)
    print(
        f"accepted again {time.monotonic() - drained_at:.1f}s after the drain "
        f"({stale} write(s) rejected after it); {resend} rejected rows re-sent"
    )
    assert not writer.rejected

    # Nothing lost: PostgreSQL equals Cassandra, row for row, and verify agrees.
    in_cassandra = cass_rows(cql, model)
    assert sorted(k[0] for k in in_cassandra) == sorted(writer.acked)
    wait_until(
        "PostgreSQL equal to Cassandra",
        lambda: differences(cql, endpoints.postgres_dsn, model),
        lambda d: not d,
        300,
        every_s=2,
    )
    rc, verdict = cdcctl_json(stack, "verify", "-f", str(manifest), "--no-progress")
    assert rc == 0, verdict
    assert verdict.get("remaining_differences") == 0, verdict
    wait_until(f"{ALERT} resolved", lambda: firing(prom), lambda f: not f, 240, every_s=2)
    print(
        f"recovered: {len(writer.acked)} rows in Cassandra and PostgreSQL, "
        f"{resend} rejected then re-sent, in {time.monotonic() - began:.0f}s"
    )

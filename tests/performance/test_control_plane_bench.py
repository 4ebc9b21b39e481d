"""Control plane benchmarks: `cdcctl --help` start time and a no-op apply of 20 pipelines.

Run: python -m pytest tests/performance/test_control_plane_bench.py -m performance -s
Writes the "control-plane" section of docs/benchmarks.md. Uses the running local stack, keyspace
cp_bench and topic prefix demo (decision 0013); the 20 connectors are deleted afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controlplane.core.manifest_loader import load_manifests
from controlplane.core.render import RenderContext, render_pipeline
from controlplane.services.stack import LocalStack, settings_for
from tests.performance.report import machine, write_section
from tests.stackfixture import connect_http, cql_cluster, ensure_stack

pytestmark = pytest.mark.performance

PIPELINES = 20
HELP_RUNS = 20
APPLY_RUNS = 3


def _timed(argv: list[str], runs: int, warmup: int = 2) -> list[float]:
    """hyperfine-style: warm-up runs, then wall time of each run."""
    out = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, timeout=120)
        if i >= warmup:
            out.append(time.perf_counter() - start)
    return out


def _fmt(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return (
        f"{statistics.mean(values) * 1000:.0f} ms ± {sd * 1000:.0f} ms "
        f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})"
    )


def _manifest(i: int) -> str:
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: cp-bench-{i:02d}
spec:
  source:
    cassandra:
      keyspace: cp_bench
      tables: [t{i:02d}]
  kafka:
    topicPrefix: demo
  sink:
    postgres:
      user: cdc
      passwordSecret: {{env: CDC_PG_PASSWORD}}
"""


def test_control_plane_benchmarks(tmp_path: Path) -> None:
    ep = ensure_stack()
    os.environ.setdefault("CDC_PG_PASSWORD", LocalStack(settings_for()).postgres_password())

    cdcctl = shutil.which("cdcctl")
    help_module = _timed([sys.executable, "-m", "controlplane", "--help"], HELP_RUNS)
    help_script = _timed([cdcctl, "--help"], HELP_RUNS) if cdcctl else []
    baseline = _timed([sys.executable, "-c", "pass"], HELP_RUNS)

    cluster = cql_cluster(ep)
    cql = cluster.connect()
    cql.execute(
        "CREATE KEYSPACE IF NOT EXISTS cp_bench WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    for i in range(PIPELINES):
        cql.execute(
            f"CREATE TABLE IF NOT EXISTS cp_bench.t{i:02d} (id int PRIMARY KEY, v text) "
            "WITH cdc = true"
        )
    cluster.shutdown()
    for i in range(PIPELINES):
        (tmp_path / f"p{i:02d}.yaml").write_text(_manifest(i))

    # Each running JDBC sink task holds a PostgreSQL connection pool: 20 running sinks exhaust
    # max_connections=100 of the shared stack. The connectors are created STOPPED (KIP-980) with
    # exactly the config cdcctl renders, so apply finds them equal and never PUTs (nor starts) them.
    ctx = RenderContext()
    connect = connect_http(ep)
    for m in load_manifests([tmp_path]):
        rendered = render_pipeline(m.pipeline, ctx)
        connect.post(
            "/connectors",
            json={
                "name": rendered.sink_name,
                "config": rendered.sink_config,
                "initial_state": "STOPPED",
            },
        ).raise_for_status()

    apply = [sys.executable, "-m", "controlplane", "apply", "-f", str(tmp_path), "-o", "json"]
    try:
        start = time.perf_counter()
        first = subprocess.run(apply, capture_output=True, text=True, timeout=600, check=False)
        first_s = time.perf_counter() - start
        assert first.returncode == 0, first.stderr
        noop = []
        for _ in range(APPLY_RUNS):
            start = time.perf_counter()
            out = subprocess.run(apply, capture_output=True, text=True, timeout=600, check=False)
            noop.append(time.perf_counter() - start)
            assert out.returncode == 0, out.stderr
            assert {c["action"] for c in json.loads(out.stdout)} == {"unchanged"}
        plan_argv = [sys.executable, "-m", "controlplane", "plan", "-f", str(tmp_path)]
        plan = _timed(plan_argv, APPLY_RUNS, warmup=0)
    finally:
        for i in range(PIPELINES):
            connect.delete(f"/connectors/cp-bench-{i:02d}-jdbc-sink")

    body = f"""## Control plane

Command: `python -m pytest tests/performance/test_control_plane_bench.py -m performance -s`
(repeated subprocess runs after 2 warm-ups, hyperfine-style; the running local stack; 20 pipelines
of one table each in keyspace `cp_bench`). Machine: {machine()}.

| figure | value |
|---|---|
| `python -m controlplane --help` | {_fmt(help_module)} |
| `cdcctl --help` (console script) | {_fmt(help_script) if help_script else "n/a"} |
| `python -c pass` (interpreter floor) | {_fmt(baseline)} |
| first apply of the run (connectors pre-created STOPPED) | {first_s:.1f} s |
| no-op apply of 20 pipelines (nothing PUT) | {_fmt(noop)} |
| `cdcctl plan` of the same 20 pipelines | {_fmt(plan)} |

Where `--help` time goes (`python -X importtime -m controlplane --help`, measured once when this
section was written): about 0.5 s is `controlplane.services.stack` (psutil, the stack model,
adapters), imported at the top of `cli/stack.py`, and about 0.2 s `services.verify` (redis's
asyncio client) through `cli/verify.py`. The control-plane commands (`cli/control.py`,
`cli/apply.py`) import their services inside the command, so they add nothing to `--help`.
A no-op apply reads the Cassandra schema once per contact point, the connector configs once per
Connect cluster (`GET /connectors?expand=info`) and the topics once per Kafka cluster; the rest
is one PostgreSQL existence check per table.
"""
    write_section("control-plane", body)
    print(body)

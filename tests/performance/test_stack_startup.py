"""Local stack start-up: cold (new state dir, artifact caches warm) and warm (data kept) start
times, resident memory of the whole stack, disk used.

Runs a second stack on shifted ports in a temporary state dir, so it can run beside the default
one (whose load then adds noise: say so when quoting). Writes docs/benchmarks.md#local-stack.

    python -m pytest tests/performance/test_stack_startup.py -m performance -s
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from controlplane.core.stack_model import SERVICE_ORDER, Ports, StackLayout, StackSettings
from controlplane.services.stack import LocalStack
from tests.performance.report import machine, write_section

pytestmark = pytest.mark.performance

OFFSET = 20000


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sLm", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def test_stack_startup(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    st = LocalStack(StackSettings(layout=StackLayout(root=root), ports=Ports().shifted(OFFSET)))
    try:
        t0 = time.monotonic()
        cold = st.up()
        cold_s = time.monotonic() - t0
        per_service = {r.name: r.seconds for r in cold}
        statuses = st.status()
        rss = {s.name: s.rss_mib or 0.0 for s in statuses}
        disk_cold = du_mib(root)
        st.down()
        t0 = time.monotonic()
        st.up()
        warm_s = time.monotonic() - t0
        rss_warm = sum((s.rss_mib or 0.0) for s in st.status())
        disk_warm = du_mib(root)
    finally:
        st.down(clean=True)
        shutil.rmtree(root, ignore_errors=True)

    rows = "\n".join(
        f"| {name} | {per_service[name]:.1f} | {rss[name]:.0f} |" for name in SERVICE_ORDER
    )
    body = f"""## Local stack (`cdcctl stack up`)

Command: `python -m pytest tests/performance/test_stack_startup.py -m performance -s`
(a second stack on ports +{OFFSET} in a temporary state dir; Maven artifacts and the transform
build already cached). Machine: {machine()}.

| figure | value |
|---|---|
| cold start (new state dir: initdb, KRaft format, Cassandra bootstrap) | {cold_s:.1f} s |
| warm start (after `down`, data kept) | {warm_s:.1f} s |
| resident memory, whole stack, after cold start | {sum(rss.values()):.0f} MiB |
| resident memory, whole stack, after warm start | {rss_warm:.0f} MiB |
| disk used by the state dir after start | {disk_cold:.0f} MiB |
| disk used after the warm restart | {disk_warm:.0f} MiB |

| service | cold start s (to ready) | RSS MiB |
|---|---|---|
{rows}
"""
    write_section("local-stack", body)
    print(body)
    assert cold_s > 0

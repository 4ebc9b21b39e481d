"""The chaos figures as a section of docs/reliability.md (one per replication factor), between
BEGIN/END markers so a rerun replaces its own table only."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.chaos import settings
from tests.performance.report import machine

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def table(rounds: Sequence[Any]) -> str:
    lines = [
        "| fault | round | down s | stack up s | sink back s | sink stalled s | converge s "
        "| writes (failed) | events | ev/write | dup | diffs | verify | task states | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        states = ", ".join(f"{k} {v}" for k, v in sorted(r.task_states.items()))
        verify = f"{r.verify.get('status', '?')} ({r.verify.get('remaining_differences', '?')})"
        lines.append(
            f"| {r.fault} | {r.round} | {r.fault_s:.1f} | {r.restart_s:.1f} | {r.recover_s:.1f} "
            f"| {r.sink_stalled_s:.1f} | {r.converge_s:.1f} | {r.writes} ({r.failed_writes}) "
            f"| {r.events} | {r.ratio:.2f} | {r.duplicates} | {r.differences} | {verify} "
            f"| {states} | {'; '.join(r.notes)} |"
        )
    lines += [
        "",
        "| fault | rounds | sink back s, median (min-max) | converge s | diffs |",
        "|---|---|---|---|---|",
    ]
    for fault in dict.fromkeys(r.fault for r in rounds):
        mine = [r for r in rounds if r.fault == fault]
        lines.append(
            f"| {fault} | {len(mine)} | {_fmt([r.recover_s for r in mine])} "
            f"| {_fmt([r.converge_s for r in mine])} | {sum(r.differences for r in mine)} |"
        )
    return "\n".join(lines)


def write_report(rounds: Sequence[Any], *, nodes: int, workers: int) -> None:
    """The section of this topology (RF, Cassandra nodes, Connect workers): reruns replace it."""
    name = f"chaos-rf{settings.RF}-n{nodes}-w{workers}"
    if settings.CONSISTENCY != settings.DEFAULT_CONSISTENCY:  # e.g. CL=ONE at RF=3: its own
        name += f"-{settings.CONSISTENCY.lower()}"
    body = (
        f"Measured by the chaos suite (tests/chaos) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{nodes} Cassandra node(s) and {workers} Connect worker(s) "
        f"(RF={settings.RF}, writes at {settings.CONSISTENCY}, "
        f"{settings.THREADS} threads x {settings.RATE:g} ops/s, PostgreSQL outage "
        f"{settings.PG_OUTAGE_S:g} s); {machine()}.\n\n{table(rounds)}"
    )
    text = DOC.read_text() if DOC.exists() else "# Reliability\n"
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n<!-- END {name} -->"
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _m: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    DOC.write_text(text)

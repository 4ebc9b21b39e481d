"""The Connect worker's failover timings (decision 0101) as the local stack renders them: the
worker template's group and sink-consumer lines."""

from __future__ import annotations

from pathlib import Path

import jinja2

from controlplane.core.properties import load_properties

ROOT = Path(__file__).resolve().parents[2]
WORKER_TEMPLATE = ROOT / "compose/native/config/connect-distributed.properties.j2"


def worker_properties() -> dict[str, str]:
    """The template rendered with every variable empty: only the failover lines, which take no
    variable, are looked at."""
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, autoescape=False)  # noqa: S701
    return load_properties(env.from_string(WORKER_TEMPLATE.read_text()).render())


def test_a_dead_workers_sink_partitions_move_within_seconds() -> None:
    props = worker_properties()
    session = int(props["consumer.session.timeout.ms"])
    heartbeat = int(props["consumer.heartbeat.interval.ms"])
    # the broker's group.min.session.timeout.ms (6 s) <= session; Kafka's own 45 s was the delay
    assert 6_000 <= session <= 10_000
    assert heartbeat * 3 <= session, "three heartbeats per session, as Kafka recommends"
    # classic protocol: with group.protocol=consumer the broker's 45 s minimum would apply
    assert props.get("consumer.group.protocol", "classic") == "classic"


def test_a_dead_workers_tasks_are_reassigned_within_the_30s_budget() -> None:
    props = worker_properties()
    session = int(props["session.timeout.ms"])
    delay = int(props["scheduled.rebalance.max.delay.ms"])
    assert int(props["heartbeat.interval.ms"]) * 3 <= session
    # detection + the scheduled delay + a task start (~2-5 s measured) stays under 30 s
    assert session + delay <= 20_000
    # ... and the delay still covers a worker that is back at once (a rolling restart of a
    # worker whose JVM restarts in ~10-20 s on 2 cores reshuffles; decision 0101)
    assert delay >= 5_000

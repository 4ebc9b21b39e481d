"""What the chaos rounds measure with: a multi-threaded randomized workload, the sink's progress
(its consumer group's committed offsets), the topic's event count, the connector's task states."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cassandra.cluster import Session
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from controlplane.services.stack import Endpoints
from tests.e2e.torture_ops import next_op, statements
from tests.stackfixture import connect_http, kafka_config


class Deadline(AssertionError):
    pass


def wait_until(
    what: str,
    probe: Callable[[], Any],
    done: Callable[[Any], bool],
    deadline_s: float,
    every_s: float = 0.25,
) -> tuple[Any, float]:
    """Poll until ``done(probe())``; return (the value, monotonic time it held). Probe errors
    (a service that is still down) count as not done."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while True:
        try:
            last = probe()
            if done(last):
                return last, time.monotonic()
        except Exception as exc:
            last = exc
        if time.monotonic() > end:
            raise Deadline(f"{what}: not within {deadline_s:.0f}s; last: {last!r}")
        time.sleep(every_s)


# --- the workload -------------------------------------------------------------------------------


@dataclass
class Load:
    """Client threads writing the torture mix (tests/e2e/torture_ops.py) until stopped."""

    session: Session
    table: str
    threads: int
    rate: float
    seed: int
    partitions: int
    rows: int
    profile: str
    acked: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        prepared = {k: self.session.prepare(q) for k, q in statements(self.table).items()}
        for i in range(self.threads):
            rnd = random.Random(self.seed * 1000 + i)
            t = threading.Thread(target=self._run, args=(rnd, prepared), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _run(self, rnd: random.Random, prepared: dict[str, Any]) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            kind, params = next_op(rnd, partitions=self.partitions, rows=self.rows)
            try:
                self.session.execute(prepared[kind], params, execution_profile=self.profile)
                ok = True
            except Exception:
                ok = False
            with self._lock:
                (self.acked if ok else self.failed)[kind] += 1
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=60)

    @property
    def writes(self) -> int:
        with self._lock:
            return sum(self.acked.values())

    @property
    def failures(self) -> int:
        with self._lock:
            return sum(self.failed.values())


# --- Kafka: events and the sink's progress ------------------------------------------------------


# The stack the chaos run uses (the session's or the cluster's), set by its `endpoints` fixture:
# its CA, cdcctl's Kafka client certificate and Connect's basic auth (decision 0114).
_STACK: list[Endpoints] = []


def use_stack(endpoints: Endpoints) -> None:
    _STACK[:] = [endpoints]


def chaos_stack() -> Endpoints:
    assert _STACK, "the chaos `endpoints` fixture names the stack first"
    return _STACK[0]


def kafka_settings(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for `bootstrap` with the chaos stack's TLS and cdcctl's client
    certificate."""
    return kafka_config(chaos_stack(), **{"bootstrap.servers": bootstrap, **extra})


def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AdminClient(kafka_settings(bootstrap))
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        raise KafkaException(meta.error)
    return [TopicPartition(topic, p) for p in sorted(meta.partitions)]


def events(bootstrap: str, topic: str) -> int:
    """Records ever written to the topic (sum of high watermarks; the topic is new per session
    and nothing is compacted or deleted during a run)."""
    c = Consumer(kafka_settings(bootstrap, **{"group.id": "cdc-chaos-probe"}))
    try:
        return sum(
            c.get_watermark_offsets(tp, timeout=10)[1] for tp in topic_partitions(bootstrap, topic)
        )
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str) -> int:
    """The sink group's committed offsets, summed: grows only as the sink writes."""
    c = Consumer(kafka_settings(bootstrap, **{"group.id": group, "enable.auto.commit": False}))
    try:
        got = c.committed(topic_partitions(bootstrap, topic), timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        c.close()


def consuming_tasks(bootstrap: str, group: str, connector: str) -> set[int]:
    """The sink's task ids that hold partitions now (Connect names each task's consumer
    ``connector-consumer-<connector>-<task>``); a standby task holds none."""
    admin = AdminClient(kafka_settings(bootstrap))
    described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(
        timeout=15
    )
    prefix = f"connector-consumer-{connector}-"
    return {
        int(m.client_id.removeprefix(prefix))
        for m in described.members
        if m.client_id.startswith(prefix) and m.assignment and m.assignment.topic_partitions
    }


# --- Connect ------------------------------------------------------------------------------------


def task_states(urls: list[str], connector: str) -> list[tuple[str, str]]:
    """(state, worker) of every task, from the first worker that answers."""
    last: Exception | None = None
    for url in urls:
        try:
            with connect_http(chaos_stack(), url, timeout=5) as http:
                r = http.get(f"/connectors/{connector}/status")
            r.raise_for_status()
            return [(t["state"], t.get("worker_id", "")) for t in r.json()["tasks"]]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
    raise ConnectionError(f"no Connect worker answered: {last}")


class TaskWatch:
    """Polls the sink's task states every second in the background: what the round saw."""

    def __init__(self, urls: list[str], connector: str) -> None:
        self.urls, self.connector = urls, connector
        self.seen: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TaskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(ConnectionError):
                for state, _ in task_states(self.urls, self.connector):
                    self.seen[state] += 1
            self._stop.wait(1.0)

    @property
    def failed(self) -> bool:
        return self.seen["FAILED"] > 0

"""A paced CQL write load for benchmarks, and a probe that times writes to PostgreSQL.

`LoadGenerator` sends one prepared statement at a target rate from N client threads with the
cassandra-driver's `execute_async`: a token bucket per thread (its share of the rate, a burst of
at most `burst_s` seconds of it) paces the sends, and a window of in-flight requests shared by
the threads bounds what is outstanding. Writes the window or a slow server hold back are not
made up later beyond the burst: the achieved rate (acked writes / elapsed) falls below the
target instead, and is reported. Counts: issued, acked, failed (with the first few errors), and
the CPU seconds of this process while it ran (the driver's I/O thread does most of the work).

`LatencyProbe` writes one timestamped row every `interval_s` into a probe table, records the
moment each write was acknowledged, and a watcher thread looks the acknowledged ids up in
PostgreSQL in a tight loop (`visible(ids)` returns those already readable) and records when each
one became visible. latency = visible - acked (both `time.monotonic()` of this process).

Nothing here asserts a time: the benchmarks print and record what they measure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class AsyncSession(Protocol):
    """The part of `cassandra.cluster.Session` the load generator uses."""

    def execute_async(self, query: Any, parameters: Any = None) -> Any: ...


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; starts empty at `now`."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = 0.0
        self.last = now

    def take(self, now: float) -> int:
        """Refill up to `now` and take every whole token there is (how many sends are due)."""
        elapsed = max(now - self.last, 0.0)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.last = now
        n = int(self.tokens)
        self.tokens -= n
        return n

    def wait(self) -> float:
        """Seconds from the last refill until the next whole token."""
        return max(1.0 - self.tokens, 0.0) / self.rate


@dataclass
class LoadStats:
    target_rate: float
    threads: int
    window: int
    issued: int = 0
    acked: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: seconds until every in-flight write was answered after the sending stopped
    drain_s: float = 0.0
    #: CPU seconds of this process (all threads) while the load ran
    cpu_s: float = 0.0
    #: how often a sender found the in-flight window full
    window_full: int = 0
    #: which generator sent the load: "python" (this module) or "java" (LoadGen.java)
    generator: str = "python"
    #: CPU seconds of the generator's process in all (the Java one: with its start-up, i.e.
    #: compiling, connecting, JIT); None where only `cpu_s` is known
    cpu_total_s: float | None = None

    @property
    def achieved_rate(self) -> float:
        """Acked writes per second of sending."""
        return self.acked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_share(self) -> float:
        """CPU seconds per second of sending (1.0 = one core busy)."""
        return self.cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_ms_per_write(self) -> float:
        """The generator's CPU milliseconds per acked write."""
        return self.cpu_s * 1000 / self.acked if self.acked else float("nan")


class LoadGenerator:
    """Send `statement` with `params(i)` (i = 0, 1, 2, ... unique across the threads) at `rate`
    writes/s for a duration. `clock`/`sleep` are injectable for tests (no server needed: any
    object with `execute_async` returning a future with `add_callbacks` will do)."""

    MAX_ERRORS = 5

    def __init__(
        self,
        session: AsyncSession,
        statement: Any,
        params: Callable[[int], Sequence[Any]],
        *,
        rate: float,
        threads: int = 2,
        window: int = 512,
        burst_s: float = 0.1,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        cpu_clock: Clock = time.process_time,
        sample_every: int = 0,
        on_sample_ack: Callable[[int], None] | None = None,
    ) -> None:
        """`on_sample_ack(i)` is called (on the driver's thread) when write i is acked, for
        every `sample_every`-th write: a probe can time those rows through the pipeline."""
        if threads < 1 or window < 1:
            raise ValueError("threads and window must be at least 1")
        self.session = session
        self.statement = statement
        self.params = params
        self.rate = rate
        self.threads = threads
        self.window = window
        self.burst_s = burst_s
        self.clock = clock
        self.sleep = sleep
        self.cpu_clock = cpu_clock
        self.sample_every = sample_every
        self.on_sample_ack = on_sample_ack
        self._slots = threading.BoundedSemaphore(window)
        self._lock = threading.Lock()
        self._stats = LoadStats(rate, threads, window)

    # --- driver callbacks (the driver's I/O thread) ---
    def _ok(self, _rows: Any) -> None:
        with self._lock:
            self._stats.acked += 1
        self._slots.release()

    def _ok_sampled(self, rows: Any, i: int) -> None:
        self._ok(rows)
        if self.on_sample_ack is not None:
            self.on_sample_ack(i)

    def _err(self, exc: BaseException) -> None:
        with self._lock:
            self._stats.failed += 1
            if len(self._stats.errors) < self.MAX_ERRORS:
                self._stats.errors.append(f"{type(exc).__name__}: {exc}")
        self._slots.release()

    def _send(self, i: int) -> None:
        with self._lock:
            self._stats.issued += 1
        try:
            future = self.session.execute_async(self.statement, self.params(i))
        except Exception as exc:  # refused before it left: a failed write
            self._err(exc)
            return
        if self.sample_every and i % self.sample_every == 0:
            future.add_callbacks(self._ok_sampled, self._err, callback_args=(i,))
        else:
            future.add_callbacks(self._ok, self._err)

    def _sender(self, index: int, start: float, end: float) -> None:
        bucket = TokenBucket(
            self.rate / self.threads, self.rate / self.threads * self.burst_s, start
        )
        k = 0
        while True:
            now = self.clock()
            if now >= end:
                return
            due = bucket.take(now)
            if due == 0:
                self.sleep(min(bucket.wait(), end - now))
                continue
            for _ in range(due):
                if not self._slots.acquire(blocking=False):
                    with self._lock:
                        self._stats.window_full += 1
                    # wait for a slot, but never past the end of the run
                    while not self._slots.acquire(blocking=False):
                        if self.clock() >= end:
                            return
                        self.sleep(0.001)
                self._send(index + k * self.threads)
                k += 1

    def run(self, duration_s: float, *, drain_timeout_s: float = 60.0) -> LoadStats:
        """Send for `duration_s`, then wait (up to `drain_timeout_s`) for the in-flight writes."""
        cpu0 = self.cpu_clock()
        start = self.clock()
        end = start + duration_s
        if self.threads == 1:
            self._sender(0, start, end)
        else:
            workers = [
                threading.Thread(target=self._sender, args=(i, start, end), daemon=True)
                for i in range(self.threads)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        stopped = self.clock()
        self.wait_drained(drain_timeout_s)
        with self._lock:
            s = self._stats
            s.elapsed_s = stopped - start
            s.drain_s = self.clock() - stopped
            s.cpu_s = self.cpu_clock() - cpu0
            return LoadStats(**{f: getattr(s, f) for f in s.__dataclass_fields__})

    def wait_drained(self, timeout_s: float) -> bool:
        """True once every issued write was answered (acked or failed), False at the deadline."""
        deadline = self.clock() + timeout_s
        while True:
            with self._lock:
                if self._stats.acked + self._stats.failed >= self._stats.issued:
                    return True
            if self.clock() >= deadline:
                return False
            self.sleep(0.01)


@dataclass
class ProbeSample:
    id: int
    #: seconds since the probe started, at the acknowledgement
    at_s: float
    acked: float
    visible: float | None = None
    #: wall-clock time (epoch seconds) of the acknowledgement, to line up with other clocks
    acked_wall: float = 0.0

    @property
    def latency_s(self) -> float | None:
        return None if self.visible is None else self.visible - self.acked


class LatencyProbe:
    """Write probe rows (`write(id)` blocks until Cassandra acknowledges it) every `interval_s`;
    a watcher polls `visible(ids)` (the ids among `ids` readable in PostgreSQL) every
    `poll_s` and stamps each id the first time it is returned. With `max_lookups_per_s` the
    watcher looks up at most that many ids a second: with n ids pending it waits
    max(poll_s, n / max_lookups_per_s) between looks, so a backlog of thousands of pending ids
    (a pipeline seconds behind) does not turn the watcher into a load of its own on PostgreSQL
    and this process; its resolution is then that wait, small against latencies of seconds."""

    def __init__(
        self,
        write: Callable[[int], None] | None,
        visible: Callable[[list[int]], Iterable[int]],
        *,
        first_id: int = 0,
        interval_s: float = 0.075,
        poll_s: float = 0.005,
        max_lookups_per_s: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        wall: Clock = time.time,
    ) -> None:
        self.write = write
        self.wall = wall
        self.visible = visible
        self.next_id = first_id
        self.interval_s = interval_s
        self.poll_s = poll_s
        self.max_lookups_per_s = max_lookups_per_s
        self.clock = clock
        self.sleep = sleep
        self.samples: dict[int, ProbeSample] = {}
        self.write_errors: list[str] = []
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._writing = threading.Event()
        self._watching = threading.Event()
        self._threads: list[threading.Thread] = []
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = self.clock()
        self._writing.set()
        self._watching.set()
        self._threads = [threading.Thread(target=self._watcher, daemon=True)]
        if self.write is not None:  # else rows written elsewhere are reported by acked(id)
            self._threads.append(threading.Thread(target=self._writer, daemon=True))
        for t in self._threads:
            t.start()

    def write_one(self) -> None:
        assert self.write is not None
        i = self.next_id
        self.next_id += 1
        try:
            self.write(i)
        except Exception as exc:  # counted and reported, never retried
            self.write_errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.acked(i)

    def acked(self, i: int, at: float | None = None) -> None:
        """Row `i` was acknowledged now, or at `at` (earlier, on `clock`): watch for it."""
        now, wall = self.clock(), self.wall()
        if at is not None:
            now, wall = at, wall - (now - at)
        with self._lock:
            self.samples[i] = ProbeSample(i, now - self.t0, now, acked_wall=wall)
            self._pending.add(i)

    def _writer(self) -> None:
        due = self.clock()
        while self._writing.is_set():
            self.write_one()
            due += self.interval_s
            self.sleep(max(due - self.clock(), 0.0))

    def check(self) -> int:
        """One look-up of the pending ids; returns how many are still pending."""
        with self._lock:
            ids = sorted(self._pending)
        if not ids:
            return 0
        found = set(self.visible(ids))
        now = self.clock()
        with self._lock:
            for i in found & self._pending:
                self.samples[i].visible = now
            self._pending -= found
            return len(self._pending)

    def pause_after(self, pending: int) -> float:
        """Seconds the watcher waits after a look that left `pending` ids pending."""
        if self.max_lookups_per_s is None:
            return self.poll_s
        return max(self.poll_s, pending / self.max_lookups_per_s)

    def _watcher(self) -> None:
        while self._watching.is_set():
            self.sleep(self.pause_after(self.check()))

    def stop_writing(self) -> None:
        self._writing.clear()
        for t in self._threads[1:]:
            t.join()

    def wait_visible(self, timeout_s: float) -> bool:
        """After `stop_writing`: True once every acked probe row was seen, False at the deadline."""
        deadline = self.clock() + timeout_s
        while True:
            with self._lock:
                if not self._pending:
                    return True
            if self.clock() >= deadline:
                return False
            self.sleep(0.05)

    def stop(self) -> list[ProbeSample]:
        self._writing.clear()
        self._watching.clear()
        for t in self._threads:
            t.join()
        with self._lock:
            return sorted(self.samples.values(), key=lambda s: s.id)

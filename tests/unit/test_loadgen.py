"""The load generator's pacing and accounting, and the latency probe's bookkeeping, without a
server: the session is faked at the network boundary (`execute_async` and its future), time is a
fake clock that moves only when the code sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.performance.loadgen import LatencyProbe, LoadGenerator, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(seconds, 1e-6)


class FakeFuture:
    def __init__(self, error: BaseException | None, hold: bool) -> None:
        self.error = error
        self.hold = hold
        self.callbacks: tuple[Callable[[Any], None], Callable[[BaseException], None]] | None = None

    def add_callbacks(
        self,
        callback: Callable[..., None],
        errback: Callable[[BaseException], None],
        callback_args: tuple[Any, ...] = (),
    ) -> None:
        self.callbacks = (lambda rows: callback(rows, *callback_args), errback)
        if not self.hold:
            self.complete()

    def complete(self) -> None:
        assert self.callbacks is not None
        ok, err = self.callbacks
        if self.error is None:
            ok([])
        else:
            err(self.error)


class FakeSession:
    """Answers at once (or holds the answers when `hold`); `fail(params)` picks failures."""

    def __init__(
        self,
        *,
        fail: Callable[[Any], bool] = lambda _p: False,
        hold: bool = False,
        on_send: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.fail = fail
        self.hold = hold
        self.on_send = on_send
        self.sent: list[Any] = []
        self.futures: list[FakeFuture] = []
        self._lock = threading.Lock()

    def execute_async(self, query: Any, parameters: Any = None) -> FakeFuture:
        with self._lock:
            self.sent.append(parameters)
            n = len(self.sent)
        self.on_send(n)
        error = TimeoutError("write timed out") if self.fail(parameters) else None
        future = FakeFuture(error, self.hold)
        self.futures.append(future)
        return future


def generator(session: Any, clock: FakeClock, **kwargs: Any) -> LoadGenerator:
    kwargs.setdefault("threads", 1)
    return LoadGenerator(
        session,
        "INSERT",
        lambda i: (i, f"v{i}"),
        clock=clock,
        sleep=clock.sleep,
        cpu_clock=lambda: 0.0,
        **kwargs,
    )


def test_token_bucket_refills_at_the_rate_and_caps_the_burst() -> None:
    b = TokenBucket(rate=10, burst=2, now=0.0)
    assert b.take(0.0) == 0
    assert b.wait() == pytest.approx(0.1)
    assert b.take(0.1) == 1
    assert b.take(0.15) == 0
    assert b.wait() == pytest.approx(0.05)
    assert b.take(5.0) == 2  # 49 tokens accrued, at most the burst kept
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate=0, burst=1, now=0.0)


def test_paces_to_the_target_rate_and_counts_every_ack() -> None:
    clock, session = FakeClock(), FakeSession()
    stats = generator(session, clock, rate=100).run(10.0)
    assert 995 <= stats.issued <= 1000
    assert stats.acked == stats.issued
    assert stats.failed == 0
    assert stats.elapsed_s == pytest.approx(10.0, abs=0.02)
    assert stats.achieved_rate == pytest.approx(100, rel=0.01)
    # every write has its own key, in order
    assert [p[0] for p in session.sent] == list(range(stats.issued))


def test_failed_writes_are_counted_apart_with_their_first_errors() -> None:
    clock = FakeClock()
    session = FakeSession(fail=lambda p: p[0] % 10 == 0)
    stats = generator(session, clock, rate=50).run(4.0)
    assert stats.acked + stats.failed == stats.issued
    assert stats.failed == len([p for p in session.sent if p[0] % 10 == 0])
    assert len(stats.errors) == LoadGenerator.MAX_ERRORS
    assert stats.errors[0] == "TimeoutError: write timed out"
    assert stats.achieved_rate == pytest.approx(stats.acked / stats.elapsed_s)


def test_a_request_refused_before_sending_is_a_failed_write() -> None:
    class Refusing:
        def execute_async(self, query: Any, parameters: Any = None) -> Any:
            raise RuntimeError("no host available")

    clock = FakeClock()
    stats = generator(Refusing(), clock, rate=20, window=2).run(1.0)
    assert stats.issued > 2  # each refusal gave its window slot back
    assert stats.failed == stats.issued
    assert stats.acked == 0


def test_the_in_flight_window_bounds_outstanding_writes() -> None:
    clock, session = FakeClock(), FakeSession(hold=True)
    gen = generator(session, clock, rate=100, window=5)
    stats = gen.run(1.0, drain_timeout_s=0.5)
    assert stats.issued == 5
    assert stats.acked == 0
    assert stats.window_full >= 1
    assert stats.drain_s >= 0.5  # waited for the answers until the deadline
    for f in session.futures:
        f.complete()
    assert gen.wait_drained(0.0)


def test_a_stall_is_not_made_up_beyond_the_burst() -> None:
    clock = FakeClock()

    def stall(n: int) -> None:
        if n == 1:
            clock.sleep(1.0)  # the first send blocks the sender for a second

    session = FakeSession(on_send=stall)
    stats = generator(session, clock, rate=100, burst_s=0.1).run(2.0)
    # 1 before the stall, at most a 10-write burst after it, then ~100/s for the last second
    assert stats.issued <= 1 + 10 + 100 + 1
    assert stats.achieved_rate < 60


def test_threads_share_the_rate_with_distinct_keys() -> None:
    clock, session = FakeClock(), FakeSession(fail=lambda p: p[0] % 7 == 0)
    stats = generator(session, clock, rate=300, threads=3).run(2.0)
    keys = [p[0] for p in session.sent]
    assert len(keys) == len(set(keys)) == stats.issued > 0
    assert stats.acked + stats.failed == stats.issued


def test_probe_stamps_acks_and_first_sightings() -> None:
    clock = FakeClock()
    written: dict[int, float] = {}

    def write(i: int) -> None:
        written[i] = clock()
        clock.sleep(0.002)  # the ack comes 2 ms later

    def visible(ids: list[int]) -> list[int]:
        return [i for i in ids if clock() >= written[i] + 0.3]

    probe = LatencyProbe(
        write, visible, first_id=100, clock=clock, sleep=clock.sleep, wall=lambda: 1e9 + clock()
    )
    probe.t0 = clock()
    probe.write_one()
    clock.sleep(0.1)
    probe.write_one()
    assert probe.check() == 2
    clock.sleep(0.2)
    assert probe.check() == 1  # the first one is visible now
    clock.sleep(0.1)
    assert probe.check() == 0
    s100, s101 = probe.samples[100], probe.samples[101]
    # acked at 0.002 and 0.104, readable from 0.300 and 0.402, seen at the looks at 0.304, 0.404
    assert s100.latency_s == pytest.approx(0.302)
    assert s101.latency_s == pytest.approx(0.300)
    assert s100.at_s == pytest.approx(0.002)
    assert s101.acked_wall == pytest.approx(1e9 + 0.104)


def test_probe_counts_a_failed_write_and_does_not_wait_for_it() -> None:
    clock = FakeClock()

    def write(i: int) -> None:
        raise TimeoutError("write timed out")

    probe = LatencyProbe(write, lambda ids: ids, clock=clock, sleep=clock.sleep)
    probe.write_one()
    assert probe.write_errors == ["TimeoutError: write timed out"]
    assert probe.samples == {}
    assert probe.check() == 0
    assert probe.wait_visible(0.0)


def test_every_nth_acked_write_is_handed_to_a_probe() -> None:
    clock = FakeClock()
    seen: list[int] = []
    session = FakeSession(fail=lambda p: p[0] == 20)
    stats = generator(session, clock, rate=100, sample_every=10, on_sample_ack=seen.append).run(1.0)
    assert stats.issued >= 95
    # 0, 10, 30, ... (20 failed: never visible, so never watched)
    assert seen == [i for i in range(0, stats.issued, 10) if i != 20]


def test_probe_watches_rows_written_elsewhere() -> None:
    clock = FakeClock()
    probe = LatencyProbe(None, lambda ids: ids, clock=clock, sleep=clock.sleep)
    probe.acked(7)
    clock.sleep(0.5)
    assert probe.check() == 0
    assert probe.samples[7].latency_s == pytest.approx(0.5)


def test_probe_takes_an_earlier_ack_time_from_another_process() -> None:
    clock = FakeClock()
    probe = LatencyProbe(None, lambda ids: ids, clock=clock, sleep=clock.sleep, wall=lambda: 1e9)
    clock.sleep(1.0)
    probe.acked(3, at=0.75)  # acked 0.25 s before it was reported
    clock.sleep(0.5)
    assert probe.check() == 0
    s = probe.samples[3]
    assert s.acked == 0.75
    assert s.at_s == pytest.approx(0.75)
    assert s.acked_wall == pytest.approx(1e9 - 0.25)
    assert s.latency_s == pytest.approx(0.75)


def test_a_watcher_behind_a_backlog_looks_less_often() -> None:
    clock = FakeClock()
    probe = LatencyProbe(
        None, lambda ids: [], poll_s=0.005, max_lookups_per_s=1000, clock=clock, sleep=clock.sleep
    )
    assert probe.pause_after(0) == 0.005
    assert probe.pause_after(5) == 0.005
    assert probe.pause_after(100) == pytest.approx(0.1)
    for i in range(100):
        probe.acked(i)
    assert probe.check() == 100  # nothing visible: all still pending
    unbounded = LatencyProbe(None, lambda ids: [], poll_s=0.005, clock=clock, sleep=clock.sleep)
    assert unbounded.pause_after(10_000) == 0.005

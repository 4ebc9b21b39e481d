"""The Java load generator's driver (tests/performance/javaload.py) without a JVM or a server:
the classpath picked from an agent's lib directory, LoadGen's JSON lines turned into samples,
progress and `LoadStats`, the clock check, and the go/ready protocol over a real child process
(a Python stand-in for LoadGen)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.performance.javaload import (
    DRIVER_JARS,
    PASSWORD_ENV,
    CassandraTarget,
    JavaLoadGenerator,
    LoadGenError,
    driver_classpath,
    stats_from_done,
)

TARGET = CassandraTarget("127.0.0.1", 9042, ca_file="/ca.pem", username="u", password="s3cret")
DONE = {
    "event": "done",
    "issued": 100,
    "acked": 98,
    "failed": 2,
    "window_full": 3,
    "errors": ["WriteTimeoutException: timed out"],
    "elapsed_s": 2.0,
    "drain_s": 0.1,
    "cpu_s": 0.5,
    "cpu_total_s": 4.0,
    "target_rate": 50.0,
    "threads": 2,
    "window": 512,
}


def gen(**kwargs: Any) -> JavaLoadGenerator:
    return JavaLoadGenerator(
        Path("/jdk/bin/java"), [Path("/c"), Path("/d.jar")], TARGET, "ks.t", **kwargs
    )


def test_the_driver_jars_are_picked_from_the_agents_lib_without_classifiers(
    tmp_path: Path,
) -> None:
    for name in [
        *(f"{n}-1.2.3.jar" for n in DRIVER_JARS),
        "config-magic-9.jar",  # another artifact whose name starts alike
        "netty-transport-native-epoll-4.1.96.Final-linux-x86_64.jar",
        "cassandra-all-5.0.2.jar",
    ]:
        (tmp_path / name).touch()
    jars = driver_classpath(tmp_path)
    assert [j.name for j in jars] == [f"{n}-1.2.3.jar" for n in DRIVER_JARS]


def test_a_missing_driver_jar_is_named(tmp_path: Path) -> None:
    (tmp_path / "java-driver-core-shaded-4.14.0.jar").touch()
    with pytest.raises(LoadGenError, match="java-driver-shaded-guava"):
        driver_classpath(tmp_path)


def test_the_command_carries_the_settings_but_never_the_password() -> None:
    cmd = gen(threads=3, sample_every=100).command()
    assert cmd[0] == "/jdk/bin/java"
    assert cmd[cmd.index("-cp") + 1] == "/c:/d.jar"
    args = cmd[cmd.index("LoadGen") + 1 :]
    opts = dict(zip(args[::2], args[1::2], strict=True))
    assert opts["--table"] == "ks.t"
    assert opts["--threads"] == "3"
    assert opts["--sample-every"] == "100"
    assert opts["--ca-file"] == "/ca.pem"
    assert opts["--username"] == "u"
    assert not any("s3cret" in part for part in cmd)


def test_lines_become_samples_progress_and_stats() -> None:
    samples: list[tuple[int, float]] = []
    progress: list[dict[str, Any]] = []
    g = gen(progress=progress.append)
    g.on_sample_ack = lambda i, at: samples.append((i, at))
    g.go_sent_at = 10.0
    g.handle('{"event":"started","mono_ns":10500000000}', 11.0)
    g.handle('{"event":"sample","i":200,"acked_ns":12250000000}', 12.3)
    g.handle('{"event":"progress","issued":5,"acked":4,"failed":0,"window_full":0}', 13.0)
    g.handle(json.dumps(DONE), 14.0)
    assert g.problems == []
    assert g.started_at == 10.5
    assert samples == [(200, 12.25)]
    assert progress[0]["acked"] == 4
    assert g.done is not None
    stats = stats_from_done(g.done)
    assert (stats.issued, stats.acked, stats.failed, stats.window_full) == (100, 98, 2, 3)
    assert stats.errors == ["WriteTimeoutException: timed out"]
    assert stats.generator == "java"
    assert stats.achieved_rate == 49.0
    assert stats.cpu_share == 0.25
    assert stats.cpu_ms_per_write == pytest.approx(500 / 98)
    assert stats.cpu_total_s == 4.0


def test_a_start_stamp_outside_go_and_its_reply_is_another_clock() -> None:
    g = gen()
    g.go_sent_at = 10.0
    g.handle('{"event":"started","mono_ns":9000000000}', 11.0)  # before "go" was sent
    g.handle("not json", 11.0)
    assert len(g.problems) == 2
    assert "time.monotonic()" in g.problems[0]


FAKE_LOADGEN = """
import json, os, sys, time
if os.environ.get("%s") != "s3cret":
    sys.exit(3)
print(json.dumps({"event": "ready"}), flush=True)
for line in sys.stdin:
    _go, seconds, rate, base = line.split()
    print(json.dumps({"event": "started", "mono_ns": time.monotonic_ns()}), flush=True)
    print(json.dumps({"event": "sample", "i": int(base), "acked_ns": time.monotonic_ns()}),
          flush=True)
    print("a driver warning", file=sys.stderr, flush=True)
    if float(rate) < 0:
        sys.exit(2)
    done = %s
    done["elapsed_s"], done["target_rate"] = float(seconds), float(rate)
    print(json.dumps(done), flush=True)
"""


class FakeJvm(JavaLoadGenerator):
    """LoadGen's protocol from a Python child (time.monotonic_ns: the clock the JVM uses)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(Path(sys.executable), [], TARGET, "ks.t")
        self.script = tmp / "fake_loadgen.py"
        self.script.write_text(FAKE_LOADGEN % (PASSWORD_ENV, DONE))

    def command(self) -> list[str]:
        return [sys.executable, str(self.script)]


def test_one_child_serves_several_runs(tmp_path: Path) -> None:
    samples: list[tuple[int, float]] = []
    with FakeJvm(tmp_path) as g:
        first = g.run(3.0, rate=10, base=5, on_sample_ack=lambda i, at: samples.append((i, at)))
        sent = g.go_sent_at
        second = g.run(2.0, rate=20, base=7)
        assert g.problems == []
    assert (first.elapsed_s, first.target_rate) == (3.0, 10.0)
    assert (second.elapsed_s, second.target_rate) == (2.0, 20.0)
    assert second.acked == 98
    assert [i for i, _ in samples] == [5]  # the second run's went to no one
    assert sent is not None
    assert sent <= samples[0][1]
    assert g.proc is not None
    assert g.proc.returncode == 0  # stdin closed: it exited


def test_a_child_that_dies_without_its_result_fails_with_its_stderr(tmp_path: Path) -> None:
    with (
        FakeJvm(tmp_path) as g,
        pytest.raises(LoadGenError, match=r"(?s)without its result.*a driver warning"),
    ):
        g.run(1.0, rate=-1)


def test_a_run_before_start_is_refused() -> None:
    with pytest.raises(LoadGenError, match="start"):
        gen().run(1.0, rate=10)

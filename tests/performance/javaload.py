"""The Java load generator (`LoadGen.java`, decision 0155) driven from Python.

`JavaLoadGenerator` runs `tests/performance/LoadGen.java` (the DataStax Java driver 4 the
Debezium Cassandra agent ships, `driver_classpath(agent lib)`) as a child process and reports
what `loadgen.LoadGenerator` does, as a `LoadStats`: the same pacing (a token bucket per sender
thread, a shared window of in-flight writes), the same counts, and the CPU seconds of the Java
process while it sent. `start()` sends nothing: it launches the JVM, which
connects and prepares, and returns once it is ready; each `run(seconds, rate=..., base=...)`
sends "go <seconds> <rate> <base>" and reads its JSON lines until "done"; one JVM serves every
load of a benchmark, so its JIT compiles during the first (a warm-up) and not in the measured
ones; `close()` closes its stdin, and it exits. Every `sample_every`-th acked write is passed to
`on_sample_ack(i, acked)` with the ack time on this process's `time.monotonic()` clock: the JVM's
`System.nanoTime()` is CLOCK_MONOTONIC on Linux as `time.monotonic()` is, and `run` checks that
the JVM's "started" stamp falls between sending "go" and reading the reply.

`compile_loadgen` compiles the source (javac beside the JDK's java) once before the JVM starts:
a source launch (`java LoadGen.java`, JEP 330) works as well but compiles in the JVM each time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.performance.loadgen import LoadStats

SOURCE = Path(__file__).with_name("LoadGen.java")
LOGBACK = Path(__file__).with_name("loadgen-logback.xml")
MAIN_CLASS = "LoadGen"
PASSWORD_ENV = "CDC_LOADGEN_CASSANDRA_PASSWORD"  # pragma: allowlist secret (a name)
#: the jars of the agent's classpath LoadGen needs: the driver, its dependencies, logging
DRIVER_JARS = (
    "java-driver-core-shaded",
    "java-driver-shaded-guava",
    "config",
    "native-protocol",
    "reactive-streams",
    "HdrHistogram",
    "jcip-annotations",
    "spotbugs-annotations",
    "slf4j-api",
    "logback-classic",
    "logback-core",
)
#: a small heap and the serial collector: the generator keeps little, and a parallel collector's
#: threads would compete with the pipeline for the two cores
JVM_OPTIONS = ("-XX:+UseSerialGC", "-Xms64m", "-Xmx256m")
#: the shortest pause of a sender thread: it wakes at most this often and sends every write due
#: since, in one go (fewer wake-ups and fuller socket writes than one wake-up per write)
TICK_S = 0.002
#: seconds allowed for the JVM to start, connect and prepare
READY_TIMEOUT_S = 60.0
#: how many lines of the JVM's stderr to keep for error messages
STDERR_TAIL = 20

SampleAck = Callable[[int, float], None]


class LoadGenError(RuntimeError):
    pass


def driver_classpath(lib: Path, names: Sequence[str] = DRIVER_JARS) -> list[Path]:
    """One jar per name from `lib` (the agent's resolved classpath): `<name>-<version>.jar`,
    the plain jar (no classifier such as `-linux-x86_64`)."""
    jars = []
    for name in names:
        pattern = re.compile(rf"{re.escape(name)}-\d[\w.-]*\.jar")
        found = sorted(
            p
            for p in lib.glob(f"{name}-*.jar")
            if pattern.fullmatch(p.name) and not re.search(r"-(linux|osx|windows)-", p.name)
        )
        if not found:
            raise LoadGenError(f"{name}-<version>.jar is missing from {lib}")
        jars.append(found[-1])
    return jars


def compile_loadgen(java: Path, classpath: Sequence[Path], out: Path) -> Path:
    """Compile LoadGen.java into `out` with the javac beside `java`; returns `out`."""
    javac = java.with_name("javac")
    if not javac.exists():
        raise LoadGenError(f"no javac beside {java}: the Java load generator needs a JDK")
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(javac), "-cp", os.pathsep.join(map(str, classpath)), "-d", str(out), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise LoadGenError(f"javac failed on {SOURCE}:\n{proc.stderr.strip()[:2000]}")
    return out


@dataclass(frozen=True)
class CassandraTarget:
    host: str
    port: int
    #: PEM CA bundle: TLS verified with it, host names checked (None: plain)
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None


def stats_from_done(done: dict[str, Any]) -> LoadStats:
    """LoadStats from LoadGen's "done" line."""
    return LoadStats(
        target_rate=float(done["target_rate"]),
        threads=int(done["threads"]),
        window=int(done["window"]),
        issued=int(done["issued"]),
        acked=int(done["acked"]),
        failed=int(done["failed"]),
        errors=[str(e) for e in done.get("errors", [])],
        elapsed_s=float(done["elapsed_s"]),
        drain_s=float(done["drain_s"]),
        cpu_s=float(done["cpu_s"]),
        window_full=int(done["window_full"]),
        cpu_total_s=float(done["cpu_total_s"]),
        generator="java",
    )


class JavaLoadGenerator:
    """One LoadGen JVM writing INSERT INTO `table` (id, v, n) VALUES (base + i, payload, i);
    `start()` once, then `run(...)` per load (its JIT warms up on the first), `close()` at
    the end."""

    def __init__(
        self,
        java: Path,
        classpath: Sequence[Path],
        target: CassandraTarget,
        table: str,
        *,
        payload: str = "x",
        threads: int = 2,
        window: int = 512,
        burst_s: float = 0.1,
        tick_s: float = TICK_S,
        sample_every: int = 0,
        drain_timeout_s: float = 60.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`classpath`: the driver's jars and the directory `compile_loadgen` wrote."""
        self.java = java
        self.classpath = list(classpath)
        self.target = target
        self.table = table
        self.payload = payload
        self.threads = threads
        self.window = window
        self.burst_s = burst_s
        self.tick_s = tick_s
        self.sample_every = sample_every
        self.drain_timeout_s = drain_timeout_s
        self.progress = progress
        self.clock = clock
        self.proc: subprocess.Popen[str] | None = None
        self.stderr: deque[str] = deque(maxlen=STDERR_TAIL)
        self.problems: list[str] = []
        # the current run's
        self.on_sample_ack: SampleAck | None = None
        self.done: dict[str, Any] | None = None
        self.started_at: float | None = None
        self.go_sent_at: float | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._exited = threading.Event()
        self._threads: list[threading.Thread] = []

    def command(self) -> list[str]:
        t = self.target
        cmd = [
            str(self.java),
            *JVM_OPTIONS,
            f"-Dlogback.configurationFile={LOGBACK}",
            "-cp",
            os.pathsep.join(map(str, self.classpath)),
            MAIN_CLASS,
            *("--host", t.host, "--port", str(t.port), "--table", self.table),
            *("--threads", str(self.threads), "--window", str(self.window)),
            *("--burst-s", repr(self.burst_s), "--tick-s", repr(self.tick_s)),
            *("--payload", self.payload, "--sample-every", str(self.sample_every)),
            *("--drain-timeout-s", repr(self.drain_timeout_s)),
        ]
        if t.ca_file:
            cmd += ["--ca-file", t.ca_file]
        if t.username is not None:
            cmd += ["--username", t.username]
        return cmd

    # --- the JVM's lines (a reader thread; pure enough to test without a JVM) ---
    def handle(self, line: str, now: float) -> None:
        """One stdout line of LoadGen read at `now` (this process's monotonic clock)."""
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            self.problems.append(f"not a JSON line from LoadGen: {line[:200]!r}")
            return
        kind = event.get("event")
        if kind == "sample":
            if self.on_sample_ack is not None:
                self.on_sample_ack(int(event["i"]), event["acked_ns"] / 1e9)
        elif kind == "progress":
            if self.progress is not None:
                self.progress(event)
        elif kind == "ready":
            self._ready.set()
        elif kind == "started":
            self.started_at = event["mono_ns"] / 1e9
            self.check_clock(self.started_at, now)
        elif kind == "done":
            self.done = event
            self._finished.set()
        else:
            self.problems.append(f"unknown LoadGen event {kind!r}")

    def check_clock(self, started_at: float, read_at: float) -> None:
        """The JVM stamped "started" after "go" was sent and before it was read here, on the
        same clock: else its ack times are not comparable with ours."""
        sent = self.go_sent_at
        if sent is None or not sent <= started_at <= read_at:
            self.problems.append(
                f"LoadGen's System.nanoTime() ({started_at:.6f} s) is not this process's "
                f"time.monotonic() (go sent at {sent}, reply read at {read_at:.6f}): its ack "
                "times cannot be compared with the watchers'"
            )

    def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.handle(line, self.clock())
        self._exited.set()  # EOF: closed or dead
        self._ready.set()
        self._finished.set()

    def _read_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def _fail(self, what: str) -> LoadGenError:
        tail = "\n".join(self.stderr)
        return LoadGenError(f"{what}; LoadGen's stderr:\n{tail}" if tail else what)

    def start(self) -> None:
        """Launch the JVM and return once it has connected and prepared its statement."""
        env = dict(os.environ)
        if self.target.password is not None:
            env[PASSWORD_ENV] = self.target.password
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()
        if not self._ready.wait(READY_TIMEOUT_S) or self._exited.is_set():
            self.close()
            raise self._fail(f"LoadGen was not ready within {READY_TIMEOUT_S:.0f} s")

    def run(
        self,
        duration_s: float,
        *,
        rate: float,
        base: int = 0,
        on_sample_ack: SampleAck | None = None,
    ) -> LoadStats:
        """Send `rate` writes/s for `duration_s`, then wait (up to the drain timeout) for the
        in-flight writes. `on_sample_ack(i, acked)` gets every `sample_every`-th acked write."""
        if self.proc is None or self.proc.stdin is None:
            raise LoadGenError("start() LoadGen first")
        self.on_sample_ack = on_sample_ack
        self.done = None
        self._finished.clear()
        self.go_sent_at = self.clock()
        try:
            self.proc.stdin.write(f"go {duration_s!r} {float(rate)!r} {int(base)}\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise self._fail("LoadGen exited before it was told to go") from exc
        # the JVM stops sending at the end and drains within drain_timeout_s
        if not self._finished.wait(duration_s + self.drain_timeout_s + 30.0):
            raise self._fail("LoadGen did not finish in time")
        self.on_sample_ack = None
        if self.done is None:
            self.close()
            raise self._fail(f"LoadGen exited ({self.proc.returncode}) without its result")
        if self.problems:
            raise self._fail("; ".join(self.problems))
        return stats_from_done(self.done)

    def close(self) -> None:
        """Close the JVM's stdin (it exits), kill it if it does not within 30 s; close its
        pipes once their readers are done."""
        if self.proc is None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # a JVM that died: nothing to flush
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for t in self._threads:
            t.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def __enter__(self) -> JavaLoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

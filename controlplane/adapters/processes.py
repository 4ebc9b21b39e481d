"""Local processes: start detached, track by pid file, probe, stop; ports and memory via psutil."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from controlplane.adapters import private_files
from controlplane.core.errors import PortInUseError, ServiceStartError

# Services outlive the command that started them; keeping their Popen objects lets this process
# reap the ones that exit while it runs (no zombies, no "still running" warnings at exit).
_children: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _forget_children() -> None:
    # Services outlive cdcctl by design; Python would otherwise warn that they still run.
    for proc in _children.values():
        if proc.poll() is None:
            proc.returncode = 0


@dataclass(frozen=True)
class RunAs:
    """Run a child as another user (PostgreSQL refuses to run as root)."""

    uid: int
    gid: int


# What a service started with a clean environment keeps of the caller's
# (`spawn(inherit_env=False)`).
BASE_ENV_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def base_env() -> dict[str, str]:
    """The caller's PATH, HOME, locale and the like, nothing else (no tokens, no passwords)."""
    return {k: os.environ[k] for k in BASE_ENV_NAMES if k in os.environ}


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
    inherit_env: bool = True,
) -> int:
    """Start `argv` in its own session, output appended to `log_file`; write and return its pid.

    The child gets the caller's environment plus `env`, or with ``inherit_env=False`` only
    `base_env()` plus `env` (a service that resolves secrets must not see the caller's)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with private_files.open_append(log_file, binary=True) as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(  # argv is built by the project, not a shell
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env={**(os.environ if inherit_env else base_env()), **(env or {})},
                start_new_session=True,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except OSError as exc:
            raise ServiceStartError(
                f"{name} could not be started: {exc}", hint=f"command: {' '.join(argv)}"
            ) from exc
    write_pid_file(pid_file, proc.pid)
    _children[proc.pid] = proc
    return proc.pid


def write_pid_file(pid_file: Path, pid: int) -> None:
    """``<pid> <start time>``: `read_pid` then knows the process it names is the one started,
    not another that got the same pid later (or one a planted file names). Written 0600,
    never through a symlink."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = 0.0
    pid_file.unlink(missing_ok=True)
    fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{pid} {started:.2f}\n")


LEGACY_PID_FILE_WINDOW_S = 30.0
"""A pid file of an older cdcctl (no start time) names its process only if that process started
at most this long before the file was written — as `spawn` does — and never after it."""


def read_pid(pid_file: Path) -> int | None:
    """The pid a pid file names, only while that very process runs: same pid *and* the start
    time recorded when it was spawned (another start time names nothing)."""
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
        started = float(fields[1]) if len(fields) > 1 else None
        written = pid_file.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return None
    try:
        actual = psutil.Process(pid).create_time()
    except psutil.Error:
        return None
    if started is None:  # an older cdcctl's file: the process must predate it only just
        return pid if 0 <= written - actual <= LEGACY_PID_FILE_WINDOW_S else None
    return pid if abs(actual - started) < 0.05 else None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def reap(pid: int) -> None:
    """Collect a child that exited, so it does not linger as a zombie of this process."""
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, *, timeout: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """Signal the process group (`sig`), wait up to `timeout`, then SIGKILL. True if killed."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(pid)
        if not alive(pid):
            return False
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    for _ in range(50):
        reap(pid)
        if not alive(pid):
            break
        time.sleep(0.1)
    return True


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of a process and its children."""
    if not alive(pid):
        return None
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())
    except psutil.Error:
        return None


def port_owner(port: int, host: str | None = None) -> str | None:
    """Who listens on `port`, as 'name (pid N)', or None when it is free. ``host``: only a
    listener on that address or on every address counts (a Cassandra node on 127.0.0.2 may use
    the port node 1 uses on 127.0.0.1); None: any address."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error:
        conns = []
    for c in conns:
        if (
            c.status == psutil.CONN_LISTEN
            and c.laddr
            and c.laddr.port == port
            and (host is None or c.laddr.ip in (host, "0.0.0.0", "::"))  # noqa: S104  # nosec B104  # compares a listener's address, binds nothing
        ):
            if c.pid is None:
                return "an unknown process"
            try:
                return f"{psutil.Process(c.pid).name()} (pid {c.pid})"
            except psutil.Error:
                return f"pid {c.pid}"
    # Fall back to a bind test: it also catches listeners psutil may not see.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host or "127.0.0.1", port))
        except OSError:
            return "an unknown process"
    return None


def ensure_port_free(
    service: str, port: int, *, grace_s: float = 0.0, host: str | None = None
) -> None:
    """Raise PortInUseError when `port` is taken. ``grace_s``: how long a port may stay taken
    before that counts — a process just stopped can hold its listening socket for a moment
    while the kernel tears it down (seen as a listener without a pid)."""
    deadline = time.monotonic() + grace_s
    owner = port_owner(port, host)
    while owner and time.monotonic() < deadline:
        time.sleep(0.2)
        owner = port_owner(port, host)
    if owner:
        raise PortInUseError(
            f"{service} cannot start: port {port} is already in use by {owner}",
            hint=f"stop that process or give {service} another port (see `cdcctl stack up --help`)",
        )


def tcp_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> list[str]:
    try:
        with path.open("r", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except OSError:
        return []


def wait_until(
    name: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    pid: int | None,
    log_file: Path,
    interval: float = 0.5,
) -> float:
    """Poll `ready` until it is true; fail fast if `pid` dies. Returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        try:
            if ready():
                return time.monotonic() - start
        except Exception:  # noqa: S110  # nosec B110  # a probe that raises just means "not ready yet"
            pass
        if pid is not None and not alive(pid):
            reap(pid)
            raise ServiceStartError(
                f"{name} exited during start-up. Last lines of {log_file}:\n"
                + "\n".join(tail(log_file)),
                hint=f"read the whole log with `cdcctl stack logs {name}`",
            )
        if time.monotonic() > deadline:
            raise ServiceStartError(
                f"{name} did not become ready within {timeout:.0f}s. Last lines of {log_file}:\n"
                + "\n".join(tail(log_file)),
                hint=f"read the whole log with `cdcctl stack logs {name}`",
            )
        time.sleep(interval)


def run(
    argv: Sequence[str],
    *,
    timeout: float = 600,
    cwd: Path | None = None,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short command to completion, capturing its output (never raises on exit status)."""
    return subprocess.run(  # argv is built by the project, not a shell
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
        env={**os.environ, **(env or {})},
        user=run_as.uid if run_as else None,
        group=run_as.gid if run_as else None,
        extra_groups=[] if run_as else None,
    )

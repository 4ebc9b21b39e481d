"""Supervision of the local stack's processes: the stack's one lock, spawn-then-wait-ready, pid
files, stop. Every instance (``cassandra``, ``cassandra-2``, ``agent-3``, ``connect-2``…) has its
own pid file and log under the state dir.

Used by the stack service and by `services.local_agents` (which must not import the stack
service), so both start processes the same way and never at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from controlplane.adapters import private_files, processes
from controlplane.core.errors import ServiceStartError
from controlplane.core.stack_model import StackLayout, parse_instance

# Readiness deadlines (s): generous, because a 2-core machine starts JVMs slowly.
READY_TIMEOUT = {
    "postgres": 60,
    "redis": 30,
    "vault": 60,
    "kafka": 120,
    "cassandra": 240,
    "connect": 240,
    "agent": 180,
    "cdc-exporter": 30,
    "prometheus": 60,
    "jaeger": 60,
}


@contextlib.contextmanager
def stack_lock(layout: StackLayout) -> Iterator[None]:
    """One stack operation at a time: concurrent `up`s or agent restarts (two applies) would
    otherwise start a service twice or delete the pid file of the one that runs."""
    lock = layout.root / "run" / "stack.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with private_files.open_append(lock) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ready_timeout(svc: str) -> float:
    """The readiness deadline of an instance: its kind's."""
    return READY_TIMEOUT[parse_instance(svc)[0]]


def pid_of(layout: StackLayout, svc: str) -> int | None:
    return processes.read_pid(layout.pid_file(svc))


def running(layout: StackLayout, svc: str) -> bool:
    return processes.alive(pid_of(layout, svc))


def stop(layout: StackLayout, svc: str, *, sig: int | None = None) -> bool:
    """Stop `svc` if it runs and forget its pid file; True when it was running."""
    pid = pid_of(layout, svc)
    was = processes.alive(pid)
    if was:
        assert pid is not None
        if sig is None:
            processes.stop(pid)
        else:
            processes.stop(pid, sig=sig)
    layout.pid_file(svc).unlink(missing_ok=True)
    return was


def spawn_and_wait(
    layout: StackLayout,
    svc: str,
    argv: list[str],
    ready: Callable[[], bool],
    *,
    run_as: processes.RunAs | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    stdout_file: Path | None = None,
) -> int:
    """Start `svc` detached (pid file, log) and wait until `ready()` within its deadline; on
    failure stop it and remove its pid file, so a failed start leaves nothing running.
    ``stdout_file``: where its output goes when it writes `svc`'s log itself (the agents'
    logback rolls it); failures then show that log's tail."""
    log = layout.log_file(svc)
    pid = processes.spawn(
        svc,
        argv,
        log_file=stdout_file or log,
        pid_file=layout.pid_file(svc),
        run_as=run_as,
        cwd=cwd,
        env=env,
        inherit_env=inherit_env,
    )
    try:
        processes.wait_until(svc, ready, timeout=ready_timeout(svc), pid=pid, log_file=log)
    except ServiceStartError:
        stop_failed(layout, svc, pid)
        raise
    return pid


def stop_failed(layout: StackLayout, svc: str, pid: int) -> None:
    if processes.alive(pid):
        processes.stop(pid, timeout=10)
    layout.pid_file(svc).unlink(missing_ok=True)


# --- small file helpers shared by the stack's modules ------------------------------------------


def read_properties(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def write_private(path: Path, text: str) -> None:
    """`text` to `path`, readable by this user only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)

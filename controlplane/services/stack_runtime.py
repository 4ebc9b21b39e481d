"""What every local service's start shares: the stack's one lock, and spawn-then-wait-ready.

Used by the stack service and by `services.local_agents` (which must not import the stack
service), so both start processes the same way and never at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from controlplane.adapters import processes
from controlplane.core.errors import ServiceStartError
from controlplane.core.stack_model import StackLayout

# Readiness deadlines (s): generous, because a 2-core machine starts JVMs slowly.
READY_TIMEOUT = {
    "postgres": 60,
    "redis": 30,
    "vault": 60,
    "kafka": 120,
    "cassandra": 240,
    "connect": 240,
    "agent": 180,
    "prometheus": 60,
}


@contextlib.contextmanager
def stack_lock(layout: StackLayout) -> Iterator[None]:
    """One stack operation at a time: concurrent `up`s or agent restarts (two applies) would
    otherwise start a service twice or delete the pid file of the one that runs."""
    lock = layout.root / "run" / "stack.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
) -> int:
    """Start `svc` detached (pid file, log) and wait until `ready()` within its deadline; on
    failure stop it and remove its pid file, so a failed start leaves nothing running."""
    log = layout.log_file(svc)
    pid = processes.spawn(
        svc,
        argv,
        log_file=log,
        pid_file=layout.pid_file(svc),
        run_as=run_as,
        cwd=cwd,
        env=env,
        inherit_env=inherit_env,
    )
    try:
        processes.wait_until(svc, ready, timeout=READY_TIMEOUT[svc], pid=pid, log_file=log)
    except ServiceStartError:
        stop_failed(layout, svc, pid)
        raise
    return pid


def stop_failed(layout: StackLayout, svc: str, pid: int) -> None:
    if processes.alive(pid):
        processes.stop(pid, timeout=10)
    layout.pid_file(svc).unlink(missing_ok=True)

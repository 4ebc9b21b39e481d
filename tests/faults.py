"""Faults for a local stack's services, by instance name: ``postgres``, ``kafka``, ``cassandra``,
``cassandra-2``, ``agent``, ``agent-2``, ``connect``, ``connect-2``... (core.stack_model's names).
Shared by the chaos suite (tests/chaos) and the cluster suite (tests/cluster).

Every wait has a deadline; a helper that cannot do what it says raises ``FaultError``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from controlplane.adapters import processes
from controlplane.services import stack_runtime
from controlplane.services.stack import LocalStack


class FaultError(AssertionError):
    pass


@dataclass(frozen=True)
class Restart:
    service: str
    seconds: float
    """Wall time of `cdcctl stack up SERVICE`: what it takes until the service is ready again."""
    output: str


def pid(stack: LocalStack, service: str) -> int:
    found = stack_runtime.pid_of(stack.lay, service)
    if found is None or not processes.alive(found):
        raise FaultError(f"{service} is not running in {stack.lay.root}")
    return found


def running(stack: LocalStack, service: str) -> bool:
    return stack_runtime.running(stack.lay, service)


def kill(stack: LocalStack, service: str, sig: int = signal.SIGKILL, timeout: float = 60) -> float:
    """Send ``sig`` (default: kill -9) to the service's process and wait until it is gone.
    Returns the monotonic time the signal was sent. PostgreSQL: SIGINT (fast shutdown) or
    SIGQUIT (immediate, a crash: recovery at the next start); a SIGKILL of the postmaster leaves
    its backends holding the shared memory, and the next start refuses to run."""
    target = pid(stack, service)
    sent = time.monotonic()
    os.kill(target, sig)
    deadline = sent + timeout
    while processes.alive(target):
        if time.monotonic() > deadline:
            raise FaultError(
                f"{service} (pid {target}) still alive {timeout:.0f}s after signal {sig}"
            )
        processes.reap(target)
        time.sleep(0.05)
    return sent


def restart(stack: LocalStack, *services: str, timeout: float = 900) -> Restart:
    """``cdcctl stack up SERVICE...`` as an operator runs it (services already running are left
    alone). Raises FaultError with its output when it fails."""
    cmd = [sys.executable, "-m", "controlplane", "stack", "up", *services]
    cmd += ["--state-dir", str(stack.lay.root)]
    began = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.monotonic() - began
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise FaultError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{output[-3000:]}")
    for service in services:
        if not running(stack, service):
            raise FaultError(f"{service} is not running after `stack up`:\n{output[-3000:]}")
    return Restart(" ".join(services), seconds, output)


@contextlib.contextmanager
def frozen(stack: LocalStack, service: str) -> Iterator[int]:
    """SIGSTOP the service for the block (connections stay open, nothing answers), then SIGCONT
    unless it was killed meanwhile."""
    target = pid(stack, service)
    os.kill(target, signal.SIGSTOP)
    try:
        yield target
    finally:
        if processes.alive(target):
            os.kill(target, signal.SIGCONT)


def outage(
    stack: LocalStack, service: str, seconds: float, sig: int = signal.SIGKILL
) -> tuple[float, Restart]:
    """Stop the service with ``sig``, keep it down ``seconds`` (counted from the signal), start it
    again with ``cdcctl stack up``. Returns (monotonic time it was back, the restart)."""
    return resume_after(stack, service, kill(stack, service, sig), seconds)


def resume_after(
    stack: LocalStack, service: str, sent: float, seconds: float
) -> tuple[float, Restart]:
    """Keep a stopped service down until ``seconds`` after ``sent`` (monotonic), then start it
    with ``cdcctl stack up``. Returns (monotonic time it was back, the restart)."""
    remaining = sent + seconds - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)  # the outage itself: its length is the point, not a wait for a state
    back = restart(stack, service)
    return time.monotonic(), back

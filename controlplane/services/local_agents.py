"""The local stack's Debezium agent as `cdcctl apply` manages it (agent mode ``managed``): which
properties file it runs with, whether it runs, and a restart that picks up new settings.

Starting the agent is the stack's recipe (services.stack), which commands other than
`cdcctl stack` never import: a restart stops the process here and asks `cdcctl stack up agent`,
in a child process, to start it again — the one place the agent's command line is built."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess  # nosec B404  # argv lists only, never a shell
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from controlplane.adapters import processes
from controlplane.core.errors import StackError
from controlplane.core.stack_model import StackSettings

START_TIMEOUT_S = 300


class LocalAgents:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.layout = settings.layout

    @property
    def _pointer(self) -> Path:
        return self.layout.service_dir("agent") / "active-properties"

    def properties_path(self) -> Path:
        """The properties file the agent runs with: the stack's default until `cdcctl apply`
        points it at a pipeline's."""
        try:
            text = self._pointer.read_text().strip()
        except OSError:
            text = ""
        return Path(text) if text else self.layout.config_dir / "agent.properties"

    def use_properties(self, path: Path) -> None:
        self._pointer.parent.mkdir(parents=True, exist_ok=True)
        self._pointer.write_text(f"{path}\n")

    def running(self) -> bool:
        return processes.alive(processes.read_pid(self.layout.pid_file("agent")))

    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ports.agent_http}"

    def restart(self, before_start: Callable[[], None] | None = None) -> None:
        """Stop the agent, run ``before_start`` while it is stopped (e.g. to edit its offset
        files), start it again and wait until it is healthy."""
        with self._locked():
            pid = processes.read_pid(self.layout.pid_file("agent"))
            if processes.alive(pid):
                assert pid is not None
                processes.stop(pid)
            self.layout.pid_file("agent").unlink(missing_ok=True)
            if before_start is not None:
                before_start()
        argv = [
            sys.executable,
            "-m",
            "controlplane",
            "stack",
            "up",
            "agent",
            "--state-dir",
            str(self.layout.root),
            "-o",
            "json",
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(
                f"the local agent did not start within {START_TIMEOUT_S}s",
                hint="`cdcctl stack logs agent` says why",
            ) from exc
        if done.returncode != 0:
            raise StackError(
                f"the local agent did not start again: {done.stderr.strip()[-500:]}",
                hint="`cdcctl stack logs agent` says why; `cdcctl stack up` starts it",
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The stack's lock: no `stack up` starts the agent while it is being stopped."""
        lock = self.layout.root / "run" / "stack.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

"""The local stack's Debezium Cassandra agent as `cdcctl apply` sees it: which properties it runs
with, whether it runs, and a restart that picks up new settings.

This is the agent's one start recipe: `LocalStack` starts the agent through it too. It does not
import the stack service (an import-linter contract keeps apply away from it), only the shared
runtime (the stack's lock, spawn-and-wait) and the settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from controlplane.adapters import maven, processes, system
from controlplane.core.errors import StackError
from controlplane.core.stack_model import StackLayout, StackSettings, agent_command
from controlplane.services.stack_runtime import spawn_and_wait, stack_lock
from controlplane.services.stack_settings import repo_root

Reporter = Callable[[str, str], None]
SERVICE = "agent"


class LocalAgents:
    """The agent of the local stack described by `settings` (one node, one agent)."""

    def __init__(self, settings: StackSettings, *, report: Reporter | None = None) -> None:
        self.s = settings
        self.lay: StackLayout = settings.layout
        self._report = report or (lambda _svc, _msg: None)

    # The agent's properties: the stack's default until `cdcctl apply` points it at a pipeline's.
    @property
    def _pointer(self) -> Path:
        return self.lay.service_dir(SERVICE) / "active-properties"

    def properties_path(self) -> Path:
        """The properties file the agent runs (or will run) with."""
        try:
            text = self._pointer.read_text().strip()
        except OSError:
            text = ""
        return Path(text) if text else self.lay.config_dir / "agent.properties"

    def use_properties(self, path: Path) -> None:
        """Run the agent with `path` from its next start on."""
        self._pointer.parent.mkdir(parents=True, exist_ok=True)
        self._pointer.write_text(f"{path}\n")

    def running(self) -> bool:
        return processes.alive(processes.read_pid(self.lay.pid_file(SERVICE)))

    def http_url(self) -> str:
        """The agent's HTTP endpoint (``/health``, ``/ping``)."""
        return f"http://127.0.0.1:{self.s.ports.agent_http}"

    def restart(self, before_start: Callable[[], None] | None = None) -> None:
        """Restart the agent so it picks up new settings (used by `cdcctl apply`);
        ``before_start`` runs while it is stopped (e.g. to edit its offset files). Holds the
        stack's lock, so it never races a `stack up` or another restart."""
        with stack_lock(self.lay):
            pid = processes.read_pid(self.lay.pid_file(SERVICE))
            if processes.alive(pid):
                assert pid is not None
                processes.stop(pid)
            self.lay.pid_file(SERVICE).unlink(missing_ok=True)
            if before_start is not None:
                before_start()
            self._report(SERVICE, "starting")
            took = self.start()
            self._report(SERVICE, f"ready in {took:.1f}s")

    def start(self, *, java: Path | None = None, lib: Path | None = None) -> float:
        """The recipe: start the agent beside the Cassandra node and wait for ``/health``.
        The caller holds the stack's lock; `java` and the agent's `lib` dir are found when not
        given. Returns the seconds it took."""
        started = time.monotonic()
        # grace: a restart has just stopped the previous agent, whose socket may linger briefly
        processes.ensure_port_free(SERVICE, self.s.ports.agent_http, grace_s=30.0)
        properties = self.properties_path()
        needed = [self.lay.config_dir / "cassandra.yaml", properties]
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            raise StackError(
                f"the agent cannot start: {', '.join(missing)} missing",
                hint="`cdcctl stack up` renders the stack's configs (and starts Cassandra)",
            )
        if java is None:
            java = system.find_jdk(17).java
        if lib is None:
            native = repo_root() / "compose" / "native"
            self._report(SERVICE, "resolving Maven artifacts (agent)")
            lib = maven.resolve(native / "agent" / "pom.xml", native / "pom.xml", "agent")
        adir = self.lay.service_dir(SERVICE)
        for sub in ("relocation", "offsets"):
            (adir / sub).mkdir(parents=True, exist_ok=True)
        url = self.http_url()
        spawn_and_wait(
            self.lay,
            SERVICE,
            agent_command(java, lib, self.s, properties),
            lambda: httpx.get(f"{url}/health", timeout=3).status_code == 200,
            cwd=adir,
        )
        return time.monotonic() - started

"""The local stack's Debezium Cassandra agents — one per Cassandra node — as `cdcctl apply`
sees them: which properties each runs with, whether they run, and a restart that picks up new
settings.

This is the agents' one start recipe: `LocalStack` starts them through it too. It does not
import the stack service (an import-linter contract keeps apply away from it), only the shared
runtime (the stack's lock, spawn-and-wait) and the settings. Agent i (``agent``, ``agent-2``, …)
runs beside node i (127.0.0.i) with ``cassandra.node.id`` ``node<i>``, its own HTTP port, its own
cassandra.yaml, driver config, offsets and relocation dirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from controlplane.adapters import maven, processes, system
from controlplane.adapters.agent_health import AgentHttpClient
from controlplane.core.errors import StackError
from controlplane.core.stack_model import (
    AGENT_CASSANDRA_PASSWORD_ENV,
    AGENT_TRUSTSTORE_PASSWORD_ENV,
    StackLayout,
    StackSettings,
    agent_command,
    instance_name,
    node_id,
)
from controlplane.services import stack_runtime
from controlplane.services.stack_runtime import spawn_and_wait, stack_lock
from controlplane.services.stack_settings import repo_root

Reporter = Callable[[str, str], None]
SERVICE = "agent"


class LocalAgent:
    """The agent beside Cassandra node `node` of the local stack."""

    def __init__(self, settings: StackSettings, node: int, report: Reporter) -> None:
        self.s = settings
        self.lay: StackLayout = settings.layout
        self.node = node
        self.name = instance_name(SERVICE, node)
        self._report = report

    @property
    def node_id(self) -> str:
        return node_id(self.node)

    @property
    def http_port(self) -> int:
        return self.s.ports.agent_http_of(self.node)

    @property
    def cassandra_config(self) -> Path:
        """The cassandra.yaml of its node (where the agent finds commit log and cdc_raw)."""
        return self.lay.cassandra_yaml(self.node)

    # Its properties: the stack's default until `cdcctl apply` points it at a pipeline's.
    @property
    def _pointer(self) -> Path:
        return self.lay.service_dir(self.name) / "active-properties"

    def properties_path(self) -> Path:
        """The properties file the agent runs (or will run) with."""
        try:
            text = self._pointer.read_text().strip()
        except OSError:
            text = ""
        return Path(text) if text else self.lay.agent_properties(self.node)

    def use_properties(self, path: Path) -> None:
        """Run the agent with `path` from its next start on."""
        self._pointer.parent.mkdir(parents=True, exist_ok=True)
        self._pointer.write_text(f"{path}\n")

    def running(self) -> bool:
        return stack_runtime.running(self.lay, self.name)

    def http_url(self) -> str:
        """The agent's HTTP endpoint (``/health``, ``/ping``)."""
        return f"http://127.0.0.1:{self.http_port}"

    def healthy(self) -> bool:
        with AgentHttpClient(self.http_url(), timeout=3) as client:
            return client.health().healthy

    def stop(self) -> None:
        stack_runtime.stop(self.lay, self.name)

    def start(self, *, java: Path | None = None, lib: Path | None = None) -> float:
        """The recipe: start the agent beside its Cassandra node and wait for ``/health``.
        The caller holds the stack's lock; `java` and the agent's `lib` dir are found when not
        given. Returns the seconds it took."""
        started = time.monotonic()
        # grace: a restart has just stopped the previous agent, whose socket may linger briefly
        processes.ensure_port_free(self.name, self.http_port, grace_s=30.0)
        properties = self.properties_path()
        needed = [
            self.cassandra_config,
            self.lay.agent_logback(self.node),
            properties,
            self.lay.jmx_exporter_jar,
        ]
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            raise StackError(
                f"{self.name} cannot start: {', '.join(missing)} missing",
                hint="`cdcctl stack up` renders the stack's configs (and starts Cassandra)",
            )
        if java is None:
            java = system.find_jdk(17).java
        if lib is None:
            lib = resolve_agent_lib(self._report, self.s)
        adir = self.lay.service_dir(self.name)
        for sub in ("relocation", "offsets"):
            (adir / sub).mkdir(parents=True, exist_ok=True)
        spawn_and_wait(
            self.lay,
            self.name,
            agent_command(java, lib, self.s, properties, self.node),
            self.healthy,
            cwd=adir,
            env=agent_env(self.s),
            # logback rolls logs/<agent>.log itself (size-capped); the JVM's own output
            # (start-up failures) goes beside it.
            stdout_file=self.lay.stdout_file(self.name),
        )
        return time.monotonic() - started


def agent_env(s: StackSettings) -> dict[str, str]:
    """The secrets an agent's driver config names as environment variables (decision 0110):
    its Cassandra role's password and the trust store's password; none with --insecure."""
    if not s.tls:
        return {}
    lay = s.layout
    return {
        AGENT_CASSANDRA_PASSWORD_ENV: stack_runtime.read_properties(lay.cassandra_agent_file).get(
            "password", ""
        ),
        AGENT_TRUSTSTORE_PASSWORD_ENV: (
            stack_runtime.read_text(lay.cassandra_store_password_file) or ""
        ).strip(),
    }


def resolve_agent_lib(report: Reporter, s: StackSettings) -> Path:
    """The agent's classpath for the stack's Cassandra version (compose/native/agent or agent41)."""
    native = repo_root() / "compose" / "native"
    part = s.flavour.agent_part
    report(SERVICE, f"resolving Maven artifacts ({part})")
    return maven.resolve(native / part / "pom.xml", native / "pom.xml", part)


class LocalAgents:
    """Every agent of the local stack described by `settings` (one per Cassandra node). The
    single-agent methods (`properties_path`, `use_properties`, `http_url`) are node 1's."""

    def __init__(self, settings: StackSettings, *, report: Reporter | None = None) -> None:
        self.s = settings
        self.lay: StackLayout = settings.layout
        self._report = report or (lambda _svc, _msg: None)
        self._agents = [
            LocalAgent(settings, node, self._report) for node in range(1, settings.nodes + 1)
        ]

    def nodes(self) -> list[LocalAgent]:
        """One agent per node, node 1 first."""
        return list(self._agents)

    def agent(self, node: int) -> LocalAgent:
        return self._agents[node - 1]

    def properties_path(self) -> Path:
        return self._agents[0].properties_path()

    def use_properties(self, path: Path) -> None:
        self._agents[0].use_properties(path)

    def http_url(self) -> str:
        return self._agents[0].http_url()

    def http_urls(self) -> list[str]:
        return [a.http_url() for a in self._agents]

    def running(self) -> bool:
        """Every agent runs."""
        return all(a.running() for a in self._agents)

    def restart(self, before_start: Callable[[], None] | None = None) -> None:
        """Restart every agent so they pick up new settings (used by `cdcctl apply`);
        ``before_start`` runs while all are stopped (e.g. to edit their offset files). Holds the
        stack's lock, so it never races a `stack up` or another restart. The agents start one
        after the other (each JVM start is CPU-bound)."""
        with stack_lock(self.lay):
            for a in self._agents:
                a.stop()
            if before_start is not None:
                before_start()
            java = lib = None
            for a in self._agents:
                if java is None:
                    java = system.find_jdk(17).java
                    lib = resolve_agent_lib(self._report, self.s)
                self._report(a.name, "starting")
                took = a.start(java=java, lib=lib)
                self._report(a.name, f"ready in {took:.1f}s")

    def start(self, *, java: Path | None = None, lib: Path | None = None) -> float:
        """Start node 1's agent (the caller holds the stack's lock)."""
        return self._agents[0].start(java=java, lib=lib)

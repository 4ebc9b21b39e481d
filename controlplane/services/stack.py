"""`cdcctl stack`: bring the real components up natively, in order, each gated on readiness."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import subprocess  # nosec B404  # only for TimeoutExpired of processes.run
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import jinja2

from controlplane.adapters import cassandra, kafka, maven, postgres, processes, redis_store, system
from controlplane.core.errors import ServiceStartError, StackError, UsageError
from controlplane.core.stack_model import (
    JVM_SERVICES,
    SERVICE_ORDER,
    StackLayout,
    StackSettings,
    agent_command,
    cassandra_command,
    connect_command,
    kafka_command,
    kafka_format_command,
    openssl_ca_command,
    openssl_csr_command,
    openssl_sign_command,
    pom_properties,
    postgres_command,
    prometheus_command,
    prometheus_version,
    redis_command,
    server_cert_extensions,
    template_context,
)

Reporter = Callable[[str, str], None]

# Readiness deadlines (s): generous, because a 2-core machine starts JVMs slowly.
READY_TIMEOUT = {
    "postgres": 60,
    "redis": 30,
    "kafka": 120,
    "cassandra": 240,
    "connect": 240,
    "agent": 180,
    "prometheus": 60,
}
# Services installed from Debian packages (apt) rather than resolved by Maven.
DEBIAN_SERVICES = frozenset({"postgres", "redis", "prometheus"})
JDBC_SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
TRANSFORM_CLASS = "io.casscdcpg.transforms.CassandraToRow"


def repo_root() -> Path:
    """The checkout holding compose/ and transforms/ (cdcctl is installed editable from it)."""
    env = os.environ.get("CDC_REPO_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def default_state_dir() -> Path:
    return Path(os.environ.get("CDC_STACK_DIR", repo_root() / ".stack")).resolve()


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str
    version: str
    port: int
    pid: int | None
    rss_mib: float | None


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


class LocalStack:
    def __init__(self, settings: StackSettings, *, report: Reporter | None = None) -> None:
        self.s = settings
        self.lay: StackLayout = settings.layout
        self.root = repo_root()
        self.native = self.root / "compose" / "native"
        self._report = report or (lambda _svc, _msg: None)
        self._jdk: system.Jdk | None = None
        self._libs: dict[str, Path] = {}

    # ----------------------------------------------------------------- public verbs
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One stack operation at a time: concurrent `up`s or agent restarts (two applies) would
        otherwise start a service twice or delete the pid file of the one that runs."""
        lock = self.lay.root / "run" / "stack.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def up(self, services: list[str] | None = None) -> list[StartResult]:
        with self._locked():
            return self._up(services)

    def _up(self, services: list[str] | None) -> list[StartResult]:
        wanted = self._select(services)
        results: list[StartResult] = []
        todo = [svc for svc in wanted if not processes.alive(self._pid(svc))]
        if todo:
            self._prepare(todo)
        for svc in wanted:
            if processes.alive(self._pid(svc)):
                if svc == "postgres" and not self.postgres_tls_started():
                    self._report(
                        svc,
                        "running from before TLS (plain TCP accepted): "
                        "`cdcctl stack down && cdcctl stack up` restarts it with TLS only",
                    )
                results.append(StartResult(svc, "already running", 0.0))
                continue
            self._report(svc, "starting")
            took = self._start(svc)
            self._report(svc, f"ready in {took:.1f}s")
            results.append(StartResult(svc, "started", took))
        return results

    def down(self, *, clean: bool = False) -> list[str]:
        stopped = []
        for svc in reversed(SERVICE_ORDER):
            pid = self._pid(svc)
            if processes.alive(pid):
                assert pid is not None
                self._report(svc, "stopping")
                processes.stop(pid, sig=signal.SIGINT if svc == "postgres" else signal.SIGTERM)
                stopped.append(svc)
            self.lay.pid_file(svc).unlink(missing_ok=True)
        if clean:
            pg = self.lay.service_dir("postgres")
            if pg.is_symlink():
                shutil.rmtree(pg.resolve(), ignore_errors=True)
            shutil.rmtree(self.lay.root, ignore_errors=True)
        return stopped

    def status(self) -> list[ServiceStatus]:
        versions = self.versions()
        out = []
        for svc in SERVICE_ORDER:
            pid = self._pid(svc)
            if processes.alive(pid):
                state = "running"
            elif pid is not None:
                state = "dead"
            else:
                state = "stopped"
            rss = processes.rss_bytes(pid) if state == "running" else None
            out.append(
                ServiceStatus(
                    name=svc,
                    state=state,
                    version=versions.get(svc, "?"),
                    port=self.s.ports.of(svc)[0],
                    pid=pid if state != "stopped" else None,
                    rss_mib=round(rss / 2**20, 1) if rss else None,
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
            redis_url=f"redis://127.0.0.1:{p.redis}/0",
            kafka_bootstrap=f"127.0.0.1:{p.kafka}",
            cassandra_host="127.0.0.1",
            cassandra_port=p.cassandra,
            connect_url=f"http://127.0.0.1:{p.connect}",
            agent_url=f"http://127.0.0.1:{p.agent_http}",
            prometheus_url=f"http://127.0.0.1:{p.prometheus}",
        )

    def versions(self) -> dict[str, str]:
        props = pom_properties((self.native / "pom.xml").read_text())
        pg = system.postgres_bindir()
        prom = system.prometheus_server()
        return {
            "postgres": pg.parent.name if pg else "not installed",
            "redis": "debian",
            "kafka": props.get("version.kafka", "?"),
            "connect": props.get("version.kafka", "?"),
            "cassandra": props.get("version.cassandra", "?"),
            "agent": props.get("version.debezium.cassandra", "?"),
            "prometheus": _prometheus_version(prom) if prom else "not installed",
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
        return _read_properties(self.lay.postgres_secret_file).get("password", "")

    # ----------------------------------------------------------------- preparation
    def _select(self, services: list[str] | None) -> list[str]:
        if not services:
            return list(SERVICE_ORDER)
        unknown = [s for s in services if s not in SERVICE_ORDER]
        if unknown:
            raise UsageError(
                f"unknown service(s): {', '.join(unknown)}",
                hint=f"services are: {', '.join(SERVICE_ORDER)}",
            )
        # Keep dependency order whatever order the user typed.
        return [s for s in SERVICE_ORDER if s in services]

    def _pid(self, svc: str) -> int | None:
        return processes.read_pid(self.lay.pid_file(svc))

    def _prepare(self, todo: list[str]) -> None:
        for d in ("logs", "run", "config", "secrets"):
            (self.lay.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.lay.secrets_dir, 0o700)
        missing = system.missing_debian_packages()
        if missing and DEBIAN_SERVICES & set(todo):
            self._report("stack", f"installing Debian packages: {', '.join(missing)}")
            system.install_debian_packages(missing, self.lay.log_file("apt"))
        if JVM_SERVICES & set(todo):
            self._jdk = system.find_jdk(17)
            self._resolve_artifacts(todo)
        self._write_secrets()
        if "postgres" in todo:
            self._write_postgres_tls()
        self._render_configs()

    def _resolve_artifacts(self, todo: list[str]) -> None:
        parent = self.native / "pom.xml"
        parts = {"kafka": "kafka", "connect": "kafka", "cassandra": "cassandra", "agent": "agent"}
        for svc in todo:
            part = parts.get(svc)
            if part and part not in self._libs:
                self._report(svc, f"resolving Maven artifacts ({part})")
                self._libs[part] = maven.resolve(self.native / part / "pom.xml", parent, part)
        if "connect" in todo:
            self._report("connect", "resolving Connect plugins")
            plugins = maven.resolve(self.native / "plugins" / "pom.xml", parent, "plugins")
            self._libs["plugins"] = plugins
            self._install_plugins(plugins)

    def _install_plugins(self, plugin_artifacts: Path) -> None:
        """plugin.path gets the JDBC sink archive, unpacked, and the project's own SMT jar."""
        pdir = self.lay.plugins_dir
        pdir.mkdir(parents=True, exist_ok=True)
        archive = next(plugin_artifacts.glob("debezium-connector-jdbc-*-plugin.tar.gz"), None)
        if archive is None:
            raise StackError(f"no JDBC sink plugin archive in {plugin_artifacts}")
        unpacked = maven.unpack_tar(
            archive, maven.cache_root() / "plugins" / archive.name.removesuffix(".tar.gz")
        )
        _replace_symlink(pdir / "debezium-connector-jdbc", next(unpacked.iterdir()))
        self._report("connect", "building the project's transform (transforms/)")
        jar = maven.build_project(
            self.root / "transforms" / "pom.xml",
            "target/cass-cdc-pg-transforms.jar",
            "transforms",
        )
        own = pdir / "cass-cdc-pg-transforms"
        own.mkdir(exist_ok=True)
        for old in own.glob("*.jar"):
            old.unlink()
        shutil.copy2(jar, own / jar.name)

    def _write_secrets(self) -> None:
        """Throwaway local credentials, generated once, readable only by this user."""
        f = self.lay.postgres_secret_file
        if not f.exists():
            _write_private(
                f, f"user={self.s.postgres_user}\npassword={secrets.token_urlsafe(24)}\n"
            )
        admin = self.lay.secrets_dir / "postgres-admin.properties"
        if not admin.exists():
            _write_private(admin, f"user=postgres\npassword={secrets.token_urlsafe(24)}\n")

    def _write_postgres_tls(self) -> None:
        """A throwaway CA and a server certificate for localhost/127.0.0.1/::1, generated once
        with the openssl CLI; private keys 0600 (decision 0060)."""
        lay = self.lay
        if not (lay.postgres_ca_file.exists() and lay.postgres_ca_key.exists()):
            self._report("postgres", "generating a local CA for TLS")
            _openssl(openssl_ca_command(lay.postgres_ca_key, lay.postgres_ca_file))
            lay.postgres_server_cert.unlink(missing_ok=True)  # signed by the old CA, if any
        if not (lay.postgres_server_cert.exists() and lay.postgres_server_key.exists()):
            self._report("postgres", "generating its TLS server certificate")
            csr = lay.secrets_dir / "postgres-server.csr"
            ext = lay.secrets_dir / "postgres-server.ext"
            ext.write_text(server_cert_extensions())
            try:
                _openssl(openssl_csr_command(lay.postgres_server_key, csr))
                _openssl(
                    openssl_sign_command(
                        csr,
                        lay.postgres_ca_file,
                        lay.postgres_ca_key,
                        lay.postgres_server_cert,
                        ext,
                    )
                )
            finally:
                csr.unlink(missing_ok=True)
                ext.unlink(missing_ok=True)
        for key in (lay.postgres_ca_key, lay.postgres_server_key):
            os.chmod(key, 0o600)

    def _render_configs(self) -> None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.native / "config"),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701  # nosec B701  # renders properties/YAML files, not HTML
        )
        ctx = template_context(self.s)
        for tpl in env.list_templates():
            src = self.native / "config" / tpl
            if tpl.endswith(".j2"):
                text = env.get_template(tpl).render(**ctx)
                (self.lay.config_dir / tpl.removesuffix(".j2")).write_text(text)
            else:
                shutil.copy2(src, self.lay.config_dir / tpl)
        # Prometheus evaluates the project's own alert rules, the ones promtool checks.
        shutil.copy2(self.root / "dashboards" / "alerts.yml", self.lay.config_dir / "alerts.yml")

    # ----------------------------------------------------------------- start one service
    def _start(self, svc: str) -> float:
        for port in self.s.ports.of(svc):
            processes.ensure_port_free(svc, port)
        start = time.monotonic()
        getattr(self, f"_start_{svc}")()
        return time.monotonic() - start

    def _spawn_and_wait(
        self,
        svc: str,
        argv: list[str],
        ready: Callable[[], bool],
        *,
        run_as: processes.RunAs | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        log = self.lay.log_file(svc)
        pid = processes.spawn(
            svc,
            argv,
            log_file=log,
            pid_file=self.lay.pid_file(svc),
            run_as=run_as,
            cwd=cwd,
            env=env,
        )
        try:
            processes.wait_until(svc, ready, timeout=READY_TIMEOUT[svc], pid=pid, log_file=log)
        except ServiceStartError:
            if processes.alive(pid):
                processes.stop(pid, timeout=10)
            self.lay.pid_file(svc).unlink(missing_ok=True)
            raise

    def _java(self) -> Path:
        if self._jdk is None:
            self._jdk = system.find_jdk(17)
        return self._jdk.java

    def _start_postgres(self) -> None:
        bindir = system.postgres_bindir()
        if bindir is None:
            raise StackError("PostgreSQL is not installed", hint="apt-get install postgresql")
        run_as = _postgres_user() if os.geteuid() == 0 else None
        # Resolved paths: the postgres user may not be able to traverse the state dir's own path.
        pgdir = self._postgres_dir(run_as)
        data = pgdir / "data"
        sock = pgdir / "run"
        sock.mkdir(parents=True, exist_ok=True)
        if run_as:
            _chown_tree(pgdir, run_as)
        admin_pw = _read_properties(self.lay.secrets_dir / "postgres-admin.properties")["password"]
        if not (data / "PG_VERSION").exists():
            self._report("postgres", "initdb")
            pwfile = pgdir / ".pwfile"
            pwfile.write_text(admin_pw + "\n")
            os.chmod(pwfile, 0o600)
            if run_as:
                os.chown(pwfile, run_as.uid, run_as.gid)
            out = processes.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                ],
                run_as=run_as,
                timeout=300,
                cwd=pgdir,
            )
            pwfile.unlink(missing_ok=True)
            if out.returncode != 0:
                raise ServiceStartError(f"initdb failed: {(out.stdout + out.stderr)[-1500:]}")
        conf = self._postgres_conf(pgdir, run_as)
        argv = postgres_command(bindir, self.s, data, sock, conf)
        admin = postgres.dsn(str(sock), self.s.ports.postgres, "postgres", "postgres")
        self._spawn_and_wait(
            "postgres", argv, lambda: bool(postgres.ping(admin)), run_as=run_as, cwd=pgdir
        )
        postgres.ensure_role_and_database(
            admin, self.s.postgres_user, self.postgres_password(), self.s.postgres_database
        )

    def _postgres_conf(self, pgdir: Path, run_as: processes.RunAs | None) -> Path:
        """pg_hba.conf and the server's certificate and key where PostgreSQL can read them: the
        secrets dir (0700) is not reachable by the postgres user, so they are copied at each start,
        owned by that user, the key 0600 (PostgreSQL refuses a key others can read)."""
        conf = pgdir / "conf"
        conf.mkdir(exist_ok=True)
        os.chmod(conf, 0o700)
        copies = {
            "pg_hba.conf": (self.lay.config_dir / "pg_hba.conf", 0o600),
            "server.crt": (self.lay.postgres_server_cert, 0o644),
            "server.key": (self.lay.postgres_server_key, 0o600),
        }
        for name, (src, mode) in copies.items():
            dst = conf / name
            dst.unlink(missing_ok=True)
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(src.read_bytes())
            if run_as:
                os.chown(dst, run_as.uid, run_as.gid)
        if run_as:
            os.chown(conf, run_as.uid, run_as.gid)
        return conf

    def _postgres_dir(self, run_as: processes.RunAs | None) -> Path:
        """PostgreSQL's state; when the checkout is not reachable by the postgres user (e.g. under
        /root), it lives in /var/tmp and the state dir holds a symlink to it."""
        pgdir = self.lay.service_dir("postgres")
        if run_as is None or pgdir.is_symlink() or _traversable_by_others(self.lay.root):
            pgdir.mkdir(parents=True, exist_ok=True)
            return pgdir.resolve()
        # A fixed /var/tmp path on purpose: it outlives reboots (unlike /tmp), the postgres user can
        # reach it, and each checkout gets its own subdirectory (keyed by its path).
        outside = Path("/var/tmp/cass-cdc-pg")  # noqa: S108  # nosec B108
        outside = outside / maven.content_key_text(str(self.lay.root))
        outside.mkdir(parents=True, exist_ok=True)
        os.chmod(outside.parent, 0o755)  # noqa: S103  # nosec B103  # postgres user must traverse it
        if pgdir.exists():
            shutil.rmtree(pgdir)
        pgdir.symlink_to(outside)
        return outside

    def _start_redis(self) -> None:
        server = system.redis_server()
        if server is None:
            raise StackError("redis-server is not installed", hint="apt-get install redis-server")
        self.lay.data_dir("redis").mkdir(parents=True, exist_ok=True)
        url = f"redis://127.0.0.1:{self.s.ports.redis}/0"
        self._spawn_and_wait(
            "redis", redis_command(server, self.s), lambda: bool(redis_store.ping(url))
        )

    def _start_kafka(self) -> None:
        lib = self._libs["kafka"]
        kdir = self.lay.service_dir("kafka")
        (kdir / "data").mkdir(parents=True, exist_ok=True)
        if not (kdir / "data" / "meta.properties").exists():
            cid_file = kdir / "cluster-id"
            if not cid_file.exists():
                cid_file.write_text(_kafka_cluster_id() + "\n")
            out = processes.run(
                kafka_format_command(self._java(), lib, self.s, cid_file.read_text().strip()),
                timeout=300,
            )
            if out.returncode != 0:
                raise ServiceStartError(
                    f"formatting Kafka's KRaft storage failed: {(out.stdout + out.stderr)[-1500:]}"
                )
        bootstrap = f"127.0.0.1:{self.s.ports.kafka}"
        self._spawn_and_wait(
            "kafka",
            kafka_command(self._java(), lib, self.s),
            lambda: kafka.ping(bootstrap, timeout=2) > 0,
        )

    def _start_cassandra(self) -> None:
        lib = self._libs["cassandra"]
        jamm = next(lib.glob("jamm-*.jar"), None)
        if jamm is None:
            raise StackError(f"jamm agent jar missing from {lib}")
        (self.lay.service_dir("cassandra") / "logs").mkdir(parents=True, exist_ok=True)
        port = self.s.ports.cassandra
        self._spawn_and_wait(
            "cassandra",
            cassandra_command(self._java(), lib, self.s, jamm),
            lambda: bool(cassandra.ping("127.0.0.1", port)),
            cwd=self.lay.service_dir("cassandra"),
        )

    def _start_connect(self) -> None:
        url = f"http://127.0.0.1:{self.s.ports.connect}"

        metrics = f"http://127.0.0.1:{self.s.ports.connect_metrics}/metrics"
        exporter = next(self._libs["plugins"].glob("jmx_prometheus_javaagent-*.jar"), None)
        if exporter is None:
            raise StackError(f"the JMX exporter agent jar is missing from {self._libs['plugins']}")

        def ready() -> bool:
            r = httpx.get(f"{url}/connector-plugins?connectorsOnly=false", timeout=3)
            names = {p.get("class") for p in r.json()} if r.status_code == 200 else set()
            return (
                JDBC_SINK_CLASS in names
                and TRANSFORM_CLASS in names
                and httpx.get(metrics, timeout=3).status_code == 200
            )

        argv = connect_command(self._java(), self._libs["kafka"], self.s, exporter)
        # The worker resolves ${env:CDC_PG_PASSWORD} of the local pipelines itself (decision
        # 0070): the stack hands it the generated password, as a deployment hands its workers
        # their secrets; cdcctl never writes a secrets file for Connect.
        env = {**os.environ, "CDC_PG_PASSWORD": self.postgres_password()}
        self._spawn_and_wait("connect", argv, ready, env=env)

    def _start_agent(self) -> None:
        adir = self.lay.service_dir("agent")
        for sub in ("relocation", "offsets"):
            (adir / sub).mkdir(parents=True, exist_ok=True)
        url = f"http://127.0.0.1:{self.s.ports.agent_http}"
        self._spawn_and_wait(
            "agent",
            agent_command(self._java(), self._libs["agent"], self.s, self.agent_properties_path()),
            lambda: httpx.get(f"{url}/health", timeout=3).status_code == 200,
            cwd=adir,
        )

    def _start_prometheus(self) -> None:
        server = system.prometheus_server()
        if server is None:
            raise StackError("prometheus is not installed", hint="apt-get install prometheus")
        data = self.lay.data_dir("prometheus")
        data.mkdir(parents=True, exist_ok=True)
        url = f"http://127.0.0.1:{self.s.ports.prometheus}"
        self._spawn_and_wait(
            "prometheus",
            prometheus_command(server, self.s),
            # Ready = TSDB open (WAL replayed) and config with its rule files loaded.
            lambda: httpx.get(f"{url}/-/ready", timeout=3).status_code == 200,
            cwd=self.lay.service_dir("prometheus"),
        )

    # The agent's properties: the stack's default until `cdcctl apply` points it at a pipeline's.
    @property
    def _agent_pointer(self) -> Path:
        return self.lay.service_dir("agent") / "active-properties"

    def agent_properties_path(self) -> Path:
        text = _read_text(self._agent_pointer)
        return Path(text.strip()) if text else self.lay.config_dir / "agent.properties"

    def use_agent_properties(self, path: Path) -> None:
        self._agent_pointer.parent.mkdir(parents=True, exist_ok=True)
        self._agent_pointer.write_text(f"{path}\n")

    def agent_running(self) -> bool:
        return processes.alive(self._pid("agent"))

    def restart_agent(self, before_start: Callable[[], None] | None = None) -> None:
        """Restart the agent so it picks up new settings (used by `cdcctl apply`);
        ``before_start`` runs while it is stopped (e.g. to edit its offset files)."""
        with self._locked():
            pid = self._pid("agent")
            if processes.alive(pid):
                assert pid is not None
                processes.stop(pid)
            self.lay.pid_file("agent").unlink(missing_ok=True)
            if before_start is not None:
                before_start()
            self._up(["agent"])


def settings_for(state_dir: Path | None = None) -> StackSettings:
    return StackSettings(layout=StackLayout(root=(state_dir or default_state_dir()).resolve()))


def status_rows(statuses: list[ServiceStatus]) -> list[dict[str, object]]:
    return [asdict(s) for s in statuses]


def _read_properties(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def _prometheus_version(server: Path) -> str:
    try:
        out = processes.run([str(server), "--version"], timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return prometheus_version(out.stdout + out.stderr)


def _kafka_cluster_id() -> str:
    """16 random bytes, base64url without padding — never starting with '-', which the storage
    tool's argument parser would take for an option (Kafka's own Uuid.randomUuid skips those)."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _replace_symlink(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink()
    link.symlink_to(target)


def _openssl(argv: list[str]) -> None:
    try:
        out = processes.run(argv, timeout=60)
    except FileNotFoundError as exc:
        raise StackError(
            "the openssl command is needed to create the local PostgreSQL TLS certificates",
            hint="apt-get install openssl",
        ) from exc
    if out.returncode != 0:
        raise StackError(
            f"openssl failed creating the PostgreSQL TLS certificates: "
            f"{(out.stdout + out.stderr)[-800:]}",
            hint="remove .stack/secrets/postgres-* and run `cdcctl stack up` again",
        )


def _postgres_user() -> processes.RunAs:
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError(
            "running as root, PostgreSQL needs the 'postgres' system user, which does not exist",
            hint="install Debian's postgresql package (it creates the user)",
        ) from exc
    return processes.RunAs(uid=pw.pw_uid, gid=pw.pw_gid)


def _chown_tree(path: Path, who: processes.RunAs) -> None:
    for p in [path, *path.rglob("*")]:
        with contextlib.suppress(OSError):
            os.lchown(p, who.uid, who.gid)


def _traversable_by_others(path: Path) -> bool:
    """Can a non-root user reach `path`? (every ancestor needs o+x)."""
    return not any(p.exists() and not (p.stat().st_mode & 0o001) for p in [path, *path.parents])

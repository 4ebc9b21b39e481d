"""Provisioning of the local stack: what services need on disk before (and right after) they
start — generated secrets, PostgreSQL's cluster (initdb) and TLS copies, Kafka's KRaft storage,
OpenBao's bootstrap (init, unseal, KV v2, policy, the Connect workers' token), Connect's plugins,
and the rendered configs (one per instance where instances differ: each Cassandra node's
cassandra.yaml, each agent's properties/driver/logback, each Connect worker's properties)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import jinja2

from controlplane.adapters import maven, processes
from controlplane.adapters.openbao_admin import OpenBaoAdmin
from controlplane.core.errors import SecretError, ServiceStartError, StackError
from controlplane.core.stack_model import (
    CASSANDRA_ADMIN_USER,
    CASSANDRA_AGENT_USER,
    CASSANDRA_JMX_USER,
    LOCAL_PG_SECRET_PATH,
    REDIS_USER,
    VAULT_CONNECT_POLICY,
    VAULT_CONNECT_TOKEN_PERIOD,
    VAULT_KV_MOUNT,
    StackLayout,
    StackSettings,
    agent_logback_context,
    pg_ident_conf,
    redis_acl,
    split_kv_path,
    template_context,
    vault_connect_policy,
)
from controlplane.services.stack_runtime import (
    READY_TIMEOUT,
    read_properties,
    read_text,
    write_private,
)

Reporter = Callable[[str, str], None]
T = TypeVar("T")

JDBC_SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
TRANSFORM_CLASS = "io.casscdcpg.transforms.CassandraToRow"
VAULT_PROVIDER_PLUGIN = "cass-cdc-pg-vault-config-provider"
VAULT_PROVIDER_JAR = "target/cass-cdc-pg-vault-config-provider.jar"
LWW_SINK_PLUGIN = "cass-cdc-pg-lww-sink"
LWW_SINK_JAR = "target/cass-cdc-pg-lww-sink.jar"
# Templates rendered once per Cassandra node (its agent's too) or per Connect worker; the
# function names the output file of instance i.
PER_NODE_TEMPLATES: dict[str, Callable[[StackLayout, int], Path]] = {
    "cassandra.yaml.j2": StackLayout.cassandra_yaml,
    "agent.properties.j2": StackLayout.agent_properties,
    "agent-driver.conf.j2": StackLayout.agent_driver_conf,
}
PER_WORKER_TEMPLATES: dict[str, Callable[[StackLayout, int], Path]] = {
    "connect-distributed.properties.j2": StackLayout.connect_properties,
}
AGENT_LOGBACK_TEMPLATE = "agent-logback.xml.j2"  # connectors/, shared with the agent bundles


# --- secrets ------------------------------------------------------------------------------------


def write_secrets(s: StackSettings) -> None:
    """Throwaway local credentials, generated once, readable only by this user."""
    lay = s.layout
    f = lay.postgres_secret_file
    if not f.exists():
        write_private(f, f"user={s.postgres_user}\npassword={secrets.token_urlsafe(24)}\n")
    admin = lay.secrets_dir / "postgres-admin.properties"
    if not admin.exists():
        write_private(admin, f"user=postgres\npassword={secrets.token_urlsafe(24)}\n")
    # Cassandra's roles and Redis's ACL user (decision 0110); generated even with --insecure,
    # so switching modes later needs nothing new.
    for path, user in (
        (lay.cassandra_admin_file, CASSANDRA_ADMIN_USER),
        (lay.cassandra_agent_file, CASSANDRA_AGENT_USER),
        (lay.redis_credentials_file, REDIS_USER),
    ):
        if not read_properties(path).get("password"):
            write_private(path, f"username={user}\npassword={secrets.token_urlsafe(24)}\n")
    if not lay.cassandra_jmx_password_file.exists():
        write_private(
            lay.cassandra_jmx_password_file,
            f"{CASSANDRA_JMX_USER} {secrets.token_urlsafe(24)}\n",
        )
    if not lay.cassandra_jmx_access_file.exists():
        write_private(lay.cassandra_jmx_access_file, f"{CASSANDRA_JMX_USER} readwrite\n")
    redis_password = read_properties(lay.redis_credentials_file)["password"]
    digest = hashlib.sha256(redis_password.encode()).hexdigest()
    write_private(lay.redis_acl_file, redis_acl(digest))


def prepare_dirs(lay: StackLayout) -> None:
    for d in ("logs", "run", "config", "secrets"):
        (lay.root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(lay.secrets_dir, 0o700)
    lay.connect_secrets_dir.mkdir(exist_ok=True)
    os.chmod(lay.connect_secrets_dir, 0o700)


# --- configs ------------------------------------------------------------------------------------


def _environment(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701  # nosec B701  # renders properties/YAML files, not HTML
    )


def render_configs(
    s: StackSettings, native: Path, dashboards: Path, *, vault_provider: bool
) -> None:
    """Every config of compose/native/config into the state dir's config/: per-instance templates
    once per node or worker, the agents' logback from the bundles' template, the rest once."""
    lay = s.layout
    env = _environment(native / "config")
    password = read_text(lay.connect_store_password_file) if s.tls else None
    store_password = (password or "").strip()
    cassandra_password = (read_text(lay.cassandra_store_password_file) if s.tls else None) or ""

    def context(node: int = 1, worker: int = 1) -> dict[str, object]:
        return template_context(
            s,
            vault_provider=vault_provider,
            connect_store_password=store_password,
            cassandra_store_password=cassandra_password.strip(),
            node=node,
            worker=worker,
        )

    for tpl in env.list_templates():
        src = native / "config" / tpl
        if tpl in PER_NODE_TEMPLATES:
            for node in range(1, s.nodes + 1):
                text = env.get_template(tpl).render(**context(node=node))
                write_private(PER_NODE_TEMPLATES[tpl](lay, node), text)
        elif tpl in PER_WORKER_TEMPLATES:
            for worker in range(1, s.connect_workers + 1):
                text = env.get_template(tpl).render(**context(worker=worker))
                # 0600: Connect's worker config holds its REST key stores' password.
                write_private(PER_WORKER_TEMPLATES[tpl](lay, worker), text)
        elif tpl.endswith(".j2"):
            text = env.get_template(tpl).render(**context())
            write_private(lay.config_dir / tpl.removesuffix(".j2"), text)
        else:
            shutil.copy2(src, lay.config_dir / tpl)
    logback = _environment(native.parents[1] / "connectors").get_template(AGENT_LOGBACK_TEMPLATE)
    for node in range(1, s.nodes + 1):
        write_private(lay.agent_logback(node), logback.render(**agent_logback_context(s, node)))
    # Prometheus evaluates the project's own alert rules, the ones promtool checks.
    shutil.copy2(dashboards / "alerts.yml", lay.config_dir / "alerts.yml")


# --- Connect's plugins ----------------------------------------------------------------------------


def install_plugins(lay: StackLayout, root: Path, plugin_artifacts: Path, report: Reporter) -> None:
    """plugin.path gets the JDBC sink archive, unpacked, the project's own SMT jar, the Vault
    config provider and the project's own sink (with the SMT jar and pgjdbc)."""
    pdir = lay.plugins_dir
    pdir.mkdir(parents=True, exist_ok=True)
    archive = next(plugin_artifacts.glob("debezium-connector-jdbc-*-plugin.tar.gz"), None)
    if archive is None:
        raise StackError(f"no JDBC sink plugin archive in {plugin_artifacts}")
    unpacked = maven.unpack_tar(
        archive, maven.cache_root() / "plugins" / archive.name.removesuffix(".tar.gz")
    )
    _replace_symlink(pdir / "debezium-connector-jdbc", next(unpacked.iterdir()))
    report("connect", "building the project's transform (transforms/)")
    jar = maven.build_project(
        root / "transforms" / "pom.xml", "target/cass-cdc-pg-transforms.jar", "transforms"
    )
    _install_jar(jar, pdir / "cass-cdc-pg-transforms")
    # The worker's ${vault:...} config provider: a Maven project of its own.
    provider = root / "transforms" / "vault-config-provider" / "pom.xml"
    if provider.exists():
        report("connect", "building the Vault config provider")
        provider_jar = maven.build_project(provider, VAULT_PROVIDER_JAR, "vault-config-provider")
        _install_jar(provider_jar, pdir / VAULT_PROVIDER_PLUGIN)
    else:
        report("connect", f"no {provider.parent}: starting without ${{vault:...}}")
        shutil.rmtree(pdir / VAULT_PROVIDER_PLUGIN, ignore_errors=True)
    # The project's own sink (`spec.sink.writer: lww`, decisions 0126/0127): its jar, the
    # transforms jar it builds against (RetryPolicy; the SMT and converter its config names) and
    # pgjdbc (the JDBC sink plugin's copy, the version the stock sink runs) in one directory.
    lww = root / "transforms" / "lww-sink" / "pom.xml"
    if lww.exists():
        report("connect", "building the project's own sink (transforms/lww-sink)")
        lww_jar = maven.build_project(
            lww, LWW_SINK_JAR, "lww-sink", depends_on=(root / "transforms" / "pom.xml",)
        )
        pgjdbc = sorted(unpacked.rglob("postgresql-*.jar"))
        if not pgjdbc:
            raise StackError(f"no pgjdbc jar in the JDBC sink plugin {unpacked}")
        _install_jars([lww_jar, jar, pgjdbc[-1]], pdir / LWW_SINK_PLUGIN)
    else:
        shutil.rmtree(pdir / LWW_SINK_PLUGIN, ignore_errors=True)


def install_jmx_exporter(lay: StackLayout, plugin_artifacts: Path) -> None:
    """The JMX exporter javaagent at its fixed place in the state dir (`jmx_exporter_jar`), where
    every start of Cassandra, an agent or Connect (`cdcctl apply`'s agent restarts too) finds it."""
    jar = next(plugin_artifacts.glob("jmx_prometheus_javaagent-*.jar"), None)
    if jar is None:
        raise StackError(f"the JMX exporter agent jar is missing from {plugin_artifacts}")
    lay.jmx_exporter_jar.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(jar, lay.jmx_exporter_jar)


def vault_provider_installed(lay: StackLayout) -> bool:
    return any((lay.plugins_dir / VAULT_PROVIDER_PLUGIN).glob("*.jar"))


def _install_jar(jar: Path, plugin_dir: Path) -> None:
    """`jar` alone in its own plugin directory (an old version is removed)."""
    _install_jars([jar], plugin_dir)


def _install_jars(jars: list[Path], plugin_dir: Path) -> None:
    """Exactly `jars` in their own plugin directory (old versions are removed)."""
    plugin_dir.mkdir(parents=True, exist_ok=True)
    for old in plugin_dir.glob("*.jar"):
        old.unlink()
    for jar in jars:
        shutil.copy2(jar, plugin_dir / jar.name)


def _replace_symlink(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink()
    link.symlink_to(target)


# --- Kafka ----------------------------------------------------------------------------------------


def kafka_cluster_id() -> str:
    """16 random bytes, base64url without padding — never starting with '-', which the storage
    tool's argument parser would take for an option (Kafka's own Uuid.randomUuid skips those)."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def format_kafka(lay: StackLayout, format_argv: Callable[[str], list[str]]) -> None:
    """KRaft storage formatted once (a cluster id kept in kafka/cluster-id)."""
    kdir = lay.service_dir("kafka")
    (kdir / "data").mkdir(parents=True, exist_ok=True)
    if (kdir / "data" / "meta.properties").exists():
        return
    cid_file = kdir / "cluster-id"
    if not cid_file.exists():
        cid_file.write_text(kafka_cluster_id() + "\n")
    out = processes.run(format_argv(cid_file.read_text().strip()), timeout=300)
    if out.returncode != 0:
        raise ServiceStartError(
            f"formatting Kafka's KRaft storage failed: {(out.stdout + out.stderr)[-1500:]}"
        )


# --- PostgreSQL -----------------------------------------------------------------------------------


def postgres_user() -> processes.RunAs:
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError(
            "running as root, PostgreSQL needs the 'postgres' system user, which does not exist",
            hint="install Debian's postgresql package (it creates the user)",
        ) from exc
    return processes.RunAs(uid=pw.pw_uid, gid=pw.pw_gid)


def postgres_dir(lay: StackLayout, run_as: processes.RunAs | None) -> Path:
    """PostgreSQL's state; when the checkout is not reachable by the postgres user (e.g. under
    /root), it lives in /var/tmp and the state dir holds a symlink to it."""
    pgdir = lay.service_dir("postgres")
    if run_as is None or pgdir.is_symlink() or _traversable_by_others(lay.root):
        pgdir.mkdir(parents=True, exist_ok=True)
        return pgdir.resolve()
    # A fixed /var/tmp path on purpose: it outlives reboots (unlike /tmp), the postgres user can
    # reach it, and each checkout gets its own subdirectory (keyed by its path). Both levels are
    # predictable, so each must be a real directory of ours that nobody else can write: another
    # local user could otherwise plant it (or a symlink) and have root write through it.
    outside = Path("/var/tmp/cass-cdc-pg")  # noqa: S108  # nosec B108  # fixed path on purpose, checked by _private_dir
    _private_dir(outside, mode=0o755)  # the postgres user must traverse it
    outside = outside / maven.content_key_text(str(lay.root))
    _private_dir(outside, mode=0o755)
    if pgdir.exists() or pgdir.is_symlink():
        if pgdir.is_symlink():
            pgdir.unlink()
        else:
            shutil.rmtree(pgdir)
    pgdir.symlink_to(outside)
    return outside


def _private_dir(path: Path, mode: int) -> None:
    """Create `path` (one level) or accept it only as a real directory owned by this user and
    writable by nobody else; `mode` is applied. Refuses symlinks and foreign directories."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise StackError(
            f"{path} exists but is not a private directory of this user (a symlink, another "
            "user's, or writable by others): refusing to keep PostgreSQL's data there",
            hint=f"inspect and remove {path}, then run `cdcctl stack up` again",
        )
    os.chmod(path, mode)


def initdb(
    bindir: Path, pgdir: Path, lay: StackLayout, run_as: processes.RunAs | None, report: Reporter
) -> Path:
    """The cluster's data dir, created by initdb once (superuser password from secrets/)."""
    data = pgdir / "data"
    if run_as:
        _chown_tree(pgdir, run_as)
    if (data / "PG_VERSION").exists():
        return data
    admin_pw = read_properties(lay.secrets_dir / "postgres-admin.properties")["password"]
    report("postgres", "initdb")
    pwfile = pgdir / ".pwfile"
    pwfile.unlink(missing_ok=True)
    # O_EXCL | O_NOFOLLOW: never written through a symlink someone left at that name
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(admin_pw + "\n")
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
            "--auth-local=peer",
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
    return data


def postgres_conf(lay: StackLayout, pgdir: Path, run_as: processes.RunAs | None) -> Path:
    """pg_hba.conf, pg_ident.conf (the OS users allowed to be the superuser over the socket) and
    the server's certificate and key where PostgreSQL can read them: the
    secrets dir (0700) is not reachable by the postgres user, so they are copied at each start,
    owned by that user, the key 0600 (PostgreSQL refuses a key others can read)."""
    conf = pgdir / "conf"
    if conf.is_symlink():
        conf.unlink()
    conf.mkdir(exist_ok=True)
    os.chmod(conf, 0o700)
    admins = [pwd.getpwuid(os.geteuid()).pw_name]
    if run_as:
        admins.append(pwd.getpwuid(run_as.uid).pw_name)
    write_private(lay.config_dir / "pg_ident.conf", pg_ident_conf(admins))
    copies = {
        "pg_hba.conf": (lay.config_dir / "pg_hba.conf", 0o600),
        "pg_ident.conf": (lay.config_dir / "pg_ident.conf", 0o600),
        "server.crt": (lay.postgres_server_cert, 0o644),
        "server.key": (lay.postgres_server_key, 0o600),
    }
    for name, (src, mode) in copies.items():
        dst = conf / name
        dst.unlink(missing_ok=True)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(src.read_bytes())
        if run_as:
            os.chown(dst, run_as.uid, run_as.gid)
    if run_as:
        os.chown(conf, run_as.uid, run_as.gid)
    return conf


def _chown_tree(path: Path, who: processes.RunAs) -> None:
    for p in [path, *path.rglob("*")]:
        with contextlib.suppress(OSError):
            os.lchown(p, who.uid, who.gid)


def _traversable_by_others(path: Path) -> bool:
    """Can a non-root user reach `path`? (every ancestor needs o+x)."""
    return not any(p.exists() and not (p.stat().st_mode & 0o001) for p in [path, *path.parents])


# --- OpenBao --------------------------------------------------------------------------------------


class VaultBootstrap:
    """OpenBao of the local stack once it answers: initialised once (1 key share), unsealed,
    KV v2 at secret/, the Connect policy and token, the PostgreSQL credentials stored."""

    def __init__(self, s: StackSettings, report: Reporter) -> None:
        self.s = s
        self.lay = s.layout
        self._report = report

    @property
    def addr(self) -> str:
        return f"https://127.0.0.1:{self.s.ports.vault}"

    def token(self) -> str:
        return (read_text(self.lay.vault_token_file) or "").strip()

    def admin(self, token: str | None = None) -> OpenBaoAdmin:
        return OpenBaoAdmin(self.addr, self.lay.ca_file, token=token, timeout=5)

    def bootstrap(self) -> None:
        """Initialise once (1 key share: unseal key and root token saved 0600), unseal, wait until
        active, then make sure of the KV v2 mount, the Connect policy and the Connect token."""
        lay = self.lay
        deadline = time.monotonic() + READY_TIMEOUT["vault"]
        with self.admin() as admin:
            health = admin.health()
            if not health.initialized:
                self._report("vault", "initialising (1 key share)")
                init = admin.initialize(1, 1)
                write_private(
                    lay.vault_init_file,
                    json.dumps(
                        {"keys_base64": init.keys_base64, "root_token": init.root_token}, indent=1
                    ),
                )
                write_private(lay.vault_token_file, init.root_token)
                lay.vault_connect_token_file.unlink(missing_ok=True)  # of an earlier server
            if admin.health().sealed:
                for key in self._unseal_keys():
                    if not admin.unseal(key):
                        break
            _wait_for(lambda: admin.health().ready, deadline, "OpenBao did not become active")
        with self.admin(self.token()) as admin:
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

    def unseal_running(self) -> None:
        """A running OpenBao that was sealed (`bao operator seal`) is unsealed again by `up`."""
        with self.admin() as admin:
            health = admin.health()
            if not (health.initialized and health.sealed):
                return
            self._report("vault", "running but sealed: unsealing")
            for key in self._unseal_keys():
                if not admin.unseal(key):
                    break
            deadline = time.monotonic() + READY_TIMEOUT["vault"]
            _wait_for(lambda: admin.health().ready, deadline, "OpenBao did not become active")

    def _unseal_keys(self) -> list[str]:
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
        token = (read_text(path) or "").strip()
        info = admin.lookup_token(token) if token else None
        if info is not None and VAULT_CONNECT_POLICY in (info.get("policies") or []):
            admin.renew_token(token)
            return
        token = admin.create_orphan_token(
            [VAULT_CONNECT_POLICY], period=VAULT_CONNECT_TOKEN_PERIOD, display_name="cdc-connect"
        )
        write_private(path, token)
        self._report("vault", f"created the Connect workers' token (policy {VAULT_CONNECT_POLICY})")

    def store_postgres_secret(self, password: str) -> None:
        """The PostgreSQL application credentials at LOCAL_PG_SECRET_PATH (KV v2), written only
        when they differ, so `up` twice writes nothing."""
        token = self.token()
        if not password or not token:
            return
        want = {"user": self.s.postgres_user, "password": password}
        mount, path = split_kv_path(LOCAL_PG_SECRET_PATH)
        deadline = time.monotonic() + 30
        with self.admin(token) as admin:
            if _retry(lambda: admin.read_kv2(mount, path), deadline) == want:
                return
            _retry(lambda: admin.write_kv2(mount, path, want), deadline)
        self._report("vault", f"stored the PostgreSQL credentials at {LOCAL_PG_SECRET_PATH}")


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

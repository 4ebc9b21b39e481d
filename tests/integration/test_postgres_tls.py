"""PostgreSQL TLS (decision 0060) against the real stack: TCP without TLS is refused; cdcctl's
connections and the JDBC sink's sessions are encrypted; verify-full with the stack's CA succeeds
and another CA fails with a clear error (exit 5). Start/stop cases run on a second stack on
shifted ports (PostgreSQL only) in a temporary state dir."""

from __future__ import annotations

import os
import stat
import subprocess  # nosec B404  # openssl and the CLI under test
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from controlplane.adapters import postgres
from controlplane.core.errors import PostgresError
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.stack_model import Ports, StackLayout, StackSettings, openssl_ca_command
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from tests.e2e.semconf import reset_kafka
from tests.manifests import local_pipeline
from tests.stackfixture import apply_on, cql_cluster

pytestmark = pytest.mark.integration

NAME = "pgtls"
KS = "pgtls"
OFFSET = 23000  # the second stack's ports (PostgreSQL only): 28432
SSL_OF_SESSIONS = (
    "SELECT a.application_name, s.ssl, s.version FROM pg_stat_activity a "
    "JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = %s"
)


@pytest.fixture(scope="module")
def local() -> LocalStack:
    return LocalStack(settings_for())


@pytest.fixture(scope="module")
def ca_file(stack: Endpoints, local: LocalStack) -> Path:
    ca = local.lay.postgres_ca_file
    if not ca.exists():
        pytest.fail(
            "the running stack predates PostgreSQL TLS (no secrets/postgres-ca.crt): "
            "`cdcctl stack down && cdcctl stack up`"
        )
    return ca


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("other-ca")
    subprocess.run(openssl_ca_command(d / "ca.key", d / "ca.crt"), check=True, capture_output=True)
    return d / "ca.crt"


def manifest(tmp: Path, tls: str = "", name: str = NAME) -> Path:
    text = local_pipeline(name, KS, ["t"])
    if tls:
        text += "".join(f"      {line}\n" for line in tls.splitlines())
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


def own_ssl(dsn: str) -> tuple[bool, str]:
    rows = postgres.query(dsn, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    return bool(rows[0][0]), str(rows[0][1])


def with_params(dsn: str, **params: str) -> str:
    return dsn + "".join(f" {k}={v}" for k, v in params.items())


# --- the running stack ------------------------------------------------------------------------


def test_a_connection_without_tls_is_refused(stack: Endpoints) -> None:
    with pytest.raises(PostgresError) as info:
        postgres.ping(with_params(stack.postgres_dsn, sslmode="disable"))
    assert "no encryption" in info.value.message
    assert "accepts only TLS" in (info.value.hint or "")
    assert info.value.exit_code == 5


def test_the_stack_dsn_verifies_the_server(stack: Endpoints, ca_file: Path) -> None:
    assert f"sslrootcert={ca_file}" in stack.postgres_dsn
    assert "sslmode=verify-full" in stack.postgres_dsn
    ssl, version = own_ssl(stack.postgres_dsn)
    assert ssl
    assert version.startswith("TLSv1.")
    # by name too: the certificate holds localhost, 127.0.0.1 and ::1
    assert own_ssl(stack.postgres_dsn.replace("host=127.0.0.1", "host=localhost"))[0]


def test_cdcctl_pipeline_connections_are_encrypted(
    stack: Endpoints, ca_file: Path, tmp_path: Path
) -> None:
    password = stack.postgres_dsn.split("password=")[1].split()[0]
    for tls in (
        "tls:\n  mode: require",
        f"tls:\n  caFile: {ca_file}",
        f"tls:\n  mode: verify-ca\n  caFile: {ca_file}",
    ):
        pg = load_manifests([manifest(tmp_path, tls)])[0].pipeline.spec.sink.postgres
        assert own_ssl(postgres.pipeline_dsn(pg, password))[0], tls


def test_without_a_ca_the_default_verifies_with_the_system_trust_store(
    stack: Endpoints, tmp_path: Path
) -> None:
    # decision 0108: no tls section is verify-full; the stack's private CA is in no system
    # store, so the server is refused — not silently trusted as under the old `require` default
    password = stack.postgres_dsn.split("password=")[1].split()[0]
    pg = load_manifests([manifest(tmp_path)])[0].pipeline.spec.sink.postgres
    with pytest.raises(PostgresError) as info:
        postgres.ping(postgres.pipeline_dsn(pg, password))
    assert "certificate verify failed" in info.value.message
    assert "sslrootcert=system" in info.value.message
    assert password not in info.value.message


def test_verify_full_with_another_ca_fails_clearly(
    stack: Endpoints, other_ca: Path, tmp_path: Path
) -> None:
    password = stack.postgres_dsn.split("password=")[1].split()[0]
    path = manifest(tmp_path, f"tls:\n  caFile: {other_ca}")
    pg = load_manifests([path])[0].pipeline.spec.sink.postgres
    with pytest.raises(PostgresError) as info:
        postgres.ping(postgres.pipeline_dsn(pg, password))
    assert "certificate verify failed" in info.value.message
    assert "not signed by the CA" in (info.value.hint or "")
    assert info.value.exit_code == 5


# --- the JDBC sink ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def deployed(
    cql: Session,
    local: LocalStack,
    stack: Endpoints,
    ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """A one-table pipeline whose sink verifies the server (verify-full with the stack's CA)."""
    os.environ.setdefault("CDC_PG_PASSWORD", local.postgres_password())
    reset_kafka(NAME, [f"demo.{KS}.t"])
    cql.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    cql.execute(
        f"CREATE KEYSPACE {KS} WITH replication = {{'class': 'SimpleStrategy', "
        "'replication_factor': 1}"
    )
    cql.execute(f"CREATE TABLE {KS}.t (id int PRIMARY KEY, v text) WITH cdc = true")
    postgres.execute(stack.postgres_dsn, [f'DROP SCHEMA IF EXISTS "{KS}_cdc" CASCADE'])
    postgres.execute(stack.postgres_dsn, [f'DROP SCHEMA IF EXISTS "{KS}" CASCADE'])
    tmp = tmp_path_factory.mktemp("pgtls")
    path = manifest(tmp, f"tls:\n  caFile: {ca_file}")
    apply_on(local, [path])
    yield path
    reset_kafka(NAME, [f"demo.{KS}.t"])


def test_the_sink_writes_through_verified_tls(
    deployed: Path, cql: Session, stack: Endpoints, ca_file: Path
) -> None:
    cql.execute(f"INSERT INTO {KS}.t (id, v) VALUES (1, 'over tls')")
    deadline = time.monotonic() + 120
    rows: list[tuple[object, ...]] = []
    while time.monotonic() < deadline:
        rows = postgres.query(stack.postgres_dsn, f'SELECT v FROM "{KS}".t WHERE id = 1')
        if rows:
            break
        time.sleep(1)
    assert rows == [("over tls",)]
    sessions = postgres.query(stack.postgres_dsn, SSL_OF_SESSIONS, [f"cdc-sink-{NAME}"])
    assert sessions, "no sink session in pg_stat_activity"
    assert all(ssl for _, ssl, _ in sessions), sessions
    plan = subprocess.run(
        [sys.executable, "-m", "controlplane", "plan", "-f", str(deployed), "--detailed-exitcode"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr  # Connect holds the URL as rendered


def test_every_sink_session_on_the_stack_is_encrypted(stack: Endpoints) -> None:
    rows = postgres.query(
        stack.postgres_dsn,
        "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.client_addr IS NOT NULL",
    )
    assert rows
    assert [r for r in rows if not r[1]] == []


def test_cli_with_another_ca_exits_5_naming_the_certificate_problem(
    deployed: Path, other_ca: Path, tmp_path: Path
) -> None:
    path = manifest(tmp_path, f"tls:\n  caFile: {other_ca}")
    out = subprocess.run(
        [sys.executable, "-m", "controlplane", "schema", "plan", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CDC_PG_PASSWORD": LocalStack(settings_for()).postgres_password()},
    )
    assert out.returncode == 5, out.stdout + out.stderr
    assert "certificate verify failed" in out.stderr
    assert "not signed by the CA" in out.stderr


# --- a second stack: certificates at first start, and for a stack from before TLS ------------


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("pgtls-stack") / "stack"
    st = LocalStack(StackSettings(layout=StackLayout(root=root), ports=Ports().shifted(OFFSET)))
    try:
        st.up(["postgres"])
        yield st
    finally:
        st.down(clean=True)


def test_first_start_creates_private_keys_and_serves_tls(second: LocalStack) -> None:
    lay = second.lay
    for key in (lay.postgres_ca_key, lay.postgres_server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(lay.secrets_dir.stat().st_mode) == 0o700
    conf = lay.service_dir("postgres").resolve() / "conf"
    server_key = (conf / "server.key").stat()
    assert stat.S_IMODE(server_key.st_mode) == 0o600
    pg_dir_owner = lay.service_dir("postgres").resolve().stat().st_uid
    assert server_key.st_uid == pg_dir_owner  # the user PostgreSQL runs as
    dsn = second.endpoints().postgres_dsn
    assert "sslmode=verify-full" in dsn
    assert own_ssl(dsn)[0]
    with pytest.raises(PostgresError, match="no encryption"):
        postgres.ping(with_params(dsn, sslmode="disable"))


def test_a_stack_without_certificates_gets_them_at_its_next_start(second: LocalStack) -> None:
    lay = second.lay
    second.down()
    for f in (lay.postgres_ca_file, lay.postgres_ca_key, lay.postgres_server_cert):
        f.unlink()
    lay.postgres_server_key.unlink()
    assert "sslmode" not in second.endpoints().postgres_dsn  # before TLS: libpq's default
    second.up(["postgres"])
    assert lay.postgres_ca_file.exists()
    assert own_ssl(second.endpoints().postgres_dsn)[0]


def test_up_warns_about_a_postgres_running_from_before_tls(second: LocalStack) -> None:
    said: list[tuple[str, str]] = []
    same = LocalStack(second.s, report=lambda svc, msg: said.append((svc, msg)))
    marker = second.lay.service_dir("postgres").resolve() / "conf" / "server.crt"
    kept = marker.read_bytes()
    marker.unlink()  # as if this server had been started by a cdcctl from before TLS
    try:
        [result] = same.up(["postgres"])
    finally:
        marker.write_bytes(kept)
    assert result.action == "already running"
    assert any(svc == "postgres" and "before TLS" in msg for svc, msg in said), said


def _psql_over_socket(socket_dir: Path, port: int, user: str, *, as_uid: int | None) -> str:
    argv = ["/usr/bin/psql", "-h", str(socket_dir), "-p", str(port), "-U", user, "-d", "postgres"]
    argv += ["-w", "-A", "-t", "-c", "SELECT current_user"]
    out = subprocess.run(  # nosec B603  # fixed argv
        argv,
        capture_output=True,
        text=True,
        timeout=30,
        user=as_uid,
        cwd="/",
        check=False,
    )
    return (out.stdout + out.stderr).strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching OS users needs root (CI runs as root)")
def test_the_unix_socket_admits_only_the_stack_admin_by_peer_credentials(
    stack: Endpoints, local: LocalStack
) -> None:
    # Issue 12: the socket was `local all all trust` in a world-reachable directory.
    socket_dir = local.lay.service_dir("postgres").resolve() / "run"
    port = local.s.ports.postgres
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    # the user running the stack is the superuser by peer credentials (pg_ident.conf's map)
    assert _psql_over_socket(socket_dir, port, "postgres", as_uid=None) == "postgres"
    # any other role over the socket is refused: no password-less logins
    assert "rejects connection" in _psql_over_socket(socket_dir, port, "cdc", as_uid=None)
    # another OS user cannot even reach the socket
    refused = _psql_over_socket(socket_dir, port, "postgres", as_uid=65534)
    assert "Permission denied" in refused, refused


def test_the_application_password_is_stored_as_a_scram_verifier(
    stack: Endpoints, local: LocalStack
) -> None:
    # cdcctl sends the verifier, never the plain password, in ALTER/CREATE ROLE (issue 12)
    socket_dir = local.lay.service_dir("postgres").resolve() / "run"
    admin = postgres.dsn(str(socket_dir), local.s.ports.postgres, "postgres", "postgres")
    rows = postgres.query(
        admin, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [local.s.postgres_user]
    )
    assert rows
    assert str(rows[0][0]).startswith("SCRAM-SHA-256$")
    log = local.lay.log_file("postgres")
    assert local.postgres_password() not in log.read_text(errors="replace")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600

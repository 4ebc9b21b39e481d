"""Cassandra's client port and Redis on the local stack (decision 0110): TLS with certificates
the stack's CA signed, PasswordAuthenticator roles and a Redis ACL user. Each refused connection
is tried for real, and cdcctl's verify and validate --online connect with a context that names
the CA and the credentials as secret references (not the local stack's own target)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable, Session

from controlplane.adapters import processes
from controlplane.adapters.cassandra import ssl_context
from controlplane.core.stack_model import CASSANDRA_AGENT_USER, CASSANDRA_JMX_USER, nodetool_command
from controlplane.core.target import CassandraClientSecurity
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from controlplane.services.targets import local_target
from tests.cli import cdcctl
from tests.integration.verify_support import KEYSPACE, Sim, create_tables, pg_password
from tests.manifests import local_pipeline
from tests.stackfixture import cql_cluster, ensure_stack, redis_client

pytestmark = pytest.mark.integration

TABLE = "tls"
NAME = "vf-tls"


@pytest.fixture(scope="module")
def stack() -> Endpoints:
    ep = ensure_stack()
    if not ep.cassandra_security.tls:
        pytest.skip("the stack runs --insecure: nothing here is protected")
    return ep


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    yield cluster.connect()
    cluster.shutdown()


def _refused(stack: Endpoints, **kwargs: Any) -> BaseException:
    """The error of a connection to node 1 made with `kwargs` (it must fail)."""
    cluster = Cluster(
        [stack.cassandra_host],
        port=stack.cassandra_port,
        protocol_version=5,
        connect_timeout=5,
        control_connection_timeout=5,
        **kwargs,
    )
    try:
        with pytest.raises(NoHostAvailable) as exc:
            cluster.connect()
    finally:
        cluster.shutdown()
    errors = list(exc.value.errors.values())
    assert errors, exc.value
    return errors[0]


def _tls(stack: Endpoints) -> ssl.SSLContext:
    context = ssl_context(stack.cassandra_security)
    assert context is not None
    return context


# --- Cassandra -----------------------------------------------------------------------------------


def test_cassandra_refuses_plain_text(stack: Endpoints) -> None:
    # No TLS: the node speaks only TLS on its client port (optional: false).
    err = _refused(stack, auth_provider=PlainTextAuthProvider("cdcctl", "whatever"))
    assert not isinstance(err, AuthenticationFailed), err


def test_cassandra_refuses_tls_without_credentials(stack: Endpoints) -> None:
    err = _refused(stack, ssl_context=_tls(stack))
    assert isinstance(err, AuthenticationFailed), err


def test_cassandra_refuses_a_wrong_password_and_the_builtin_superuser(stack: Endpoints) -> None:
    sec = stack.cassandra_security
    for user, password in ((sec.username, "not-the-password"), ("cassandra", "cassandra")):
        err = _refused(
            stack, ssl_context=_tls(stack), auth_provider=PlainTextAuthProvider(user, password)
        )
        assert isinstance(err, AuthenticationFailed), (user, err)


def test_cassandra_refuses_a_server_the_ca_did_not_sign(stack: Endpoints) -> None:
    # The system's trust store does not know the stack's CA: the handshake fails.
    err = _refused(
        stack,
        ssl_context=ssl_context(CassandraClientSecurity(tls=True)),
        auth_provider=PlainTextAuthProvider("cdcctl", "x"),
    )
    assert isinstance(err, (ssl.SSLError, OSError)), err


def test_the_agents_role_reads_but_cannot_change(stack: Endpoints, cql: Session) -> None:
    settings = settings_for()
    props = dict(
        line.split("=", 1)
        for line in settings.layout.cassandra_agent_file.read_text().splitlines()
        if "=" in line
    )
    assert props["username"] == CASSANDRA_AGENT_USER
    cql.execute(
        "CREATE KEYSPACE IF NOT EXISTS tls_it WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute("CREATE TABLE IF NOT EXISTS tls_it.t (id int PRIMARY KEY)")
    cluster = cql_cluster(
        stack, auth_provider=PlainTextAuthProvider(props["username"], props["password"])
    )
    try:
        session = cluster.connect()
        session.execute("SELECT id FROM tls_it.t LIMIT 1")
        with pytest.raises(Exception, match=r"(?i)unauthorized|permission"):
            session.execute("INSERT INTO tls_it.t (id) VALUES (1)")
    finally:
        cluster.shutdown()


def test_cassandra_jmx_refuses_nodetool_without_the_login(stack: Endpoints) -> None:
    """JMX (7199) takes only the stack's JMX user: nodetool without `-u/-pwf` or with a wrong
    password is refused; the stack's own `nodetool status` (its readiness probe) logs in."""
    local = LocalStack(settings_for())
    assert local.cluster_view() == {"127.0.0.1": "UN"}
    ctx = local.ctx
    argv = nodetool_command(
        ctx.cassandra_java(),
        ctx.lib("cassandra"),
        ctx.s.ports.cassandra_jmx_of(1),
        cassandra_version=ctx.s.cassandra_version,
    )
    anonymous = processes.run([*argv, "status"], timeout=120)
    assert anonymous.returncode != 0
    assert "Authentication failed" in anonymous.stdout + anonymous.stderr
    wrong = processes.run([*argv, "-u", CASSANDRA_JMX_USER, "-pw", "not-the-password", "status"])
    assert wrong.returncode != 0
    assert "Invalid username or password" in wrong.stdout + wrong.stderr
    assert oct(ctx.lay.cassandra_jmx_password_file.stat().st_mode & 0o777) == "0o600"


# --- Redis ---------------------------------------------------------------------------------------


def _redis_port(stack: Endpoints) -> int:
    assert stack.redis is not None
    return int(stack.redis.url.rsplit(":", 1)[1].split("/")[0])


def test_redis_refuses_plain_text(stack: Endpoints) -> None:
    r = redis.Redis(port=_redis_port(stack), socket_timeout=3, socket_connect_timeout=3)
    with pytest.raises(redis.ConnectionError):
        r.ping()


def test_redis_refuses_tls_without_or_with_a_wrong_password(stack: Endpoints) -> None:
    port = _redis_port(stack)
    tls = {"ssl": True, "ssl_ca_certs": stack.ca_file, "ssl_cert_reqs": "required"}
    anonymous = redis.Redis(port=port, socket_timeout=3, **tls)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    wrong = redis.Redis(port=port, username="cdcctl", password="not-it", socket_timeout=3, **tls)
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    # and the server is the one the stack's CA signed: the client checked it
    assert redis_client(stack).ping() is True


# --- cdcctl with a context ------------------------------------------------------------------------


def _context(tmp_path: Path, *, cassandra_password_file: Path | None = None) -> Path:
    """A contexts file whose context `tlsctx` names every endpoint of the stack, its CA and
    the credentials as file references: what an operator writes for a remote deployment."""
    local = local_target(settings_for().layout.root)
    assert local.cassandra.tls is not None
    assert local.cassandra.password_secret is not None
    assert local.redis.password_secret is not None
    assert local.vault.token_secret.file
    ca = local.cassandra.tls.ca_file
    cass_secret = {"file": local.cassandra.password_secret.file, "key": "password"}
    if cassandra_password_file is not None:
        cass_secret = {"file": str(cassandra_password_file), "key": "password"}
    ctx = {
        # Connect over HTTPS with basic auth, Kafka with cdcctl's client certificate (0114)
        "connect": local.connect.model_dump(mode="json", by_alias=True, exclude_none=True),
        "kafka": local.kafka.model_dump(mode="json", by_alias=True, exclude_none=True),
        "cassandra": {
            "contactPoints": local.cassandra.contact_points,
            "localDatacenter": "datacenter1",
            "tls": {"caFile": ca},
            "username": local.cassandra.username,
            "passwordSecret": cass_secret,
        },
        "postgres": {"host": "127.0.0.1", "port": local.postgres.port, "caFile": ca},
        "vault": {
            "address": local.vault.address,
            "caFile": ca,
            "tokenSecret": {"file": local.vault.token_secret.file},
        },
        "redis": {
            "url": local.redis.url,
            "caFile": local.redis.ca_file,
            "passwordSecret": {"file": local.redis.password_secret.file, "key": "password"},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"currentContext": "tlsctx", "contexts": {"tlsctx": ctx}}))
    return path


@pytest.fixture(scope="module")
def manifest(stack: Endpoints, cql: Session, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pg_password()
    create_tables(cql, stack.postgres_dsn, [TABLE])
    Sim(cql, stack.postgres_dsn, TABLE).load(60)
    path = tmp_path_factory.mktemp("tls") / f"{NAME}.yaml"
    path.write_text(local_pipeline(NAME, KEYSPACE, [TABLE]))
    return path


def test_cdcctl_verify_and_validate_online_with_a_contexts_settings(
    manifest: Path, tmp_path: Path
) -> None:
    env = {"CDCCTL_CONFIG": str(_context(tmp_path)), "CDC_PG_PASSWORD": pg_password()}
    out = cdcctl("verify", "-f", str(manifest), "--context", "tlsctx", "-o", "json", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["status"] == "PASS", summary
    assert summary["counters"]["read"] == 60
    # its checkpoints are in the context's Redis (TLS, ACL user): `verify runs` finds them there
    runs = cdcctl("verify", "runs", "-o", "json", env=env)
    assert runs.returncode == 0, runs.stderr
    assert summary["run"] in {r["run"] for r in json.loads(runs.stdout)}
    valid = cdcctl(
        "validate", "--online", "-f", str(manifest), "--context", "tlsctx", "-o", "json", env=env
    )
    found = json.loads(valid.stdout)
    cassandra_findings = [
        f
        for f in (found if isinstance(found, list) else found.get("findings", []))
        if "cassandra" in json.dumps(f).lower() and "connect" in json.dumps(f).lower()
    ]
    assert not cassandra_findings, found
    assert valid.returncode == 0, (valid.stdout, valid.stderr)


def test_cdcctl_with_a_wrong_cassandra_password_says_so_without_showing_it(
    manifest: Path, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.properties"
    wrong.write_text("password=definitely-not-it-0110\n")  # pragma: allowlist secret
    config = _context(tmp_path, cassandra_password_file=wrong)
    env = {"CDCCTL_CONFIG": str(config), "CDC_PG_PASSWORD": pg_password()}
    out = cdcctl("verify", "-f", str(manifest), "--context", "tlsctx", env=env)
    assert out.returncode != 0
    assert "refused the login" in out.stderr, out.stderr
    assert "definitely-not-it-0110" not in out.stdout + out.stderr


def test_insecure_is_an_explicit_loud_opt_out(tmp_path: Path) -> None:
    """`stack up --insecure`: plain Redis without a password, remembered in stack.json, and a
    warning on every stack command; the default stays TLS."""
    state = ["--state-dir", str(tmp_path / "st")]
    offset = 3700  # a Redis of its own (10079), beside any test stack
    try:
        up = cdcctl("stack", "up", "redis", *state, "--port-offset", str(offset), "--insecure")
        assert up.returncode == 0, up.stderr
        assert "WARNING: --insecure" in up.stderr
        doc = json.loads((tmp_path / "st" / "stack.json").read_text())
        assert doc["insecure"] is True
        assert redis.Redis(port=6379 + offset, socket_timeout=3).ping() is True
        status = cdcctl("stack", "status", *state)
        assert "WARNING: --insecure" in status.stderr
    finally:
        cdcctl("stack", "down", "--clean", *state)

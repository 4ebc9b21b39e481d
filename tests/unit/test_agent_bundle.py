"""External agents: manifest fields, per-node bundles (core.agent_bundle), and the agents
service without Cassandra (offline, or with the cluster's members given) and without agents
(httpx.MockTransport)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from controlplane.core.agent_bundle import (
    BUNDLE_FILES,
    ENV_FILE,
    LOGBACK_FILE,
    MAIN_CLASS,
    PROPERTIES_FILE,
    SKIP_LOGGERS,
    UNIT_FILE,
    bundle_differences,
    bundle_digests,
    check_unique_nodes,
    render_bundle,
    rollout_steps,
)
from controlplane.core.errors import CassandraError, ManifestError, UsageError
from controlplane.core.manifest import AgentNode, Pipeline, derive_node_id, manifest_json_schema
from controlplane.core.manifest_loader import check_text, load_text
from controlplane.core.render import CONNECTORS_DIR, parse_properties
from controlplane.core.stack_model import JDK17_MODULE_FLAGS
from controlplane.core.target import ConnectAccess, Target
from controlplane.services import agents
from tests.cli import cdcctl

PASSWORD = "s3cr3t-Value-42"  # pragma: allowlist secret - a fake one that must not reach a bundle


def manifest(
    agent: str = "mode: external\n",
    *,
    name: str = "demo",
    contact: str = "10.0.0.1:9042",
    prefix: str = "cdc",
    ca_file: str | None = None,
) -> str:
    """A manifest whose spec.source.agent holds `agent`; its first line is line 12."""
    # 18 spaces: the postgres keys' indentation in the template below, before dedent.
    tls = f"\n{' ' * 18}tls: {{caFile: {ca_file}}}" if ca_file else ""
    agent = agent if agent.endswith("\n") else agent + "\n"
    return (
        textwrap.dedent(
            f"""\
            apiVersion: cdc.casscdcpg.io/v1
            kind: Pipeline
            metadata:
              name: {name}
            spec:
              source:
                cassandra:
                  contactPoints: ["{contact}"]
                  keyspace: demo
                  tables: [users]
                agent:
            """
        )
        + textwrap.indent(textwrap.dedent(agent), "      ")
        + textwrap.indent(
            textwrap.dedent(
                f"""\
              kafka:
                bootstrapServers: ["kafka1:9092", "kafka2:9092"]
                topicPrefix: {prefix}
              sink:
                postgres:
                  host: pg.example
                  user: cdc
                  passwordSecret: {{env: CDC_PG_PASSWORD}}{tls}
            """
            ),
            "  ",
        )
    )


def pipeline(agent: str = "mode: external\n", **kw: str) -> Pipeline:
    [loaded] = load_text(manifest(agent, **kw), "p.yaml")
    return loaded.pipeline


def node(address: str, **extra: object) -> AgentNode:
    return AgentNode.model_validate({"address": address, **extra})


def problems(text: str) -> list[tuple[str | None, str]]:
    _, found = check_text(text, "p.yaml")
    return [(p.location, p.message) for p in found]


def parse_xml(text: str) -> ET.Element:
    """Our own rendered logback.xml (trusted input)."""
    return ET.fromstring(text)  # noqa: S314


def unit_lines(text: str) -> dict[str, list[str]]:
    """systemd unit keys -> values (continuation lines joined)."""
    out: dict[str, list[str]] = {}
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


# --- manifest ----------------------------------------------------------------------------------


def test_agent_defaults() -> None:
    agent = pipeline("{}\n").spec.source.agent
    assert agent.mode == "managed"
    assert agent.nodes == []
    i = agent.install
    assert (i.dir, i.config_dir, i.state_dir) == (
        "/opt/cass-cdc-pg/agent",
        "/etc/cass-cdc-pg/agent",
        "/var/lib/cass-cdc-pg/agent",
    )
    assert (i.cassandra_config, i.user, i.java, i.heap) == (
        "/etc/cassandra/cassandra.yaml",
        "cassandra",
        "/usr/bin/java",
        "512M",
    )
    assert (i.log_dir, i.log_level, i.log_max_file_size, i.log_max_files) == (
        "/var/log/cass-cdc-pg",
        "INFO",
        "100MB",
        5,
    )
    assert i.cassandra_storage_dir is None


def test_nodes_ids_addresses_and_ports() -> None:
    nodes = pipeline(
        """\
        mode: external
        nodes:
          - {address: 10.0.0.1}
          - {address: "[FD00::A]", nodeId: east-2, httpPort: 8100}
          - {address: Cass-3.Example.COM}
        """
    ).spec.source.agent.nodes
    assert [(n.address, n.id, n.http_port) for n in nodes] == [
        ("10.0.0.1", "node-10-0-0-1", 8000),
        ("fd00::a", "east-2", 8100),
        ("cass-3.example.com", "node-cass-3-example-com", 8000),
    ]
    assert derive_node_id("2001:db8::1") == "node-2001-db8--1"
    assert derive_node_id("2001:0db8:0::1") == "node-2001-db8--1"  # one address, one id


@pytest.mark.parametrize(
    ("line", "marker", "message"),
    [
        (
            "nodes: [{address: 10.0.0.256}]",
            "10.0.0.256",
            "spec.source.agent.nodes[0].address: '10.0.0.256' is not an IPv4 address",
        ),
        (
            "nodes: [{address: '10.0.0.1:9042'}]",
            "'10.0.0.1",
            "spec.source.agent.nodes[0].address: '10.0.0.1:9042': give the host only",
        ),
        (
            "nodes: [{address: 'bad host'}]",
            "'bad",
            "spec.source.agent.nodes[0].address: 'bad host' is not an IPv4/IPv6 address",
        ),
        (
            "nodes: [{address: 10.0.0.1, nodeId: ../etc}]",
            "../etc",
            "spec.source.agent.nodes[0].nodeId: '../etc' is not a node id",
        ),
        (
            "nodes: [{address: 10.0.0.1, httpPort: 70000}]",
            "70000",
            "spec.source.agent.nodes[0].httpPort: Input should be less than or equal to 65535",
        ),
        (
            "nodes: [{address: 10.0.0.1}, {address: 10.0.0.2, nodeId: node-10-0-0-1}]",
            "[",
            "spec.source.agent.nodes: nodes[0] and nodes[1] have the same node id 'node-10-0-0-1'",
        ),
        (
            "nodes: [{address: FD00::1}, {address: 'fd00:0::1'}]",
            "[",
            "spec.source.agent.nodes: nodes[0] and nodes[1] have the same node id",
        ),
        (
            "install: {stateDir: var/lib/agent}",
            "var/",
            "spec.source.agent.install.stateDir: 'var/lib/agent' is not an absolute path",
        ),
        (
            "install: {logDir: /var/log/my logs}",
            "/var",
            "spec.source.agent.install.logDir: '/var/log/my logs' holds whitespace",
        ),
        (
            "install: {configDir: /etc/../tmp}",
            "/etc",
            "spec.source.agent.install.configDir: '/etc/../tmp' has '.' or '..' components",
        ),
        (
            "install: {heap: lots}",
            "lots",
            "spec.source.agent.install.heap: 'lots' is not a JVM heap size",
        ),
        (
            "install: {logMaxFiles: 50}",
            "50",
            "spec.source.agent.install.logMaxFiles: Input should be less than or equal to 20",
        ),
        (
            "mode: remote",
            "remote",
            "spec.source.agent.mode: Input should be 'managed' or 'external'",
        ),
    ],
)
def test_agent_problems_have_positions(line: str, marker: str, message: str) -> None:
    """Each problem points at its value: line 13, the column of `marker` (indented by 6)."""
    [(where, text)] = problems(manifest(f"pollIntervalMs: 200\n{line}\n"))
    assert where == f"p.yaml:13:{7 + line.index(marker)}"
    assert text.startswith(message), text


def test_unknown_install_key_suggests() -> None:
    _, found = check_text(manifest("mode: external\ninstall: {confDir: /etc/x}\n"), "p.yaml")
    [problem] = found
    assert problem.location == "p.yaml:13:17"
    assert problem.message == "unknown key 'confDir' in spec.source.agent.install"
    assert problem.hint is not None
    assert problem.hint.startswith("did you mean 'configDir'?")


def test_json_schema_has_the_agent_fields() -> None:
    defs = manifest_json_schema()["$defs"]
    assert {"mode", "nodes", "install"} <= set(defs["AgentOptions"]["properties"])
    assert set(defs["AgentNode"]["properties"]) == {"address", "nodeId", "httpPort", "datacenter"}
    install = defs["AgentInstall"]["properties"]
    assert install["stateDir"]["default"] == "/var/lib/cass-cdc-pg/agent"
    assert "Default" in install["logMaxFileSize"]["description"]
    json.dumps(manifest_json_schema())


# --- bundles -----------------------------------------------------------------------------------


def test_bundle_files_are_node_side() -> None:
    p = pipeline()
    b = render_bundle(p, node("10.0.0.7", httpPort=8123))
    assert tuple(b.files) == BUNDLE_FILES
    props = parse_properties(b.files[PROPERTIES_FILE])
    assert props["cassandra.node.id"] == "node-10-0-0-7"
    assert props["cassandra.config"] == "/etc/cassandra/cassandra.yaml"
    assert props["cassandra.driver.config.file"] == "/etc/cass-cdc-pg/agent/driver.conf"
    assert props["commit.log.relocation.dir"] == "/var/lib/cass-cdc-pg/agent/relocation"
    assert props["offset.backing.store.dir"] == "/var/lib/cass-cdc-pg/agent/offsets"
    assert props["http.port"] == "8123"
    assert props["kafka.producer.bootstrap.servers"] == "kafka1:9092,kafka2:9092"
    assert props["topic.prefix"] == "cdc"
    driver = b.files["driver.conf"]
    assert 'contact-points = ["10.0.0.7:9042"]' in driver
    assert 'local-datacenter = "datacenter1"' in driver
    # Every absolute path written is one of the node's.
    allowed = ("/opt/cass-cdc-pg/agent", "/etc/cass-cdc-pg/agent", "/var/lib/cass-cdc-pg/agent")
    allowed += ("/etc/cassandra/cassandra.yaml", "/usr/bin/java", "/var/log/cass-cdc-pg")
    allowed += ("/etc/systemd/system/", "/usr/bin/install")
    for name, text in b.files.items():
        for path in re.findall(r"(?<![\w.:/<-])/[\w.*-]+(?:/[\w.*%-]+)*", text):
            assert path.startswith(allowed), (name, path)
        for local in (Path.cwd(), CONNECTORS_DIR, Path.home(), Path("/tmp")):
            assert f"{local}/" not in text, (name, local)


def test_bundle_produces_over_tls_with_the_nodes_certificate_files() -> None:
    """spec.source.agent.install.kafkaTls: node paths of the CA and the agent's PEM key store
    (mTLS, decision 0114); no password in any file of the bundle."""
    agent = (
        "mode: external\ninstall:\n  kafkaTls:\n    caFile: /etc/cass-cdc-pg/kafka-ca.pem\n"
        "    keystoreFile: /etc/cass-cdc-pg/agent/kafka-agent.pem\n"
    )
    b = render_bundle(pipeline(agent), node("10.0.0.7"))
    props = parse_properties(b.files[PROPERTIES_FILE])
    assert props["kafka.producer.security.protocol"] == "SSL"
    assert props["kafka.producer.ssl.truststore.type"] == "PEM"
    assert props["kafka.producer.ssl.truststore.location"] == "/etc/cass-cdc-pg/kafka-ca.pem"
    assert props["kafka.producer.ssl.keystore.type"] == "PEM"
    assert props["kafka.producer.ssl.keystore.location"] == "/etc/cass-cdc-pg/agent/kafka-agent.pem"
    assert not [k for k in props if "password" in k or "jaas" in k]
    plain = parse_properties(render_bundle(pipeline(), node("10.0.0.7")).files[PROPERTIES_FILE])
    assert "kafka.producer.security.protocol" not in plain
    assert b.digest != render_bundle(pipeline(), node("10.0.0.7")).digest
    assert problems(manifest("mode: external\ninstall:\n  kafkaTls: {caFile: rel.pem}\n"))


def test_same_bytes_from_two_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifests and templates in different places, rendered from different working
    directories: byte-identical bundles and digests."""
    bundles = []
    for where in ("a/deep/dir", "b"):
        base = tmp_path / where
        shutil.copytree(CONNECTORS_DIR, base / "connectors")
        (base / "ca.pem").write_text("x")
        text = manifest(ca_file="ca.pem")
        (base / "p.yaml").write_text(text)
        monkeypatch.chdir(base)
        [loaded] = load_text(text, str(base / "p.yaml"))
        assert str(base) in str(loaded.pipeline.spec.sink.postgres.tls.ca_file)
        bundles.append(
            render_bundle(loaded.pipeline, node("10.0.0.1"), templates_dir=base / "connectors")
        )
    first, second = bundles
    assert first.files == second.files
    assert first.digest == second.digest
    assert re.fullmatch(r"[0-9a-f]{16}", first.digest)


def test_systemd_unit() -> None:
    b = render_bundle(pipeline("mode: external\ninstall: {heap: 2G, user: cdc}\n"), node("::1"))
    unit = unit_lines(b.files[UNIT_FILE])
    assert unit["User"] == ["cdc"]
    assert unit["EnvironmentFile"] == ["/etc/cass-cdc-pg/agent/agent.env"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartSec"] == ["10s"]
    assert unit["RestartMaxDelaySec"] == ["5min"]
    assert unit["LimitNOFILE"] == ["100000"]
    assert unit["SuccessExitStatus"] == ["143"]
    assert unit["WantedBy"] == ["multi-user.target"]
    [exec_start] = unit["ExecStart"]
    argv = exec_start.split()
    assert argv[:4] == ["/usr/bin/java", "-Xms2G", "-Xmx2G", "$JAVA_OPTS"]
    assert "-Dlogback.configurationFile=/etc/cass-cdc-pg/agent/logback.xml" in argv
    assert all(flag in argv for flag in JDK17_MODULE_FLAGS)
    cp = argv.index("-cp")
    assert argv[cp + 1 :] == [
        "/opt/cass-cdc-pg/agent/lib/*",
        MAIN_CLASS,
        "/etc/cass-cdc-pg/agent/agent.properties",
    ]


def test_env_file_has_jvm_options_and_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_PG_PASSWORD", PASSWORD)
    p = pipeline("mode: external\ninstall: {cassandraStorageDir: /var/lib/cassandra}\n")
    b = render_bundle(p, node("10.0.0.1"))
    env = b.files[ENV_FILE]
    [opts] = [line for line in env.splitlines() if line.startswith("JAVA_OPTS=")]
    assert "-XX:+ExitOnOutOfMemoryError" in opts
    assert "-Dcassandra.storagedir=/var/lib/cassandra" in opts
    assert "preferIPv4Stack" not in opts  # nodes may be IPv6
    assert b.mode(ENV_FILE) == 0o600
    assert {b.mode(n) for n in BUNDLE_FILES if n != ENV_FILE} == {0o644}
    for text in b.files.values():
        assert PASSWORD not in text
        assert "CDC_PG_PASSWORD" not in text
        assert "pg.example" not in text  # nothing of the sink at all


def test_ipv6_node() -> None:
    p = pipeline(contact="[fd00::1]:9142")
    b = render_bundle(p, node("[FD00:0::1]", datacenter="dc-east"))
    assert (b.node_id, b.address) == ("node-fd00--1", "fd00::1")
    props = parse_properties(b.files[PROPERTIES_FILE])
    assert props["cassandra.node.id"] == "node-fd00--1"
    assert 'contact-points = ["[fd00::1]:9142"]' in b.files["driver.conf"]  # its own CQL port
    assert 'local-datacenter = "dc-east"' in b.files["driver.conf"]
    # An IPv6-derived id holds "--", which an XML comment may not: logback.xml stays valid.
    parse_xml(b.files[LOGBACK_FILE])


def test_logback() -> None:
    b = render_bundle(
        pipeline("mode: external\ninstall: {logLevel: DEBUG, logMaxFiles: 3, logMaxFileSize: 1GB}"),
        node("10.0.0.1"),
    )
    root = parse_xml(b.files[LOGBACK_FILE])
    appender = root.find("appender")
    assert appender is not None
    assert appender.get("class") == "ch.qos.logback.core.rolling.RollingFileAppender"
    assert appender.findtext("file") == "/var/log/cass-cdc-pg/agent.log"
    assert appender.findtext("rollingPolicy/maxIndex") == "3"
    assert appender.findtext("triggeringPolicy/maxFileSize") == "1GB"
    levels = {e.get("name"): e.get("level") for e in root.iter("logger")}
    assert all(levels[name] == "WARN" for name in SKIP_LOGGERS)
    assert root.find("root") is not None
    assert root.find("root").get("level") == "DEBUG"  # type: ignore[union-attr]
    quiet = render_bundle(pipeline("mode: external\ninstall: {logLevel: ERROR}"), node("10.0.0.1"))
    levels = {
        e.get("name"): e.get("level") for e in parse_xml(quiet.files[LOGBACK_FILE]).iter("logger")
    }
    assert set(levels.values()) == {"ERROR"}  # never louder than the root


def test_digests_per_node_and_what_differs() -> None:
    p = pipeline()
    digests = bundle_digests(p, [node("10.0.0.2"), node("10.0.0.1")])
    assert list(digests) == ["node-10-0-0-1", "node-10-0-0-2"]
    assert len(set(digests.values())) == 2  # node ids differ, so do the bundles
    slower = pipeline("mode: external\npollIntervalMs: 500\n")
    assert bundle_digests(slower, [node("10.0.0.1")]) != {"node-10-0-0-1": digests["node-10-0-0-1"]}
    diffs = bundle_differences(
        render_bundle(p, node("10.0.0.1")), render_bundle(slower, node("10.0.0.1"))
    )
    assert "poll.interval.ms: 100 vs 500" in diffs


def test_node_ids_must_be_unique() -> None:
    p = pipeline()
    # Derived ids collide for these two host names: discovered nodes are checked too.
    with pytest.raises(ManifestError, match=r"node id 'node-a-b' is used by two nodes"):
        bundle_digests(p, [node("a.b"), node("a-b")])
    with pytest.raises(ManifestError, match=re.escape("address '10.0.0.1' is used by two nodes")):
        check_unique_nodes([node("10.0.0.1"), node("10.0.0.1", nodeId="x")])


def test_rollout_steps_use_the_install_paths() -> None:
    steps = rollout_steps(
        pipeline("mode: external\ninstall: {configDir: /srv/a}").spec.source.agent.install
    )
    assert "install -m 0600 agent.env /srv/a/" in steps
    assert steps[-1].startswith("systemctl daemon-reload && ")
    assert steps[-1].endswith("systemctl restart cass-cdc-pg-agent")


# --- services.agents without Cassandra or agents -----------------------------------------------

TARGET = Target(name="prod", connect=ConnectAccess(url="https://connect.example:8083"))
MEMBERS = [
    ("10.0.0.1", "dc1", "r1", "h1", "5.0.2"),
    ("10.0.0.2", "dc2", "r1", "h2", "5.0.2"),
]


def loaded(agent: str, name: str = "demo", **kw: str) -> list:  # type: ignore[type-arg]
    return load_text(manifest(agent, name=name, **kw), f"{name}.yaml")


def test_nodes_discovered_and_checked() -> None:
    found = agents.cluster_nodes(pipeline(), TARGET, members=MEMBERS)
    assert [(c.id, c.node.datacenter, c.from_manifest) for c in found] == [
        ("node-10-0-0-1", "dc1", False),
        ("node-10-0-0-2", "dc2", False),
    ]
    listed = pipeline("mode: external\nnodes: [{address: 10.0.0.2, httpPort: 8001}]\n")
    [only] = agents.cluster_nodes(listed, TARGET, members=MEMBERS)
    assert (only.id, only.node.http_port, only.node.datacenter) == ("node-10-0-0-2", 8001, "dc2")
    stranger = pipeline("mode: external\nnodes: [{address: 10.0.0.9}]\n")
    with pytest.raises(CassandraError) as err:
        agents.cluster_nodes(stranger, TARGET, members=MEMBERS)
    assert "nodes[0] 10.0.0.9 is not a member" in err.value.message
    assert "10.0.0.1 (dc1), 10.0.0.2 (dc2)" in err.value.message
    assert err.value.hint is not None
    with pytest.raises(UsageError, match="--offline"):
        agents.cluster_nodes(pipeline(), TARGET, offline=True)


def test_render_writes_atomically_with_modes(tmp_path: Path) -> None:
    manifests = loaded("mode: external\nnodes: [{address: 10.0.0.1}, {address: 'fd00::2'}]\n")
    results = agents.render_bundles(manifests, TARGET, tmp_path, offline=True)
    assert [r.node_id for r in results] == ["node-10-0-0-1", "node-fd00--2"]
    for r in results:
        assert sorted(p.name for p in r.directory.iterdir()) == sorted(BUNDLE_FILES)  # no temp
        for name in BUNDLE_FILES:
            mode = stat.S_IMODE((r.directory / name).stat().st_mode)
            assert mode == (0o600 if name == ENV_FILE else 0o644), name
        assert r.rollout[-1].startswith("systemctl daemon-reload")
        assert r.notes == ()
    again = agents.render_bundles(manifests, TARGET, tmp_path, ["node-fd00--2"], offline=True)
    assert [(r.node_id, r.digest) for r in again] == [(results[1].node_id, results[1].digest)]
    with pytest.raises(UsageError) as err:
        agents.render_bundles(manifests, TARGET, tmp_path, ["node-9"], offline=True)
    assert err.value.exit_code == 2
    assert "known node ids: node-10-0-0-1, node-fd00--2" in err.value.message


def test_managed_mode_renders_but_says_so(tmp_path: Path) -> None:
    [r] = agents.render_bundles(
        loaded("nodes: [{address: 10.0.0.1}]\n"), TARGET, tmp_path, offline=True
    )
    assert r.mode == "managed"
    assert "managed" in r.notes[0]
    assert "reference" in r.notes[0]


def test_one_agent_per_node_across_pipelines(tmp_path: Path) -> None:
    shared = "mode: external\nnodes: [{address: 10.0.0.1}]\n"
    both = loaded(shared, "orders") + loaded(shared, "users")
    [r] = agents.render_bundles(both, TARGET, tmp_path, offline=True)
    assert r.pipelines == ("orders", "users")
    differ = loaded(shared, "orders") + loaded(shared + "snapshotMode: never\n", "users")
    with pytest.raises(ManifestError) as err:
        agents.render_bundles(differ, TARGET, tmp_path, offline=True)
    assert "pipelines orders (orders.yaml:4:9) and users run on Cassandra node 10.0.0.1" in str(
        err.value
    )
    assert "snapshot.mode: INITIAL vs NEVER" in str(err.value)
    assert err.value.location == "users.yaml:4:9"
    renamed = loaded(shared, "orders") + loaded(
        "mode: external\nnodes: [{address: 10.0.0.1, nodeId: other}]\n", "users"
    )
    with pytest.raises(ManifestError, match="two agents would read its cdc_raw"):
        agents.render_bundles(renamed, TARGET, tmp_path, offline=True)


def _handler(answers: dict[str, httpx.Response | Exception]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers[f"{request.url.host}:{request.url.port}{request.url.path}"]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle)


HEALTHY = {
    "cassandra-cdc-health-check": {
        "healthy": True,
        "message": json.dumps(
            {
                "io.debezium.connector.cassandra.CassandraClient": True,
                "io.debezium.connector.cassandra.Template$ProcessorGroup": True,
            }
        ),
    }
}


def test_status_healthy_unhealthy_unreachable() -> None:
    unhealthy = json.loads(json.dumps(HEALTHY))
    unhealthy["cassandra-cdc-health-check"]["healthy"] = False
    unhealthy["cassandra-cdc-health-check"]["message"] = json.dumps(
        {"a.CassandraClient": True, "b.X$ProcessorGroup": False}
    )
    transport = _handler(
        {
            "10.0.0.1:8000/ping": httpx.Response(200, text="pong\n"),
            "10.0.0.1:8000/health": httpx.Response(200, json=HEALTHY),
            "10.0.0.1:8000/buildinfo": httpx.Response(
                200, json={"version": "3.4.1.Final", "service_name": "Debezium"}
            ),
            "fd00::2:8000/ping": httpx.Response(200, text="pong"),
            "fd00::2:8000/health": httpx.Response(500, json=unhealthy),
            "fd00::2:8000/buildinfo": httpx.Response(404, text="nope"),
            "10.0.0.3:8000/ping": httpx.ConnectError("Connection refused"),
        }
    )
    manifests = loaded(
        "mode: external\nnodes: [{address: 10.0.0.1}, {address: 'fd00::2'}, {address: 10.0.0.3}]\n"
    )
    report = agents.agent_status(manifests, TARGET, offline=True, transport=transport)
    by_id = {a.node_id: a for a in report.agents}
    ok = by_id["node-10-0-0-1"]
    assert (ok.reachable, ok.healthy, ok.version) == (True, True, "3.4.1.Final")
    assert ok.components == {"CassandraClient": True, "ProcessorGroup": True}
    sick = by_id["node-fd00--2"]
    assert sick.url == "http://[fd00::2]:8000"
    assert (sick.reachable, sick.healthy, sick.version) == (True, False, None)
    assert sick.problem() == "unhealthy (ProcessorGroup not ok)"
    assert sick.error is not None
    assert "answered 404 to GET /buildinfo" in sick.error
    down = by_id["node-10-0-0-3"]
    assert (down.reachable, down.healthy) == (False, None)
    assert down.error is not None
    assert "cannot connect to the agent at http://10.0.0.3:8000/ping" in down.error
    failure = report.failure()
    assert failure is not None
    assert failure.exit_code == 5
    assert "2 of 3 agent(s) unreachable or unhealthy" in failure.message
    assert "node-10-0-0-1" not in failure.message


def test_status_all_healthy_is_no_failure() -> None:
    transport = _handler(
        {
            "10.0.0.1:8000/ping": httpx.Response(200, text="pong"),
            "10.0.0.1:8000/health": httpx.Response(200, json=HEALTHY),
            "10.0.0.1:8000/buildinfo": httpx.Response(200, json={"version": None}),
        }
    )
    report = agents.agent_status(
        loaded("mode: external\nnodes: [{address: 10.0.0.1}]\n"),
        TARGET,
        offline=True,
        transport=transport,
    )
    [a] = report.agents
    assert (a.ok, a.version, a.error) == (True, None, None)
    assert report.failure() is None


def test_agent_env_mode_survives_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        [r] = agents.render_bundles(
            loaded("mode: external\nnodes: [{address: 10.0.0.1}]\n"), TARGET, tmp_path, offline=True
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE((r.directory / ENV_FILE).stat().st_mode) == 0o600


# --- the CLI, offline ----------------------------------------------------------------------------


def test_cli_help_and_exit_codes(tmp_path: Path) -> None:
    for command, option in (("render", "--out"), ("status", "--timeout")):
        helped = cdcctl("agent", command, "--help")
        assert helped.returncode == 0
        assert option in helped.stdout
    good = tmp_path / "p.yaml"
    good.write_text(manifest("mode: external\nnodes: [{address: 10.0.0.1}]\n"))
    out = tmp_path / "out"
    done = cdcctl("agent", "render", "-f", str(good), "--out", str(out), "--offline", "-o", "json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert result["node_id"] == "node-10-0-0-1"
    assert (out / "node-10-0-0-1" / UNIT_FILE).is_file()
    unknown = cdcctl(
        "agent", "render", "-f", str(good), "--out", str(out), "--offline", "--node", "x"
    )
    assert unknown.returncode == 2
    assert "known node ids: node-10-0-0-1" in unknown.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest("mode: external\nnodes: [{address: 10.0.0.1:9042}]\n"))
    invalid = cdcctl("agent", "render", "-f", str(bad), "--out", str(out), "--offline")
    assert invalid.returncode == 3
    assert f"{bad}:13:" in invalid.stderr

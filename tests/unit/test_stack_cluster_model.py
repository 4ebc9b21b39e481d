"""The local cluster profile's pure model (decision 0100): instance names, ports per instance,
per-node dirs and configs, seeds, stack.json with the topology, command lines, nodetool's
output, and the rendered configs of every node, agent and worker. No service is started."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import jinja2
import pytest
import yaml

from controlplane.adapters import processes
from controlplane.core.stack_model import (
    AGENT_LOG_LEVELS,
    SERVICE_ORDER,
    SKIP_LOGGERS,
    Heaps,
    Ports,
    StackChoices,
    StackLayout,
    StackSettings,
    agent_command,
    agent_logback_context,
    all_up_normal,
    cassandra_command,
    choices_document,
    choices_of,
    connect_command,
    instance_name,
    node_address,
    node_id,
    nodetool_command,
    nodetool_login,
    parse_choices_document,
    parse_instance,
    parse_nodetool_status,
    parse_settings_document,
    settings_document,
    stack_instances,
    stack_settings,
    template_context,
)
from controlplane.services import stack_provision
from controlplane.services import stack_settings as ss

ROOT = Path(__file__).resolve().parents[2]
NATIVE_CONFIG = ROOT / "compose" / "native" / "config"
JAVA, LIB = Path("/jdk/bin/java"), Path("/lib")


def cluster(root: Path = Path("/st"), offset: int = 2000) -> object:
    return stack_settings(root, offset, nodes=3, connect_workers=2)


def render(template: str, ctx: dict[str, object], directory: Path = NATIVE_CONFIG) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders properties/YAML, not HTML
    )
    return env.get_template(template).render(**ctx)


# --- names -------------------------------------------------------------------------------------


def test_first_instances_keep_the_single_node_names() -> None:
    assert stack_instances() == list(SERVICE_ORDER)
    assert stack_instances(3, 2) == [
        "postgres",
        "redis",
        "vault",
        "kafka",
        "cassandra",
        "cassandra-2",
        "cassandra-3",
        "connect",
        "connect-2",
        "agent",
        "agent-2",
        "agent-3",
        "cdc-exporter",
        "prometheus",
        "jaeger",
    ]
    assert [instance_name("agent", i) for i in (1, 2)] == ["agent", "agent-2"]


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("cassandra", ("cassandra", 1)),
        ("cassandra-3", ("cassandra", 3)),
        ("connect-2", ("connect", 2)),
    ],
)
def test_parse_instance(name: str, parsed: tuple[str, int]) -> None:
    assert parse_instance(name) == parsed


@pytest.mark.parametrize("name", ["kafka-2", "cassandra-1", "cassandra-x", "nope", "agent-0"])
def test_parse_instance_refuses_what_is_no_instance(name: str) -> None:
    with pytest.raises(ValueError, match="unknown service"):
        parse_instance(name)


def test_nodes_have_their_own_address_and_node_id() -> None:
    assert [node_address(i) for i in (1, 2, 3)] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert [node_id(i) for i in (1, 2, 3)] == ["node1", "node2", "node3"]
    assert cluster().contact_points == [  # type: ignore[attr-defined]
        "127.0.0.1:11042",
        "127.0.0.2:11042",
        "127.0.0.3:11042",
    ]


# --- ports -------------------------------------------------------------------------------------


def test_ports_per_instance() -> None:
    p = Ports()
    # same CQL and storage ports on each node's own address; JMX its own (stride 100), and its
    # JMX exporter's (decision 0124)
    assert p.of("cassandra") == [9042, 7000, 7199, 9410]
    assert p.of("cassandra-2") == [9042, 7000, 7299, 9411]
    assert p.of("cassandra-3") == [9042, 7000, 7399, 9412]
    assert [p.of(f"agent{s}") for s in ("", "-2", "-3")] == [
        [8001, 9420],
        [8002, 9421],
        [8003, 9422],
    ]
    assert p.of("connect-2") == [8084, 9405]
    assert Ports().shifted(2000).of("connect-2") == [10084, 11405]


def test_no_instance_port_collides_within_a_stack_or_with_stacks_shifted_by_thousands() -> None:
    """Five nodes and three workers on 127.0.0.1 (the JMX, agent and worker ports) never meet
    another port of the same stack, nor of stacks shifted by multiples of 1000 (the CI's, the
    helpers', the cluster's)."""

    def loopback_ports(offset: int) -> list[int]:
        s = stack_settings(Path("/x"), offset, nodes=5, connect_workers=3)
        out: list[int] = []
        for name in s.instances():
            ports = s.ports.of(name)
            kind, index = parse_instance(name)
            # node i > 1 binds CQL and storage on 127.0.0.i, JMX on 127.0.0.1
            out.extend(ports[2:] if kind == "cassandra" and index > 1 else ports)
        return out

    base = loopback_ports(0)
    assert len(base) == len(set(base))
    for offset in (1000, 2000, 3000, 20000):
        assert not set(base) & set(loopback_ports(offset)), offset


# --- settings: stack.json ------------------------------------------------------------------------


def test_stack_json_round_trip_with_the_topology() -> None:
    c = StackChoices(2000, 3, 2, "DEBUG")
    assert parse_choices_document(choices_document(c)) == c
    s = cluster()
    assert choices_of(s) == StackChoices(2000, 3, 2, "INFO")  # type: ignore[arg-type]


def test_old_stack_json_files_read_as_one_node_one_worker() -> None:
    old = settings_document(20000, True)
    assert json.loads(old) == {"port_offset": 20000, "secure": True}
    # `secure` of old files is read and ignored: TLS is every stack's default (decision 0114)
    assert parse_choices_document(old) == StackChoices(20000, 1, 1, "INFO")
    assert parse_settings_document(choices_document(StackChoices(5, 3, 2))) == (5, False)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"nodes": 0}, "nodes must be an integer 1..5"),
        ({"nodes": 6}, "nodes must be an integer 1..5"),
        ({"nodes": True}, "nodes must be an integer"),
        ({"connect_workers": 4}, "connect_workers must be an integer 1..3"),
        ({"agent_log_level": "LOUD"}, "agent_log_level must be one of"),
    ],
)
def test_stack_json_topology_errors(doc: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_choices_document(json.dumps(doc))


def test_settings_for_and_chosen_settings_carry_the_topology(tmp_path: Path) -> None:
    s = ss.chosen_settings(tmp_path, 2000, nodes=3, connect_workers=2, agent_log_level="warn")
    ss.save(s)
    again = ss.settings_for(tmp_path)
    assert (again.nodes, again.connect_workers, again.agent_log_level) == (3, 2, "WARN")
    assert again.ports == Ports().shifted(2000)
    # a later command changes only what it names
    assert ss.chosen_settings(tmp_path, nodes=1).connect_workers == 2
    from controlplane.core.errors import UsageError

    with pytest.raises(UsageError, match="--nodes 6 is out of range"):
        ss.chosen_settings(tmp_path, nodes=6)
    with pytest.raises(UsageError, match="--connect-workers 0 is out of range"):
        ss.chosen_settings(tmp_path, connect_workers=0)
    with pytest.raises(UsageError, match="is not a log level"):
        ss.chosen_settings(tmp_path, agent_log_level="chatty")
    assert set(AGENT_LOG_LEVELS) >= {"INFO", "WARN"}


def test_a_running_stack_keeps_its_topology(tmp_path: Path) -> None:

    from controlplane.core.errors import UsageError
    from controlplane.services.stack import LocalStack

    ss.save(stack_settings(tmp_path, 41000))
    (tmp_path / "run").mkdir()
    processes.write_pid_file(tmp_path / "run" / "redis.pid", os.getpid())  # stands for a service
    other = LocalStack(stack_settings(tmp_path, 41000, nodes=3, connect_workers=2))
    with pytest.raises(UsageError, match="1 node") as info:
        other.up(["redis"], persist=True)
    assert "it cannot switch to port offset 41000, 3 node(s), 2 Connect worker(s)" in (
        info.value.message
    )
    assert json.loads((tmp_path / "stack.json").read_text())["nodes"] == 1


def test_fewer_nodes_than_the_state_dir_has_data_for_is_refused(tmp_path: Path) -> None:
    from controlplane.core.errors import UsageError
    from controlplane.services.stack import LocalStack

    ss.save(stack_settings(tmp_path, 41000, nodes=3))
    (tmp_path / "cassandra-3" / "data" / "system").mkdir(parents=True)
    with pytest.raises(UsageError, match="has data of cassandra-3") as info:
        LocalStack(stack_settings(tmp_path, 41000, nodes=2)).up(["redis"], persist=True)
    assert "stack down --clean" in (info.value.hint or "")
    assert json.loads((tmp_path / "stack.json").read_text())["nodes"] == 3


def test_a_cluster_gets_smaller_heaps() -> None:
    assert stack_settings(Path("/x")).heaps == Heaps()
    small = cluster().heaps  # type: ignore[attr-defined]
    assert small != Heaps()
    assert stack_settings(Path("/x"), connect_workers=2).heaps == small


# --- layout and command lines ---------------------------------------------------------------


def test_per_instance_files_keep_node_ones_names() -> None:
    lay = StackLayout(root=Path("/st"))
    assert lay.cassandra_yaml() == Path("/st/config/cassandra.yaml")
    assert lay.cassandra_yaml(2) == Path("/st/config/cassandra-2.yaml")
    assert lay.agent_properties() == Path("/st/config/agent.properties")
    assert lay.agent_properties(3) == Path("/st/config/agent-3.properties")
    assert lay.agent_driver_conf(2) == Path("/st/config/agent-2-driver.conf")
    assert lay.agent_logback() == Path("/st/config/agent-logback.xml")
    assert lay.connect_properties() == Path("/st/config/connect-distributed.properties")
    assert lay.connect_properties(2) == Path("/st/config/connect-2-distributed.properties")
    assert lay.log_file("agent-2") == Path("/st/logs/agent-2.log")
    assert lay.stdout_file("agent-2") == Path("/st/logs/agent-2.out")


def test_cassandra_command_per_node() -> None:
    s = cluster()
    one = cassandra_command(JAVA, LIB, s, Path("/jamm.jar"), 1)  # type: ignore[arg-type]
    two = cassandra_command(JAVA, LIB, s, Path("/jamm.jar"), 2)  # type: ignore[arg-type]
    assert "-Dcassandra.config=file:///st/config/cassandra.yaml" in one
    assert "-Dcassandra.config=file:///st/config/cassandra-2.yaml" in two
    assert "-Dcassandra.storagedir=/st/cassandra-2" in two
    assert "-Dcassandra.jmx.local.port=9199" in one
    assert "-Dcassandra.jmx.local.port=9299" in two
    assert "-Dcassandra.ring_delay_ms=0" in one
    assert "-Xmx640M" in two


def test_single_node_command_lines_are_unchanged() -> None:
    s = stack_settings(Path("/st"))
    cmd = cassandra_command(JAVA, LIB, s, Path("/jamm.jar"))
    assert "-Dcassandra.config=file:///st/config/cassandra.yaml" in cmd
    assert "-Dcassandra.jmx.local.port=7199" in cmd
    assert "-Xmx1G" in cmd
    # JMX takes the stack's JMX user only (its password file 0600 under secrets/)
    assert "-Dcom.sun.management.jmxremote.authenticate=true" in cmd
    assert "-Dcom.sun.management.jmxremote.password.file=/st/secrets/cassandra-jmx.password" in cmd
    assert "-Dcom.sun.management.jmxremote.access.file=/st/secrets/cassandra-jmx.access" in cmd
    assert nodetool_login(s) == ("-u", "cdcjmx", "-pwf", "/st/secrets/cassandra-jmx.password")
    insecure = dataclasses.replace(s, insecure=True)
    plain = cassandra_command(JAVA, LIB, insecure, Path("/jamm.jar"))
    assert not any("jmxremote" in a for a in plain)
    assert nodetool_login(insecure) == ()
    agent = agent_command(JAVA, LIB, s, Path("/p.properties"))
    assert "-Dlogback.configurationFile=/st/config/agent-logback.xml" in agent
    assert "-Dcassandra.storagedir=/st/cassandra" in agent
    connect = connect_command(JAVA, LIB, s)
    assert connect[-1] == "/st/config/connect-distributed.properties"
    assert any(a.endswith("=127.0.0.1:9404:/st/config/jmx-exporter.yaml") for a in connect)


def test_agent_and_connect_commands_per_instance() -> None:
    s = cluster()
    agent = agent_command(JAVA, LIB, s, Path("/p.properties"), 3)  # type: ignore[arg-type]
    assert "-Dcassandra.config=file:///st/config/cassandra-3.yaml" in agent
    assert "-Dcassandra.storagedir=/st/cassandra-3" in agent
    assert "-Dlogback.configurationFile=/st/config/agent-3-logback.xml" in agent
    assert "-Xmx256M" in agent
    worker = connect_command(JAVA, LIB, s, 2)  # type: ignore[arg-type]
    assert worker[-1] == "/st/config/connect-2-distributed.properties"
    assert any(a.endswith("=127.0.0.1:11405:/st/config/jmx-exporter.yaml") for a in worker)


def test_every_node_and_agent_runs_the_jmx_exporter_on_its_own_port() -> None:
    """Decision 0124: node i's exporter on 9410 + i - 1, agent i's on 9420 + i - 1, each with
    its kind's rules, the one jar of the state dir."""
    s: StackSettings = cluster()  # type: ignore[assignment]
    jar = "-javaagent:/st/lib/jmx_prometheus_javaagent.jar="
    for node in (1, 3):
        cass = cassandra_command(JAVA, LIB, s, Path("/jamm.jar"), node)  # type: ignore[arg-type]
        agent = agent_command(JAVA, LIB, s, Path("/p.properties"), node)  # type: ignore[arg-type]
        want_c = f"{jar}127.0.0.1:{s.ports.cassandra_metrics + node - 1}:"
        want_a = f"{jar}127.0.0.1:{s.ports.agent_metrics + node - 1}:"
        assert f"{want_c}/st/config/jmx-exporter-cassandra.yaml" in cass
        assert f"{want_a}/st/config/jmx-exporter-agent.yaml" in agent
        # a javaagent flag goes before the main class
        assert cass.index(f"{want_c}/st/config/jmx-exporter-cassandra.yaml") < cass.index("-cp")
        assert agent.index(f"{want_a}/st/config/jmx-exporter-agent.yaml") < agent.index("-cp")
    assert s.ports.cassandra_metrics_of(3) in s.ports.of("cassandra-3")
    assert s.ports.agent_metrics_of(2) in s.ports.of("agent-2")


def test_prometheus_scrapes_every_node_and_agent_exporter_with_its_node_label() -> None:
    s = cluster()
    doc = yaml.safe_load(render("prometheus.yml.j2", template_context(s)))  # type: ignore[arg-type]
    jobs = {j["job_name"]: j["static_configs"] for j in doc["scrape_configs"]}
    ports = s.ports  # type: ignore[attr-defined]
    for job, first in (
        ("cassandra", ports.cassandra_metrics),
        ("debezium-agent", ports.agent_metrics),
    ):
        assert jobs[job] == [
            {"targets": [f"127.0.0.1:{first + i}"], "labels": {"node": f"node{i + 1}"}}
            for i in range(s.nodes)  # type: ignore[attr-defined]
        ]


def test_nodetool_command_and_status_parsing() -> None:
    argv = nodetool_command(JAVA, LIB, 9299, "status")
    assert argv[-6:] == [
        "org.apache.cassandra.tools.NodeTool",
        "-h",
        "127.0.0.1",
        "-p",
        "9299",
        "status",
    ]
    out = """Datacenter: datacenter1
=======================
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load        Tokens  Owns (effective)  Host ID                               Rack
UN  127.0.0.1  110.5 KiB   16      67.2%             0e8c0a7e-0000-0000-0000-000000000001  rack1
UJ  127.0.0.2  70.1 KiB    16      ?                 0e8c0a7e-0000-0000-0000-000000000002  rack1
DN  127.0.0.3  ?           16      66.1%             0e8c0a7e-0000-0000-0000-000000000003  rack1
"""
    states = parse_nodetool_status(out)
    assert nodetool_command(JAVA, LIB, 9299, "status", login=("-u", "u", "-pwf", "/f"))[-5:] == [
        "-u",
        "u",
        "-pwf",
        "/f",
        "status",
    ]
    assert states == {"127.0.0.1": "UN", "127.0.0.2": "UJ", "127.0.0.3": "DN"}
    assert not all_up_normal(states, 3)
    assert all_up_normal({f"127.0.0.{i}": "UN" for i in (1, 2, 3)}, 3)
    assert not all_up_normal({"127.0.0.1": "UN"}, 3)


# --- rendered configs -----------------------------------------------------------------------


def test_each_node_has_its_own_address_dirs_and_the_same_seed() -> None:
    s = cluster()
    docs = [
        yaml.safe_load(render("cassandra.yaml.j2", template_context(s, node=i)))  # type: ignore[arg-type]
        for i in (1, 2, 3)
    ]
    for i, doc in enumerate(docs, start=1):
        assert doc["listen_address"] == doc["rpc_address"] == f"127.0.0.{i}"
        assert doc["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.1:9000"
        assert doc["native_transport_port"] == 11042
        base = "/st/cassandra" if i == 1 else f"/st/cassandra-{i}"
        assert doc["data_file_directories"] == [f"{base}/data"]
        for key, sub in (
            ("commitlog_directory", "commitlog"),
            ("cdc_raw_directory", "cdc_raw"),
            ("hints_directory", "hints"),
            ("saved_caches_directory", "saved_caches"),
        ):
            assert doc[key] == f"{base}/{sub}"


def test_each_agent_points_at_its_own_node() -> None:
    s = cluster()
    for i in (1, 2, 3):
        ctx = template_context(s, node=i)  # type: ignore[arg-type]
        props = dict(
            line.split("=", 1)
            for line in render("agent.properties.j2", ctx).splitlines()
            if "=" in line and not line.startswith("#")
        )
        name = "agent" if i == 1 else f"agent-{i}"
        assert props["cassandra.node.id"] == f"node{i}"
        assert props["http.port"] == str(10000 + i)
        assert props["cassandra.config"] == (
            "/st/config/cassandra.yaml" if i == 1 else f"/st/config/cassandra-{i}.yaml"
        )
        assert props["cassandra.driver.config.file"] == f"/st/config/{name}-driver.conf"
        assert props["offset.backing.store.dir"] == f"/st/{name}/offsets"
        assert props["commit.log.relocation.dir"] == f"/st/{name}/relocation"
        assert int(props["offset.flush.interval.ms"]) > 0
        driver = render("agent-driver.conf.j2", ctx)
        assert f'"127.0.0.{i}:11042"' in driver


def test_managed_agents_flush_offsets(tmp_path: Path) -> None:
    """0 (the agent's default) makes the 3.4.1 agent's offset writer queue grow without bound
    (dbz#1791): the managed (and bundled) agent properties set it, as the stack's do."""
    from controlplane.core.manifest_loader import load_manifests
    from controlplane.core.render import RenderContext, render_agent_properties
    from tests.manifests import local_pipeline

    path = tmp_path / "p.yaml"
    path.write_text(local_pipeline("p", "ks", ["t"]))
    pipeline = load_manifests([path])[0].pipeline
    ctx = RenderContext(state_dir=tmp_path, cassandra_config=tmp_path / "cassandra.yaml")
    text = render_agent_properties(pipeline, ctx)
    m = re.search(r"^offset\.flush\.interval\.ms=(\d+)$", text, re.MULTILINE)
    assert m is not None
    assert int(m.group(1)) > 0


def test_each_worker_has_its_own_rest_port_in_one_group() -> None:
    s = cluster()
    texts = [
        render("connect-distributed.properties.j2", template_context(s, worker=w))  # type: ignore[arg-type]
        for w in (1, 2)
    ]
    for w, text in enumerate(texts, start=1):
        assert f"listeners=https://127.0.0.1:{10082 + w}" in text
        assert f"rest.advertised.port={10082 + w}" in text
        assert "group.id=cass-cdc-pg-connect" in text


def test_prometheus_scrapes_every_worker() -> None:
    doc = yaml.safe_load(render("prometheus.yml.j2", template_context(cluster())))  # type: ignore[arg-type]
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "kafka-connect")
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:11404", "127.0.0.1:11405"]


def test_agent_log_is_a_size_capped_rolling_file_with_quiet_skip_loggers() -> None:
    s = stack_settings(Path("/st"), nodes=2, agent_log_level="DEBUG")
    xml = render(
        stack_provision.AGENT_LOGBACK_TEMPLATE,
        agent_logback_context(s, 2),
        ROOT / "connectors",
    )
    assert "<file>/st/logs/agent-2.log</file>" in xml
    assert "<fileNamePattern>/st/logs/agent-2.%i.log.gz</fileNamePattern>" in xml
    assert "<maxIndex>2</maxIndex>" in xml
    assert "<maxFileSize>20MB</maxFileSize>" in xml
    assert '<root level="DEBUG">' in xml
    for logger in SKIP_LOGGERS:
        assert f'<logger name="{logger}" level="WARN"/>' in xml
    assert "ConsoleAppender" not in xml


def test_render_configs_writes_one_file_per_instance(tmp_path: Path) -> None:
    s = stack_settings(tmp_path, 2000, nodes=3, connect_workers=2)
    (tmp_path / "config").mkdir()
    stack_provision.render_configs(
        s, ROOT / "compose" / "native", ROOT / "dashboards", vault_provider=False
    )
    names = {p.name for p in (tmp_path / "config").iterdir()}
    for name in (
        "cassandra.yaml",
        "cassandra-2.yaml",
        "cassandra-3.yaml",
        "agent.properties",
        "agent-3.properties",
        "agent-2-driver.conf",
        "agent-logback.xml",
        "agent-3-logback.xml",
        "connect-distributed.properties",
        "connect-2-distributed.properties",
        "prometheus.yml",
    ):
        assert name in names, name
    assert "connect-3-distributed.properties" not in names
    assert "cassandra-4.yaml" not in names


def test_the_registry_has_a_recipe_per_instance_with_its_ports_and_address(tmp_path: Path) -> None:
    from controlplane.services.stack import LocalStack

    st = LocalStack(stack_settings(tmp_path, 2000, nodes=3, connect_workers=2))
    recipes = {r.name: r for r in st.recipes}
    assert list(recipes) == stack_instances(3, 2)
    assert recipes["cassandra-2"].host == "127.0.0.2"
    assert recipes["cassandra-2"].ports == (11042, 9000, 9299, 11411)
    assert recipes["connect-2"].ports == (10084, 11405)
    assert recipes["agent-3"].ports == (10003, 11422)
    assert recipes["postgres"].stop_signal != recipes["kafka"].stop_signal  # SIGINT: fast shutdown
    # one node: no bind address of its own (port checks as the single-node stack always did)
    single = LocalStack(stack_settings(tmp_path / "one", 2000))
    assert [r.name for r in single.recipes] == list(SERVICE_ORDER)
    assert all(r.host is None for r in single.recipes)
    ep = st.endpoints()
    assert ep.cassandra_contact_points == (
        "127.0.0.1:11042",
        "127.0.0.2:11042",
        "127.0.0.3:11042",
    )
    assert ep.connect_urls == ("https://127.0.0.1:10083", "https://127.0.0.1:10084")
    assert len(ep.agent_urls) == 3


def test_the_local_target_lists_every_node(tmp_path: Path) -> None:
    from controlplane.services.targets import local_target

    ss.save(stack_settings(tmp_path, 2000, nodes=3, connect_workers=2))
    target = local_target(tmp_path)
    assert target.cassandra.contact_points == [
        "127.0.0.1:11042",
        "127.0.0.2:11042",
        "127.0.0.3:11042",
    ]
    assert target.local is not None
    assert target.local.agent_http_port == 10001

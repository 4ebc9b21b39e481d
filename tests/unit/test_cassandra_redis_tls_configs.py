"""The rendered configs of decision 0110: Cassandra's client encryption and authenticator, the
agents' driver config (TLS + login, passwords only as environment substitutions), Redis's TLS
port and ACL file. Pure: templates rendered in memory."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import jinja2
import yaml

from controlplane.core.manifest_loader import load_text
from controlplane.core.render import RenderContext, render_driver_conf
from controlplane.core.stack_model import (
    CASSANDRA_CERT_NAMES,
    StackLayout,
    StackSettings,
    redis_acl,
    template_context,
)
from controlplane.core.target import AgentCassandraSecurity
from tests.manifests import local_pipeline

NATIVE = Path(__file__).resolve().parents[2] / "compose" / "native" / "config"
STORE_PASSWORD = "store-pw-0110"  # pragma: allowlist secret


def render(template: str, *, insecure: bool = False) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(NATIVE),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders YAML/HOCON/conf, not HTML
    )
    s = StackSettings(layout=StackLayout(root=Path("/st")), insecure=insecure)
    ctx = template_context(s, cassandra_store_password=STORE_PASSWORD)
    return env.get_template(template).render(**ctx)


def test_cassandra_speaks_tls_only_and_wants_a_login() -> None:
    conf = yaml.safe_load(render("cassandra.yaml.j2"))
    assert conf["authenticator"] == "PasswordAuthenticator"
    assert conf["authorizer"] == "CassandraAuthorizer"
    enc = conf["client_encryption_options"]
    assert enc["enabled"] is True
    assert enc["optional"] is False
    assert enc["keystore"] == "/st/secrets/cassandra-keystore.p12"
    assert enc["store_type"] == "PKCS12"
    plain = yaml.safe_load(render("cassandra.yaml.j2", insecure=True))
    assert plain["authenticator"] == "AllowAllAuthenticator"
    assert "client_encryption_options" not in plain


def test_the_certificate_names_every_node_address() -> None:
    assert {f"IP:127.0.0.{i}" for i in range(1, 6)} <= set(CASSANDRA_CERT_NAMES)


def test_the_stack_agents_driver_config_names_passwords_only_as_variables() -> None:
    conf = render("agent-driver.conf.j2")
    assert "class = DefaultSslEngineFactory" in conf
    assert "hostname-validation = true" in conf
    assert "truststore-password = ${CDC_CASSANDRA_TRUSTSTORE_PASSWORD}" in conf
    assert 'username = "cdc_agent"' in conf
    assert "password = ${CDC_CASSANDRA_PASSWORD}" in conf
    assert STORE_PASSWORD not in conf
    assert "ssl-engine-factory" not in render("agent-driver.conf.j2", insecure=True)


def test_apply_renders_the_managed_agents_tls_and_login() -> None:
    pipeline = load_text(local_pipeline("p", "ks", ["t"]))[0].pipeline
    plain = render_driver_conf(pipeline, RenderContext())
    assert "ssl-engine-factory" not in plain
    sec = AgentCassandraSecurity(truststore="/st/secrets/cassandra-truststore.p12", username="a")
    conf = render_driver_conf(pipeline, replace(RenderContext(), agent_security=sec))
    assert 'truststore-path = "/st/secrets/cassandra-truststore.p12"' in conf
    assert "password = ${CDC_CASSANDRA_PASSWORD}" in conf
    assert 'username = "a"' in conf


def test_apply_renders_the_managed_agents_kafka_tls() -> None:
    """The managed agent's producer: the local stack's CA and the agents' PEM key store
    (mTLS, decision 0114), no password."""
    from controlplane.core.manifest import AgentKafkaTls
    from controlplane.core.render import agent_properties

    pipeline = load_text(local_pipeline("p", "ks", ["t"]))[0].pipeline
    ctx = RenderContext(state_dir=Path("/st"))
    assert "kafka.producer.security.protocol" not in agent_properties(pipeline, ctx)
    tls = AgentKafkaTls.model_validate(
        {"caFile": "/st/secrets/ca.crt", "keystoreFile": "/st/secrets/kafka-client-agent.pem"}
    )
    props = agent_properties(pipeline, replace(ctx, agent_kafka_tls=tls))
    assert props["kafka.producer.security.protocol"] == "SSL"
    assert props["kafka.producer.ssl.truststore.location"] == "/st/secrets/ca.crt"
    assert props["kafka.producer.ssl.keystore.location"] == "/st/secrets/kafka-client-agent.pem"
    assert not [k for k in props if "password" in k]


def test_redis_listens_with_tls_only_and_an_acl_user() -> None:
    conf = render("redis.conf.j2")
    assert "port 0" in conf.splitlines()
    assert "tls-port 6379" in conf.splitlines()
    assert "aclfile /st/secrets/redis-users.acl" in conf.splitlines()
    assert "port 6379" in render("redis.conf.j2", insecure=True).splitlines()
    digest = hashlib.sha256(b"pw").hexdigest()
    acl = redis_acl(digest)
    assert acl.splitlines() == ["user default off", f"user cdcctl on #{digest} ~* &* +@all"]

"""Targets (decision 0070): which target a command works on, what it takes from the manifest,
and that nothing machine-specific reaches Connect. No servers: the contexts file is a temp file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.errors import ManifestError, UsageError
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.plan import plan_agent_bundles
from controlplane.core.properties import dump_properties, load_properties
from controlplane.core.render import AGENT_BUNDLES_KEY, recorded_bundles
from controlplane.core.target import Context, endpoints_for, split_host_port
from controlplane.services.targets import resolve_target

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml"
NASTY = ["back\\slash", "\\u00e9 not an escape", "a=b:c", "line\nbreak", "päß wörd ☃", " lead"]

PROD = {
    "connect": {
        "url": "https://connect.prod.example:8083",
        "caFile": "/etc/ssl/ca.pem",
        "username": "cdcctl",
        "passwordSecret": {"env": "CONNECT_PW"},
    },
    "kafka": {"bootstrapServers": ["kafka1:9094"], "tls": {"caFile": "/etc/ssl/ca.pem"}},
    "cassandra": {"contactPoints": ["10.0.0.1:9042", "[2001:db8::3]:9042"]},
    "postgres": {"user": "owner", "passwordSecret": {"env": "OWNER_PW"}, "host": "pg.internal"},
    "vault": {"address": "https://vault:8200", "tokenSecret": {"file": "~/.vault-token"}},
    "redis": {"url": "rediss://redis:6380/0"},
}


@pytest.fixture
def contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        json.dumps(
            {
                "currentContext": "prod",
                "contexts": {
                    "prod": PROD,
                    "old": {"connectUrl": "http://old:8083"},
                    "laptop": {"localStack": str(tmp_path / "stack")},
                },
            }
        )
    )
    monkeypatch.setenv("CDCCTL_CONFIG", str(path))
    return path


def test_the_current_context_is_the_default_target(contexts: Path) -> None:
    target = resolve_target()
    assert target.name == "prod"
    assert target.local is None
    assert target.connect.url == "https://connect.prod.example:8083"
    assert target.connect.username == "cdcctl"
    assert "context 'prod'" in target.hint("Kafka Connect")
    assert "stack status" not in target.hint("Kafka Connect")


def test_state_dir_and_local_stack_contexts_are_local_targets(
    contexts: Path, tmp_path: Path
) -> None:
    laptop = resolve_target(context="laptop")
    assert laptop.local is not None
    assert laptop.local.state_dir == (tmp_path / "stack").resolve()
    assert "stack status" in laptop.hint("Kafka Connect")
    named = resolve_target(state_dir=tmp_path / "other")
    assert named.local is not None
    # HTTPS with basic auth, unless the stack runs --insecure (decision 0114)
    assert named.connect.url == "https://127.0.0.1:8083"
    assert named.connect.username == "admin"
    assert named.connect.password_secret is not None


def test_overrides_and_legacy_contexts(contexts: Path) -> None:
    assert resolve_target(context="old").connect.url == "http://old:8083"
    forced = resolve_target(connect_url="http://elsewhere:1/")
    assert forced.connect.url == "http://elsewhere:1"
    assert forced.connect_overridden
    with pytest.raises(UsageError, match="no context named 'nope'"):
        resolve_target(context="nope")


def test_without_a_contexts_file_the_local_stack_is_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDCCTL_CONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("CDC_STACK_DIR", str(tmp_path / "st"))
    target = resolve_target()
    assert target.local is not None
    assert target.local.state_dir == (tmp_path / "st").resolve()


def test_the_target_overrides_the_manifest_only_where_it_speaks(contexts: Path) -> None:
    pipeline = load_manifests([EXAMPLE])[0].pipeline
    ends = endpoints_for(resolve_target(), pipeline)
    assert ends.connect.url == "http://127.0.0.1:8083"  # the manifest names its url explicitly
    assert ends.contact_points == ("10.0.0.1:9042", "[2001:db8::3]:9042")
    assert ends.kafka.servers == "kafka1:9094"
    assert ends.kafka.tls
    assert ends.postgres_host == "pg.internal"
    assert ends.postgres_port == 5432  # the context does not say: the manifest's
    assert ends.local_datacenter == "datacenter1"
    chosen = endpoints_for(resolve_target(context="prod"), pipeline)
    assert chosen.connect.url == "https://connect.prod.example:8083"  # --context wins


def test_bad_contexts_are_manifest_errors(contexts: Path) -> None:
    contexts.write_text(json.dumps({"contexts": {"x": {"connect": {"url": "ftp://x"}}}}))
    with pytest.raises(ManifestError):
        resolve_target(context="x")
    contexts.write_text(
        json.dumps({"contexts": {"x": {"connect": {"url": "https://x", "username": "u"}}}})
    )
    with pytest.raises(ManifestError):
        resolve_target(context="x")


def test_context_secrets_are_references_only() -> None:
    with pytest.raises(ValueError, match="password"):
        Context.model_validate(
            {"connect": {"url": "https://x", "password": "x"}}
        )  # pragma: allowlist secret


def test_ipv6_and_bare_hosts() -> None:
    assert split_host_port("[::1]:9042") == ("::1", 9042)
    assert split_host_port("[2001:db8::3]") == ("2001:db8::3", 9042)
    assert split_host_port("10.0.0.1:19042") == ("10.0.0.1", 19042)
    assert split_host_port("cass-1") == ("cass-1", 9042)
    assert split_host_port("::1") == ("::1", 9042)


@pytest.mark.parametrize("password", NASTY)
def test_properties_round_trip_exactly(password: str) -> None:
    text = dump_properties({"password": password, "user": "cdc"})
    assert load_properties(text) == {"password": password, "user": "cdc"}
    assert text.isascii()  # java.util.Properties reads ISO-8859-1: non-ASCII is \\uXXXX


def test_agent_bundles_plan_compares_with_what_apply_recorded() -> None:
    recorded = recorded_bundles({AGENT_BUNDLES_KEY: json.dumps({"n1": "aaa", "n2": "bbb"})})
    changes = plan_agent_bundles("p", {"n1": "aaa", "n2": "ccc", "n3": "ddd"}, recorded)
    by_node = {c.name: c.action for c in changes}
    assert by_node == {"n1": "noop", "n2": "update", "n3": "create"}
    gone = plan_agent_bundles("p", {}, {"n1": "aaa"})
    assert [(c.name, c.action) for c in gone] == [("n1", "delete")]
    assert recorded_bundles({AGENT_BUNDLES_KEY: "not json"}) == {}


def _validate_answer(probe_value: str | None, status: int = 200) -> Any:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        if status != 200:
            return httpx.Response(status, json={"error_code": status, "message": "vault: no key"})
        configs = [{"value": {"name": "errors.deadletterqueue.topic.name", "value": probe_value}}]
        return httpx.Response(200, json={"name": "x", "error_count": 0, "configs": configs})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("answer", "missing"),
    [("echo", True), ("resolved", False), ("refused", False)],
)
def test_a_missing_vault_provider_is_found_before_anything_is_put(
    monkeypatch: pytest.MonkeyPatch, answer: str, missing: bool
) -> None:
    from controlplane.adapters.connect import ConnectClient
    from controlplane.core.errors import ConnectError
    from controlplane.core.target import ConnectAccess, Target
    from controlplane.services import apply

    sink = {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "connection.password": "${vault:secret/cdc/postgres:password}",
    }
    probe = "${vault:secret/cdc/postgres:__cdcctl_provider_probe__}"
    transport = {
        "echo": _validate_answer(probe),
        "resolved": _validate_answer(None),
        "refused": _validate_answer(None, status=500),
    }[answer]
    monkeypatch.setattr(
        apply,
        "connect_client",
        lambda access, target, timeout=10.0: ConnectClient(access.url, transport=transport),
    )
    target = Target(name="prod", connect=ConnectAccess(url="https://connect:8083"))
    if missing:
        with pytest.raises(ConnectError, match="no `vault` config provider") as info:
            apply.check_vault_provider(target.connect, target, sink)
        assert info.value.exit_code == 5
    else:
        apply.check_vault_provider(target.connect, target, sink)


def test_columns_the_sink_cannot_write_safely_stop_the_plan() -> None:
    from controlplane.core.ddl import UnsafeIdentifierError
    from controlplane.core.schema_model import TableModel
    from controlplane.services.apply import _check_sink_identifiers

    def table(column: str) -> TableModel:
        rows = [
            {"column_name": "id", "type": "int", "kind": "partition_key", "position": 0},
            {"column_name": column, "type": "text", "kind": "regular", "position": -1},
        ]
        return TableModel.from_system_schema("ks", "t", rows)

    _check_sink_identifiers(table("fine name"))
    with pytest.raises(UnsafeIdentifierError, match="double quote") as info:
        _check_sink_identifiers(table('x") VALUES (1); --'))
    assert info.value.exit_code == 5


# --- Cassandra TLS and login, Redis TLS and ACL user (decision 0110) -----------------------------

SECURE_CONTEXTS = """\
currentContext: prod
contexts:
  prod:
    cassandra:
      contactPoints: ["10.0.0.1:9042"]
      tls: {caFile: /etc/ssl/ca.pem}
      username: cdcctl
      passwordSecret: {env: CASS_PW}
    redis:
      url: "rediss://cdcctl@redis.internal:6380/0"
      caFile: /etc/ssl/ca.pem
      passwordSecret: {env: REDIS_PW}
"""


def test_cassandra_and_redis_security_from_a_context(
    contexts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controlplane.services.targets import cassandra_security, redis_endpoint

    contexts.write_text(SECURE_CONTEXTS)
    monkeypatch.setenv("CASS_PW", "cass-secret-1")  # pragma: allowlist secret
    monkeypatch.setenv("REDIS_PW", "redis-secret-2")  # pragma: allowlist secret
    target = resolve_target()
    sec = cassandra_security(target)
    assert (sec.tls, sec.ca_file, sec.username, sec.password) == (
        True,
        "/etc/ssl/ca.pem",
        "cdcctl",
        "cass-secret-1",
    )
    assert "cass-secret-1" not in repr(sec)
    redis = redis_endpoint(target)
    assert redis.url == "rediss://cdcctl@redis.internal:6380/0"
    assert (redis.password, redis.ca_file) == ("redis-secret-2", "/etc/ssl/ca.pem")
    assert "redis-secret-2" not in repr(redis) + str(redis)
    # --redis-url naming the user keeps the password; one without a user gets none
    other = "rediss://cdcctl@other:6380/0"
    assert redis_endpoint(target, other).password == "redis-secret-2"  # pragma: allowlist secret
    assert redis_endpoint(target, "redis://127.0.0.1:7000/0").password is None


def test_a_context_names_kafka_client_certificate(contexts: Path) -> None:
    contexts.write_text(
        "contexts:\n  k:\n    kafka:\n      bootstrapServers: ['k1:9093']\n"
        "      tls: {caFile: /ca.pem, certFile: /me.crt, keyFile: /me.key}\n"
    )
    pipeline = load_manifests([EXAMPLE])[0].pipeline
    ends = endpoints_for(resolve_target(context="k"), pipeline)
    assert ends.kafka.servers == "k1:9093"
    assert (ends.kafka.tls, ends.kafka.ca_file) == (True, "/ca.pem")
    assert (ends.kafka.cert_file, ends.kafka.key_file) == ("/me.crt", "/me.key")


def test_a_context_without_security_connects_as_before(contexts: Path) -> None:
    from controlplane.services.targets import cassandra_security, redis_endpoint

    target = resolve_target()  # PROD: no cassandra tls/login, redis without password
    assert cassandra_security(target).tls is False
    assert cassandra_security(target).username is None
    assert redis_endpoint(target).password is None


@pytest.mark.parametrize(
    ("section", "body", "message"),
    [
        ("cassandra", "{username: cdcctl}", "both username and passwordSecret"),
        ("cassandra", "{passwordSecret: {env: X}}", "both username and passwordSecret"),
        ("cassandra", "{tls: {caFile: ''}}", "at least 1 character"),
        ("redis", '{url: "redis://h:6379/0", caFile: /ca.pem}', "rediss://"),
        (
            "redis",
            "{url: 'rediss://u:hunter2@h:6380/0'}",  # pragma: allowlist secret
            "holds a password",
        ),
        ("redis", "{url: 'rediss://h:1/0', password: x}", "password"),
        ("kafka", "{tls: {certFile: /c.pem}}", "both certFile and keyFile"),
        ("kafka", "{tls: {keyFile: /k.pem}}", "both certFile and keyFile"),
        ("kafka", "{tls: {caFile: /ca.pem, password: x}}", "Extra inputs"),
        ("kafka", "{bootstrapServers: []}", "at least 1 item"),
    ],
)
def test_bad_security_settings_are_located_errors(
    contexts: Path, section: str, body: str, message: str
) -> None:
    contexts.write_text(f"contexts:\n  x:\n    {section}: {body}\n")
    with pytest.raises(ManifestError, match=message) as exc:
        resolve_target(context="x")
    # file:line:column of the context that is wrong, and never the password itself
    assert exc.value.location is not None
    assert exc.value.location.startswith(f"{contexts}:3:")
    assert "hunter2" not in str(exc.value)


def test_the_local_stack_target_is_tls_and_logins_unless_insecure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controlplane.core.stack_model import StackChoices, choices_document

    monkeypatch.setenv("CDCCTL_CONFIG", str(tmp_path / "none.yaml"))
    root = tmp_path / "st"
    target = resolve_target(state_dir=root)
    assert target.cassandra.tls is not None
    assert target.cassandra.tls.ca_file == str(root.resolve() / "secrets" / "postgres-ca.crt")
    assert target.cassandra.username == "cdcctl"
    assert target.cassandra.password_secret is not None
    assert target.cassandra.password_secret.key == "password"
    assert target.redis.url == "rediss://cdcctl@127.0.0.1:6379/0"
    assert target.redis.password_secret is not None
    assert target.local is not None
    assert target.local.agent_security is not None
    # Kafka: TLS with cdcctl's client certificate; the agents' PEM key store (decision 0114)
    secrets = root.resolve() / "secrets"
    assert target.kafka.tls is not None
    assert target.kafka.tls.ca_file == str(secrets / "postgres-ca.crt")
    assert target.kafka.tls.cert_file == str(secrets / "kafka-client-cdcctl.crt")
    assert target.kafka.tls.key_file == str(secrets / "kafka-client-cdcctl.key")
    assert target.local.agent_kafka_tls is not None
    assert target.local.agent_kafka_tls.keystore_file == str(secrets / "kafka-client-agent.pem")
    assert target.connect.url.startswith("https://")
    root.mkdir()
    (root / "stack.json").write_text(choices_document(StackChoices(insecure=True)))
    plain = resolve_target(state_dir=root)
    assert plain.cassandra.tls is None
    assert plain.cassandra.username is None
    assert plain.redis.url == "redis://127.0.0.1:6379/0"
    assert plain.local is not None
    assert plain.local.agent_security is None
    assert plain.kafka.tls is None
    assert plain.local.agent_kafka_tls is None
    assert plain.connect.url == "http://127.0.0.1:8083"
    assert plain.connect.username is None


def test_redacted_urls() -> None:
    from controlplane.core.target import RedisEndpoint, redact_url, url_user

    assert redact_url("rediss://u:pw@h:1/0") == "rediss://u:***@h:1/0"  # pragma: allowlist secret
    assert redact_url("rediss://u@h:1/0") == "rediss://u@h:1/0"
    assert redact_url("redis://:pw@h/0") == "redis://:***@h/0"
    assert url_user("rediss://cdcctl@h:1/0") == "cdcctl"
    assert url_user("redis://h:1/0") is None
    inline = "rediss://u:pw@h:1/0"  # pragma: allowlist secret
    assert str(RedisEndpoint(inline, password="x")) == "rediss://u:***@h:1/0"

"""The stack model's pure parts: ports, the Prometheus command line and its rendered config."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest
import yaml

from controlplane.core.stack_model import (
    KAFKA_CLIENTS,
    LOCAL_PG_SECRET_PATH,
    SERVICE_ORDER,
    Ports,
    StackLayout,
    StackSettings,
    cert_extensions,
    client_cert_extensions,
    connect_command,
    connect_jaas_config,
    kafka_client_subject,
    needs_server_cert,
    openbao_version,
    parse_settings_document,
    port_offset_of,
    prometheus_command,
    prometheus_version,
    settings_document,
    split_kv_path,
    stack_settings,
    template_context,
    vault_command,
    vault_connect_policy,
)

ROOT = Path(__file__).resolve().parents[2]
NATIVE_CONFIG = ROOT / "compose" / "native" / "config"


def render(template: str, settings: StackSettings, **extra: object) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(NATIVE_CONFIG),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML
    )
    return env.get_template(template).render(**template_context(settings, **extra))  # type: ignore[arg-type]


def settings(root: Path = Path("/stack"), offset: int = 0) -> StackSettings:
    return StackSettings(layout=StackLayout(root=root), ports=Ports().shifted(offset))


def test_prometheus_default_port_is_designs() -> None:
    assert Ports().prometheus == 9090  # DESIGN.md, default local endpoints
    assert Ports().of("prometheus") == [9090]


def test_shifted_moves_every_port_including_prometheus() -> None:
    base, moved = Ports(), Ports().shifted(20000)
    assert moved.prometheus == 29090
    assert {k: v + 20000 for k, v in vars(base).items()} == vars(moved)


def test_every_service_has_ports_and_prometheus_starts_after_connect() -> None:
    for svc in SERVICE_ORDER:
        assert Ports().of(svc)
    assert SERVICE_ORDER.index("prometheus") > SERVICE_ORDER.index("connect")


def test_default_ports_do_not_collide() -> None:
    ports = list(vars(Ports()).values())
    assert len(ports) == len(set(ports))


def test_prometheus_command_binds_loopback_and_keeps_state_in_the_state_dir() -> None:
    s = settings(Path("/st"), 1000)
    argv = prometheus_command(Path("/usr/bin/prometheus"), s)
    assert argv[0] == "/usr/bin/prometheus"
    assert "--web.listen-address=127.0.0.1:10090" in argv
    assert "--config.file=/st/config/prometheus.yml" in argv
    assert "--storage.tsdb.path=/st/prometheus/data" in argv
    assert "--storage.tsdb.retention.time=2d" in argv


def test_rendered_prometheus_config_scrapes_connect_and_itself() -> None:
    conf = yaml.safe_load(render("prometheus.yml.j2", settings(offset=1000)))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in conf["scrape_configs"]}
    assert jobs == {
        "kafka-connect": ["127.0.0.1:10404"],
        "cassandra-cdc": ["127.0.0.1:10500"],
        "cdcctl-serve": ["127.0.0.1:10600"],
        "cassandra": ["127.0.0.1:10410"],
        "debezium-agent": ["127.0.0.1:10420"],
        "prometheus": ["127.0.0.1:10090"],
    }
    assert conf["rule_files"] == ["alerts.yml"]


def test_rendered_config_uses_the_dashboards_job_name() -> None:
    # The alert rules select on job="kafka-connect"; both configs must name the job alike.
    ours = yaml.safe_load(render("prometheus.yml.j2", settings()))
    theirs = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    assert {j["job_name"] for j in theirs["scrape_configs"]} <= {
        j["job_name"] for j in ours["scrape_configs"]
    }
    assert ours["global"]["scrape_interval"] == theirs["global"]["scrape_interval"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_promtool_accepts_the_rendered_config(tmp_path: Path) -> None:
    (tmp_path / "prometheus.yml").write_text(render("prometheus.yml.j2", settings(tmp_path)))
    shutil.copy2(ROOT / "dashboards" / "alerts.yml", tmp_path / "alerts.yml")
    out = subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5)\n", "2.42.0"),
        ("prometheus, version 3.1.0 (branch: HEAD, revision: abc)\n  build user: x\n", "3.1.0"),
        ("something else\n", "?"),
    ],
)
def test_prometheus_version(text: str, version: str) -> None:
    assert prometheus_version(text) == version


# --- OpenBao, secure mode, the stack's CA ----------------------------------------------------


def test_vault_and_kafka_ports_are_the_designs_and_shift() -> None:
    assert (Ports().vault, Ports().kafka) == (8200, 9092)
    moved = Ports().shifted(20000)
    assert (moved.vault, moved.kafka) == (28200, 29092)
    assert Ports().of("vault") == [8200, 8201]
    # One client listener (TLS + client certificates, or plain with --insecure) and the
    # controller's: no second Kafka port (decision 0114).
    assert Ports().of("kafka") == [9092, 9093]


def test_vault_starts_after_postgres_and_redis_and_before_connect() -> None:
    order = SERVICE_ORDER.index
    assert order("postgres") < order("vault")
    assert order("redis") < order("vault")
    assert order("vault") < order("kafka") < order("connect")


def test_layout_names_other_code_relies_on(tmp_path: Path) -> None:
    lay = StackLayout(root=tmp_path)
    assert lay.ca_file == lay.postgres_ca_file == tmp_path / "secrets" / "postgres-ca.crt"
    assert lay.settings_file == tmp_path / "stack.json"
    assert lay.vault_token_file.parent == lay.secrets_dir
    assert lay.vault_connect_token_file.parent == lay.secrets_dir
    assert lay.connect_credentials_file.parent == lay.secrets_dir
    assert lay.server_cert("vault") == tmp_path / "secrets" / "vault-server.crt"
    assert lay.postgres_server_cert == lay.server_cert("postgres")
    assert lay.postgres_server_key == lay.server_key("postgres")
    assert not lay.connect_secrets_dir.is_relative_to(lay.secrets_dir)
    assert LOCAL_PG_SECRET_PATH == "secret/cdc/postgres"  # pragma: allowlist secret
    assert split_kv_path(LOCAL_PG_SECRET_PATH) == ("secret", "cdc/postgres")


def test_which_services_get_a_server_certificate() -> None:
    default, insecure = settings(), replace(settings(), insecure=True)
    # Cassandra, Redis (decision 0110), Kafka and Connect REST (0114) use TLS by default.
    assert [s for s in SERVICE_ORDER if needs_server_cert(s, insecure)] == ["postgres", "vault"]
    assert [s for s in SERVICE_ORDER if needs_server_cert(s, default)] == [
        "postgres",
        "redis",
        "vault",
        "kafka",
        "cassandra",
        "connect",
    ]


def props(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


def test_connect_file_providers_read_only_connect_secrets() -> None:
    conf = props(render("connect-distributed.properties.j2", replace(settings(), insecure=True)))
    assert conf["config.providers"] == "file,directory,env"
    assert conf["config.providers.file.param.allowed.paths"] == "/stack/connect-secrets"
    assert conf["config.providers.directory.param.allowed.paths"] == "/stack/connect-secrets"
    assert conf["config.providers.env.param.allowlist.pattern"] == "^CDC_.*"
    assert conf["listeners"] == "http://127.0.0.1:8083"
    assert not [k for k in conf if k.startswith(("listeners.https", "rest.extension"))]


def test_connect_vault_provider_when_its_jar_is_installed() -> None:
    s = settings(offset=1000)
    conf = props(render("connect-distributed.properties.j2", s, vault_provider=True))
    assert conf["config.providers"] == "file,directory,env,vault"
    assert conf["config.providers.vault.class"] == "io.casscdcpg.config.VaultConfigProvider"
    assert conf["config.providers.vault.param.address"] == "https://127.0.0.1:9200"
    assert conf["config.providers.vault.param.token.file"] == str(s.layout.vault_connect_token_file)
    assert conf["config.providers.vault.param.ca.file"] == str(s.layout.ca_file)


def test_connect_serves_https_with_basic_auth_by_default() -> None:
    s = settings(offset=1000)
    conf = props(render("connect-distributed.properties.j2", s, connect_store_password="pw"))
    assert conf["listeners"] == "https://127.0.0.1:9083"
    assert conf["rest.advertised.listener"] == "https"
    assert conf["rest.extension.classes"] == (
        "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
    )
    https = {k.removeprefix("listeners.https."): v for k, v in conf.items() if "https." in k}
    assert https["ssl.keystore.type"] == https["ssl.truststore.type"] == "PKCS12"
    assert https["ssl.keystore.location"] == str(s.layout.connect_keystore)
    assert https["ssl.truststore.location"] == str(s.layout.connect_truststore)
    assert https["ssl.keystore.password"] == https["ssl.truststore.password"] == "pw"
    argv = connect_command(Path("/java"), Path("/lib"), s)
    assert f"-Djava.security.auth.login.config={s.layout.connect_jaas_file}" in argv
    plain = connect_command(Path("/java"), Path("/lib"), replace(settings(), insecure=True))
    assert not [a for a in plain if "login.config" in a]


def test_connect_worker_kafka_clients_use_tls_and_its_client_certificate() -> None:
    s = settings(offset=1000)
    conf = props(render("connect-distributed.properties.j2", s, connect_store_password="pw"))
    # The worker's own clients, the connectors' producers and consumers, the admin client (DLQ).
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert conf[f"{prefix}security.protocol"] == "SSL"
        assert conf[f"{prefix}ssl.truststore.type"] == conf[f"{prefix}ssl.keystore.type"] == "PEM"
        assert conf[f"{prefix}ssl.truststore.location"] == str(s.layout.ca_file)
        assert conf[f"{prefix}ssl.keystore.location"] == str(s.layout.kafka_client_pem("connect"))
        assert f"{prefix}ssl.keystore.password" not in conf  # a PEM key store without secrets
    plain = props(render("connect-distributed.properties.j2", replace(s, insecure=True)))
    assert not [k for k in plain if "security.protocol" in k or k.startswith("ssl.")]


def test_agent_produces_over_tls_with_its_client_certificate() -> None:
    s = settings(offset=1000)
    conf = props(render("agent.properties.j2", s))
    assert conf["kafka.producer.security.protocol"] == "SSL"
    assert conf["kafka.producer.ssl.truststore.location"] == str(s.layout.ca_file)
    assert conf["kafka.producer.ssl.keystore.location"] == str(s.layout.kafka_client_pem("agent"))
    assert not [k for k in conf if "password" in k]
    plain = props(render("agent.properties.j2", replace(s, insecure=True)))
    assert "kafka.producer.security.protocol" not in plain


def test_jaas_file_names_the_property_file_login_module() -> None:
    text = connect_jaas_config(Path("/s/users.properties"))
    assert text.startswith("KafkaConnect {")
    assert (
        "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required"
        in text
    )
    assert 'file="/s/users.properties";' in text


def test_kafka_has_only_tls_listeners_requiring_client_certificates() -> None:
    s = settings(offset=1000)
    conf = props(render("kafka-server.properties.j2", s))
    assert conf["listeners"].split(",") == [
        "SSL://127.0.0.1:10092",
        "CONTROLLER://127.0.0.1:10093",
    ]
    assert conf["advertised.listeners"] == "SSL://127.0.0.1:10092"
    assert conf["listener.security.protocol.map"] == "SSL:SSL,CONTROLLER:SSL"
    assert conf["inter.broker.listener.name"] == "SSL"
    assert conf["ssl.client.auth"] == "required"
    assert conf["ssl.keystore.type"] == conf["ssl.truststore.type"] == "PEM"
    assert conf["ssl.keystore.location"] == str(s.layout.kafka_keystore_pem)
    assert conf["ssl.truststore.location"] == str(s.layout.ca_file)
    assert "PLAINTEXT" not in render("kafka-server.properties.j2", s).split("{% else %}")[0]
    plain = props(render("kafka-server.properties.j2", replace(s, insecure=True)))
    assert "SSL" not in plain["listeners"]
    assert "ssl.client.auth" not in plain


def test_kafka_broker_certificate_is_a_client_one_too_and_clients_are_named() -> None:
    assert "extendedKeyUsage=serverAuth,clientAuth" in cert_extensions("kafka")
    assert "extendedKeyUsage=serverAuth\n" in cert_extensions("connect")
    assert "extendedKeyUsage=clientAuth" in client_cert_extensions()
    assert "subjectAltName" not in client_cert_extensions()
    assert KAFKA_CLIENTS == ("connect", "agent", "cdcctl")
    assert kafka_client_subject("agent") == "/O=cass-cdc-pg/CN=agent"


def test_openbao_config_is_a_real_server_on_loopback_with_tls() -> None:
    s = settings(Path("/st"), 1000)
    text = render("openbao.hcl.j2", s)
    assert 'storage "pebbledb"' in text
    assert 'path = "/st/vault/data"' in text
    assert 'address         = "127.0.0.1:9200"' in text
    assert 'tls_cert_file   = "/st/secrets/vault-server.crt"' in text
    assert 'tls_key_file    = "/st/secrets/vault-server.key"' in text
    assert 'api_addr     = "https://127.0.0.1:9200"' in text
    assert 'cluster_address = "127.0.0.1:9201"' in text
    assert "dev" not in text.split("#")[-1]
    assert vault_command(Path("/v/bao"), s) == [
        "/v/bao",
        "server",
        "-config=/st/config/openbao.hcl",
    ]


def test_connect_policy_reads_pipeline_secrets_only() -> None:
    assert vault_connect_policy() == 'path "secret/data/cdc/*" {\n  capabilities = ["read"]\n}\n'


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("OpenBao v2.7.2 (9e0a0d3c), built 2026-10-26T20:32:27Z\n", "2.7.2"),
        ("nothing\n", "?"),
    ],
)
def test_openbao_version(text: str, version: str) -> None:
    assert openbao_version(text) == version


# --- stack.json ---------------------------------------------------------------------------


def test_settings_document_round_trip() -> None:
    # `secure` of old files is read and ignored (decision 0114): the second value is insecure.
    assert parse_settings_document(settings_document(20000, True)) == (20000, False)
    assert json.loads(settings_document(0, False)) == {"port_offset": 0, "secure": False}
    assert parse_settings_document("{}") == (0, False)
    assert parse_settings_document('{"insecure": true}') == (0, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "must hold an object"),
        ('{"port_offset": -1}', "non-negative integer"),
        ('{"port_offset": true}', "non-negative integer"),
        ('{"secure": "yes"}', "true or false"),
        ("{", "not JSON"),
    ],
)
def test_settings_document_errors(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_settings_document(text)


def test_port_offset_of_recovers_uniform_shifts_only() -> None:
    assert port_offset_of(Ports()) == 0
    assert port_offset_of(Ports().shifted(31000)) == 31000
    assert port_offset_of(replace(Ports(), redis=1234)) is None
    s = stack_settings(Path("/x"), 5)
    assert (s.ports, s.tls, s.layout.root) == (Ports().shifted(5), True, Path("/x"))

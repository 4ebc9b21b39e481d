"""Manifest v1: models, loader, positions of errors, schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from controlplane.core.errors import ManifestError
from controlplane.core.manifest import API_VERSION, Pipeline, manifest_json_schema
from controlplane.core.manifest_loader import (
    STDIN,
    check_manifests,
    check_text,
    load_manifests,
    load_text,
    suggest,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml"


def manifest(name: str = "demo", *, extra_spec: str = "", prefix: str = "") -> str:
    """A minimal valid manifest; line numbers below refer to this layout."""
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
              keyspace: demo
              tables: [users, orders]
          sink:
            postgres:
              user: cdc
              passwordSecret: {{env: CDC_PG_PASSWORD}}
        """
        )
        + (textwrap.indent(textwrap.dedent(extra_spec), "  ") if extra_spec else "")
        + prefix
    )


def problems_of(text: str, source: str = "p.yaml") -> list[tuple[str | None, str, str | None]]:
    _, problems = check_text(text, source)
    return [(p.location, p.message, p.hint) for p in problems]


# --- valid -----------------------------------------------------------------------------------


def test_example_manifest_is_valid() -> None:
    [loaded] = load_manifests([EXAMPLE])
    p = loaded.pipeline
    assert p.name == "demo"
    assert p.tables == ["users", "orders"]
    assert p.spec.sink.postgres.password_secret.describe() == "vault:secret/cdc/postgres#password"
    assert loaded.location == f"{EXAMPLE}:6:9"


def test_defaults_are_resolved() -> None:
    [loaded] = load_text(manifest())
    p = loaded.pipeline
    assert p.topic_prefix == "demo"
    assert p.dlq_topic == "demo.dlq"
    assert p.spec.source.cassandra.contact_points == ["127.0.0.1:9042"]
    assert p.spec.source.cassandra.local_datacenter == "datacenter1"
    assert p.spec.source.agent.snapshot_mode == "initial"
    assert p.spec.kafka.bootstrap_servers == ["127.0.0.1:9092"]
    assert p.spec.connect.url == "http://127.0.0.1:8083"
    assert (p.spec.sink.postgres.host, p.spec.sink.postgres.port) == ("127.0.0.1", 5432)
    assert p.spec.options.errors_tolerance == "all"
    assert loaded.source == STDIN


def test_topics_regex_covers_tables_and_tombstones_only() -> None:
    import re

    p = load_text(manifest())[0].pipeline
    regex = re.compile(p.topics_regex)
    for topic in ("demo.demo.users", "demo.demo.orders", "demo.demo.users.tombstones"):
        assert regex.fullmatch(topic)
    for topic in ("demo.demo.other", "demo.dlq", "demoXdemo.users", "demo.demo.users.x"):
        assert not regex.fullmatch(topic)


@pytest.mark.parametrize(
    "secret",
    [
        "{env: PGPASS}",
        "{file: /run/secrets/pg.properties, key: password}",
        "{vault: {path: secret/cdc/pg, key: password}}",
    ],
)
def test_each_secret_reference_kind(secret: str) -> None:
    text = manifest().replace("{env: CDC_PG_PASSWORD}", secret)
    [loaded] = load_text(text)
    assert loaded.pipeline.spec.sink.postgres.password_secret.kind in ("env", "file", "vault")


# --- errors with exact positions ---------------------------------------------------------------


def test_unknown_key_with_suggestion() -> None:
    text = manifest().replace("      keyspace: demo", "      keyspace: demo\n      tabels: [x]")
    [(location, message, hint)] = problems_of(text)
    assert location == "p.yaml:9:7"
    assert message == "unknown key 'tabels' in spec.source.cassandra"
    assert hint is not None
    assert hint.startswith("did you mean 'tables'?")
    assert "contactPoints" in hint


def test_unknown_top_level_key() -> None:
    text = "apiVersoin: x\n" + manifest()
    found = problems_of(text)
    assert ("p.yaml:1:1", "unknown key 'apiVersoin' in the document") in [f[:2] for f in found]
    assert any(h and "did you mean 'apiVersion'?" in h for _, _, h in found)


def test_bad_value_points_at_the_value() -> None:
    text = manifest(extra_spec="kafka:\n  bootstrapServers: [localhost]\n")
    [(location, message, _)] = problems_of(text)
    assert location == "p.yaml:15:24"  # the list item
    assert message.startswith("spec.kafka.bootstrapServers[0]: 'localhost' is not host:port")


def test_enum_value() -> None:
    text = manifest().replace(
        "      tables: [users, orders]\n",
        "      tables: [users, orders]\n    agent:\n      snapshotMode: sometimes\n",
    )
    [(location, message, _)] = problems_of(text)
    assert location == "p.yaml:11:21"
    assert (
        message == "spec.source.agent.snapshotMode: Input should be 'initial', 'never' or 'always'"
    )


def test_missing_key_points_at_parent() -> None:
    text = manifest().replace("      user: cdc\n", "")
    [(location, message, _)] = problems_of(text)
    assert location == "p.yaml:11:5"  # the `postgres:` key
    assert message == "missing required key 'user' in spec.sink.postgres"


def test_missing_top_level_section() -> None:
    text = "apiVersion: cdc.casscdcpg.io/v1\nkind: Pipeline\nmetadata: {name: x}\n"
    [(location, message, _)] = problems_of(text)
    assert location == "p.yaml:1:1"
    assert message == "missing required key 'spec' in the document"


def test_invalid_name() -> None:
    [(location, message, _)] = problems_of(manifest(name="Demo_1"))
    assert location == "p.yaml:4:9"
    assert "'Demo_1' is not a DNS label" in message


def test_wrong_api_version_has_hint() -> None:
    text = manifest().replace(API_VERSION, "cdc.casscdcpg.io/v2")
    [(location, _, hint)] = problems_of(text)
    assert location == "p.yaml:1:13"
    assert hint == f"this cdcctl reads apiVersion {API_VERSION}"


def test_inline_password_is_rejected_with_hint() -> None:
    text = manifest().replace(
        "      passwordSecret: {env: CDC_PG_PASSWORD}\n", "      password: hunter2\n"
    )
    found = problems_of(text)
    assert [f[:2] for f in found] == [
        ("p.yaml:11:5", "missing required key 'passwordSecret' in spec.sink.postgres"),
        ("p.yaml:13:7", "unknown key 'password' in spec.sink.postgres"),
    ]
    assert found[1][2] is not None
    assert "inline passwords are not allowed" in found[1][2]
    assert all("hunter2" not in (m + (h or "")) for _, m, h in found)


def test_password_secret_as_plain_string() -> None:
    text = manifest().replace("{env: CDC_PG_PASSWORD}", "hunter2")
    [(location, message, hint)] = problems_of(text)
    assert location == "p.yaml:13:23"
    assert message.startswith("spec.sink.postgres.passwordSecret:")
    assert hint is not None
    assert "passwordSecret: {env: VAR}" in hint


def test_secret_reference_needs_exactly_one_source() -> None:
    text = manifest().replace("{env: CDC_PG_PASSWORD}", "{env: A, vault: {path: p, key: k}}")
    [(location, message, _)] = problems_of(text)
    assert location == "p.yaml:13:23"
    assert "exactly one of env, file or vault (got env, vault)" in message


def test_file_secret_needs_key() -> None:
    text = manifest().replace("{env: CDC_PG_PASSWORD}", "{file: /run/pg.properties}")
    [(_, message, _)] = problems_of(text)
    assert "a file secret reference needs `key`" in message


def test_duplicate_table_and_dlq_loop() -> None:
    text = manifest().replace("[users, orders]", "[users, users]")
    [(location, message, _)] = problems_of(text)
    assert location == "p.yaml:9:15"
    assert "tables listed more than once: users" in message
    text = manifest(extra_spec="options:\n  dlqTopic: demo.demo.users\n")
    [(_, message, _)] = problems_of(text)
    assert "matches the sink's topics" in message


def test_several_errors_are_all_reported_and_the_first_is_raised() -> None:
    text = manifest(name="BAD").replace("tables: [users, orders]", "tables: []")
    assert len(problems_of(text)) == 2
    with pytest.raises(ManifestError) as info:
        load_text(text, "p.yaml")
    assert info.value.location == "p.yaml:4:9"
    assert "(and 1 more problem(s))" in info.value.message
    assert info.value.exit_code == 3


def test_yaml_syntax_error_has_position() -> None:
    [(location, message, _)] = problems_of("apiVersion: x\nkind: [unclosed\n")
    assert location == "p.yaml:3:1"
    assert message.startswith("invalid YAML")


def test_duplicate_yaml_key() -> None:
    text = manifest().replace("  name: demo\n", "  name: demo\n  name: again\n")
    [(location, message, _)] = problems_of(text)
    assert location == "p.yaml:5:3"
    assert message == "duplicate key 'name' (first at p.yaml:4:3)"


def test_non_mapping_document() -> None:
    [(location, message, _)] = problems_of("- just\n- a list\n")
    assert location == "p.yaml:1:1"
    assert message == "a manifest document must be a mapping"


def test_suggest() -> None:
    keys = ["contactPoints", "localDatacenter", "keyspace", "tables"]
    assert suggest("contact_points", keys) == "contactPoints"
    assert suggest("local_datacenter", keys) == "localDatacenter"
    assert suggest("zzz", keys) is None


# --- many documents and files ------------------------------------------------------------------


def test_multi_document_positions_are_per_file(tmp_path: Path) -> None:
    shared = "kafka: {topicPrefix: shared}\n"  # both read the same Cassandra node
    text = manifest("one", extra_spec=shared) + "---\n" + manifest("two", extra_spec=shared)
    path = tmp_path / "multi.yaml"
    path.write_text(text + "---\n")  # trailing empty document is ignored
    loaded = load_manifests([path])
    assert [m.pipeline.name for m in loaded] == ["one", "two"]
    assert loaded[1].location == f"{path}:19:9"


def test_error_in_second_document_has_absolute_line(tmp_path: Path) -> None:
    text = manifest("one") + "---\n" + manifest("Two")
    _, problems = check_text(text, "m.yaml")
    assert [p.location for p in problems] == ["m.yaml:18:9"]


def test_directory_is_read_sorted_and_only_yaml(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text(manifest("b", extra_spec="kafka: {topicPrefix: shared}\n"))
    (tmp_path / "a.yaml").write_text(manifest("a", extra_spec="kafka: {topicPrefix: shared}\n"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    loaded = load_manifests([tmp_path])
    assert [m.pipeline.name for m in loaded] == ["a", "b"]


def test_stdin(tmp_path: Path) -> None:
    loaded = load_manifests(["-"], read_stdin=lambda: manifest("from-stdin"))
    assert loaded[0].source == STDIN
    assert loaded[0].location == "<stdin>:4:9"


def test_duplicate_names_across_files_names_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(manifest("same"))
    (tmp_path / "b.yaml").write_text(manifest("same"))
    with pytest.raises(ManifestError) as info:
        load_manifests([tmp_path])
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert info.value.location == f"{b}:4:9"
    assert f"defined twice: {a}:4:9 and {b}:4:9" in info.value.message


def test_pipelines_sharing_a_cassandra_node_must_share_the_agent(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(manifest("a"))
    (tmp_path / "b.yaml").write_text(manifest("b"))
    _, problems = check_manifests([tmp_path])
    [problem] = problems
    assert "read Cassandra node 127.0.0.1:9042 but use different kafka.topicPrefix" in str(problem)


def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    _, problems = check_manifests([tmp_path / "nope.yaml", tmp_path])
    assert [p.message for p in problems] == [
        "no such file or directory",
        "directory holds no *.yaml or *.yml manifests",
    ]


# --- schema ------------------------------------------------------------------------------------


def test_json_schema() -> None:
    schema = manifest_json_schema()
    json.dumps(schema)  # serialisable
    assert schema["title"].startswith("cass-cdc-pg Pipeline manifest")
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert schema["additionalProperties"] is False
    postgres = schema["$defs"]["Postgres"]
    assert "passwordSecret" in postgres["required"]
    assert "password" not in postgres["properties"]
    assert schema["$defs"]["AgentOptions"]["properties"]["snapshotMode"]["enum"] == [
        "initial",
        "never",
        "always",
    ]


def test_models_are_immutable() -> None:
    p = load_text(manifest())[0].pipeline
    with pytest.raises(Exception, match="frozen"):
        p.kind = "Other"  # type: ignore[misc]
    assert isinstance(p, Pipeline)

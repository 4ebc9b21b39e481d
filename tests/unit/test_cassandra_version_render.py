"""spec.source.cassandra.version: parsed from the manifest, rendered into the sink's transform
(`transforms.cassandraToRow.cassandra.version`), so the 4.1 agent's dates are corrected
(docs/decisions/0113-cassandra-41-agent-values.md)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from controlplane.core.errors import ManifestError
from controlplane.core.manifest import SUPPORTED_CASSANDRA_VERSIONS
from controlplane.core.manifest_loader import check_text, load_text
from controlplane.core.render import RenderContext, render_sink_config

ROOT = Path(__file__).resolve().parents[2]
KEY = "transforms.cassandraToRow.cassandra.version"


def _manifest(version_line: str = "") -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: cdc.casscdcpg.io/v1
        kind: Pipeline
        metadata:
          name: demo
        spec:
          source:
            cassandra:
              keyspace: demo
              tables: [users]
              {version_line}
          sink:
            postgres:
              user: cdc
              passwordSecret: {{env: CDC_PG_PASSWORD}}
        """
    )


def _sink(version_line: str = "") -> dict[str, str]:
    [loaded] = load_text(_manifest(version_line))
    return render_sink_config(loaded.pipeline, RenderContext())


def test_default_is_50_and_rendered() -> None:
    [loaded] = load_text(_manifest())
    assert loaded.pipeline.spec.source.cassandra.version == "5.0"
    assert _sink()[KEY] == "5.0"


@pytest.mark.parametrize("version", ["4.1", "5.0"])
def test_quoted_version_is_rendered(version: str) -> None:
    assert _sink(f'version: "{version}"')[KEY] == version


def test_version_changes_the_config_hash() -> None:
    """apply PUTs the sink again (restarting its tasks with the option) when the version changes."""
    assert _sink('version: "4.1"')["cdcctl.config-hash"] != _sink()["cdcctl.config-hash"]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("version: 4.1", "is a number"),
        ("version: 5.0", "is a number"),
        ('version: "4.0"', "not a supported Cassandra version (5.0, 4.1)"),
        ('version: "4.1.7"', "not a supported Cassandra version"),
        ('version: "3.11"', "not a supported Cassandra version"),
    ],
)
def test_bad_versions_are_refused_with_a_reason(line: str, says: str) -> None:
    _, problems = check_text(_manifest(line), "p.yaml")
    assert problems, line
    assert any(says in p.message for p in problems), [p.message for p in problems]
    with pytest.raises(ManifestError):
        load_text(_manifest(line))


def test_transform_and_manifest_agree_on_the_versions() -> None:
    """The values the transform's ConfigDef accepts are the manifest's (ValidString.in(...))."""
    java = (
        ROOT / "transforms/src/main/java/io/casscdcpg/transforms/CassandraToRow.java"
    ).read_text()
    consts = dict(re.findall(r'CASSANDRA_VERSION_(\d+) = "([0-9.]+)"', java))
    assert sorted(consts.values()) == sorted(SUPPORTED_CASSANDRA_VERSIONS)
    assert re.search(
        r"define\(CASSANDRA_VERSION_CONFIG, ConfigDef\.Type\.STRING, CASSANDRA_VERSION_50", java
    )
    assert '"cassandra.version"' in java
    assert KEY.removeprefix("transforms.cassandraToRow.") == "cassandra.version"

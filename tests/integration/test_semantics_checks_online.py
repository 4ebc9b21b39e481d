"""The Cassandra adapter's table options and `cdcctl validate --online` semantics findings,
against the real local Cassandra (tables with cdc = false, so the shared agent never sees them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from controlplane.adapters import cassandra
from controlplane.core.semantics_checks import major_minor
from controlplane.services.validate import validate
from tests.manifests import local_pipeline
from tests.stackfixture import cql_cluster, ensure_stack, session_cassandra_version

pytestmark = pytest.mark.integration
KS = "sem_opts"


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    cluster = cql_cluster(ensure_stack())  # TLS and cdcctl's role (decision 0110)
    s = cluster.connect()
    s.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    s.execute(
        f"CREATE KEYSPACE {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    s.execute(
        f"CREATE TABLE {KS}.t (id int PRIMARY KEY, v text, l list<int>) "
        "WITH cdc = false AND default_time_to_live = 60"
    )
    s.execute(f"CREATE INDEX t_v_idx ON {KS}.t (v)")
    s.execute(f"CREATE TABLE {KS}.c (id int PRIMARY KEY, n counter)")
    s.execute(
        f"CREATE TABLE {KS}.n (id int PRIMARY KEY, dc decimal, vi varint, d date) WITH cdc = true"
    )
    yield s
    s.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    cluster.shutdown()


def test_table_options(session: Session) -> None:
    got = cassandra.table_options(session, KS, ["t", "nope"])
    assert got["t"].cdc is False
    assert got["t"].secondary_indexes == ("t_v_idx",)
    assert got["t"].default_time_to_live == 60
    assert got["nope"].exists is False


def test_validate_online_reports_semantics(session: Session, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(local_pipeline("sem-opts", KS, ["t", "c"]))
    _, findings = validate([manifest], online=True)
    messages = [f.message for f in findings if f.check == "cassandra"]
    assert any("has cdc = false" in m for m in messages)
    assert any(m.startswith("warning: ") and "non-frozen list" in m for m in messages)
    assert any(m.startswith("error: ") and "counter" in m for m in messages)


def test_release_version_is_the_session_stacks(session: Session) -> None:
    """validate --online knows the version it talks to (issue 13 item 4)."""
    assert major_minor(cassandra.release_version(session)) == session_cassandra_version()


def _declaring(version: str) -> str:
    text = local_pipeline("sem-ver", KS, ["n"])
    text = "\n".join(line for line in text.splitlines() if not line.startswith("      version:"))
    return text.replace("      keyspace:", f'      version: "{version}"\n      keyspace:', 1) + "\n"


def test_validate_online_findings_follow_the_version(session: Session, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(local_pipeline("sem-ver", KS, ["n"]))
    _, findings = validate([manifest], online=True)
    messages = [f.message for f in findings if f.check == "cassandra"]
    if session_cassandra_version() == "4.1":
        assert any(m.startswith("error: ") and "n.dc is decimal" in m for m in messages)
        assert any(m.startswith("error: ") and "n.vi is varint" in m for m in messages)
    else:
        assert messages == []


def test_validate_online_refuses_the_other_version(session: Session, tmp_path: Path) -> None:
    other = "5.0" if session_cassandra_version() == "4.1" else "4.1"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(_declaring(other))
    _, findings = validate([manifest], online=True)
    messages = [f.message for f in findings if f.check == "cassandra"]
    assert any(f"spec.source.cassandra.version is {other}" in m for m in messages), messages

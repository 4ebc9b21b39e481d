"""Findings that differ between Cassandra 4.1 and 5.0 sources (issue 13 item 4, decision 0113):
pure logic in core.semantics_checks, and `validate --online`'s Cassandra part with the adapter
faked at its boundary."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.errors import CassandraError
from controlplane.core.manifest_loader import load_text
from controlplane.core.schema_model import Column, TableModel
from controlplane.core.semantics_checks import (
    AGENTS,
    TableOptions,
    check_table,
    effective_version,
    major_minor,
    source_version_findings,
)
from controlplane.core.target import CassandraAccess
from controlplane.services import validate as validate_service


def table(*cols: tuple[str, str]) -> TableModel:
    columns = [Column(name="id", cql_type="int", kind="partition_key", position=0)]
    columns += [Column(name=n, cql_type=t, kind="regular") for n, t in cols]
    return TableModel(keyspace="ks", table="t", columns=tuple(columns))


def codes(t: TableModel, version: str | None = None) -> set[tuple[str, str]]:
    opts = TableOptions(cdc=True)
    found = check_table(t, opts) if version is None else check_table(t, opts, version)
    return {(f.severity, f.code) for f in found}


# --- per-version column findings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cql", "code"),
    [
        ("decimal", "decimal-lossy-on-41"),
        ("frozen<list<decimal>>", "decimal-lossy-on-41"),
        ("map<decimal, text>", "decimal-lossy-on-41"),
        ("tuple<int, decimal>", "decimal-lossy-on-41"),
        ("varint", "varint-wraps-on-41"),
        ("set<varint>", "varint-wraps-on-41"),
        ("frozen<tuple<text, varint>>", "varint-wraps-on-41"),
    ],
)
def test_decimal_and_varint_are_errors_on_41_only(cql: str, code: str) -> None:
    t = table(("v", cql))
    assert ("error", code) in codes(t, "4.1")
    assert not any(c == code for _, c in codes(t, "5.0"))
    assert codes(t) == codes(t, "5.0"), "5.0 is the default"


def test_decimal_and_varint_inside_a_udt_count_on_41() -> None:
    t = table(("a", "frozen<addr>"))
    opts = TableOptions(cdc=True, udts=(("addr", (("n", "varint"), ("d", "decimal"))),))
    found = {f.code for f in check_table(t, opts, "4.1")}
    assert {"decimal-lossy-on-41", "varint-wraps-on-41"} <= found
    assert not {"decimal-lossy-on-41", "varint-wraps-on-41"} & {
        f.code for f in check_table(t, opts, "5.0")
    }


def test_the_finding_names_the_agent_and_the_loss() -> None:
    [f] = [
        f
        for f in check_table(table(("v", "varint")), TableOptions(cdc=True), "4.1")
        if f.code == "varint-wraps-on-41"
    ]
    assert AGENTS["4.1"] in f.message
    assert "4362896299872285998" in f.message
    assert "bigint" in f.remedy
    assert "text" in f.remedy
    assert f.column == "v"


def test_a_date_on_41_is_info_corrected_by_the_transform() -> None:
    t = table(("d", "date"), ("ld", "frozen<list<date>>"))
    assert codes(t, "4.1") >= {("info", "date-raw-on-41")}
    assert not any(s == "error" for s, _ in codes(t, "4.1"))
    assert codes(t, "5.0") == set()


def test_a_vector_cannot_exist_on_41() -> None:
    t = table(("v", "vector<float, 3>"))
    assert ("error", "vector-not-in-41") in codes(t, "4.1")
    assert ("error", "vector-breaks-agent") not in codes(t, "4.1")
    assert ("error", "vector-breaks-agent") in codes(t, "5.0")


def test_findings_common_to_both_versions_stay() -> None:
    t = table(("l", "list<int>"), ("n", "list<frozen<list<date>>>"), ("c", "counter"))
    common = {("warning", "nonfrozen-collection"), ("error", "counter-table")}
    assert common <= codes(t, "4.1")
    assert common <= codes(t, "5.0")


def test_a_date_in_a_nested_collection_is_shifted_on_50_only() -> None:
    """The 4.1 agent writes every date raw, the nested one too, and the transform's 4.1
    correction covers it (seen on a 4.1 stack: tests/e2e/test_type_matrix.py, `nd`)."""
    t = table(("n", "list<frozen<list<date>>>"))
    assert ("error", "nested-date-shifted") in codes(t, "5.0")
    assert ("error", "nested-date-shifted") not in codes(t, "4.1")
    assert ("info", "date-raw-on-41") in codes(t, "4.1")


# --- the cluster's version against the manifest -----------------------------------------------


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("4.1.7", "4.1"),
        ("5.0.2", "5.0"),
        ("5.0-rc1", "5.0"),
        ("4.0.13", "4.0"),
        ("3.11.17", "3.11"),
        (" 4.1.7 ", "4.1"),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_major_minor(release: str | None, expected: str | None) -> None:
    assert major_minor(release) == expected


def test_effective_version_prefers_a_supported_cluster_version() -> None:
    assert effective_version("5.0", "4.1.7") == "4.1"
    assert effective_version("4.1", "5.0.2") == "5.0"
    assert effective_version("4.1", None) == "4.1"
    assert effective_version("5.0", "4.0.13") == "5.0"


def _version_codes(declared: str, release: str | None) -> list[tuple[str, str]]:
    return [(f.severity, f.code) for f in source_version_findings("ks", declared, release)]


def test_matching_versions_are_info() -> None:
    assert _version_codes("4.1", "4.1.7") == [("info", "cassandra-version")]
    assert _version_codes("5.0", "5.0.2") == [("info", "cassandra-version")]


def test_a_mismatch_is_an_error_naming_the_fix() -> None:
    [f] = source_version_findings("ks", "5.0", "4.1.7")
    assert (f.severity, f.code) == ("error", "cassandra-version-mismatch")
    assert "4.1.7" in f.message
    assert "raw day numbers" in f.message
    assert f.remedy == 'set spec.source.cassandra.version: "4.1"'
    [g] = source_version_findings("ks", "4.1", "5.0.2")
    assert "shift" in g.message
    assert g.remedy.endswith('"5.0"')


def test_unsupported_and_unknown_versions() -> None:
    assert _version_codes("5.0", "4.0.13") == [("error", "cassandra-version-unsupported")]
    assert _version_codes("5.0", "3.11.17") == [("error", "cassandra-version-unsupported")]
    assert _version_codes("5.0", None) == [("warning", "cassandra-version-unknown")]


# --- validate --online: the Cassandra part, adapter faked ---------------------------------------


class _FakeCassandra:
    """Stands in for controlplane.adapters.cassandra at the service's boundary."""

    def __init__(self, release: str | None, columns: dict[str, str]) -> None:
        self.release = release
        self.columns = columns
        self.shut = False

    def connect(self, *_: Any, **__: Any) -> tuple[Any, Any]:
        fake = self

        class Cluster:
            def shutdown(self) -> None:
                fake.shut = True

        return Cluster(), object()

    def release_version(self, _session: Any) -> str | None:
        return self.release

    def table_schemas(self, _s: Any, _ks: str, tables: list[str]) -> dict[str, Any]:
        rows = [{"column_name": "id", "type": "int", "kind": "partition_key", "position": 0}]
        rows += [
            {"column_name": n, "type": t, "kind": "regular", "position": -1}
            for n, t in self.columns.items()
        ]
        return {t: (True, rows) for t in tables}

    def table_options(self, _s: Any, _ks: str, tables: list[str]) -> dict[str, TableOptions]:
        return {t: TableOptions(cdc=True) for t in tables}


def _loaded(version_line: str = "") -> Any:
    text = textwrap.dedent(
        f"""\
        apiVersion: cdc.casscdcpg.io/v1
        kind: Pipeline
        metadata:
          name: demo
        spec:
          source:
            cassandra:
              keyspace: ks
              tables: [t]
              {version_line}
          sink:
            postgres:
              user: cdc
              passwordSecret: {{env: CDC_PG_PASSWORD}}
        """
    )
    [item] = load_text(text)
    return item


class _Endpoints:
    contact_points = ("127.0.0.1:9042",)
    local_datacenter = "datacenter1"


class _Target:
    cassandra = CassandraAccess()  # no TLS, no login: the fake session needs neither

    def hint(self, _what: str) -> str:
        return "hint"


def _messages(
    monkeypatch: pytest.MonkeyPatch, fake: _FakeCassandra, version_line: str = ""
) -> list[str]:
    for name in ("connect", "release_version", "table_schemas", "table_options"):
        monkeypatch.setattr(validate_service.cassandra, name, getattr(fake, name))
    found = validate_service._cassandra_findings(_loaded(version_line), _Target(), _Endpoints())  # type: ignore[arg-type]
    assert fake.shut
    assert all(f.check == "cassandra" for f in found)
    return [f.message for f in found]


def test_online_41_cluster_with_41_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeCassandra("4.1.7", {"dc": "decimal", "vi": "varint", "d": "date", "v": "text"})
    messages = _messages(monkeypatch, fake, 'version: "4.1"')
    assert len(messages) == 2, messages  # the date finding is info: not shown
    assert any(m.startswith("error: ks.t.dc is decimal") for m in messages)
    assert any(m.startswith("error: ks.t.vi is varint") for m in messages)


def test_online_41_cluster_with_default_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster's version decides the column findings; the mismatch is an error of its own."""
    fake = _FakeCassandra("4.1.7", {"dc": "decimal"})
    messages = _messages(monkeypatch, fake)
    assert any("spec.source.cassandra.version is 5.0" in m for m in messages), messages
    assert any("ks.t.dc is decimal" in m for m in messages), messages


def test_online_50_cluster_says_nothing_about_41(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeCassandra("5.0.2", {"dc": "decimal", "vi": "varint", "d": "date"})
    assert _messages(monkeypatch, fake) == []


def test_online_adapter_error_is_one_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeCassandra("4.1.7", {})

    def broken(_session: Any) -> str:
        raise CassandraError("cannot read release_version from system.local: boom")

    monkeypatch.setattr(fake, "release_version", broken)
    messages = _messages(monkeypatch, fake)
    assert messages == ["cannot read release_version from system.local: boom"]


def test_the_adapter_reads_system_local() -> None:
    """release_version lives in the adapter (third-party clients only there)."""
    source = (
        Path(__file__).resolve().parents[2] / "controlplane" / "adapters" / "cassandra.py"
    ).read_text()
    assert "def release_version(session: Session) -> str | None:" in source
    assert "SELECT release_version FROM system.local" in source

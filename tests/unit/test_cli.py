"""The CLI layer: help everywhere, machine-readable output, one error handler with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlplane.cli import app, main

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["stack"],
        ["stack", "up"],
        ["stack", "down"],
        ["stack", "status"],
        ["stack", "logs"],
        ["stack", "env"],
        ["apply"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_status_of_a_stack_never_started_is_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["stack", "status", "--state-dir", str(tmp_path), "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == [
        "postgres",
        "redis",
        "vault",
        "kafka",
        "cassandra",
        "connect",
        "agent",
        "cdc-exporter",
        "prometheus",
        "jaeger",
    ]
    assert {r["state"] for r in rows} == {"stopped"}
    assert all(r["pid"] is None for r in rows)


def test_status_yaml_and_table(tmp_path: Path) -> None:
    result = runner.invoke(app, ["stack", "status", "--state-dir", str(tmp_path), "-o", "yaml"])
    assert result.exit_code == 0
    assert "name: postgres" in result.stdout
    # A terminal wide enough for every column: at 80 columns rich shortens long names
    # ("cassand…") since the jaeger row's 5-digit port widened the table.
    result = runner.invoke(
        app, ["stack", "status", "--state-dir", str(tmp_path)], env={"COLUMNS": "120"}
    )
    assert "cassandra" in result.stdout


def test_unknown_service_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "sys.argv", ["cdcctl", "stack", "logs", "zookeeper", "--state-dir", str(tmp_path)]
    )
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown service(s): zookeeper" in err
    assert "Traceback" not in err


def test_invalid_manifest_exits_3_with_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "apiVersion: cdc.casscdcpg.io/v1\nkind: Pipeline\n"
        "metadata:\n  name: x\nspec:\n  sorce: {}\n"
    )
    monkeypatch.setattr(
        "sys.argv", ["cdcctl", "apply", "-f", str(bad), "--state-dir", str(tmp_path / "s")]
    )
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert f"{bad}:5:1: missing required key 'source' in spec" in err
    assert "Traceback" not in err


def test_version(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["cdcctl", "--version"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("cdcctl ")


def test_kafka_cluster_ids_never_look_like_options() -> None:
    from controlplane.services.stack_provision import kafka_cluster_id as _kafka_cluster_id

    ids = [_kafka_cluster_id() for _ in range(5000)]  # ~78 would start with '-' if unchecked
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["stack", "logs"], "Missing"), (["--bogus"], "No such option"), (["nosuchcmd"], "No such")],
)
def test_usage_errors_exit_2_without_traceback(
    argv: list[str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.argv", ["cdcctl", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err

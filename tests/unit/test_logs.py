"""Logs: every command can log JSON lines carrying run_id and command; secrets never appear."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from controlplane.adapters import vault
from controlplane.cli import app, logs
from controlplane.core import redaction
from controlplane.core.errors import ConnectError
from controlplane.core.manifest import SecretRef

# Quotes, backslash, separators, non-ASCII: the spellings JSON and repr escape differently.
SECRET = 'pw-"q\\u:=é-7f3a'
UNSET = {"CDCCTL_LOG_FORMAT": None, "CDCCTL_LOG_LEVEL": None, "CDCCTL_RUN_ID": None}


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    logs.reset()
    redaction.forget_secrets()


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={**UNSET, **(env or {})})


def json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_json_lines_carry_run_id_and_command() -> None:
    result = invoke("--log-level", "debug", "manifest", "schema")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # the command's output is untouched by logging
    lines = json_lines(result.stderr)
    assert [e["event"] for e in lines] == ["command_started", "command_finished"]
    assert all(e["command"] == "manifest schema" for e in lines)
    assert all(re.fullmatch(r"[0-9a-f]{8}", e["run_id"]) for e in lines)
    assert len({e["run_id"] for e in lines}) == 1
    assert lines[-1]["exit_code"] == 0
    assert all(e["level"] == "debug" and e["timestamp"] for e in lines)


def test_each_run_has_its_own_id_unless_the_caller_gives_one() -> None:
    first = json_lines(invoke("--log-level", "debug", "manifest", "schema").stderr)[0]
    second = json_lines(invoke("--log-level", "debug", "manifest", "schema").stderr)[0]
    assert first["run_id"] != second["run_id"]
    given = invoke(
        "manifest", "schema", env={"CDCCTL_RUN_ID": "ci-42", "CDCCTL_LOG_LEVEL": "DEBUG"}
    )
    assert {e["run_id"] for e in json_lines(given.stderr)} == {"ci-42"}


def test_default_level_is_info_and_text_format_is_text() -> None:
    assert json_lines(invoke("manifest", "schema").stderr) == []  # lifecycle is debug
    text = invoke("--log-format", "text", "--log-level", "debug", "manifest", "schema")
    assert text.exit_code == 0
    assert "command_started" in text.stderr
    assert "run_id=" in text.stderr
    assert "command=manifest schema" in text.stderr or "command='manifest schema'" in text.stderr
    assert json_lines(text.stderr) == []


def test_a_failing_command_logs_its_exit_code(tmp_path: Path) -> None:
    result = invoke(
        "--log-level",
        "debug",
        "get",
        "pipelines",
        "--context",
        "nope",
        env={"CDCCTL_CONFIG": str(tmp_path / "config.yaml")},
    )
    assert result.exit_code != 0
    finished = json_lines(result.stderr)[-1]
    assert finished["event"] == "command_finished"
    assert finished["command"] == "get pipelines"
    assert finished["exit_code"] == 2
    assert "nope" in finished["error"]


def test_a_resolved_secret_never_reaches_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service resolves a secret (through adapters.vault) and logs it by accident, every way."""
    monkeypatch.setenv("CDC_TEST_PG_PASSWORD", SECRET)

    def careless_service(*_: Any, **__: Any) -> list[dict[str, Any]]:
        password = vault.resolve(SecretRef(env="CDC_TEST_PG_PASSWORD"))
        log = structlog.get_logger("cdcctl.test")
        log.info("connecting", dsn=f"postgresql://cdc:{password}@db:5432/warehouse")
        log.info("oops", value=password, nested={"tries": [password, {"note": password}]})
        log.warning(f"in the message itself: {password}", repr_=repr(password))
        try:
            raise RuntimeError(f"auth failed for {password}")
        except RuntimeError:
            log.exception("with a traceback")
        logging.getLogger("httpx").warning("a library logs it: %s", password)
        raise ConnectError(f"refused with {password}")

    monkeypatch.setattr("controlplane.services.pipelines.get_pipelines", careless_service)
    for fmt in ("json", "text"):
        result = invoke("--log-format", fmt, "--log-level", "debug", "get", "pipelines")
        assert isinstance(result.exception, ConnectError)  # cli.main would exit 5
        logged = [line for line in result.stderr.splitlines() if "run_id" in line]
        assert len(logged) >= 6, result.stderr
        text = "\n".join(logged)
        assert "***" in text
        for spelling in (SECRET, json.dumps(SECRET)[1:-1], repr(SECRET)[1:-1], "q\\u:=é"):
            assert spelling not in text, f"{fmt}: {spelling!r} in\n{text}"
        if fmt == "json":
            events = {e["event"]: e for e in json_lines(result.stderr)}
            assert events["connecting"]["dsn"] == "postgresql://cdc:***@db:5432/warehouse"
            assert events["oops"]["nested"] == {"tries": ["***", {"note": "***"}]}
            assert events["a library logs it: ***"]["logger"] == "httpx"
            assert events["command_finished"]["error"] == "refused with ***"
            assert events["command_finished"]["exit_code"] == 5


def test_values_of_secret_looking_keys_are_masked() -> None:
    for key in ("password", "pg_password", "connect.password", "X-Vault-Token", "tokenSecret"):
        assert redaction.key_is_secret(key), key
    for key in ("Authorization", "api_key", "apiKey", "client_secret", "credentials"):
        assert redaction.key_is_secret(key), key
    for key in ("connector", "pipeline", "owner", "table", "run_id", "passwordless"):
        assert not redaction.key_is_secret(key), key
    masked = redaction.redact({"user": "cdc", "password": "x", "connect": {"basicAuth": "y"}})
    assert masked == {"user": "cdc", "password": "***", "connect": {"basicAuth": "***"}}


def test_structlog_key_masking_in_a_command_log() -> None:
    logs.configure(logs.LogFormat.json, logs.LogLevel.info, "r1")
    captured: list[str] = []

    class Sink:
        def __init__(self, *_: Any) -> None:
            pass

        def msg(self, message: str) -> None:
            captured.append(message)

        info = msg

    structlog.configure(logger_factory=Sink)
    structlog.get_logger().info("connect", token="s.abc", headers={"Authorization": "Basic x"})
    (event,) = [json.loads(line) for line in captured]
    assert event["token"] == "***"
    assert event["headers"] == {"Authorization": "***"}
    assert event["run_id"] == "r1"


def test_a_group_run_as_a_command_is_logged_as_itself() -> None:
    """`cdcctl verify -f ...` runs the group's callback: it is the command."""
    lines = json_lines(invoke("--log-level", "debug", "verify").stderr)
    assert [(e["event"], e["command"]) for e in lines] == [
        ("command_started", "verify"),
        ("command_finished", "verify"),
    ]
    assert lines[-1]["exit_code"] == 2  # no manifest given

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
import typer
from typer.testing import CliRunner

from controlplane.adapters import vault
from controlplane.cli import app, logs, main
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


def test_a_short_secret_is_masked_as_a_whole_token_only() -> None:
    redaction.forget_secrets()
    try:
        redaction.remember_secret("t")  # a throwaway test secret
        redaction.remember_secret("pw-9")
        redaction.remember_secret("a-long-secret-value")
        line = '{"command": "validate", "pw": "t", "dsn": "user=cdc password=pw-9 host=x"}'
        assert redaction.redact_text(line) == (
            '{"command": "validate", "pw": "***", "dsn": "user=cdc password=*** host=x"}'
        )
        # a long one is masked wherever it occurs, even inside a longer word
        assert redaction.redact_text("xa-long-secret-valuex") == "x***x"
    finally:
        redaction.forget_secrets()


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


# --- every command, with --log-format json: nothing on stderr but JSON lines -----------------

ARGUMENT_VALUES = {"coordinates": "0:0", "service": "redis", "run": "r1"}
# Values that make a command stop before it touches anything: the stack's up at its first check
# (it would install packages and start services), export after one scrape (it serves until
# stopped), verify's store at a URL it cannot read (a closed port would be retried for 40 s).
SAFE_OPTIONS = {
    ("stack", "up"): ["--port-offset", "100000"],
    ("cdc-raw", "export"): ["--once"],
    ("verify", "runs"): ["--redis-url", "nope://127.0.0.1:1/0"],
    ("verify", "show"): ["--redis-url", "nope://127.0.0.1:1/0"],
}


def leaves() -> list[tuple[str, ...]]:
    def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        subs = getattr(cmd, "commands", None) or {}
        if not subs:
            yield path
        for name, sub in subs.items():
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app)))


def safe_argv(path: tuple[str, ...], tmp: Path) -> list[str]:
    """`path` with its required values and options that keep it away from any component: a
    manifest that does not exist, a context that does not exist, an empty stack directory; and
    --yes, so nothing asks."""
    cmd = dict(_tree())[path]
    argv = [*path, *SAFE_OPTIONS.get(path, [])]
    opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
    for p in cmd.params:
        if not p.required:
            continue
        if getattr(p, "param_type_name", "") == "argument":
            argv.append(ARGUMENT_VALUES.get(p.name, "p1"))
        elif p.name == "filename":
            argv += ["-f", str(tmp / "missing.yaml")]
        else:
            argv += [p.opts[0], str(tmp / p.name)]
    if "--yes" in opts:  # a run that asked for JSON is not interactive (decision 0112)
        argv.append("--yes")
    if "--context" in opts:
        argv += ["--context", "nope"]
    elif "--state-dir" in opts:
        argv += ["--state-dir", str(tmp / "stack")]
    return argv


def _tree() -> list[tuple[tuple[str, ...], Any]]:
    def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, cmd
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app)))


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> tuple[int, str, str]:
    """`cdcctl ARGV` as a user runs it (cli.main: errors printed, exit code)."""
    monkeypatch.setattr("sys.argv", ["cdcctl", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config, state or environment of the machine running the tests."""
    for name in (*UNSET, "CDC_REDIS_URL", "CDC_CONNECT_URL", "VAULT_ADDR", "VAULT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CDCCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


def assert_only_json_lines(stderr: str, run_id: str, command: str) -> list[dict[str, Any]]:
    records = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"cdcctl {command}: a stderr line is not JSON: {line!r}\n{stderr}")
        assert isinstance(record, dict), line
        assert record["run_id"] == run_id, line
        records.append(record)
    return records


@pytest.mark.parametrize("path", leaves(), ids=" ".join)
def test_every_command_logs_only_json_lines_when_asked(
    path: tuple[str, ...],
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each command of the tree, run to its end (mostly an error: nothing is reachable), with
    ``--log-format json``: every stderr line is one JSON object carrying the run id, the
    command's start and end are among them, and an error is a record, not a red line."""
    monkeypatch.setenv("CDCCTL_RUN_ID", "tree-1")
    argv = ["--log-format", "json", "--log-level", "debug", *safe_argv(path, isolated)]
    code, _, err = run_main(monkeypatch, capsys, argv)
    records = assert_only_json_lines(err, "tree-1", " ".join(path))
    command = " ".join(path)
    events = [(r["event"], r.get("command")) for r in records]
    assert ("command_started", command) in events, err
    finished = [r for r in records if r["event"] == "command_finished"]
    assert [r["exit_code"] for r in finished] == [code], err
    errors = [r for r in records if r["event"] in ("error", "usage_error")]
    if errors:  # a CdcError or usage error ends the run: one record, with its exit code
        assert [(r["level"], r["exit_code"]) for r in errors] == [("error", code)], err
        assert errors[0]["message"], err
    elif code not in (0, 6, 9):  # else a failure is told by the command's own records
        assert any(r["level"] in ("warning", "error") for r in records), err
    assert "Traceback" not in err


def test_json_asked_turns_notes_and_errors_into_records(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a command tells the person at the terminal (validate's problems, its summary, the
    error it ends with) is a log record when JSON was asked for, and a plain line otherwise —
    also when JSON logs are only the default (stderr not a terminal): scripts reading it keep
    working (decision 0112)."""
    missing = str(isolated / "missing.yaml")
    code, _, err = run_main(
        monkeypatch, capsys, ["--log-format", "json", "validate", "-f", missing]
    )
    assert code == 3
    records = assert_only_json_lines(err, logs.current_run_id(), "validate")
    problem, summary = records
    assert (problem["event"], problem["level"]) == ("manifest_problem", "warning")
    assert problem["problem"]["file"] == missing
    assert problem["problem"]["message"] == "no such file or directory"
    assert (summary["event"], summary["problems"]) == ("validated", 1)

    code, _, err = run_main(monkeypatch, capsys, ["validate", "-f", missing])  # JSON by default
    assert code == 3
    assert f"{missing}: manifest: no such file or directory" in err.splitlines()
    assert "0 pipeline(s), 1 problem(s) (offline checks)" in err.splitlines()

    monkeypatch.setenv("CDCCTL_LOG_FORMAT", "json")  # asked for through the environment
    code, _, err = run_main(monkeypatch, capsys, ["validate", "-f", missing])
    assert code == 3
    assert len(assert_only_json_lines(err, logs.current_run_id(), "validate")) == 2
    monkeypatch.delenv("CDCCTL_LOG_FORMAT")

    argv = ["--log-format", "json", "get", "pipelines", "--context", "nope"]
    code, _, err = run_main(monkeypatch, capsys, argv)
    (error,) = [r for r in assert_only_json_lines(err, logs.current_run_id(), "get")]
    assert (error["event"], error["exit_code"]) == ("error", code) == ("error", 2)
    assert "context" in error["message"]
    assert error["hint"]

    code, _, err = run_main(monkeypatch, capsys, ["--log-format", "json", "get", "pipelinez"])
    (usage,) = assert_only_json_lines(err, logs.current_run_id(), "get")
    assert (usage["event"], usage["exit_code"], usage["level"]) == ("usage_error", 2, "error")
    assert "pipelinez" in usage["message"]
    assert usage["hint"].endswith("get --help")


def test_verify_progress_is_records_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    """verify's notes (and no progress bar) with --log-format json."""
    from controlplane.cli import verify

    logs.configure(logs.LogFormat.json, logs.LogLevel.info, "v1", asked=True)
    bar = verify._Bar(enabled=False)
    bar("build", {"table": "ks.t"})
    bar("start", {"run": "r1", "consistency": "QUORUM", "total": 2, "done": 0})
    retry = {"task": "t:0", "kind": "timeout", "host": "h1", "next": "h2", "attempt": 2}
    bar("retry", {**retry, "delay_s": 0.5})
    bar("range", {"task": "t:0", "status": "FAIL", "retries": 4, "error": "timed out", "rows": 0})
    bar.stop()
    records = assert_only_json_lines(capsys.readouterr().err, "v1", "verify")
    assert [(r["event"], r["level"]) for r in records] == [
        ("verify_tokens", "info"),
        ("verify_started", "info"),
        ("verify_retry", "warning"),
        ("verify_range_not_verified", "error"),
    ]
    assert records[1]["consistency"] == "QUORUM"
    assert records[1]["message"] == "verify run r1: reading Cassandra at QUORUM"
    assert (records[2]["host"], records[2]["next_host"], records[2]["attempt"]) == ("h1", "h2", 2)
    assert records[3]["error"] == "timed out"


CONTEXT_AT_NOTHING = """\
connect:
  url: http://127.0.0.1:1
  username: cdcctl
  passwordSecret: {env: CDC_TEST_CONNECT_PASSWORD}
kafka: {bootstrapServers: ["127.0.0.1:1"]}
cassandra: {contactPoints: ["127.0.0.1:1"], localDatacenter: datacenter1}
"""


def manifest_at_nothing() -> str:
    example = (Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml").read_text()
    text = example.replace("vault: {path: secret/cdc/postgres, key: password}", "env: PG_PW_X")
    for port in ("9042", "9092", "8083", "5432"):  # nothing listens on port 1
        text = text.replace(f"127.0.0.1:{port}", "127.0.0.1:1").replace(f"port: {port}", "port: 1")
    assert "env: PG_PW_X" in text
    return text


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_from_the_environment_and_a_manifest_never_appear(
    fmt: str,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real command that resolves two secrets — Connect's basic-auth password, referenced by
    the context, and PostgreSQL's, referenced by the manifest; both from the environment — and
    fails to reach everything (port 1), logging at debug with the libraries' logs: neither
    secret is printed anywhere, in JSON or text."""
    monkeypatch.setenv("CDC_TEST_CONNECT_PASSWORD", "cn-" + SECRET)
    monkeypatch.setenv("PG_PW_X", "pg-" + SECRET)
    (isolated / "ctx.yaml").write_text(CONTEXT_AT_NOTHING)
    (isolated / "m.yaml").write_text(manifest_at_nothing())
    set_ctx = ["config", "set-context", "dead", "--from-file", str(isolated / "ctx.yaml")]
    assert run_main(monkeypatch, capsys, set_ctx)[0] == 0
    argv = ["--log-format", fmt, "--log-level", "debug", "validate", "--online"]
    code, out, err = run_main(monkeypatch, capsys, [*argv, "-f", str(isolated / "m.yaml")])
    assert code == 5, err  # nothing answered
    assert {"cn-" + SECRET, "pg-" + SECRET} <= redaction._secrets  # both were resolved
    assert "password=***" in err  # the DSN in PostgreSQL's error
    for spelling in (SECRET, json.dumps(SECRET)[1:-1], repr(SECRET)[1:-1], "q\\u:=é"):
        assert spelling not in out + err, f"{fmt}: {spelling!r} in\n{out}{err}"
    if fmt == "json":
        assert_only_json_lines(err, logs.current_run_id(), "validate")


def test_a_password_in_a_url_is_masked_in_logs_and_errors(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """URLs carry passwords cdcctl never resolved (--redis-url, $CDC_REDIS_URL)."""
    urls = "redis://:pw1@h:6379/0 and postgresql://u:p%40ss@db/x"  # pragma: allowlist secret
    assert redaction.redact_text(urls) == ("redis://:***@h:6379/0 and postgresql://u:***@db/x")
    assert redaction.redact_text("http://h:8083/connectors and a@b: c") == (
        "http://h:8083/connectors and a@b: c"
    )
    for fmt in ("json", "text"):
        argv = ["--log-format", fmt, "--log-level", "debug", "verify", "runs"]
        code, out, err = run_main(monkeypatch, capsys, [*argv, "--redis-url", "nope://:pw1@h/0"])
        assert code == 2, err  # not a Redis URL: a usage error, not a crash
        assert "pw1" not in out + err
        assert "nope://:***@h/0" in err

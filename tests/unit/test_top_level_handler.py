"""The one top-level handler (issue 12, item 3): an exception no `CdcError` describes is a bug;
the user gets one escaped line, the path of a crash log holding the traceback, and exit 70 —
never a traceback on the terminal. Plus the YAML loader's bounds: file size and aliases."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from controlplane.cli import logs, main
from controlplane.cli.crash import EX_SOFTWARE, crash_dir, write_crash_log
from controlplane.core.manifest_loader import MAX_ALIAS_NODES, MAX_BYTES, check_text, load_text
from controlplane.core.redaction import forget_secrets, remember_secret

EXAMPLE = (Path(__file__).parents[2] / "examples" / "pipeline.yaml").read_text()


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["cdcctl", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv(logs.RUN_ID_ENV, "run-42")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return tmp_path / "state" / "cdcctl"


def crash_in_schema(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """`cdcctl manifest schema` raises `exc` (a stand-in for any bug in any command)."""

    def boom() -> None:
        raise exc

    monkeypatch.setattr("controlplane.core.manifest.manifest_json_schema", boom)


def test_a_bug_prints_one_line_and_where_the_traceback_is(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    crash_in_schema(monkeypatch, KeyError("[/]no such [bold]key[/bold]"))
    code, out, err = run(monkeypatch, capsys, "manifest", "schema")
    assert code == EX_SOFTWARE == 70
    assert out == ""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("{")]  # json log lines
    assert lines[0] == "error: unexpected error: KeyError: '[/]no such [bold]key[/bold]'"
    log = state / "crash-run-42.log"
    assert lines[1].startswith("hint: this is a bug in cdcctl; the details (the traceback) are in")
    assert str(log) in err
    assert len(lines) == 2
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert "in manifest_schema" in text  # where it happened
    assert "run_id: run-42" in text
    assert "argv: ['cdcctl', 'manifest', 'schema']" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_a_multi_line_message_is_one_line(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    crash_in_schema(monkeypatch, RuntimeError("first line\nsecond line\n" + "x" * 1000))
    code, _, err = run(monkeypatch, capsys, "manifest", "schema")
    assert code == 70
    assert "error: unexpected error: RuntimeError: first line\n" in err
    assert "second line" not in err
    assert "second line" in (state / "crash-run-42.log").read_text()


def test_a_second_crash_of_the_same_run_gets_its_own_log_and_symlinks_are_not_followed(
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    state.mkdir(parents=True)
    (state / "crash-run-42.log").symlink_to(victim)
    crash_in_schema(monkeypatch, RuntimeError("boom"))
    code, _, err = run(monkeypatch, capsys, "manifest", "schema")
    assert code == 70
    assert victim.read_text() == "keep me\n"
    assert str(state / "crash-run-42-1.log") in err
    run(monkeypatch, capsys, "manifest", "schema")
    assert (state / "crash-run-42-2.log").exists()


def test_an_unwritable_state_dir_falls_back_to_a_temporary_file(
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state.parent.write_text("a file where the directory should be\n")
    crash_in_schema(monkeypatch, RuntimeError("boom"))
    code, _, err = run(monkeypatch, capsys, "manifest", "schema")
    assert code == 70
    (log,) = (tmp_path / "tmp").glob("cdcctl-crash-*.log")
    assert str(log) in err
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "RuntimeError: boom" in log.read_text()


def test_no_log_at_all_still_exits_70_with_the_reason(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr("controlplane.cli.crash._create", refuse)
    monkeypatch.setattr("controlplane.cli.crash._temporary", refuse)
    crash_in_schema(monkeypatch, RuntimeError("boom"))
    code, _, err = run(monkeypatch, capsys, "manifest", "schema")
    assert code == 70
    assert "no crash log could be written (read-only file system; read-only file system)" in err


def test_resolved_secrets_are_masked_in_the_line_and_the_log(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = remember_secret("hunter2-s3cr3t")
    try:
        crash_in_schema(monkeypatch, RuntimeError(f"login with {secret} failed"))
        code, _, err = run(monkeypatch, capsys, "manifest", "schema")
    finally:
        forget_secrets()
    assert code == 70
    assert secret not in err
    assert "login with *** failed" in err
    assert secret not in (state / "crash-run-42.log").read_text()


def test_the_default_crash_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    assert crash_dir() == Path("/home/someone/.local/state/cdcctl")
    monkeypatch.setenv("XDG_STATE_HOME", "/var/state")
    assert crash_dir() == Path("/var/state/cdcctl")


def test_a_run_id_cannot_steer_the_log_elsewhere(state: Path) -> None:
    path = write_crash_log(RuntimeError("x"), "../../etc/evil", ["cdcctl"])
    assert isinstance(path, Path)
    assert path.parent == state
    assert path.name == "crash-.._.._etc_evil.log"


def test_usage_errors_and_cdc_errors_are_not_crashes(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(monkeypatch, capsys, "validate", "--no-such-option")
    assert code == 2
    code, _, _ = run(monkeypatch, capsys, "validate", "-f", "/nonexistent/m.yaml")
    assert code == 3
    assert not state.exists()  # no crash log for either


def test_the_logged_exit_code_of_a_bug_is_70() -> None:
    assert logs.exit_code(RuntimeError("x")) == 70
    assert logs.exit_code(KeyboardInterrupt()) == 130
    assert logs.exit_code(SystemExit(3)) == 1


# --- YAML bounds -------------------------------------------------------------------------


def test_a_manifest_over_the_size_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.yaml"
    padding = "# " + "x" * 1022 + "\n"
    big.write_text(EXAMPLE + padding * (MAX_BYTES // len(padding) + 1))
    assert big.stat().st_size > MAX_BYTES
    code, _, err = run(monkeypatch, capsys, "validate", "-f", str(big))
    assert code == 3
    assert f"{big}: manifest: manifest is larger than 1024 KiB" in err
    just = tmp_path / "just.yaml"
    just.write_text(EXAMPLE + "#" * (MAX_BYTES - len(EXAMPLE.encode()) - 1) + "\n")
    assert just.stat().st_size == MAX_BYTES
    code, _, err = run(monkeypatch, capsys, "validate", "-f", str(just))
    assert code == 0, err


def test_stdin_over_the_size_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(EXAMPLE + "#" * MAX_BYTES + "\n"))
    code, _, err = run(monkeypatch, capsys, "validate", "-f", "-")
    assert code == 3
    assert "<stdin>: manifest: manifest is larger than 1024 KiB" in err
    _, problems = check_text("é" * (MAX_BYTES // 2 + 1))  # counted in bytes, not characters
    assert [p.message for p in problems] == ["manifest is larger than 1024 KiB"]


def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_bound() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 30)]
    text = "\n".join(lines) + "\n"
    start = time.monotonic()
    _, problems = check_text(text, "lol.yaml")
    assert time.monotonic() - start < 5
    (problem,) = problems
    assert problem.message == f"aliases expand to more than {MAX_ALIAS_NODES} nodes (at *a3)"
    # expanded, a0..a3 are 10, 91, 820 and 7381 nodes; the aliases of lines 2-4 add 8289 nodes,
    # the first *a3 on line 5 makes it 15670
    assert problem.location == f"lol.yaml:5:{len('a4: &a4 [') + 1}"


def test_a_few_aliases_in_a_real_manifest_are_fine() -> None:
    text = EXAMPLE.replace("database: cdc ", "database: &db cdc ").replace("user: cdc", "user: *db")
    assert "*db" in text
    (loaded,) = load_text(text)
    assert loaded.pipeline.spec.sink.postgres.user == "cdc"


def test_an_undefined_alias_is_a_manifest_error() -> None:
    _, problems = check_text("a: *nowhere\n", "m.yaml")
    (problem,) = problems
    assert problem.location == "m.yaml:1:4"
    assert "found undefined alias 'nowhere'" in problem.message


def test_validate_from_a_closed_stdin_is_a_manifest_error_not_a_crash(tmp_path: Path) -> None:
    """Found while writing this handler: the default reader was `sys.stdin.read`, looked up at
    import, so with fd 0 closed (sys.stdin is None) importing the loader raised."""
    import subprocess  # nosec B404  # runs our own CLI with a fixed argv
    import sys

    res = subprocess.run(  # nosec B603  # fixed argv
        [sys.executable, "-m", "controlplane", "validate", "-f", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.close(0),  # only closes stdin
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
    )
    assert res.returncode == 3, res.stderr
    assert "<stdin>: manifest: cannot read manifest: standard input is closed" in res.stderr
    assert "Traceback" not in res.stderr


def test_verify_progress_prints_markup_in_names_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A table, run id or host with Rich markup in it (decision 0090's leftovers in cli/verify)."""
    from controlplane.cli import verify

    bar = verify._Bar(enabled=True)
    bar("build", {"table": "[/]t"})
    bar("start", {"run": "[bold]r[/bold]", "consistency": "QUORUM", "total": 2, "done": 0})
    retry = {"task": "t:0", "kind": "[red]", "host": "[/]h", "next": None, "attempt": 2}
    bar("retry", {**retry, "delay_s": 0.5})
    bar.progress.refresh()
    bar.stop()
    err = capsys.readouterr().err
    assert "computing partition tokens of [/]t" in err
    assert "run [bold]r[/bold]: reading Cassandra at QUORUM" in err
    assert "[bold]r[/bold] @ QUORUM" in err  # the bar's description
    assert "t:0: [red] on [/]h, attempt 2 on the driver-chosen node in 0.5s" in err


@pytest.mark.parametrize(
    ("value", "read_as"),
    [("05432", "2842"), ("54:32", "3272"), ("0b1010", "10"), ("5_432", "5432"), ("1:30.5", "90.5")],
)
def test_numbers_yaml_1_1_reads_otherwise_are_refused(value: str, read_as: str) -> None:
    """`port: 05432` was port 2842 (octal) without a word; YAML 1.2 and JSON say 5432."""
    text = EXAMPLE.replace("port: 5432", f"port: {value}")
    _, problems = check_text(text, "m.yaml")
    (problem,) = problems
    assert problem.location == "m.yaml:27:13"
    assert problem.message == (
        f"{value!r} is a YAML 1.1 number, read as {read_as}; YAML 1.2 and JSON read it differently"
    )
    assert problem.hint is not None
    assert "quote it" in problem.hint


@pytest.mark.parametrize("value", ["5432", "0x1538", "'05432'"])
def test_numbers_both_yaml_versions_agree_on_pass_this_check(value: str) -> None:
    _, problems = check_text(EXAMPLE.replace("port: 5432", f"port: {value}"), "m.yaml")
    assert all("YAML 1.1" not in p.message for p in problems)

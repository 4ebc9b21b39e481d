"""Running cdcctl in this process and checking what a user (or a CI job) would see.

The rule every fuzzed or corpus input must keep (issue 12, item 4): the exit code is one the
command documents, nothing prints a traceback, no crash log is written (exit 70 is a bug), and
the machine formats stay machine-readable — ``-o json`` parses, ``-o github`` is one workflow
command per line.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

import controlplane.cli
from controlplane.cli import main

#: What each command may answer with a manifest and no stack: validate 0 or 3; plan 3 for a bad
#: manifest, else 5 (the target is unreachable); 2 for usage errors nowhere, the argv is fixed.
VALIDATE_EXITS = frozenset({0, 3})
PLAN_EXITS = frozenset({3, 5})

# ::error file=F,line=L,col=C,title=T::message — properties escape %, CR, LF, ':' and ','; the
# message escapes %, CR and LF (GitHub's toolkit rules). The runner splits stdout on LF.
_PROP = r"[^,:\r\n]*"
GITHUB_LINE = re.compile(
    rf"::error (?:file={_PROP},)?(?:line=[1-9]\d*,)?(?:col=[1-9]\d*,)?title={_PROP}::[^\r\n]*"
)
SUMMARY = re.compile(r"\d+ pipeline\(s\), \d+ problem\(s\) \(offline checks\)")


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    def where(self) -> str:
        head = f"cdcctl {' '.join(self.argv)}: exit {self.code}"
        return f"{head}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class _Built:
    """`cli.app` with its click command built once. Typer builds the whole command tree from the
    functions' signatures on every call (about 70% of an in-process run); calling the built
    command is what `typer.Typer.__call__` does after building it."""

    def __init__(self, app: typer.Typer) -> None:
        self.command = typer.main.get_command(app)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.command(*args, **kwargs)


_built: _Built | None = None


def cdcctl(*argv: str) -> Result:
    """`cdcctl ARGV` through `cli.main` (its one handler), stdout and stderr captured."""
    global _built
    if _built is None:
        _built = _Built(controlplane.cli.app)
    out, err = io.StringIO(), io.StringIO()
    saved, saved_app = sys.argv, controlplane.cli.app
    sys.argv = ["cdcctl", *argv]
    controlplane.cli.app = _built  # type: ignore[assignment]
    code: Any = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv, controlplane.cli.app = saved, saved_app
    if code is None:
        code = 0
    return Result(tuple(argv), code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())


def no_crash(result: Result, allowed: frozenset[int], crash_dir: Path) -> None:
    assert result.code in allowed, result.where()
    assert "Traceback" not in result.out + result.err, result.where()
    crashes = sorted(crash_dir.glob("crash-*.log")) if crash_dir.exists() else []
    assert not crashes, f"{result.where()}\n--- crash log\n{crashes[0].read_text()}"


def validate(path: Path, fmt: str, crash_dir: Path) -> Result:
    """`cdcctl validate -f PATH -o FMT`, checked for its format; returns the result."""
    result = cdcctl("validate", "-f", str(path), "-o", fmt)
    no_crash(result, VALIDATE_EXITS, crash_dir)
    if fmt == "json":
        answer = json.loads(result.out)
        assert answer["exit_code"] == result.code, result.where()
        assert answer["valid"] is (result.code == 0), result.where()
        assert bool(answer["problems"]) is (result.code == 3), result.where()
        for problem in answer["problems"]:
            assert problem["check"] == "manifest"
            assert isinstance(problem["message"], str)
            assert problem["message"]
    elif fmt == "github":
        lines = result.out.split("\n")
        assert lines[-1] == "", result.where()  # every line ends with LF
        lines = lines[:-1]
        assert bool(lines) is (result.code == 3), result.where()
        for line in lines:
            assert GITHUB_LINE.fullmatch(line), f"not a workflow command: {line!r}"
    else:
        assert result.out == "", result.where()
        assert SUMMARY.search(result.err), result.where()
    return result


def plan(path: Path, state_dir: Path, fmt: str, crash_dir: Path) -> Result:
    """`cdcctl plan` against a local stack that does not exist: 3 or 5."""
    result = cdcctl("plan", "-f", str(path), "--state-dir", str(state_dir), "-o", fmt)
    no_crash(result, PLAN_EXITS, crash_dir)
    assert result.out == "", result.where()  # nothing planned, nothing printed
    assert result.err.count("error: ") >= 1, result.where()
    return result

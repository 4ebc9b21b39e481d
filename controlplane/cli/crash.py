"""What the top-level handler does with an exception nothing else describes: a bug.

The user sees one line (what went wrong, escaped for Rich) and the path of a crash log; the
traceback goes only into that log, never to the terminal. The log is
``$XDG_STATE_HOME/cdcctl/crash-<run_id>.log`` (``~/.local/state/cdcctl/`` when the variable is
unset), created 0600 in a 0700 directory, never following a symlink or overwriting a file; when
that directory cannot be written, a fresh file in the temporary directory. Secrets this run
resolved are masked in it (`core.redaction`), as in every log line.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from controlplane import __version__
from controlplane.core.errors import InternalError
from controlplane.core.redaction import redact_text

#: sysexits.h's EX_SOFTWARE: an internal software error.
EX_SOFTWARE = InternalError.exit_code
_MAX_MESSAGE = 300


def crash_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "cdcctl"


def _report(exc: BaseException, run_id: str, argv: Sequence[str]) -> str:
    lines = [
        f"cdcctl {__version__} crashed (exit {EX_SOFTWARE})",
        f"time: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"run_id: {run_id}",
        f"python: {sys.version.split()[0]} on {sys.platform}",
        f"argv: {list(argv)!r}",
        "",
        *traceback.format_exception(exc),
    ]
    return redact_text("\n".join(line.rstrip("\n") for line in lines) + "\n")


def _create(directory: Path, run_id: str) -> tuple[int, Path]:
    """A new file crash-<run_id>[-n].log in `directory`, opened for writing, mode 0600."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)[:64] or "run"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for n in range(100):
        path = directory / (f"crash-{safe}.log" if n == 0 else f"crash-{safe}-{n}.log")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"crash logs for run {run_id} already exist in {directory}")


def write_crash_log(exc: BaseException, run_id: str, argv: Sequence[str]) -> Path | str:
    """Write the crash log; its path, or why none could be written (never raises)."""
    try:
        text = _report(exc, run_id, argv)
    except Exception as report_exc:  # a broken __str__ in the exception, say
        text = f"cdcctl crashed; the report itself failed: {report_exc!r}\n"
    reasons = []
    for where in ("state", "temporary"):
        try:
            fd, path = _create(crash_dir(), run_id) if where == "state" else _temporary()
        except OSError as os_exc:
            reasons.append(str(os_exc))
            continue
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
                out.write(text)
        except OSError as os_exc:
            reasons.append(f"{path}: {os_exc}")
            continue
        return path
    return "; ".join(reasons)


def _temporary() -> tuple[int, Path]:
    fd, name = tempfile.mkstemp(prefix="cdcctl-crash-", suffix=".log")  # 0600
    return fd, Path(name)


def _summary(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) > _MAX_MESSAGE:
        first = first[:_MAX_MESSAGE] + "..."
    name = type(exc).__name__
    return redact_text(f"{name}: {first}" if first else name)


def internal_error(exc: BaseException, run_id: str, argv: Sequence[str]) -> InternalError:
    """The `CdcError` the handler prints for `exc`: one line, and where the details are."""
    written = write_crash_log(exc, run_id, argv)
    if isinstance(written, Path):
        hint = (
            f"this is a bug in cdcctl; the details (the traceback) are in {written} — "
            "please attach that file to a bug report"
        )
    else:
        hint = f"this is a bug in cdcctl; no crash log could be written ({written})"
    return InternalError(f"unexpected error: {_summary(exc)}", hint=hint)

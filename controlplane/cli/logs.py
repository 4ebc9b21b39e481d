"""cdcctl's logs, configured in one place: `configure`, called once per run by the root callback.

- Format: ``json`` (one object per line, keys sorted) or ``text`` (structlog's console renderer);
  ``--log-format``/``$CDCCTL_LOG_FORMAT``, default text when stderr is a terminal, else json.
- Level: ``--log-level``/``$CDCCTL_LOG_LEVEL`` (debug, info, warning, error; default info). At
  debug every command also logs ``command_started``/``command_finished`` (with its exit code) and
  libraries' own loggers (stdlib ``logging``: httpx, cassandra-driver, hvac...) are shown from
  debug on; otherwise only their warnings and errors.
- Every line, cdcctl's and the libraries', carries ``run_id`` (fresh per invocation, or
  ``$CDCCTL_RUN_ID`` so a caller can correlate) and ``command`` (``dlq replay``).
- Secrets are masked (core.redaction) before rendering — values under secret-looking keys and every
  secret this run resolved, wherever it occurs — and once more in the rendered line.

Lines go to stderr (the current ``sys.stderr`` at each write), never to stdout, which belongs to
the command's output (``-o json`` stays parseable).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from enum import StrEnum
from typing import Any

import typer

from controlplane.core.redaction import redact_field, redact_text

RUN_ID_ENV = "CDCCTL_RUN_ID"


class LogFormat(StrEnum):
    json = "json"
    text = "text"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


# What every line of this process carries; one run per process, so module state (not
# contextvars, which worker threads would not inherit).
_run: dict[str, str] = {}
# Whether --log-format json was asked for (`stderr_is_json`), once configured.
_json_asked: list[bool] = []
_write_lock = threading.Lock()


def new_run_id() -> str:
    """A short random id for one invocation (8 hex digits)."""
    return secrets.token_hex(4)


def current_run_id() -> str:
    """This run's id (a new one when logging is not configured yet)."""
    return _run.get("run_id") or new_run_id()


def stderr_is_json() -> bool:
    """Whether everything this run writes to stderr is JSON lines: when JSON was asked for
    (``--log-format json``, ``$CDCCTL_LOG_FORMAT``), what a command tells the person at the
    terminal — notes, errors, usage errors — goes out as log records too (`output.note`). JSON
    only by default (stderr not a terminal) keeps those lines as text (decision 0112)."""
    return _json_asked == [True]


def configure(fmt: LogFormat, level: LogLevel, run: str, *, asked: bool = False) -> None:
    """Configure structlog and the stdlib root logger for this run (idempotent); `asked`: the
    format was chosen, not defaulted (`stderr_is_json`)."""
    import structlog  # here, not at the top: `cdcctl --help` does not pay for it

    _run.clear()
    _run["run_id"] = run
    _json_asked[:] = [asked and fmt is LogFormat.json]
    threshold = getattr(logging, level.value.upper())
    text = fmt is LogFormat.text
    pre_chain: list[Any] = [
        _add_run,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if not text:  # the console renderer formats exc_info itself (plainly: no locals shown)
        pre_chain.append(structlog.processors.format_exc_info)
    pre_chain.append(_redact_event)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(
            colors=_isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        if text
        else structlog.processors.JSONRenderer(sort_keys=True, default=str)
    )
    structlog.configure(
        processors=[*pre_chain, renderer, _redact_line],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *pre_chain],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
                _redact_line,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries speak up from debug on only: httpx alone logs every request at info.
    root.setLevel(logging.DEBUG if threshold <= logging.DEBUG else max(threshold, logging.WARNING))


def reset() -> None:
    """Undo `configure` (tests): structlog's defaults, no cdcctl handler on the root logger."""
    import structlog

    _run.clear()
    _json_asked.clear()
    structlog.reset_defaults()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.setLevel(logging.WARNING)


@contextlib.contextmanager
def command_context(path: str) -> Iterator[None]:
    """Around one command: `command` on every line, its start and end (debug) with exit code."""
    import structlog

    if "run_id" not in _run:  # not configured (a sub-app run on its own): structlog's defaults
        yield  # would print to stdout, so stay silent
        return
    _run["command"] = path
    log = structlog.get_logger("cdcctl")
    log.debug("command_started")
    started = time.monotonic()
    fields: dict[str, Any] = {"exit_code": 0}
    try:
        yield
    except typer.Exit as exc:  # a command's chosen exit code (validate's 3): no error to tell
        fields = {"exit_code": exc.exit_code}
        raise
    except BaseException as exc:
        fields = {"exit_code": exit_code(exc), "error": str(exc) or type(exc).__name__}
        raise
    finally:
        log.debug("command_finished", seconds=round(time.monotonic() - started, 3), **fields)


def exit_code(exc: BaseException) -> int:
    """The exit code `exc` ends the run with (as cli.main decides it)."""
    if isinstance(exc, typer.Abort | KeyboardInterrupt):
        return 130  # as cli.main
    code = getattr(exc, "exit_code", None)  # CdcError, click's Exit and usage errors
    if isinstance(code, int):
        return code
    return 70 if isinstance(exc, Exception) else 1  # a bug: cli.main exits 70 (EX_SOFTWARE)


def _add_run(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in _run.items():
        event.setdefault(key, value)
    return event


# Handed on untouched: objects later processors need as they are (a traceback is masked once
# rendered, by `_redact_line`).
_OBJECTS = frozenset({"exc_info", "_record", "_from_structlog"})


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: v if k in _OBJECTS else redact_field(k, v) for k, v in event.items()}


def _redact_line(_: Any, __: str, line: Any) -> Any:
    """After the renderer, on the rendered line: secrets in escaped spellings, tracebacks."""
    return redact_text(line) if isinstance(line, str) else line


def _isatty() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _StderrLogger:
    """structlog's PrintLogger, but writing to the current ``sys.stderr`` (tests swap it)."""

    def __init__(self, *_: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        with _write_lock:
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _StderrHandler(logging.Handler):
    """The root logger's handler for libraries' records, to the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with _write_lock:
                print(line, file=sys.stderr, flush=True)
        except Exception:  # logging must never break the command
            self.handleError(record)

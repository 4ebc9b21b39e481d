"""The Typer every cdcctl command module builds on (`Typer`): help that reads well, and each
command's log context. Decision 0080 says why.

- Help text flows. Docstrings are written wrapped at 100 columns like any other; `flow` joins the
  lines of each paragraph, so the terminal wraps them at its own width. (typer's rich help keeps
  a docstring's line breaks everywhere but in the first paragraph of a command's own help.)
- A flag shows no value type. typer's rich help prints an option's type (``<bool>``) unless it
  has a metavar, and prints it for flags too, which take no value: flags get an empty metavar.
- Each command runs inside `logs.command_context`: ``command`` on every log line, its start and
  end (with the exit code) at debug; and inside a span ``cdcctl <command>`` (``cdcctl apply``), the
  root of the run's trace when tracing is on (adapters.tracing, decision 0122).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from controlplane.adapters import tracing
from controlplane.cli import logs


def flow(text: str | None) -> str | None:
    """`text` (a docstring) with each paragraph on one line; paragraphs stay apart."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


# Contexts are typed Any: typer >= 0.20 vendors its own click, whose classes are not typer's API.


def command_path(ctx: Any) -> str:
    """``dlq replay`` for ``cdcctl dlq replay``: the names below the root."""
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


@contextlib.contextmanager
def command_run(path: str) -> Iterator[None]:
    """Around one command: its log context and the root span of its trace. A command's own exit
    (``typer.Exit``) with code 0 is no failure of the span; any other code or error is."""
    tracing.set_command(path)
    done: typer.Exit | None = None
    with logs.command_context(path), tracing.span(f"cdcctl {path}") as span:
        try:
            yield
        except typer.Exit as exc:
            span.set(exit_code=exc.exit_code)
            if exc.exit_code != 0:
                raise
            done = exc
        except BaseException as exc:
            span.set(exit_code=logs.exit_code(exc))
            raise
        else:
            span.set(exit_code=0)
    if done is not None:
        raise done


def _flags_without_type(command: Any, ctx: Any) -> None:
    for param in command.get_params(ctx):
        flag = isinstance(param, TyperOption) and (param.is_flag or param.count)
        if flag and param.metavar is None:
            param.metavar = ""


class Command(TyperCommand):
    def __init__(self, name: str | None, **kwargs: Any) -> None:
        kwargs["help"] = flow(kwargs.get("help"))
        super().__init__(name, **kwargs)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _flags_without_type(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        with command_run(command_path(ctx)):
            return super().invoke(ctx)


class Group(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        kwargs["help"] = flow(kwargs.get("help"))
        super().__init__(**kwargs)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _flags_without_type(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        # Without a subcommand to run, a group with a callback is the command (`cdcctl verify`).
        pending = getattr(ctx, "_protected_args", None)  # click >= 8.2; before: protected_args
        if pending is None:
            pending = ctx.protected_args
        if ctx.parent is not None and not pending:
            with command_run(command_path(ctx)):
                return super().invoke(ctx)
        return super().invoke(ctx)


class Typer(typer.Typer):
    """`typer.Typer` whose groups and commands are this module's `Group` and `Command`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", Command)
        return super().command(name, **kwargs)

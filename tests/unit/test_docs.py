"""The README's CLI reference is checked against the command tree (so it cannot drift).

Decision 0080: every command has a row whose command cell names it (``cdcctl dlq ls ...``;
alternatives with ``|`` as in ``cdcctl pause|resume|stop NAME``), and every option the command
has is mentioned in that row, unless the first row (``cdcctl [...] COMMAND``: cdcctl's own
options) mentions it as an option the commands share.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from controlplane.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"
# An option the first row lists as shared must be shared: at least this many commands have it.
SHARED_BY_AT_LEAST = 3


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the tree with its path; groups by shape (typer vendors its own click)."""
    yield path, cmd
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from walk(sub, (*path, name))


def option_names(cmd: Any) -> list[list[str]]:
    """Each option's spellings (``['--limit', '-n']``); typer's `--help` is documented once."""
    return [
        [*p.opts, *p.secondary_opts]
        for p in cmd.params
        if getattr(p, "param_type_name", "") == "option"
    ]


def runnable(path: tuple[str, ...], cmd: Any) -> bool:
    """Commands a user runs: leaves, and groups with options of their own (`verify`, the root)."""
    return not getattr(cmd, "commands", None) or bool(option_names(cmd))


def row_paths(cell: str) -> list[tuple[str, ...]]:
    """The commands a row's command cell names: ``cdcctl config get-contexts|use-context NAME``
    -> ``config get-contexts``, ``config use-context``. Words up to the first option or ``[``;
    an alternative replaces the last word of the first one."""
    spec = re.split(r"\s(?=[-\[])", cell.replace("\\|", "|"), maxsplit=1)[0]
    words = spec.split()
    assert words[0] == "cdcctl", cell
    alternatives = " ".join(words[1:]).split("|")
    lowercase = [
        [w for w in alt.split() if re.fullmatch(r"[a-z][a-z0-9-]*", w)] for alt in alternatives
    ]
    first = tuple(lowercase[0])
    prefix = first[:-1]
    return [first, *((*prefix, *alt) for alt in lowercase[1:])]


def reference() -> list[tuple[list[tuple[str, ...]], str]]:
    """(paths, whole row) for each row of the CLI reference."""
    rows = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `cdcctl"):
            rows.append((row_paths(line.split("`")[1]), line))
    return rows


def mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def commands() -> list[tuple[tuple[str, ...], Any]]:
    return [(p, c) for p, c in walk(typer.main.get_command(app)) if runnable(p, c)]


def test_the_reference_is_parsed() -> None:
    paths = [p for ps, _ in reference() for p in ps]
    assert () in paths  # the first row: cdcctl's own options
    assert ("stack", "up") in paths
    assert ("config", "set-context") in paths
    assert {("pause",), ("resume",), ("stop",)} <= set(paths)
    assert ("replay-dlq",) in paths


def test_every_command_has_a_readme_row() -> None:
    documented = {p for ps, _ in reference() for p in ps}
    missing = [" ".join(p) for p, _ in commands() if p not in documented]
    assert not missing, f"README's CLI reference has no row for: {missing}"


def test_every_row_names_a_command() -> None:
    known = {p for p, _ in commands()}
    unknown = [" ".join(p) for ps, _ in reference() for p in ps if p not in known]
    assert not unknown, f"README's CLI reference names commands cdcctl does not have: {unknown}"


def test_every_option_is_in_its_commands_row() -> None:
    rows = reference()
    shared = " ".join(line for paths, line in rows if () in paths)
    missing = []
    for path, cmd in commands():
        text = " ".join(line for paths, line in rows if path in paths)
        for names in option_names(cmd):
            if names == ["--help", "-h"] or names == ["-h", "--help"]:
                continue
            if not any(mentions(text, n) or mentions(shared, n) for n in names):
                missing.append(f"cdcctl {' '.join(path)} {names[0]}".replace("  ", " "))
    assert not missing, f"README's CLI reference does not mention: {missing}"


def test_shared_options_are_shared() -> None:
    """The first row may spare the other rows an option only when many commands have it."""
    rows = reference()
    shared = " ".join(line for paths, line in rows if () in paths)
    root = typer.main.get_command(app)
    own = {n for names in option_names(root) for n in names}
    counts: dict[str, int] = {}
    for _, cmd in commands():
        for names in option_names(cmd):
            for n in names:
                counts[n] = counts.get(n, 0) + 1
    listed = {n for n in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", shared)}
    rare = sorted(
        n for n in listed - own - {"-h", "--help"} if counts.get(n, 0) < SHARED_BY_AT_LEAST
    )
    assert not rare, f"the first row lists as shared what few commands have: {rare}"

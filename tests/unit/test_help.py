"""Every command's `--help`, as a new user meets it, at two terminal widths (decision 0080).

Checked on the rendered text: exit 0; no ``<bool>`` beside flags; no sentence broken mid-line;
every option and argument explained. A broken sentence is told from the terminal's own wrapping
by the wrapping rule itself: rich wraps greedily, so a line is only ever ended early when the next
word does not fit on it. A line that ends mid-sentence although the next line's first word would
have fitted was broken by the text (a hard line break in a docstring), not by the terminal.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from controlplane.cli import app
from controlplane.cli.base import flow

WIDTHS = (100, 60)
# A line may end a sentence or a clause with these; then an early break is a paragraph's end.
ENDS = (".", ":", "!", "?")
# typer's own additions below an option's help ([default: ...], [env var: ...], [required]).
EXTRAS = "["


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from walk(sub, (*path, name))


TREE = list(walk(typer.main.get_command(app)))
PATHS = [path for path, _ in TREE]


def render(path: tuple[str, ...], width: int) -> str:
    env = {"COLUMNS": str(width), "TERMINAL_WIDTH": str(width), "NO_COLOR": "1"}
    result = CliRunner().invoke(app, [*path, "--help"], env=env)
    assert result.exit_code == 0, f"cdcctl {' '.join(path)} --help: {result.output}"
    return result.output


def _first_word(line: str) -> str:
    return line.split()[0] if line.split() else ""


def _early_break(used: int, nxt: str, room: int, prev: str) -> bool:
    """Whether the break after `prev` (`used` cells of `room`) came from the text itself."""
    word = _first_word(nxt)
    if not word or nxt.lstrip().startswith(EXTRAS):
        return False
    fits = used + 1 + len(word) <= room - 1  # -1: rich's cell padding, tolerated
    mid_sentence = not prev.rstrip().endswith(ENDS) or word[0].islower()
    return fits and mid_sentence


def help_texts(cmd: Any) -> list[str]:
    """What a command's panels show in their help column: its options' and arguments' help
    (and typer's --help) and its subcommands' help."""
    texts = [getattr(p, "help", None) or "" for p in cmd.params]
    texts.append("Show this message and exit.")
    texts += [sub.help or "" for sub in (getattr(cmd, "commands", None) or {}).values()]
    return [t for t in texts if t]


def broken_lines(output: str, width: int, texts: list[str]) -> list[str]:
    """The places in rendered help where a paragraph was broken before the terminal's edge;
    `texts` are the help texts of the panels' rows (they locate the help column)."""
    lines = output.splitlines()
    found: list[str] = []
    # 1. Prose (the command's description and epilog): text padded by one space each side.
    prose = [
        line[1:].rstrip()
        for line in lines
        if line.startswith(" ") and not line.lstrip().startswith("Usage:")
    ]
    for a, b in itertools.pairwise(prose):
        if a and b and _early_break(len(a), b, width - 1, a):
            found.append(f"{a!r} / {b!r}")
    # 2. Panels (options, arguments, commands): the help column is where the rows' help texts
    # start; a line of the panel blank up to there continues the row above.
    snippets = [t[:12] for t in texts if len(t) >= 12]
    panel: list[str] = []
    for line in lines:
        if line.startswith("╭"):
            panel = []
        elif line.startswith("│") and line.rstrip().endswith("│"):
            panel.append(line.rstrip()[1:-1])
        elif line.startswith("╰"):
            found += _broken_in_panel(panel, snippets)
    return found


def _broken_in_panel(rows: list[str], snippets: list[str]) -> list[str]:
    starts = Counter(r.find(s) for r in rows for s in snippets if s in r)
    if not starts:
        return []
    col = starts.most_common(1)[0][0]
    found = []
    for i in range(1, len(rows)):
        row = rows[i]
        if not row[col:].strip() or row[:col].strip():
            continue  # not a continuation of the help column
        prev, nxt = rows[i - 1][col:].rstrip(), row[col:]
        room = len(row) - 1 - col  # the panel's inner width less its right padding
        if prev and _early_break(len(prev), nxt, room, prev):
            found.append(f"{prev.strip()!r} / {nxt.strip()!r}")
    return found


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "cdcctl")
def test_help_reads_well(path: tuple[str, ...], width: int) -> None:
    output = render(path, width)
    assert "Usage:" in output
    assert "<bool>" not in output, output
    assert "BOOLEAN" not in output, output  # click's plain formatter's spelling of it
    broken = broken_lines(output, width, help_texts(dict(TREE)[path]))
    assert not broken, f"cdcctl {' '.join(path)} --help at {width} columns:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "cdcctl")
def test_every_option_and_argument_is_explained(path: tuple[str, ...]) -> None:
    cmd = dict(TREE)[path]
    ctx = typer.main.get_command(app).make_context("cdcctl", [], resilient_parsing=True)
    params = cmd.get_params(ctx)
    unexplained = [p.name for p in params if not (getattr(p, "help", None) or "").strip()]
    assert not unexplained, f"cdcctl {' '.join(path)}: no help text for {unexplained}"
    assert (cmd.help or "").strip(), f"cdcctl {' '.join(path)} has no help text"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "cdcctl")
def test_help_texts_have_no_hard_line_breaks(path: tuple[str, ...]) -> None:
    """The source of what is rendered: paragraphs are one line each (`base.flow`)."""
    cmd = dict(TREE)[path]
    texts = [
        cmd.help or "",
        cmd.epilog or "",
        *(getattr(p, "help", None) or "" for p in cmd.params),
    ]
    for text in texts:
        for paragraph in text.split("\n\n"):
            assert "\n" not in paragraph.strip(), f"cdcctl {' '.join(path)}: {paragraph!r}"


def test_the_check_finds_a_hard_break() -> None:
    """The check itself: a docstring with a hard break, and the same text flowed."""
    broken = typer.Typer()

    @broken.command()
    def one(
        flag: bool = typer.Option(False, "--flag", help="A flag.\nwith a break."),
    ) -> None:
        """Do one thing to the pipeline's connector so that
        it runs again.

        Then another thing, to its tasks, so that
        they run too."""

    @broken.command()
    def two() -> None:
        """Another."""

    out = CliRunner().invoke(broken, ["one", "--help"], env={"COLUMNS": "100"}).output
    assert any("to its tasks" in f for f in broken_lines(out, 100, [])), out
    assert "<bool>" in out  # plain typer shows it: the reason for base.Command
    assert not broken_lines(f" {flow(one.__doc__)}\n", 100, [])
    # ... and in a panel: the commands' list keeps the first paragraph's break.
    out = CliRunner().invoke(broken, ["--help"], env={"COLUMNS": "100"}).output
    texts = [one.__doc__ or "", "Another."]
    assert any("so that" in f for f in broken_lines(out, 100, texts)), out


def test_flags_show_no_type_but_valued_options_do() -> None:
    output = render(("dlq", "replay"), 100)
    dry_run = next(line for line in output.splitlines() if "--dry-run" in line)
    assert "<" not in dry_run
    timeout = next(line for line in output.splitlines() if "--timeout" in line)
    assert "float" in timeout


def test_replay_dlq_is_dlq_replay_and_listed() -> None:
    root = dict(TREE)
    alias, original = root[("replay-dlq",)], root[("dlq", "replay")]
    assert alias.callback is not None
    assert original.callback is not None
    assert alias.callback.__wrapped__ is original.callback.__wrapped__  # same function
    spelled = [(p.name, p.opts, p.secondary_opts, p.default) for p in alias.params]
    assert spelled == [(p.name, p.opts, p.secondary_opts, p.default) for p in original.params]
    assert not alias.hidden
    assert "replay-dlq" in render((), 100)
    assert "dlq replay" in render(("replay-dlq",), 100)


# The rule: every command has --help and -o json. These print no result to render, and why.
WITHOUT_OUTPUT_FORMAT = {
    ("stack", "logs"): "a service's own log lines, as they are",
    ("stack", "env"): "shell code for eval",
    ("cdc-raw", "export"): "Prometheus' text format (--once), else a server",
    ("manifest", "schema"): "a JSON Schema: JSON already",
}


def runnable(path: tuple[str, ...], cmd: Any) -> bool:
    """Commands a user runs: leaves, and groups with options of their own but the root."""
    own = [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]
    return bool(path) and (not getattr(cmd, "commands", None) or bool(own))


def output_option(cmd: Any) -> Any:
    return next((p for p in cmd.params if "-o" in getattr(p, "opts", [])), None)


@pytest.mark.parametrize("path", [p for p, c in TREE if runnable(p, c)], ids=lambda p: " ".join(p))
def test_every_command_prints_json_with_o(path: tuple[str, ...]) -> None:
    option = output_option(dict(TREE)[path])
    if path in WITHOUT_OUTPUT_FORMAT:
        assert option is None, f"cdcctl {' '.join(path)} has -o now: drop it from the list"
        return
    assert option is not None, f"cdcctl {' '.join(path)} has no -o/--output"
    assert "--output" in option.opts
    # What the user reads: the option's help names json among its formats.
    formats = option.help.replace(",", " ").replace(".", " ").split()
    assert "json" in formats, f"cdcctl {' '.join(path)} -o: {option.help!r}"


def test_the_commands_without_o_exist_and_the_readme_names_them() -> None:
    unknown = [" ".join(p) for p in WITHOUT_OUTPUT_FORMAT if p not in dict(TREE)]
    assert not unknown, f"WITHOUT_OUTPUT_FORMAT names commands cdcctl does not have: {unknown}"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (rule,) = [line for line in readme.splitlines() if line.startswith("Every command has")]
    named = set(re.findall(r"`([a-z][a-z -]*)`", rule))
    assert named == {" ".join(p) for p in WITHOUT_OUTPUT_FORMAT}, rule

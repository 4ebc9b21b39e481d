"""The README's CLI reference names every command cdcctl has (so it cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from controlplane.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def leaf_paths(cmd: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # Groups by shape: typer >= 0.20 vendors its own click.
    subs = getattr(cmd, "commands", None)
    if subs:
        return [p for name, sub in subs.items() for p in leaf_paths(sub, (*prefix, name))]
    return [prefix]


def reference_rows() -> list[set[str]]:
    rows = []
    for line in README.read_text().splitlines():
        if line.startswith("| `cdcctl "):
            cell = line.split("`")[1]
            rows.append(set(re.split(r"[^a-z0-9-]+", cell.replace("\\|", " "))))
    return rows


def test_every_command_is_in_the_readme_reference() -> None:
    rows = reference_rows()
    paths = leaf_paths(typer.main.get_command(app))
    assert ("stack", "up") in paths  # the walk itself works
    missing = [
        " ".join(path)
        for path in leaf_paths(typer.main.get_command(app))
        if not any(set(path) <= words for words in rows)
    ]
    assert not missing, f"README's CLI reference lacks: {missing}"

"""scripts/check_markdown_location.py: Markdown lives in docs/, README.md anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_markdown_location.py"


def _tree(root: Path, files: list[str]) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# x\n")
    return root


def _check(root: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *files],
        capture_output=True,
        text=True,
        check=False,
    )


CLEAN = [
    "README.md",
    "docs/quickstart.md",
    "docs/decisions/0001-x.md",
    "controlplane/README.md",
    "notes.txt",
    # Ignored trees.
    ".stack/logs/report.md",
    "transforms/target/site/index.md",
    "web/node_modules/pkg/CHANGELOG.md",
    ".git/description.md",
]


def test_clean_tree_passes(tmp_path: Path) -> None:
    result = _check(_tree(tmp_path, CLEAN))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    "stray",
    ["CONTRIBUTING.md", "controlplane/NOTES.md", "transforms/design.md", "examples/readme.md"],
)
def test_stray_markdown_fails(tmp_path: Path, stray: str) -> None:
    result = _check(_tree(tmp_path, [*CLEAN, stray]))
    assert result.returncode == 1
    assert stray in result.stderr
    assert "docs/" in result.stderr
    # Only the stray file is reported.
    assert len(result.stderr.strip().splitlines()) == 1


def test_file_arguments_check_only_those(tmp_path: Path) -> None:
    """pre-commit passes the changed files; a stray elsewhere in the tree is not looked at."""
    root = _tree(tmp_path, [*CLEAN, "stray.md"])
    assert _check(root, "docs/quickstart.md", "README.md").returncode == 0
    failed = _check(root, "stray.md")
    assert failed.returncode == 1
    assert "stray.md" in failed.stderr


def test_file_arguments_respect_ignored_trees(tmp_path: Path) -> None:
    root = _tree(tmp_path, CLEAN)
    assert _check(root, ".stack/logs/report.md", "transforms/target/site/index.md").returncode == 0

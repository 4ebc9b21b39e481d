#!/usr/bin/env python3
"""Fail when a Markdown file other than README.md lives outside docs/.

Documentation has one home, docs/; a README.md may sit in any directory to introduce it.
Usage: check_markdown_location.py [--root DIR] [FILE ...]

With FILE arguments (as pre-commit passes them) only those files are checked; without, the whole
tree under --root (default: the current directory) is walked. Generated or third-party trees are
ignored: .git, .stack, transforms/target, node_modules (and local venv/tool caches).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

ALLOWED_NAME = "README.md"
DOCS_DIR = "docs"
# Ignored anywhere in a path (a directory name) ...
IGNORED_DIR_NAMES = frozenset(
    {".git", ".stack", "node_modules", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)
# ... and ignored as a path prefix relative to the root.
IGNORED_PREFIXES = (PurePosixPath("transforms/target"),)


def _is_ignored(rel: PurePosixPath) -> bool:
    if any(part in IGNORED_DIR_NAMES for part in rel.parts[:-1]):
        return True
    return any(rel.is_relative_to(prefix) for prefix in IGNORED_PREFIXES)


def misplaced(paths: Iterable[str]) -> list[str]:
    """The Markdown files among `paths` (relative, '/'-separated) that live in the wrong place."""
    bad: list[str] = []
    for raw in paths:
        rel = PurePosixPath(raw.replace(os.sep, "/"))
        if rel.suffix.lower() != ".md" or _is_ignored(rel):
            continue
        if rel.name == ALLOWED_NAME or rel.parts[0] == DOCS_DIR:
            continue
        bad.append(str(rel))
    return sorted(bad)


def walk(root: str) -> list[str]:
    """Every file under root, relative to it, pruning ignored directories as it goes."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = PurePosixPath(os.path.relpath(dirpath, root).replace(os.sep, "/"))
        dirnames[:] = [
            d
            for d in dirnames
            if d not in IGNORED_DIR_NAMES and not _is_ignored(rel_dir / d / "file")
        ]
        out.extend(os.path.normpath(os.path.join(rel_dir, f)) for f in filenames)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("files", nargs="*", help="files to check (default: walk --root)")
    args = parser.parse_args(argv)
    if args.files:
        candidates = [os.path.relpath(os.path.join(args.root, f), args.root) for f in args.files]
    else:
        candidates = walk(args.root)
    bad = misplaced(candidates)
    for path in bad:
        print(
            f"{path}: Markdown belongs under {DOCS_DIR}/ (only {ALLOWED_NAME} may live elsewhere)",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

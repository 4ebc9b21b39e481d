#!/usr/bin/env bash
# Install the repository's pre-commit hook into .git/hooks. Safe to run any number of times.
# Needs the dev tools: pip install -e '.[dev]'
set -euo pipefail

root="$(git rev-parse --show-toplevel)"
cd "$root"

if ! command -v pre-commit >/dev/null 2>&1; then
  echo "pre-commit is not installed; run: pip install -e '.[dev]'" >&2
  exit 1
fi

# `pre-commit install` overwrites its own hook script in place, so a second run changes nothing;
# --overwrite replaces a hook some other tool left behind instead of chaining to it.
pre-commit install --overwrite --install-hooks --hook-type pre-commit
echo "pre-commit hook installed in $(git rev-parse --git-path hooks)/pre-commit"

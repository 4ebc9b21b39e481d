#!/usr/bin/env bash
# Every static check CI runs, in one place (CI's .ci/run calls this script).
#   scripts/lint.sh            all hooks on all files, then the import-linter contracts
# Extra hooks to skip can be named the pre-commit way: SKIP=mypy,bandit scripts/lint.sh
# Exit status is non-zero if any check fails; every check runs either way.
set -uo pipefail

root="$(git rev-parse --show-toplevel)"
cd "$root"

status=0
run() {
  echo "==> $*"
  if ! "$@"; then
    echo "FAILED: $*" >&2
    status=1
  fi
}

for tool in pre-commit lint-imports; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is not installed; run: pip install -e '.[dev]'" >&2
    exit 2
  fi
done

# Fixers (end-of-file, trailing whitespace) would edit files in CI; show the diff instead.
run pre-commit run --all-files --show-diff-on-failure --color "${PRE_COMMIT_COLOR:-auto}"
# Layer and independence contracts of [tool.importlinter] in pyproject.toml.
run lint-imports --no-cache

if [ "$status" -ne 0 ]; then
  echo "lint: some checks failed (see above)" >&2
fi
exit "$status"

# Tasks for cass-cdc-pg. Run through ./dev (it prepares .venv and provides `just`).

set shell := ["bash", "-euo", "pipefail", "-c"]

# lint, then the whole test suite
default: lint test

# The main job: the local stack, the example pipeline, rows written to Cassandra shown in PostgreSQL
demo:
    cdcctl stack up
    python scripts/demo.py

# Every test layer against the real services (the session fixture starts the stack if needed)
test:
    mvn -B -q -f transforms/pom.xml verify
    mvn -B -q -f transforms/vault-config-provider/pom.xml verify
    python -m pytest tests/unit tests/integration tests/e2e --cov=controlplane --cov-report=term --cov-report=xml --cov-fail-under=80

# Unit tests only: no network, seconds
unit:
    python -m pytest tests/unit -q

# The checks CI runs before the tests (pre-commit hooks + import contracts)
lint:
    bash scripts/lint.sh

# Benchmarks: write docs/benchmarks.md figures (run explicitly, never part of `test`)
bench:
    python -m pytest tests/performance -m performance -s

# Stop the local stack (data kept); `just clean` deletes it
down:
    cdcctl stack down

clean:
    cdcctl stack down --clean

# Regenerate the transform's fixtures from the real agent
capture-fixtures:
    cdcctl stack up
    python scripts/capture_events.py

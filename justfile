# Tasks for cass-cdc-pg. Run through ./dev (it prepares .venv and provides `just`).

set shell := ["bash", "-euo", "pipefail", "-c"]

# CI's Cassandra 4.1 leg (decision 0117): the suites whose outcome depends on the source version
# (the 4.1 agent's events, its schema changes, validate --online's version findings), within
# ~8 min. DLQ, torture and verify run on 5.0 only in CI (they pass on 4.1: `./dev test-c41 FILE`).
C41_CI_TESTS := "tests/e2e/test_first_pipeline.py tests/e2e/test_semantics.py tests/e2e/test_type_matrix.py tests/e2e/test_schema_evolution.py tests/integration/test_semantics_checks_online.py"

# CI's stock-sink leg (decision 0149): the suites whose outcome depends on the writer, through
# spec.sink.writer: jdbc on the already running default stack, within ~3 min.
JDBC_CI_TESTS := "tests/e2e/test_first_pipeline.py tests/e2e/test_semantics.py tests/e2e/test_torture.py tests/e2e/test_type_matrix.py tests/e2e/test_schema_incompatible.py"

# lint, then the whole test suite
default: lint test

# The main job: the local stack, the example pipeline, rows written to Cassandra shown in PostgreSQL
demo:
    cdcctl stack up
    python scripts/demo.py

# Every test layer against the real services (the session fixture starts the stack if needed)
test:
    mvn -B -q -f transforms/pom.xml install
    mvn -B -q -f transforms/vault-config-provider/pom.xml verify
    mvn -B -q -f transforms/lww-sink/pom.xml verify
    python -m pytest tests/unit tests/fuzz tests/integration tests/e2e --cov=controlplane --cov-report=term --cov-report=xml --cov-fail-under=80 --durations=30

# The local cluster profile: 3 Cassandra nodes, an agent per node, 2 Connect workers, in its own
# state dir (.stack-cluster, port offset 2000); started and stopped by the session fixture. The
# chaos suite runs after the cluster tests in the same session (one cold start): RF=3, writes at
# QUORUM, one round of each fault, plus the workload without a fault at QUORUM (none: ~65 s; add
# none@ONE through CDC_CHAOS_FAULTS for the round at ONE) (tests/chaos; docs/reliability.md)
test-cluster:
    CDC_STACK_DIR="${CDC_CLUSTER_STACK_DIR:-{{justfile_directory()}}/.stack-cluster}" CDC_CHAOS_RF=3 CDC_CHAOS_CL=QUORUM CDC_CHAOS_FAULTS="${CDC_CHAOS_FAULTS:-none,cassandra,agent,connect,kafka,postgres}" python -m pytest tests/cluster tests/chaos -m "cluster or chaos" -s --durations=30

# Cassandra 4.1.7 on Java 11 with the cassandra-4 agent (decision 0107), same test code, own state
# dir (.stack-c41) and port offset (5000); the stack is stopped at the end (data kept).
# `./dev test-c41 tests/e2e/test_semantics.py` runs only that file; with no argument, the suites
# CI's 4.1 leg runs (C41_CI_TESTS; decision 0117).
# The e2e suites against Cassandra 4.1 (CDC_CASSANDRA_VERSION=4.1 for the session's stack)
test-c41 *tests=C41_CI_TESTS:
    #!/usr/bin/env bash
    set -euo pipefail
    export CDC_STACK_DIR="${CDC_C41_STACK_DIR:-{{justfile_directory()}}/.stack-c41}" CDC_CASSANDRA_VERSION=4.1
    trap 'cdcctl stack down' EXIT  # also when `stack up` fails half-way
    cdcctl stack up --port-offset "${CDC_C41_PORT_OFFSET:-5000}" --cassandra-version 4.1
    python -m pytest {{tests}} -rA --durations=20

# `test` runs every pipeline through the default writer, lww (decision 0149); this runs the suites
# whose result depends on the writer (JDBC_CI_TESTS: the first pipeline, the semantics suite, the
# torture stream, the type matrix, the incompatible schema change) through the stock sink, on the
# running default stack after `test` in CI (~3 min). The differential test (test_lww_sink.py)
# runs both writers in `test` anyway. `./dev test-jdbc FILE` runs that file only.
# The writer-dependent e2e suites through the stock JDBC sink + gate (spec.sink.writer: jdbc)
test-jdbc *tests=JDBC_CI_TESTS:
    CDC_SINK_WRITER=jdbc python -m pytest {{tests}} -rA --durations=20

# Unit tests only (with the fuzz suite's default examples and its corpus): no network, seconds
unit:
    python -m pytest tests/unit tests/fuzz -q

# The fuzz suite with many more examples (nightly; docs/contributing.md). FUZZ_EXAMPLES=N per test
fuzz:
    HYPOTHESIS_PROFILE=nightly python -m pytest tests/fuzz -q --hypothesis-show-statistics

# The checks CI runs before the tests (pre-commit hooks + import contracts)
lint:
    bash scripts/lint.sh

# Known vulnerabilities in the installed Python dependencies (pip-audit; docs/security.md).
# A logged skip when the vulnerability data cannot be reached; CDC_AUDIT_STRICT=1 makes it fail
audit:
    python scripts/dependency_audit.py

# Benchmarks: write docs/benchmarks.md figures (run explicitly, never part of `test`)
bench:
    python -m pytest tests/performance -m performance -s

# Chaos: faults under load, convergence checked (tests/chaos; docs/reliability.md). Needs its own
# stack: CDC_STACK_DIR=... ; CDC_CHAOS_ROUNDS (default 1), CDC_CHAOS_RF/_CL, CDC_CHAOS_FAULTS
chaos:
    python -m pytest tests/chaos -m chaos -s

# cdc_raw full: agent stopped, cdc_raw filled past the alert until Cassandra rejects writes, then
# the documented recovery (docs/reliability.md#cdc_raw-full). Restarts the stack of CDC_STACK_DIR
# with a small cdc_total_space (CDC_FULL_SPACE_MIB, default 48) and cdc_block_writes; never .stack/
cdc-full:
    python -m pytest tests/e2e/test_cdc_raw_full.py -m cdcfull -s

# Stop the local stack (data kept); `just clean` deletes it
down:
    cdcctl stack down

clean:
    cdcctl stack down --clean

# Regenerate the transform's fixtures from the real agent
capture-fixtures:
    cdcctl stack up
    python scripts/capture_events.py

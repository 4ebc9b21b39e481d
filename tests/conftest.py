"""Shared fixtures. Integration/e2e fixtures that need the real stack live in their folders."""

import os

# Tracing is off unless an OTLP endpoint is configured (decision 0122): a developer's shell after
# `eval "$(cdcctl stack env)"` has one, which must not make every test (and every cdcctl it runs)
# export spans. A test that wants traces sets the variable itself.
for _name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
    os.environ.pop(_name, None)

"""OpenTelemetry tracing of cdcctl: the SDK set up once per run (`configure`), and `span`, the
one helper the services and the CLI open spans with (decision 0122).

- Off unless an OTLP endpoint is configured: ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the whole
  URL, ``.../v1/traces``) or ``$OTEL_EXPORTER_OTLP_ENDPOINT`` (the base URL; ``/v1/traces`` is
  appended), the SDK's own variables. ``$OTEL_SDK_DISABLED=true`` or
  ``$OTEL_TRACES_EXPORTER=none`` turn it off again. Off, `span` is a no-op and nothing of
  OpenTelemetry is even imported (``cdcctl --help`` does not pay for it).
- On: spans go over OTLP http/protobuf (`OTLPSpanExporter`; its other ``OTEL_EXPORTER_OTLP_*``
  variables — headers, certificate, timeout — apply as the SDK documents them) through a batch
  processor, flushed when the process ends. The service is ``cdcctl``.
- Every span carries ``cdcctl.run_id`` (the run id of the log lines, cli.logs) and
  ``cdcctl.command`` once the command is known, so a trace and the log lines of one run find
  each other.
- Spans never carry secrets: attribute values pass the log's redaction (core.redaction: secret
  keys masked whole, every secret this run resolved masked wherever it occurs), and a failing
  span records the exception's type and its redacted message — no traceback, no locals.

OpenTelemetry is imported here and nowhere else (an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from controlplane import __version__
from controlplane.core.redaction import redact_field, redact_text

SERVICE_NAME = "cdcctl"
ATTRIBUTE_PREFIX = "cdcctl."
RUN_ID_ATTRIBUTE = "cdcctl.run_id"
COMMAND_ATTRIBUTE = "cdcctl.command"
# The SDK's variables (opentelemetry.sdk.environment_variables), read here only to decide whether
# tracing is on; the exporter reads them itself.
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# When tracing is on and no timeout is configured: how long one export may take (the SDK's own
# default is 10 s, retried on connection errors until then). A run whose collector is away then
# ends at most this much later; its spans are dropped with a warning on stderr.
DEFAULT_EXPORT_TIMEOUT_S = 3.0
TIMEOUT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")

AttributeValue = str | bool | int | float


class _Tracing:
    """This process's tracing once configured: one run per process, so module state."""

    def __init__(self, provider: Any, tracer: Any, run: dict[str, str]) -> None:
        self.provider = provider
        self.tracer = tracer
        self.run = run


_state: list[_Tracing] = []


def endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The configured OTLP endpoint, or None when tracing is off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    for name in ENDPOINT_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def enabled() -> bool:
    """Whether this process exports spans (`configure` found an endpoint)."""
    return bool(_state)


def configure(run_id: str, *, exporter: Any = None) -> bool:
    """Set up tracing for this run when an endpoint is configured (or, in tests, with
    `exporter`, an SDK span exporter that gets every span as it ends). Idempotent: a second call
    only updates the run id. Returns whether tracing is on."""
    if _state:
        _state[0].run[RUN_ID_ATTRIBUTE] = run_id
        return True
    if exporter is None and endpoint() is None:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    run = {RUN_ID_ATTRIBUTE: run_id}

    class RunAttributes(SpanProcessor):
        """Stamps the run's attributes on every span as it starts."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            span.set_attributes(dict(run))

    resource = Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(RunAttributes())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    _state.append(_Tracing(provider, provider.get_tracer("controlplane", __version__), run))
    return True


def _otlp_exporter() -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    configured = any(os.environ.get(v) for v in TIMEOUT_VARIABLES)
    return OTLPSpanExporter(timeout=None if configured else DEFAULT_EXPORT_TIMEOUT_S)


def set_command(path: str) -> None:
    """Name the command on every span that starts from now on (``dlq replay``)."""
    if _state:
        _state[0].run[COMMAND_ATTRIBUTE] = path


def shutdown() -> None:
    """Export what is pending and stop (the end of the run; tests). Tracing is off after."""
    if _state:
        state = _state.pop()
        # Tracing must never change a command's outcome: the exporter logs its own failures.
        with contextlib.suppress(Exception):
            state.provider.shutdown()


class Span:
    """What `span` yields: add attributes as the work learns them (no-op while tracing is off)."""

    def __init__(self, otel: Any = None) -> None:
        self._otel = otel

    def set(self, **attributes: object) -> None:
        if self._otel is not None:
            self._otel.set_attributes(_attributes(attributes))


_NOOP = Span()


@contextlib.contextmanager
def span(name: str, *, new_trace: bool = False, **attributes: object) -> Iterator[Span]:
    """A span around the block, a child of the current one. Keyword attributes are named
    ``cdcctl.<name>`` (``change_kind=`` -> ``cdcctl.change_kind``), values redacted, None left
    out.
    ``new_trace``: start a trace of its own, linked to the current span (each pass of
    `reconcile --watch`, which would otherwise grow one trace for as long as it runs).
    An exception leaving the block marks the span failed (its type and redacted message) and
    goes on."""
    if not _state:
        yield _NOOP
        return
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, Status, StatusCode

    tracer = _state[0].tracer
    links = []
    parent = None
    if new_trace:
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            links.append(Link(current))
        parent = otel_context.Context()  # no parent: a new trace
    with tracer.start_as_current_span(
        name,
        context=parent,
        links=links,
        attributes=_attributes(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as otel:
        try:
            yield Span(otel)
        except BaseException as exc:
            message = redact_text(str(exc)) or type(exc).__name__
            otel.set_attribute("error.type", type(exc).__name__)
            otel.set_status(Status(StatusCode.ERROR, message))
            raise


def _attributes(attributes: Mapping[str, object]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        name = ATTRIBUTE_PREFIX + key
        masked = redact_field(name, value)
        if isinstance(masked, bool | int | float):
            out[name] = masked
        elif isinstance(masked, str):
            out[name] = redact_text(masked)
        else:
            out[name] = redact_text(str(masked))
    return out

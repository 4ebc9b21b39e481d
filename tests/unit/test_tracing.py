"""Tracing (decision 0122): off unless an endpoint is configured; when on, the spans of apply (one
per change), verify (one per range), dlq replay and the command's root span, with the run id and
never a secret. The SDK's in-memory exporter receives the spans; no collector is involved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from typer.testing import CliRunner

from controlplane.adapters import tracing
from controlplane.cli import app, logs
from controlplane.core import redaction
from controlplane.core.dlq import ReplayPlan
from controlplane.core.plan import Plan, ResourceChange
from controlplane.core.target import ConnectAccess, KafkaEndpoint, Target
from controlplane.services import apply as apply_service
from controlplane.services import dlq as dlq_service
from tests.unit.test_verify_consistency import _read, _verifier
from tests.unit.test_verify_consistency import v as verify_service


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure("run-1", exporter=exporter)
    yield exporter
    tracing.shutdown()
    logs.reset()
    redaction.forget_secrets()


def by_name(exporter: InMemorySpanExporter, name: str) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


# --- on or off ---------------------------------------------------------------------------------


def test_off_unless_an_endpoint_is_configured() -> None:
    assert tracing.endpoint({}) is None
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing.endpoint(base) == "http://127.0.0.1:4318"
    full = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:4318/v1/traces"}
    assert tracing.endpoint(full) == "http://h:4318/v1/traces"
    assert tracing.endpoint({**base, "OTEL_SDK_DISABLED": "true"}) is None
    assert tracing.endpoint({**base, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}) is None


def test_off_spans_are_no_ops_and_configure_declines(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure("r") is False
    assert not tracing.enabled()
    with tracing.span("apply.change", pipeline="p") as span:
        span.set(rows=3)  # nothing to record it on, and no error


# --- the helper -------------------------------------------------------------------------------


def test_spans_nest_and_carry_the_run_id_command_and_prefixed_attributes(
    spans: InMemorySpanExporter,
) -> None:
    tracing.set_command("apply")
    with tracing.span("outer", pipeline="orders") as outer:
        with tracing.span("inner", change_kind="postgres", skipped=None):
            pass
        outer.set(changes=2, ok=True)
    inner, parent = spans.get_finished_spans()
    assert inner.parent is not None
    assert inner.parent.span_id == parent.context.span_id
    assert inner.context.trace_id == parent.context.trace_id
    assert dict(inner.attributes or {}) == {
        "cdcctl.run_id": "run-1",
        "cdcctl.command": "apply",
        "cdcctl.change_kind": "postgres",
    }
    assert parent.attributes is not None
    assert parent.attributes["cdcctl.pipeline"] == "orders"
    assert (parent.attributes["cdcctl.changes"], parent.attributes["cdcctl.ok"]) == (2, True)
    assert parent.resource.attributes["service.name"] == "cdcctl"


def test_a_failing_span_keeps_the_error_type_and_a_redacted_message(
    spans: InMemorySpanExporter,
) -> None:
    secret = redaction.remember_secret("s3cr3t-value-42")
    with pytest.raises(RuntimeError), tracing.span("apply.change", password=secret, note=secret):
        raise RuntimeError(f"login with {secret} refused")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"login with {redaction.MASK} refused"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.attributes["cdcctl.password"] == redaction.MASK
    assert span.attributes["cdcctl.note"] == redaction.MASK
    assert not span.events  # no exception event: no traceback, no locals
    assert all(secret not in str(v) for v in span.attributes.values())


def test_a_new_trace_is_linked_to_the_span_it_started_in(spans: InMemorySpanExporter) -> None:
    with tracing.span("cdcctl reconcile"), tracing.span("reconcile.pass", new_trace=True):
        pass
    passed, command = spans.get_finished_spans()
    assert passed.parent is None
    assert passed.context.trace_id != command.context.trace_id
    assert [link.context.span_id for link in passed.links] == [command.context.span_id]


# --- the command's root span ---------------------------------------------------------------------


def test_each_command_is_the_root_span_of_its_trace(spans: InMemorySpanExporter) -> None:
    env = {"CDCCTL_RUN_ID": "ci-7", "CDCCTL_LOG_FORMAT": None, "CDCCTL_LOG_LEVEL": None}
    result = CliRunner().invoke(app, ["manifest", "schema"], env=env)
    assert result.exit_code == 0, result.output
    (root,) = by_name(spans, "cdcctl manifest schema")
    assert root.parent is None
    assert root.attributes is not None
    assert root.attributes["cdcctl.run_id"] == "ci-7"  # the log lines' run id
    assert root.attributes["cdcctl.command"] == "manifest schema"
    assert root.attributes["cdcctl.exit_code"] == 0
    assert root.status.status_code is not StatusCode.ERROR


def test_a_failing_command_marks_its_root_span(spans: InMemorySpanExporter, tmp_path: Any) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = CliRunner().invoke(app, ["validate", "-f", str(missing)], env={"CDCCTL_RUN_ID": "x"})
    assert result.exit_code != 0
    (root,) = by_name(spans, "cdcctl validate")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes is not None
    assert root.attributes["cdcctl.exit_code"] == result.exit_code


# --- the services' spans -----------------------------------------------------------------------


def _change(kind: str, name: str, action: str) -> ResourceChange:
    return ResourceChange("orders", kind, name, action)  # type: ignore[arg-type]


def test_apply_has_one_span_per_change_that_is_not_a_noop(spans: InMemorySpanExporter) -> None:
    plan = Plan(
        changes=[
            _change("agent-bundle", "node1", "update"),
            _change("agent-bundle", "node2", "noop"),
            _change("agent-bundle", "node3", "create"),
        ]
    )
    target = Target(name="prod", connect=ConnectAccess(url="http://connect:8083"))
    planned = apply_service.PlannedApply(plan=plan, pipelines={}, target=target)
    result = apply_service.execute_plan(planned, None)
    assert [c.action for c in result.changes] == ["to roll out", "unchanged", "to roll out"]
    changes = by_name(spans, "apply.change")
    (execute,) = by_name(spans, "apply.execute")
    assert [dict(s.attributes or {}) for s in changes] == [
        {
            "cdcctl.run_id": "run-1",
            "cdcctl.pipeline": "orders",
            "cdcctl.change_kind": "agent-bundle",
            "cdcctl.change_name": name,
            "cdcctl.change_action": action,
            "cdcctl.change_result": "to roll out",
            "cdcctl.change_fields": 0,
        }
        for name, action in (("node1", "update"), ("node3", "create"))
    ]
    assert all(
        s.parent is not None and s.parent.span_id == execute.context.span_id for s in changes
    )
    assert execute.attributes is not None
    assert execute.attributes["cdcctl.target"] == "prod"
    assert execute.attributes["cdcctl.changed"] == 2


def test_verify_has_one_span_per_range_with_its_outcome(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = dict.fromkeys(verify_service.COUNTERS, 0) | {"read": 7, "valid": 7}
    ver = _verifier(monkeypatch, [_read("connection"), ok])
    ver._do_task("t:00001")
    ver = _verifier(monkeypatch, [_read("invalid")])
    ver._do_task("t:00001")
    passed, failed = by_name(spans, "verify.range")
    assert passed.attributes is not None
    assert failed.attributes is not None
    assert {k: passed.attributes[k] for k in passed.attributes if k != "cdcctl.run_id"} == {
        "cdcctl.verify_run": "r",
        "cdcctl.task": "t:00001",
        "cdcctl.table": "t",
        "cdcctl.range_start": passed.attributes["cdcctl.range_start"],
        "cdcctl.range_end": passed.attributes["cdcctl.range_end"],
        "cdcctl.status": "PASS",
        "cdcctl.rows": 7,
        "cdcctl.remaining": 0,
        "cdcctl.retries": 1,
    }
    assert (failed.attributes["cdcctl.status"], failed.attributes["cdcctl.error_kind"]) == (
        "FAIL",
        "invalid",
    )


def test_verify_workers_spans_are_children_of_the_run(spans: InMemorySpanExporter) -> None:
    """Worker threads get a copy of the run's context, as Verifier.run hands it to them."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    def work() -> None:
        with tracing.span("verify.range"):
            pass

    with tracing.span("verify.run"), ThreadPoolExecutor(2) as ex:
        for f in [ex.submit(contextvars.copy_context().run, work) for _ in range(2)]:
            f.result()
    (run,) = by_name(spans, "verify.run")
    ranges = by_name(spans, "verify.range")
    assert len(ranges) == 2
    assert all(r.parent is not None and r.parent.span_id == run.context.span_id for r in ranges)


def test_dlq_replay_spans_name_pipelines_and_counts_never_contents(
    spans: InMemorySpanExporter,
) -> None:
    source = dlq_service.DlqSource("orders", KafkaEndpoint("127.0.0.1:1"), "orders.dlq")
    planned = [dlq_service.PlannedReplay(source, ReplayPlan(), explicit=True)]
    dlq_service.execute_replays(planned)  # nothing to send: no Kafka needed
    (replay,) = by_name(spans, "dlq.replay")
    (pipeline,) = by_name(spans, "dlq.replay.pipeline")
    assert pipeline.parent is not None
    assert pipeline.parent.span_id == replay.context.span_id
    assert pipeline.attributes is not None
    assert {k: v for k, v in pipeline.attributes.items() if k != "cdcctl.run_id"} == {
        "cdcctl.pipeline": "orders",
        "cdcctl.dlq": "orders.dlq",
        "cdcctl.records": 0,
        "cdcctl.skipped": 0,
        "cdcctl.committed": False,
    }

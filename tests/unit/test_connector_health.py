"""A FAILED connector or task cannot be missed: the health summary ("1 of 2 tasks FAILED"), the
first line of the trace with the worker, red in tables, exit 9 from `get` and `describe` (also
with -o json). Connect is replaced by the service's answer; no network."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from controlplane.cli import app, output
from controlplane.core.connector_health import first_line, health
from controlplane.core.errors import FailedStateError
from controlplane.services import pipelines

TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: Exiting WorkerSinkTask due to "
    "unrecoverable exception.\n\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliver"
    "(WorkerSinkTask.java:636)\nCaused by: java.sql.BatchUpdateException: violates check"
)
HEAD = TRACE.splitlines()[0]


def test_first_line_of_a_trace() -> None:
    assert first_line(TRACE) == HEAD
    assert first_line("\n\n  boom  \nat x") == "boom"
    assert first_line("") is None
    assert first_line(None) is None


def test_one_of_two_tasks_failed() -> None:
    h = health(
        "p-jdbc-sink",
        "RUNNING",
        "w1:8083",
        None,
        [(1, "RUNNING", "w2:8083", None), (0, "FAILED", "w1:8083", TRACE)],
    )
    assert h.failed
    assert h.summary == "1 of 2 tasks FAILED"
    assert [f.as_dict() for f in h.failures] == [
        {"connector": "p-jdbc-sink", "task": 0, "worker": "w1:8083", "error": HEAD}
    ]


def test_the_connector_itself_failed() -> None:
    h = health("c", "FAILED", "w1", "java.lang.IllegalStateException: no\n\tat x", [])
    assert h.summary == "connector FAILED"
    assert h.failures[0].task is None
    assert h.failures[0].error == "java.lang.IllegalStateException: no"
    both = health("c", "FAILED", "w1", "x", [(0, "FAILED", "w2", "y"), (1, "FAILED", "w1", "z")])
    assert both.summary == "connector FAILED, 2 of 2 tasks FAILED"
    assert len(both.failures) == 3


def test_healthy_and_mixed_states_are_counted() -> None:
    assert not health("c", "RUNNING", "w", None, [(0, "RUNNING", "w", None)] * 2).failed
    assert health("c", "RUNNING", "w", None, [(0, "RUNNING", "w", None)] * 2).summary == (
        "2 of 2 tasks RUNNING"
    )
    mixed = health("c", "RUNNING", "w", None, [(0, "RUNNING", "w", None), (1, "PAUSED", "w", None)])
    assert mixed.summary == "1 of 2 tasks PAUSED, 1 of 2 tasks RUNNING"
    assert health("c", "PAUSED", "w", None, []).summary == "connector PAUSED, no tasks"
    assert pipelines.connector_health("c", None).summary == "connector UNKNOWN, no tasks"


def describe_answer(failed: bool) -> dict[str, Any]:
    tasks = [
        {"id": 0, "state": "FAILED" if failed else "RUNNING", "worker": "w1:8083"},
        {"id": 1, "state": "RUNNING", "worker": "w2:8083", "error": None},
    ]
    tasks[0]["error"] = HEAD if failed else None
    h = health(
        "p-jdbc-sink",
        "RUNNING",
        "w1:8083",
        None,
        [(t["id"], t["state"], t["worker"], TRACE if t["error"] else None) for t in tasks],
    )
    return {
        "pipeline": "p",
        "connector": "p-jdbc-sink",
        "owned": True,
        "state": "RUNNING",
        "worker": "w1:8083",
        "error": None,
        "health": h.summary,
        "failed": h.failed,
        "failures": [f.as_dict() for f in h.failures],
        "tasks": tasks,
        "topics": ["demo.ks.t"],
        "tables": [],
        "active_topics": [],
        "consumer_group": "connect-p-jdbc-sink",
        "lag_total": 0,
        "lag": [],
        "last_error": TRACE if failed else None,
    }


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_describe_exits_9_after_showing_the_failed_task(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipelines, "describe_pipeline", lambda *_a, **_k: describe_answer(True))
    monkeypatch.setattr(output.console, "width", 250)  # one line per row
    result = CliRunner().invoke(app, ["describe", "pipeline", "p", "-o", fmt])
    assert isinstance(result.exception, FailedStateError), result.output
    assert result.exception.exit_code == 9
    assert "p-jdbc-sink: 1 of 2 tasks FAILED" in result.exception.message
    assert f"task 0 on worker w1:8083: {HEAD}" in result.exception.message
    if fmt == "json":
        shown = json.loads(result.stdout)
        assert (shown["failed"], shown["health"]) == (True, "1 of 2 tasks FAILED")
        assert shown["failures"][0]["worker"] == "w1:8083"
    else:
        assert "1 of 2 tasks FAILED" in result.stdout
        assert "w1:8083" in result.stdout
        assert "Exiting WorkerSinkTask" in result.stdout


def test_describe_of_a_healthy_pipeline_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipelines, "describe_pipeline", lambda *_a, **_k: describe_answer(False))
    result = CliRunner().invoke(app, ["describe", "pipeline", "p", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["health"] == "2 of 2 tasks RUNNING"


@pytest.mark.parametrize("what", ["pipelines", "connectors"])
def test_get_exits_9_when_one_connector_failed(what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    d = describe_answer(True)
    ok = describe_answer(False)
    rows = [
        {"name": "ok-jdbc-sink", "connector": "ok-jdbc-sink", "pipeline": "ok", **_h(ok)},
        {"name": "p-jdbc-sink", "connector": "p-jdbc-sink", "pipeline": "p", **_h(d)},
    ]
    monkeypatch.setattr(pipelines, f"get_{what}", lambda *_a, **_k: rows)
    monkeypatch.setattr(output.console, "width", 200)  # one line per row
    result = CliRunner().invoke(app, ["get", what])
    assert isinstance(result.exception, FailedStateError)
    assert "1 of 2 tasks FAILED" in result.stdout  # the listing first
    assert "ok-jdbc-sink" in result.stdout
    assert result.exception.message.startswith("p-jdbc-sink: 1 of 2 tasks FAILED")
    monkeypatch.setattr(pipelines, f"get_{what}", lambda *_a, **_k: rows[:1])
    assert CliRunner().invoke(app, ["get", what, "-o", "json"]).exit_code == 0


def _h(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": d["state"],
        "tasks_running": "",
        "health": d["health"],
        "failed": d["failed"],
        "failures": d["failures"],
    }

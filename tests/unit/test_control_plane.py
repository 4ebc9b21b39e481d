"""Pure logic of the control plane: plan/diff, prune, Strimzi backoff, validation output,
contexts precedence, restart of failed connectors (Connect replaced by httpx.MockTransport)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from controlplane.adapters.connect import ConnectClient
from controlplane.cli import app
from controlplane.core.contexts import CdcctlConfig, parse_config
from controlplane.core.errors import ManifestError, UsageError
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import load_text
from controlplane.core.plan import (
    SECRET_MASK,
    backoff_should_reset,
    ddl_marker,
    ddl_objects,
    normalise_connector,
    plan_agent,
    plan_connector,
    plan_postgres,
    plan_prune,
    plan_secret,
    plan_topics,
    restart_backoff_minutes,
    restart_due,
)
from controlplane.core.target import ConnectAccess, Context, Target, endpoints_for
from controlplane.core.validation import Finding, exit_code, github_annotation
from controlplane.services.reconcile import restart_failed
from controlplane.services.targets import context_target

runner = CliRunner()

MANIFEST = Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml"


# --- connectors ----------------------------------------------------------------------------


def test_normalisation_is_strimzi_style() -> None:
    assert normalise_connector({"name": "x", "tasks.max": 1, "a": True, "b": None}) == {
        "a": "true",
        "tasks.max": "1",
    }


def test_connector_noop_when_only_connect_added_keys_differ() -> None:
    desired = {"connector.class": "C", "tasks.max": 1, "cdcctl.owner": "cdcctl"}
    actual = {"connector.class": "C", "tasks.max": "1", "cdcctl.owner": "cdcctl", "name": "s"}
    change = plan_connector("p", "s", desired, actual)
    assert change.action == "noop"
    assert change.symbol == "="


def test_connector_update_lists_the_keys() -> None:
    change = plan_connector(
        "p", "s", {"batch.size": "500", "x": "1"}, {"batch.size": "7", "y": "2", "name": "s"}
    )
    assert change.action == "update"
    assert [(f.key, f.before, f.after) for f in change.fields] == [
        ("batch.size", "7", "500"),
        ("x", None, "1"),
        ("y", "2", None),
    ]
    assert "ownership marker" in change.reason  # no marker: adoption is said out loud


def test_connector_create_when_absent() -> None:
    assert plan_connector("p", "s", {"a": "1"}, None).action == "create"


def test_prune_only_owned_and_unnamed() -> None:
    connectors = {
        "mine-kept": {"cdcctl.owner": "cdcctl", "cdcctl.pipeline": "mine"},
        "mine-gone": {"cdcctl.owner": "cdcctl", "cdcctl.pipeline": "gone"},
        "by-hand": {"connector.class": "C"},
        "other-tool": {"cdcctl.owner": "someone-else"},
    }
    changes = plan_prune(connectors, ["mine-kept"])
    assert [(c.name, c.action, c.pipeline) for c in changes] == [("mine-gone", "delete", "gone")]


# --- postgres, topics, secret, agent -------------------------------------------------------

STATEMENTS = (
    'CREATE SCHEMA IF NOT EXISTS "ks_cdc"',
    'CREATE TABLE IF NOT EXISTS "ks_cdc"."t" (id int)',
    'CREATE TABLE IF NOT EXISTS "ks_cdc"."t__tombstones" (id int)',
    'CREATE OR REPLACE FUNCTION "ks_cdc"."t_lww"() RETURNS trigger AS $$ $$',
    'CREATE OR REPLACE VIEW "ks"."t" AS SELECT 1',
)


def test_ddl_objects_are_found_in_statements() -> None:
    assert [(o.kind, o.name) for o in ddl_objects(STATEMENTS)] == [
        ("table", '"ks_cdc"."t"'),
        ("table", '"ks_cdc"."t__tombstones"'),
        ("function", '"ks_cdc"."t_lww"'),
        ("view", '"ks"."t"'),
    ]


def test_postgres_plan_by_existence_and_ddl_hash() -> None:
    names = [o.name for o in ddl_objects(STATEMENTS)]
    assert plan_postgres("p", "ks.t", STATEMENTS, [], None).action == "create"
    partial = plan_postgres("p", "ks.t", STATEMENTS, names[:2], None)
    assert partial.action == "update"
    assert [f.key for f in partial.fields] == ['function "ks_cdc"."t_lww"', 'view "ks"."t"']
    assert plan_postgres("p", "ks.t", STATEMENTS, names, None).action == "update"
    assert plan_postgres("p", "ks.t", STATEMENTS, names, ddl_marker(STATEMENTS)).action == "noop"
    assert ddl_marker(STATEMENTS) != ddl_marker(STATEMENTS[:-1])


def test_topics_and_secret_never_show_values() -> None:
    assert [c.action for c in plan_topics("p", ["a", "b", "a"], ["a"])] == ["noop", "create"]
    change = plan_secret("p", "k", "s3cret", "old")
    assert change.action == "update"
    assert "s3cret" not in json.dumps(change.to_dict())
    assert change.fields[0].after == SECRET_MASK
    assert plan_secret("p", "k", "s3cret", "s3cret").action == "noop"


def test_agent_identity_and_comments_are_not_differences() -> None:
    props = {"connector.name": "a-cassandra-agent", "topic.prefix": "demo"}
    other = {"connector.name": "b-cassandra-agent", "topic.prefix": "demo"}
    conf_a = '# for a\nbasic {\n  session-name = "a"\n}\n'
    conf_b = '# for b\nbasic {\n  session-name = "b"\n}\n'
    assert plan_agent("b", "f", other, props, conf_b, conf_a).action == "noop"
    changed = plan_agent("b", "f", {**other, "topic.prefix": "x"}, props, conf_b, conf_a)
    assert changed.action == "update"
    assert plan_agent("b", "f", other, None, conf_b, None).action == "create"
    assert plan_agent("b", "f", other, props, conf_b, conf_a, pointer_ok=False).action == "update"


def test_plan_lines_and_summary() -> None:
    from controlplane.core.plan import Plan

    plan = Plan(
        [
            plan_connector("p", "s", {"a": "2"}, {"a": "1"}),
            plan_connector("p", "n", {"a": "1"}, None),
            *plan_prune({"old": {"cdcctl.owner": "cdcctl"}}, []),
            plan_secret("p", "k", "v", "v"),
        ]
    )
    lines = plan.lines()
    assert (
        lines[0] == "~ connector s [p]  (exists without the cdcctl ownership marker; "
        "apply will adopt it)"
    )
    assert "    ~ a: 1 -> 2" in lines
    assert any(line.startswith("+ connector n") for line in lines)
    assert any(line.startswith("- connector old") for line in lines)
    assert lines[-1] == "Plan: 1 to create, 1 to update, 1 to delete, 1 unchanged."
    assert plan.to_dict()["summary"] == {"create": 1, "update": 1, "delete": 1, "noop": 1}


# --- Strimzi backoff -----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "minutes"), [(0, 0), (1, 2), (2, 6), (3, 12), (7, 56), (8, 60)])
def test_backoff_is_n_squared_plus_n_capped_at_60(n: int, minutes: int) -> None:
    assert restart_backoff_minutes(n) == minutes


def test_restart_due_and_reset() -> None:
    assert restart_due(0, None, 0)
    assert not restart_due(2, 1000.0, 1000.0 + 5 * 60)
    assert restart_due(2, 1000.0, 1000.0 + 6 * 60)
    assert not backoff_should_reset(1, 0.0, 100.0)
    assert backoff_should_reset(1, 0.0, 601.0)
    assert not backoff_should_reset(8, 0.0, 3599.0)  # stable at least as long as the backoff


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}

    def get(self, name: str) -> dict[str, str]:
        return dict(self.data.get(name, {}))

    def put(self, name: str, values: Any) -> None:
        self.data[name] = dict(values)

    def delete(self, name: str) -> None:
        self.data.pop(name, None)


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    warning = info


def _failed_connect(calls: list[str]) -> ConnectClient:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        if request.url.path.endswith("/status"):
            return httpx.Response(
                200,
                json={
                    "name": "s",
                    "connector": {"state": "RUNNING", "worker_id": "w"},
                    "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w", "trace": "boom"}],
                },
            )
        return httpx.Response(204)

    return ConnectClient("http://connect", transport=httpx.MockTransport(handler))


def test_failed_tasks_are_restarted_with_backoff() -> None:
    calls: list[str] = []
    store, log = _Store(), _Log()
    with _failed_connect(calls) as client:
        first = restart_failed(client, ["s"], store, now=1000.0, log=log)
        again = restart_failed(client, ["s"], store, now=1000.0 + 60, log=log)  # within 2 min
        later = restart_failed(client, ["s"], store, now=1000.0 + 121, log=log)
    assert [r["attempt"] for r in first + again + later] == [1, 2]
    restarts = [c for c in calls if c.startswith("POST")]
    assert restarts == ["POST /connectors/s/restart?includeTasks=true&onlyFailed=true"] * 2
    assert store.data["s"]["restarts"] == "2"
    assert ("restart_backoff", {"connector": "s", "restarts": 1, "wait_s": 60}) in log.events


# --- validation ----------------------------------------------------------------------------


def test_exit_codes() -> None:
    online = Finding("cassandra", "no table", "f.yaml:3:4")
    offline = Finding("manifest", "bad key", "f.yaml:1:1")
    assert exit_code([]) == 0
    assert exit_code([online]) == 5
    assert exit_code([online, offline]) == 3


def test_github_annotation_escapes() -> None:
    f = Finding("manifest", "50% wrong\nnext", "dir/a,b.yaml:12:7", hint="fix: it")
    assert github_annotation(f) == (
        "::error file=dir/a%2Cb.yaml,line=12,col=7,title=cdcctl validate (manifest)"
        "::50%25 wrong%0Anext — hint: fix: it"
    )
    assert github_annotation(Finding("connect", "x", key="batch.size")).endswith("::[batch.size] x")


def test_validate_reports_all_problems_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        MANIFEST.read_text()
        .replace("batchSize: 2000", "batchSize: 0")
        .replace("tasksMax: 1", "taskMax: 1")
    )
    result = runner.invoke(app, ["validate", "-f", str(bad), "-o", "json"])
    assert result.exit_code == 3
    body = json.loads(result.stdout)
    assert body["valid"] is False
    assert len(body["problems"]) == 2
    assert all(p["file"] == str(bad) and p["line"] and p["column"] for p in body["problems"])
    result = runner.invoke(app, ["validate", "-f", str(MANIFEST)])
    assert result.exit_code == 0


def test_validate_github_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST.read_text().replace("name: demo", "name: Demo_X"))
    result = runner.invoke(app, ["validate", "-f", str(bad), "-o", "github"])
    assert result.exit_code == 3
    assert result.stdout.startswith(f"::error file={bad},line=")


def test_manifest_schema_command() -> None:
    result = runner.invoke(app, ["manifest", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "apiVersion" in schema["properties"]


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["plan"],
        ["manifest"],
        ["get", "pipelines"],
        ["get", "connectors"],
        ["describe", "pipeline"],
        ["delete", "pipeline"],
        ["pause"],
        ["resume"],
        ["stop"],
        ["restart"],
        ["offsets", "get"],
        ["offsets", "reset"],
        ["reconcile"],
        ["config", "get-contexts"],
        ["config", "use-context"],
        ["config", "set-context"],
    ],
)
def test_control_commands_have_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


# --- contexts ------------------------------------------------------------------------------


def _pipeline(connect: str) -> Any:
    text = MANIFEST.read_text().replace("  connect:\n    url: http://127.0.0.1:8083\n", connect)
    return load_text(text)[0].pipeline


def test_context_precedence() -> None:
    config = CdcctlConfig(
        current_context="cur",
        contexts={
            "cur": Context(connect_url="http://cur:8083"),
            "named": Context(connect_url="http://named:8083/"),
        },
    )
    explicit = _pipeline("  connect:\n    url: http://explicit:8083\n")
    implicit = _pipeline("")
    by_name = _pipeline("  connect:\n    context: named\n")
    current = context_target("cur", config.contexts["cur"])

    def url(target: Target, pipeline: Pipeline) -> str:
        return endpoints_for(target, pipeline, dict(config.contexts)).connect.url

    assert url(current, implicit) == "http://cur:8083"
    assert url(current, explicit) == "http://explicit:8083"
    assert url(current, by_name) == "http://named:8083"
    # --context NAME / --connect-url win over what a manifest says
    chosen = dataclasses.replace(current, connect_overridden=True)
    assert url(chosen, explicit) == "http://cur:8083"
    overridden = dataclasses.replace(
        current, connect=ConnectAccess(url="http://o:1"), connect_overridden=True
    )
    assert url(overridden, by_name) == "http://o:1"
    with pytest.raises(UsageError, match="no context named 'nope'"):
        config.context("nope")
    with pytest.raises(UsageError, match=r"spec\.connect\.context .named. is not a known context"):
        endpoints_for(current, by_name, {})


def test_config_file_round_trip_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cdcctl" / "config.yaml"
    monkeypatch.setenv("CDCCTL_CONFIG", str(path))
    result = runner.invoke(app, ["config", "set-context", "a", "--connect-url", "http://a:1"])
    assert result.exit_code == 0, result.output
    runner.invoke(app, ["config", "set-context", "b", "--connect-url", "http://b:2"])
    assert parse_config(path.read_text(), str(path)).current_context == "a"
    assert runner.invoke(app, ["config", "use-context", "b"]).exit_code == 0
    rows = json.loads(runner.invoke(app, ["config", "get-contexts", "-o", "json"]).stdout)
    assert rows == [
        {"current": False, "name": "a", "connect_url": "http://a:1", "local_stack": None},
        {"current": True, "name": "b", "connect_url": "http://b:2", "local_stack": None},
    ]
    with pytest.raises(ManifestError):
        parse_config("contexts: {x: {connectUrl: ftp://x}}", "cfg")

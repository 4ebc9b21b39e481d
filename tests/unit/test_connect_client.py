"""Kafka Connect REST client against httpx.MockTransport: requests, retries, error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.adapters.connect import ConnectClient, Offset, RetryPolicy
from controlplane.core.errors import ConnectConflictError, ConnectError

URL = "http://connect.test:8083"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """Clock that advances only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    """A MockTransport handler that records requests and replays canned responses."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        return item

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def client(handler: Handler, time: FakeTime | None = None, **retry: Any) -> ConnectClient:
    time = time or FakeTime()
    return ConnectClient(
        URL,
        timeout=2.0,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(**retry),
        sleep=time.sleep,
        clock=time.clock,
        rand=lambda: 1.0,  # no jitter: delays are the exponential caps
    )


def ok(body: Any = None, status: int = 200) -> httpx.Response:
    if body is None:
        return httpx.Response(status)
    return httpx.Response(status, json=body)


def err(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error_code": status, "message": message})


STATUS = {
    "name": "demo-jdbc-sink",
    "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
    "tasks": [
        {"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:8083"},
        {"id": 1, "state": "FAILED", "worker_id": "127.0.0.1:8083", "trace": "boom"},
    ],
    "type": "sink",
}
INFO = {
    "name": "demo-jdbc-sink",
    "config": {"connector.class": "x", "name": "demo-jdbc-sink"},
    "tasks": [{"connector": "demo-jdbc-sink", "task": 0}],
    "type": "sink",
}


# --- one method per endpoint -------------------------------------------------------------------


def test_root_and_health() -> None:
    rec = Recorder(ok({"version": "4.1.0", "commit": "abc", "kafka_cluster_id": "k1"}))
    info = client(rec).root()
    assert (info.version, info.kafka_cluster_id) == ("4.1.0", "k1")
    assert (rec.last.method, rec.last.url.path) == ("GET", "/")

    rec = Recorder(ok({"status": "starting", "message": "Worker is starting"}, 503))
    health = client(rec).health()
    assert not health.healthy
    assert rec.last.url.path == "/health"


def test_list_connectors_expands_status_and_info() -> None:
    rec = Recorder(ok({"demo-jdbc-sink": {"status": STATUS, "info": INFO}}))
    listing = client(rec).list_connectors()
    assert rec.last.url.path == "/connectors"
    assert rec.last.url.params.get_list("expand") == ["status", "info"]
    entry = listing["demo-jdbc-sink"]
    assert entry.status is not None
    assert entry.info is not None
    assert entry.status.failed_tasks[0].trace == "boom"
    assert entry.info.tasks[0].task == 0


def test_connector_names_get_and_config() -> None:
    rec = Recorder(ok(["a", "b"]))
    assert client(rec).connector_names() == ["a", "b"]
    rec = Recorder(ok(INFO))
    assert client(rec).get_connector("demo-jdbc-sink").type == "sink"
    assert rec.last.url.path == "/connectors/demo-jdbc-sink"
    rec = Recorder(ok({"tasks.max": "1", "connection.password": "${file:/s:k}"}))
    assert client(rec).get_config("demo-jdbc-sink") == {
        "tasks.max": "1",
        "connection.password": "${file:/s:k}",
    }
    assert rec.last.url.path == "/connectors/demo-jdbc-sink/config"


def test_find_config_returns_none_on_404() -> None:
    rec = Recorder(err(404, "Connector demo not found"))
    assert client(rec).find_config("demo") is None


def test_put_config_create_and_update() -> None:
    rec = Recorder(ok(INFO, 201))
    info, created = client(rec).put_config("demo-jdbc-sink", {"tasks.max": "1"})
    assert created
    assert info.name == "demo-jdbc-sink"
    assert rec.last.method == "PUT"
    assert rec.last.url.path == "/connectors/demo-jdbc-sink/config"
    assert json.loads(rec.last.content) == {"tasks.max": "1"}
    rec = Recorder(ok(INFO, 200))
    assert client(rec).put_config("demo-jdbc-sink", {})[1] is False


def test_patch_and_delete() -> None:
    rec = Recorder(ok(INFO))
    client(rec).patch_config("demo-jdbc-sink", {"batch.size": "1000", "old": None})
    assert rec.last.method == "PATCH"
    assert json.loads(rec.last.content) == {"batch.size": "1000", "old": None}
    rec = Recorder(ok(status=204))
    client(rec).delete_connector("demo-jdbc-sink")
    assert (rec.last.method, rec.last.url.path) == ("DELETE", "/connectors/demo-jdbc-sink")


def test_status() -> None:
    rec = Recorder(ok(STATUS))
    status = client(rec).status("demo-jdbc-sink")
    assert rec.last.url.path == "/connectors/demo-jdbc-sink/status"
    assert not status.healthy
    assert [t.id for t in status.failed_tasks] == [1]


def test_restart_variants() -> None:
    rec = Recorder(ok(status=204))
    assert client(rec).restart("c") is None
    assert rec.last.method == "POST"
    assert rec.last.url.path == "/connectors/c/restart"
    assert dict(rec.last.url.params) == {"includeTasks": "false", "onlyFailed": "false"}

    restarting = {**STATUS, "connector": {"state": "RESTARTING", "worker_id": "w"}}
    rec = Recorder(ok(restarting, 202))
    plan = client(rec).restart("c", include_tasks=True, only_failed=True)
    assert plan is not None
    assert plan.connector.state == "RESTARTING"
    assert dict(rec.last.url.params) == {"includeTasks": "true", "onlyFailed": "true"}

    rec = Recorder(ok(status=204))
    client(rec).restart_task("c", 3)
    assert rec.last.url.path == "/connectors/c/tasks/3/restart"


def test_find_status_is_none_while_connect_has_no_status() -> None:
    rec = Recorder(ok(STATUS))
    found = client(rec).find_status("c")
    assert found is not None
    assert rec.last.url.path == "/connectors/c/status"
    not_yet = httpx.Response(
        404, json={"error_code": 404, "message": "Status for connector c not found"}
    )
    assert client(Recorder(not_yet)).find_status("c") is None
    with pytest.raises(ConnectError):
        client(Recorder(httpx.Response(401, json={"message": "no"}))).find_status("c")


@pytest.mark.parametrize("verb", ["pause", "resume", "stop"])
def test_state_changes(verb: str) -> None:
    rec = Recorder(ok(status=202 if verb != "stop" else 204))
    getattr(client(rec), verb)("c")
    assert (rec.last.method, rec.last.url.path) == ("PUT", f"/connectors/c/{verb}")


def test_offsets() -> None:
    body = {
        "offsets": [
            {
                "partition": {"kafka_topic": "t", "kafka_partition": 0},
                "offset": {"kafka_offset": 42},
            }
        ]
    }
    rec = Recorder(ok(body))
    [offset] = client(rec).get_offsets("c")
    assert offset.offset == {"kafka_offset": 42}
    assert rec.last.url.path == "/connectors/c/offsets"

    rec = Recorder(ok({"message": "The offsets for this connector have been altered successfully"}))
    message = client(rec).alter_offsets(
        "c", [Offset(partition={"kafka_topic": "t", "kafka_partition": 0}, offset=None)]
    )
    assert message.startswith("The offsets")
    assert rec.last.method == "PATCH"
    assert json.loads(rec.last.content) == {
        "offsets": [{"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": None}]
    }

    rec = Recorder(ok({"message": "reset"}))
    assert client(rec).reset_offsets("c") == "reset"
    assert rec.last.method == "DELETE"


def test_validate_config_collects_errors() -> None:
    body = {
        "name": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "error_count": 1,
        "groups": [],
        "configs": [
            {
                "definition": {"name": "connection.url"},
                "value": {"name": "connection.url", "value": None, "errors": ["Missing required"]},
            },
            {
                "definition": {"name": "tasks.max"},
                "value": {"name": "tasks.max", "value": "1", "errors": []},
            },
        ],
    }
    rec = Recorder(ok(body))
    result = client(rec).validate_config("io.debezium.connector.jdbc.JdbcSinkConnector", {})
    assert result.error_count == 1
    assert result.errors == {"connection.url": ["Missing required"]}
    assert rec.last.method == "PUT"
    assert (
        rec.last.url.path
        == "/connector-plugins/io.debezium.connector.jdbc.JdbcSinkConnector/config/validate"
    )


def test_plugins_and_topics() -> None:
    rec = Recorder(
        ok(
            [
                {
                    "class": "io.debezium.connector.jdbc.JdbcSinkConnector",
                    "type": "sink",
                    "version": "3.6.0.Final",
                }
            ]
        )
    )
    [plugin] = client(rec).list_plugins(connectors_only=False)
    assert plugin.class_name.endswith("JdbcSinkConnector")
    assert rec.last.url.params["connectorsOnly"] == "false"

    rec = Recorder(ok({"c": {"topics": ["demo.demo.users"]}}))
    assert client(rec).topics("c") == ["demo.demo.users"]
    rec = Recorder(ok(status=200))
    client(rec).reset_topics("c")
    assert (rec.last.method, rec.last.url.path) == ("PUT", "/connectors/c/topics/reset")


def test_connector_names_are_path_encoded() -> None:
    rec = Recorder(ok(STATUS))
    client(rec).status("odd name/with slash")
    assert rec.last.url.raw_path == b"/connectors/odd%20name%2Fwith%20slash/status"


# --- retries -----------------------------------------------------------------------------------


def test_409_is_retried_then_succeeds() -> None:
    time = FakeTime()
    rec = Recorder(
        err(409, "Cannot complete request momentarily due to stale configuration"),
        err(409, "Request cannot be completed because a rebalance is expected"),
        ok(INFO, 201),
    )
    info, created = client(rec, time).put_config("demo-jdbc-sink", {"a": "b"})
    assert created
    assert info.name == "demo-jdbc-sink"
    assert len(rec.requests) == 3
    assert time.sleeps == [0.1, 0.2]  # exponential, full jitter pinned to its cap


def test_rebalance_message_under_another_status_is_retried() -> None:
    rec = Recorder(err(500, "no known leader URL, likely because a rebalance was underway"), ok([]))
    assert client(rec).connector_names() == []
    assert len(rec.requests) == 2


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, multiplier=2.0)
    assert policy.delay(1, lambda: 1.0) == pytest.approx(0.1)
    assert policy.delay(10, lambda: 1.0) == pytest.approx(1.0)
    assert policy.delay(10, lambda: 0.25) == pytest.approx(0.25)


def test_deadline_exhausted_raises_conflict() -> None:
    time = FakeTime()
    rec = Recorder(err(409, "Request cannot be completed because a rebalance is expected"))
    with pytest.raises(ConnectConflictError) as info:
        client(rec, time, deadline=3.0).put_config("c", {})
    exc = info.value
    assert exc.status == 409
    assert exc.temporary
    assert f"PUT {URL}/connectors/c/config" in exc.message
    assert "rebalance is expected" in exc.message
    assert exc.hint is not None
    assert "rebalancing" in exc.hint
    assert time.now <= 3.0
    assert len(rec.requests) >= 3


def test_connection_refused_maps_to_connect_error_with_hint() -> None:
    time = FakeTime()
    rec = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(ConnectError) as info:
        client(rec, time).connector_names()
    exc = info.value
    assert not isinstance(exc, ConnectConflictError)
    assert exc.status is None
    assert exc.message.startswith(f"Couldn't connect to Kafka Connect at {URL}")
    assert "Connection refused" in exc.message
    assert exc.hint is not None
    assert "reachable from here" in exc.hint
    assert "stack status" not in exc.hint  # a remote target is not the local stack
    assert exc.exit_code == 5
    assert len(rec.requests) == 3  # a few quick attempts, not the whole deadline
    assert len(time.sleeps) == 2


def test_the_target_names_itself_in_the_hint() -> None:
    from controlplane.core.target import ConnectAccess, Target
    from controlplane.services.targets import connect_client

    prod = Target(name="prod", connect=ConnectAccess(url="http://127.0.0.1:1"))
    with connect_client(prod.connect, prod) as remote:
        expected = "check Kafka Connect at http://127.0.0.1:1 of context 'prod'"
        assert remote._hint.startswith(expected)


def test_tls_and_basic_auth_reach_the_transport(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    with ConnectClient(
        "https://connect.example:8083",
        transport=httpx.MockTransport(handler),
        auth=("cdcctl", "pä:ss"),
    ) as c:
        c.connector_names()
    assert seen[0].url.scheme == "https"
    assert seen[0].headers["authorization"].startswith("Basic ")
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("not a certificate")
    with pytest.raises(ConnectError, match="cannot load the CA bundle"):
        ConnectClient("https://connect.example:8083", ca_file=str(bad_ca))


def test_unauthorised_answers_say_what_to_set() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error_code": 401, "message": "Unauthorized"})

    with (
        ConnectClient("http://c:8083", transport=httpx.MockTransport(handler)) as c,
        pytest.raises(ConnectError) as info,
    ):
        c.connector_names()
    assert info.value.status == 401
    assert info.value.hint is not None
    assert "connect.username/passwordSecret" in info.value.hint


def test_timeout_is_reported_as_such() -> None:
    rec = Recorder(httpx.ReadTimeout("timed out"))
    with pytest.raises(ConnectError, match="timed out"):
        client(rec, connection_attempts=1).root()


def test_connection_error_then_success() -> None:
    rec = Recorder(httpx.ConnectError("refused"), ok(["x"]))
    assert client(rec).connector_names() == ["x"]


# --- error bodies ------------------------------------------------------------------------------


def test_error_body_message_is_surfaced() -> None:
    message = "Connector configuration is invalid and contains the following 1 error(s): boom"
    rec = Recorder(err(400, message))
    with pytest.raises(ConnectError) as info:
        client(rec).put_config("c", {})
    exc = info.value
    assert exc.status == 400
    assert message in exc.message
    assert f"Kafka Connect answered 400 to PUT {URL}/connectors/c/config" in exc.message
    assert exc.hint is not None
    assert len(rec.requests) == 1  # not retried


def test_404_hint_and_plain_text_body() -> None:
    rec = Recorder(err(404, "Connector c not found"))
    with pytest.raises(ConnectError) as info:
        client(rec).status("c")
    assert info.value.status == 404
    assert "Connector c not found" in info.value.message
    assert info.value.hint is not None

    rec = Recorder(httpx.Response(502, text="Bad Gateway from proxy"))
    with pytest.raises(ConnectError, match="Bad Gateway from proxy"):
        client(rec).root()


def test_non_json_success_body() -> None:
    rec = Recorder(httpx.Response(200, text="<html>not connect</html>"))
    with pytest.raises(ConnectError, match="non-JSON"):
        client(rec).root()


def test_unexpected_shape() -> None:
    rec = Recorder(ok({"no": "version"}))
    with pytest.raises(ConnectError, match="unexpected answer"):
        client(rec).root()


def test_timeout_is_configured() -> None:
    c = ConnectClient(URL, timeout=3.5, transport=httpx.MockTransport(lambda r: ok([])))
    with c:
        assert c._http.timeout.read == 3.5
        assert c._http.timeout.connect == 3.5

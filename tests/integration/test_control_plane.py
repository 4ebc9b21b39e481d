"""cdcctl as a control plane, against the real Connect, PostgreSQL, Kafka, Cassandra and Redis.

What cdcctl did is observed with `kafka-connect-py` (import `kafka_connect`), an independent
client nobody here wrote. Pipelines use the shared stack's topic prefix `demo` (decision 0013)
and keyspaces `cp_*`; prune is always scoped with --prune-match 'cp-*' so the other pipelines on
the shared stack are never touched.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka_connect import KafkaConnect

from controlplane.adapters import postgres
from controlplane.core.errors import FailedStateError
from controlplane.core.manifest import DEFAULT_BATCH_SIZE
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from tests.cli import cdcctl
from tests.manifests import session_writer, writer_line
from tests.stackfixture import cql_cluster

pytestmark = pytest.mark.integration

KS = "cp_it"
SINK = "cp-it-jdbc-sink"
SINK2 = "cp-it2-jdbc-sink"
HAND = "cp-hand-made"


def manifest(name: str, tables: list[str], *, connect_url: bool = True) -> str:
    # The ports of the stack the tests use ($CDC_STACK_DIR, e.g. on a port offset).
    settings = settings_for()
    ports = settings.ports
    # The stack's own URL: HTTPS with basic auth unless it runs --insecure (decision 0114).
    scheme = "https" if settings.tls else "http"
    url = f"  connect:\n    url: {scheme}://127.0.0.1:{ports.connect}\n" if connect_url else ""
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    cassandra:
      contactPoints: ["127.0.0.1:{ports.cassandra}"]
      keyspace: {KS}
      tables: [{", ".join(tables)}]
  kafka:
    bootstrapServers: ["127.0.0.1:{ports.kafka}"]
    topicPrefix: demo
{url}  sink:
{writer_line()}    postgres:
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
      port: {ports.postgres}
"""


def wait_for(what: str, probe: Callable[[], Any], ok: Callable[[Any], bool], deadline: float = 60):
    end = time.monotonic() + deadline
    value = probe()
    while not ok(value):
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {deadline:.0f}s; last: {value!r}")
        time.sleep(0.2)
        value = probe()
    return value


class Observer:
    """`KafkaConnect` calls retried while the worker answers "a rebalance is expected" (409 or
    500 RebalanceNeededException, e.g. right after a config PUT): the observer must not fail on
    what Connect documents as transient (cdcctl's own client retries them too)."""

    def __init__(self, client: KafkaConnect, deadline: float = 30) -> None:
        self._client = client
        self._deadline = deadline

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            end = time.monotonic() + self._deadline
            while True:
                try:
                    return method(*args, **kwargs)
                except requests.HTTPError as exc:
                    r = exc.response
                    transient = r is not None and r.status_code in (409, 500)
                    if not transient or "rebalance" not in r.text or time.monotonic() > end:
                        raise
                    time.sleep(0.2)

        return call


@pytest.fixture(scope="module")
def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    os.environ.setdefault("CDC_PG_PASSWORD", LocalStack(settings_for()).postgres_password())
    cluster = cql_cluster(stack)
    cql = cluster.connect()
    cql.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KS} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cql.execute(f"CREATE TABLE IF NOT EXISTS {KS}.t1 (id int PRIMARY KEY, v text) WITH cdc = true")
    cql.execute(f"CREATE TABLE IF NOT EXISTS {KS}.t2 (id int PRIMARY KEY, v text) WITH cdc = true")
    cql.execute(f"CREATE TABLE IF NOT EXISTS {KS}.nocdc (id int PRIMARY KEY, v text)")
    d = tmp_path_factory.mktemp("cp")
    (d / "one").mkdir()
    (d / "one" / "cp-it.yaml").write_text(manifest("cp-it", ["t1"]))
    (d / "both").mkdir()
    (d / "both" / "cp-it.yaml").write_text(manifest("cp-it", ["t1"]))
    (d / "both" / "cp-it2.yaml").write_text(manifest("cp-it2", ["t2"]))
    auth = ":".join(stack.connect_auth) if stack.connect_auth else None
    verify: str | bool = stack.ca_file if stack.connect_url.startswith("https") else True
    kc = Observer(KafkaConnect(stack.connect_url, auth=auth, ssl_verify=verify))
    yield {"dir": d, "kc": kc, "stack": stack}
    for name in (SINK, SINK2, HAND):
        delete_connector(stack, name)
    cluster.shutdown()


def delete_connector(stack: Endpoints, name: str) -> None:
    """DELETE a connector with the stack's CA and basic auth (a plain request, not cdcctl)."""
    verify: str | bool = stack.ca_file if stack.connect_url.startswith("https") else True
    requests.delete(
        f"{stack.connect_url}/connectors/{name}",
        auth=stack.connect_auth,
        verify=verify,
        timeout=10,
    )


def test_plan_apply_noop_and_observed_by_independent_client(env: dict[str, Any]) -> None:
    one = str(env["dir"] / "one")
    kc: KafkaConnect = env["kc"]
    delete_connector(env["stack"], SINK)
    wait_for("connector gone", lambda: SINK in kc.list_connectors(), lambda v: not v)

    out = cdcctl("plan", "-f", one, "-o", "json")
    assert out.returncode == 0, out.stderr
    planned = json.loads(out.stdout)
    connector = next(c for c in planned["changes"] if c["kind"] == "connector")
    assert (connector["name"], connector["action"]) == (SINK, "create")

    text = cdcctl("plan", "-f", one)
    assert f"+ connector {SINK} [cp-it]" in text.stdout

    out = cdcctl("apply", "-f", one, "-o", "json")
    assert out.returncode == 0, out.stderr
    config = kc.get_connector_config(SINK)
    assert config["cdcctl.owner"] == "cdcctl"
    assert config["cdcctl.pipeline"] == "cp-it"
    assert config["topics"] == "demo.cp_it.t1"
    # a worker-side placeholder, never the value (decision 0070)
    assert config["connection.password"] == "${env:CDC_PG_PASSWORD}"

    # A no-op: the plan is empty and apply PUTs nothing (the connector is not restarted).
    out = cdcctl("plan", "-f", one, "-o", "json", "--detailed-exitcode")
    assert out.returncode == 0, out.stdout
    assert json.loads(out.stdout)["summary"]["create"] == 0
    out = cdcctl("apply", "-f", one, "-o", "json")
    assert out.returncode == 0, out.stderr
    assert {c["action"] for c in json.loads(out.stdout)} == {"unchanged"}
    assert postgres.relation_exists(env["stack"].postgres_dsn, '"cp_it_cdc"."t1"')


def test_prune_deletes_only_owned_connectors(env: dict[str, Any]) -> None:
    kc: KafkaConnect = env["kc"]
    both, one = str(env["dir"] / "both"), str(env["dir"] / "one")
    assert cdcctl("apply", "-f", both).returncode == 0
    kc.create_connector(
        {
            "name": HAND,
            "config": {
                "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
                "topics": "cp-hand-topic",
                "connection.url": "jdbc:postgresql://127.0.0.1:5432/cdc",
                "tasks.max": "1",
            },
        }
    )
    out = cdcctl("plan", "-f", one, "--prune", "--prune-match", "cp-*", "-o", "json")
    assert out.returncode == 0, out.stderr
    deletes = [c["name"] for c in json.loads(out.stdout)["changes"] if c["action"] == "delete"]
    assert deletes == [SINK2]

    out = cdcctl("apply", "-f", one, "--prune", "--prune-match", "cp-*", "-o", "json")
    assert out.returncode == 0, out.stderr
    names = kc.list_connectors()
    assert SINK2 not in names
    assert HAND in names  # no ownership marker: never pruned
    assert SINK in names


def test_reconcile_restores_a_hand_edited_connector_and_logs_it(env: dict[str, Any]) -> None:
    kc: KafkaConnect = env["kc"]
    one = str(env["dir"] / "one")
    assert cdcctl("apply", "-f", one).returncode == 0
    edited = {**kc.get_connector_config(SINK), "batch.size": "7"}
    kc.update_connector(SINK, edited)
    wait_for("hand edit stored", lambda: kc.get_connector_config(SINK)["batch.size"], "7".__eq__)

    out = cdcctl("reconcile", "-f", one, "--lease-key", f"cp-test:{uuid.uuid4()}", "-o", "json")
    assert out.returncode == 0, out.stderr
    desired = str(DEFAULT_BATCH_SIZE[session_writer()])  # the manifest has no batchSize
    assert kc.get_connector_config(SINK)["batch.size"] == desired
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    drift = [e for e in events if e["event"] == "drift_corrected"]
    assert drift, out.stderr
    assert {"key": "batch.size", "actual": "7", "desired": desired} in drift[0]["fields"]
    assert drift[0]["connector"] == SINK


def test_get_describe_pause_resume_stop_offsets(env: dict[str, Any]) -> None:
    kc: KafkaConnect = env["kc"]
    one = str(env["dir"] / "one")
    assert cdcctl("apply", "-f", one).returncode == 0
    wait_for(
        "running", lambda: kc.get_connector_status(SINK)["connector"]["state"], "RUNNING".__eq__
    )

    rows = json.loads(cdcctl("get", "pipelines", "-o", "json").stdout)
    assert any(r["pipeline"] == "cp-it" and r["connector"] == SINK for r in rows)
    rows = json.loads(cdcctl("get", "connectors", "-o", "yaml", "-o", "json").stdout)
    assert any(r["name"] == SINK and r["owned"] for r in rows)

    info = json.loads(cdcctl("describe", "pipeline", "cp-it", "-o", "json").stdout)
    assert info["connector"] == SINK
    assert info["consumer_group"] == f"connect-{SINK}"
    assert info["topics"] == ["demo.cp_it.t1"]
    assert [t["id"] for t in info["tasks"]] == [0]

    for verb, state in (("pause", "PAUSED"), ("resume", "RUNNING"), ("stop", "STOPPED")):
        out = cdcctl(verb, "cp-it", "-o", "json")
        assert out.returncode == 0, out.stderr
        assert kc.get_connector_status(SINK)["connector"]["state"] == state
    assert cdcctl("resume", "cp-it").returncode == 0

    out = cdcctl("offsets", "get", "cp-it", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert isinstance(json.loads(out.stdout), list)
    out = cdcctl("offsets", "reset", "cp-it", "--yes", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "RUNNING"
    assert kc.get_connector_status(SINK)["connector"]["state"] == "RUNNING"

    out = cdcctl("restart", "cp-it", "--failed", "-o", "json")
    assert out.returncode == 0, out.stderr

    out = cdcctl("describe", "pipeline", "no-such-pipeline")
    assert out.returncode == 5
    assert "cdcctl get pipelines" in out.stderr


def test_delete_keeps_data_unless_drop_data(env: dict[str, Any]) -> None:
    kc: KafkaConnect = env["kc"]
    both = env["dir"] / "both"
    assert cdcctl("apply", "-f", str(both)).returncode == 0
    dsn = env["stack"].postgres_dsn
    out = cdcctl("delete", "pipeline", "cp-it2", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert SINK2 not in kc.list_connectors()
    assert postgres.relation_exists(dsn, '"cp_it_cdc"."t2"')

    assert cdcctl("apply", "-f", str(both)).returncode == 0
    out = cdcctl("delete", "pipeline", "cp-it2", "--drop-data", "-f", str(both / "cp-it2.yaml"))
    assert out.returncode == 0, out.stderr
    assert not postgres.relation_exists(dsn, '"cp_it_cdc"."t2"')
    assert not postgres.relation_exists(dsn, '"cp_it"."t2"')


def test_validate_online_reports_every_problem_with_positions(env: dict[str, Any]) -> None:
    bad = env["dir"] / "bad.yaml"
    bad.write_text(manifest("cp-bad", ["t1", "missing", "nocdc"]))
    out = cdcctl("validate", "-f", str(bad), "--online", "-o", "json")
    assert out.returncode == 5, out.stdout + out.stderr
    problems = json.loads(out.stdout)["problems"]
    by_msg = {p["message"]: p for p in problems}
    assert by_msg[f"table {KS}.missing does not exist"]["line"] == 10
    assert by_msg[f"table {KS}.nocdc has cdc = false"]["column"] > 1

    out = cdcctl("validate", "-f", str(bad), "--online", "-o", "github")
    assert out.returncode == 5
    assert f"::error file={bad},line=10," in out.stdout

    ok = cdcctl("validate", "-f", str(env["dir"] / "one"), "--online")
    assert ok.returncode == 0, ok.stderr

    typo = env["dir"] / "typo.yaml"
    typo.write_text(manifest("cp-typo", ["t1"]).replace("user: cdc", "usr: cdc"))
    out = cdcctl("validate", "-f", str(typo), "-f", str(bad), "-o", "json")
    assert out.returncode == 3
    problems = json.loads(out.stdout)["problems"]
    assert {p["check"] for p in problems} == {"manifest"}
    assert any(p["line"] == 18 and p["column"] == 7 and "usr" in p["message"] for p in problems)


def test_contexts_decide_the_connect_url(env: dict[str, Any], tmp_path: Path) -> None:
    from controlplane.services.stack_settings import default_state_dir

    cfg = {"CDCCTL_CONFIG": str(tmp_path / "config.yaml")}
    stack_dir = str(default_state_dir())
    # Both contexts are the local stack (so its agent is managed); "dead" names a Connect URL
    # nothing listens on.
    dead = ("--local-stack", stack_dir, "--connect-url", "http://127.0.0.1:1")
    assert cdcctl("config", "set-context", "dead", *dead, env=cfg).returncode == 0
    local = ("--local-stack", stack_dir)
    assert cdcctl("config", "set-context", "local", *local, env=cfg).returncode == 0
    rows = json.loads(cdcctl("config", "get-contexts", "-o", "json", env=cfg).stdout)
    assert [(r["name"], r["current"]) for r in rows] == [("dead", True), ("local", False)]
    assert cdcctl("get", "connectors", env=cfg).returncode == 5  # the current context: dead
    # Reached: the local Connect answers with its connectors (exit 9 only says that some
    # connector on this shared stack, another test's, is FAILED — still an answer from it).
    reached = (0, FailedStateError.exit_code)
    answer = cdcctl("get", "connectors", "--context", "local", "-o", "json", env=cfg)
    assert answer.returncode in reached, answer.stderr
    assert isinstance(json.loads(answer.stdout), list)
    assert cdcctl("config", "use-context", "local", env=cfg).returncode == 0
    assert cdcctl("get", "connectors", env=cfg).returncode in reached
    # A manifest without connect.url follows the current context.
    nourl = tmp_path / "nourl.yaml"
    nourl.write_text(manifest("cp-it", ["t1"], connect_url=False))
    assert cdcctl("config", "use-context", "dead", env=cfg).returncode == 0
    assert cdcctl("plan", "-f", str(nourl), env=cfg).returncode == 5
    one = str(env["dir"] / "one")
    if not settings_for().tls:
        # spec.connect.url wins over the current context (decision 0070) ...
        assert cdcctl("plan", "-f", one, env=cfg).returncode == 0
    else:
        # ... but a URL a manifest names gets none of a context's CA or credentials (a manifest
        # must not send them to a host of its choice): Connect with TLS and basic auth (decision
        # 0114) refuses it, and spec.connect.context is how a manifest names a secured Connect.
        assert cdcctl("plan", "-f", one, env=cfg).returncode == 5
        named = tmp_path / "named.yaml"
        named.write_text(
            manifest("cp-it", ["t1"], connect_url=False).replace(
                "  sink:", "  connect:\n    context: local\n  sink:", 1
            )
        )
        planned = cdcctl("plan", "-f", str(named), env=cfg)
        assert planned.returncode == 0, planned.stderr


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_two_reconcilers_never_act_at_once(env: dict[str, Any], tmp_path: Path) -> None:
    one = str(env["dir"] / "one")
    key = f"cp-test:lease:{uuid.uuid4()}"
    args = [
        "reconcile",
        "-f",
        one,
        "--watch",
        "--interval",
        "0.5",
        "--lease-ttl",
        "3",
        "--lease-key",
        key,
    ]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = []
    handles = [log.open("w") for log in logs]
    for fh in handles:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "controlplane", *args], stderr=fh, stdout=subprocess.DEVNULL
            )
        )
    try:

        def rounds() -> tuple[int, int]:
            ev = [e for p in logs for e in _events(p)]
            return (
                sum(e["event"] == "reconcile_done" for e in ev),
                sum(e["event"] == "lease_busy" for e in ev),
            )

        wait_for("several rounds and a busy lease", rounds, lambda r: r[0] >= 3 and r[1] >= 2, 90)
        starts = {
            i: [e for e in _events(p) if e["event"] == "reconcile_start"]
            for i, p in enumerate(logs)
        }
        leader = 0 if starts[0] else 1
        assert not starts[1 - leader], "both reconcilers acted while both held no lease"

        procs[leader].send_signal(signal.SIGKILL)  # no release: the lease must expire
        procs[leader].wait(10)
        follower = logs[1 - leader]
        wait_for(
            "the follower takes over after the lease expires",
            lambda: sum(e["event"] == "reconcile_done" for e in _events(follower)),
            lambda n: n >= 1,
            60,
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        for fh in handles:
            fh.close()
    # Intervals in which each process acted never overlap.
    spans = []
    for p in logs:
        ev = _events(p)
        for s, d in zip(
            [e for e in ev if e["event"] == "reconcile_start"],
            [e for e in ev if e["event"] == "reconcile_done"],
            strict=False,
        ):
            spans.append((s["timestamp"], d["timestamp"], s["owner"]))
    spans.sort()
    for (_, end_a, owner_a), (start_b, _, owner_b) in itertools.pairwise(spans):
        if owner_a != owner_b:
            assert start_b >= end_a


def test_validate_online_reports_connect_per_key_errors(
    env: dict[str, Any], tmp_path: Path
) -> None:
    import shutil

    from controlplane.core.render import CONNECTORS_DIR, RenderContext
    from controlplane.services.targets import local_target
    from controlplane.services.validate import validate

    templates = tmp_path / "connectors"
    shutil.copytree(CONNECTORS_DIR, templates)
    for sink in (templates / "jdbc-sink.json.j2", templates / "lww-sink.json.j2"):  # either writer
        sink.write_text(
            sink.read_text().replace('"tasks.max": {{ tasks_max|tojson }}', '"tasks.max": "zero"')
        )
    ctx = RenderContext(templates_dir=templates)
    _, findings = validate(
        [env["dir"] / "one"], online=True, target=local_target(None), render_ctx=ctx
    )
    connect = [f for f in findings if f.check == "connect"]
    assert connect, findings
    assert {f.key for f in connect} == {"tasks.max"}
    assert all(f.location and f.location.startswith(str(env["dir"] / "one")) for f in connect)

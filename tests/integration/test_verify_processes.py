"""Verify runs as real processes: resumed after kill -9, shared by two processes through Redis
leases, and riding out a Redis restart (a redis-server of our own, never the stack's)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session

from controlplane.adapters.redis_store import CheckpointStore
from controlplane.services.stack import Endpoints
from tests.integration.verify_support import (
    Sim,
    create_tables,
    pg_password,
    running_stack,
    write_manifest,
)
from tests.stackfixture import cql_cluster

pytestmark = pytest.mark.integration

ROWS = 3000
FINAL = {"PASS", "DIFF"}


@pytest.fixture(scope="module")
def stack() -> Endpoints:
    return running_stack()


@pytest.fixture(scope="module")
def cql(stack: Endpoints) -> Iterator[Session]:
    cluster = cql_cluster(stack)
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def env(cql: Session, stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pg_password()
    tables = ("resume", "shared", "restart")
    create_tables(cql, stack.postgres_dsn, tables)
    for t in tables:
        Sim(cql, stack.postgres_dsn, t).load(ROWS)
    return {"manifest": write_manifest(tmp_path_factory.mktemp("vproc")), "redis": stack.redis}


def start(env: dict[str, Any], tmp_path: Path, table: str, *args: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "controlplane",
        "verify",
        "-f",
        str(env["manifest"]),
        "--table",
        table,
        "--no-progress",
        "-o",
        "json",
        "--lag",
        "0.2",
        "--lease-ttl-ms",
        "2000",
        "--diff-file",
        str(tmp_path / f"{table}.jsonl"),
        *args,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CDC_PG_PASSWORD": pg_password()},
    )


def wait_until(what: str, probe: Callable[[], bool], deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while not probe():
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {deadline:.0f}s")
        time.sleep(0.05)


def finals(store: CheckpointStore, run: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in store.ranges(run).items() if r.get("status") in FINAL}


def test_resume_after_kill_9_redoes_only_unfinished_ranges(
    env: dict[str, Any], tmp_path: Path
) -> None:
    run = f"vf-resume-{uuid.uuid4().hex[:8]}"
    store = CheckpointStore(env["redis"])
    proc = start(
        env,
        tmp_path,
        "resume",
        "--run-id",
        run,
        "--ranges",
        "48",
        "--workers",
        "1",
        "--pause-ms",
        "150",
    )
    try:
        wait_until("8 ranges done", lambda: len(finals(store, run)) >= 8)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = finals(store, run)
    total = len(store.ranges(run))
    assert 8 <= len(before) < total, "the kill must land mid-run"

    resumed = start(env, tmp_path, "resume", "--resume", run, "--workers", "2")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    summary = json.loads(out)
    after = store.ranges(run)
    assert all(r["status"] in FINAL for r in after.values())
    for task, rec in before.items():  # finished ranges were not redone
        assert after[task]["updated_at"] == rec["updated_at"]
        assert after[task]["owner"] == rec["owner"]
    redone = {k for k in after if k not in before}
    assert {after[k]["owner"] for k in redone} != {next(iter(before.values()))["owner"]}
    assert summary["counters"]["read"] == ROWS  # every row exactly once
    assert summary["status"] == "PASS"
    store.close()


def test_two_processes_share_one_run_through_leases(env: dict[str, Any], tmp_path: Path) -> None:
    run = f"vf-shared-{uuid.uuid4().hex[:8]}"
    args = ("--run-id", run, "--ranges", "32", "--workers", "1", "--pause-ms", "100")
    procs = [start(env, tmp_path, "shared", *args) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    store = CheckpointStore(env["redis"])
    ranges = store.ranges(run)
    store.close()
    assert all(r["status"] == "PASS" for r in ranges.values())
    owners = {r["owner"] for r in ranges.values()}
    assert len(owners) == 2, "both processes verified ranges"
    assert sum(int(r["read"]) for r in ranges.values()) == ROWS  # no range done twice
    for out, _err in outs:
        assert json.loads(out)["counters"]["read"] == ROWS  # each reports the whole run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server(port: int, directory: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until("redis up", lambda: _pong(port), 20)
    return proc


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_redis_restart_mid_run(env: dict[str, Any], tmp_path: Path) -> None:
    """The run's own Redis (AOF, appendfsync everysec) is shut down and started again while
    verify runs: verify waits for it, nothing recorded before the restart is lost, and the run
    finishes complete."""
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    url = f"redis://127.0.0.1:{port}/0"
    redis_proc = _redis_server(port, data)
    run = f"vf-restart-{uuid.uuid4().hex[:8]}"
    proc = start(
        env,
        tmp_path,
        "restart",
        "--redis-url",
        url,
        "--run-id",
        run,
        "--ranges",
        "40",
        "--workers",
        "1",
        "--pause-ms",
        "150",
    )
    try:
        store = CheckpointStore(url)
        wait_until("5 ranges done", lambda: len(finals(store, run)) >= 5)
        before = finals(store, run)
        store.close()
        subprocess.run(["redis-cli", "-p", str(port), "shutdown"], check=False, timeout=20)
        redis_proc.wait(20)
        time.sleep(2.0)  # verify is cut off from Redis meanwhile
        assert proc.poll() is None, "verify must wait for Redis, not die"
        redis_proc = _redis_server(port, data)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        summary = json.loads(out)
        assert summary["status"] == "PASS"
        assert summary["counters"]["read"] == ROWS
        store = CheckpointStore(url)
        after = store.ranges(run)
        store.close()
        for task, rec in before.items():  # survived the restart (AOF)
            assert after[task]["updated_at"] == rec["updated_at"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        redis_proc.terminate()
        redis_proc.wait(20)

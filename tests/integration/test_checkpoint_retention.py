"""Verify runs expire from Redis a while after their last write (`cdcctl verify --keep-days`),
against the real Redis of the local stack."""

from __future__ import annotations

import time
import uuid

import pytest

from controlplane.adapters.redis_store import CheckpointStore, RedisLike
from tests.stackfixture import ensure_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url() -> RedisLike:
    ep = ensure_stack()
    return ep.redis or ep.redis_url  # TLS and the ACL user unless --insecure (decision 0110)


def keys(store: CheckpointStore, run: str) -> list[str]:
    return [store._k("run", run), store._k("run", run, "ranges")]


def test_every_write_pushes_the_expiry_of_both_run_keys(redis_url: str) -> None:
    store = CheckpointStore(redis_url, prefix=f"cdc:test:{uuid.uuid4().hex[:8]}", retention_s=600)
    run = "r1"
    assert store.create_run(run, {"pipeline": "p"}, {"t:0": {"start": 0, "end": 1}})
    for key in keys(store, run):
        assert 590 <= store.r.ttl(key) <= 600
    for key in keys(store, run):
        store.r.expire(key, 5)
    store.set_range(run, "t:0", {"status": "PASS"})
    assert all(store.r.ttl(k) > 500 for k in keys(store, run))
    for key in keys(store, run):
        store.r.expire(key, 5)
    store.update_run(run, diff_file="x.jsonl")
    assert all(store.r.ttl(k) > 500 for k in keys(store, run))
    for key in keys(store, run):
        store.r.expire(key, 5)
    assert store.set_run_field_nx(run, "finished_at", 1.0)
    assert all(store.r.ttl(k) > 500 for k in keys(store, run))
    store.r.delete(*keys(store, run), store._k("runs"))


def test_an_expired_run_is_gone_and_leaves_the_runs_index(redis_url: str) -> None:
    store = CheckpointStore(redis_url, prefix=f"cdc:test:{uuid.uuid4().hex[:8]}", retention_s=600)
    assert store.create_run("old", {"pipeline": "p"}, {"t:0": {}})
    assert store.create_run("new", {"pipeline": "p"}, {"t:0": {}})
    assert set(store.runs()) == {"old", "new"}
    # 'old' reaches its retention now (a 1 s retention from creation raced a loaded machine)
    for key in keys(store, "old"):
        store.r.expire(key, 1)
    deadline = time.monotonic() + 15
    while store.run("old") is not None:
        assert time.monotonic() < deadline, "run 'old' did not expire within 15 s"
        time.sleep(0.2)
    assert store.ranges("old") == {}
    assert store.runs() == ["new"]
    assert store.r.zrange(store._k("runs"), 0, -1) == ["new"]
    store.r.delete(*keys(store, "new"), store._k("runs"))

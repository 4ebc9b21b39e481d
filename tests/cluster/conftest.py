"""The local cluster profile: 3 Cassandra nodes (127.0.0.1-3), an agent per node, 2 Connect
workers, in its own state dir (``<repo>/.stack-cluster`` or $CDC_CLUSTER_STACK_DIR) on port
offset 2000 ($CDC_CLUSTER_PORT_OFFSET), beside the default stack. Started once per session and
stopped at its end (CDC_KEEP_STACK=1 keeps it running for the next session)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controlplane.services.stack import LocalStack, StartResult, repo_root
from controlplane.services.stack_settings import chosen_settings

PORT_OFFSET = int(os.environ.get("CDC_CLUSTER_PORT_OFFSET", "2000"))  # a multiple of 1000
NODES = 3
WORKERS = 2


def cluster_state_dir() -> Path:
    return Path(os.environ.get("CDC_CLUSTER_STACK_DIR", repo_root() / ".stack-cluster"))


@dataclass(frozen=True)
class Cluster:
    stack: LocalStack
    started: list[StartResult]
    seconds: float


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    settings = chosen_settings(
        cluster_state_dir(), PORT_OFFSET, nodes=NODES, connect_workers=WORKERS
    )
    stack = LocalStack(settings)
    began = time.monotonic()
    started = stack.up(persist=True)
    seconds = time.monotonic() - began
    # cdcctl's own connections of the pipelines read ${env:CDC_PG_PASSWORD}: this stack's.
    before = os.environ.get("CDC_PG_PASSWORD")
    os.environ["CDC_PG_PASSWORD"] = stack.postgres_password()
    try:
        yield Cluster(stack, started, seconds)
    finally:
        if before is None:
            os.environ.pop("CDC_PG_PASSWORD", None)
        else:
            os.environ["CDC_PG_PASSWORD"] = before
        if os.environ.get("CDC_KEEP_STACK") != "1":
            stack.down()

"""The real local stack for tests: brought up once per session, or reused when already running."""

from __future__ import annotations

import functools
from typing import Any

from controlplane.services.stack import Endpoints, LocalStack, settings_for


@functools.cache
def ensure_stack() -> Endpoints:
    stack = LocalStack(settings_for())
    stack.up()  # a no-op for services already running
    return stack.endpoints()


def apply_on(stack: LocalStack, paths: list[Any], **kwargs: Any) -> Any:
    """`cdcctl apply` of these manifests on the local stack `stack`, as its target."""
    from controlplane.services.apply import apply_manifests
    from controlplane.services.local_agents import LocalAgents
    from controlplane.services.targets import local_target

    return apply_manifests(
        paths, local_target(stack.lay.root), agents=LocalAgents(stack.s), **kwargs
    )


def cql_cluster(stack: Endpoints, hosts: list[Any] | None = None, **kwargs: Any) -> Any:
    """A cassandra-driver `Cluster` on the stack's nodes (node 1 by default) as cdcctl connects:
    TLS verified with the stack's CA and cdcctl's role, unless the stack runs --insecure
    (decision 0110). `kwargs` go to `Cluster` (port defaults to the stack's)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    from controlplane.adapters.cassandra import ssl_context

    sec = stack.cassandra_security
    kwargs.setdefault("port", stack.cassandra_port)
    kwargs.setdefault("protocol_version", 5)
    if sec.tls:
        kwargs.setdefault("ssl_context", ssl_context(sec))
    if sec.username is not None:
        kwargs.setdefault(
            "auth_provider", PlainTextAuthProvider(username=sec.username, password=sec.password)
        )
    return Cluster(hosts or [stack.cassandra_host], **kwargs)


def redis_client(stack: Endpoints, **kwargs: Any) -> Any:
    """A redis-py client on the stack's Redis with its ACL user and CA (decision 0110)."""
    from controlplane.adapters import redis_store

    assert stack.redis is not None
    return redis_store.client(stack.redis, **kwargs)

"""The real local stack for tests: brought up once per session, or reused when already running.

The session's stack is the one of ``$CDC_STACK_DIR`` (default ``.stack/``) with the settings
persisted there. ``CDC_CASSANDRA_VERSION`` (``5.0`` or ``4.1``) makes the Cassandra version a
parameter of the session: the stack is brought up with it (and keeps it in its ``stack.json``), so
the same test code runs against either version (``./dev test-c41``; decision 0107). A state dir
holding data of the other version is refused with exit-2's message (use another state dir).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

from controlplane.core.stack_model import Ports, StackSettings
from controlplane.services.stack import Endpoints, LocalStack, settings_for
from controlplane.services.stack_settings import chosen_settings

CASSANDRA_VERSION_ENV = "CDC_CASSANDRA_VERSION"
# The Prometheus a test session starts scrapes and evaluates its rules every 5 s instead of the
# stack's 15 s: an alert test waits `for:` plus a scrape and an evaluation round, and the rules
# themselves (`for:` included) stay the shipped ones. A Prometheus already running keeps its own
# interval; the alert tests read it from Prometheus (decision 0145).
SESSION_PROMETHEUS_INTERVAL = "5s"


def session_settings() -> StackSettings:
    """The settings of the session's stack: $CDC_STACK_DIR's, with $CDC_CASSANDRA_VERSION, and
    the session's Prometheus interval."""
    version = os.environ.get(CASSANDRA_VERSION_ENV)
    base = settings_for() if not version else chosen_settings(None, cassandra_version=version)
    return dataclasses.replace(base, prometheus_scrape_interval=SESSION_PROMETHEUS_INTERVAL)


def session_ports() -> Ports:
    """The ports of the session's stack (its --port-offset applied)."""
    return session_settings().ports


def session_cassandra_version() -> str:
    """The Cassandra version the session's tests run against ("5.0" or "4.1")."""
    return session_settings().cassandra_version


@functools.cache
def ensure_stack() -> Endpoints:
    stack = LocalStack(session_settings())
    # a no-op for services already running; with CDC_CASSANDRA_VERSION the choice is persisted
    # (refused while the stack runs with another version)
    stack.up(persist=bool(os.environ.get(CASSANDRA_VERSION_ENV)))
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


def kafka_config(stack: Endpoints, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for the stack's Kafka as cdcctl connects: TLS verified with the
    stack's CA and cdcctl's client certificate (mTLS), unless the stack runs --insecure
    (decision 0114). `extra` adds or overrides settings (group.id, ...)."""
    from controlplane.adapters.kafka import client_config

    assert stack.kafka is not None
    return {**client_config(stack.kafka), **extra}


def connect_http(stack: Endpoints, url: str | None = None, **kwargs: Any) -> Any:
    """An httpx client on the stack's Connect REST (`url`: another worker's): HTTPS verified
    with the stack's CA and basic auth, unless the stack runs --insecure (decision 0114)."""
    import ssl

    import httpx

    base = url or stack.connect_url
    if base.startswith("https://"):
        kwargs.setdefault("verify", ssl.create_default_context(cafile=stack.ca_file))
    if stack.connect_auth is not None:
        kwargs.setdefault("auth", stack.connect_auth)
    kwargs.setdefault("timeout", 30)
    return httpx.Client(base_url=base, **kwargs)

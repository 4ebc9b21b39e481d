"""Pipeline manifests for tests against the local stack (the session's: $CDC_STACK_DIR's ports)."""

from __future__ import annotations

from collections.abc import Iterable


def local_pipeline(name: str, keyspace: str, tables: Iterable[str]) -> str:
    """A manifest for the local stack. Every pipeline on the one Cassandra node shares the agent,
    hence the topic prefix `demo` (decision 0013); the password comes from CDC_PG_PASSWORD.
    Endpoints are the session stack's (tests.stackfixture: its port offset); no
    `spec.connect.url`, so the target's Connect (http or https) is used."""
    from tests.stackfixture import session_ports

    p = session_ports()
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    cassandra:
      contactPoints: ["127.0.0.1:{p.cassandra}"]
      keyspace: {keyspace}
      tables: [{", ".join(tables)}]
  kafka:
    bootstrapServers: ["127.0.0.1:{p.kafka}"]
    topicPrefix: demo
  sink:
    postgres:
      host: 127.0.0.1
      port: {p.postgres}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
"""

"""Pipeline manifests for tests against the local stack (default endpoints)."""

from __future__ import annotations

from collections.abc import Iterable


def local_pipeline(name: str, keyspace: str, tables: Iterable[str]) -> str:
    """A manifest for the local stack. Every pipeline on the one Cassandra node shares the agent,
    hence the topic prefix `demo` (decision 0013); the password comes from CDC_PG_PASSWORD."""
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    cassandra:
      contactPoints: ["127.0.0.1:9042"]
      keyspace: {keyspace}
      tables: [{", ".join(tables)}]
  kafka:
    bootstrapServers: ["127.0.0.1:9092"]
    topicPrefix: demo
  connect:
    url: http://127.0.0.1:8083
  sink:
    postgres:
      host: 127.0.0.1
      port: 5432
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
"""

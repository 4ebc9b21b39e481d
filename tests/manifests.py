"""Pipeline manifests for tests against the local stack (default endpoints)."""

from __future__ import annotations

from collections.abc import Iterable


def local_pipeline(name: str, keyspace: str, tables: Iterable[str]) -> str:
    """A manifest for the local stack. Every pipeline on the one Cassandra node shares the agent,
        hence the topic prefix `demo` (decision 0013); the password comes from CDC_PG_PASSWORD. The
    ports are those of the stack tests use ($CDC_STACK_DIR, e.g. on a port offset); no
    `spec.connect.url`, so the target's Connect (http or https) is used."""
    from controlplane.services.stack_settings import settings_for

    ports = settings_for().ports  # $CDC_STACK_DIR's stack (its stack.json), else the defaults
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    cassandra:
      contactPoints: ["127.0.0.1:{ports.cassandra}"]
      keyspace: {keyspace}
      tables: [{", ".join(tables)}]
  kafka:
    bootstrapServers: ["127.0.0.1:{ports.kafka}"]
    topicPrefix: demo
  sink:
    postgres:
      host: 127.0.0.1
      port: {ports.postgres}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
"""

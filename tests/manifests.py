"""Pipeline manifests for tests against the local stack (the session's: $CDC_STACK_DIR's ports)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from controlplane.core.manifest import DEFAULT_SINK_WRITER

WRITER_ENV = "CDC_SINK_WRITER"
"""The writer of every pipeline the tests create: `jdbc`, the stock JDBC sink with the gate trigger
(`./dev test-jdbc`); `lww`, the project's own sink; unset: the manifest's default, `lww`
(decisions 0127, 0149)."""


def session_writer() -> str:
    writer = os.environ.get(WRITER_ENV, "") or DEFAULT_SINK_WRITER
    if writer not in ("jdbc", "lww"):
        raise ValueError(f"{WRITER_ENV}={writer!r}: expected jdbc or lww")
    return writer


def writer_line(indent: str = "    ", writer: str | None = None) -> str:
    """`spec.sink.writer` for a hand-built manifest (`indent`: the sink's keys' indentation):
    `writer` or the session's, and nothing when that is the manifest's default, so a default
    manifest stays the default one, byte for byte."""
    writer = writer or session_writer()
    return f"{indent}writer: {writer}\n" if writer != DEFAULT_SINK_WRITER else ""


def local_pipeline(
    name: str,
    keyspace: str,
    tables: Iterable[str],
    *,
    heartbeat: bool = False,
    writer: str | None = None,
) -> str:
    """A manifest for the local stack. Every pipeline on the one Cassandra node shares the agent,
    hence the topic prefix `demo` (decision 0013); the password comes from CDC_PG_PASSWORD.
    Endpoints are the session stack's (tests.stackfixture: its port offset), and so is the
    Cassandra version (spec.source.cassandra.version: the sink corrects the 4.1 agent's dates);
    no `spec.connect.url`, so the target's Connect (http or https) is used. `heartbeat`: the
    pipeline carries the heartbeat table (options.heartbeat, decision 0120). `writer`: the sink's
    spec.sink.writer (default: $CDC_SINK_WRITER, else the manifest's default, lww)."""
    from tests.stackfixture import session_cassandra_version, session_ports

    p = session_ports()
    version = session_cassandra_version()
    # only on a 4.1 stack: a 5.0 manifest stays the default one, byte for byte
    version_line = f'      version: "{version}"\n' if version != "5.0" else ""
    options = "  options:\n    heartbeat: true\n" if heartbeat else ""
    sink_writer = writer_line("    ", writer)
    return f"""\
apiVersion: cdc.casscdcpg.io/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    cassandra:
      contactPoints: ["127.0.0.1:{p.cassandra}"]
{version_line}      keyspace: {keyspace}
      tables: [{", ".join(tables)}]
  kafka:
    bootstrapServers: ["127.0.0.1:{p.kafka}"]
    topicPrefix: demo
  sink:
{sink_writer}    postgres:
      host: 127.0.0.1
      port: {p.postgres}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
{options}"""

"""Pipeline manifests for tests against the local stack (the session's: $CDC_STACK_DIR's ports)."""

from __future__ import annotations

from collections.abc import Iterable


def local_pipeline(
    name: str,
    keyspace: str,
    tables: Iterable[str],
    *,
    heartbeat: bool = False,
    writer: str = "jdbc",
) -> str:
    """A manifest for the local stack. Every pipeline on the one Cassandra node shares the agent,
    hence the topic prefix `demo` (decision 0013); the password comes from CDC_PG_PASSWORD.
    Endpoints are the session stack's (tests.stackfixture: its port offset), and so is the
    Cassandra version (spec.source.cassandra.version: the sink corrects the 4.1 agent's dates);
    no `spec.connect.url`, so the target's Connect (http or https) is used. `heartbeat`: the
    pipeline carries the heartbeat table (options.heartbeat, decision 0120); `writer`: the sink
    (spec.sink.writer; the default one leaves the manifest as it was)."""
    from tests.stackfixture import session_cassandra_version, session_ports

    p = session_ports()
    version = session_cassandra_version()
    # only on a 4.1 stack: a 5.0 manifest stays the default one, byte for byte
    version_line = f'      version: "{version}"\n' if version != "5.0" else ""
    options = "  options:\n    heartbeat: true\n" if heartbeat else ""
    writer_line = f"    writer: {writer}\n" if writer != "jdbc" else ""
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
{writer_line}    postgres:
      host: 127.0.0.1
      port: {p.postgres}
      database: cdc
      user: cdc
      passwordSecret:
        env: CDC_PG_PASSWORD
{options}"""

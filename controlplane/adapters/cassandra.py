"""Apache Cassandra through the DataStax Python driver; its errors become `CassandraError` here."""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Cluster, NoHostAvailable, Session

from controlplane.core.errors import CassandraError


def connect(host: str = "127.0.0.1", port: int = 9042, *, timeout: float = 10) -> tuple[Any, Session]:
    cluster = Cluster(
        [host], port=port, connect_timeout=timeout, protocol_version=5, control_connection_timeout=timeout
    )
    try:
        return cluster, cluster.connect()
    except (NoHostAvailable, OSError) as exc:
        cluster.shutdown()
        raise CassandraError(
            f"cannot connect to Cassandra at {host}:{port}: {exc}",
            hint="is it running? try `cdcctl stack status`",
        ) from exc


def ping(host: str = "127.0.0.1", port: int = 9042) -> str:
    """The release version once the node answers CQL."""
    cluster, session = connect(host, port, timeout=3)
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)
    finally:
        cluster.shutdown()

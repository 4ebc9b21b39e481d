"""Apache Cassandra through the DataStax Python driver; its errors become `CassandraError` here."""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Cluster, NoHostAvailable, Session

from controlplane.core.errors import CassandraError


def connect(
    host: str = "127.0.0.1", port: int = 9042, *, timeout: float = 10
) -> tuple[Any, Session]:
    cluster = Cluster(
        [host],
        port=port,
        connect_timeout=timeout,
        protocol_version=5,
        control_connection_timeout=timeout,
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


def table_schemas(
    session: Session, keyspace: str, tables: list[str]
) -> dict[str, tuple[bool, list[dict[str, Any]]]]:
    """For each existing table: (cdc enabled?, its system_schema.columns rows)."""
    out: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
    try:
        for table in tables:
            meta = session.execute(
                "SELECT cdc FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
                (keyspace, table),
            ).one()
            if meta is None:
                continue
            cols = session.execute(
                "SELECT column_name, type, kind, position, clustering_order "
                "FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
                (keyspace, table),
            )
            out[table] = (bool(meta.cdc), [dict(r._asdict()) for r in cols])
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot read the schema of keyspace {keyspace}: {exc}") from exc
    return out

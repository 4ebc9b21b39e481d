"""Apache Cassandra through the DataStax Python driver; its errors become `CassandraError` here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


def table_ids(session: Session, keyspace: str) -> dict[str, str]:
    """{table: id} of a keyspace. DROP + CREATE of a table gives it a new id."""
    try:
        rows = session.execute(
            "SELECT table_name, id FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
        )
        return {str(r.table_name): str(r.id) for r in rows}
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot read the tables of keyspace {keyspace}: {exc}") from exc


def udt_fields(session: Session, keyspace: str) -> dict[str, dict[str, str]]:
    """{UDT name: {field: CQL type}} of a keyspace, fields in declaration order."""
    try:
        rows = session.execute(
            "SELECT type_name, field_names, field_types FROM system_schema.types "
            "WHERE keyspace_name = %s",
            (keyspace,),
        )
        return {
            str(r.type_name): dict(zip(r.field_names, r.field_types, strict=True)) for r in rows
        }
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot read the types of keyspace {keyspace}: {exc}") from exc


# --------------------------------------------------------------------------- full scans (verify)


def scan_session(host: str, port: int, *, timeout: float = 30) -> tuple[Any, Session]:
    """A session whose rows are plain tuples (cheapest to build) and whose requests wait
    ``timeout`` seconds: a full-table scan reads pages back to back."""
    from cassandra.query import tuple_factory

    cluster, session = connect(host, port, timeout=10)
    session.row_factory = tuple_factory
    session.default_timeout = timeout
    return cluster, session


def ring_tokens(cluster: Any) -> list[int]:
    """The nodes' tokens from the driver's token map (empty if it has none)."""
    token_map = getattr(cluster.metadata, "token_map", None)
    if token_map is None:
        return []
    return sorted(int(t.value) for t in token_map.ring)


def prepare(session: Session, cql: str, *, consistency: str = "LOCAL_QUORUM") -> Any:
    from cassandra import ConsistencyLevel

    try:
        stmt = session.prepare(cql)
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"Cassandra refused to prepare {cql!r}: {exc}") from exc
    stmt.consistency_level = getattr(ConsistencyLevel, consistency)
    return stmt


def stream(
    session: Session, stmt: Any, params: Sequence[Any], *, fetch_size: int = 1000
) -> Iterator[tuple[Any, ...]]:
    """Rows of a prepared statement, fetched page by page (one page in memory at a time)."""
    try:
        bound = stmt.bind(params)
        bound.fetch_size = fetch_size
        yield from session.execute(bound)
    except CassandraError:
        raise
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"Cassandra query failed: {exc}", hint="retry; ranges resume") from exc


def execute_concurrent(
    session: Session, stmt: Any, params: Sequence[Sequence[Any]], *, concurrency: int = 64
) -> list[list[tuple[Any, ...]]]:
    """Run a prepared statement once per parameter tuple, concurrently; rows per call."""
    from cassandra.concurrent import execute_concurrent_with_args

    try:
        results = execute_concurrent_with_args(
            session, stmt, params, concurrency=concurrency, raise_on_first_error=True
        )
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"Cassandra query failed: {exc}") from exc
    return [list(r.result_or_exc) for r in results]


def table_options(session: Session, keyspace: str, tables: list[str]) -> dict[str, Any]:
    """For each table: its `semantics_checks.TableOptions` (cdc flag, views, secondary indexes,
    triggers, default TTL, gc_grace_seconds, the keyspace's UDTs), read from system_schema. A
    missing table gets ``exists=False``."""
    from controlplane.core.semantics_checks import TableOptions

    out: dict[str, Any] = {}
    udts = tuple(
        (name, tuple(fields.items())) for name, fields in udt_fields(session, keyspace).items()
    )
    try:
        for table in tables:
            meta = session.execute(
                "SELECT cdc, default_time_to_live, gc_grace_seconds FROM system_schema.tables "
                "WHERE keyspace_name = %s AND table_name = %s",
                (keyspace, table),
            ).one()
            if meta is None:
                out[table] = TableOptions(cdc=False, exists=False)
                continue
            views = session.execute(
                "SELECT view_name, base_table_name FROM system_schema.views "
                "WHERE keyspace_name = %s",
                (keyspace,),
            )
            indexes = session.execute(
                "SELECT index_name FROM system_schema.indexes "
                "WHERE keyspace_name = %s AND table_name = %s",
                (keyspace, table),
            )
            triggers = session.execute(
                "SELECT trigger_name FROM system_schema.triggers "
                "WHERE keyspace_name = %s AND table_name = %s",
                (keyspace, table),
            )
            out[table] = TableOptions(
                cdc=bool(meta.cdc),
                materialized_views=tuple(
                    sorted(v.view_name for v in views if v.base_table_name == table)
                ),
                secondary_indexes=tuple(sorted(i.index_name for i in indexes)),
                triggers=tuple(sorted(t.trigger_name for t in triggers)),
                default_time_to_live=int(meta.default_time_to_live or 0),
                gc_grace_seconds=int(meta.gc_grace_seconds or 0),
                udts=udts,
            )
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(
            f"cannot read the table options of keyspace {keyspace}: {exc}"
        ) from exc
    return out

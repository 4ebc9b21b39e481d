"""Apache Cassandra through the DataStax Python driver; its errors become `CassandraError` here."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator, Sequence
from typing import Any

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable, Session

from controlplane.core.errors import CassandraError, CassandraReadError
from controlplane.core.read_retry import DEFAULT_CONSISTENCY, Replica
from controlplane.core.target import CassandraClientSecurity


def ssl_context(security: CassandraClientSecurity) -> ssl.SSLContext | None:
    """TLS towards Cassandra: the CA file's (else the system's) trust, host names checked
    against the address connected to (every node's certificate must name it)."""
    if not security.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=security.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise CassandraError(
            f"cannot read the CA file {security.ca_file} for Cassandra's TLS: {exc}",
            hint="the target's cassandra.tls.caFile must be a PEM CA bundle",
        ) from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _cluster_security(security: CassandraClientSecurity | None) -> dict[str, Any]:
    if security is None:
        return {}
    out: dict[str, Any] = {}
    context = ssl_context(security)
    if context is not None:
        out["ssl_context"] = context
    if security.username is not None:
        out["auth_provider"] = PlainTextAuthProvider(
            username=security.username, password=security.password or ""
        )
    return out


def _connect_error(where: str, exc: BaseException, hint: str | None) -> CassandraError:
    """The driver's connection failure as one message: authentication and TLS failures named
    as such (never with a password: the driver's messages hold none)."""
    causes = list(getattr(exc, "errors", {}).values()) if isinstance(exc, NoHostAvailable) else []
    if any(isinstance(c, AuthenticationFailed) for c in causes):
        return CassandraError(
            f"Cassandra at {where} refused the login: {exc}",
            hint="check the target's cassandra.username and passwordSecret "
            "(`cdcctl config get-contexts`)",
        )
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return CassandraError(
            f"TLS with Cassandra at {where} failed: {exc}",
            hint="check the target's cassandra.tls.caFile and that the node's certificate names "
            "the address connected to",
        )
    return CassandraError(
        f"cannot connect to Cassandra at {where}: {exc}",
        hint=hint or "is it running and reachable from here? (the target's contact points)",
    )


def connect(
    contact_points: str | Sequence[str] = "127.0.0.1",
    port: int = 9042,
    *,
    local_datacenter: str | None = None,
    timeout: float = 10,
    hint: str | None = None,
    request_timeout: float = 10,
    row_factory: Any = None,
    security: CassandraClientSecurity | None = None,
) -> tuple[Any, Session]:
    """A session over every contact point (``host``, ``host:port``, ``[v6]:port``; ``port`` for
    those without one), routed token-aware to ``local_datacenter`` (inferred from the contact
    points when not given), through the driver's default execution profile; with TLS and a
    login as ``security`` says."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import named_tuple_factory

    from controlplane.core.target import split_host_port

    points = [contact_points] if isinstance(contact_points, str) else list(contact_points)
    hosts = [split_host_port(p, port) for p in points]
    where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in hosts)
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=local_datacenter or "")
        ),
        request_timeout=request_timeout,
        row_factory=row_factory or named_tuple_factory,
    )
    cluster = Cluster(
        contact_points=hosts,
        connect_timeout=timeout,
        protocol_version=5,
        control_connection_timeout=timeout,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        **_cluster_security(security),
    )
    try:
        return cluster, cluster.connect()
    except (NoHostAvailable, AuthenticationFailed, OSError) as exc:
        cluster.shutdown()
        raise _connect_error(where, exc, hint) from exc


def ping(
    host: str = "127.0.0.1", port: int = 9042, *, security: CassandraClientSecurity | None = None
) -> str:
    """The release version once the node answers CQL."""
    cluster, session = connect(host, port, timeout=3, security=security)
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)
    finally:
        cluster.shutdown()


def release_version(session: Session) -> str | None:
    """The release_version of the node answering (system.local), e.g. ``"4.1.7"``; None when
    the row has none."""
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot read release_version from system.local: {exc}") from exc
    value = getattr(row, "release_version", None) if row is not None else None
    return str(value) if value else None


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


def scan_session(
    contact_points: str | Sequence[str],
    port: int = 9042,
    *,
    local_datacenter: str | None = None,
    timeout: float = 30,
    hint: str | None = None,
    security: CassandraClientSecurity | None = None,
) -> tuple[Any, Session]:
    """A session whose rows are plain tuples (cheapest to build) and whose requests wait
    ``timeout`` seconds: a full-table scan reads pages back to back."""
    from cassandra.query import tuple_factory

    return connect(
        contact_points,
        port,
        local_datacenter=local_datacenter,
        timeout=10,
        hint=hint,
        request_timeout=timeout,
        row_factory=tuple_factory,
        security=security,
    )


def ring_tokens(cluster: Any) -> list[int]:
    """The nodes' tokens from the driver's token map (empty if it has none)."""
    token_map = getattr(cluster.metadata, "token_map", None)
    if token_map is None:
        return []
    return sorted(int(t.value) for t in token_map.ring)


def prepare(session: Session, cql: str, *, consistency: str = DEFAULT_CONSISTENCY) -> Any:
    from cassandra import ConsistencyLevel

    try:
        stmt = session.prepare(cql)
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"Cassandra refused to prepare {cql!r}: {exc}") from exc
    stmt.consistency_level = getattr(ConsistencyLevel, consistency)
    return stmt


def stream(
    session: Session,
    stmt: Any,
    params: Sequence[Any],
    *,
    fetch_size: int = 1000,
    host: str | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Rows of a prepared statement, fetched page by page (one page in memory at a time); with
    ``host`` (an address from `range_replicas`) every page is read through that node as the
    coordinator. A failure is a `CassandraReadError` saying what kind (`read_error`)."""
    try:
        bound = stmt.bind(params)
        bound.fetch_size = fetch_size
        node = _host(session, host) if host else None
        yield from session.execute(bound, host=node)
    except CassandraError:
        raise
    except Exception as exc:  # the driver has no single base class for request errors
        raise read_error(exc, host=host) from exc


def execute(session: Session, cql: str) -> None:
    """One schema statement (e.g. the heartbeat table's CREATE TABLE IF NOT EXISTS)."""
    try:
        session.execute(cql)
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"Cassandra refused {cql[:120]!r}: {exc}") from exc


def write(session: Session, stmt: Any, params: Sequence[Any]) -> None:
    """One write of a prepared statement (e.g. a heartbeat row)."""
    try:
        session.execute(stmt, params)
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"a write to Cassandra failed: {exc}") from exc


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
        raise read_error(exc) from exc
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


# ------------------------------------------------------------------- range reads on a cluster


def read_error(exc: BaseException, *, host: str | None = None) -> CassandraReadError:
    """The one place a driver exception of a read becomes the project's error: a
    `CassandraReadError` whose ``kind`` (`core.read_retry.READ_ERROR_KINDS`) says whether a
    retry may cure it. NoHostAvailable is classified by what its hosts answered (the driver
    wraps an Unavailable or a lost connection in it when the one host it may ask fails)."""
    kind = _read_error_kind(exc)
    where = f" (coordinator {host})" if host else ""
    return CassandraReadError(
        f"Cassandra read failed{where}: {kind}: {exc}",
        kind=kind,
        host=host,
        hint="a temporary failure is retried on another replica; a range that still fails is "
        "not verified: `cdcctl verify --resume RUN` reads it again",
    )


def _read_error_kind(exc: BaseException) -> str:
    import cassandra as c
    from cassandra import protocol
    from cassandra.connection import ConnectionException

    if isinstance(exc, NoHostAvailable):
        inner = [_read_error_kind(e) for e in (exc.errors or {}).values() if e is not None]
        specific = [k for k in inner if k not in ("other", "no_host")]
        return specific[0] if specific else "no_host"
    table: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (c.Unavailable, "unavailable"),
        (c.ReadTimeout, "read_timeout"),
        (c.ReadFailure, "read_failure"),
        (c.OperationTimedOut, "timeout"),
        ((ConnectionException, OSError), "connection"),
        ((protocol.OverloadedErrorMessage, protocol.IsBootstrappingErrorMessage), "overloaded"),
        ((c.Unauthorized, c.AuthenticationFailed), "unauthorized"),
        ((c.InvalidRequest, c.ConfigurationException, protocol.SyntaxException), "invalid"),
    ]
    for classes, kind in table:
        if isinstance(exc, classes):
            return kind
    return "other"


def range_replicas(cluster: Any, keyspace: str, end_token: int) -> list[Replica]:
    """The replicas of the token range ending at ``end_token`` (a range inside one ring range
    has the replicas of its end), from the driver's token map: address, data centre, up.
    Empty when the driver has no token map (then the driver chooses the coordinator)."""
    token_map = getattr(cluster.metadata, "token_map", None)
    if token_map is None:
        return []
    try:
        hosts = token_map.get_replicas(keyspace, token_map.token_class(end_token))
    except Exception:  # no replica map for the keyspace yet: let the driver choose
        return []
    return [
        Replica(address=str(h.address), datacenter=str(h.datacenter or ""), up=h.is_up)
        for h in hosts
    ]


def _host(session: Session, address: str) -> Any:
    for host in session.cluster.metadata.all_hosts():
        if str(host.address) == address:
            return host
    raise CassandraReadError(
        f"Cassandra node {address} is not in the driver's view of the cluster",
        kind="no_host",
        host=address,
    )


# --------------------------------------------------------------------------- cluster members


def cluster_nodes(session: Session) -> list[tuple[str, str, str, str, str]]:
    """Every node of the cluster as (address, datacenter, rack, host_id, release_version).

    The address is the node's CQL (rpc/native) address, else its broadcast address. One host
    answers all three queries (``system.local`` is the coordinator's own row, ``system.peers``
    its view of the others); ``system.peers_v2`` (Cassandra 4.0+) falls back to ``system.peers``.
    """
    errors: list[str] = []
    for host in list(session.get_pool_state()):
        try:
            local = session.execute(
                "SELECT rpc_address, broadcast_address, data_center, rack, host_id, "
                "release_version FROM system.local",
                host=host,
            ).one()
            try:
                peers = list(
                    session.execute(
                        "SELECT native_address, peer, data_center, rack, host_id, "
                        "release_version FROM system.peers_v2",
                        host=host,
                    )
                )
            except Exception as exc:  # InvalidRequest before 4.0: the table does not exist
                if "peers_v2" not in str(exc):
                    raise
                peers = list(
                    session.execute(
                        "SELECT rpc_address, peer, data_center, rack, host_id, release_version "
                        "FROM system.peers",
                        host=host,
                    )
                )
        except Exception as exc:  # the driver has no single base class for request errors
            errors.append(f"{host}: {exc}")
            continue
        rows = ([local] if local is not None else []) + peers
        out: list[tuple[str, str, str, str, str]] = []
        for row in rows:
            # Any row factory: named tuples, plain tuples (scan sessions) or dicts.
            native, broadcast, dc, rack, host_id, release = (
                tuple(row.values()) if isinstance(row, dict) else tuple(row)
            )
            address = native if native and not _unspecified(str(native)) else broadcast
            out.append(
                (
                    str(address or ""),
                    str(dc or ""),
                    str(rack or ""),
                    str(host_id or ""),
                    str(release or ""),
                )
            )
        return sorted(out)
    raise CassandraError(
        "cannot read the cluster's nodes (system.local, system.peers_v2): "
        + ("; ".join(errors) or "no connected host"),
        hint="check that cdcctl reaches Cassandra and may read the system keyspace",
    )


def _unspecified(address: str) -> bool:
    """0.0.0.0 or :: (an rpc_address that binds every interface names no node)."""
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


# --------------------------------------------------------------------------- roles (local stack)

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def _role(name: str) -> str:
    if not _ROLE_NAME.match(name):
        raise CassandraError(f"{name!r} is not a role name this project creates")
    return name


def ensure_login_role(session: Session, name: str, password: str, *, superuser: bool) -> None:
    """Role `name` exists, may log in with `password`, and is (not) a superuser; run twice, it
    changes nothing but the password. The password travels as a bound value, never in a log."""
    role = _role(name)
    flag = "true" if superuser else "false"
    try:
        session.execute(
            f"CREATE ROLE IF NOT EXISTS {role} WITH PASSWORD = %s AND LOGIN = true "  # nosec B608  # role checked above
            f"AND SUPERUSER = {flag}",
            (password,),
        )
        session.execute(
            f"ALTER ROLE {role} WITH PASSWORD = %s AND LOGIN = true AND SUPERUSER = {flag}",
            (password,),
        )
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot create or update Cassandra role {role}: {exc}") from exc


def grant_select_all(session: Session, name: str) -> None:
    """`name` may read every keyspace (the agents' snapshots), nothing else."""
    role = _role(name)
    try:
        session.execute(f"GRANT SELECT ON ALL KEYSPACES TO {role}")
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot grant SELECT to Cassandra role {role}: {exc}") from exc


def disable_role(session: Session, name: str, password: str) -> None:
    """`name` can no longer log in (a new unknown password, LOGIN and SUPERUSER off)."""
    role = _role(name)
    try:
        session.execute(
            f"ALTER ROLE {role} WITH PASSWORD = %s AND LOGIN = false AND SUPERUSER = false",
            (password,),
        )
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot disable Cassandra role {role}: {exc}") from exc


def set_replication(session: Session, keyspace: str, datacenter: str, factor: int) -> None:
    """``keyspace`` replicated `factor` times in `datacenter` (NetworkTopologyStrategy)."""
    try:
        session.execute(
            f"ALTER KEYSPACE {_role(keyspace)} WITH replication = "
            "{'class': 'NetworkTopologyStrategy', %s: %s}",
            (datacenter, factor),
        )
    except Exception as exc:  # the driver has no single base class for request errors
        raise CassandraError(f"cannot change the replication of {keyspace}: {exc}") from exc

"""PostgreSQL through psycopg 3; its errors become `PostgresError` here."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from controlplane.core.errors import PostgresError
from controlplane.core.manifest import Postgres

PASSWORD_AUTH = "scram-sha-256"  # noqa: S105  # nosec B105  # pragma: allowlist secret  # a method
"""The only password authentication cdcctl accepts from a sink database: never md5 or a
cleartext password a spoofed server could ask for (libpq ``require_auth``)."""


def dsn(
    host: str,
    port: int,
    dbname: str,
    user: str,
    password: str | None = None,
    *,
    sslmode: str | None = None,
    sslrootcert: str | None = None,
    require_auth: str | None = None,
) -> str:
    """A libpq conninfo string; values are quoted when they need it (spaces, quotes).
    ``verify-*`` without ``sslrootcert`` verifies with the system's trust store; ``require_auth``
    makes libpq refuse any other authentication the server may ask for."""
    params: dict[str, object] = {"host": host, "port": port, "dbname": dbname, "user": user}
    if password:
        params["password"] = password
    if sslmode:
        params["sslmode"] = sslmode
    if sslrootcert:
        params["sslrootcert"] = sslrootcert
    elif sslmode in ("verify-ca", "verify-full"):
        params["sslrootcert"] = "system"  # libpq >= 16: the system's trust store
    if require_auth:
        params["require_auth"] = require_auth
    return " ".join(f"{k}={_conninfo_value(str(v))}" for k, v in params.items())


def pipeline_dsn(pg: Postgres, password: str | None) -> str:
    """The DSN of a pipeline's sink database, with the manifest's TLS settings (decision 0060)."""
    return dsn(
        pg.host,
        pg.port,
        pg.database,
        pg.user,
        password,
        sslmode=pg.tls.effective_mode,
        sslrootcert=pg.tls.ca_file,
        require_auth=PASSWORD_AUTH,
    )


def _conninfo_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def connect(conninfo: str, *, autocommit: bool = True, timeout: int = 10) -> psycopg.Connection:
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=timeout)
    except psycopg.Error as exc:
        raise PostgresError(
            f"cannot connect to PostgreSQL ({_redact(conninfo)}): {exc}".strip(),
            hint=_connect_hint(str(exc)),
        ) from exc


def _connect_hint(message: str) -> str:
    """What to do about a failed connection, TLS problems first (decision 0060)."""
    text = message.lower()
    if "certificate verify failed" in text or "root certificate" in text:
        return (
            "the server's certificate is not signed by the CA in sslrootcert "
            "(spec.sink.postgres.tls.caFile); the local stack's CA is "
            ".stack/secrets/postgres-ca.crt"
        )
    if "does not match host name" in text or "server certificate for" in text:
        return (
            "the server's certificate does not name the host connected to; connect by a name it "
            "holds or use tls.mode verify-ca"
        )
    if "no encryption" in text or "hostnossl" in text:
        return "the server accepts only TLS connections: use sslmode=require or stronger"
    if "ssl" in text and ("not support" in text or "unsupported" in text):
        return "the server does not offer TLS; restart it with TLS on (`cdcctl stack down && up`)"
    if "password authentication failed" in text:
        return (
            "the password was refused: check the secret reference (postgres.passwordSecret of the "
            "context, or spec.sink.postgres.passwordSecret) and the role"
        )
    return (
        "is it running and reachable from here? (the target's postgres host/port: "
        "`cdcctl config get-contexts`; on the local stack `cdcctl stack status`)"
    )


def ping(conninfo: str) -> str:
    """The server version when PostgreSQL answers a query."""
    with connect(conninfo, timeout=3) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def execute(conninfo: str, statements: Iterable[str | sql.Composable]) -> None:
    """Run statements in one transaction."""
    try:
        with connect(conninfo, autocommit=False) as conn, conn.transaction():
            for stmt in statements:
                conn.execute(stmt)  # type: ignore[arg-type]  # generated DDL, not user text
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL rejected a statement: {exc}") from exc


def query(conninfo: str, stmt: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    try:
        with connect(conninfo) as conn:
            return list(conn.execute(stmt, params).fetchall())
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL query failed: {exc}") from exc


def ensure_role_and_database(admin_conninfo: str, user: str, password: str, database: str) -> None:
    """Create (or re-password) the application role and its database; idempotent."""
    try:
        with connect(admin_conninfo) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            # The SCRAM verifier, computed here: the plain password never travels in a statement
            # the server could log (log_statement, an error's STATEMENT line).
            verifier = conn.pgconn.encrypt_password(
                password.encode(), user.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(
                sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(verifier)
                )
            )
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(user)
                    )
                )
    except psycopg.Error as exc:
        raise PostgresError(f"could not create role/database {user}/{database}: {exc}") from exc


def _redact(conninfo: str) -> str:
    return re.sub(r"password=('(?:[^'\\]|\\.)*'|\S+)", "password=***", conninfo)


def relation_exists(conninfo: str, qualified_name: str) -> bool:
    """Whether a (quoted, schema-qualified) table or view exists."""
    rows = query(conninfo, "SELECT to_regclass(%s) IS NOT NULL", [qualified_name])
    return bool(rows and rows[0][0])


def has_column(conninfo: str, qualified_name: str, column: str) -> bool:
    """Whether the (quoted, schema-qualified) table has the column (False if no such table)."""
    rows = query(
        conninfo,
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attname = %s AND attnum > 0 AND NOT attisdropped)",
        [qualified_name, column],
    )
    return bool(rows and rows[0][0])


def existing_objects(conninfo: str, relations: Sequence[str], functions: Sequence[str]) -> set[str]:
    """Which of the (quoted, schema-qualified) relations and functions exist."""
    found: set[str] = set()
    try:
        with connect(conninfo) as conn:
            for name in relations:
                row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()
                if row and row[0]:
                    found.add(name)
            for name in functions:
                row = conn.execute("SELECT to_regproc(%s) IS NOT NULL", [name]).fetchone()
                if row and row[0]:
                    found.add(name)
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL query failed: {exc}") from exc
    return found


def relation_comment(conninfo: str, qualified_name: str) -> str | None:
    """The COMMENT on a table or view, None when it has none or does not exist."""
    rows = query(
        conninfo,
        "SELECT obj_description(to_regclass(%s), 'pg_class')",
        [qualified_name],
    )
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def comment_on_table_sql(qualified_name: str, comment: str) -> sql.Composable:
    """``COMMENT ON TABLE`` for a quoted, schema-qualified name the DDL generator produced."""
    return sql.SQL("COMMENT ON TABLE {} IS {}").format(
        sql.SQL(qualified_name), sql.Literal(comment)
    )


# --------------------------------------------------------------------------- verify


class _IsoIntervalLoader(psycopg.adapt.Loader):
    """``interval`` as ``PgInterval`` (months, days, µs): psycopg's timedelta drops months."""

    def load(self, data: Any) -> Any:
        from controlplane.core.canonical import parse_pg_interval

        return parse_pg_interval(bytes(data).decode())


def verify_connect(conninfo: str) -> psycopg.Connection:
    """A connection for reading rows to compare: intervals keep months (ISO 8601 style)."""
    conn = connect(conninfo, autocommit=True)
    try:
        conn.execute("SET intervalstyle = 'iso_8601'")
        conn.execute("SET timezone = 'UTC'")
    except psycopg.Error as exc:
        conn.close()
        raise PostgresError(f"cannot prepare a verify session: {exc}") from exc
    conn.adapters.register_loader("interval", _IsoIntervalLoader)
    return conn


def stream(
    conn: psycopg.Connection, stmt: str, params: Sequence[Any], *, itersize: int = 2000
) -> Iterable[tuple[Any, ...]]:
    """Rows of a query through a server-side cursor, ``itersize`` rows at a time (a batch
    yielded from its list: iterating the cursor itself costs a Python call per row)."""
    for rows in batches(conn, stmt, params, itersize=itersize):
        yield from rows


def batches(
    conn: psycopg.Connection, stmt: str, params: Sequence[Any], *, itersize: int = 2000
) -> Iterable[list[tuple[Any, ...]]]:
    """The rows of a query through a server-side cursor, as lists of up to ``itersize``."""
    try:
        with conn.transaction(), conn.cursor(name="cdc_verify_stream") as cur:
            cur.itersize = itersize
            cur.execute(stmt, params)
            while rows := cur.fetchmany(itersize):
                yield rows
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL query failed: {exc}") from exc


def fetch(conn: psycopg.Connection, stmt: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    try:
        return list(conn.execute(stmt, params).fetchall())
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL query failed: {exc}") from exc


def execute_many(conn: psycopg.Connection, stmt: str, rows: Sequence[Sequence[Any]]) -> None:
    """One statement per row, in one transaction."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(stmt, rows)
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL rejected a write: {exc}") from exc


def copy_text(conn: psycopg.Connection, stmt: str, chunks: Iterable[str]) -> None:
    """``COPY ... FROM STDIN`` (text format) of data already in that format, a chunk of lines
    per write, in one transaction."""
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as copy:
            for chunk in chunks:
                copy.write(chunk)
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL COPY failed: {exc}") from exc


def copy_rows(conn: psycopg.Connection, stmt: str, rows: Iterable[Sequence[Any]]) -> int:
    """``COPY ... FROM STDIN`` of rows, in one transaction; the number of rows copied."""
    n = 0
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
    except psycopg.Error as exc:
        raise PostgresError(f"PostgreSQL COPY failed: {exc}") from exc
    return n

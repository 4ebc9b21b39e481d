"""The main job on the local stack (`./dev demo`): deploy examples/pipeline.yaml, write rows into
Cassandra, wait until PostgreSQL shows them, and print both sides.

Expects `cdcctl stack up` to have run (the justfile's `demo` recipe does it first).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from controlplane.adapters import cassandra, postgres
from controlplane.core.errors import CdcError
from controlplane.services.apply import apply_manifests
from controlplane.services.local_agents import LocalAgents
from controlplane.services.stack import LocalStack, settings_for
from controlplane.services.targets import local_target

ROOT = Path(__file__).resolve().parents[1]
console = Console()
DEADLINE_S = 120


def cql_statements(path: Path) -> list[str]:
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.strip().startswith("--")
    )
    return [s.strip() for s in text.split(";") if s.strip()]


def main() -> int:
    stack = LocalStack(settings_for())
    ep = stack.endpoints()
    os.environ.setdefault("CDC_PG_PASSWORD", stack.postgres_password())

    # TLS and cdcctl's role unless the stack runs --insecure (decision 0110)
    cluster, session = cassandra.connect(
        ep.cassandra_host, ep.cassandra_port, security=ep.cassandra_security
    )
    try:
        console.rule("1. Cassandra schema and rows that exist before the pipeline")
        for stmt in cql_statements(ROOT / "examples" / "demo.cql"):
            session.execute(stmt)
        console.print("examples/demo.cql applied (keyspace demo, tables users and orders)")

        console.rule("2. cdcctl apply -f examples/pipeline.yaml")
        result = apply_manifests(
            [ROOT / "examples" / "pipeline.yaml"],
            local_target(stack.lay.root),
            agents=LocalAgents(stack.s),
            report=console.print,
        )
        for c in result.changes:
            console.print(f"  {c.kind:<9} {c.name:<40} {c.action}")

        console.rule("3. Writing to Cassandra")
        new_id = uuid.uuid4()
        session.execute(
            "INSERT INTO demo.users (user_id, email, name, active, balance, created_at) "
            "VALUES (%s, %s, %s, %s, %s, toTimestamp(now()))",
            (new_id, "grace@example.com", "Grace", True, Decimal("1000.00")),
        )
        session.execute(
            "UPDATE demo.users SET balance = %s WHERE user_id = %s",
            (Decimal("99.95"), uuid.UUID("5b6962dd-3f90-4c93-8f61-eabfa4a803e2")),
        )
        session.execute(
            "DELETE FROM demo.users WHERE user_id = %s",
            (uuid.UUID("a4b1f0c2-8a3e-4d0b-9c57-3f1e2d9b6a10"),),
        )
        console.print("inserted Grace, updated Ada's balance, deleted Linus")

        console.rule("4. Waiting for PostgreSQL to match")
        cass_rows = sorted(
            (str(r.user_id), r.name, r.email, r.balance, r.active)
            for r in session.execute("SELECT user_id, name, email, balance, active FROM demo.users")
        )
    finally:
        cluster.shutdown()

    started = time.monotonic()
    pg_rows: list[tuple[object, ...]] = []
    with console.status("waiting for the pipeline..."):
        while time.monotonic() - started < DEADLINE_S:
            pg_rows = sorted(
                (str(r[0]), *r[1:])
                for r in postgres.query(
                    ep.postgres_dsn, "SELECT user_id, name, email, balance, active FROM demo.users"
                )
            )
            if pg_rows == cass_rows:
                break
            time.sleep(0.25)
    took = time.monotonic() - started

    for title, rows in (("Cassandra demo.users", cass_rows), ("PostgreSQL demo.users", pg_rows)):
        table = Table(title=title)
        for col in ("user_id", "name", "email", "balance", "active"):
            table.add_column(col)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        console.print(table)
    if pg_rows != cass_rows:
        console.print(f"[red]PostgreSQL did not match Cassandra within {DEADLINE_S}s[/]")
        console.print("look at `cdcctl stack logs connect` and `cdcctl stack logs agent`")
        return 1
    console.print(f"[green]PostgreSQL matches Cassandra[/] ({took:.1f}s after the last write)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CdcError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        if exc.hint:
            console.print(f"[yellow]hint:[/] {exc.hint}")
        sys.exit(exc.exit_code)

"""`cdcctl stack up|down|status|logs`: the local stack (filled in below)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run the local stack natively: Cassandra, Kafka, Connect, agent, PostgreSQL, Redis.")

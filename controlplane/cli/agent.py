"""`cdcctl agent render|status`: the Debezium Cassandra agents beside each Cassandra node.

cdcctl cannot start agents on other people's machines: `render` writes each node's bundle for
the operator to roll out, `status` asks each agent's HTTP server. Thin: parse, call one
service, render. Services are imported inside the commands so `cdcctl --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from controlplane.cli.apply import FILES
from controlplane.cli.base import Typer
from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit
from controlplane.cli.output import note as output_note
from controlplane.cli.targeting import CONTEXT, STATE_DIR, resolve

app = Typer(
    help="Debezium Cassandra agents (one per Cassandra node): render their bundles, check "
    "their health.",
    no_args_is_help=True,
)

OFFLINE = typer.Option(
    False,
    "--offline",
    help="Do not ask Cassandra: use spec.source.agent.nodes as written (required then). By "
    "default the nodes are read from (or checked against) the cluster.",
)


@app.command("render")
def render(
    filename: list[str] = FILES,
    out: Path = typer.Option(
        ..., "--out", help="Directory to write <out>/<node id>/<file> into (created)."
    ),
    node: list[str] = typer.Option(
        None, "--node", metavar="ID", help="Only this node id (repeatable); default every node."
    ),
    offline: bool = OFFLINE,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Write each Cassandra node's agent bundle and print how to roll it out.

    Files: agent.properties, driver.conf, cass-cdc-pg-agent.service, agent.env (0600),
    logback.xml. Exit 0; 2 on a bad --node; 3 on manifest problems; 5 when Cassandra cannot
    be asked for its nodes."""
    from controlplane.core.manifest_loader import load_manifests
    from controlplane.services.agents import render_bundles

    results = render_bundles(
        load_manifests(filename),
        resolve(context, None, state_dir),
        out,
        node or None,
        offline=offline,
    )
    if output is not OutputFormat.table:
        emit([r.to_dict() for r in results], output)
        return
    emit(
        [r.to_dict() for r in results],
        output,
        columns=["node_id", "address", "datacenter", "digest", "directory"],
        title="agent bundles",
    )
    for files in dict.fromkeys(r.files for r in results):
        typer.echo(f"files in each directory: {', '.join(files)}")
    for note in dict.fromkeys(n for r in results for n in r.notes):
        output_note("agent_note", Text.assemble(("note:", "yellow"), f" {note}"))
    groups: dict[tuple[str, ...], list[str]] = {}
    for r in results:
        groups.setdefault(r.rollout, []).append(r.node_id)
    for steps, nodes in groups.items():
        typer.echo(
            f"\nRollout, as root on each node ({', '.join(nodes)}), in a copy of its "
            f"directory {out}/<node id>/:"
        )
        for step in steps:
            typer.echo(f"  {step}")


def _status_row(agent: dict[str, Any]) -> dict[str, Any]:
    """One table row: a single state word and the detail behind it."""
    if not agent["reachable"]:
        state = "unreachable"
    else:
        state = {True: "healthy", False: "UNHEALTHY", None: "unknown"}[agent["healthy"]]
    parts = sorted(agent["components"].items())
    detail = ", ".join(f"{k}={'ok' if v else 'FAILED'}" for k, v in parts)
    if agent["error"]:
        detail = f"{detail}; {agent['error']}" if detail else agent["error"]
    return {**agent, "state": state, "detail": detail}


@app.command("status")
def status(
    filename: list[str] = FILES,
    offline: bool = OFFLINE,
    timeout: float = typer.Option(
        3.0, "--timeout", min=0.1, help="Seconds to wait for each agent's answer."
    ),
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Ask every node's agent whether it is up and healthy.

    Over its HTTP server: reachable (/ping), healthy (/health, per component), version
    (/buildinfo). Exit 0 when all are healthy; 5 when any is unreachable or unhealthy (or
    Cassandra cannot be asked for its nodes); 3 on manifest problems."""
    from controlplane.core.manifest_loader import load_manifests
    from controlplane.services.agents import agent_status

    report = agent_status(
        load_manifests(filename),
        resolve(context, None, state_dir),
        offline=offline,
        timeout=timeout,
    )
    rows = [a.to_dict() for a in report.agents]
    if output is OutputFormat.table:
        emit(
            [_status_row(r) for r in rows],
            output,
            columns=["node_id", "url", "state", "version", "detail"],
            title="agents",
        )
    else:
        emit(rows, output)
    failure = report.failure()
    if failure is not None:
        raise failure

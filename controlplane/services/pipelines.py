"""Day-2 operations on deployed pipelines: get, describe, delete, pause/resume/stop, restart,
offsets. A pipeline NAME means its sink connector ``<NAME>-jdbc-sink``; a connector's own name
works too."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.adapters import kafka, postgres
from controlplane.adapters.connect import ConnectClient, ConnectorStatus
from controlplane.core.connector_health import Health, first_line, health
from controlplane.core.ddl import generate_ddl
from controlplane.core.errors import ConnectError, FailedStateError, UsageError
from controlplane.core.manifest_loader import LoadedManifest
from controlplane.core.plan import ddl_objects
from controlplane.core.render import OWNER_KEY, OWNER_VALUE, PIPELINE_KEY, stopped_tables
from controlplane.core.target import KafkaEndpoint, Target
from controlplane.services.apply import read_tables
from controlplane.services.targets import connect_client, pipeline_dsn, resolve_target


@dataclass(frozen=True)
class Where:
    """Which target a day-2 command works on (its --context/--connect-url/--state-dir)."""

    connect_url: str | None = None
    context: str | None = None
    state_dir: Path | None = None

    @functools.cached_property
    def target(self) -> Target:
        return resolve_target(
            context=self.context, connect_url=self.connect_url, state_dir=self.state_dir
        )

    def client(self) -> ConnectClient:
        target = self.target
        client: ConnectClient = connect_client(target.connect, target)
        return client

    def kafka(self, bootstrap: str | None) -> KafkaEndpoint:
        """--bootstrap when given, else the target's Kafka servers, with the target's TLS."""
        kafka = self.target.kafka
        # --bootstrap replaces the servers only: TLS and the client certificate stay the target's.
        return kafka.endpoint(bootstrap or ",".join(kafka.bootstrap_servers or ["127.0.0.1:9092"]))


def resolve_connector(client: ConnectClient, name: str) -> str:
    names = client.connector_names()
    for candidate in (name, f"{name}-jdbc-sink"):
        if candidate in names:
            return candidate
    raise ConnectError(
        f"no pipeline or connector named {name!r} in Kafka Connect at {client.base_url}",
        status=404,
        hint="list them with `cdcctl get pipelines` or `cdcctl get connectors`",
    )


def _tasks(status: ConnectorStatus | None) -> str:
    if status is None:
        return ""
    running = sum(1 for t in status.tasks if t.state == "RUNNING")
    return f"{running}/{len(status.tasks)}"


def connector_health(name: str, status: ConnectorStatus | None) -> Health:
    """The connector's `Health` ("1 of 2 tasks FAILED") from Connect's status."""
    if status is None:
        return health(name, None, "", None, [])
    c = status.connector
    tasks = [(t.id, t.state, t.worker_id, t.trace) for t in status.tasks]
    return health(name, c.state, c.worker_id, c.trace, tasks)


def _health_fields(h: Health) -> dict[str, Any]:
    return {
        "health": h.summary,
        "failed": h.failed,
        "failures": [f.as_dict() for f in h.failures],
    }


def check_failed(items: list[dict[str, Any]]) -> None:
    """Raise `FailedStateError` (exit 9) when a connector or task in ``items`` (rows of `get`,
    or `describe`'s answer) is FAILED: each one with its worker and the first line of its
    trace. Called after the listing was printed."""
    failed = [i for i in items if i.get("failed")]
    if not failed:
        return
    parts = []
    for item in failed:
        name = item.get("connector") or item.get("name")
        for f in item.get("failures", []):
            what = f"{name} task {f['task']}" if f["task"] is not None else str(name)
            parts.append(f"{what} on worker {f['worker'] or '?'}: {f['error'] or 'no trace'}")
    heads = ", ".join(f"{i.get('connector') or i.get('name')}: {i['health']}" for i in failed)
    raise FailedStateError(
        f"{heads} ({'; '.join(parts)})",
        hint="the whole trace: `cdcctl describe pipeline NAME` (last error) or the worker's "
        "log; after fixing the cause: `cdcctl restart NAME --failed` (reconcile does it with "
        "backoff)",
    )


def get_connectors(where: Where) -> list[dict[str, Any]]:
    with where.client() as client:
        listing = client.list_connectors()
    rows = []
    for name, entry in sorted(listing.items()):
        config = entry.info.config if entry.info else {}
        rows.append(
            {
                "name": name,
                "type": (entry.status.type if entry.status else None)
                or (entry.info.type if entry.info else None),
                "state": entry.status.connector.state if entry.status else None,
                "tasks_running": _tasks(entry.status),
                "owned": config.get(OWNER_KEY) == OWNER_VALUE,
                "pipeline": config.get(PIPELINE_KEY),
                "class": config.get("connector.class"),
                **_health_fields(connector_health(name, entry.status)),
            }
        )
    return rows


def get_pipelines(where: Where) -> list[dict[str, Any]]:
    with where.client() as client:
        listing = client.list_connectors()
    rows = []
    for name, entry in sorted(listing.items()):
        config = entry.info.config if entry.info else {}
        if config.get(OWNER_KEY) != OWNER_VALUE:
            continue
        rows.append(
            {
                "pipeline": config.get(PIPELINE_KEY, name),
                "connector": name,
                "state": entry.status.connector.state if entry.status else None,
                "tasks_running": _tasks(entry.status),
                "topics": config.get("topics", config.get("topics.regex", "")),
                "stopped": ",".join(stopped_tables(config)),
                **_health_fields(connector_health(name, entry.status)),
            }
        )
    return rows


def describe_pipeline(where: Where, name: str, bootstrap: str | None = None) -> dict[str, Any]:
    with where.client() as client:
        connector = resolve_connector(client, name)
        config = client.get_config(connector)
        status = client.status(connector)
        try:
            active_topics = client.topics(connector)
        except ConnectError:
            active_topics = []
    last_error = status.connector.trace or next((t.trace for t in status.tasks if t.trace), None)
    try:
        lag: list[dict[str, object]] | str = kafka.consumer_lag(
            where.kafka(bootstrap), f"connect-{connector}"
        )
    except Exception as exc:  # lag is informative; describe must still answer
        lag = f"unavailable: {exc}"
    total: int | None = None
    if isinstance(lag, list):
        total = sum(v for r in lag if isinstance(v := r.get("lag"), int))
    topics = [t for t in config.get("topics", "").split(",") if t]
    tables = [{"table": t.rpartition(".")[2], "state": "RUNNING", "reason": ""} for t in topics]
    tables += [
        {"table": t, "state": "STOPPED", "reason": why} for t, why in stopped_tables(config).items()
    ]
    return {
        "pipeline": config.get(PIPELINE_KEY, name),
        "connector": connector,
        "owned": config.get(OWNER_KEY) == OWNER_VALUE,
        "state": status.connector.state,
        "worker": status.connector.worker_id,
        "error": first_line(status.connector.trace),
        **_health_fields(connector_health(connector, status)),
        "tasks": [
            {"id": t.id, "state": t.state, "worker": t.worker_id, "error": first_line(t.trace)}
            for t in status.tasks
        ],
        "topics": topics,
        "tables": sorted(tables, key=lambda r: r["table"]),
        "active_topics": active_topics,
        "consumer_group": f"connect-{connector}",
        "lag_total": total,
        "lag": lag,
        "last_error": last_error,
    }


def delete_pipeline(
    where: Where, name: str, *, drop_data: LoadedManifest | None = None
) -> list[dict[str, str]]:
    """Delete the connector; with a manifest, also drop its PostgreSQL tables, views, functions."""
    done: list[dict[str, str]] = []
    with where.client() as client:
        connector = resolve_connector(client, name)
        client.delete_connector(connector)
    done.append({"kind": "connector", "name": connector, "action": "deleted"})
    if drop_data is None:
        return done
    p = drop_data.pipeline
    if p.name != name and f"{p.name}-jdbc-sink" != connector:
        raise UsageError(f"the manifest given with --drop-data is for {p.name!r}, not {name!r}")
    dsn = pipeline_dsn(where.target, p, base_dir=Path(drop_data.source).parent)
    statements: list[str] = []
    for table in read_tables(p, target=where.target):
        objects = ddl_objects(generate_ddl(table).statements)
        for kind in ("view", "table", "function"):
            statements += [
                f"DROP {kind.upper()} IF EXISTS {o.name} CASCADE" for o in objects if o.kind == kind
            ]
            done += [
                {"kind": f"postgres {kind}", "name": o.name, "action": "dropped"}
                for o in objects
                if o.kind == kind
            ]
    postgres.execute(dsn, statements)
    return done


def wait_state(
    client: ConnectClient,
    connector: str,
    ok: Callable[[ConnectorStatus], bool],
    what: str,
    deadline_s: float = 60.0,
) -> ConnectorStatus:
    end = time.monotonic() + deadline_s
    while True:
        status = client.status(connector)
        if ok(status):
            return status
        if time.monotonic() > end:
            raise ConnectError(
                f"connector {connector} did not become {what} within {deadline_s:.0f}s "
                f"(state {status.connector.state})",
                hint="see `cdcctl describe pipeline` and the worker log",
            )
        time.sleep(0.25)


def set_state(where: Where, name: str, verb: str) -> dict[str, str]:
    """pause | resume | stop, then wait until Connect reports the new state."""
    target = {"pause": "PAUSED", "resume": "RUNNING", "stop": "STOPPED"}[verb]
    with where.client() as client:
        connector = resolve_connector(client, name)
        getattr(client, verb)(connector)
        status = wait_state(client, connector, lambda s: s.connector.state == target, target)
    return {"connector": connector, "state": status.connector.state}


def restart(where: Where, name: str, *, only_failed: bool = False) -> dict[str, Any]:
    with where.client() as client:
        connector = resolve_connector(client, name)
        client.restart(connector, include_tasks=True, only_failed=only_failed)
        status = client.status(connector)
    return {
        "connector": connector,
        "only_failed": only_failed,
        "state": status.connector.state,
        "tasks": {t.id: t.state for t in status.tasks},
    }


def offsets_get(where: Where, name: str) -> list[dict[str, Any]]:
    with where.client() as client:
        connector = resolve_connector(client, name)
        offsets = client.get_offsets(connector)
    return [{"connector": connector, "partition": o.partition, "offset": o.offset} for o in offsets]


def offsets_reset(where: Where, name: str) -> dict[str, str]:
    """stop -> wait STOPPED -> reset offsets -> resume -> wait RUNNING."""
    with where.client() as client:
        connector = resolve_connector(client, name)
        client.stop(connector)
        wait_state(client, connector, lambda s: s.connector.state == "STOPPED", "STOPPED")
        message = client.reset_offsets(connector)
        client.resume(connector)
        status = wait_state(client, connector, lambda s: s.connector.state == "RUNNING", "RUNNING")
    return {"connector": connector, "message": message, "state": status.connector.state}

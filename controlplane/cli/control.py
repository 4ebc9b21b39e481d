"""Control-plane commands: manifest schema, validate, plan, get/describe/delete, pause/resume/stop,
restart, offsets, reconcile and config contexts. Thin: parse, call one service, render.

Services are imported inside the commands so `cdcctl --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from controlplane.cli.apply import FILES, PRUNE, PRUNE_MATCH, plan
from controlplane.cli.base import Typer
from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, alarm, console, emit, note
from controlplane.cli.targeting import CONNECT_URL, CONTEXT, STATE_DIR, redis, resolve

manifest_app = Typer(help="Pipeline manifest tools.", no_args_is_help=True)
get_app = Typer(help="List pipelines or connectors.", no_args_is_help=True)
describe_app = Typer(help="Show one pipeline in detail.", no_args_is_help=True)
delete_app = Typer(help="Delete a pipeline.", no_args_is_help=True)
offsets_app = Typer(help="Read or reset a pipeline's sink offsets.", no_args_is_help=True)
config_app = Typer(
    help="cdcctl contexts: named targets (where Connect, Kafka, Cassandra, PostgreSQL, Vault "
    "and Redis are, and how to authenticate).",
    no_args_is_help=True,
)

NAME = typer.Argument(..., help="Pipeline name (its <name>-jdbc-sink connector) or connector name.")
BOOTSTRAP = typer.Option(
    None,
    "--bootstrap",
    envvar="CDC_KAFKA_BOOTSTRAP",
    help="Kafka, for consumer lag (default: the target's).",
)


def _where(connect_url: str | None, context: str | None, state_dir: Path | None = None) -> Any:
    from controlplane.services.pipelines import Where

    return Where(connect_url, context, state_dir)


# --- manifest / validate -------------------------------------------------------------------


@manifest_app.command("schema")
def manifest_schema() -> None:
    """Print the JSON Schema of pipeline manifests (for editors: yaml-language-server)."""
    from controlplane.core.manifest import manifest_json_schema

    typer.echo(json.dumps(manifest_json_schema(), indent=2))


VALIDATE_FORMATS = ("table", "json", "github")


def validate(
    filename: list[str] = FILES,
    online: bool = typer.Option(
        False,
        "--online",
        help="Also check against the components: Connect's config validation, Cassandra "
        "tables with cdc = true, PostgreSQL reachable, secrets resolvable.",
    ),
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: str = typer.Option(
        "table", "--output", "-o", help="table, json, or github (Actions annotations)."
    ),
) -> None:
    """Check manifests and report every problem with file:line:column. Exit 0 when valid, 3 on
    manifest problems, 5 when (with --online) a component check failed."""
    from controlplane.core.errors import UsageError
    from controlplane.core.validation import exit_code, github_annotation
    from controlplane.services.validate import validate as run

    if output not in VALIDATE_FORMATS:
        raise UsageError(f"unknown output {output!r}", hint="use table, json or github")
    target = resolve(context, connect_url, state_dir) if online else None
    loaded, findings = run(filename, online=online, target=target)
    code = exit_code(findings)
    if output == "json":
        typer.echo(
            json.dumps(
                {
                    "valid": not findings,
                    "exit_code": code,
                    "pipelines": [m.pipeline.name for m in loaded],
                    "problems": [f.to_dict() for f in findings],
                },
                indent=2,
            )
        )
    elif output == "github":
        for f in findings:
            typer.echo(github_annotation(f))
    else:
        for f in findings:
            note("manifest_problem", f.text(), level="warning", problem=f.to_dict())
        checked = "offline and online" if online else "offline"
        note(
            "validated",
            f"{len(loaded)} pipeline(s), {len(findings)} problem(s) ({checked} checks)",
            pipelines=len(loaded),
            problems=len(findings),
            online=online,
        )
    if code:
        raise typer.Exit(code)


# --- get / describe / delete ---------------------------------------------------------------


@get_app.command("pipelines")
def get_pipelines(
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Pipelines deployed by cdcctl (connectors carrying its ownership marker).

    A FAILED connector or task is shown in red with its health ("1 of 2 tasks FAILED") and
    makes the command exit 9 after the listing."""
    from controlplane.services.pipelines import get_pipelines as run

    _emit_with_health(
        run(_where(connect_url, context, state_dir)),
        output,
        ["pipeline", "connector", "state", "tasks_running", "health", "topics", "stopped"],
    )


@get_app.command("connectors")
def get_connectors(
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Every connector of the Connect cluster, with state, health and owner.

    A FAILED connector or task is shown in red with its health ("1 of 2 tasks FAILED") and
    makes the command exit 9 after the listing."""
    from controlplane.services.pipelines import get_connectors as run

    _emit_with_health(
        run(_where(connect_url, context, state_dir)),
        output,
        ["name", "type", "state", "tasks_running", "health", "owned", "pipeline"],
    )


def _emit_with_health(rows: list[dict[str, Any]], output: OutputFormat, columns: list[str]) -> None:
    """A listing of connectors: FAILED ones in red in a table, then exit 9 when any failed."""
    from controlplane.services.pipelines import check_failed

    emit(rows if output is not OutputFormat.table else _alarmed(rows), output, columns=columns)
    check_failed(rows)


def _alarmed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table: FAILED states and the health of a failed connector in red."""
    return [
        {
            **row,
            "state": alarm(row["state"]) if row.get("state") == "FAILED" else row.get("state"),
            "health": alarm(row["health"]) if row.get("failed") else row.get("health"),
        }
        for row in rows
    ]


@describe_app.command("pipeline")
def describe_pipeline(
    name: str = NAME,
    bootstrap: str = BOOTSTRAP,
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Connector and task states, topics, consumer lag of connect-<connector>, last error.

    A FAILED connector or task is shown in red with its worker and the first line of its trace,
    under a summary line ("1 of 2 tasks FAILED"), and makes the command exit 9."""
    from controlplane.services.pipelines import check_failed
    from controlplane.services.pipelines import describe_pipeline as run

    info = run(_where(connect_url, context, state_dir), name, bootstrap)
    if output is not OutputFormat.table:
        emit(info, output)
        check_failed([info])
        return
    hidden = ("tasks", "tables", "lag", "last_error", "failures", "failed")
    summary: dict[str, Any] = {k: v for k, v in info.items() if k not in hidden}
    summary["topics"] = ",".join(info["topics"])
    summary["active_topics"] = ",".join(info["active_topics"])
    if info["state"] == "FAILED":
        summary["state"] = alarm(info["state"])
    if info["failed"]:
        summary["health"] = alarm(info["health"])
    if info["failed"]:  # the line that cannot be missed, above the tables
        console.print(alarm(f"{info['connector']}: {info['health']}"))
    emit([{"field": k, "value": v} for k, v in summary.items()], output, title=info["connector"])
    tasks = [
        {**t, "state": alarm(t["state"]), "error": alarm(t["error"])}
        if t["state"] == "FAILED"
        else t
        for t in info["tasks"]
    ]
    emit(tasks, output, columns=["id", "state", "worker", "error"], title="tasks")
    emit(info["tables"], output, columns=["table", "state", "reason"], title="tables")
    if isinstance(info["lag"], list):
        emit(
            info["lag"],
            output,
            columns=["topic", "partition", "committed", "end", "lag"],
            title=f"consumer group {info['consumer_group']}",
        )
    else:
        typer.echo(f"lag: {info['lag']}")
    if info["last_error"]:
        typer.echo("last error:\n" + str(info["last_error"]))
    check_failed([info])  # exit 9 after everything was shown


@delete_app.command("pipeline")
def delete_pipeline(
    name: str = NAME,
    drop_data: bool = typer.Option(
        False, "--drop-data", help="Also drop its PostgreSQL tables, views and functions."
    ),
    filename: list[str] = typer.Option(
        None,
        "--filename",
        "-f",
        metavar="FILE",
        help="The pipeline's manifest (needed with --drop-data).",
    ),
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Delete the pipeline's connector. PostgreSQL data is kept unless --drop-data."""
    from controlplane.core.errors import UsageError
    from controlplane.core.manifest_loader import load_manifests
    from controlplane.services.pipelines import delete_pipeline as run

    manifest = None
    if drop_data:
        if not filename:
            raise UsageError("--drop-data needs the pipeline's manifest", hint="add -f FILE")
        found = [m for m in load_manifests(filename) if m.pipeline.name == name]
        if not found:
            raise UsageError(f"no manifest for pipeline {name!r} in {', '.join(filename)}")
        manifest = found[0]
    emit(
        run(_where(connect_url, context, state_dir), name, drop_data=manifest),
        output,
        columns=["kind", "name", "action"],
    )


# --- state ---------------------------------------------------------------------------------


def _state_command(verb: str, doc: str) -> Any:
    def command(
        name: str = NAME,
        connect_url: str | None = CONNECT_URL,
        context: str | None = CONTEXT,
        state_dir: Path | None = STATE_DIR,
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        from controlplane.services.pipelines import set_state

        emit(set_state(_where(connect_url, context, state_dir), name, verb), output)

    command.__doc__ = doc
    command.__name__ = verb
    return command


def restart(
    name: str = NAME,
    failed: bool = typer.Option(False, "--failed", help="Only the failed connector/tasks."),
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Restart the connector and its tasks (POST .../restart?includeTasks=true)."""
    from controlplane.services.pipelines import restart as run

    emit(run(_where(connect_url, context, state_dir), name, only_failed=failed), output)


@offsets_app.command("get")
def offsets_get(
    name: str = NAME,
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """The sink's committed offsets per topic partition (GET .../offsets)."""
    from controlplane.services.pipelines import offsets_get as run

    emit(
        run(_where(connect_url, context, state_dir), name),
        output,
        columns=["connector", "partition", "offset"],
    )


@offsets_app.command("reset")
def offsets_reset(
    name: str = NAME,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Stop the connector, delete its offsets, resume it: the sink re-reads its topics from the
    start (safe: every write goes through the last-write-wins gate)."""
    from controlplane.services.pipelines import offsets_reset as run

    if not yes:
        typer.confirm(f"reset the offsets of {name}?", abort=True, err=True)  # stdout: -o json
    emit(run(_where(connect_url, context, state_dir), name), output)


# --- reconcile -----------------------------------------------------------------------------


def reconcile(
    filename: list[str] = FILES,
    watch: bool = typer.Option(False, "--watch", help="Keep reconciling every --interval."),
    interval: float = typer.Option(120.0, "--interval", help="Seconds between reconciles."),
    redis_url: str | None = typer.Option(
        None,
        "--redis-url",
        envvar="CDC_REDIS_URL",
        help="Lease and restart-backoff store (default: the target's Redis).",
    ),
    lease_ttl: float = typer.Option(
        0.0, "--lease-ttl", help="Lease time-to-live in seconds (default: max(30, 3 x interval))."
    ),
    iterations: int | None = typer.Option(None, "--iterations", help="Stop after N rounds."),
    lease_key: str = typer.Option(
        "cdcctl:reconcile:lease", "--lease-key", help="Redis key of the lease (one per fleet)."
    ),
    prune: bool = PRUNE,
    prune_match: str = PRUNE_MATCH,
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Plan + apply, restore hand-edited connectors, restart failed ones with Strimzi's backoff,
    under a Redis lease so two reconcilers never act at once. Every action is logged on stderr
    (JSON lines unless stderr is a terminal: see --log-format of cdcctl)."""
    from dataclasses import asdict

    from controlplane.services.reconcile import Reconciler
    from controlplane.services.targets import managed_agents

    ttl = lease_ttl or max(30.0, 3 * interval)
    target = resolve(context, connect_url, state_dir)
    rec = Reconciler(
        list(filename),
        target,
        agents=managed_agents(target),
        redis_url=redis(target, redis_url),
        lease_ttl_s=ttl,
        prune=prune,
        prune_match=prune_match,
        lease_key=lease_key,
    )
    if watch:
        rec.watch(interval, iterations=iterations)
        return
    try:
        outcome = rec.once()
    finally:
        if rec.lease.held:
            rec.lease.release()
    if output is not OutputFormat.table:
        emit(asdict(outcome), output)
    else:
        idle = "in sync" if outcome.acted else "another reconciler holds the lease"
        emit(outcome.changes or [{"result": idle}], output)
    if outcome.stopped:  # everything else was reconciled; exit 7 as apply does
        from controlplane.core.schema_evolution import incompatible_error

        raise incompatible_error(
            [(s["pipeline"], s["table"], s["reason"]) for s in outcome.stopped]
        )


# --- config --------------------------------------------------------------------------------


@config_app.command("get-contexts")
def get_contexts(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Known contexts; the current one is marked."""
    from controlplane.services.contexts import get_contexts as run

    emit(run(), output, columns=["current", "name", "connect_url", "local_stack"])


@config_app.command("use-context")
def use_context(
    name: str = typer.Argument(..., help="Context name."), output: OutputFormat = OUTPUT_OPTION
) -> None:
    """Make NAME the current context."""
    from controlplane.services.contexts import use_context as run

    config = run(name)
    if output is not OutputFormat.table:
        emit({"current_context": name, "config": str(config)}, output)
        return
    typer.echo(f"current context: {name} ({config})")


@config_app.command("set-context")
def set_context(
    name: str = typer.Argument(..., help="Context name."),
    from_file: Path | None = typer.Option(
        None,
        "--from-file",
        help="A YAML file holding the whole context (connect, kafka, cassandra, postgres, vault, "
        "redis; see docs/deploy.md); the flags below then override its fields.",
    ),
    local_stack: Path | None = typer.Option(
        None, "--local-stack", help="The context is the local stack at this state directory."
    ),
    connect_url: str | None = typer.Option(None, "--connect-url", help="Kafka Connect REST URL."),
    connect_ca: Path | None = typer.Option(
        None, "--connect-ca", help="PEM CA bundle Connect's https certificate is checked with."
    ),
    connect_user: str | None = typer.Option(None, "--connect-user", help="Basic auth user."),
    connect_password_env: str | None = typer.Option(
        None, "--connect-password-env", help="Environment variable holding the basic auth password."
    ),
    connect_password_file: Path | None = typer.Option(
        None,
        "--connect-password-file",
        help="File holding the basic auth password (its whole content).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create or update a context: a named target (the first one becomes current). Only
    references to secrets are stored, never a password."""
    import yaml

    from controlplane.core.contexts import parse_config
    from controlplane.core.errors import UsageError
    from controlplane.services.contexts import set_context as run

    data: dict[str, Any] = {}
    if from_file is not None:
        try:
            loaded = yaml.safe_load(from_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read context file {from_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UsageError(f"context file {from_file} must hold a mapping")
        data = loaded
    if local_stack is not None:
        data["localStack"] = str(local_stack.resolve())
    connect = dict(data.get("connect") or {})
    if connect_url:
        connect["url"] = connect_url
    if connect_ca:
        connect["caFile"] = str(connect_ca.resolve())
    if connect_user:
        connect["username"] = connect_user
    if connect_password_env and connect_password_file:
        raise UsageError("give one of --connect-password-env and --connect-password-file")
    if connect_password_env:
        connect["passwordSecret"] = {"env": connect_password_env}
    if connect_password_file:
        connect["passwordSecret"] = {"file": str(connect_password_file.resolve())}
    if connect:
        data["connect"] = connect
    if not data:
        raise UsageError(
            "a context needs at least --connect-url, --local-stack or --from-file",
            hint="cdcctl config set-context prod --from-file prod-context.yaml",
        )
    context = parse_config(
        yaml.safe_dump({"contexts": {name: data}}), str(from_file or "command line")
    ).contexts[name]
    config = run(name, context)
    if output is not OutputFormat.table:
        emit({"context": name, "connect_url": context.connect_url, "config": str(config)}, output)
        return
    typer.echo(f"context {name} -> {context.connect_url} ({config})")


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app, name="manifest")
    app.command()(validate)
    app.command()(plan)
    app.add_typer(get_app, name="get")
    app.add_typer(describe_app, name="describe")
    app.add_typer(delete_app, name="delete")
    for verb, doc in (
        ("pause", "Pause the pipeline's connector (tasks keep their assignment)."),
        ("resume", "Resume a paused or stopped connector."),
        ("stop", "Stop the connector and shut its tasks down (offsets may then be edited)."),
    ):
        app.command(verb)(_state_command(verb, doc))
    app.command()(restart)
    app.add_typer(offsets_app, name="offsets")
    app.command()(reconcile)
    app.add_typer(config_app, name="config")

"""`cdcctl plan|apply -f FILE|DIR|-`: show what would change, then deploy exactly that."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console

from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit
from controlplane.cli.stack import STATE_DIR

err = Console(stderr=True, soft_wrap=True)

FILES = typer.Option(
    ..., "--filename", "-f", help="Manifest file, directory of *.yaml, or - for stdin (repeatable)."
)
PRUNE = typer.Option(
    False,
    "--prune",
    help="Also delete connectors marked cdcctl.owner=cdcctl that no manifest names "
    "(never connectors without the marker).",
)
PRUNE_MATCH = typer.Option(
    "*",
    "--prune-match",
    help="With --prune: only connectors whose cdcctl.pipeline matches this glob.",
)
CONNECT_URL = typer.Option(
    None,
    "--connect-url",
    envvar="CDCCTL_CONNECT_URL",
    help="Kafka Connect REST URL; overrides manifests and contexts.",
)
CONTEXT = typer.Option(None, "--context", help="Use this cdcctl context's Connect cluster.")


def plan(
    filename: list[str] = FILES,
    prune: bool = PRUNE,
    prune_match: str = PRUNE_MATCH,
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    show_unchanged: bool = typer.Option(False, "--all", help="Also list unchanged resources."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 6 when the plan has changes (0 when none)."
    ),
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """What `apply` would change, as + create / ~ update / - delete lines. Changes nothing."""
    from controlplane.core.errors import DifferencesFoundError
    from controlplane.services.apply import Target, plan_manifests
    from controlplane.services.stack import LocalStack, settings_for

    planned = plan_manifests(
        filename,
        LocalStack(settings_for(state_dir)),
        prune=prune,
        prune_match=prune_match,
        target=Target(connect_url, context),
    )
    if output is OutputFormat.table:
        for line in planned.plan.lines(show_noop=show_unchanged):
            typer.echo(line)
    else:
        emit(planned.plan.to_dict(), output)
    if detailed_exitcode and planned.plan.has_changes:
        raise DifferencesFoundError("the plan has changes", hint="run `cdcctl apply` to make them")


def apply(
    filename: list[str] = FILES,
    prune: bool = PRUNE,
    prune_match: str = PRUNE_MATCH,
    connect_url: str | None = CONNECT_URL,
    context: str | None = CONTEXT,
    state_dir: Path | None = STATE_DIR,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create the PostgreSQL tables, register the JDBC sink and configure the agent so the
    pipelines run as their manifests say. Carries out exactly `cdcctl plan`: only what differs
    is changed, so a second apply is a no-op."""
    from controlplane.services.apply import Target, apply_manifests
    from controlplane.services.stack import LocalStack, settings_for

    stack = LocalStack(settings_for(state_dir))
    result = apply_manifests(
        filename,
        stack,
        report=lambda m: err.print(f"[cyan]apply[/] {m}", highlight=False),
        prune=prune,
        prune_match=prune_match,
        target=Target(connect_url, context),
    )
    emit(
        [asdict(c) for c in result.changes],
        output,
        columns=["pipeline", "kind", "name", "action"],
        title="applied" if result.changed else "no changes",
    )

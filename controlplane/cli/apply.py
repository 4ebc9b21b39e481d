"""`cdcctl plan|apply -f FILE|DIR|-`: show what would change, then deploy exactly that."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.text import Text

from controlplane.cli.output import OUTPUT_OPTION, OutputFormat, emit, note
from controlplane.cli.targeting import CONNECT_URL, CONTEXT, STATE_DIR, resolve

FILES = typer.Option(
    ...,
    "--filename",
    "-f",
    metavar="FILE",
    help="Manifest file, directory of *.yaml, or - for stdin (repeatable).",
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
    from controlplane.services.apply import plan_manifests
    from controlplane.services.targets import managed_agents

    target = resolve(context, connect_url, state_dir)
    planned = plan_manifests(
        filename,
        target,
        agents=managed_agents(target),
        prune=prune,
        prune_match=prune_match,
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
    from controlplane.services.apply import apply_manifests
    from controlplane.services.targets import managed_agents

    target = resolve(context, connect_url, state_dir)
    result = apply_manifests(
        filename,
        target,
        agents=managed_agents(target),
        report=lambda m: note("apply_progress", Text.assemble(("apply", "cyan"), f" {m}"), step=m),
        prune=prune,
        prune_match=prune_match,
    )
    emit(
        [asdict(c) for c in result.changes],
        output,
        columns=["pipeline", "kind", "name", "action"],
        title="applied" if result.changed else "no changes",
    )
    rollouts = [c for c in result.changes if c.action == "to roll out"]
    if rollouts and output is OutputFormat.table:
        note(
            "agent_rollout_needed",
            f"{len(rollouts)} external agent bundle(s) changed: the operator rolls them out "
            "(`cdcctl agent render -f ... --out DIR`, then on each node: install, "
            "`systemctl restart cass-cdc-pg-agent`)",
            bundles=len(rollouts),
        )

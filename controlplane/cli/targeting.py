"""The options every command that talks to a pipeline's systems takes to choose its target
(services.targets has the precedence), and the one function that resolves them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from controlplane.core.target import RedisEndpoint, Target

CONNECT_URL = typer.Option(
    None,
    "--connect-url",
    envvar="CDCCTL_CONNECT_URL",
    help="Kafka Connect REST URL; overrides the target's and the manifests'.",
)
CONTEXT = typer.Option(
    None,
    "--context",
    envvar="CDCCTL_CONTEXT",
    help="Work on this cdcctl context (a named target: Connect, Kafka, Cassandra, PostgreSQL, "
    "Vault, Redis and their credentials); default: the current context, else the local stack.",
)
STATE_DIR = typer.Option(
    None,
    "--state-dir",
    help="Work on the local stack at this state directory (as `cdcctl stack --state-dir`).",
)


def resolve(
    context: str | None = None, connect_url: str | None = None, state_dir: Path | None = None
) -> Target:
    from controlplane.services.targets import resolve_target

    return resolve_target(context=context, connect_url=connect_url, state_dir=state_dir)


def redis(target: Target, url: str | None = None) -> RedisEndpoint:
    """The target's Redis (or `url`) with its ACL password and CA (services.targets)."""
    from controlplane.services.targets import redis_endpoint

    return redis_endpoint(target, url)

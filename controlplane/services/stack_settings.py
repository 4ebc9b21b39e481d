"""Which local stack a command means: its state dir and the settings `stack up` persisted there.

`cdcctl stack up --port-offset N --nodes N --connect-workers M [--insecure]` writes
``<state dir>/stack.json``; every later command
on that state dir (``stack status|down|logs|env``, targets resolved from it) reads it here, so a
second stack on other ports is one command. This module is light on purpose (no adapters, no
import of services.stack): whoever needs a stack's settings imports it, not the stack service.
"""

from __future__ import annotations

import os
from pathlib import Path

from controlplane.core.errors import UsageError
from controlplane.core.stack_model import (
    AGENT_LOG_LEVELS,
    CASSANDRA_VERSIONS,
    MAX_CONNECT_WORKERS,
    MAX_NODES,
    MAX_PORT_OFFSET,
    MIN_CDC_TOTAL_SPACE_MIB,
    StackChoices,
    StackLayout,
    StackSettings,
    choices_document,
    choices_of,
    parse_choices_document,
    settings_from_choices,
)


def repo_root() -> Path:
    """The checkout holding compose/ and transforms/ (cdcctl is installed editable from it)."""
    env = os.environ.get("CDC_REPO_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def default_state_dir() -> Path:
    return Path(os.environ.get("CDC_STACK_DIR", repo_root() / ".stack")).resolve()


def persisted_choices(root: Path) -> StackChoices | None:
    """The choices in ``<root>/stack.json``, None when there is none. Files written before
    ``nodes``/``connect_workers``/``agent_log_level`` existed read as their defaults."""
    path = StackLayout(root=root).settings_file
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return parse_choices_document(text, str(path))
    except ValueError as exc:
        raise UsageError(
            str(exc),
            hint=f"fix or delete {path} (it holds port_offset, nodes, connect_workers, "
            "agent_log_level, cassandra_version and insecure)",
        ) from exc


def persisted(root: Path) -> tuple[int, bool] | None:
    """``(port_offset, insecure)`` from ``<root>/stack.json``, None when there is none."""
    c = persisted_choices(root)
    return None if c is None else (c.port_offset, c.insecure)


def settings_for(state_dir: Path | None = None) -> StackSettings:
    """The settings of the stack in `state_dir` (default `.stack/` or $CDC_STACK_DIR): its
    ``stack.json`` when there is one, the defaults otherwise."""
    root = (state_dir or default_state_dir()).resolve()
    return settings_from_choices(root, persisted_choices(root) or StackChoices())


def chosen_settings(
    state_dir: Path | None,
    port_offset: int | None = None,
    *,
    nodes: int | None = None,
    connect_workers: int | None = None,
    agent_log_level: str | None = None,
    cdc_total_space_mib: int | None = None,
    cdc_block_writes: bool | None = None,
    cassandra_version: str | None = None,
    insecure: bool | None = None,
) -> StackSettings:
    """The persisted settings with the choices given on this command line applied (None: keep)."""
    root = (state_dir or default_state_dir()).resolve()
    old = persisted_choices(root) or StackChoices()
    offset = old.port_offset if port_offset is None else port_offset
    if not 0 <= offset <= MAX_PORT_OFFSET:
        raise UsageError(
            f"--port-offset {offset} is out of range",
            hint=f"give 0..{MAX_PORT_OFFSET} (every port of the stack moves by it)",
        )
    n = old.nodes if nodes is None else nodes
    if not 1 <= n <= MAX_NODES:
        raise UsageError(f"--nodes {n} is out of range", hint=f"give 1..{MAX_NODES}")
    m = old.connect_workers if connect_workers is None else connect_workers
    if not 1 <= m <= MAX_CONNECT_WORKERS:
        raise UsageError(
            f"--connect-workers {m} is out of range", hint=f"give 1..{MAX_CONNECT_WORKERS}"
        )
    level = old.agent_log_level if agent_log_level is None else agent_log_level.upper()
    if level not in AGENT_LOG_LEVELS:
        raise UsageError(
            f"--agent-log-level {agent_log_level} is not a log level",
            hint=f"give one of {', '.join(AGENT_LOG_LEVELS)}",
        )
    space = old.cdc_total_space_mib if cdc_total_space_mib is None else cdc_total_space_mib
    if space < MIN_CDC_TOTAL_SPACE_MIB:
        raise UsageError(
            f"--cdc-total-space-mib {space} is too small",
            hint=f"give at least {MIN_CDC_TOTAL_SPACE_MIB} (commit log segments are 1 MiB)",
        )
    version = old.cassandra_version if cassandra_version is None else cassandra_version
    if version not in CASSANDRA_VERSIONS:
        raise UsageError(
            f"--cassandra-version {cassandra_version} is not supported",
            hint=f"give one of {', '.join(CASSANDRA_VERSIONS)} (5.0 is the default)",
        )
    if version != "5.0" and n > 1:
        raise UsageError(
            f"--nodes {n} with Cassandra {version} is not supported yet: the cluster profile has "
            "only been run with 5.0",
            hint=f"use --nodes 1 with --cassandra-version {version}, or --cassandra-version 5.0 "
            "for a cluster (decision 0107)",
        )
    return settings_from_choices(
        root,
        StackChoices(
            offset,
            n,
            m,
            level,
            space,
            old.cdc_block_writes if cdc_block_writes is None else cdc_block_writes,
            version,
            old.insecure if insecure is None else insecure,
        ),
    )


def save(settings: StackSettings) -> None:
    """Write ``stack.json`` (only when it changes)."""
    path = settings.layout.settings_file
    choices = choices_of(settings)
    if choices is None:
        raise UsageError("only a stack whose ports are all shifted alike can be persisted")
    text = choices_document(choices)
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)

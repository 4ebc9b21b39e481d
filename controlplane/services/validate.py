"""`cdcctl validate`: every problem of a set of manifests, offline and (``--online``) against the
components — Connect's config validation per key, Cassandra tables with ``cdc = true``,
PostgreSQL reachable with the resolved secret, secret references resolvable."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode

from controlplane.adapters import cassandra, postgres
from controlplane.core.errors import CdcError
from controlplane.core.manifest_loader import LoadedManifest, check_manifests, locate
from controlplane.core.render import RenderContext, render_sink_config
from controlplane.core.schema_model import TableModel
from controlplane.core.semantics_checks import (
    check_table,
    effective_version,
    source_version_findings,
)
from controlplane.core.target import Target, endpoints_for
from controlplane.core.validation import Finding
from controlplane.services.targets import (
    cassandra_security,
    connect_client,
    named_contexts,
    pipeline_dsn,
)

Loc = tuple[str | int, ...]


def _position(item: LoadedManifest, loc: Loc) -> str:
    """``file:line:column`` of `loc` inside the document defining `item` (its name otherwise)."""
    if not Path(item.source).is_file():
        return item.location
    try:
        roots = list(yaml.compose_all(Path(item.source).read_text(), Loader=yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return item.location
    for root in roots:
        if not isinstance(root, MappingNode):
            continue
        name_node, depth = locate(root, ("metadata", "name"))
        if depth == 2 and getattr(name_node, "value", None) == item.pipeline.name:
            node, _ = locate(root, loc)
            mark = node.start_mark
            return f"{item.source}:{mark.line + 1}:{mark.column + 1}"
    return item.location


def validate(
    paths: Iterable[str | Path],
    *,
    online: bool = False,
    target: Target | None = None,
    render_ctx: RenderContext | None = None,
    read_stdin: Callable[[], str] | None = None,
) -> tuple[list[LoadedManifest], list[Finding]]:
    loaded, problems = check_manifests(paths, read_stdin=read_stdin)
    findings = [Finding("manifest", p.message, p.location, p.hint) for p in problems]
    if online:
        for item in loaded:
            if target is None:
                from controlplane.services.targets import resolve_target

                target = resolve_target()
            findings.extend(_online(item, target, render_ctx or RenderContext()))
    return loaded, findings


def _finding(check: Any, item: LoadedManifest, exc: CdcError, loc: Loc) -> Finding:
    return Finding(check, exc.message, _position(item, loc), exc.hint, pipeline=item.pipeline.name)


def _online(item: LoadedManifest, target: Target, render_ctx: RenderContext) -> list[Finding]:
    p = item.pipeline
    out: list[Finding] = []
    secret_loc: Loc = ("spec", "sink", "postgres", "passwordSecret")
    dsn: str | None = None
    try:
        dsn = pipeline_dsn(target, p, base_dir=Path(item.source).parent)
    except CdcError as exc:
        out.append(_finding("secret", item, exc, secret_loc))
    if dsn is not None:
        try:
            postgres.ping(dsn)
        except CdcError as exc:
            out.append(_finding("postgres", item, exc, ("spec", "sink", "postgres")))

    endpoints = endpoints_for(target, p, named_contexts())
    out.extend(_cassandra_findings(item, target, endpoints))

    try:
        config = render_sink_config(p, render_ctx)
    except ValueError as exc:
        out.append(
            Finding(
                "secret",
                str(exc),
                _position(item, secret_loc),
                "the Connect workers resolve the reference themselves",
                pipeline=p.name,
            )
        )
        return out
    try:
        with connect_client(endpoints.connect, target, timeout=30) as client:
            result = client.validate_config(config["connector.class"], config)
    except CdcError as exc:
        out.append(_finding("connect", item, exc, ("spec", "connect")))
    else:
        for key, errors in sorted(result.errors.items()):
            out.extend(
                Finding(
                    "connect",
                    error,
                    _position(item, ("spec", "sink")),
                    "the rendered connector config is shown by `cdcctl plan`",
                    pipeline=p.name,
                    key=key,
                )
                for error in errors
            )
    return out


def _cassandra_findings(item: LoadedManifest, target: Target, endpoints: Any) -> list[Finding]:
    """Tables, cdc flags, the cluster's version against spec.source.cassandra.version, and what
    the source cannot carry faithfully on that version (issue 4; issue 13 item 4)."""
    p = item.pipeline
    declared = p.spec.source.cassandra.version
    try:
        cluster, session = cassandra.connect(
            list(endpoints.contact_points),
            local_datacenter=endpoints.local_datacenter,
            timeout=5,
            hint=target.hint("Cassandra"),
            security=cassandra_security(target),
        )
        try:
            release = cassandra.release_version(session)
            found = cassandra.table_schemas(session, p.keyspace, p.tables)
            existing = [t for t in p.tables if t in found]
            options = cassandra.table_options(session, p.keyspace, existing)
        finally:
            cluster.shutdown()
    except CdcError as exc:
        return [_finding("cassandra", item, exc, ("spec", "source", "cassandra"))]
    out = [
        Finding(
            "cassandra",
            f"{f.severity}: {f.message}",
            _position(item, ("spec", "source", "cassandra")),
            f.remedy,
            pipeline=p.name,
        )
        for f in source_version_findings(p.keyspace, declared, release)
        if f.severity != "info"
    ]
    version = effective_version(declared, release)
    for i, table in enumerate(p.tables):
        loc: Loc = ("spec", "source", "cassandra", "tables", i)
        if table not in found:
            out.append(
                Finding(
                    "cassandra",
                    f"table {p.keyspace}.{table} does not exist",
                    _position(item, loc),
                    "create it WITH cdc = true, or remove it from spec.source.cassandra.tables",
                    pipeline=p.name,
                )
            )
        elif not found[table][0]:
            out.append(
                Finding(
                    "cassandra",
                    f"table {p.keyspace}.{table} has cdc = false",
                    _position(item, loc),
                    f"ALTER TABLE {p.keyspace}.{table} WITH cdc = true",
                    pipeline=p.name,
                )
            )
        if table in found:  # what the source cannot carry faithfully, on this version
            model = TableModel.from_system_schema(p.keyspace, table, found[table][1])
            out.extend(
                Finding(
                    "cassandra",
                    f"{f.severity}: {f.message}",
                    _position(item, loc),
                    f.remedy,
                    pipeline=p.name,
                )
                for f in check_table(model, options[table], version)
                if f.severity != "info" and f.code not in ("cdc-disabled", "table-missing")
            )
    return out

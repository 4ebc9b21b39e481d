"""External Debezium Cassandra agents: which nodes they run on, their bundles, their health.

Every Cassandra node runs one agent beside Cassandra (decision 0013); cdcctl cannot start it on
other people's machines. It renders each node's bundle (`core.agent_bundle`) for the operator
to roll out, and asks each agent's HTTP server how it is (`adapters.agent_health`).

Nodes: ``spec.source.agent.nodes`` when the manifest lists them (each checked against the
cluster's members), else the cluster's members as ``system.local``/``system.peers_v2`` report
them, read through the contact points cdcctl uses for the target (`core.target.endpoints_for`).

Functions `plan`/`apply` call: `cluster_nodes`, `bundle_digests_for`.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from controlplane.adapters import agent_health, cassandra
from controlplane.core.agent_bundle import (
    BUNDLE_FILES,
    AgentBundle,
    bundle_differences,
    bundle_digests,
    check_unique_nodes,
    render_bundle,
    rollout_steps,
)
from controlplane.core.errors import (
    CassandraError,
    CdcError,
    ExternalServiceError,
    ManifestError,
    UsageError,
)
from controlplane.core.manifest import DEFAULT_AGENT_HTTP_PORT, AgentNode, Pipeline
from controlplane.core.manifest_loader import LoadedManifest
from controlplane.core.target import Target, endpoints_for
from controlplane.services.targets import cassandra_security

Member = tuple[str, str, str, str, str]
"""(address, datacenter, rack, host_id, release_version) as `adapters.cassandra` reads it."""
_MAX_PROBES = 16


@dataclass(frozen=True)
class ClusterNode:
    """A node of a pipeline's cluster and its agent's settings (datacenter filled in from the
    cluster when cdcctl asked it)."""

    node: AgentNode
    rack: str | None = None
    host_id: str | None = None
    release_version: str | None = None
    from_manifest: bool = True

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def address(self) -> str:
        return self.node.address


@dataclass(frozen=True)
class BundleResult:
    """One node's bundle as written: where, which files, its digest and how to roll it out."""

    node_id: str
    address: str
    datacenter: str | None
    directory: Path
    files: tuple[str, ...]
    digest: str
    pipelines: tuple[str, ...]
    mode: str
    rollout: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "datacenter": self.datacenter,
            "directory": str(self.directory),
            "files": list(self.files),
            "digest": self.digest,
            "pipelines": list(self.pipelines),
            "mode": self.mode,
            "rollout": list(self.rollout),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class AgentStatus:
    """What one agent's HTTP server says (or that it does not answer)."""

    node_id: str
    address: str
    url: str
    pipelines: tuple[str, ...]
    reachable: bool
    healthy: bool | None = None
    components: dict[str, bool] = field(default_factory=dict)
    version: str | None = None
    service: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and self.healthy is True

    def problem(self) -> str | None:
        """Why this agent is not fine, in words (None when it is)."""
        if self.ok:
            return None
        if not self.reachable:
            return self.error or "unreachable"
        failing = [name for name, ok in sorted(self.components.items()) if not ok]
        if self.healthy is False:
            return "unhealthy" + (f" ({', '.join(failing)} not ok)" if failing else "")
        return self.error or "health unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "url": self.url,
            "pipelines": list(self.pipelines),
            "reachable": self.reachable,
            "healthy": self.healthy,
            "components": dict(self.components),
            "version": self.version,
            "service": self.service,
            "error": self.error,
        }


@dataclass(frozen=True)
class AgentStatusReport:
    agents: list[AgentStatus]

    def failure(self) -> ExternalServiceError | None:
        """Exit 5 when any agent is unreachable or unhealthy (None when all are fine)."""
        bad = [a for a in self.agents if not a.ok]
        if not bad:
            return None
        what = "; ".join(f"{a.node_id} at {a.url}: {a.problem()}" for a in bad)
        return ExternalServiceError(
            f"{len(bad)} of {len(self.agents)} agent(s) unreachable or unhealthy: {what}",
            hint="on that node: `systemctl status cass-cdc-pg-agent` and "
            "/var/log/cass-cdc-pg/agent.log (or the manifest's install.logDir); is its http.port "
            "(spec.source.agent.nodes[].httpPort) reachable from here?",
        )


# --- nodes ---------------------------------------------------------------------------------


def discover(pipeline: Pipeline, target: Target, *, session: Any = None) -> list[Member]:
    """The cluster's members through the contact points cdcctl uses for `target`."""
    if session is not None:
        return cassandra.cluster_nodes(session)
    # Connect settings play no part here: do not let spec.connect.context be resolved.
    endpoints = endpoints_for(replace(target, connect_overridden=True), pipeline)
    cluster, own = cassandra.connect(
        list(endpoints.contact_points),
        local_datacenter=endpoints.local_datacenter,
        hint=target.hint("Cassandra"),
        security=cassandra_security(target),
    )
    try:
        return cassandra.cluster_nodes(own)
    finally:
        cluster.shutdown()


def cluster_nodes(
    pipeline: Pipeline,
    target: Target,
    *,
    session: Any = None,
    offline: bool = False,
    members: Sequence[Member] | None = None,
) -> list[ClusterNode]:
    """The nodes whose agents serve `pipeline`, sorted by node id.

    ``spec.source.agent.nodes`` when given — each must be a member of the cluster (a
    `CassandraError` names it and the members otherwise) — else every member. ``offline``:
    the manifest's nodes as written, without asking Cassandra. ``session``: an open session
    to read the members with; ``members``: already read."""
    listed = pipeline.spec.source.agent.nodes
    if offline:
        if not listed:
            raise UsageError(
                f"pipeline {pipeline.name}: without Cassandra (--offline) the nodes must be "
                "listed in spec.source.agent.nodes",
                hint="list them, or drop --offline so cdcctl reads them from the cluster",
            )
        return sorted((ClusterNode(n) for n in listed), key=lambda c: c.id)
    if members is None:
        members = discover(pipeline, target, session=session)
    if not listed:
        port = _default_http_port(pipeline, target)
        found = [
            ClusterNode(
                AgentNode.model_validate(
                    {"address": m[0], "httpPort": port, "datacenter": m[1] or None}
                ),
                rack=m[2] or None,
                host_id=m[3] or None,
                release_version=m[4] or None,
                from_manifest=False,
            )
            for m in members
        ]
        check_unique_nodes(
            [c.node for c in found], f"pipeline {pipeline.name} (nodes read from the cluster)"
        )
        return sorted(found, key=lambda c: c.id)
    return sorted(
        (_match_member(pipeline, i, n, members) for i, n in enumerate(listed)),
        key=lambda c: c.id,
    )


def bundle_digests_for(pipeline: Pipeline, target: Target, session: Any = None) -> dict[str, str]:
    """{node id: bundle digest} of `pipeline`'s agents — what `plan` compares with what the
    last apply recorded. ``session``: an open Cassandra session of the pipeline's cluster."""
    nodes = cluster_nodes(pipeline, target, session=session)
    return bundle_digests(pipeline, [c.node for c in nodes])


def _default_http_port(pipeline: Pipeline, target: Target) -> int:
    # The local stack's managed agent listens on its own port (8001), not the agent's default.
    if pipeline.spec.source.agent.mode == "managed" and target.local is not None:
        return target.local.agent_http_port
    return DEFAULT_AGENT_HTTP_PORT


def _normalised(address: str) -> str | None:
    try:
        return AgentNode.model_validate({"address": address}).address
    except ValueError:
        return None


def _resolved(name: str) -> set[str]:
    """Addresses a host name resolves to from here (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return set()
    return {a for a in (_normalised(str(info[4][0])) for info in infos) if a}


def _match_member(
    pipeline: Pipeline, index: int, node: AgentNode, members: Sequence[Member]
) -> ClusterNode:
    by_address = {a: m for m in members if (a := _normalised(m[0]))}
    member = by_address.get(node.address)
    if member is None and not _is_ip(node.address):
        member = next(
            (by_address[a] for a in sorted(_resolved(node.address)) if a in by_address), None
        )
    if member is None:
        listing = ", ".join(f"{m[0]} ({m[1]})" for m in members) or "none"
        raise CassandraError(
            f"pipeline {pipeline.name}: spec.source.agent.nodes[{index}] {node.address} is not a "
            f"member of the Cassandra cluster; its members are: {listing}",
            hint="give the node's address as Cassandra reports it (rpc_address in "
            "system.local/system.peers_v2), remove it from spec.source.agent.nodes, or leave "
            "nodes empty to use every member",
        )
    if node.datacenter is not None and member[1] and node.datacenter != member[1]:
        raise CassandraError(
            f"pipeline {pipeline.name}: spec.source.agent.nodes[{index}] {node.address} is in "
            f"datacenter {member[1]!r}, not {node.datacenter!r}",
            hint="fix or remove its datacenter",
        )
    filled = (
        node
        if node.datacenter or not member[1]
        else node.model_copy(update={"datacenter": member[1]})
    )
    return ClusterNode(
        filled,
        rack=member[2] or None,
        host_id=member[3] or None,
        release_version=member[4] or None,
    )


def _is_ip(address: str) -> bool:
    return ":" in address or address.replace(".", "").isdigit()


# --- one agent per node, across pipelines ----------------------------------------------------


@dataclass
class _Agent:
    bundle: AgentBundle
    node: ClusterNode
    mode: str
    first: LoadedManifest
    pipelines: list[str]


def _agents(
    loaded: Sequence[LoadedManifest], target: Target, *, offline: bool
) -> tuple[dict[str, _Agent], list[str]]:
    """Every node's agent across `loaded`, checked to be one agent per node; and notes about
    the whole set (members without an agent)."""
    agents: dict[str, _Agent] = {}
    by_address: dict[str, str] = {}
    notes: list[str] = []
    cache: dict[tuple[tuple[str, ...], str], list[Member]] = {}
    for m in loaded:
        p = m.pipeline
        members: list[Member] | None = None
        if not offline:
            ends = endpoints_for(replace(target, connect_overridden=True), p)
            key = (ends.contact_points, ends.local_datacenter)
            if key not in cache:
                cache[key] = discover(p, target)
            members = cache[key]
        nodes = cluster_nodes(p, target, offline=offline, members=members)
        if members is not None and p.spec.source.agent.nodes:
            covered = {n.address for n in nodes}
            for addr in sorted({a for mm in members if (a := _normalised(mm[0]))} - covered):
                notes.append(
                    f"pipeline {p.name}: cluster member {addr} has no agent in "
                    "spec.source.agent.nodes (changes only it received are not captured)"
                )
        mode = p.spec.source.agent.mode
        for cn in nodes:
            bundle = render_bundle(p, cn.node)
            owner = by_address.setdefault(cn.address, cn.id)
            if owner != cn.id:
                raise ManifestError(
                    f"Cassandra node {cn.address} has node id {owner!r} in one pipeline and "
                    f"{cn.id!r} in pipeline {p.name}: two agents would read its cdc_raw",
                    location=m.location,
                    hint="give the node the same nodeId in every manifest (decision 0013)",
                )
            seen = agents.get(cn.id)
            if seen is None:
                agents[cn.id] = _Agent(bundle, cn, mode, m, [p.name])
                continue
            if seen.bundle.address != bundle.address:
                raise ManifestError(
                    f"node id {cn.id!r} names {seen.bundle.address} in pipeline "
                    f"{seen.first.pipeline.name} ({seen.first.location}) and {bundle.address} in "
                    f"pipeline {p.name}",
                    location=m.location,
                    hint="node ids are unique across every cluster rendered together; set nodeId",
                )
            if seen.mode != mode or seen.bundle.digest != bundle.digest:
                diffs = [f"mode: {seen.mode} vs {mode}"] if seen.mode != mode else []
                diffs += bundle_differences(seen.bundle, bundle)
                raise ManifestError(
                    f"pipelines {seen.first.pipeline.name} ({seen.first.location}) and {p.name} "
                    f"run on Cassandra node {cn.address} ({cn.id}) with different agent "
                    f"settings: {'; '.join(diffs[:6])}",
                    location=m.location,
                    hint="one agent serves every pipeline of a node (decision 0013): give them "
                    "the same spec.source.agent and spec.kafka settings",
                )
            seen.pipelines.append(p.name)
    return agents, notes


def _selected(agents: dict[str, _Agent], only: Iterable[str] | None) -> list[_Agent]:
    wanted = list(dict.fromkeys(only or ()))
    unknown = [n for n in wanted if n not in agents]
    if unknown:
        raise UsageError(
            f"no node {', '.join(map(repr, unknown))} in these pipelines; known node ids: "
            + (", ".join(sorted(agents)) or "none"),
            hint="use a node id from the list (see `cdcctl agent render` without --node)",
        )
    names = wanted or sorted(agents)
    return [agents[n] for n in names]


# --- render ----------------------------------------------------------------------------------


def render_bundles(
    loaded: Sequence[LoadedManifest],
    target: Target,
    out_dir: Path,
    only: Iterable[str] | None = None,
    *,
    offline: bool = False,
) -> list[BundleResult]:
    """Write ``<out_dir>/<node id>/<file>`` for every node (or those in `only`), atomically;
    agent.env 0600, the others 0644."""
    agents, notes = _agents(loaded, target, offline=offline)
    results: list[BundleResult] = []
    for agent in _selected(agents, only):
        bundle = agent.bundle
        directory = out_dir / bundle.node_id
        for name in BUNDLE_FILES:
            _write_atomic(directory / name, bundle.files[name], bundle.mode(name))
        mine = list(notes)
        if agent.mode == "managed":
            mine.insert(
                0,
                f"pipeline(s) {', '.join(agent.pipelines)} use spec.source.agent.mode managed "
                "(the local stack runs the agent): this bundle is for reference; set mode: "
                "external to run agents from bundles",
            )
        results.append(
            BundleResult(
                node_id=bundle.node_id,
                address=bundle.address,
                datacenter=agent.node.node.datacenter,
                directory=directory,
                files=BUNDLE_FILES,
                digest=bundle.digest,
                pipelines=tuple(agent.pipelines),
                mode=agent.mode,
                rollout=tuple(rollout_steps(bundle.install)),
                notes=tuple(mine),
            )
        )
    return results


def _write_atomic(path: Path, text: str, mode: int) -> None:
    """Write via a temporary file in the same directory and a rename: a reader (or a copy to
    the node) sees the old file or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise CdcError(
            f"cannot write the bundle into {path.parent}: {exc}", hint="check --out"
        ) from exc
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(tmp)
        raise CdcError(f"cannot write {path}: {exc}", hint="check --out") from exc


# --- status ----------------------------------------------------------------------------------


def agent_url(node: AgentNode) -> str:
    host = f"[{node.address}]" if ":" in node.address else node.address
    return f"http://{host}:{node.http_port}"


def agent_status(
    loaded: Sequence[LoadedManifest],
    target: Target,
    *,
    offline: bool = False,
    timeout: float = agent_health.DEFAULT_TIMEOUT,
    transport: agent_health.Transport | None = None,
) -> AgentStatusReport:
    """Ask every node's agent: /ping (reachable), /health (healthy, per component) and
    /buildinfo (version). Unreachable agents are reported, not raised (see `failure`)."""
    agents, _ = _agents(loaded, target, offline=offline)
    chosen = [agents[n] for n in sorted(agents)]
    if not chosen:
        return AgentStatusReport([])
    with ThreadPoolExecutor(max_workers=min(_MAX_PROBES, len(chosen))) as pool:
        found = list(pool.map(lambda a: _probe(a, timeout, transport), chosen))
    return AgentStatusReport(found)


def _probe(agent: _Agent, timeout: float, transport: agent_health.Transport | None) -> AgentStatus:
    node = agent.node.node
    status = AgentStatus(
        node_id=node.id,
        address=node.address,
        url=agent_url(node),
        pipelines=tuple(agent.pipelines),
        reachable=False,
    )
    with agent_health.AgentHttpClient(status.url, timeout=timeout, transport=transport) as client:
        try:
            client.ping()
        except ExternalServiceError as exc:
            return replace(status, error=exc.message)
        status = replace(status, reachable=True)
        errors: list[str] = []
        try:
            health = client.health()
            status = replace(status, healthy=health.healthy, components=dict(health.components))
        except ExternalServiceError as exc:
            errors.append(exc.message)
        try:
            build = client.build_info()
            status = replace(status, version=build.version, service=build.service_name)
        except ExternalServiceError as exc:
            errors.append(exc.message)
    return replace(status, error="; ".join(errors) or None)

"""cdc_raw usage per Cassandra node: measured on the node's host (the directory is local to it),
printed by `cdcctl cdc-raw usage`, served to Prometheus by `cdcctl cdc-raw export`
(decision 0105). The local stack runs the exporter for its nodes (stack service
``cdc-exporter``); in production it runs beside each node (or one per host for several)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controlplane.adapters import metrics_http, system
from controlplane.core.cdc_raw import (
    CdcRawConfig,
    CdcRawUsage,
    Gauge,
    parse_cassandra_yaml,
    usage,
    usage_gauges,
)
from controlplane.core.errors import UsageError


@dataclass(frozen=True)
class NodeSource:
    """Where one node's CDC settings come from: its cassandra.yaml (and, when the yaml does not
    set cdc_raw_directory, its storage dir)."""

    node: str
    cassandra_yaml: Path
    storagedir: Path | None = None


def load_config(src: NodeSource) -> CdcRawConfig:
    text = system.read_text_file(src.cassandra_yaml)
    try:
        return parse_cassandra_yaml(
            text, src.node, source=str(src.cassandra_yaml), storagedir=src.storagedir
        )
    except ValueError as exc:
        raise UsageError(str(exc), hint="give the node's own cassandra.yaml") from exc


def measure(sources: list[NodeSource]) -> list[CdcRawUsage]:
    """Each node's usage now. The yaml is read again every time: a restarted node with another
    cdc_total_space is measured against the new one."""
    out = []
    for src in sources:
        cfg = load_config(src)
        sizes = system.regular_file_sizes(cfg.cdc_raw_dir)
        out.append(usage(cfg, sizes, system.volume_bytes(cfg.cdc_raw_dir)))
    return out


def gauges(sources: list[NodeSource]) -> list[Gauge]:
    return usage_gauges(measure(sources))


def exposition(sources: list[NodeSource]) -> str:
    """The metrics text one scrape would get."""
    return metrics_http.exposition(lambda: gauges(sources))


def serve(
    sources: list[NodeSource], host: str, port: int, on_error: Callable[[Exception], None]
) -> metrics_http.MetricsServer:
    """Serve /metrics on host:port (a daemon thread); each scrape measures anew."""
    for src in sources:
        load_config(src)  # fail at start on a wrong path, not at the first scrape
    return metrics_http.serve(lambda: gauges(sources), host, port, on_error)


def local_sources(state_dir: Path | None) -> list[NodeSource]:
    """Every node of the local stack in `state_dir` (default .stack/ or $CDC_STACK_DIR)."""
    from controlplane.core.stack_model import instance_name, node_id
    from controlplane.services.stack_settings import settings_for

    s = settings_for(state_dir)
    lay = s.layout
    return [
        NodeSource(
            node_id(i), lay.cassandra_yaml(i), lay.service_dir(instance_name("cassandra", i))
        )
        for i in range(1, s.nodes + 1)
    ]


def sources_from_specs(specs: list[str]) -> list[NodeSource]:
    """``--node node1=/etc/cassandra/cassandra.yaml`` (repeatable) -> sources."""
    from controlplane.core.cdc_raw import parse_node_spec

    out: list[NodeSource] = []
    for spec in specs:
        try:
            name, path = parse_node_spec(spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        out.append(NodeSource(name, path))
    names = [s.node for s in out]
    if len(set(names)) != len(names):
        raise UsageError(f"a node is named twice in --node: {', '.join(names)}")
    return out

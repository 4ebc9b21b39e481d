"""cdc_raw usage of a Cassandra node, as Cassandra itself counts it. Pure: no I/O here.

Cassandra 5.0 exposes no metric for it (no MBean attribute or metric in cassandra-all 5.0.2
mentions CDC besides the ``cdc_block_writes`` / ``cdc_on_repair_enabled`` switches of
CommitLogMBean), yet it decides on it: ``CommitLogSegmentManagerCDC.CDCSizeTracker`` walks
``cdc_raw_directory`` and sums the sizes of the regular files in it (hard-linked segments and
their ``_cdc.idx``). When that sum plus one segment exceeds ``cdc_total_space`` a new segment is
FORBIDDEN for CDC: with ``cdc_block_writes: true`` writes to CDC tables are rejected
(``CDCWriteException``: "Rejecting mutation to keyspace …"), with ``false`` the oldest CDC
segments are deleted — changes the agent has not read yet are gone for it.

This module turns a node's cassandra.yaml into what to measure (`CdcRawConfig`) and a
directory listing into the figures (`CdcRawUsage`); the exporter (services.cdc_raw, served by
adapters.metrics_http) and `cdcctl cdc-raw usage` share it (decision 0105).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

MIB = 1 << 20
# Cassandra 5.0's defaults (Config.java / DatabaseDescriptor): cdc_total_space is the smaller of
# 4096 MiB and 1/8 of the cdc_raw volume when unset; commitlog_segment_size 32 MiB.
DEFAULT_CDC_TOTAL_SPACE_CAP = 4096 * MIB
DEFAULT_SEGMENT_SIZE = 32 * MIB
# The alert threshold (dashboards/alerts.yml CdcRawAlmostFull), here so `cdc-raw usage` says the
# same as the alert.
ALERT_RATIO = 0.8

# Cassandra's DataStorageSpec units (B, KiB, MiB, GiB) and the old *_in_mb keys.
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": MIB, "GiB": 1 << 30}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB)\s*$")


def parse_data_size(value: object, source: str = "cassandra.yaml") -> int:
    """``"1024MiB"`` -> bytes (Cassandra's DataStorageSpec units); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{source}: {value!r} is not a data size")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{source}: {value!r} is not a data size (like 1024MiB)")
    return int(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class CdcRawConfig:
    """What a node's cassandra.yaml says about CDC."""

    node: str
    cdc_raw_dir: Path
    # None: unset, Cassandra takes min(4 GiB, 1/8 of the volume) — `total_space` resolves it.
    total_space_bytes: int | None
    block_writes: bool
    segment_size_bytes: int
    cdc_enabled: bool

    def total_space(self, volume_bytes: int) -> int:
        """cdc_total_space as the node uses it (the default needs the volume's size)."""
        if self.total_space_bytes is not None:
            return self.total_space_bytes
        return min(DEFAULT_CDC_TOTAL_SPACE_CAP, volume_bytes // 8)


def parse_cassandra_yaml(
    text: str, node: str, *, source: str = "cassandra.yaml", storagedir: Path | None = None
) -> CdcRawConfig:
    """The CDC settings of one node; ValueError says what is wrong. ``storagedir``: the node's
    ``-Dcassandra.storagedir`` (where cdc_raw is when the yaml does not say)."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source} is not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{source} holds no settings")
    raw = doc.get("cdc_raw_directory")
    if raw:
        cdc_dir = Path(str(raw))
    elif storagedir is not None:
        cdc_dir = storagedir / "cdc_raw"
    else:
        raise ValueError(
            f"{source} sets no cdc_raw_directory (give the node's storage dir to find it)"
        )
    total: int | None = None
    if doc.get("cdc_total_space") is not None:
        total = parse_data_size(doc["cdc_total_space"], source)
    elif doc.get("cdc_total_space_in_mb") is not None:
        total = parse_data_size(doc["cdc_total_space_in_mb"], source) * MIB
    total = total or None  # 0 means unset to Cassandra too
    segment = DEFAULT_SEGMENT_SIZE
    if doc.get("commitlog_segment_size") is not None:
        segment = parse_data_size(doc["commitlog_segment_size"], source)
    elif doc.get("commitlog_segment_size_in_mb") is not None:
        segment = parse_data_size(doc["commitlog_segment_size_in_mb"], source) * MIB
    block = doc.get("cdc_block_writes", True)  # Cassandra's default is true
    if not isinstance(block, bool):
        raise ValueError(f"{source}: cdc_block_writes must be true or false, not {block!r}")
    return CdcRawConfig(
        node=node,
        cdc_raw_dir=cdc_dir,
        total_space_bytes=total,
        block_writes=block,
        segment_size_bytes=segment,
        cdc_enabled=bool(doc.get("cdc_enabled", False)),
    )


@dataclass(frozen=True)
class CdcRawUsage:
    """One node's cdc_raw as Cassandra counts it, at one moment."""

    node: str
    cdc_raw_dir: str
    bytes: int
    files: int
    total_space_bytes: int
    block_writes: bool
    segment_size_bytes: int

    @property
    def ratio(self) -> float:
        return self.bytes / self.total_space_bytes if self.total_space_bytes else 0.0

    @property
    def full(self) -> bool:
        """Cassandra's own test for a new segment: used + one segment > cdc_total_space."""
        return self.bytes + self.segment_size_bytes > self.total_space_bytes

    @property
    def state(self) -> str:
        if self.full:
            return "full: writes to CDC tables rejected" if self.block_writes else "full: dropping"
        return "alert" if self.ratio > ALERT_RATIO else "ok"

    def row(self) -> dict[str, object]:
        return {
            "node": self.node,
            "cdc_raw_bytes": self.bytes,
            "cdc_total_space_bytes": self.total_space_bytes,
            "used_percent": round(100 * self.ratio, 1),
            "files": self.files,
            "cdc_block_writes": self.block_writes,
            "state": self.state,
            "cdc_raw_dir": self.cdc_raw_dir,
        }


def usage(config: CdcRawConfig, file_sizes: list[int], volume_bytes: int) -> CdcRawUsage:
    """The figures from the sizes of the regular files in cdc_raw (what Cassandra's
    DirectorySizeCalculator sums) and the size of the volume holding it."""
    return CdcRawUsage(
        node=config.node,
        cdc_raw_dir=str(config.cdc_raw_dir),
        bytes=sum(file_sizes),
        files=len(file_sizes),
        total_space_bytes=config.total_space(volume_bytes),
        block_writes=config.block_writes,
        segment_size_bytes=config.segment_size_bytes,
    )


def parse_node_spec(spec: str) -> tuple[str, Path]:
    """``node1=/etc/cassandra/cassandra.yaml`` -> (``node1``, path); a bare path is ``node1``."""
    name, sep, path = spec.partition("=")
    if not sep:
        return "node1", Path(spec)
    if not name or not path:
        raise ValueError(f"{spec!r}: give NODE=PATH (e.g. node1=/etc/cassandra/cassandra.yaml)")
    return name, Path(path)


# --- as Prometheus metrics (served by adapters.metrics_http) ---------------------------------


@dataclass(frozen=True)
class Gauge:
    """One metric family: name, help and its samples (labels, value). Pure data: the adapter
    that serves metrics turns it into prometheus_client's families. ``kind`` "counter" marks a
    count that only grows (its name ends in ``_total``)."""

    name: str
    help: str
    label_names: tuple[str, ...]
    samples: tuple[tuple[tuple[str, ...], float], ...]
    kind: Literal["gauge", "counter"] = "gauge"


def usage_gauges(usages: list[CdcRawUsage]) -> list[Gauge]:
    """``cassandra_cdc_raw_bytes``, ``cassandra_cdc_total_space_bytes`` and
    ``cassandra_cdc_block_writes`` per node (label ``node``: the agent's cassandra.node.id)."""
    labels = ("node",)
    return [
        Gauge(
            "cassandra_cdc_raw_bytes",
            "Bytes in the node's cdc_raw directory, summed as Cassandra's CDC size tracker does.",
            labels,
            tuple(((u.node,), float(u.bytes)) for u in usages),
        ),
        Gauge(
            "cassandra_cdc_total_space_bytes",
            "The node's cdc_total_space: beyond it (less one segment) Cassandra rejects writes "
            "to CDC tables (cdc_block_writes: true) or drops the oldest CDC segments (false).",
            labels,
            tuple(((u.node,), float(u.total_space_bytes)) for u in usages),
        ),
        Gauge(
            "cassandra_cdc_block_writes",
            "1 when the node rejects writes to CDC tables once cdc_raw is full, 0 when it drops "
            "the oldest CDC segments instead.",
            labels,
            tuple(((u.node,), 1.0 if u.block_writes else 0.0) for u in usages),
        ),
    ]

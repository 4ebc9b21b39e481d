"""Prometheus metrics endpoints (prometheus_client): gauges computed at each scrape, and
counters a command increments while it runs.

The only place prometheus_client is used (an import-linter contract keeps it here). For gauges a
caller hands a function returning the families (pure data, ``core.cdc_raw.Gauge``); every scrape
calls it, so the figures are as fresh as the scrape: `cdcctl cdc-raw export` serves cdc_raw usage
with it. `Counters` is a set of labelled counters with its own registry: `cdcctl verify
--metrics-port` serves its run, range, row, retry and difference counts with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from controlplane.core.cdc_raw import Gauge
from controlplane.core.errors import CdcError, UsageError

Collect = Callable[[], Iterable[Gauge]]


class _Collector:
    def __init__(self, collect: Collect, on_error: Callable[[Exception], None]) -> None:
        self._collect = collect
        self._on_error = on_error

    def collect(self) -> Iterator[Metric]:
        try:
            gauges = list(self._collect())
        except CdcError as exc:
            # A scrape must still answer (the exporter's `up` stays 1); the caller logs it and
            # the missing series tell Prometheus (absent()).
            self._on_error(exc)
            return
        for g in gauges:
            family: GaugeMetricFamily | CounterMetricFamily
            if g.kind == "counter":
                family = CounterMetricFamily(g.name, g.help, labels=list(g.label_names))
            else:
                family = GaugeMetricFamily(g.name, g.help, labels=list(g.label_names))
            for labels, value in g.samples:
                family.add_metric(list(labels), value)
            yield family


def registry_of(collect: Collect, on_error: Callable[[Exception], None]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(collect, on_error))
    return registry


def exposition(collect: Collect) -> str:
    """The Prometheus text exposition of `collect()` now (tests, `--once`)."""
    errors: list[Exception] = []
    text = generate_latest(registry_of(collect, errors.append)).decode()
    if errors:
        raise errors[0]
    return text


class MetricsServer:
    """A running endpoint: its port (the one bound when 0 was asked for), and `close()`."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(
    collect: Collect, host: str, port: int, on_error: Callable[[Exception], None]
) -> MetricsServer:
    """Serve `/metrics` on host:port in a daemon thread (0: any free port)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry_of(collect, on_error))
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --listen address or stop what holds the port",
        ) from exc
    return MetricsServer(server, thread)


class Counters:
    """Labelled counters in one registry of their own (never the global one), served on demand."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def counter(self, name: str, help_text: str, labels: Sequence[str]) -> Counter:
        """A counter; ``.labels(*values).inc(n)`` counts (prometheus_client's Counter)."""
        return Counter(name, help_text, list(labels), registry=self.registry)

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve `/metrics` on host:port in a daemon thread for the life of the process."""
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --metrics-port or stop what holds the port",
            ) from exc
        return MetricsServer(server, thread)

"""The HTTP server of a Debezium Cassandra agent (Jetty inside the agent JVM, ``http.port``).

What it serves (debezium-connector-cassandra ``CassandraConnectorTaskTemplate.initHttpServer``,
3.2.0.Final to 3.7; Dropwizard metrics-servlets):

    GET /ping        200 "pong"                               (PingServlet)
    GET /health      200 all healthy, 500 otherwise; JSON      (HealthCheckServlet)
                     {"cassandra-cdc-health-check": {"healthy": bool, "message": "<json>"}},
                     message = {"...CassandraClient": bool, "...ProcessorGroup": bool}
    GET /buildinfo   {"version": "3.4.1.Final", "service_name": "Debezium Connector for ..."}
    GET /metrics     Dropwizard registry: only the java driver's metrics (none by default)

The server starts after the agent's processors did, so an answer means the agent is up. There
is no last-event time over HTTP (the streaming metrics are JMX only). httpx errors become
`ExternalServiceError` in one place, `_mapped`. One seam: ``transport`` (httpx.MockTransport).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from controlplane.core.errors import ExternalServiceError

DEFAULT_TIMEOUT = 3.0
HEALTH_CHECK_NAME = "cassandra-cdc-health-check"

Transport = httpx.BaseTransport
"""The test seam's type (httpx.MockTransport), so callers need not import httpx."""


@dataclass(frozen=True)
class Health:
    """``GET /health``: overall verdict and each component's (short class name -> ok)."""

    healthy: bool
    components: dict[str, bool] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildInfo:
    version: str | None
    service_name: str | None


class AgentHttpClient:
    """One agent's HTTP server, e.g. ``http://10.0.0.1:8000``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        hint: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._hint = hint or (
            "is the agent running on that node (`systemctl status cass-cdc-pg-agent`) and its "
            "http.port reachable from here?"
        )
        self._http = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentHttpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def ping(self) -> str:
        """``GET /ping``: the body ("pong") when the agent answers."""
        return self._get("/ping", ok=(200,)).text.strip()

    def health(self) -> Health:
        """``GET /health``: 200 and 500 both carry the checks; anything else is an error."""
        response = self._get("/health", ok=(200, 500))
        body = self._json(response, "/health")
        if not isinstance(body, dict):
            raise self._error(f"/health answered {body!r}, not a JSON object")
        return parse_health(body, status=response.status_code)

    def build_info(self) -> BuildInfo:
        """``GET /buildinfo``: the agent's version (None when its jar has no manifest entry)."""
        body = self._json(self._get("/buildinfo", ok=(200,)), "/buildinfo")
        if not isinstance(body, dict):
            raise self._error(f"/buildinfo answered {body!r}, not a JSON object")
        version, name = body.get("version"), body.get("service_name")
        return BuildInfo(
            version=str(version) if version else None, service_name=str(name) if name else None
        )

    # -- plumbing --

    def _get(self, path: str, *, ok: tuple[int, ...]) -> httpx.Response:
        with _mapped(self.base_url + path, self._hint):
            response = self._http.get(path)
        if response.status_code not in ok:
            raise self._error(
                f"the agent at {self.base_url} answered {response.status_code} to GET {path}: "
                f"{response.text.strip()[:200] or '(no body)'}"
            )
        return response

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise self._error(
                f"the agent at {self.base_url} answered GET {path} with non-JSON: "
                f"{response.text.strip()[:200]!r}"
            ) from exc

    def _error(self, message: str) -> ExternalServiceError:
        return ExternalServiceError(message, hint=self._hint)


def parse_health(body: dict[str, Any], *, status: int = 200) -> Health:
    """The verdict of a HealthCheckServlet body; components from the check's JSON message."""
    checks = [v for v in body.values() if isinstance(v, dict)]
    healthy = status == 200 and bool(checks) and all(c.get("healthy") is True for c in checks)
    components: dict[str, bool] = {}
    for check in checks:
        try:
            message = json.loads(str(check.get("message") or "{}"))
        except ValueError:
            continue
        if isinstance(message, dict):
            for name, ok in message.items():
                components[str(name).rsplit(".", 1)[-1].rsplit("$", 1)[-1]] = ok is True
    return Health(healthy=healthy, components=components, raw=body)


@contextlib.contextmanager
def _mapped(url: str, hint: str) -> Iterator[None]:
    """httpx transport errors -> `ExternalServiceError` naming the URL (httpx's own
    ``map_exceptions`` idea: one place, the most specific wording, ``from exc``)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ExternalServiceError(
            f"the agent at {url} did not answer in time ({type(exc).__name__})", hint=hint
        ) from exc
    except httpx.ConnectError as exc:
        raise ExternalServiceError(
            f"cannot connect to the agent at {url}: {exc or type(exc).__name__}", hint=hint
        ) from exc
    except httpx.HTTPError as exc:
        raise ExternalServiceError(
            f"GET {url} failed: {type(exc).__name__}: {exc}", hint=hint
        ) from exc

"""Kafka Connect REST client: one method per endpoint, typed results, retries, one error type.

Built on httpx with a single seam, ``transport``: tests pass ``httpx.MockTransport``. Every call
has a timeout. Answers that mean "try again shortly" — 409 (rebalance in progress, stale config,
no known leader) and the same messages under other statuses — are retried with exponential
backoff and full jitter until a total deadline; connection failures are retried a few times only,
so a Connect that is not running is reported quickly. Everything that goes wrong leaves this
module as `ConnectError` / `ConnectConflictError` carrying the status, the method and URL, the
message Connect gave, and a hint.

Endpoints and the Kafka version that added them are listed in notes/control-plane.md.
"""

from __future__ import annotations

import random
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controlplane.core.errors import ConnectConflictError, ConnectError

DEFAULT_URL = "http://127.0.0.1:8083"
_STATUS_HINT = (
    "is it running and reachable from here? (the target's connect.url: "
    "`cdcctl config get-contexts`)"
)
# Connect's words for "the cluster is between states, retry" (DistributedHerder,
# HerderRequestHandler): "a rebalance is expected", "no known leader URL ... rebalance was
# underway", "stale configuration".
_RETRYABLE_MESSAGE = re.compile(
    r"rebalanc|no known leader|leader is not known|stale configuration|conflicting operation",
    re.IGNORECASE,
)


# --- results -------------------------------------------------------------------------------


class _Result(BaseModel):
    # New fields in future Connect versions must not break us.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ServerInfo(_Result):
    version: str
    commit: str = ""
    kafka_cluster_id: str = ""


class Health(_Result):
    status: str
    message: str = ""

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"


class TaskId(_Result):
    connector: str
    task: int


class ConnectorInfo(_Result):
    name: str
    config: dict[str, str] = Field(default_factory=dict)
    tasks: list[TaskId] = Field(default_factory=list)
    type: str | None = None


class WorkerState(_Result):
    state: str
    worker_id: str = ""
    trace: str | None = None


class TaskState(WorkerState):
    id: int


class ConnectorStatus(_Result):
    name: str
    connector: WorkerState
    tasks: list[TaskState] = Field(default_factory=list)
    type: str | None = None

    @property
    def failed_tasks(self) -> list[TaskState]:
        return [t for t in self.tasks if t.state == "FAILED"]

    @property
    def healthy(self) -> bool:
        return self.connector.state == "RUNNING" and all(t.state == "RUNNING" for t in self.tasks)


class ConnectorListing(_Result):
    """One entry of ``GET /connectors?expand=status&expand=info``."""

    status: ConnectorStatus | None = None
    info: ConnectorInfo | None = None


class PluginInfo(_Result):
    class_name: str = Field(alias="class")
    type: str
    version: str = ""


class Offset(_Result):
    partition: dict[str, Any]
    offset: dict[str, Any] | None


class ConfigValidation(_Result):
    """``PUT /connector-plugins/{plugin}/config/validate``, reduced to what callers use."""

    name: str
    error_count: int
    errors: dict[str, list[str]] = Field(default_factory=dict)
    values: dict[str, str | None] = Field(default_factory=dict)
    """Each key's value as the workers see it (after their config providers; passwords hidden)."""

    @classmethod
    def from_response(cls, body: Mapping[str, Any]) -> ConfigValidation:
        errors: dict[str, list[str]] = {}
        values: dict[str, str | None] = {}
        for item in body.get("configs", []):
            value = item.get("value", {})
            name = str(value.get("name"))
            raw = value.get("value")
            values[name] = None if raw is None else str(raw)
            if value.get("errors"):
                errors[name] = [str(e) for e in value["errors"]]
        return cls(
            name=body.get("name", ""),
            error_count=body.get("error_count", 0),
            errors=errors,
            values=values,
        )


_ModelT = TypeVar("_ModelT", bound=_Result)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a total deadline."""

    deadline: float = 30.0
    """Seconds after the first attempt when no further retry starts."""
    initial_delay: float = 0.1
    max_delay: float = 5.0
    multiplier: float = 2.0
    connection_attempts: int = 3
    """Attempts when the server cannot be reached at all (then report it is down)."""

    def delay(self, attempt: int, rand: Callable[[], float]) -> float:
        """Sleep before retry number `attempt` (1-based): uniform in [0, capped exponential]."""
        cap = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return cap * rand()


# --- client --------------------------------------------------------------------------------


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    """Trust exactly this CA bundle (host names still checked)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectError(
            f"cannot load the CA bundle {ca_file} for Kafka Connect: {exc}",
            hint="give a PEM file of the CA that signed Connect's certificate",
        ) from exc


def _path(*parts: str) -> str:
    # Connector names may hold '/', spaces, etc.: each path segment is percent-encoded.
    return "/" + "/".join(quote(p, safe="") for p in parts)


class ConnectClient:
    """Synchronous client for one Kafka Connect cluster."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        ca_file: str | None = None,
        auth: tuple[str, str] | None = None,
        hint: str = _STATUS_HINT,
    ) -> None:
        """``ca_file``: PEM CA to verify an https URL with (else the system's); ``auth``: basic
        auth (user, password); ``hint``: what to check when the cluster does not answer."""
        self.base_url = base_url.rstrip("/")
        self._hint = hint
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json"},
            verify=_ssl_context(ca_file) if ca_file else True,
            auth=httpx.BasicAuth(*auth) if auth else None,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing --

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | list[str]] | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Send with retries; return a response whose status is in `ok`, or raise."""
        url = f"{self.base_url}{path}"
        started = self._clock()
        attempt = 0
        connection_failures = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, params=params, json=json)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                connection_failures += 1
                if connection_failures >= self.retry.connection_attempts or not self._wait(
                    attempt, started
                ):
                    raise self._unreachable(method, url, exc) from exc
                continue
            if response.status_code in ok:
                return response
            message = _error_message(response)
            retryable = response.status_code == 409 or bool(_RETRYABLE_MESSAGE.search(message))
            if retryable and self._wait(attempt, started):
                continue
            raise self._failure(method, url, response.status_code, message, retryable, attempt)

    def _wait(self, attempt: int, started: float) -> bool:
        """Sleep before the next attempt; False when that would pass the deadline."""
        delay = self.retry.delay(attempt, self._rand)
        if self._clock() + delay - started > self.retry.deadline:
            return False
        self._sleep(delay)
        return True

    def _unreachable(self, method: str, url: str, exc: Exception) -> ConnectError:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
        tls = "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in type(exc).__name__
        return ConnectError(
            f"Couldn't connect to Kafka Connect at {self.base_url}: {method} {url} {kind} "
            f"({type(exc).__name__}: {exc})",
            hint="its TLS certificate was not trusted: give the CA that signed it "
            "(connect.caFile of the context)"
            if tls
            else self._hint,
        )

    def _failure(
        self, method: str, url: str, status: int, message: str, retryable: bool, attempts: int
    ) -> ConnectError:
        text = f"Kafka Connect answered {status} to {method} {url}: {message or '(no message)'}"
        if retryable:
            return ConnectConflictError(
                f"{text} (still after {attempts} attempts over {self.retry.deadline:g}s)",
                status=status,
                hint="the Connect cluster is rebalancing; wait and retry, and check that its "
                "workers are up",
            )
        hints = {
            401: "Kafka Connect wants credentials: set connect.username/passwordSecret of the "
            "context (`cdcctl config set-context`), and check them",
            403: "these Connect credentials may not do this",
            400: "the request was rejected as invalid; check the rendered config "
            "(`cdcctl plan`) and the plugin's validation (`cdcctl validate`)",
            404: "no such connector or plugin; list them with `cdcctl get`",
            500: "Connect failed internally; its worker log says why (`cdcctl stack logs connect`)",
        }
        return ConnectError(text, status=status, hint=hints.get(status, self._hint))

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectError(
                f"Kafka Connect at {self.base_url} returned non-JSON to "
                f"{response.request.method} {response.request.url}: {response.text[:200]!r}",
                status=response.status_code,
                hint=f"is {self.base_url} really a Kafka Connect REST endpoint?",
            ) from exc

    def _model(self, model: type[_ModelT], response: httpx.Response) -> _ModelT:
        body = self._json(response)
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise ConnectError(
                f"unexpected answer from Kafka Connect to {response.request.method} "
                f"{response.request.url}: {exc.errors()[0]['msg']}",
                status=response.status_code,
                hint="this Connect version may be unsupported",
            ) from exc

    # -- cluster --

    def root(self) -> ServerInfo:
        """``GET /``: worker version and Kafka cluster id."""
        return self._model(ServerInfo, self._request("GET", "/"))

    def health(self) -> Health:
        """``GET /health`` (Kafka 3.9+): 200 healthy, 503 starting, 500 unhealthy."""
        response = self._request("GET", "/health", ok=(200, 500, 503))
        return self._model(Health, response)

    def list_plugins(self, *, connectors_only: bool = True) -> list[PluginInfo]:
        """``GET /connector-plugins``."""
        params = {"connectorsOnly": "true" if connectors_only else "false"}
        body = self._json(self._request("GET", "/connector-plugins", params=params))
        return [PluginInfo.model_validate(p) for p in body]

    def validate_config(self, plugin: str, config: Mapping[str, str]) -> ConfigValidation:
        """``PUT /connector-plugins/{plugin}/config/validate``: per-key errors, nothing created."""
        response = self._request(
            "PUT", _path("connector-plugins", plugin, "config", "validate"), json=dict(config)
        )
        return ConfigValidation.from_response(self._json(response))

    # -- connectors --

    def connector_names(self) -> list[str]:
        """``GET /connectors``."""
        return [str(n) for n in self._json(self._request("GET", "/connectors"))]

    def list_connectors(
        self, *, expand: tuple[Literal["status", "info"], ...] = ("status", "info")
    ) -> dict[str, ConnectorListing]:
        """``GET /connectors?expand=status&expand=info``."""
        body = self._json(self._request("GET", "/connectors", params={"expand": list(expand)}))
        if isinstance(body, list):  # no expand: Connect answers with bare names
            return {str(name): ConnectorListing() for name in body}
        return {name: ConnectorListing.model_validate(entry) for name, entry in body.items()}

    def get_connector(self, name: str) -> ConnectorInfo:
        """``GET /connectors/{name}``."""
        return self._model(ConnectorInfo, self._request("GET", _path("connectors", name)))

    def get_config(self, name: str) -> dict[str, str]:
        """``GET /connectors/{name}/config``: the raw config, placeholders unresolved."""
        body = self._json(self._request("GET", _path("connectors", name, "config")))
        return {str(k): str(v) for k, v in body.items()}

    def find_config(self, name: str) -> dict[str, str] | None:
        """Like `get_config`, but None when the connector does not exist."""
        try:
            return self.get_config(name)
        except ConnectError as exc:
            if exc.status == 404:
                return None
            raise

    def put_config(self, name: str, config: Mapping[str, str]) -> tuple[ConnectorInfo, bool]:
        """``PUT /connectors/{name}/config``: create or replace. Returns (info, created)."""
        response = self._request(
            "PUT", _path("connectors", name, "config"), json=dict(config), ok=(200, 201)
        )
        return self._model(ConnectorInfo, response), response.status_code == 201

    def patch_config(self, name: str, changes: Mapping[str, str | None]) -> ConnectorInfo:
        """``PATCH /connectors/{name}/config`` (Kafka 3.8+): a null value removes the key."""
        response = self._request("PATCH", _path("connectors", name, "config"), json=dict(changes))
        return self._model(ConnectorInfo, response)

    def delete_connector(self, name: str) -> None:
        """``DELETE /connectors/{name}``."""
        self._request("DELETE", _path("connectors", name), ok=(200, 204))

    def status(self, name: str) -> ConnectorStatus:
        """``GET /connectors/{name}/status``."""
        return self._model(
            ConnectorStatus, self._request("GET", _path("connectors", name, "status"))
        )

    def find_status(self, name: str) -> ConnectorStatus | None:
        """Like `status`, but None while Connect has no status for the connector: it does not
        exist, or it was just created and no worker has started it yet."""
        try:
            return self.status(name)
        except ConnectError as exc:
            if exc.status == 404:
                return None
            raise

    def restart(
        self, name: str, *, include_tasks: bool = False, only_failed: bool = False
    ) -> ConnectorStatus | None:
        """``POST /connectors/{name}/restart`` (KIP-745). Returns the RESTARTING plan if any."""
        params = {
            "includeTasks": "true" if include_tasks else "false",
            "onlyFailed": "true" if only_failed else "false",
        }
        response = self._request(
            "POST", _path("connectors", name, "restart"), params=params, ok=(200, 202, 204)
        )
        if response.status_code == 204 or not response.content:
            return None
        return self._model(ConnectorStatus, response)

    def restart_task(self, name: str, task: int) -> None:
        """``POST /connectors/{name}/tasks/{task}/restart``."""
        self._request(
            "POST", _path("connectors", name, "tasks", str(task), "restart"), ok=(200, 202, 204)
        )

    def pause(self, name: str) -> None:
        """``PUT /connectors/{name}/pause``."""
        self._request("PUT", _path("connectors", name, "pause"), ok=(200, 202, 204))

    def resume(self, name: str) -> None:
        """``PUT /connectors/{name}/resume``."""
        self._request("PUT", _path("connectors", name, "resume"), ok=(200, 202, 204))

    def stop(self, name: str) -> None:
        """``PUT /connectors/{name}/stop`` (Kafka 3.5+): tasks shut down, offsets may be edited."""
        self._request("PUT", _path("connectors", name, "stop"), ok=(200, 202, 204))

    def topics(self, name: str) -> list[str]:
        """``GET /connectors/{name}/topics`` (KIP-558): topics the connector has used."""
        body = self._json(self._request("GET", _path("connectors", name, "topics")))
        return [str(t) for t in body.get(name, {}).get("topics", [])]

    def reset_topics(self, name: str) -> None:
        """``PUT /connectors/{name}/topics/reset``."""
        self._request("PUT", _path("connectors", name, "topics", "reset"), ok=(200, 202, 204))

    # -- offsets (KIP-875) --

    def get_offsets(self, name: str) -> list[Offset]:
        """``GET /connectors/{name}/offsets`` (Kafka 3.5+)."""
        body = self._json(self._request("GET", _path("connectors", name, "offsets")))
        return [Offset.model_validate(o) for o in body.get("offsets", [])]

    def alter_offsets(self, name: str, offsets: list[Offset]) -> str:
        """``PATCH /connectors/{name}/offsets`` (3.6+; the connector must be STOPPED)."""
        payload = {"offsets": [o.model_dump() for o in offsets]}
        response = self._request("PATCH", _path("connectors", name, "offsets"), json=payload)
        return str(self._json(response).get("message", ""))

    def reset_offsets(self, name: str) -> str:
        """``DELETE /connectors/{name}/offsets`` (3.6+; the connector must be STOPPED)."""
        response = self._request("DELETE", _path("connectors", name, "offsets"))
        return str(self._json(response).get("message", ""))


def _error_message(response: httpx.Response) -> str:
    """Connect's error body is ``{"error_code": n, "message": "..."}``; fall back to text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip()[:500]

"""`cdcctl reconcile [--watch]`: keep the running pipelines as their manifests say.

One reconcile, under a Redis lease (so two reconcilers never act at once):
1. plan + apply exactly as `cdcctl apply` does — a connector config edited by hand through REST
   shows up as an update and is restored (drift correction, logged with the keys that differed);
2. restart failed connectors and tasks (``restart?includeTasks=true&onlyFailed=true``) with
   Strimzi's backoff, min(n² + n, 60) minutes after the n-th restart, counted per connector in
   Redis and reset once the connector has been stable for a while.

Each pass is traced as ``reconcile.pass`` (with the plan's and apply's spans inside it); under
``--watch`` every pass is a trace of its own, linked to the command's span.

Everything it does is logged through structlog; the CLI configures where and how, for every
command in one place (cli.logs: JSON lines or text on stderr, run_id, secrets masked).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from controlplane.adapters import tracing
from controlplane.adapters.connect import ConnectClient
from controlplane.adapters.redis_store import HashStore, Lease
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.plan import backoff_should_reset, restart_backoff_minutes, restart_due
from controlplane.core.target import ConnectAccess, RedisEndpoint, Target
from controlplane.services.apply import AgentRuntime, build_plan, execute_plan
from controlplane.services.targets import connect_client

LEASE_KEY = "cdcctl:reconcile:lease"
RESTARTS_PREFIX = "cdcctl:reconcile:restarts:"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class RestartStore(Protocol):
    def get(self, name: str) -> dict[str, str]: ...
    def put(self, name: str, values: Mapping[str, str]) -> None: ...
    def delete(self, name: str) -> None: ...


@dataclass
class Outcome:
    acted: bool
    owner: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    restarts: list[dict[str, Any]] = field(default_factory=list)
    stopped: list[dict[str, str]] = field(default_factory=list)  # tables stopped (0050)


def restart_failed(
    client: ConnectClient,
    connectors: Iterable[str],
    store: RestartStore,
    *,
    now: float,
    log: Any,
    stable_s: float = 600.0,
) -> list[dict[str, Any]]:
    """Restart failed connectors/tasks when their Strimzi backoff allows; reset stable ones."""
    done: list[dict[str, Any]] = []
    for name in connectors:
        status = client.status(name)
        failed = status.connector.state == "FAILED" or bool(status.failed_tasks)
        state = store.get(name)
        restarts = int(state.get("restarts", "0"))
        last = float(state["last_restart"]) if "last_restart" in state else None
        if not failed:
            if backoff_should_reset(restarts, last, now, stable_s=stable_s):
                store.delete(name)
                log.info("restart_counter_reset", connector=name, restarts=restarts)
            continue
        if not restart_due(restarts, last, now):
            wait = restart_backoff_minutes(restarts) * 60 - (now - (last or now))
            log.info("restart_backoff", connector=name, restarts=restarts, wait_s=round(wait))
            continue
        client.restart(name, include_tasks=True, only_failed=True)
        store.put(name, {"restarts": str(restarts + 1), "last_restart": f"{now:.3f}"})
        entry = {
            "connector": name,
            "attempt": restarts + 1,
            "failed_tasks": [t.id for t in status.failed_tasks],
            "connector_failed": status.connector.state == "FAILED",
            "next_backoff_min": restart_backoff_minutes(restarts + 1),
        }
        log.warning("connector_restarted", **entry)
        done.append(entry)
    return done


class Reconciler:
    def __init__(
        self,
        paths: list[str],
        target: Target,
        *,
        agents: AgentRuntime | None = None,
        redis_url: str | RedisEndpoint = DEFAULT_REDIS_URL,
        lease_ttl_s: float = 60.0,
        prune: bool = False,
        prune_match: str = "*",
        clock: Callable[[], float] = time.time,
        lease_key: str = LEASE_KEY,
    ) -> None:
        self.paths = paths
        self.agents = agents
        self.prune = prune
        self.prune_match = prune_match
        self.target = target
        self.clock = clock
        self.lease = Lease(redis_url, lease_key, int(lease_ttl_s * 1000))
        self.store = HashStore(redis_url, RESTARTS_PREFIX)
        self.log = structlog.get_logger("cdcctl.reconcile").bind(owner=self.lease.token)
        self._watching = False

    def once(self) -> Outcome:
        with tracing.span("reconcile.pass", new_trace=self._watching) as span:
            outcome = self._once()
            span.set(
                acted=outcome.acted,
                changes=len(outcome.changes),
                restarts=len(outcome.restarts),
                stopped=len(outcome.stopped),
            )
            return outcome

    def _once(self) -> Outcome:
        if not self.lease.acquire():
            self.log.info("lease_busy", holder=self.lease.holder())
            return Outcome(False, self.lease.token)
        started = time.monotonic()
        self.log.info("reconcile_start")
        loaded = load_manifests(self.paths)
        planned = build_plan(
            loaded,
            self.target,
            agents=self.agents,
            prune=self.prune,
            prune_match=self.prune_match,
        )
        for c in planned.plan.pending:
            if c.kind == "connector" and c.action == "update":
                self.log.warning(
                    "drift_corrected",
                    connector=c.name,
                    pipeline=c.pipeline,
                    fields=[
                        {"key": f.key, "actual": f.before, "desired": f.after} for f in c.fields
                    ],
                )
        for st in planned.plan.stopped:
            # logged every pass while it lasts: a stopped table needs a human (decision 0050)
            self.log.error("table_stopped", pipeline=st.pipeline, table=st.table, reason=st.reason)
        result = execute_plan(planned, self.agents)
        outcome = Outcome(True, self.lease.token)
        outcome.stopped = [
            {"pipeline": st.pipeline, "table": st.table, "reason": st.reason}
            for st in planned.plan.stopped
        ]
        for ch in result.changes:
            if ch.action != "unchanged":
                entry = {
                    "pipeline": ch.pipeline,
                    "kind": ch.kind,
                    "name": ch.name,
                    "action": ch.action,
                }
                outcome.changes.append(entry)
                self.log.info("change_applied", **entry)
        by_url: dict[str, tuple[ConnectAccess, list[str]]] = {}
        for d in planned.pipelines.values():
            by_url.setdefault(d.connect.url, (d.connect, []))[1].append(d.rendered.sink_name)
        for access, names in by_url.values():
            with connect_client(access, self.target) as client:
                outcome.restarts += restart_failed(
                    client, names, self.store, now=self.clock(), log=self.log
                )
        self.log.info(
            "reconcile_done",
            changes=len(outcome.changes),
            restarts=len(outcome.restarts),
            seconds=round(time.monotonic() - started, 3),
        )
        return outcome

    def watch(self, interval_s: float, *, iterations: int | None = None) -> None:
        n = 0
        self._watching = True
        try:
            while iterations is None or n < iterations:
                n += 1
                try:
                    self.once()
                except Exception as exc:  # one failed round must not end the watch
                    self.log.error("reconcile_failed", error=str(exc), type=type(exc).__name__)
                end = time.monotonic() + interval_s
                while time.monotonic() < end:
                    time.sleep(min(1.0, max(end - time.monotonic(), 0)))
                    if self.lease.held:
                        self.lease.extend()
        finally:
            if self.lease.held:
                self.lease.release()
                self.log.info("lease_released")


def paths_of(filenames: Iterable[str]) -> list[str]:
    return [str(Path(f)) if f != "-" else f for f in filenames]

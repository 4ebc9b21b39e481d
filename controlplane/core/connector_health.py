"""Whether a Kafka Connect connector is healthy, in words a reader cannot miss: "1 of 2 tasks
FAILED". Pure: takes the states Connect reported (connector state, per task: id, state, worker,
trace), returns the summary `get`/`describe` print and the failures they list. A FAILED
connector or task makes those commands exit `FailedStateError.exit_code` (9).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FAILED = "FAILED"


def first_line(trace: str | None) -> str | None:
    """The first non-empty line of a Java stack trace (the exception and its message)."""
    for line in (trace or "").splitlines():
        if line.strip():
            return line.strip()
    return None


@dataclass(frozen=True)
class Failure:
    """One FAILED thing: the connector itself (``task`` None) or one of its tasks."""

    connector: str
    task: int | None
    worker: str
    error: str | None  # the first line of its trace

    @property
    def what(self) -> str:
        return f"{self.connector} task {self.task}" if self.task is not None else self.connector

    def as_dict(self) -> dict[str, object]:
        return {
            "connector": self.connector,
            "task": self.task,
            "worker": self.worker,
            "error": self.error,
        }


@dataclass(frozen=True)
class Health:
    connector: str
    state: str | None
    task_states: tuple[str, ...]  # by task id
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    @property
    def tasks(self) -> int:
        return len(self.task_states)

    @property
    def tasks_failed(self) -> int:
        return self.task_states.count(FAILED)

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def summary(self) -> str:
        """``1 of 2 tasks FAILED``; ``connector FAILED, ...`` when the connector itself failed;
        ``2 of 2 tasks RUNNING`` (each state counted) when none did."""
        parts: list[str] = []
        if self.state == FAILED:
            parts.append("connector FAILED")
        if self.tasks_failed:
            parts.append(f"{self.tasks_failed} of {self.tasks} tasks FAILED")
        if parts:
            return ", ".join(parts)
        if not self.tasks:
            return f"connector {self.state or 'UNKNOWN'}, no tasks"
        states = sorted(set(self.task_states))
        return ", ".join(f"{self.task_states.count(s)} of {self.tasks} tasks {s}" for s in states)


def health(
    connector: str,
    state: str | None,
    worker: str,
    trace: str | None,
    tasks: Sequence[tuple[int, str, str, str | None]],
) -> Health:
    """`Health` of one connector from Connect's status: ``tasks`` as (id, state, worker, trace)."""
    failures: list[Failure] = []
    if state == FAILED:
        failures.append(Failure(connector, None, worker, first_line(trace)))
    failed_tasks = [t for t in sorted(tasks) if t[1] == FAILED]
    failures += [Failure(connector, t[0], t[2], first_line(t[3])) for t in failed_tasks]
    states = tuple(t[1] for t in sorted(tasks))
    return Health(connector, state, states, tuple(failures))


def failure_message(healths: Iterable[Health]) -> str | None:
    """One line naming every failed connector/task with its worker and error, or None."""
    failed = [h for h in healths if h.failed]
    if not failed:
        return None
    items = [
        f"{f.what} on {f.worker or '?'}: {f.error or 'no trace'}"
        for h in failed
        for f in h.failures
    ]
    names = ", ".join(f"{h.connector} ({h.summary})" for h in failed)
    return f"{names} — " + "; ".join(items)

"""The plan: a pure diff of desired against actual, which `apply` then carries out exactly.

Services gather the actual state (connector configs from Connect, which PostgreSQL objects exist,
which topics exist, the agent's files) and the desired state (rendered from manifests); the
functions here compare them and return `ResourceChange`s. Nothing here does I/O, so every rule —
Strimzi-style normalisation, what is ignored, what may be pruned — is unit-tested without servers.

Actions: ``create`` (+), ``update`` (~), ``delete`` (-), ``noop`` (=).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from controlplane.core.render import OWNER_KEY, OWNER_VALUE, PIPELINE_KEY, normalise_config

Action = Literal["create", "update", "delete", "noop"]
Kind = Literal["connector", "postgres", "topic", "secret", "agent", "agent-bundle", "cassandra"]

SYMBOLS: dict[str, str] = {"create": "+", "update": "~", "delete": "-", "noop": "="}

# Keys Kafka Connect adds to (or always returns in) a stored config that a manifest never sets.
CONNECT_ADDED_KEYS = frozenset({"name"})
# Agent properties that name the agent after whichever pipeline wrote them first. One agent
# serves a node for every pipeline (decision 0013), so they are not a difference.
AGENT_IDENTITY_KEYS = frozenset({"connector.name"})
SECRET_MASK = "(secret)"  # noqa: S105  # nosec B105 - a mask shown instead of values
DDL_HASH_PREFIX = "cdcctl:ddl-sha256="

_CREATE_OBJECT = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+)?"
    r"(?P<kind>TABLE|VIEW|FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>(?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w$]*)(?:\.(?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w$]*))?)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FieldChange:
    """One key that differs; values of secret keys are masked."""

    key: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class ResourceChange:
    pipeline: str
    kind: Kind
    name: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fields"] = [asdict(f) for f in self.fields]
        return out


@dataclass(frozen=True)
class StoppedTable:
    """A table whose Cassandra schema changed incompatibly (decision 0050): its PostgreSQL tables
    are left alone and its topic stays out of the sink until they are rebuilt."""

    pipeline: str
    table: str  # keyspace.table
    reason: str


@dataclass
class Plan:
    changes: list[ResourceChange] = field(default_factory=list)
    stopped: list[StoppedTable] = field(default_factory=list)

    @property
    def pending(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.action != "noop"]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def of(self, pipeline: str, kind: Kind) -> list[ResourceChange]:
        return [c for c in self.changes if c.pipeline == pipeline and c.kind == kind]

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0, "noop": 0}
        for c in self.changes:
            counts[c.action] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "changes": [c.to_dict() for c in self.changes],
            "stopped": [asdict(s) for s in self.stopped],
        }

    def lines(self, *, show_noop: bool = False) -> list[str]:
        """Terraform-like text: one line per resource, indented key lines under updates; a
        ``!`` line per stopped table first."""
        out = [f"! stop table {s.table} [{s.pipeline}]  ({s.reason})" for s in self.stopped]
        for c in self.changes:
            if c.action == "noop" and not show_noop:
                continue
            reason = f"  ({c.reason})" if c.reason else ""
            out.append(f"{c.symbol} {c.kind} {c.name} [{c.pipeline}]{reason}")
            for f in c.fields:
                if f.before is None:
                    out.append(f"    + {f.key} = {f.after}")
                elif f.after is None:
                    out.append(f"    - {f.key} = {f.before}")
                else:
                    out.append(f"    ~ {f.key}: {f.before} -> {f.after}")
        s = self.summary()
        stopped = f" {len(self.stopped)} table(s) stopped." if self.stopped else ""
        out.append(
            f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
            f"{s['noop']} unchanged.{stopped}"
        )
        return out


# --- connectors ----------------------------------------------------------------------------


def normalise_connector(config: Mapping[str, object]) -> dict[str, str]:
    """Strimzi-style: strings only, nulls dropped, keys Connect adds removed."""
    return {k: v for k, v in normalise_config(config).items() if k not in CONNECT_ADDED_KEYS}


def diff_maps(
    desired: Mapping[str, str],
    actual: Mapping[str, str],
    *,
    secret_keys: Iterable[str] = (),
) -> tuple[FieldChange, ...]:
    secrets = set(secret_keys)

    def show(key: str, value: str | None) -> str | None:
        return SECRET_MASK if value is not None and key in secrets else value

    out: list[FieldChange] = []
    for key in sorted(set(desired) | set(actual)):
        before, after = actual.get(key), desired.get(key)
        if before != after:
            out.append(FieldChange(key, show(key, before), show(key, after)))
    return tuple(out)


def plan_connector(
    pipeline: str, name: str, desired: Mapping[str, object], actual: Mapping[str, object] | None
) -> ResourceChange:
    want = normalise_connector(desired)
    if actual is None:
        return ResourceChange(
            pipeline, "connector", name, "create", diff_maps(want, {}), "not in Kafka Connect"
        )
    changes = diff_maps(want, normalise_connector(actual))
    if not changes:
        return ResourceChange(pipeline, "connector", name, "noop")
    reason = "config differs"
    if not is_owned_config(actual):
        reason = "exists without the cdcctl ownership marker; apply will adopt it"
    return ResourceChange(pipeline, "connector", name, "update", changes, reason)


def is_owned_config(config: Mapping[str, object]) -> bool:
    return str(config.get(OWNER_KEY, "")) == OWNER_VALUE


def plan_prune(
    connectors: Mapping[str, Mapping[str, object]], desired_names: Iterable[str]
) -> list[ResourceChange]:
    """Connectors to delete: carry cdcctl's ownership marker and no manifest names them.

    Connectors without the marker (created by hand or by another tool) are never touched.
    """
    wanted = set(desired_names)
    out: list[ResourceChange] = []
    for name in sorted(connectors):
        config = connectors[name]
        if name in wanted or not is_owned_config(config):
            continue
        pipeline = str(config.get(PIPELINE_KEY, "?"))
        out.append(
            ResourceChange(
                pipeline,
                "connector",
                name,
                "delete",
                reason=f"owned by cdcctl ({OWNER_KEY}={OWNER_VALUE}) and in no manifest",
            )
        )
    return out


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DdlObject:
    kind: str  # table | view | function
    name: str  # as written in the DDL (quoted, schema-qualified)


def ddl_objects(statements: Sequence[str]) -> list[DdlObject]:
    """Tables, views and functions the statements create, in order."""
    out: list[DdlObject] = []
    for stmt in statements:
        match = _CREATE_OBJECT.match(stmt)
        if match:
            obj = DdlObject(match["kind"].lower(), match["name"])
            if obj not in out:
                out.append(obj)
    return out


def ddl_hash(statements: Sequence[str]) -> str:
    digest = hashlib.sha256("\x00".join(statements).encode("utf-8")).hexdigest()
    return digest[:16]


def ddl_marker(statements: Sequence[str]) -> str:
    """The comment apply puts on the raw table: what DDL version made it."""
    return DDL_HASH_PREFIX + ddl_hash(statements)


def plan_postgres(
    pipeline: str,
    table: str,
    statements: Sequence[str],
    existing: Iterable[str],
    marker: str | None,
) -> ResourceChange:
    """Compare a table's generated DDL with what exists (objects and the DDL-hash comment)."""
    have = set(existing)
    objects = ddl_objects(statements)
    missing = [o for o in objects if o.name not in have]
    fields = tuple(FieldChange(f"{o.kind} {o.name}", None, "create") for o in missing)
    if objects and len(missing) == len(objects):
        return ResourceChange(pipeline, "postgres", table, "create", fields, "not in PostgreSQL")
    if missing:
        return ResourceChange(pipeline, "postgres", table, "update", fields, "objects missing")
    want = ddl_marker(statements)
    if marker != want:
        return ResourceChange(
            pipeline,
            "postgres",
            table,
            "update",
            (
                FieldChange(
                    "ddl",
                    (marker or "(unknown)").removeprefix(DDL_HASH_PREFIX),
                    want.removeprefix(DDL_HASH_PREFIX),
                ),
            ),
            "generated DDL changed since the last apply",
        )
    return ResourceChange(pipeline, "postgres", table, "noop")


# --- topics, secrets, agent ----------------------------------------------------------------


def plan_topics(
    pipeline: str, topics: Iterable[str], existing: Iterable[str]
) -> list[ResourceChange]:
    have = set(existing)
    return [
        ResourceChange(pipeline, "topic", t, "noop" if t in have else "create")
        for t in dict.fromkeys(topics)
    ]


def plan_secret(pipeline: str, key: str, desired: str, actual: str | None) -> ResourceChange:
    """The password handed to Connect's secrets file; values are never shown."""
    if actual is None:
        return ResourceChange(
            pipeline, "secret", key, "create", (FieldChange(key, None, SECRET_MASK),)
        )
    if actual != desired:
        return ResourceChange(
            pipeline, "secret", key, "update", (FieldChange(key, SECRET_MASK, SECRET_MASK),)
        )
    return ResourceChange(pipeline, "secret", key, "noop")


def _conf_lines(text: str | None) -> list[str]:
    """HOCON driver config without comments and the session name (a per-pipeline label)."""
    lines = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("session-name"):
            continue
        lines.append(line)
    return lines


def plan_agent(
    pipeline: str,
    path: str,
    desired: Mapping[str, str],
    actual: Mapping[str, str] | None,
    desired_driver_conf: str,
    actual_driver_conf: str | None,
    *,
    pointer_ok: bool = True,
) -> ResourceChange:
    """The node's agent properties and driver config (identity keys and comments ignored)."""
    if actual is None:
        return ResourceChange(
            pipeline, "agent", path, "create", diff_maps(dict(desired), {}), "no agent config"
        )
    want = {k: v for k, v in desired.items() if k not in AGENT_IDENTITY_KEYS}
    have = {k: v for k, v in actual.items() if k not in AGENT_IDENTITY_KEYS}
    fields = list(diff_maps(want, have))
    if _conf_lines(desired_driver_conf) != _conf_lines(actual_driver_conf):
        fields.append(FieldChange("driver.conf", "(differs)", "(rendered)"))
    if not pointer_ok:
        fields.append(FieldChange("active-properties", "(other file)", path))
    if fields:
        return ResourceChange(pipeline, "agent", path, "update", tuple(fields), "agent config")
    return ResourceChange(pipeline, "agent", path, "noop")


def recreated_tables(
    recorded: Mapping[str, str], current: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """Tables ({keyspace.table: id}) whose Cassandra id differs from the one recorded when the
    agent last started: dropped and recreated since, so the agent does not capture them (it
    knows tables by id from its start). Tables never recorded are not reported."""
    return {
        t: (recorded[t], tid) for t, tid in current.items() if t in recorded and recorded[t] != tid
    }


def with_recreated_tables(
    change: ResourceChange, recreated: Mapping[str, tuple[str, str]]
) -> ResourceChange:
    """The agent's change, made an update (a restart) when tables were recreated."""
    if not recreated:
        return change
    fields = change.fields + tuple(
        FieldChange(f"table-id {t}", old, new) for t, (old, new) in sorted(recreated.items())
    )
    action: Action = "create" if change.action == "create" else "update"
    reason = ", ".join(x for x in (change.reason, "tables recreated in Cassandra") if x)
    return ResourceChange(change.pipeline, change.kind, change.name, action, fields, reason)


# --- restarts (Strimzi) --------------------------------------------------------------------


def restart_backoff_minutes(restarts: int) -> int:
    """Strimzi's auto-restart backoff after `restarts` earlier restarts: min(n² + n, 60) min."""
    n = max(restarts, 0)
    return min(n * n + n, 60)


def restart_due(restarts: int, last_restart: float | None, now: float) -> bool:
    """Whether a failed connector may be restarted now (times in seconds)."""
    if last_restart is None or restarts <= 0:
        return True
    return now - last_restart >= restart_backoff_minutes(restarts) * 60


def backoff_should_reset(
    restarts: int, last_restart: float | None, now: float, *, stable_s: float = 600.0
) -> bool:
    """The counter resets once the connector stayed healthy for a stable period after a restart:
    at least `stable_s`, and at least the backoff it would have waited next."""
    if restarts <= 0 or last_restart is None:
        return False
    return now - last_restart >= max(stable_s, restart_backoff_minutes(restarts) * 60)


def plan_agent_bundles(
    pipeline: str, desired: Mapping[str, str], recorded: Mapping[str, str]
) -> list[ResourceChange]:
    """External agents' bundles by node id, compared by digest with what the last apply
    recorded (the sink's ``cdcctl.agent-bundles``). cdcctl cannot install them: each change is
    a rollout the operator does (`cdcctl agent render`)."""
    out: list[ResourceChange] = []
    for node in sorted(set(desired) | set(recorded)):
        want, have = desired.get(node), recorded.get(node)
        if want == have:
            out.append(ResourceChange(pipeline, "agent-bundle", node, "noop"))
        elif have is None:
            out.append(
                ResourceChange(
                    pipeline,
                    "agent-bundle",
                    node,
                    "create",
                    (FieldChange("digest", None, want),),
                    "operator rolls out: cdcctl agent render",
                )
            )
        elif want is None:
            out.append(
                ResourceChange(
                    pipeline,
                    "agent-bundle",
                    node,
                    "delete",
                    (FieldChange("digest", have, None),),
                    "node left the pipeline: the operator stops its agent",
                )
            )
        else:
            out.append(
                ResourceChange(
                    pipeline,
                    "agent-bundle",
                    node,
                    "update",
                    (FieldChange("digest", have, want),),
                    "operator rolls out: cdcctl agent render",
                )
            )
    return out

"""What the source cannot capture faithfully: findings for `cdcctl validate` (issue 4 / issue 5).

For the engineer wiring `cdcctl validate` (services/validate.py): call

    from controlplane.adapters.cassandra import table_options          # one CQL read per table
    from controlplane.core.semantics_checks import check_table

    options = table_options(session, keyspace, tables)                 # {table: TableOptions}
    findings = check_table(model, options[table])                      # list[Finding]

``check_table`` is pure (no I/O): input the table's `TableModel` (from system_schema.columns)
and its `TableOptions` (cdc flag, materialized views, secondary indexes, triggers, default TTL,
gc_grace_seconds); output a list of `Finding(severity, table, column, code, message, remedy)`,
sorted errors first. ``severity``:

- ``error``: the pipeline cannot copy this table (Debezium skips it, or the column would break
  the node's one agent for *every* table, or PostgreSQL would be wrong forever) - fail validate;
- ``warning``: it replicates, but what PostgreSQL shows can differ from Cassandra in a
  documented way (docs/semantics.md, "Limits") - report, do not fail by default;
- ``info``: worth knowing, nothing is lost.

Every ``code`` is stable (tests and docs refer to it). What each check means and why is in
docs/semantics.md ("What the source cannot carry"), each backed by a test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from controlplane.core.schema_model import (
    Column,
    CqlCollection,
    CqlCustom,
    CqlScalar,
    CqlTuple,
    CqlType,
    CqlUdt,
    CqlVector,
    TableModel,
)

Severity = Literal["error", "warning", "info"]
_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class TableOptions:
    """Table-level facts system_schema holds besides the columns (adapter: ``table_options``)."""

    cdc: bool
    materialized_views: tuple[str, ...] = ()
    secondary_indexes: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    default_time_to_live: int = 0
    gc_grace_seconds: int = 864000
    exists: bool = True


@dataclass(frozen=True)
class Finding:
    severity: Severity
    table: str
    code: str
    message: str
    remedy: str
    column: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "severity": self.severity,
            "table": self.table,
            "column": self.column,
            "code": self.code,
            "message": self.message,
            "remedy": self.remedy,
        }


def _walk(t: CqlType) -> Iterable[CqlType]:
    yield t
    if isinstance(t, CqlCollection):
        for a in t.args:
            yield from _walk(a)
    elif isinstance(t, CqlTuple):
        for a in t.items:
            yield from _walk(a)
    elif isinstance(t, CqlVector):
        yield from _walk(t.element)


#: CQL reserved keywords (Cassandra 5 docs, appendix A): the agent's snapshot cannot select a
#: column named like one of these.
CQL_RESERVED = frozenset(
    {
        "add",
        "allow",
        "alter",
        "and",
        "apply",
        "asc",
        "authorize",
        "batch",
        "begin",
        "by",
        "columnfamily",
        "create",
        "default",
        "delete",
        "desc",
        "describe",
        "drop",
        "entries",
        "execute",
        "from",
        "full",
        "grant",
        "if",
        "in",
        "index",
        "infinity",
        "insert",
        "into",
        "is",
        "keyspace",
        "limit",
        "mbean",
        "mbeans",
        "modify",
        "nan",
        "norecursive",
        "not",
        "null",
        "of",
        "on",
        "or",
        "order",
        "primary",
        "rename",
        "replace",
        "revoke",
        "schema",
        "select",
        "set",
        "table",
        "to",
        "token",
        "truncate",
        "unlogged",
        "unset",
        "update",
        "use",
        "using",
        "view",
        "where",
        "with",
    }
)
_PLAIN_IDENT = re.compile(r"[a-z][a-z0-9_]*")


def _nested_set(t: CqlType, top: bool = True) -> bool:
    """A set anywhere below the top level (inside a collection, tuple or vector)."""
    if isinstance(t, CqlCollection):
        if t.kind == "set" and not top:
            return True
        return any(_nested_set(a, False) for a in t.args)
    if isinstance(t, CqlTuple):
        return any(_nested_set(a, False) for a in t.items)
    return False


def _column_findings(where: str, c: Column) -> list[Finding]:
    out: list[Finding] = []
    t = c.type
    parts = list(_walk(t))
    col = f"{where}.{c.name}"
    if not _PLAIN_IDENT.fullmatch(c.name) or c.name in CQL_RESERVED:
        out.append(
            Finding(
                "error",
                where,
                "identifier-breaks-agent-snapshot",
                f"{col}: the column name needs quotes in CQL (case-sensitive or a reserved "
                "word); the agent's snapshot builds its SELECT with unquoted names and dies, "
                "stopping capture for every table on the node",
                "rename the column to a lower-case, non-reserved name (PostgreSQL would take "
                "it: every generated identifier is quoted)",
                c.name,
            )
        )
    if _nested_set(t):
        out.append(
            Finding(
                "error",
                where,
                "nested-set-breaks-agent-snapshot",
                f"{col} is {c.cql_type}: a set inside a collection or tuple makes the agent's "
                "snapshot die (Invalid Java object for schema with type ARRAY: LinkedHashSet), "
                "stopping capture for every table on the node",
                "use frozen<list<...>> for the inner collection",
                c.name,
            )
        )
    if any(isinstance(p, CqlVector) for p in parts):
        out.append(
            Finding(
                "error",
                where,
                "vector-breaks-agent",
                f"{col} is {c.cql_type}: the Debezium Cassandra agent 3.4.1 cannot parse vector "
                "types; its driver then runs without schema metadata and drops the events of "
                "EVERY table on the node",
                "keep vectors out of CDC-enabled keyspaces on this node (store them in a table "
                "with cdc = false, or as frozen<list<float>>)",
                c.name,
            )
        )
    if isinstance(t, CqlUdt) and not t.frozen:
        out.append(
            Finding(
                "error",
                where,
                "nonfrozen-udt-breaks-agent",
                f"{col} is a non-frozen UDT: the agent's snapshot dies on it (ClassCastException "
                "in SnapshotProcessor) and stops capture for every table on the node",
                f"make it frozen<{t.name}> (a new column, backfilled) or exclude the table",
                c.name,
            )
        )
    elif isinstance(t, CqlCollection) and not t.frozen:
        out.append(
            Finding(
                "warning",
                where,
                "nonfrozen-collection",
                f"{col} is a non-frozen {t.kind}: change events carry only the elements a "
                "mutation touched, without saying add, remove or overwrite, so PostgreSQL holds "
                "the elements of the newest write to the column, not the whole collection, "
                "after appends, element updates or removals; TTLs on its elements are not seen",
                f"write it only as a whole (INSERT or SET {c.name} = ...), or make it "
                f"frozen<{t}> so every event carries the whole value",
                c.name,
            )
        )
    if isinstance(t, CqlScalar) and t.name == "counter":
        out.append(
            Finding(
                "error",
                where,
                "counter-table",
                f"{col} is a counter: Debezium skips counter tables, nothing is captured",
                "exclude the table and copy it with a periodic batch job",
                c.name,
            )
        )
    if any(isinstance(p, CqlCustom) for p in parts):
        out.append(
            Finding(
                "error",
                where,
                "custom-type",
                f"{col} has custom type {c.cql_type}: no PostgreSQL mapping",
                "exclude the column's table or replace the column with a native type",
                c.name,
            )
        )
    if isinstance(t, CqlScalar) and t.name in ("time", "duration"):
        out.append(
            Finding(
                "info",
                where,
                "nanoseconds-truncated",
                f"{col} is {t.name}: PostgreSQL keeps microseconds, the last three digits of "
                "Cassandra's nanoseconds are dropped",
                "nothing to do unless sub-microsecond values matter (then use a bigint of ns)",
                c.name,
            )
        )
    if c.kind == "static":
        out.append(
            Finding(
                "warning",
                where,
                "static-column",
                f"{col} is static: the Debezium agent skips static rows, so its value never "
                "reaches PostgreSQL (the column is left out there)",
                "move the value to a regular column or a separate table keyed by the partition key",
                c.name,
            )
        )
    return out


def check_table(table: TableModel, options: TableOptions) -> list[Finding]:
    """Everything about ``table`` that the pipeline cannot copy exactly; errors first."""
    where = table.qualified_name
    out: list[Finding] = []
    if not options.exists:
        return [
            Finding(
                "error",
                where,
                "table-missing",
                f"{where} does not exist in Cassandra",
                "create it, or remove it from spec.source.cassandra.tables",
            )
        ]
    if not options.cdc:
        out.append(
            Finding(
                "error",
                where,
                "cdc-disabled",
                f"{where} has cdc = false: its writes never reach cdc_raw, the agent sees nothing",
                f"ALTER TABLE {where} WITH cdc = true (then `cdcctl apply`; rows written before "
                "arrive through the agent's snapshot)",
            )
        )
    for mv in options.materialized_views:
        out.append(
            Finding(
                "info",
                where,
                "materialized-view-skipped",
                f"materialized view {table.keyspace}.{mv} on {where} is not captured (Debezium "
                "skips views); the base table is",
                f"recreate the view in PostgreSQL over the view {table.keyspace}.{table.table}",
            )
        )
    for ix in options.secondary_indexes:
        out.append(
            Finding(
                "info",
                where,
                "secondary-index-skipped",
                f"secondary index {ix} on {where} is not copied (Debezium skips index tables)",
                "create the PostgreSQL index you need on the raw table "
                f"{table.keyspace}_cdc.{table.table}",
            )
        )
    for tr in options.triggers:
        out.append(
            Finding(
                "warning",
                where,
                "trigger-unsupported",
                f"trigger {tr} on {where}: writes it makes to other tables are captured only "
                "if those tables have cdc = true",
                "enable cdc on the trigger's target tables, or drop the trigger",
            )
        )
    if options.default_time_to_live:
        out.append(
            Finding(
                "info",
                where,
                "default-ttl",
                f"{where} has default_time_to_live = {options.default_time_to_live}: rows "
                "expire in the PostgreSQL view at the same time (cell expiry is in the events), "
                "and stay in the raw table until t__purge",
                "schedule the table's __purge function",
            )
        )
    for c in table.columns:
        out.extend(_column_findings(where, c))
    return sorted(out, key=lambda f: (_ORDER[f.severity], f.code, f.column or ""))


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)

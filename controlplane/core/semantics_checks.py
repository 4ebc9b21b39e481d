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

Cassandra 4.1 sources (issue 13, decisions 0107 and 0113): ``check_table(..., cassandra_version=
"4.1")`` says what differs there (its agent, debezium-connector-cassandra-4 3.3.0.Final, writes
decimal as float64 and varint as int64; vector does not exist before 5.0), and
``source_version_findings`` compares the manifest's ``spec.source.cassandra.version`` with the
``release_version`` the cluster reports (the adapter reads it from system.local).
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
    parse_cql_type,
)

Severity = Literal["error", "warning", "info"]
CassandraVersion = Literal["5.0", "4.1"]
DEFAULT_CASSANDRA_VERSION: CassandraVersion = "5.0"
#: the agent each source version runs, as findings name it (compose/native/pom.xml pins)
AGENTS: dict[str, str] = {
    "5.0": "debezium-connector-cassandra-5 3.4.1.Final",
    "4.1": "debezium-connector-cassandra-4 3.3.0.Final",
}
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
    #: the keyspace's UDTs: (name, ((field, CQL type), ...)), so checks can look inside them
    udts: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True)
class _UdtAsTuple(CqlTuple):
    """A UDT with its field types known: converted and serialized like a tuple by the agent."""

    udt: str = ""


def _expand_udts(
    t: CqlType, udts: dict[str, tuple[tuple[str, str], ...]], depth: int = 0
) -> CqlType:
    """``t`` with every UDT whose fields are known replaced by a tuple of its field types."""
    if depth > 32:  # Cassandra refuses recursive UDTs; this only guards against bad input
        return t
    if isinstance(t, CqlUdt) and t.name in udts:
        items = tuple(_expand_udts(parse_cql_type(ft), udts, depth + 1) for _, ft in udts[t.name])
        return _UdtAsTuple(items=items, frozen=t.frozen, udt=t.name)
    if isinstance(t, CqlCollection):
        return CqlCollection(
            t.kind, tuple(_expand_udts(a, udts, depth + 1) for a in t.args), t.frozen
        )
    if isinstance(t, CqlTuple):
        return CqlTuple(tuple(_expand_udts(a, udts, depth + 1) for a in t.items), t.frozen)
    return t


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


#: Types the agent leaves as Cassandra's Java objects below its one converted level; the Kafka
#: record then fails validation and the agent stops (timestamp: java.util.Date for an INT64).
_UNCONVERTED_BREAK = frozenset(
    {"timestamp", "uuid", "timeuuid", "inet", "decimal", "varint", "duration"}
)


def _inner_collections(t: CqlType, in_collection: bool = False) -> Iterable[CqlCollection]:
    """Collections that are an element, key or value of another collection. The agent converts
    one level of a collection value; a tuple's fields are converted one by one (a fresh start)."""
    if isinstance(t, CqlCollection):
        if in_collection:
            yield t
            return
        for a in t.args:
            yield from _inner_collections(a, True)
    elif isinstance(t, CqlTuple):
        for a in t.items:
            yield from _inner_collections(a, False)


def _unconverted(t: CqlType) -> tuple[set[str], set[str]]:
    """(types that stop the agent, types silently wrong) below a collection in a collection.
    Sets are left to `_nested_set`."""
    breaks: set[str] = set()
    wrong: set[str] = set()
    for inner in _inner_collections(t):
        for part in _walk(inner):
            if isinstance(part, CqlScalar) and part.name in _UNCONVERTED_BREAK:
                breaks.add(part.name)
            elif isinstance(part, CqlScalar) and part.name == "date":
                wrong.add("date")
            elif isinstance(part, CqlTuple | CqlUdt):
                tuple_only = isinstance(part, CqlTuple) and not isinstance(part, _UdtAsTuple)
                breaks.add("tuple" if tuple_only else "UDT")
    return breaks, wrong


def _blob_in_shared_buffer(t: CqlType) -> bool:
    """A blob that is a slice of an enclosing serialized value: anywhere in a frozen collection
    or a tuple, or below the elements of a non-frozen collection. Only a top-level blob and the
    direct elements/keys/values of a non-frozen collection have buffers of their own."""
    if isinstance(t, CqlCollection) and not t.frozen:
        return any(
            any(isinstance(p, CqlScalar) and p.name == "blob" for p in _walk(a))
            for a in t.args
            if not (isinstance(a, CqlScalar) and a.name == "blob")
        )
    if isinstance(t, CqlCollection | CqlTuple):
        return any(isinstance(p, CqlScalar) and p.name == "blob" for p in _walk(t))
    return False


def _nested_value_findings(
    where: str, c: Column, t: CqlType, cassandra_version: str = DEFAULT_CASSANDRA_VERSION
) -> list[Finding]:
    """``t``: the column's type with known UDTs expanded into their fields. On 4.1 a date in a
    collection inside a collection is right: the 4.1 agent writes every date as the raw day
    number, so the transform's 4.1 correction covers that one too (``date-raw-on-41``)."""
    col = f"{where}.{c.name}"
    out: list[Finding] = []
    breaks, wrong = _unconverted(t)
    if cassandra_version == "4.1":
        wrong.discard("date")
    if breaks:
        out.append(
            Finding(
                "error",
                where,
                "nested-collection-breaks-agent",
                f"{col} is {c.cql_type}: the agent converts one level of a collection, so "
                f"{', '.join(sorted(breaks))} values in a collection inside a collection reach "
                "Kafka as raw Java objects; the record fails (e.g. 'Invalid Java object for "
                "schema io.debezium.time.Timestamp ... java.util.Date') and the agent stops "
                "capturing every table on the node",
                "wrap the inner value in a tuple (frozen<list<frozen<tuple<frozen<list<T>>>>>>: "
                "tuple fields are converted one by one) or store it as text",
                c.name,
            )
        )
    if wrong:
        out.append(
            Finding(
                "error",
                where,
                "nested-date-shifted",
                f"{col} is {c.cql_type}: a date in a collection inside a collection reaches "
                "Kafka unconverted, as Cassandra's raw day number (epoch + 2^31), so PostgreSQL "
                "holds a date about 5.9 million years off",
                "wrap the inner collection in a tuple, or store the date as text or int",
                c.name,
            )
        )
    if _blob_in_shared_buffer(t):
        out.append(
            Finding(
                "error",
                where,
                "nested-blob-wrong-bytes",
                f"{col} is {c.cql_type}: a blob inside a frozen collection or a tuple is a "
                "slice of the enclosing value, and the agent's JsonConverter writes a "
                "ByteBuffer's whole backing array, so PostgreSQL holds the bytes of the whole "
                "enclosing value instead of the blob",
                "use a non-frozen list/set/map of blob (its elements are carried exactly), a "
                "top-level blob column, or hex/base64 text",
                c.name,
            )
        )
    return out


def _scalars(t: CqlType) -> set[str]:
    return {p.name for p in _walk(t) if isinstance(p, CqlScalar)}


def _c41_findings(where: str, c: Column, expanded: CqlType) -> list[Finding]:
    """What the Cassandra 4.1 agent carries differently from the 5.0 one (decision 0113)."""
    col = f"{where}.{c.name}"
    agent = AGENTS["4.1"]
    scalars = _scalars(expanded)
    out: list[Finding] = []
    if "decimal" in scalars:
        out.append(
            Finding(
                "error",
                where,
                "decimal-lossy-on-41",
                f"{col} is {c.cql_type}: on Cassandra 4.1 the agent ({agent}) writes decimal as "
                "a float64 whatever decimal.handling.mode says, so digits beyond a double's ~16 "
                "are lost before Kafka (123456789012345678901234567890.123456789 arrives as "
                "1.2345678901234568E29); the 5.0 agent carries it exactly",
                "store the value as text (exact), or keep the table on Cassandra 5.0; "
                "`cdcctl verify` reports every value that differs",
                c.name,
            )
        )
    if "varint" in scalars:
        out.append(
            Finding(
                "error",
                where,
                "varint-wraps-on-41",
                f"{col} is {c.cql_type}: on Cassandra 4.1 the agent ({agent}) writes varint as "
                "an int64, so a value outside -2^63..2^63-1 arrives wrapped to 64 bits, silently "
                "(-123456789012345678901234567890 arrives as 4362896299872285998); the 5.0 agent "
                "carries it exactly",
                "use bigint if the values fit in 64 bits, text otherwise, or keep the table on "
                "Cassandra 5.0; `cdcctl verify` reports every value that differs",
                c.name,
            )
        )
    if "date" in scalars:
        out.append(
            Finding(
                "info",
                where,
                "date-raw-on-41",
                f"{col} is {c.cql_type}: on Cassandra 4.1 the agent ({agent}) writes dates as "
                "Cassandra's raw day number (days + 2^31), at any depth (a collection inside a "
                "collection included); the sink's transform turns them back into dates, "
                "exactly, because spec.source.cassandra.version is 4.1",
                'keep spec.source.cassandra.version: "4.1" while the source runs 4.1',
                c.name,
            )
        )
    return out


def _column_findings(
    where: str,
    c: Column,
    udts: dict[str, tuple[tuple[str, str], ...]],
    cassandra_version: str = DEFAULT_CASSANDRA_VERSION,
) -> list[Finding]:
    out: list[Finding] = []
    t = c.type
    expanded = _expand_udts(t, udts)
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
    if _nested_set(expanded):
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
    out.extend(_nested_value_findings(where, c, expanded, cassandra_version))
    if cassandra_version == "4.1":
        out.extend(_c41_findings(where, c, expanded))
    if any(isinstance(p, CqlVector) for p in parts) and cassandra_version == "4.1":
        out.append(
            Finding(
                "error",
                where,
                "vector-not-in-41",
                f"{col} is {c.cql_type}: vector types exist from Cassandra 5.0 on; a 4.1 "
                "cluster cannot hold this column (is spec.source.cassandra.version right?)",
                'set spec.source.cassandra.version to the cluster\'s version ("5.0" here)',
                c.name,
            )
        )
    elif any(isinstance(p, CqlVector) for p in parts):
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


def check_table(
    table: TableModel,
    options: TableOptions,
    cassandra_version: str = DEFAULT_CASSANDRA_VERSION,
) -> list[Finding]:
    """Everything about ``table`` that the pipeline cannot copy exactly; errors first.

    ``cassandra_version``: the source's major.minor ("5.0" or "4.1"); findings that differ
    between the two agents follow it."""
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
    if len(table.partition_key) > 1:
        for c in table.partition_key:
            if c.cql_type == "blob":
                out.append(
                    Finding(
                        "error",
                        where,
                        "composite-key-blob-wrong-bytes",
                        f"{where}.{c.name} is a blob in a composite partition key: the agent "
                        "writes the component's ByteBuffer's whole backing array, the "
                        "serialised partition key, so PostgreSQL's key holds the bytes of the "
                        "whole key instead of the blob (e.g. (0x, -1) of (blob, date) arrives "
                        "as 0x00000000047fffffff00), verify reports every row missing and "
                        "extra, and the row's partition token is left NULL (decision 0154)",
                        "partition by a single blob column, or carry the blob as hex/base64 "
                        "text in the key",
                        c.name,
                    )
                )
    udts = dict(options.udts)
    for c in table.columns:
        out.extend(_column_findings(where, c, udts, cassandra_version))
    return sorted(out, key=lambda f: (_ORDER[f.severity], f.code, f.column or ""))


_RELEASE = re.compile(r"^\s*(\d+)\.(\d+)(?:[.\-~+].*)?\s*$")


def major_minor(release_version: str | None) -> str | None:
    """``"4.1.7"`` -> ``"4.1"``, ``"5.0-rc1"`` -> ``"5.0"``; None when it is not a version."""
    match = _RELEASE.match(release_version or "")
    return f"{int(match[1])}.{int(match[2])}" if match else None


def effective_version(declared: str, release_version: str | None) -> str:
    """The version whose findings apply: the cluster's when it reports a supported one (it is
    the truth about the agent's behaviour), else the manifest's."""
    actual = major_minor(release_version)
    return actual if actual in AGENTS else declared


def source_version_findings(
    where: str, declared: str, release_version: str | None
) -> list[Finding]:
    """The manifest's ``spec.source.cassandra.version`` against the cluster's release_version
    (system.local of the node validate talks to)."""
    actual = major_minor(release_version)
    if actual is None:
        return [
            Finding(
                "warning",
                where,
                "cassandra-version-unknown",
                f"the cluster reports release_version {release_version!r}: cannot tell whether "
                f"it is Cassandra {declared} as spec.source.cassandra.version says",
                "check the nodes' version (nodetool version)",
            )
        ]
    if actual not in AGENTS:
        return [
            Finding(
                "error",
                where,
                "cassandra-version-unsupported",
                f"the cluster runs Cassandra {release_version}: cdcctl supports "
                f"{' and '.join(AGENTS)} (one Debezium agent each: "
                f"{'; '.join(f'{v}: {a}' for v, a in AGENTS.items())})",
                "upgrade the cluster to 4.1 or 5.0",
            )
        ]
    if actual != declared:
        what = (
            "its 4.1 agent's dates would reach PostgreSQL as raw day numbers (read back as "
            "-infinity)"
            if actual == "4.1"
            else "the sink's transform would shift the 5.0 agent's correct dates by 2^31 days"
        )
        return [
            Finding(
                "error",
                where,
                "cassandra-version-mismatch",
                f"spec.source.cassandra.version is {declared} but the cluster runs Cassandra "
                f"{release_version}: {what}",
                f'set spec.source.cassandra.version: "{actual}"',
            )
        ]
    return [
        Finding(
            "info",
            where,
            "cassandra-version",
            f"Cassandra {release_version}, agent {AGENTS[actual]}",
            "nothing to do",
        )
    ]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)

"""Schema evolution of one table, pure: compare the Cassandra table with its PostgreSQL raw table
and produce the migration (``cdcctl schema plan|apply``).

The gate keeps per-column write times and expiries in arrays whose slot *i* is the *i*-th regular
column by name (decision 0003), so adding or dropping a column shifts slots. The migration runs in
one transaction, holding the raw table's ACCESS EXCLUSIVE lock (the sink waits, nothing is lost):
ALTER TABLE, then every row's ``_cdc_wt``/``_cdc_exp`` rebuilt in the new slot order with the
gate trigger disabled (the rebuild is not an event), then the gate functions and the view
regenerated.

A changed column type or primary key is *incompatible* (Cassandra 5 allows neither in place, so it
comes from DROP TABLE + CREATE TABLE, which deletes the table's data there): that table is left
alone and stopped — its topic leaves the sink — until its PostgreSQL tables are rebuilt
(decision 0050). `stop_reason` and `incompatible_error` word what the user reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from controlplane.core.ddl import generate_ddl, pg_names, quote_ident
from controlplane.core.errors import IncompatibleSchemaError
from controlplane.core.schema_model import TableModel

Action = Literal["create", "alter", "incompatible", "unchanged"]

#: What ``format_type()`` reports for the types core.ddl writes.
PG_TYPE_NAMES: dict[str, str] = {
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
}


@dataclass(frozen=True)
class KeyShape:
    """A table's primary key: partition key columns, then the whole key (partition + clustering),
    in order. PostgreSQL's side is read from the raw table's and the tombstone table's keys."""

    partition: tuple[str, ...]
    primary: tuple[str, ...]

    @classmethod
    def of(cls, model: TableModel) -> KeyShape:
        return cls(
            tuple(c.name for c in model.partition_key), tuple(c.name for c in model.primary_key)
        )

    def __str__(self) -> str:
        rest = self.primary[len(self.partition) :]
        return f"(({', '.join(self.partition)}){''.join(', ' + c for c in rest)})"


@dataclass(frozen=True)
class TypeChange:
    column: str
    before: str  # PostgreSQL's type of the column (format_type)
    after: str  # the type core.ddl maps the column's new Cassandra type to


@dataclass(frozen=True)
class TableMigration:
    table: str
    action: Action
    added: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    statements: tuple[str, ...] = field(default=(), repr=False)
    type_changes: tuple[TypeChange, ...] = ()
    key_change: tuple[KeyShape, KeyShape] | None = None  # (PostgreSQL's, Cassandra's)

    @property
    def summary(self) -> str:
        parts = [f"+{c}" for c in self.added] + [f"-{c}" for c in self.dropped]
        parts += [f"~{c}" for c in self.changed]
        if self.key_change:
            parts.append("~PRIMARY KEY")
        return ", ".join(parts) or "-"

    @property
    def reason(self) -> str:
        """Why the table is incompatible, in the user's words ("" when it is not)."""
        return stop_reason(self)


def plan_table(
    model: TableModel, actual: Mapping[str, str] | None, key: KeyShape | None = None
) -> TableMigration:
    """``actual``: the raw table's columns ({name: format_type}), None if it does not exist;
    ``key``: its primary key as PostgreSQL has it (None: not known, not compared)."""
    ddl = generate_ddl(model)
    name = model.qualified_name
    if actual is None:
        return TableMigration(name, "create", statements=ddl.statements)
    gen_types = _raw_types(model)
    data_actual = {c: t for c, t in actual.items() if not c.startswith("_cdc_")}
    added = tuple(sorted(c for c in gen_types if c not in data_actual))
    dropped = tuple(sorted(c for c in data_actual if c not in gen_types))
    changed = tuple(
        sorted(
            c
            for c, t in gen_types.items()
            if c in data_actual and PG_TYPE_NAMES.get(t, t) != data_actual[c]
        )
    )
    want_key = KeyShape.of(model)
    key_change = (key, want_key) if key is not None and key != want_key else None
    if changed or key_change:
        types = tuple(
            TypeChange(c, data_actual[c], PG_TYPE_NAMES.get(gen_types[c], gen_types[c]))
            for c in changed
        )
        return TableMigration(
            name,
            "incompatible",
            added,
            dropped,
            changed,
            type_changes=types,
            key_change=key_change,
        )
    if not added and not dropped:
        return TableMigration(name, "unchanged")
    return TableMigration(
        name, "alter", added, dropped, statements=_alter(model, list(data_actual), added, dropped)
    )


def sinks_to_stop(
    migrations: Iterable[tuple[str, Action]], writers: Mapping[str, str]
) -> list[str]:
    """The pipelines (of ``(pipeline, action)`` per table) whose sink must be stopped while their
    DDL changes (decision 0139): a ``writer: lww`` sink carries SQL generated from each table's
    columns, and its merge writes the gate's write-time slots by position, so no batch of the old
    SQL may run once a table was migrated in place (``alter``). A created table is not one (its
    topic joins the sink with the new config), nor a stopped one (its topic and SQL leave it);
    the stock sink (``jdbc``) names each record's own fields and goes through the gate."""
    altered = {pipeline for pipeline, action in migrations if action == "alter"}
    return sorted(p for p in altered if writers.get(p) == "lww")


def _raw_types(model: TableModel) -> dict[str, str]:
    ddl = generate_ddl(model)
    raw = ddl.statements[2]  # CREATE TABLE of the raw table (see ddl._Gen.statements)
    out: dict[str, str] = {}
    cols = {c.name for c in model.columns}
    for line in raw.splitlines()[1:]:
        line = line.strip().rstrip(",")
        if not line.startswith('"'):
            continue
        end = line.index('"', 1)
        while line[end + 1 : end + 2] == '"':  # doubled quote inside the name
            end = line.index('"', end + 2)
        col = line[1:end].replace('""', '"')
        if col in cols:
            out[col] = line[end + 2 :].removesuffix(" NOT NULL").strip()
    return out


def _alter(
    model: TableModel, old_cols: list[str], added: tuple[str, ...], dropped: tuple[str, ...]
) -> tuple[str, ...]:
    names = pg_names(model)
    raw = names.raw_table
    types = _raw_types(model)
    keys = {c.name for c in model.primary_key}
    static = {c.name for c in model.static}
    old_regular = sorted(c for c in old_cols if c not in keys and c not in static)
    new_regular = [c.name for c in model.regular]
    slot = {c: i for i, c in enumerate(old_regular, start=1)}

    def remap(arr: str) -> str:
        items = [f'"{arr}"[{slot[c]}]' if c in slot else "NULL::bigint" for c in new_regular]
        return f"ARRAY[{', '.join(items)}]::bigint[]" if items else "'{}'::bigint[]"

    out = [f"LOCK TABLE {raw} IN ACCESS EXCLUSIVE MODE"]
    out += [f"ALTER TABLE {raw} ADD COLUMN {quote_ident(c)} {types[c]}" for c in added]
    out += [f"ALTER TABLE {raw} DROP COLUMN {quote_ident(c)} CASCADE" for c in dropped]
    out += [
        f'ALTER TABLE {raw} DISABLE TRIGGER "cdc_lww"',
        f'UPDATE {raw} SET "_cdc_wt" = {remap("_cdc_wt")}, '  # noqa: S608  # nosec B608  # quoted idents
        f'"_cdc_exp" = {remap("_cdc_exp")}',
        f'ALTER TABLE {raw} ENABLE TRIGGER "cdc_lww"',
        f"DROP VIEW IF EXISTS {names.live_view}",
        *generate_ddl(model).statements,
    ]
    return tuple(out)


def stop_reason(m: TableMigration) -> str:
    """One line: what changed incompatibly (``""`` for a compatible migration)."""
    parts = [f"column {t.column} changed type {t.before} -> {t.after}" for t in m.type_changes]
    if m.key_change:
        before, after = m.key_change
        parts.append(f"primary key changed {before} -> {after}")
    return "; ".join(parts)


def incompatible_error(stopped: Sequence[tuple[str, str, str]]) -> IncompatibleSchemaError:
    """The error `apply` ends with when tables were stopped: (pipeline, table, reason) each."""
    tables = "; ".join(f"{table} of pipeline {pipeline}: {why}" for pipeline, table, why in stopped)
    first = stopped[0][1] if stopped else "KEYSPACE.TABLE"
    return IncompatibleSchemaError(
        f"incompatible schema change, table stopped: {tables}. Its PostgreSQL tables were left "
        "as they were and its topic was taken out of the sink; its new events wait in Kafka. "
        "Every other table was applied and keeps flowing",
        hint="the table was dropped and recreated in Cassandra, which deleted its data there: "
        "rebuild it in PostgreSQL with `cdcctl schema apply -f MANIFEST --rebuild "
        f"{first} --yes` (drops its PostgreSQL tables and view, recreates them with the new "
        "schema and puts the topic back; the waiting events then arrive). To keep the old copy, "
        "rename its PostgreSQL tables first",
    )

"""How verify compares a token range (docs/verify.md): both sides' rows arrive in token order;
they are grouped by token, the groups of the two streams paired (merge), and the rows of a pair
matched by primary key and classified — equal, *missing* (Cassandra only), *extra* (PostgreSQL
only) or *mismatch* (regular columns differ in canonical form). A difference is a *suspect*
until a second read one lag later sees it again with no newer write (``recheck_outcome``; the
rounds of a range's suspects: ``Recheck``). Pure: rows are plain sequences; services.verify
reads them and keeps the clock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from controlplane.core.canonical import Comparison, canonical_json
from controlplane.core.verify_table import Table

#: A row as a range scan returns it: the partition token, then pk + regular values
Row = tuple[Any, ...]
#: The rows of one token, in stream order
TokenGroup = tuple[int, list[Row]]


@dataclass
class Suspect:
    kind: str  # missing | extra | mismatch
    pk: tuple[Any, ...]  # Cassandra-side (driver) values when known, else PostgreSQL's
    key: Any
    signature: str
    columns: dict[str, Comparison] = field(default_factory=dict)
    newest_write_us: int | None = None  # Cassandra's newest WRITETIME of the row, when read


def classify(
    t: Table, c: Sequence[Any] | None, p: Sequence[Any] | None, key: Any
) -> Suspect | None:
    """Cassandra's row ``c`` against PostgreSQL's ``p`` (both pk + regular values, None where
    the side has no row, i.e. absent from the live view: deleted or never written). None when
    they agree; a NULL cell and an absent row are not the same: a row of NULLs is a row."""
    n = len(t.pk)
    if c is None and p is None:
        return None
    if p is None:
        assert c is not None
        return Suspect("missing", tuple(c[:n]), key, canonical_json(["m", t.canon_row(c)]))
    if c is None:
        return Suspect("extra", tuple(p[:n]), key, canonical_json(["e", t.canon_row(p)]))
    cols = t.diff(c, p)
    if not cols:
        return None
    sig = canonical_json(["x", {k: [v.cassandra, v.postgres] for k, v in sorted(cols.items())}])
    return Suspect("mismatch", tuple(c[:n]), key, sig, cols)


def token_groups(rows: Iterable[Row]) -> Iterator[TokenGroup]:
    """Consecutive rows with the same token (column 0)."""
    current: int | None = None
    buf: list[Row] = []
    for row in rows:
        if row[0] != current:
            if buf:
                yield current, buf  # type: ignore[misc]
            current, buf = row[0], [row]
        else:
            buf.append(row)
    if buf:
        yield current, buf  # type: ignore[misc]


def merge_groups(
    a: Iterator[TokenGroup], b: Iterator[TokenGroup]
) -> Iterator[tuple[list[Row], list[Row]]]:
    """Pair token groups of two token-ordered streams (an empty list where a side has none)."""
    ga, gb = next(a, None), next(b, None)
    while ga is not None or gb is not None:
        if gb is None or (ga is not None and ga[0] < gb[0]):
            assert ga is not None
            yield ga[1], []
            ga = next(a, None)
        elif ga is None or gb[0] < ga[0]:
            yield [], gb[1]
            gb = next(b, None)
        else:
            yield ga[1], gb[1]
            ga, gb = next(a, None), next(b, None)


@dataclass
class RangeComparison:
    """One pass over a range: Cassandra rows read, rows equal on both sides, and suspects."""

    read: int = 0
    valid: int = 0
    suspects: list[Suspect] = field(default_factory=list)


def compare_range(t: Table, c_rows: Iterable[Row], p_rows: Iterable[Row]) -> RangeComparison:
    """Compare two token-ordered streams of one range, one token group per side in memory.

    The usual token holds one row a side: those two rows are first compared as they are
    (`Table.same`: same Python types, equal values — C speed, no key, no canonical form) and
    only when that says nothing are they keyed and classified (`compare_groups`); so is every
    token with more rows, or rows on one side only. The verdicts are those of keying and
    classifying every row."""
    out = RangeComparison()
    same = t.same
    ci, pi = iter(c_rows), iter(p_rows)
    c, p = next(ci, None), next(pi, None)
    while c is not None and p is not None:
        tok = c[0]
        if tok == p[0]:
            c_next, p_next = next(ci, None), next(pi, None)
            if (c_next is None or c_next[0] != tok) and (p_next is None or p_next[0] != tok):
                if same(c, p):
                    out.read += 1
                    out.valid += 1
                else:
                    compare_groups(t, [c], [p], out)
                c, p = c_next, p_next
                continue
            c_group, c = _rest_of_group(tok, [c], c_next, ci)
            p_group, p = _rest_of_group(tok, [p], p_next, pi)
            compare_groups(t, c_group, p_group, out)
        elif tok < p[0]:
            c_group, c = _rest_of_group(tok, [c], next(ci, None), ci)
            compare_groups(t, c_group, [], out)
        else:
            p_group, p = _rest_of_group(p[0], [p], next(pi, None), pi)
            compare_groups(t, [], p_group, out)
    while c is not None:
        c_group, c = _rest_of_group(c[0], [c], next(ci, None), ci)
        compare_groups(t, c_group, [], out)
    while p is not None:
        p_group, p = _rest_of_group(p[0], [p], next(pi, None), pi)
        compare_groups(t, [], p_group, out)
    return out


def _rest_of_group(
    token: int, group: list[Row], nxt: Row | None, rows: Iterator[Row]
) -> tuple[list[Row], Row | None]:
    """``group`` completed with the rows of ``token`` from ``nxt`` on; and the first row of
    the next token (None at the end)."""
    while nxt is not None and nxt[0] == token:
        group.append(nxt)
        nxt = next(rows, None)
    return group, nxt


def compare_groups(t: Table, c_group: list[Row], p_group: list[Row], out: RangeComparison) -> None:
    """The rows of one token on each side matched by primary key and classified into ``out``."""
    n = len(t.pk)
    out.read += len(c_group)
    p_by_key = {t.key(r[1 : 1 + n]): r[1:] for r in p_group}
    for r in c_group:
        row = r[1:]
        key = t.key(row[:n])
        p = p_by_key.pop(key, None)
        s = classify(t, row, p, key)
        if s is None:
            out.valid += 1
        else:
            out.suspects.append(s)
    for key, p in p_by_key.items():
        out.suspects.append(classify(t, None, p, key))  # type: ignore[arg-type]


def newest_write_us(c_row: Sequence[Any], width: int) -> int | None:
    """The newest WRITETIME of a row read by ``Table.cql_repair`` (pk + regular values, then
    WRITETIME and TTL per regular column; ``width``: the number of pk + regular columns)."""
    times = [w for w in c_row[width::2] if w is not None]
    return max(times, default=None)


def recheck_outcome(
    old: Suspect, new: Suspect | None, settled_before_us: int
) -> Literal["matched", "settled", "changing"]:
    """A suspect read again: *matched* (the sides agree now), *settled* (the same difference
    twice and no write after ``settled_before_us``: a real difference) or *changing*."""
    if new is None:
        return "matched"
    if new.signature == old.signature and (
        new.newest_write_us is None or new.newest_write_us < settled_before_us
    ):
        return "settled"
    return "changing"


def observed(
    t: Table, c_row: Sequence[Any] | None, p_row: Sequence[Any] | None, key: Any
) -> Suspect | None:
    """A suspect's row read again by primary key — Cassandra's by ``Table.cql_repair`` (with
    write times and TTLs after the values), PostgreSQL's by ``Table.pg_by_pk`` — classified,
    with Cassandra's newest write time. None when the sides agree now."""
    width = len(t.pk) + len(t.reg)
    new = classify(t, c_row[:width] if c_row else None, p_row, key)
    if new is not None and c_row is not None:
        new.newest_write_us = newest_write_us(c_row, width)
    return new


def settled_before_us(now_s: float, lag_s: float) -> int:
    """The write time (microseconds) a difference's newest write must precede to be settled:
    one pipeline lag before ``now_s``."""
    return int((now_s - lag_s) * 1_000_000)


@dataclass
class Recheck:
    """The suspects of a range through their rounds of reading again: each round sorts the
    ``pending`` ones into *matched* (counted valid), *settled* (``final``: a real difference)
    and *changing* (pending for the next round); those still pending after the last round are
    *skipped* — not judged this run."""

    pending: list[Suspect]
    final: list[Suspect] = field(default_factory=list)
    matched: int = 0

    def round(self, now: Sequence[Suspect | None], settled_before_us: int) -> None:
        """One round: ``now[i]`` is ``pending[i]`` read again (None: the sides agree)."""
        still: list[Suspect] = []
        for old, new in zip(self.pending, now, strict=True):
            outcome = recheck_outcome(old, new, settled_before_us)
            if outcome == "matched":
                self.matched += 1
            elif outcome == "settled":
                assert new is not None
                self.final.append(new)  # the same twice, and no write of the last lag: settled
            else:
                assert new is not None
                still.append(new)
        self.pending = still

    def counts(self) -> dict[str, int]:
        """What the rechecks add to the range's counters: the rows that matched when read
        again are valid (and ``rechecked``), those still changing ``skipped``."""
        return {"valid": self.matched, "rechecked": self.matched, "skipped": len(self.pending)}

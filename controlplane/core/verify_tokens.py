"""The rows of verify's PostgreSQL token pass (decision 0030) as COPY text (decision 0141).

The token pass reads every primary key of a table's live view, computes the partition token of
each client-side (core.token_ranges.tokenizer) and COPYs ``(pk..., token)`` back into the run's
key table. psycopg's ``Copy.write_row`` formats one row per Python call through its adapters
(~2 µs a row); here a whole batch of keys becomes one string of COPY ``text`` format lines
(tab-separated, backslash escapes, one line a row), written by one ``Copy.write``.

Only key types whose Python values (as psycopg returns them) have one obvious text form that
PostgreSQL reads back as the same value take this path: the integers, text and uuids, booleans.
``copy_lines`` returns None for any other primary key (timestamps, decimals, blobs...): the
caller then writes rows one at a time as before. Pure: no connection, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from controlplane.core.token_ranges import tokenizer

#: A batch of primary keys (pk columns in table order, partition key first) -> COPY text lines
CopyLines = Callable[[Sequence[Sequence[Any]]], str]

_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def copy_text(value: str) -> str:
    """A string as a COPY text-format field: backslash, tab, newline and carriage return
    escaped (the characters COPY text reads as a field or line separator, or an escape)."""
    if _SPECIAL.search(value) is None:
        return value
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], value)


def _boolean(value: bool) -> str:
    return "t" if value else "f"


#: The text form of a key value of each CQL type, as PostgreSQL's input function reads it back
#: to the value psycopg returned (int -> bigint/integer/smallint, str -> text, UUID -> uuid).
_TEXT_FORMS: dict[str, Callable[[Any], str]] = {
    "bigint": int.__str__,
    "int": int.__str__,
    "smallint": int.__str__,
    "tinyint": int.__str__,
    "text": copy_text,
    "varchar": copy_text,
    "ascii": copy_text,
    "uuid": str,
    "timeuuid": str,
    "boolean": _boolean,
}


def copy_lines(pk_types: Sequence[str], part_count: int) -> CopyLines | None:
    """A function from a batch of primary keys to the COPY text lines ``pk...<TAB>token`` of
    the key table (``Table.pg_token_copy``), the token that of the first ``part_count`` values
    (the partition key); None when a primary-key type has no text form here (the caller
    writes rows one at a time through the driver)."""
    forms = [_TEXT_FORMS.get(t) for t in pk_types]
    if not 1 <= part_count <= len(pk_types):
        raise ValueError(f"{part_count} partition-key columns of a {len(pk_types)}-column key")
    if any(f is None for f in forms):
        return None
    token = tokenizer(pk_types[:part_count])
    fns: list[Callable[[Any], str]] = [f for f in forms if f is not None]
    if len(fns) == 1:
        (fn,) = fns

        def one_column(keys: Sequence[Sequence[Any]]) -> str:
            # `token` of a one-column partition key reads values[0]: the key row itself
            return "".join([f"{fn(k[0])}\t{token(k)}\n" for k in keys])

        return one_column

    def columns(keys: Sequence[Sequence[Any]]) -> str:
        return "".join(
            [
                "\t".join([f(v) for f, v in zip(fns, k, strict=True)])
                + f"\t{token(k[:part_count])}\n"
                for k in keys
            ]
        )

    return columns

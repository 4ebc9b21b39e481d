"""The token pass's keys as COPY text lines (decision 0141): the same rows, read back as
PostgreSQL's COPY text format reads them, as writing ``(*key, token)`` one row at a time."""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import pytest

from controlplane.core.token_ranges import partition_token
from controlplane.core.verify_tokens import copy_lines, copy_text

_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _read_copy_text(data: str) -> list[list[str]]:
    """COPY text format as PostgreSQL reads it: a row a line, fields tab-separated, the
    backslash escapes of the four characters ``copy_text`` escapes."""
    assert data.endswith("\n") or data == ""
    rows = []
    for line in data.split("\n")[:-1]:
        rows.append(
            [re.sub(r"\\[\\tnr]", lambda m: _UNESCAPE[m.group()], f) for f in line.split("\t")]
        )
    return rows


def _as_text(cql_type: str, value: Any) -> str:
    if cql_type == "boolean":
        return "t" if value else "f"
    return str(value)


def _check(types: list[str], part: int, keys: list[tuple[Any, ...]]) -> None:
    lines = copy_lines(types, part)
    assert lines is not None
    rows = _read_copy_text(lines(keys))
    assert len(rows) == len(keys)
    for key, row in zip(keys, rows, strict=True):
        assert row[:-1] == [_as_text(t, v) for t, v in zip(types, key, strict=True)]
        assert int(row[-1]) == partition_token(types[:part], key[:part])


@pytest.mark.parametrize(
    ("types", "part", "keys"),
    [
        (["bigint"], 1, [(0,), (-(2**63),), (2**63 - 1,), (42,)]),
        (["int"], 1, [(1,), (-(2**31),)]),
        (["smallint"], 1, [(-7,)]),
        (["tinyint"], 1, [(127,)]),
        (["text"], 1, [("",), ("zürich ✓",), ("a\tb\nc\rd\\e",), ("\\.",), ("\\N",)]),
        (["varchar"], 1, [("x" * 300,)]),
        (["ascii"], 1, [("plain",)]),
        (["uuid"], 1, [(uuid.UUID(int=12345),), (uuid.uuid4(),)]),
        (["timeuuid"], 1, [(uuid.uuid1(),)]),
        (["boolean"], 1, [(True,), (False,)]),
        (["bigint", "text"], 2, [(5, "ap"), (6, "a\tp")]),
        (["bigint", "text"], 1, [(5, "ap"), (5, "b\\q")]),  # a clustering column after the token's
        (["text", "int", "uuid"], 3, [("eu", -1, uuid.UUID(int=7))]),
        (["text", "int", "boolean"], 2, [("eu", 3, True), ("us\n", 4, False)]),
    ],
)
def test_lines_read_back_as_the_keys_and_their_tokens(
    types: list[str], part: int, keys: list[tuple[Any, ...]]
) -> None:
    _check(types, part, keys)


def test_random_keys() -> None:
    rnd = random.Random(141)
    alphabet = "ab\\\t\n\rz✓ "
    keys = [
        (
            rnd.randrange(-(2**63), 2**63),
            "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(8))),
        )
        for _ in range(500)
    ]
    _check(["bigint", "text"], 1, keys)
    _check(["bigint", "text"], 2, keys)
    _check(["bigint"], 1, [k[:1] for k in keys])
    assert copy_lines(["bigint"], 1)([]) == ""  # type: ignore[misc]


def test_key_types_without_a_text_form_are_left_to_the_driver() -> None:
    """None: the caller writes those rows one at a time (psycopg's adapters)."""
    for types in (["timestamp"], ["bigint", "timestamp"], ["decimal"], ["blob"], ["varint"]):
        assert copy_lines(types, 1) is None
    with pytest.raises(ValueError, match="partition-key columns"):
        copy_lines(["bigint"], 2)
    with pytest.raises(ValueError, match="partition-key columns"):
        copy_lines(["bigint"], 0)


def test_copy_text_escapes_only_what_copy_reads_specially() -> None:
    assert copy_text("plain ✓") == "plain ✓"
    assert copy_text("a\\b\tc\nd\re") == "a\\\\b\\tc\\nd\\re"
    assert copy_text("\\N") == "\\\\N"  # not NULL

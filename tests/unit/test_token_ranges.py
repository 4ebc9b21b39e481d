"""Splitting the Murmur3 ring and computing partition tokens client-side."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid

import pytest

from controlplane.core.token_ranges import (
    MAX_TOKEN,
    MIN_TOKEN,
    TokenRange,
    default_range_count,
    murmur3_token,
    partition_token,
    range_index,
    ring_ranges,
    routing_key,
    serialize_value,
    split_ring,
    tokenizer,
)


def _covers_ring(ranges: list[TokenRange]) -> None:
    assert ranges[0].start == MIN_TOKEN
    assert ranges[-1].end == MAX_TOKEN
    for a, b in itertools.pairwise(ranges):
        assert a.end == b.start  # contiguous, no overlap, no gap


@pytest.mark.parametrize("count", [1, 2, 7, 16, 1000])
def test_split_covers_the_ring_exactly(count: int) -> None:
    ranges = split_ring(count)
    assert len(ranges) == count
    _covers_ring(ranges)
    widths = [r.width for r in ranges]
    assert max(widths) - min(widths) <= 1


def test_split_is_aligned_to_the_ring_ranges() -> None:
    rnd = random.Random(7)
    ring = sorted(rnd.randrange(MIN_TOKEN + 1, MAX_TOKEN) for _ in range(16))
    ranges = split_ring(64, ring)
    _covers_ring(ranges)
    assert len(ranges) >= 64
    own = ring_ranges(ring)
    assert len(own) == 17
    for r in ranges:  # every sub-range lies inside one ring range
        assert any(o.start <= r.start and r.end <= o.end for o in own)
    assert len(split_ring(4, ring)) >= len(own)  # never fewer than the ring's ranges


def test_range_index_finds_the_owner() -> None:
    ranges = split_ring(10)
    for token in [MIN_TOKEN + 1, -1, 0, 1, MAX_TOKEN, ranges[3].end, ranges[3].end + 1]:
        i = range_index(ranges, token)
        assert token in ranges[i]


def test_default_range_count_is_eight_per_core() -> None:
    assert default_range_count(2) == 16
    assert default_range_count(0) == 8


def test_token_range_rejects_empty_and_reversed() -> None:
    with pytest.raises(ValueError, match="invalid"):
        TokenRange(5, 5)


def test_known_cassandra_tokens() -> None:
    # SELECT token(k) FROM t WHERE k = 1 for an int key answers -4069959284402364209
    assert partition_token(["int"], [1]) == -4069959284402364209
    assert murmur3_token(serialize_value("int", 1)) == -4069959284402364209


def test_composite_routing_key_layout() -> None:
    assert routing_key([b"\x01"]) == b"\x01"
    assert routing_key([b"\x01", b"ab"]) == b"\x00\x01\x01\x00\x00\x02ab\x00"


def test_psycopg_values_serialise_like_driver_values() -> None:
    u = uuid.uuid4()
    assert partition_token(["uuid", "text"], [u, "x"]) == partition_token(
        ["uuid", "text"], [u, "x"]
    )
    aware = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert partition_token(["timestamp"], [aware]) == partition_token(
        ["timestamp"], [dt.datetime(2024, 1, 1)]
    )
    with pytest.raises(ValueError, match="cannot serialise"):
        serialize_value("nonsense", 1)


@pytest.mark.parametrize(
    ("types", "values"),
    [
        (["bigint"], [0]),
        (["bigint"], [-(2**63)]),
        (["bigint"], [2**63 - 1]),
        (["int"], [1]),
        (["int"], [-(2**31)]),
        (["smallint"], [-7]),
        (["tinyint"], [127]),
        (["text"], [""]),
        (["text"], ["zürich ✓"]),
        (["varchar"], ["x" * 300]),
        (["uuid"], [uuid.UUID(int=12345)]),
        (["timestamp"], [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]),
        (["bigint", "text"], [5, "ap"]),
        (["text", "int", "uuid"], ["eu", -1, uuid.UUID(int=7)]),
    ],
)
def test_tokenizer_is_partition_token(types: list[str], values: list[object]) -> None:
    assert tokenizer(types)(values) == partition_token(types, values)


def test_tokenizer_on_random_keys_and_unknown_types() -> None:
    rnd = random.Random(15)
    one, two = tokenizer(["bigint"]), tokenizer(["int", "text"])
    for _ in range(500):
        k = rnd.randrange(-(2**63), 2**63)
        assert one([k]) == partition_token(["bigint"], [k])
        pair = [rnd.randrange(-(2**31), 2**31), str(rnd.random())]
        assert two(pair) == partition_token(["int", "text"], pair)
    assert tokenizer(["int"])([1]) == -4069959284402364209  # Cassandra's own answer
    with pytest.raises(ValueError, match="cannot serialise"):
        tokenizer(["nonsense"])

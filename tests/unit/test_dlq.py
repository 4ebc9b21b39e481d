"""The pure part of `cdcctl dlq`: Connect's context headers into a typed record, the selection of
records to replay, and exactly what a replay produces."""

from __future__ import annotations

import pytest

from controlplane.core.dlq import (
    H_CONNECTOR,
    H_EXC_CLASS,
    H_EXC_MESSAGE,
    H_EXC_TRACE,
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    H_TASK,
    H_TOPIC,
    REPLAY_HEADER,
    DlqRecord,
    RawRecord,
    decode_payload,
    parse_record,
    parse_selectors,
    plan_replay,
    replay_group,
)
from controlplane.core.errors import UsageError

DLQ = "p.dlq"


def context_headers(offset: int = 7, topic: str = "demo.ks.t") -> list[tuple[str, bytes | None]]:
    return [
        (H_TOPIC, topic.encode()),
        (H_PARTITION, b"0"),
        (H_OFFSET, str(offset).encode()),
        (H_CONNECTOR, b"p-jdbc-sink"),
        (H_TASK, b"0"),
        (H_STAGE, b"TRANSFORMATION"),
        (H_EXC_CLASS, b"org.apache.kafka.connect.errors.DataException"),
        (H_EXC_MESSAGE, b"unknown op 'x'"),
        (H_EXC_TRACE, b"org.apache.kafka.connect.errors.DataException: unknown op 'x'\n\tat ..."),
    ]


def record(
    offset: int,
    headers: list[tuple[str, bytes | None]] | None = None,
    *,
    partition: int = 0,
    value: bytes | None = b'{"payload": 1}',
) -> DlqRecord:
    return parse_record(
        RawRecord(
            topic=DLQ,
            partition=partition,
            offset=offset,
            timestamp_ms=1_700_000_000_123,
            key=b'{"payload": {"id": 1}}',
            value=value,
            headers=tuple(context_headers() if headers is None else headers),
        )
    )


def test_context_headers_become_a_typed_record() -> None:
    r = record(3)
    assert r.context is not None
    assert (r.context.topic, r.context.partition, r.context.offset) == ("demo.ks.t", 0, 7)
    assert (r.context.connector, r.context.task, r.context.stage) == (
        "p-jdbc-sink",
        0,
        "TRANSFORMATION",
    )
    assert r.context.exception_class == "org.apache.kafka.connect.errors.DataException"
    assert r.context.stacktrace is not None
    assert r.replay_of is None
    row = r.summary()
    assert row["timestamp"] == "2023-11-14T22:13:20.123+00:00"
    assert (row["partition"], row["offset"], row["topic_offset"]) == (0, 3, 7)


def test_missing_or_unreadable_coordinates_mean_no_context() -> None:
    assert record(1, []).context is None
    no_offset = [h for h in context_headers() if h[0] != H_OFFSET]
    assert record(1, no_offset).context is None
    bad = [(k, b"seven" if k == H_OFFSET else v) for k, v in context_headers()]
    assert record(1, bad).context is None
    assert record(1, []).summary()["topic"] is None


def test_detail_decodes_json_else_base64_and_keeps_every_header() -> None:
    r = record(1, [*context_headers(), ("bin", b"\xff\x00")], value=b"\x00not json")
    d = r.detail()
    assert d["key"] == {"json": {"payload": {"id": 1}}}
    assert d["value"] == {"base64": "AG5vdCBqc29u"}
    assert {"key": "bin", "value": "base64:/wA="} in d["headers"]
    assert len(d["headers"]) == len(context_headers()) + 1
    assert d["stacktrace"].startswith("org.apache.kafka.connect.errors.DataException")
    assert decode_payload(None) is None


def test_selectors() -> None:
    assert parse_selectors(["0:42", " 1:0", "0:42"]) == [(0, 42), (1, 0)]
    for bad in ("42", "0:", "a:1", "-1:3"):
        with pytest.raises(UsageError):
            parse_selectors([bad])


def test_replay_produces_the_original_bytes_without_connect_headers() -> None:
    headers = [("trace-id", b"abc"), *context_headers(), (REPLAY_HEADER, b"p.dlq/0/1")]
    r = record(9, headers)
    plan = plan_replay([r], DLQ, selected=[(0, 9)])
    (m,) = plan.messages
    assert (m.topic, m.partition) == ("demo.ks.t", 0)
    assert (m.key, m.value) == (r.raw.key, r.raw.value)
    # Own headers kept, Connect's dropped, the older marker replaced by this one.
    assert m.headers == (("trace-id", b"abc"), (REPLAY_HEADER, b"p.dlq/0/9"))


def test_replay_starts_at_the_committed_offset_and_skips_what_it_cannot_or_must_not_send() -> None:
    records = [
        record(0),  # done by an earlier replay
        record(1),
        record(2, []),  # no context: nowhere to send it
        record(3, [*context_headers(), (REPLAY_HEADER, b"p.dlq/0/1")]),  # failed again
        record(0, partition=1),
    ]
    plan = plan_replay(records, DLQ, committed={0: 1})
    sent = [(m.source.raw.partition, m.source.raw.offset) for m in plan.messages]
    assert sent == [(0, 1), (1, 0)]
    assert [(s.source.raw.offset, s.reason.split(" ")[0]) for s in plan.skipped] == [
        (2, "no"),
        (3, "failed"),
    ]
    assert "--offset 0:3" in plan.skipped[1].reason
    # The group moves past skipped records too: they stay in the DLQ, listed by `dlq ls`.
    assert plan.commit == {0: 4, 1: 1}


def test_nothing_new_means_nothing_sent_and_nothing_committed() -> None:
    plan = plan_replay([record(0), record(1)], DLQ, committed={0: 2})
    assert (plan.messages, plan.skipped, plan.commit) == ([], [], {})


def test_named_offsets_replay_exactly_those_even_failed_replays_and_leave_the_group() -> None:
    again = record(3, [*context_headers(), (REPLAY_HEADER, b"p.dlq/0/1")])
    plan = plan_replay([record(1), record(2), again], DLQ, selected=[(0, 3), (0, 1)])
    assert [m.source.raw.offset for m in plan.messages] == [3, 1]
    assert plan.commit == {}
    with pytest.raises(UsageError, match="0:5"):
        plan_replay([record(1)], DLQ, selected=[(0, 5)])


def test_replay_group_name() -> None:
    assert replay_group("orders") == "cdcctl-dlq-replay-orders"

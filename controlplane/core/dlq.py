"""Dead-letter records of a pipeline's sink, pure: parsing, selection and what a replay produces.

Kafka Connect (``errors.tolerance=all``, ``errors.deadletterqueue.context.headers.enable=true``)
writes a failed record to the DLQ with the original key, value and headers unchanged, plus
``__connect.errors.*`` headers naming the original topic/partition/offset, the connector, task,
stage and the exception (``DeadLetterQueueReporter``). Every value is a UTF-8 string.

A replay re-produces key and value to the original topic and partition, without the Connect
headers, with ``cdcctl.replay.of=<dlq topic>/<partition>/<offset>``: a record that fails again
comes back to the DLQ carrying that header, and an unattended replay skips it instead of looping.
The adapters read and write Kafka; this module decides.

The original topic is whatever the record's headers say, and anyone who can write to the DLQ
writes those: a replay sends only to the pipeline's own table topics (`replay_topics`) and skips
any other record with its reason, ``_connect-configs`` included (decision 0090).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.core.errors import UsageError

CONNECT_PREFIX = "__connect.errors."
H_TOPIC = CONNECT_PREFIX + "topic"
H_PARTITION = CONNECT_PREFIX + "partition"
H_OFFSET = CONNECT_PREFIX + "offset"
H_CONNECTOR = CONNECT_PREFIX + "connector.name"
H_TASK = CONNECT_PREFIX + "task.id"
H_STAGE = CONNECT_PREFIX + "stage"
H_CLASS = CONNECT_PREFIX + "class.name"
H_EXC_CLASS = CONNECT_PREFIX + "exception.class.name"
H_EXC_MESSAGE = CONNECT_PREFIX + "exception.message"
H_EXC_TRACE = CONNECT_PREFIX + "exception.stacktrace"
REPLAY_HEADER = "cdcctl.replay.of"

Headers = Sequence[tuple[str, bytes | None]]

_SELECTOR = re.compile(r"^(\d+):(\d+)$")


def replay_group(pipeline: str) -> str:
    """The consumer group whose committed offsets record how far `dlq replay` has got."""
    return f"cdcctl-dlq-replay-{pipeline}"


@dataclass(frozen=True)
class RawRecord:
    """A Kafka record as the adapter reads it: bytes in, nothing interpreted."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True)
class ErrorContext:
    """What Connect's context headers say about the failure."""

    topic: str
    partition: int
    offset: int
    connector: str | None
    task: int | None
    stage: str | None
    executing_class: str | None
    exception_class: str | None
    exception_message: str | None
    stacktrace: str | None


@dataclass(frozen=True)
class DlqRecord:
    raw: RawRecord
    context: ErrorContext | None  # None: the context headers are missing or unreadable
    replay_of: str | None  # the DLQ coordinates this record was replayed from, if it was

    @property
    def coordinates(self) -> str:
        return f"{self.raw.partition}:{self.raw.offset}"

    def summary(self) -> dict[str, Any]:
        """One `dlq ls` row."""
        c = self.context
        return {
            "partition": self.raw.partition,
            "offset": self.raw.offset,
            "timestamp": iso_ms(self.raw.timestamp_ms),
            "topic": c.topic if c else None,
            "topic_partition": c.partition if c else None,
            "topic_offset": c.offset if c else None,
            "connector": c.connector if c else None,
            "task": c.task if c else None,
            "stage": c.stage if c else None,
            "exception": c.exception_class if c else None,
            "message": c.exception_message if c else None,
            "replay_of": self.replay_of,
        }

    def detail(self) -> dict[str, Any]:
        """`dlq show`: everything, key and value decoded when they are JSON."""
        out = self.summary()
        out["stacktrace"] = self.context.stacktrace if self.context else None
        out["key"] = decode_payload(self.raw.key)
        out["value"] = decode_payload(self.raw.value)
        out["headers"] = [{"key": k, "value": header_text(v)} for k, v in self.raw.headers]
        return out


def iso_ms(ms: int | None) -> str | None:
    if ms is None or ms < 0:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


def header_text(value: bytes | None) -> str | None:
    """A header value as text; base64 (prefixed) when it is not UTF-8."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def decode_payload(data: bytes | None) -> dict[str, Any] | None:
    """``{"json": ...}`` when the bytes are UTF-8 JSON, else ``{"base64": ...}``."""
    if data is None:
        return None
    try:
        return {"json": json.loads(data.decode("utf-8"))}
    except (UnicodeDecodeError, ValueError):
        return {"base64": base64.b64encode(data).decode()}


def _headers(headers: Headers) -> dict[str, str | None]:
    # The last occurrence wins, as Connect's Headers.lastWithName would read them.
    return {k: header_text(v) for k, v in headers}


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_context(headers: Headers) -> ErrorContext | None:
    """The error context, or None unless topic, partition and offset are all readable (without
    them a replay has nowhere to go)."""
    h = _headers(headers)
    topic, partition, offset = h.get(H_TOPIC), _int(h.get(H_PARTITION)), _int(h.get(H_OFFSET))
    if not topic or partition is None or offset is None:
        return None
    return ErrorContext(
        topic=topic,
        partition=partition,
        offset=offset,
        connector=h.get(H_CONNECTOR),
        task=_int(h.get(H_TASK)),
        stage=h.get(H_STAGE),
        executing_class=h.get(H_CLASS),
        exception_class=h.get(H_EXC_CLASS),
        exception_message=h.get(H_EXC_MESSAGE),
        stacktrace=h.get(H_EXC_TRACE),
    )


def parse_record(raw: RawRecord) -> DlqRecord:
    return DlqRecord(
        raw=raw,
        context=parse_context(raw.headers),
        replay_of=_headers(raw.headers).get(REPLAY_HEADER),
    )


def parse_selectors(values: Iterable[str]) -> list[tuple[int, int]]:
    """``PARTITION:OFFSET`` arguments, in order, without duplicates."""
    out: list[tuple[int, int]] = []
    for value in values:
        match = _SELECTOR.match(value.strip())
        if match is None:
            raise UsageError(
                f"{value!r} is not PARTITION:OFFSET",
                hint="e.g. 0:42; `cdcctl dlq ls` lists the DLQ's partitions and offsets",
            )
        pair = (int(match[1]), int(match[2]))
        if pair not in out:
            out.append(pair)
    return out


@dataclass(frozen=True)
class ReplayMessage:
    """What the producer sends for one DLQ record."""

    source: DlqRecord
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Skipped:
    source: DlqRecord
    reason: str


@dataclass
class ReplayPlan:
    messages: list[ReplayMessage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Per DLQ partition, the offset to commit once the messages are flushed (next to read).
    commit: dict[int, int] = field(default_factory=dict)


def replay_topics(table_topics: Iterable[str]) -> frozenset[str]:
    """Where a replay may send: the pipeline's table topics (``Pipeline.table_topic``) and their
    ``.tombstones`` companions (the row contract), nothing else."""
    topics = list(table_topics)
    return frozenset(topics + [t + ".tombstones" for t in topics])


def replay_message(record: DlqRecord, dlq_topic: str) -> ReplayMessage:
    """The record as it was before it failed: same key and value bytes, same partition, its own
    headers minus Connect's, plus where it was replayed from (replacing an older marker)."""
    assert record.context is not None
    kept = tuple(
        (k, v)
        for k, v in record.raw.headers
        if not k.startswith(CONNECT_PREFIX) and k != REPLAY_HEADER
    )
    marker = f"{dlq_topic}/{record.raw.partition}/{record.raw.offset}".encode()
    return ReplayMessage(
        source=record,
        topic=record.context.topic,
        partition=record.context.partition,
        key=record.raw.key,
        value=record.raw.value,
        headers=(*kept, (REPLAY_HEADER, marker)),
    )


def plan_replay(
    records: Sequence[DlqRecord],
    dlq_topic: str,
    *,
    selected: Sequence[tuple[int, int]] = (),
    committed: Mapping[int, int] | None = None,
    allowed_topics: Collection[str] | None = None,
) -> ReplayPlan:
    """What `dlq replay` does with the records read from the DLQ.

    `allowed_topics` (`replay_topics` of the pipeline; `services.dlq` always passes it): a record
    whose headers name another topic, or a negative partition, is skipped with the reason, even
    when named with --offset. None (tests of the other rules only) checks no topic.

    Without `selected`: every record at or after the replay group's committed offset of its
    partition, except records that already are failed replays (they carry ``cdcctl.replay.of``:
    replaying them unattended would loop; name them with ``--offset`` to retry) and records
    without context headers (nowhere to send them); both are reported, stay in the DLQ, and the
    group moves past them. With `selected`: exactly those records, whatever the group says, and
    the group is left alone (an explicit retry is not progress through the DLQ).
    """
    plan = ReplayPlan()
    by_coord = {(r.raw.partition, r.raw.offset): r for r in records}
    if selected:
        missing = [f"{p}:{o}" for p, o in selected if (p, o) not in by_coord]
        if missing:
            raise UsageError(
                f"not in the DLQ {dlq_topic}: {', '.join(missing)}",
                hint="`cdcctl dlq ls` lists the records (retention may have deleted older ones)",
            )
        chosen = [by_coord[s] for s in selected]
    else:
        done = committed or {}
        chosen = [
            r
            for r in sorted(records, key=lambda r: (r.raw.partition, r.raw.offset))
            if r.raw.offset >= done.get(r.raw.partition, 0)
        ]
    for record in chosen:
        if record.context is None:
            plan.skipped.append(
                Skipped(record, "no __connect.errors.topic/partition/offset headers")
            )
        elif allowed_topics is not None and record.context.topic not in allowed_topics:
            plan.skipped.append(
                Skipped(
                    record,
                    f"its headers name topic {record.context.topic!r}, which is not one of "
                    "this pipeline's table topics; not sent",
                )
            )
        elif record.context.partition < 0:
            plan.skipped.append(
                Skipped(record, f"its headers name partition {record.context.partition}")
            )
        elif record.replay_of is not None and not selected:
            plan.skipped.append(
                Skipped(
                    record,
                    f"failed again after a replay of {record.replay_of}; "
                    f"retry it with --offset {record.coordinates}",
                )
            )
        else:
            plan.messages.append(replay_message(record, dlq_topic))
        if not selected:
            p = record.raw.partition
            plan.commit[p] = max(plan.commit.get(p, 0), record.raw.offset + 1)
    return plan


def destinations(plans: Iterable[ReplayPlan]) -> dict[str, int]:
    """How many records a replay sends to each topic, by topic name."""
    counts: dict[str, int] = {}
    for plan in plans:
        for m in plan.messages:
            counts[m.topic] = counts.get(m.topic, 0) + 1
    return dict(sorted(counts.items()))


def confirmation(plans: Sequence[ReplayPlan]) -> str:
    """The question asked before sending: every destination topic and its count (a header could
    name any topic: the operator sees where records go, not only how many)."""
    counts = destinations(plans)
    total = sum(counts.values())
    skipped = sum(len(p.skipped) for p in plans)
    lines = [f"Replay {total} record(s) to:"]
    lines += [f"  {topic}: {n}" for topic, n in counts.items()]
    if skipped:
        lines.append(f"({skipped} record(s) skipped: see REASON with --dry-run)")
    lines.append("Send?")
    return "\n".join(lines)

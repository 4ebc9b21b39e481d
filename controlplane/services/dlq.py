"""`cdcctl dlq ls|show|replay`: the dead-letter records of each pipeline's sink connector.

Reading never commits (the adapter assigns partitions and stops at the high watermark). Replay
progress is the consumer group ``cdcctl-dlq-replay-<pipeline>``: its offsets are committed only
after every replayed record was acknowledged by Kafka, so a crash in between replays a record
twice (a no-op behind the LWW gate), never loses one. See docs/dlq.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.adapters import kafka, tracing
from controlplane.core.dlq import (
    DlqRecord,
    ReplayPlan,
    confirmation,
    parse_record,
    parse_selectors,
    plan_replay,
    replay_group,
    replay_topics,
)
from controlplane.core.errors import UsageError
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.target import KafkaEndpoint, Target, endpoints_for

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DlqSource:
    """One pipeline's DLQ and the Kafka it lives in (as the target reaches it)."""

    pipeline: str
    bootstrap: KafkaEndpoint
    topic: str
    # Where a replay may send (the pipeline's table topics); empty: nowhere.
    replay_to: frozenset[str] = frozenset()

    @classmethod
    def of(cls, p: Pipeline, target: Target) -> DlqSource:
        allowed = replay_topics(p.table_topic(t) for t in p.captured_tables)
        return cls(p.name, endpoints_for(target, p).kafka, p.dlq_topic, allowed)

    @property
    def group(self) -> str:
        return replay_group(self.pipeline)


def sources(
    paths: Iterable[str | Path], target: Target, pipeline: str | None = None
) -> list[DlqSource]:
    found = [DlqSource.of(item.pipeline, target) for item in load_manifests(paths)]
    if pipeline is None:
        return found
    chosen = [t for t in found if t.pipeline == pipeline]
    if not chosen:
        raise UsageError(
            f"no pipeline named {pipeline!r} in the manifests",
            hint=f"pipelines: {', '.join(t.pipeline for t in found) or 'none'}",
        )
    return chosen


def one_source(paths: Iterable[str | Path], target: Target, pipeline: str | None) -> DlqSource:
    found = sources(paths, target, pipeline)
    if len(found) != 1:
        raise UsageError(
            "PARTITION:OFFSET needs one pipeline; the manifests define "
            + ", ".join(t.pipeline for t in found),
            hint="name it with --pipeline NAME",
        )
    return found[0]


def read(
    source: DlqSource, *, tail: int | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> list[DlqRecord]:
    raw = kafka.read_topic(source.bootstrap, source.topic, tail=tail, deadline_s=timeout)
    return [parse_record(r) for r in raw]


def list_records(
    found: Sequence[DlqSource], *, limit: int | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> list[dict[str, Any]]:
    """`dlq ls`: per pipeline its DLQ records (the newest `limit` if given), oldest first, with
    whether `dlq replay` has gone past each one."""
    rows: list[dict[str, Any]] = []
    for t in found:
        records = read(t, tail=limit, timeout=timeout)
        if limit is not None:  # the tail of each partition, then the newest overall
            records = sorted(records, key=lambda r: (r.raw.timestamp_ms or 0, r.raw.offset))
            records = records[-limit:] if limit else []
        done = kafka.committed_offsets(t.bootstrap, t.group, t.topic) if records else {}
        for r in records:
            row = {"pipeline": t.pipeline, "dlq": t.topic, **r.summary()}
            row["replayed"] = r.raw.offset < done.get(r.raw.partition, 0)
            rows.append(row)
    return rows


def show_record(
    source: DlqSource, selector: str, *, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """`dlq show`: one record in full."""
    ((p, o),) = parse_selectors([selector])
    raw = kafka.read_topic(
        source.bootstrap, source.topic, start={p: o}, partitions=[p], deadline_s=timeout
    )
    hit = next((r for r in raw if r.offset == o), None)
    if hit is None:
        raise UsageError(
            f"no record {p}:{o} in the DLQ {source.topic} of pipeline {source.pipeline}",
            hint="`cdcctl dlq ls` lists the records (retention may have deleted older ones)",
        )
    return {"pipeline": source.pipeline, "dlq": source.topic, **parse_record(hit).detail()}


@dataclass
class PlannedReplay:
    source: DlqSource
    plan: ReplayPlan
    explicit: bool  # records named with --offset: the replay group is left alone


def plan_replays(
    found: Sequence[DlqSource], selectors: Sequence[str] = (), *, timeout: float = DEFAULT_TIMEOUT_S
) -> list[PlannedReplay]:
    if selectors and len(found) != 1:
        raise UsageError(
            "--offset needs one pipeline; the manifests define "
            + ", ".join(t.pipeline for t in found),
            hint="name it with --pipeline NAME",
        )
    selected = parse_selectors(selectors)
    out = []
    for t in found:
        if selected:
            parts = {p for p, _ in selected}
            start = {p: min(o for q, o in selected if q == p) for p in parts}
            raw = kafka.read_topic(
                t.bootstrap, t.topic, start=start, partitions=parts, deadline_s=timeout
            )
            committed: dict[int, int] = {}
        else:
            committed = kafka.committed_offsets(t.bootstrap, t.group, t.topic)
            raw = kafka.read_topic(t.bootstrap, t.topic, start=committed, deadline_s=timeout)
        records = [parse_record(r) for r in raw]
        plan = plan_replay(
            records, t.topic, selected=selected, committed=committed, allowed_topics=t.replay_to
        )
        out.append(PlannedReplay(t, plan, explicit=bool(selected)))
    return out


def replay_question(planned: Sequence[PlannedReplay]) -> str:
    """What `dlq replay` asks before sending: each destination topic with its count."""
    return confirmation([p.plan for p in planned])


def execute_replays(
    planned: Sequence[PlannedReplay], *, on_delivered: Callable[[int], None] | None = None
) -> None:
    """Produce each pipeline's messages, flush, then (only then) commit the replay group.
    Traced as ``dlq.replay`` with one ``dlq.replay.pipeline`` span per pipeline (its DLQ topic,
    how many records it replays and skips, whether the replay group was committed); record
    contents never reach a span."""
    total = sum(len(p.plan.messages) for p in planned)
    with tracing.span("dlq.replay", pipelines=len(planned), records=total):
        sent = 0
        for item in planned:
            base = sent

            def delivered(n: int, base: int = base) -> None:
                if on_delivered is not None:
                    on_delivered(base + n)

            out = [
                kafka.OutgoingRecord(m.topic, m.partition, m.key, m.value, m.headers)
                for m in item.plan.messages
            ]
            with tracing.span(
                "dlq.replay.pipeline",
                pipeline=item.source.pipeline,
                dlq=item.source.topic,
                records=len(out),
                skipped=len(item.plan.skipped),
                committed=not item.explicit,
            ):
                if out:
                    kafka.produce(item.source.bootstrap, out, on_delivered=delivered)
                sent += len(out)
                if not item.explicit:
                    t = item.source
                    kafka.commit_offsets(t.bootstrap, t.group, t.topic, item.plan.commit)


def replay_rows(planned: Sequence[PlannedReplay], *, done: bool) -> list[dict[str, Any]]:
    """One row per record considered: replayed (or `would replay` in a dry run) or skipped."""
    rows: list[dict[str, Any]] = []
    for item in planned:
        for m in item.plan.messages:
            rows.append(
                _row(item, m.source, "replayed" if done else "would replay", None)
                | {"to": f"{m.topic}/{m.partition}"}
            )
        for s in item.plan.skipped:
            rows.append(_row(item, s.source, "skipped", s.reason) | {"to": None})
    rows.sort(key=lambda r: (r["pipeline"], r["partition"], r["offset"]))
    return rows


def _row(item: PlannedReplay, r: DlqRecord, action: str, reason: str | None) -> dict[str, Any]:
    return {
        "pipeline": item.source.pipeline,
        "dlq": item.source.topic,
        "partition": r.raw.partition,
        "offset": r.raw.offset,
        "action": action,
        "reason": reason,
    }

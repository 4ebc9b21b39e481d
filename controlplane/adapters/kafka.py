"""Apache Kafka through confluent-kafka; its errors become `KafkaError` here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

from controlplane.core.dlq import RawRecord
from controlplane.core.errors import KafkaError
from controlplane.core.target import KafkaEndpoint

# A bootstrap list "host:port,..." (plaintext) or an endpoint with TLS settings.
Bootstrap = str | KafkaEndpoint


def client_config(bootstrap: Bootstrap) -> dict[str, Any]:
    """librdkafka settings to reach the cluster: servers, and when the target asks for it TLS
    (the brokers' names verified) with its CA and client certificate (mTLS, decision 0114).
    A file that cannot be read is a `KafkaError` naming it (librdkafka's own message would
    not say which setting)."""
    if isinstance(bootstrap, str):
        return {"bootstrap.servers": bootstrap, "log_level": 0}
    config: dict[str, Any] = {"bootstrap.servers": bootstrap.servers, "log_level": 0}
    if bootstrap.tls:
        config["security.protocol"] = "SSL"
        config["ssl.endpoint.identification.algorithm"] = "https"
        files = {
            "ssl.ca.location": ("caFile", bootstrap.ca_file),
            "ssl.certificate.location": ("certFile", bootstrap.cert_file),
            "ssl.key.location": ("keyFile", bootstrap.key_file),
        }
        for key, (field, path) in files.items():
            if path is None:
                continue
            if not os.access(path, os.R_OK):
                raise KafkaError(
                    f"cannot read Kafka's TLS file {path} (kafka.tls.{field})",
                    hint="check the path and its permissions in the context (or the local "
                    "stack's secrets/)",
                )
            config[key] = path
    return config


def ping(bootstrap: Bootstrap, timeout: float = 3.0) -> int:
    """Number of brokers once the cluster answers a metadata request."""
    admin = AdminClient(client_config(bootstrap))
    try:
        md = admin.list_topics(timeout=timeout)
    except Exception as exc:  # confluent_kafka raises KafkaException, not one base class
        raise KafkaError(f"Kafka at {bootstrap} did not answer: {exc}") from exc
    return len(md.brokers)


def ensure_topics(bootstrap: Bootstrap, topics: list[str], timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet (broker defaults: 7-day retention); return them."""
    # confluent_kafka.admin re-exports NewTopic from cimpl without marking it public.
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = AdminClient(client_config(bootstrap))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
        missing = [t for t in topics if t not in existing]
        if not missing:
            return []
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=1, replication_factor=-1) for t in missing],
            request_timeout=timeout,
        )
        for topic, fut in futures.items():
            try:
                fut.result(timeout)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaError(f"cannot create topic {topic}: {exc}") from exc
        return missing
    except KafkaError:
        raise
    except Exception as exc:
        raise KafkaError(f"Kafka at {bootstrap} did not answer: {exc}") from exc


def existing_topics(bootstrap: Bootstrap, timeout: float = 10.0) -> set[str]:
    """Names of the topics that exist."""
    admin = AdminClient(client_config(bootstrap))
    try:
        return set(admin.list_topics(timeout=timeout).topics)
    except Exception as exc:
        raise KafkaError(f"Kafka at {bootstrap} did not answer: {exc}") from exc


def consumer_lag(
    bootstrap: Bootstrap, group: str, timeout: float = 10.0
) -> list[dict[str, object]]:
    """Per partition the group has committed: committed offset, log end offset and lag."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    admin = AdminClient(client_config(bootstrap))
    try:
        futures = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=timeout
        )
        committed = futures[group].result(timeout).topic_partitions or []
        parts = [tp for tp in committed if tp.error is None]
        if not parts:
            return []
        spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        latest = admin.list_offsets(
            {TopicPartition(tp.topic, tp.partition): spec for tp in parts},
            request_timeout=timeout,
        )
        ends = {(tp.topic, tp.partition): f.result(timeout).offset for tp, f in latest.items()}
    except Exception as exc:
        raise KafkaError(f"cannot read consumer group {group} offsets: {exc}") from exc
    rows: list[dict[str, object]] = []
    for tp in sorted(parts, key=lambda t: (t.topic, t.partition)):
        end = ends.get((tp.topic, tp.partition))
        offset = tp.offset if tp.offset >= 0 else None
        lag = None if end is None or offset is None else max(end - offset, 0)
        rows.append(
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "committed": offset,
                "end": end,
                "lag": lag,
            }
        )
    return rows


def group_members(bootstrap: Bootstrap, group: str, timeout: float = 10.0) -> int:
    """How many consumers are members of the group now (0 for an empty or unknown group)."""
    admin = AdminClient(client_config(bootstrap))
    try:
        futures = admin.describe_consumer_groups([group], request_timeout=timeout)
        description = futures[group].result(timeout)
    except Exception as exc:
        raise KafkaError(f"cannot describe consumer group {group}: {exc}") from exc
    return len(description.members or [])


def topic_records(bootstrap: Bootstrap, topic: str, timeout: float = 10.0) -> int | None:
    """Records a topic holds now: log end minus log start offsets over its partitions (None
    when the topic does not exist)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    admin = AdminClient(client_config(bootstrap))
    try:
        md = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            return None
        parts = [TopicPartition(topic, p) for p in md.partitions]
        ends = {
            tp.partition: f.result(timeout).offset
            for tp, f in admin.list_offsets(
                {tp: OffsetSpec.latest() for tp in parts},  # type: ignore[no-untyped-call]
                request_timeout=timeout,
            ).items()
        }
        starts = {
            tp.partition: f.result(timeout).offset
            for tp, f in admin.list_offsets(
                {tp: OffsetSpec.earliest() for tp in parts},  # type: ignore[no-untyped-call]
                request_timeout=timeout,
            ).items()
        }
    except Exception as exc:
        raise KafkaError(f"cannot read the offsets of topic {topic}: {exc}") from exc
    return sum(max(int(ends[p]) - int(starts.get(p, 0)), 0) for p in ends)


# --- reading and writing records (dlq) ------------------------------------------------------


def _consumer(bootstrap: Bootstrap, group: str | None) -> Any:
    from confluent_kafka import Consumer

    # assign() never joins the group and auto-commit is off: reading has no group side effects.
    # librdkafka wants a group.id for committed()/commit(); a reader gets a name nobody commits.
    return Consumer(
        {
            **client_config(bootstrap),
            "group.id": group or "cdcctl-reader-no-commit",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "log_level": 0,
        }
    )


def read_topic(
    bootstrap: Bootstrap,
    topic: str,
    *,
    start: Mapping[int, int] | None = None,
    partitions: Collection[int] | None = None,
    tail: int | None = None,
    deadline_s: float = 30.0,
) -> list[RawRecord]:
    """Every record of `topic` (only `partitions` if given) from `start` (per partition; default
    its low watermark, or the last `tail` records) up to the high watermark seen when the read
    began, without committing anything."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap, None)
    try:
        md = consumer.list_topics(topic, timeout=min(deadline_s, 10.0))
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None:
            if tmd is not None and "UNKNOWN_TOPIC" not in str(tmd.error):
                raise KafkaError(f"cannot read topic {topic}: {tmd.error}")
            return []  # no DLQ topic yet: nothing ever failed
        ends: dict[int, int] = {}
        assignment = []
        for p in sorted(tmd.partitions):
            if partitions is not None and p not in partitions:
                continue
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=min(deadline_s, 10.0)
            )
            begin = max(low, (start or {}).get(p, low), high - tail if tail else low)
            if begin < high:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, begin))
        records: list[RawRecord] = []
        if not assignment:
            return records
        consumer.assign(assignment)
        end_at = time.monotonic() + deadline_s
        pending = dict(ends)
        while pending:
            if time.monotonic() > end_at:
                raise KafkaError(
                    f"reading {topic} did not reach its end within {deadline_s:.0f}s "
                    f"(partitions {sorted(pending)} unfinished)",
                    hint="is the broker slow or the topic huge? raise --timeout",
                )
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is not None:
                    raise KafkaError(f"cannot read {topic}: {msg.error()}")
                p, off = msg.partition(), msg.offset()
                if p not in pending or off >= pending[p]:
                    continue
                ts_type, ts = msg.timestamp()
                records.append(
                    RawRecord(
                        topic=topic,
                        partition=p,
                        offset=off,
                        timestamp_ms=ts if ts_type else None,
                        key=msg.key(),
                        value=msg.value(),
                        headers=tuple(msg.headers() or ()),
                    )
                )
                if off + 1 >= pending[p]:
                    del pending[p]
            # Transaction markers occupy offsets no message has: trust the position as well.
            if pending:
                for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                    if tp.offset >= 0 and tp.offset >= pending.get(tp.partition, tp.offset + 1):
                        del pending[tp.partition]
        return sorted(records, key=lambda r: (r.partition, r.offset))
    except KafkaError:
        raise
    except Exception as exc:
        raise KafkaError(f"cannot read topic {topic} from {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def committed_offsets(
    bootstrap: Bootstrap, group: str, topic: str, timeout: float = 10.0
) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (partitions without one omitted)."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap, group)
    try:
        md = consumer.list_topics(topic, timeout=timeout)
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None:
            return {}
        parts = [TopicPartition(topic, p) for p in sorted(tmd.partitions)]
        got = consumer.committed(parts, timeout=timeout)
        return {tp.partition: tp.offset for tp in got if tp.error is None and tp.offset >= 0}
    except Exception as exc:
        raise KafkaError(f"cannot read consumer group {group} offsets: {exc}") from exc
    finally:
        consumer.close()


def commit_offsets(
    bootstrap: Bootstrap, group: str, topic: str, offsets: Mapping[int, int], timeout: float = 10.0
) -> None:
    """Commit `offsets` (partition -> next offset to read) for `group` without joining it."""
    if not offsets:
        return
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap, group)
    try:
        done = consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in sorted(offsets.items())],
            asynchronous=False,
        )
        failed = [tp for tp in done or [] if tp.error is not None]
        if failed:
            raise KafkaError(f"cannot commit {group} offsets: {failed[0].error}")
    except KafkaError:
        raise
    except Exception as exc:
        raise KafkaError(f"cannot commit consumer group {group} offsets: {exc}") from exc
    finally:
        consumer.close()


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def produce(
    bootstrap: Bootstrap,
    records: Sequence[OutgoingRecord],
    *,
    on_delivered: Callable[[int], None] | None = None,
    timeout: float = 60.0,
) -> None:
    """Send every record with an idempotent producer and wait until all are acknowledged; raise
    `KafkaError` if any was not (then nothing may be recorded as done)."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            **client_config(bootstrap),
            "enable.idempotence": True,  # acks=all, no duplicates from internal retries
            "log_level": 0,
        }
    )
    errors: list[str] = []
    delivered = 0

    def report(err: Any, _msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(str(err))
        else:
            delivered += 1
            if on_delivered is not None:
                on_delivered(delivered)

    try:
        for rec in records:
            kwargs: dict[str, Any] = {
                "key": rec.key,
                "value": rec.value,
                "headers": list(rec.headers),
                "on_delivery": report,
            }
            if rec.partition is not None:
                kwargs["partition"] = rec.partition
            while True:
                try:
                    producer.produce(rec.topic, **kwargs)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.5)
            producer.poll(0)
        remaining = producer.flush(timeout)
    except Exception as exc:
        raise KafkaError(f"cannot produce to Kafka at {bootstrap}: {exc}") from exc
    if remaining:
        raise KafkaError(f"{remaining} record(s) not acknowledged by Kafka within {timeout:.0f}s")
    if errors:
        raise KafkaError(f"{len(errors)} record(s) not delivered: {errors[0]}")

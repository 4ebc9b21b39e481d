"""Apache Kafka through confluent-kafka; its errors become `KafkaError` here."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from controlplane.core.errors import KafkaError


def ping(bootstrap: str, timeout: float = 3.0) -> int:
    """Number of brokers once the cluster answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        md = admin.list_topics(timeout=timeout)
    except Exception as exc:  # confluent_kafka raises KafkaException, not one base class
        raise KafkaError(f"Kafka at {bootstrap} did not answer: {exc}") from exc
    return len(md.brokers)


def ensure_topics(bootstrap: str, topics: list[str], timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet (broker defaults: 7-day retention); return them."""
    # confluent_kafka.admin re-exports NewTopic from cimpl without marking it public.
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
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


def existing_topics(bootstrap: str, timeout: float = 10.0) -> set[str]:
    """Names of the topics that exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return set(admin.list_topics(timeout=timeout).topics)
    except Exception as exc:
        raise KafkaError(f"Kafka at {bootstrap} did not answer: {exc}") from exc


def consumer_lag(bootstrap: str, group: str, timeout: float = 10.0) -> list[dict[str, object]]:
    """Per partition the group has committed: committed offset, log end offset and lag."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
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

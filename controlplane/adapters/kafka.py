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

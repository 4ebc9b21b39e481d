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

"""Where a chaos topic's events come from: how many distinct (commit-log file, position, key)
the agents sent (one per replica per write expected) and how many were the same position sent
again by the same node's agent (every agent is named alike in ``source.name``; the segment's file
name tells the nodes apart).

Run after a chaos session, before the next resets the topic:
``python -m tests.chaos.resends BOOTSTRAP demo.chaos_rf3.t``"""

from __future__ import annotations

import json
import sys
from collections import Counter

from confluent_kafka import Consumer, TopicPartition

from tests.chaos.support import kafka_settings, topic_partitions


def count(bootstrap: str, topic: str) -> dict[str, object]:
    c = Consumer(
        kafka_settings(bootstrap, **{"group.id": "cdc-chaos-resends", "enable.auto.commit": False})
    )
    try:
        parts = topic_partitions(bootstrap, topic)
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        left = {p for p, end in ends.items() if end > 0}
        sent: Counter[tuple[str, int, bytes | None]] = Counter()
        while left:
            m = c.poll(10)
            if m is None:
                raise TimeoutError(f"no record within 10 s; partitions left: {sorted(left)}")
            if m.error():
                continue
            if m.offset() + 1 >= ends[m.partition()]:
                left.discard(m.partition())
            if m.value() is None:
                continue
            src = json.loads(m.value())["payload"]["source"]
            sent[(src["file"], src["pos"], m.key())] += 1
    finally:
        c.close()
    per_file: Counter[str] = Counter()
    again_file: Counter[str] = Counter()
    for (file, _, _), n in sent.items():
        per_file[file] += 1
        again_file[file] += n - 1
    return {
        "events": sum(sent.values()),
        "distinct (file, pos, key)": len(sent),
        "sent again": sum(n - 1 for n in sent.values()),
        "times sent": dict(sorted(Counter(sent.values()).items())),
        "per file (positions, sent again)": {f: [per_file[f], again_file[f]] for f in per_file},
    }


if __name__ == "__main__":
    print(json.dumps(count(sys.argv[1], sys.argv[2]), indent=1))

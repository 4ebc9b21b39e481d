package io.casscdcpg.lwwsink;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.TopicPartition;

/**
 * The rows of one transaction, per target, in COPY text, and the offsets the transaction covers
 * (every record seen, also the ones skipped or reported to the DLQ). Pure; not thread-safe.
 */
public final class Batch {

    private final Map<String, StringBuilder> rows = new LinkedHashMap<>();
    private final Map<String, Integer> counts = new HashMap<>();
    private final Map<TopicPartition, Long> nextOffsets = new HashMap<>();
    private int records;

    /** The buffer a target's next row is appended to. */
    public StringBuilder rowsOf(String target) {
        return rows.computeIfAbsent(target, t -> new StringBuilder());
    }

    /** Counts a row appended to {@code target}'s buffer. */
    public void added(String target) {
        counts.merge(target, 1, Integer::sum);
    }

    /** Marks a record as covered: its offset is committed with the transaction. */
    public void covers(TopicPartition tp, long offset) {
        nextOffsets.merge(tp, offset + 1, Math::max);
        records++;
    }

    public int records() {
        return records;
    }

    public boolean isEmpty() {
        return records == 0;
    }

    /** Targets with rows: tombstone targets first (see TableSpec#isTombstones), each in first-seen order. */
    public List<String> targets() {
        List<String> out = new ArrayList<>();
        for (boolean tombstones : new boolean[] {true, false}) {
            for (String t : rows.keySet()) {
                if (counts.getOrDefault(t, 0) > 0 && t.endsWith(LwwSinkConfig.TOMBSTONES_SUFFIX) == tombstones) {
                    out.add(t);
                }
            }
        }
        return out;
    }

    public int rowCount(String target) {
        return counts.getOrDefault(target, 0);
    }

    public String text(String target) {
        StringBuilder b = rows.get(target);
        return b == null ? "" : b.toString();
    }

    /** Next offset to consume per partition (Kafka's commit convention: last offset + 1). */
    public Map<TopicPartition, Long> nextOffsets() {
        return Map.copyOf(nextOffsets);
    }
}

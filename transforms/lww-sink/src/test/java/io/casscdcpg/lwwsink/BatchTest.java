package io.casscdcpg.lwwsink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;

import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

class BatchTest {

    @Test
    void groupsPerTargetTombstonesFirst() {
        Batch b = new Batch();
        assertTrue(b.isEmpty());
        b.rowsOf("orders").append("1\n");
        b.added("orders");
        b.rowsOf("users").append("2\n");
        b.added("users");
        b.rowsOf("orders__tombstones").append("t\n");
        b.added("orders__tombstones");
        b.rowsOf("orders").append("3\n");
        b.added("orders");
        b.rowsOf("empty"); // a buffer whose row failed to encode
        assertEquals(List.of("orders__tombstones", "orders", "users"), b.targets());
        assertEquals("1\n3\n", b.text("orders"));
        assertEquals(2, b.rowCount("orders"));
        assertEquals(0, b.rowCount("empty"));
        assertEquals("", b.text("nothing"));
    }

    @Test
    void offsetsAreTheNextToConsume() {
        Batch b = new Batch();
        TopicPartition p0 = new TopicPartition("cdc.shop.orders", 0);
        TopicPartition p1 = new TopicPartition("cdc.shop.orders", 1);
        b.covers(p0, 10);
        b.covers(p0, 11);
        b.covers(p1, 4);
        b.covers(p0, 9); // redelivered out of order: the highest wins
        assertEquals(Map.of(p0, 12L, p1, 5L), b.nextOffsets());
        assertEquals(4, b.records());
    }
}

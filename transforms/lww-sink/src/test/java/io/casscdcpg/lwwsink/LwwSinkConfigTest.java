package io.casscdcpg.lwwsink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.Test;

class LwwSinkConfigTest {

    /** What controlplane.core.render.lww_sink_tables_config writes, for one table. */
    static Map<String, String> props() {
        Map<String, String> p = new HashMap<>();
        p.put("connection.url", "jdbc:postgresql://127.0.0.1:5432/cdc?sslmode=verify-full");
        p.put("connection.username", "cdc");
        p.put("connection.password", "${vault:secret/cdc:password}");
        p.put("lww.tables", "orders__tombstones,orders");
        for (String t : List.of("orders", "orders__tombstones")) {
            p.put("lww.table." + t + ".columns", "id,a%2Cb,x%5Cy%27z,%E2%98%83,_cdc_op");
            p.put("lww.table." + t + ".stage", "CREATE TEMP TABLE s (...)");
            p.put("lww.table." + t + ".copy", "COPY pg_temp.s (...) FROM STDIN");
            p.put("lww.table." + t + ".merge", "WITH ... INSERT ...");
            p.put("lww.table." + t + ".lock", t.equals("orders") ? "SELECT pg_advisory_lock_shared(1, 2)" : "");
            p.put("lww.table." + t + ".prepare", "");
            p.put("lww.table." + t + ".unlock", t.equals("orders") ? "SELECT pg_advisory_unlock_shared(1, 2)" : "");
        }
        return p;
    }

    @Test
    void parsesTablesInOrder() {
        LwwSinkConfig c = new LwwSinkConfig(props());
        assertEquals(List.of("orders__tombstones", "orders"), List.copyOf(c.tables().keySet()));
        TableSpec rows = c.tables().get("orders");
        assertEquals(List.of("id", "a,b", "x\\y'z", "☃", "_cdc_op"), rows.columns());
        assertEquals("SELECT pg_advisory_lock_shared(1, 2)", rows.lockSql());
        assertEquals("", rows.prepareSql());
        assertTrue(c.tables().get("orders__tombstones").isTombstones());
        assertEquals(500, c.batchSize());
        assertEquals("${vault:secret/cdc:password}", c.password()); // the worker resolves it first
        assertEquals(1000, c.retry().backoffMs(1));
    }

    @Test
    void missingPartsAreNamed() {
        Map<String, String> p = props();
        p.remove("lww.table.orders.merge");
        ConfigException e = assertThrows(ConfigException.class, () -> new LwwSinkConfig(p));
        assertTrue(e.getMessage().contains("lww.table.orders.merge"), e.getMessage());
        Map<String, String> q = props();
        q.put("lww.tables", "orders,other");
        assertThrows(ConfigException.class, () -> new LwwSinkConfig(q));
    }

    @Test
    void badColumnsAndSettings() {
        assertThrows(ConfigException.class, () -> LwwSinkConfig.decodeColumns("k", "a,,b"));
        assertThrows(ConfigException.class, () -> LwwSinkConfig.decodeColumns("k", "a%G1"));
        assertEquals(List.of("a b+c"), LwwSinkConfig.decodeColumns("k", "a%20b%2Bc"));
        Map<String, String> p = props();
        p.put("batch.size", "0");
        assertThrows(ConfigException.class, () -> new LwwSinkConfig(p));
        Map<String, String> q = props();
        q.put("cdc.retry.backoff.initial.ms", "0");
        assertThrows(ConfigException.class, () -> new LwwSinkConfig(q));
        Map<String, String> r = props();
        r.remove("connection.password");
        assertNull(new LwwSinkConfig(r).password());
    }
}

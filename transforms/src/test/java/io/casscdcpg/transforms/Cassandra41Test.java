package io.casscdcpg.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.Test;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * {@code cassandra.version}: the Cassandra 4.1 agent (debezium-connector-cassandra-4 3.3.0.Final)
 * writes every date as Cassandra's raw day number (days + 2^31); with {@code cassandra.version=4.1}
 * the transform writes the date itself (docs/decisions/0113). Built from the real 4.1 captures
 * (real_c41_*.json); CapturedEventsTest checks every 4.1 capture with the option set.
 */
class Cassandra41Test {

    private static CassandraToRow<SinkRecord> smt(String version) {
        CassandraToRow<SinkRecord> smt = new CassandraToRow<>();
        smt.configure(version == null ? Map.of() : Map.of("cassandra.version", version));
        return smt;
    }

    @Test
    void optionDefaultsTo50AndTakesOnly50Or41() {
        var key = new CassandraToRow<SinkRecord>().config().configKeys().get("cassandra.version");
        assertEquals("5.0", key.defaultValue);
        assertTrue(key.documentation.contains("raw day number"));
        smt("5.0");
        smt("4.1");
        for (String bad : new String[]{"4.0", "4", "5", "", "4.1.7"}) {
            assertThrows(ConfigException.class, () -> smt(bad), bad);
        }
    }

    @Test
    void a41DateColumnIsWrittenAsItsDay() {
        SinkRecord in = Fixtures.load("real_c41_types_insert");
        int raw = ((Struct) in.value()).getStruct("after").getStruct("d").getInt32("value");
        assertEquals(2147483483, raw, "'1969-07-20' (day -165) as the 4.1 agent writes it");
        assertEquals(-165, ((Struct) smt("4.1").apply(in).value()).getInt32("d"));
        // without the option the raw number passes through (what PostgreSQL read as -infinity)
        assertEquals(raw, ((Struct) smt(null).apply(Fixtures.load("real_c41_types_insert")).value()).getInt32("d"));
    }

    @Test
    void the41AndThe50CaptureOfTheSameRowBecomeTheSameRow() {
        Struct c41 = (Struct) smt("4.1").apply(Fixtures.load("real_c41_types_insert")).value();
        Struct c50 = (Struct) smt("5.0").apply(Fixtures.load("real_types_insert")).value();
        for (String column : new String[]{"d", "a", "bi", "i", "ts", "tm", "u", "l", "m", "tup", "ud", "nest"}) {
            assertEquals(c50.get(column), c41.get(column), column);
        }
        Struct n41 = (Struct) smt("4.1").apply(Fixtures.load("real_c41_nested_insert")).value();
        Struct n50 = (Struct) smt("5.0").apply(Fixtures.load("real_nested_insert")).value();
        assertEquals(n50.getString("ld"), n41.getString("ld"), "dates in a list, extremes included");
    }

    @Test
    void a50EventIsUnchangedByTheDefault() {
        SinkRecord in = Fixtures.load("real_types_insert");
        int days = ((Struct) in.value()).getStruct("after").getStruct("d").getInt32("value");
        assertEquals(-165, days);
        assertEquals(-165, ((Struct) smt(null).apply(in).value()).getInt32("d"));
    }

    /** real_c41_row_delete / partition_delete with the partition key {@code pk} made a date column. */
    private static SinkRecord withDateKey(String name, int pkValue) {
        JsonNode doc = Fixtures.raw(name).deepCopy();
        ObjectNode key = (ObjectNode) doc.get("key");
        ObjectNode pkSchema = (ObjectNode) key.get("schema").get("fields").get(0);
        assertEquals("pk", pkSchema.get("field").asText());
        pkSchema.put("name", CqlJson.DATE).put("version", 1);
        ((ObjectNode) key.get("payload")).put("pk", pkValue);
        for (JsonNode part : doc.get("value").get("schema").get("fields")) {
            if ("after".equals(part.get("field").asText())) {
                for (JsonNode column : part.get("fields")) {
                    if ("pk".equals(column.get("field").asText())) {
                        ((ObjectNode) column.get("fields").get(0)).put("name", CqlJson.DATE).put("version", 1);
                    }
                }
            }
        }
        ObjectNode after = (ObjectNode) doc.get("value").get("payload").get("after");
        if (after.get("pk").isObject()) {
            ((ObjectNode) after.get("pk")).put("value", pkValue);
        }
        return Fixtures.fromJson(doc);
    }

    @Test
    void aDateInThePrimaryKeyIsCorrectedInTheKeyAndTheRow() {
        int raw = -165 ^ Integer.MIN_VALUE;
        SinkRecord out = smt("4.1").apply(withDateKey("real_c41_row_delete", raw));
        assertEquals(-165, ((Struct) out.key()).getInt32("pk"));
        assertEquals(-165, ((Struct) out.value()).getInt32("pk"));
        assertEquals("d", ((Struct) out.value()).getString("_cdc_op"));
        ((Struct) out.key()).validate();
    }

    @Test
    void aDateInThePartitionKeyOfATombstoneIsCorrectedAndKeepsItsId() {
        SinkRecord c41 = smt("4.1").apply(withDateKey("real_c41_partition_delete", 19_000 ^ Integer.MIN_VALUE));
        SinkRecord same = smt("5.0").apply(withDateKey("real_c41_partition_delete", 19_000));
        assertEquals("p", ((Struct) c41.value()).getString("_cdc_op"));
        assertEquals(19_000, ((Struct) c41.value()).getInt32("pk"));
        // the same delete seen by either agent is the same tombstone (duplicates stay no-ops)
        assertEquals(((Struct) same.key()).getString("_cdc_tombstone_id"),
                ((Struct) c41.key()).getString("_cdc_tombstone_id"));
    }

    @Test
    void theDayIsExactOverTheWholeRangeOfCassandraDates() {
        // Cassandra's date is an unsigned 32-bit day with 1970-01-01 at 2^31: every raw int32 maps
        // to exactly one day in [-2^31, 2^31 - 1]
        for (long day : new long[]{Integer.MIN_VALUE, -719_162, -165, -1, 0, 1, 2_932_896, Integer.MAX_VALUE}) {
            int raw = (int) (day + (1L << 31));
            assertEquals(day, (long) (Integer) CassandraToRow.fixDates(raw,
                    org.apache.kafka.connect.data.SchemaBuilder.int32().name(CqlJson.DATE).build()));
            assertEquals(day, CapturedEventsTest.dayOfRaw(raw));
        }
        // only dates: a plain int32 is left alone
        assertEquals(7, CassandraToRow.fixDates(7, org.apache.kafka.connect.data.Schema.INT32_SCHEMA));
    }
}

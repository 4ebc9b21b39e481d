package io.casscdcpg.transforms;

import static io.casscdcpg.transforms.Fixtures.e;
import static io.casscdcpg.transforms.Fixtures.entries;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.source.SourceRecord;
import org.junit.jupiter.api.Test;

/** Configuration, caching and edge cases built in code rather than from fixtures. */
class CassandraToRowBehaviourTest {

    private static CassandraToRow<SinkRecord> smt(Map<String, ?> props) {
        CassandraToRow<SinkRecord> smt = new CassandraToRow<>();
        smt.configure(props);
        return smt;
    }

    @Test
    void configDocumentsTheSuffixOption() {
        var key = new CassandraToRow<SinkRecord>().config().configKeys().get("tombstones.topic.suffix");
        assertEquals(".tombstones", key.defaultValue);
        assertTrue(key.documentation.contains("tombstone"));
    }

    @Test
    void tombstoneSuffixIsConfigurable() {
        SinkRecord out = smt(Map.of("tombstones.topic.suffix", "_tombstones")).apply(Fixtures.load("partition_delete"));
        assertEquals("cdc.shop.orders_tombstones", out.topic());
    }

    @Test
    void emptySuffixIsRejected() {
        assertThrows(ConfigException.class, () -> smt(Map.of("tombstones.topic.suffix", "")));
    }

    @Test
    void versionComesFromTheBuild() {
        assertTrue(new CassandraToRow<SinkRecord>().version().matches("\\d+\\.\\d+\\.\\d+.*"));
    }

    @Test
    void derivedSchemasAreCachedPerInputSchema() {
        CassandraToRow<SinkRecord> smt = smt(Map.of());
        SinkRecord a = Fixtures.load("insert");
        SinkRecord b = Fixtures.load("update_one_column"); // equal schemas, different instances
        assertNotSame(a.valueSchema(), b.valueSchema());
        assertEquals(a.valueSchema(), b.valueSchema());
        Schema first = smt.apply(a).valueSchema();
        assertSame(first, smt.apply(b).valueSchema());
        assertSame(first, smt.apply(a).valueSchema());
        assertSame(smt.planFor(a.keySchema(), a.valueSchema()), smt.planFor(b.keySchema(), b.valueSchema()));
        // another table gets its own plan, and coming back hits the cache again
        smt.apply(Fixtures.load("row_delete_no_clustering"));
        assertSame(first, smt.apply(b).valueSchema());
    }

    @Test
    void headersAndTimestampAreKept() {
        SinkRecord in = Fixtures.load("insert");
        ConnectHeaders headers = new ConnectHeaders();
        headers.addString("trace", "abc");
        SinkRecord withHeaders = in.newRecord(in.topic(), in.kafkaPartition(), in.keySchema(), in.key(),
                in.valueSchema(), in.value(), 123L, headers);
        SinkRecord out = smt(Map.of()).apply(withHeaders);
        assertEquals(123L, out.timestamp());
        assertEquals("abc", out.headers().lastWithName("trace").value());
    }

    @Test
    void tombstoneIdDependsOnEveryPartOfTheTombstone() {
        CassandraToRow<SinkRecord> smt = smt(Map.of());
        SinkRecord p = Fixtures.load("partition_delete");
        String id = idOf(smt.apply(p));
        assertEquals(id, idOf(smt.apply(Fixtures.load("partition_delete"))));

        Struct later = copyWithTs((Struct) p.value(), 1764080300000001L);
        assertNotEquals(id, idOf(smt.apply(p.newRecord(p.topic(), p.kafkaPartition(), p.keySchema(), p.key(),
                p.valueSchema(), later, p.timestamp()))));

        Struct otherTenant = new Struct(p.keySchema()).put("tenant", "other")
                .put("customer_id", ((Struct) p.key()).get("customer_id"));
        assertNotEquals(id, idOf(smt.apply(p.newRecord(p.topic(), p.kafkaPartition(), p.keySchema(), otherTenant,
                p.valueSchema(), p.value(), p.timestamp()))));

        assertNotEquals(id, idOf(smt.apply(Fixtures.load("range_delete"))));
    }

    private static String idOf(SinkRecord r) {
        return ((Struct) r.key()).getString("_cdc_tombstone_id");
    }

    /** A copy of a partition-delete value with every deletion_ts and source.ts_us set to ts. */
    private static Struct copyWithTs(Struct value, long ts) {
        Struct after = value.getStruct("after");
        Struct newAfter = new Struct(after.schema());
        for (var f : after.schema().fields()) {
            Object v = after.get(f);
            if (v instanceof Struct cell && cell.schema().field("deletion_ts") != null && cell.get("deletion_ts") != null) {
                Struct c = new Struct(cell.schema()).put("value", cell.get("value")).put("deletion_ts", ts)
                        .put("set", cell.get("set"));
                newAfter.put(f, c);
            }
            else {
                newAfter.put(f, v);
            }
        }
        Struct source = value.getStruct("source");
        Struct newSource = new Struct(source.schema());
        for (var f : source.schema().fields()) {
            newSource.put(f, source.get(f));
        }
        newSource.put("ts_us", ts);
        return new Struct(value.schema()).put("ts_ms", value.get("ts_ms")).put("op", value.get("op"))
                .put("source", newSource).put("after", newAfter);
    }

    // ---- events built in code ----------------------------------------------------------------

    private static final Schema SOURCE = SchemaBuilder.struct().name("source")
            .field("ts_us", Schema.OPTIONAL_INT64_SCHEMA)
            .field("snapshot", Schema.OPTIONAL_BOOLEAN_SCHEMA)
            .build();

    private static Schema cell(Schema valueSchema) {
        return SchemaBuilder.struct().name("cell_value").optional()
                .field("value", valueSchema)
                .field("deletion_ts", Schema.OPTIONAL_INT64_SCHEMA)
                .field("set", Schema.BOOLEAN_SCHEMA)
                .build();
    }

    private static final Schema POINT = SchemaBuilder.struct().name("point")
            .field("x", Schema.INT32_SCHEMA).field("y", Schema.INT32_SCHEMA).build(); // not optional
    private static final Schema KEY = SchemaBuilder.struct().name("k")
            .field("id", Schema.OPTIONAL_STRING_SCHEMA).build();
    private static final Schema AFTER = SchemaBuilder.struct().name("after")
            .field("id", cell(Schema.OPTIONAL_STRING_SCHEMA))
            .field("where", cell(POINT))
            .field("weird \"name\"\n", cell(Schema.OPTIONAL_STRING_SCHEMA))
            .field("skipped", cell(Schema.OPTIONAL_STRING_SCHEMA))
            .build();
    private static final Schema ENVELOPE = SchemaBuilder.struct().name("plain")
            .field("op", Schema.STRING_SCHEMA)
            .field("source", SOURCE)
            .field("after", AFTER)
            .build();

    private static SinkRecord codeEvent(String op, String id, Boolean snapshot) {
        Struct after = new Struct(AFTER);
        after.put("id", new Struct(AFTER.field("id").schema()).put("value", id).put("set", true));
        after.put("where", new Struct(AFTER.field("where").schema())
                .put("value", new Struct(POINT).put("x", 1).put("y", 2)).put("set", true));
        after.put("weird \"name\"\n", new Struct(AFTER.field("weird \"name\"\n").schema())
                .put("value", "v").put("deletion_ts", 99L).put("set", true));
        after.put("skipped", new Struct(AFTER.field("skipped").schema()).put("value", "ignored").put("set", false));
        Struct value = new Struct(ENVELOPE).put("op", op)
                .put("source", new Struct(SOURCE).put("ts_us", 1000L).put("snapshot", snapshot))
                .put("after", after);
        return new SinkRecord("t", 3, KEY, new Struct(KEY).put("id", id), ENVELOPE, value, 7L);
    }

    @Test
    void requiredStructColumnsAreMadeOptionalAndNamesAreEscaped() {
        SinkRecord out = smt(Map.of()).apply(codeEvent("u", "k1", true));
        Schema where = out.valueSchema().field("where").schema();
        assertTrue(where.isOptional());
        assertEquals(Schema.Type.STRING, where.type()); // a UDT becomes JSON text
        assertEquals("plain.Row", out.valueSchema().name()); // a name without .Envelope is kept whole
        Struct v = (Struct) out.value();
        v.validate();
        assertEquals(List.of(
                e("id", "k1"),
                e("where", "{\"x\":1,\"y\":2}"),
                e("weird \"name\"\n", "v"),
                e("skipped", null),
                e("_cdc_writetime", 1000L), e("_cdc_op", "u"),
                e("_cdc_set", "[\"where\",\"weird \\\"name\\\"\\n\"]"),
                e("_cdc_expiry", "{\"weird \\\"name\\\"\\n\":99}"),
                e("_cdc_snapshot", true)), entries(v));
    }

    @Test
    void booleanSnapshotFlagIsAcceptedToo() {
        Struct v = (Struct) smt(Map.of()).apply(codeEvent("i", "k1", false)).value();
        assertEquals(false, v.get("_cdc_snapshot"));
        v = (Struct) smt(Map.of()).apply(codeEvent("i", "k1", null)).value();
        assertEquals(false, v.get("_cdc_snapshot"));
    }

    @Test
    void rowEventWithNullKeyColumnIsMalformed() {
        DataException ex = assertThrows(DataException.class, () -> smt(Map.of()).apply(codeEvent("u", null, null)));
        assertTrue(ex.getMessage().contains("topic=t partition=3 offset=7"), ex.getMessage());
        assertTrue(ex.getMessage().contains("null primary-key column 'id'"), ex.getMessage());
    }

    @Test
    void deleteWithEveryKeyColumnNullIsMalformed() {
        DataException ex = assertThrows(DataException.class, () -> smt(Map.of()).apply(codeEvent("d", null, null)));
        assertTrue(ex.getMessage().contains("no partition-key value"), ex.getMessage());
    }

    @Test
    void rangeDeleteWithoutBoundsIsMalformed() {
        SinkRecord in = Fixtures.load("range_delete");
        Struct value = (Struct) in.value();
        Struct after = value.getStruct("after");
        Struct noEnd = new Struct(after.schema());
        for (var f : after.schema().fields()) {
            noEnd.put(f, f.name().equals("_range_end") ? null : after.get(f));
        }
        Struct broken = new Struct(value.schema()).put("ts_ms", value.get("ts_ms")).put("op", "r")
                .put("source", value.get("source")).put("after", noEnd);
        DataException ex = assertThrows(DataException.class, () -> smt(Map.of()).apply(
                in.newRecord(in.topic(), in.kafkaPartition(), in.keySchema(), in.key(), in.valueSchema(), broken,
                        in.timestamp())));
        assertTrue(ex.getMessage().contains("no _range_end bound"), ex.getMessage());
    }

    @Test
    void rangeDeleteWithFullKeyIsMalformed() {
        SinkRecord in = Fixtures.load("insert");
        Struct value = (Struct) in.value();
        Struct asRange = new Struct(value.schema()).put("ts_ms", value.get("ts_ms")).put("op", "r")
                .put("source", value.get("source")).put("after", value.get("after"));
        DataException ex = assertThrows(DataException.class, () -> smt(Map.of()).apply(
                in.newRecord(in.topic(), in.kafkaPartition(), in.keySchema(), in.key(), in.valueSchema(), asRange,
                        in.timestamp())));
        assertTrue(ex.getMessage().contains("no null clustering column"), ex.getMessage());
    }

    @Test
    void nonStructValueIsMalformed() {
        SinkRecord in = new SinkRecord("t", 0, KEY, new Struct(KEY).put("id", "a"), Schema.STRING_SCHEMA, "x", 5L);
        DataException ex = assertThrows(DataException.class, () -> smt(Map.of()).apply(in));
        assertTrue(ex.getMessage().contains("offset=5"), ex.getMessage());
        assertTrue(ex.getMessage().contains("value is not a struct"), ex.getMessage());
    }

    @Test
    void schemalessKeyIsMalformed() {
        SinkRecord in = Fixtures.load("insert");
        SinkRecord noKey = in.newRecord(in.topic(), in.kafkaPartition(), null, "k", in.valueSchema(), in.value(),
                in.timestamp());
        DataException ex = assertThrows(DataException.class, () -> smt(Map.of()).apply(noKey));
        assertTrue(ex.getMessage().contains("key is not a struct"), ex.getMessage());
    }

    @Test
    void sourceRecordsHaveNoOffsetInTheMessage() {
        SinkRecord in = Fixtures.load("malformed_unknown_op");
        SourceRecord src = new SourceRecord(Map.of(), Map.of(), in.topic(), 1, in.keySchema(), in.key(),
                in.valueSchema(), in.value());
        CassandraToRow<SourceRecord> smt = new CassandraToRow<>();
        smt.configure(Map.of());
        DataException ex = assertThrows(DataException.class, () -> smt.apply(src));
        assertTrue(ex.getMessage().contains("partition=1 offset=n/a"), ex.getMessage());
    }

    @Test
    void cqlIdentifiersAreUnquoted() {
        assertEquals("Day", CassandraToRow.unquoteCqlIdentifier("\"Day\""));
        assertEquals("a\"b", CassandraToRow.unquoteCqlIdentifier("\"a\"\"b\""));
        assertEquals("day", CassandraToRow.unquoteCqlIdentifier("day"));
        assertEquals("\"", CassandraToRow.unquoteCqlIdentifier("\""));
    }

    @Test
    void optionalCopiesKeepTypeNameAndParameters() {
        Schema s = SchemaBuilder.string().name("io.debezium.data.Enum").version(1)
                .parameter("allowed", "a,b").build();
        Schema o = CassandraToRow.optional(s);
        assertTrue(o.isOptional());
        assertEquals(s.name(), o.name());
        assertEquals(s.version(), o.version());
        assertEquals(s.parameters(), o.parameters());
        assertSame(Schema.OPTIONAL_STRING_SCHEMA, CassandraToRow.optional(Schema.OPTIONAL_STRING_SCHEMA));
        Schema arr = CassandraToRow.optional(SchemaBuilder.array(Schema.INT32_SCHEMA).build());
        assertEquals(Schema.INT32_SCHEMA, arr.valueSchema());
        Schema map = CassandraToRow.optional(SchemaBuilder.map(Schema.STRING_SCHEMA, Schema.INT32_SCHEMA).build());
        assertEquals(Schema.STRING_SCHEMA, map.keySchema());
        assertTrue(map.isOptional());
    }
}

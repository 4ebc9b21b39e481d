package io.casscdcpg.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Runs every event captured from the real agent (src/test/resources/events/real_*.json, written by
 * scripts/capture_events.py) through the transform and checks the output against an oracle that
 * reads the event independently of the transform's code. No captured file: no test.
 */
class CapturedEventsTest {

    /** What a capture scenario must become: a row with this op, or a tombstone with this op. */
    private static final Map<String, String> EXPECTED = Map.ofEntries(
            Map.entry("insert", "row:i"), Map.entry("insert_using_timestamp", "row:i"),
            Map.entry("insert_ttl", "row:i"), Map.entry("simple_insert", "row:i"),
            Map.entry("snapshot_row", "row:i"),
            Map.entry("update_one_column", "row:u"), Map.entry("update_set_null", "row:u"),
            Map.entry("delete_one_column", "row:u"), Map.entry("update_ttl", "row:u"),
            Map.entry("row_delete", "row:d"), Map.entry("simple_delete", "row:d"),
            Map.entry("range_delete", "tombstone:r"), Map.entry("partition_delete", "tombstone:p"),
            Map.entry("types_insert", "row:i"), Map.entry("types_list_append", "row:u"),
            Map.entry("types_list_overwrite", "row:u"), Map.entry("types_set_remove", "row:u"),
            Map.entry("types_map_put", "row:u"), Map.entry("types_map_delete_key", "row:u"),
            Map.entry("types_collection_null", "row:u"), Map.entry("types_empty_frozen", "row:u"),
            Map.entry("static_and_row", "row:i"), Map.entry("comp_insert", "row:i"),
            Map.entry("comp_range_delete", "tombstone:r"), Map.entry("comp_range_delete_desc", "tombstone:r"),
            Map.entry("comp_partition_delete", "tombstone:p"));

    private static final com.fasterxml.jackson.databind.ObjectMapper MAPPER =
            new com.fasterxml.jackson.databind.ObjectMapper();

    /**
     * What the transform must write for a collection/tuple/UDT value, read from the agent's JSON
     * and its schema: tuples (field1..n) as arrays, map keys as text, timestamps as ISO-8601 UTC,
     * dates as yyyy-mm-dd, bytes as "0x" hex (docs/transform.md, "Values inside collections").
     */
    /**
     * The date a Cassandra 4.1 agent's raw day number stands for: Cassandra serializes a date as
     * the unsigned day number days + 2^31 (SimpleDateSerializer), the agent writes it as int32.
     */
    static long dayOfRaw(long raw) {
        return Integer.toUnsignedLong((int) raw) - (1L << 31);
    }

    private static com.fasterxml.jackson.databind.JsonNode expectedJson(
            com.fasterxml.jackson.databind.JsonNode schema, com.fasterxml.jackson.databind.JsonNode n) {
        return expectedJson(schema, n, false);
    }

    private static com.fasterxml.jackson.databind.JsonNode expectedJson(
            com.fasterxml.jackson.databind.JsonNode schema, com.fasterxml.jackson.databind.JsonNode n,
            boolean rawDates) {
        var f = MAPPER.getNodeFactory();
        if (n == null || n.isNull()) {
            return f.nullNode();
        }
        String type = schema.path("type").asText();
        String name = schema.path("name").asText("");
        switch (type) {
            case "array" -> {
                var arr = MAPPER.createArrayNode();
                n.forEach(x -> arr.add(expectedJson(schema.get("items"), x, rawDates)));
                return arr;
            }
            case "map" -> {
                var obj = MAPPER.createObjectNode();
                var keys = schema.get("keys");
                if (n.isObject()) {  // string keys
                    n.fields().forEachRemaining(e -> obj.set(e.getKey(), expectedJson(schema.get("values"), e.getValue(), rawDates)));
                }
                else {  // [[key, value], ...]
                    for (var pair : n) {
                        var k = expectedJson(keys, pair.get(0), rawDates);
                        obj.set(k.isTextual() ? k.textValue() : k.toString(), expectedJson(schema.get("values"), pair.get(1), rawDates));
                    }
                }
                return obj;
            }
            case "struct" -> {
                var fields = schema.get("fields");
                boolean tuple = fields.size() > 0;
                for (var fs : fields) {
                    tuple &= fs.get("field").asText().matches("field[0-9]+");
                }
                if (tuple) {
                    var arr = MAPPER.createArrayNode();
                    fields.forEach(fs -> arr.add(expectedJson(fs, n.get(fs.get("field").asText()), rawDates)));
                    return arr;
                }
                var obj = MAPPER.createObjectNode();
                fields.forEach(fs -> obj.set(fs.get("field").asText(), expectedJson(fs, n.get(fs.get("field").asText()), rawDates)));
                return obj;
            }
            case "int64" -> {
                return CqlJson.TIMESTAMP.equals(name) ? f.textNode(java.time.Instant.ofEpochMilli(n.longValue()).toString()) : n;
            }
            case "int32" -> {
                long day = rawDates ? dayOfRaw(n.longValue()) : n.longValue();
                return CqlJson.DATE.equals(name) ? f.textNode(java.time.LocalDate.ofEpochDay(day).toString()) : n;
            }
            case "bytes" -> {
                return f.textNode("0x" + java.util.HexFormat.of().formatHex(java.util.Base64.getDecoder().decode(n.textValue())));
            }
            default -> {
                return n;
            }
        }
    }

    private static com.fasterxml.jackson.databind.JsonNode cellSchema(String name, String column) {
        for (var part : Fixtures.raw(name).path("value").path("schema").path("fields")) {
            if ("after".equals(part.path("field").asText())) {
                for (var col : part.path("fields")) {
                    if (column.equals(col.path("field").asText())) {
                        for (var cf : col.path("fields")) {
                            if ("value".equals(cf.path("field").asText())) {
                                return cf;
                            }
                        }
                    }
                }
            }
        }
        throw new AssertionError("no schema for " + column + " in " + name);
    }

    @TestFactory
    Stream<DynamicTest> everyCapturedEventFollowsTheContract() {
        return Fixtures.captured().stream().map(name -> DynamicTest.dynamicTest(name, () -> check(name)));
    }

    /** A top-level or key value as the transform must write it: a 4.1 raw day number as its day. */
    private static Object expectedScalar(Object v, org.apache.kafka.connect.data.Schema schema, boolean rawDates) {
        if (rawDates && v instanceof Integer raw && CqlJson.DATE.equals(schema.name())) {
            return Math.toIntExact(dayOfRaw(raw));
        }
        return v;
    }

    private static void check(String name) {
        // captured from a Cassandra 4.1 stack (debezium-connector-cassandra-4): the sink's
        // transform is configured with cassandra.version=4.1 there (cdcctl renders it from
        // spec.source.cassandra.version)
        boolean cassandra41 = name.startsWith("real_c41_");
        CassandraToRow<SinkRecord> smt = new CassandraToRow<>();
        smt.configure(cassandra41 ? Map.of("cassandra.version", "4.1") : Map.of());
        SinkRecord in = Fixtures.load(name);
        SinkRecord out = smt.apply(in);
        if (in.value() == null) {
            assertNull(out, "a Kafka tombstone is dropped");
            return;
        }
        assertNotNull(out);
        Struct value = (Struct) in.value();
        Struct key = (Struct) in.key();
        Struct source = value.getStruct("source");
        Struct after = value.getStruct("after");
        String op = value.getString("op");
        boolean nullKey = key.schema().fields().stream().anyMatch(f -> key.get(f) == null);
        String kind = "r".equals(op) ? "tombstone:r" : ("d".equals(op) && nullKey ? "tombstone:p" : "row:" + op);
        String scenario = Fixtures.scenario(name);
        if (scenario != null && EXPECTED.containsKey(scenario)) {
            assertEquals(EXPECTED.get(scenario), kind, "scenario " + scenario);
        }
        Struct o = (Struct) out.value();
        o.validate();
        if (kind.startsWith("row:")) {
            assertEquals(in.topic(), out.topic());
            for (Field f : key.schema().fields()) {
                assertEquals(expectedScalar(key.get(f), f.schema(), cassandra41), ((Struct) out.key()).get(f.name()), f.name());
            }
            List<String> set = new ArrayList<>();
            List<String> expiry = new ArrayList<>();
            for (Field f : after.schema().fields()) {
                if (f.name().startsWith("_range_")) {
                    continue;
                }
                Struct cell = after.getStruct(f.name());
                if (key.schema().field(f.name()) != null) {
                    Field kf = key.schema().field(f.name());
                    assertEquals(expectedScalar(key.get(kf), kf.schema(), cassandra41), o.get(f.name()), f.name());
                    continue;
                }
                if (cell == null) {
                    assertNull(o.get(f.name()), f.name());
                    continue;
                }
                org.apache.kafka.connect.data.Schema.Type vt = cell.schema().field("value").schema().type();
                if (vt == org.apache.kafka.connect.data.Schema.Type.ARRAY
                        || vt == org.apache.kafka.connect.data.Schema.Type.MAP
                        || vt == org.apache.kafka.connect.data.Schema.Type.STRUCT) {
                    var rawValue = Fixtures.raw(name).path("value").path("payload").path("after")
                            .path(f.name()).path("value");
                    if (rawValue.isNull()) {
                        assertNull(o.get(f.name()), f.name());
                    }
                    else {
                        try {
                            assertEquals(expectedJson(cellSchema(name, f.name()), rawValue, cassandra41),
                                    MAPPER.readTree(o.getString(f.name())), f.name());
                        }
                        catch (java.io.IOException e) {
                            throw new AssertionError(f.name() + ": not JSON: " + o.get(f.name()), e);
                        }
                    }
                }
                else {
                    assertEquals(expectedScalar(cell.get("value"), cell.schema().field("value").schema(), cassandra41),
                            o.get(f.name()), f.name());
                }
                set.add(Json.quote(f.name()));
                if (!"d".equals(op) && cell.get("deletion_ts") != null) {
                    expiry.add(Json.quote(f.name()) + ":" + cell.getInt64("deletion_ts"));
                }
            }
            assertEquals(source.getInt64("ts_us"), o.getInt64("_cdc_writetime"));
            assertEquals(op, o.getString("_cdc_op"));
            assertEquals("[" + String.join(",", set) + "]", o.getString("_cdc_set"));
            assertEquals(expiry.isEmpty() ? null : "{" + String.join(",", expiry) + "}", o.getString("_cdc_expiry"));
            assertEquals("true".equals(source.get("snapshot")), o.getBoolean("_cdc_snapshot"));
            if ("types_insert".equals(scenario)) {
                assertEquals("[7,\"seven\"]", o.getString("tup"));
                assertEquals("{\"street\":\"Main\",\"Zip\":12345}", o.getString("ud"));
                assertEquals("{\"p\":[1,2],\"q\":[]}", o.getString("nest"));
                assertEquals("[[1,2],[3]]", o.getString("nl"));
            }
            if ("nested_insert".equals(scenario)) {
                assertEquals("[\"0001-01-01T00:00:00Z\",\"1969-12-31T23:59:59.999Z\",\"1970-01-01T00:00:00Z\","
                        + "\"9999-12-31T23:59:59.999Z\"]", o.getString("lts"));
                assertEquals("[\"0x\",\"0x00ff\",\"0xcafe\"]", o.getString("lbl"));
                assertEquals("{\"NaN\":1,\"-Infinity\":2,\"0.5\":3}".length(), o.getString("mdb").length());
                // The cassandra-4 agent (3.3.0.Final) writes Cassandra's raw day number for every
                // date; with cassandra.version=4.1 the transform writes the dates themselves, the
                // extremes included. Its decimals are float64 (-1.5 and 0.0 as numbers): lost in
                // the agent, passed on as they are (docs/decisions/0113).
                assertEquals("[\"-5877641-06-23\",\"0001-01-01\",\"1969-12-31\",\"+5881580-07-11\"]",
                        o.getString("ld"));
                if (cassandra41) {
                    assertEquals("[[\"1969-12-31T23:59:59.999Z\",[0.0,-1.5]],[\"9999-12-31T23:59:59.999Z\",[]]]",
                            o.getString("deep"));
                }
                else {
                    assertEquals("[[\"1969-12-31T23:59:59.999Z\",[\"0.0\",\"-1.5\"]],[\"9999-12-31T23:59:59.999Z\",[]]]",
                            o.getString("deep"));
                }
            }
            if (cassandra41 && "types_insert".equals(scenario)) {
                // 4.1 agent: decimal as float64 (precision lost), varint as int64 (wrapped to 64
                // bits): lost in the agent, passed on as they are; the date is corrected.
                assertEquals(1.2345678901234568E29, o.getFloat64("dc"));
                assertEquals(4362896299872285998L, o.getInt64("vi"), "-123456789012345678901234567890 mod 2^64");
                assertEquals(-165, o.getInt32("d"), "'1969-07-20' is day -165");
                assertEquals(-165 ^ Integer.MIN_VALUE, value.getStruct("after").getStruct("d").getInt32("value"),
                        "the agent wrote the raw day number");
            }
            if ("types_map_delete_key".equals(scenario)) {
                assertEquals("{\"k1\":null}", o.getString("m"), "a removed map key looks like a key set to null");
            }
            if ("insert_ttl".equals(scenario) || "update_ttl".equals(scenario)) {
                assertNotNull(o.getString("_cdc_expiry"), "a TTL write reports its expiry");
            }
        }
        else {
            assertEquals(in.topic() + ".tombstones", out.topic());
            assertTrue(((Struct) out.key()).getString("_cdc_tombstone_id").matches("[0-9a-f]{64}"));
            for (Field f : key.schema().fields()) {
                if (key.get(f) != null) {
                    assertEquals(expectedScalar(key.get(f), f.schema(), cassandra41), o.get(f.name()), f.name());
                }
                else {
                    assertNull(o.schema().field(f.name()), "clustering column " + f.name() + " not in a tombstone");
                }
            }
            assertEquals(kind.substring("tombstone:".length()), o.getString("_cdc_op"));
            if ("r".equals(op)) {
                assertEquals(source.getInt64("ts_us"), o.getInt64("_cdc_writetime"));
                assertNotNull(o.getString("_cdc_range_start"));
                assertNotNull(o.getString("_cdc_range_end"));
            }
            else {
                assertNull(o.getString("_cdc_range_start"));
                assertNull(o.getString("_cdc_range_end"));
            }
        }
    }
}

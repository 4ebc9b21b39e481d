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
    private static com.fasterxml.jackson.databind.JsonNode expectedJson(
            com.fasterxml.jackson.databind.JsonNode schema, com.fasterxml.jackson.databind.JsonNode n) {
        var f = MAPPER.getNodeFactory();
        if (n == null || n.isNull()) {
            return f.nullNode();
        }
        String type = schema.path("type").asText();
        String name = schema.path("name").asText("");
        switch (type) {
            case "array" -> {
                var arr = MAPPER.createArrayNode();
                n.forEach(x -> arr.add(expectedJson(schema.get("items"), x)));
                return arr;
            }
            case "map" -> {
                var obj = MAPPER.createObjectNode();
                var keys = schema.get("keys");
                if (n.isObject()) {  // string keys
                    n.fields().forEachRemaining(e -> obj.set(e.getKey(), expectedJson(schema.get("values"), e.getValue())));
                }
                else {  // [[key, value], ...]
                    for (var pair : n) {
                        var k = expectedJson(keys, pair.get(0));
                        obj.set(k.isTextual() ? k.textValue() : k.toString(), expectedJson(schema.get("values"), pair.get(1)));
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
                    fields.forEach(fs -> arr.add(expectedJson(fs, n.get(fs.get("field").asText()))));
                    return arr;
                }
                var obj = MAPPER.createObjectNode();
                fields.forEach(fs -> obj.set(fs.get("field").asText(), expectedJson(fs, n.get(fs.get("field").asText()))));
                return obj;
            }
            case "int64" -> {
                return CqlJson.TIMESTAMP.equals(name) ? f.textNode(java.time.Instant.ofEpochMilli(n.longValue()).toString()) : n;
            }
            case "int32" -> {
                return CqlJson.DATE.equals(name) ? f.textNode(java.time.LocalDate.ofEpochDay(n.longValue()).toString()) : n;
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

    private static void check(String name) {
        CassandraToRow<SinkRecord> smt = new CassandraToRow<>();
        smt.configure(Map.of());
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
        // captured from a Cassandra 4.1 stack (debezium-connector-cassandra-4), not 5.0
        boolean cassandra41 = name.startsWith("real_c41_");
        if (scenario != null && EXPECTED.containsKey(scenario)) {
            assertEquals(EXPECTED.get(scenario), kind, "scenario " + scenario);
        }
        Struct o = (Struct) out.value();
        o.validate();
        if (kind.startsWith("row:")) {
            assertEquals(in.topic(), out.topic());
            assertEquals(in.key(), out.key());
            List<String> set = new ArrayList<>();
            List<String> expiry = new ArrayList<>();
            for (Field f : after.schema().fields()) {
                if (f.name().startsWith("_range_")) {
                    continue;
                }
                Struct cell = after.getStruct(f.name());
                if (key.schema().field(f.name()) != null) {
                    assertEquals(key.get(f.name()), o.get(f.name()), f.name());
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
                            assertEquals(expectedJson(cellSchema(name, f.name()), rawValue),
                                    MAPPER.readTree(o.getString(f.name())), f.name());
                        }
                        catch (java.io.IOException e) {
                            throw new AssertionError(f.name() + ": not JSON: " + o.get(f.name()), e);
                        }
                    }
                }
                else {
                    assertEquals(cell.get("value"), o.get(f.name()), f.name());
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
                if (cassandra41) {
                    // The cassandra-4 agent (3.3.0.Final) writes Cassandra's raw day number (days +
                    // 2^31, as int32) for every date, and decimal as float64 (docs/transform.md,
                    // "The Cassandra 4.1 agent"): ['-5877641-06-23', '0001-01-01', '1969-12-31',
                    // '+5881580-07-11'] arrive 2^31 days off; -1.5 and 0.0 as numbers.
                    assertEquals("[\"1970-01-01\",\"+5879611-07-13\",\"+5881580-07-11\",\"1969-12-31\"]",
                            o.getString("ld"));
                    assertEquals("[[\"1969-12-31T23:59:59.999Z\",[0.0,-1.5]],[\"9999-12-31T23:59:59.999Z\",[]]]",
                            o.getString("deep"));
                }
                else {
                    assertEquals("[\"-5877641-06-23\",\"0001-01-01\",\"1969-12-31\",\"+5881580-07-11\"]",
                            o.getString("ld"));
                    assertEquals("[[\"1969-12-31T23:59:59.999Z\",[\"0.0\",\"-1.5\"]],[\"9999-12-31T23:59:59.999Z\",[]]]",
                            o.getString("deep"));
                }
            }
            if (cassandra41 && "types_insert".equals(scenario)) {
                // 4.1 agent: decimal as float64 (precision lost), varint as int64 (wrapped to 64
                // bits), date as the raw day number: what the transform is given, it passes on.
                assertEquals(1.2345678901234568E29, o.getFloat64("dc"));
                assertEquals(4362896299872285998L, o.getInt64("vi"), "-123456789012345678901234567890 mod 2^64");
                assertEquals(-165 ^ Integer.MIN_VALUE, o.getInt32("d"), "'1969-07-20' is day -165");
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
                    assertEquals(key.get(f), o.get(f.name()), f.name());
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

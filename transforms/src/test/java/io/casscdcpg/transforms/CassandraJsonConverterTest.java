package io.casscdcpg.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.storage.ConverterType;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

class CassandraJsonConverterTest {

    private static final ObjectMapper MAPPER = new ObjectMapper();

    private static final String EVENT = """
            {"schema": {"type": "struct", "fields": [
               {"field": "db", "type": "double", "optional": true},
               {"field": "f", "type": "float", "optional": true},
               {"field": "l", "type": "array", "optional": true, "items": {"type": "double", "optional": true}},
               {"field": "t", "type": "struct", "optional": true, "fields": [
                  {"field": "field1", "type": "float", "optional": true},
                  {"field": "field2", "type": "string", "optional": true}]},
               {"field": "m", "type": "map", "optional": true, "keys": {"type": "string"}, "values": {"type": "double", "optional": true}},
               {"field": "s", "type": "string", "optional": true},
               {"field": "ok", "type": "double", "optional": true}]},
             "payload": {"db": "NaN", "f": "-Infinity", "l": [1.5, "Infinity"], "t": {"field1": "NaN", "field2": "NaN"},
                         "m": {"a": "-Infinity"}, "s": "NaN", "ok": 2.5}}
            """;

    /** Kafka's logical types, a map with non-string keys, a default, bytes: what the agent never sends. */
    private static final String KAFKA_TYPES = """
            {"schema": {"type": "struct", "name": "k", "fields": [
               {"field": "dec", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "3"}},
               {"field": "day", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date", "version": 1},
               {"field": "tod", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Time", "version": 1},
               {"field": "ts", "type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
               {"field": "im", "type": "map", "optional": true, "keys": {"type": "int32"}, "values": {"type": "string", "optional": true}},
               {"field": "dflt", "type": "int32", "optional": true, "default": 7},
               {"field": "bin", "type": "bytes", "optional": true},
               {"field": "i8", "type": "int8", "optional": true},
               {"field": "i16", "type": "int16", "optional": true},
               {"field": "b", "type": "boolean", "optional": false},
               {"field": "nested", "type": "array", "optional": true, "items": {"type": "array", "items": {"type": "int64"}}}]},
             "payload": {"dec": "AeJA", "day": -25567, "tod": 86399999, "ts": -2208988800000,
                         "im": [[2, "two"], [1, null]], "dflt": null, "bin": "", "i8": -128, "i16": 32767, "b": false,
                         "nested": [[1, 9223372036854775807], []]}}
            """;

    private static CassandraJsonConverter ours() {
        return ours(false);
    }

    /** Configured as Connect configures a task's key or value converter. */
    private static CassandraJsonConverter ours(boolean isKey) {
        CassandraJsonConverter conv = new CassandraJsonConverter();
        conv.configure(Map.of("schemas.enable", "true"), isKey);
        assertEquals(isKey ? ConverterType.KEY : ConverterType.VALUE, conv.role());
        return conv;
    }

    private static byte[] bytes(String json) {
        return json.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void nonFiniteNumbersSurviveWhereTheStockConverterReadsZero() {
        JsonConverter stock = new JsonConverter();
        stock.configure(Map.of("schemas.enable", "true"), false);
        assertEquals(0.0, ((Struct) stock.toConnectData("t", bytes(EVENT)).value()).getFloat64("db"),
                "the stock converter's bug this class exists for");

        Struct v = (Struct) ours().toConnectData("t", bytes(EVENT)).value();
        assertTrue(Double.isNaN(v.getFloat64("db")));
        assertEquals(Float.NEGATIVE_INFINITY, v.getFloat32("f"));
        assertEquals(List.of(1.5, Double.POSITIVE_INFINITY), v.getArray("l"));
        assertTrue(Float.isNaN(v.getStruct("t").getFloat32("field1")));
        assertEquals("NaN", v.getStruct("t").getString("field2"), "strings stay strings");
        assertEquals(Double.NEGATIVE_INFINITY, v.getMap("m").get("a"));
        assertEquals("NaN", v.getString("s"));
        assertEquals(2.5, v.getFloat64("ok"));
        v.validate();
    }

    /** Every fixture (captured from the real agent or written by hand): same schema and value as the
     *  stock converter, apart from the non-finite numbers it reads as 0. One key and one value
     *  converter for all of them, as a task has; each part twice, so the second goes through the
     *  fast path (the topic's last schema), and once as the indented JSON (the full path). */
    @TestFactory
    Stream<DynamicTest> sameResultAsTheStockConverterOnEveryFixture() {
        Map<String, CassandraJsonConverter> convs = Map.of("key", ours(true), "value", ours(false));
        return Fixtures.all().stream().flatMap(name -> Stream.of("key", "value").map(part -> DynamicTest.dynamicTest(
                name + " " + part, () -> {
                    JsonNode node = Fixtures.raw(name).get(part);
                    String topic = Fixtures.raw(name).path("topic").asText("t");
                    CassandraJsonConverter conv = convs.get(part);
                    boolean isKey = part.equals("key");
                    if (node == null || node.isNull()) {
                        assertSameAsStock(conv, topic, null, isKey);
                        return;
                    }
                    byte[] compact = MAPPER.writeValueAsBytes(node);
                    assertSameAsStock(conv, topic, compact, isKey);
                    long full = conv.fullPaths();
                    long misses = conv.streamMisses();
                    assertSameAsStock(conv, topic, compact, isKey);
                    assertEquals(full, conv.fullPaths(), "the second time: the topic's last schema");
                    assertEquals(misses, conv.streamMisses(), "the second time: the streaming read, no tree");
                    assertSameAsStock(conv, topic, MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(node), isKey);
                })));
    }

    /** The agent's key envelopes as a task sees them: every key of every captured fixture, in turn,
     *  through one key converter beside one value converter on the same topics. Keys and values
     *  keep a fast path each (per topic and role); the results are the stock converter's. */
    @Test
    void keysAndValuesOfOneTopicEachKeepTheirFastPath() throws IOException {
        CassandraJsonConverter keys = ours(true);
        CassandraJsonConverter values = ours(false);
        JsonNode doc = Fixtures.raw("real_update_one_column");
        String topic = doc.get("topic").asText();
        byte[] key = MAPPER.writeValueAsBytes(doc.get("key"));
        byte[] value = MAPPER.writeValueAsBytes(doc.get("value"));
        for (int i = 0; i < 3; i++) {
            SchemaAndValue k = assertSameAsStock(keys, topic, key, true);
            assertSameAsStock(values, topic, value, false);
            assertEquals(Schema.Type.STRUCT, k.schema().type());
            assertSameAsStock(keys, topic, null, true); // a null key: stock's NULL, the fast path kept
        }
        assertEquals(1, keys.fullPaths(), "one full path per topic and role, then the fast path");
        assertEquals(1, values.fullPaths());
        // another key of another table on the same topic (a schema change): full path, then fast again
        JsonNode other = Fixtures.raw("real_c41_comp_insert").get("key");
        byte[] otherKey = MAPPER.writeValueAsBytes(other);
        assertSameAsStock(keys, topic, otherKey, true);
        assertSameAsStock(keys, topic, otherKey, true);
        assertEquals(2, keys.fullPaths());
        assertSameAsStock(keys, topic, key, true);
        assertEquals(3, keys.fullPaths());
    }

    /** A Kafka tombstone (null value) after a delete: the key converts as stock, the value is NULL. */
    @Test
    void aTombstonesKeyAsStockAndItsNullValueIsNull() throws IOException {
        JsonNode doc = Fixtures.raw("kafka_tombstone");
        String topic = doc.get("topic").asText();
        CassandraJsonConverter keys = ours(true);
        SchemaAndValue k = assertSameAsStock(keys, topic, MAPPER.writeValueAsBytes(doc.get("key")), true);
        assertEquals(7, ((Struct) k.value()).getInt32("order_id"));
        assertEquals(SchemaAndValue.NULL, ours(false).toConnectData(topic, null));
        assertEquals(SchemaAndValue.NULL, keys.toConnectData(topic, null));
    }

    @Test
    void kafkaLogicalTypesNonStringMapKeysAndDefaultsAsTheStockConverter() {
        SchemaAndValue out = assertSameAsStock(ours(), bytes(KAFKA_TYPES), false);
        Struct v = (Struct) out.value();
        assertEquals(new BigDecimal("123.456"), v.get("dec"));
        assertEquals(7, v.get("dflt"), "a null with a default gives the default, as the stock converter");
        assertEquals(Map.of(2, "two"), Map.of(2, v.getMap("im").get(2)));
        assertTrue(v.getMap("im").containsKey(1));
        assertEquals(0, v.getBytes("bin").length);
        Struct numeric = (Struct) assertSameAsStock(ours(), bytes(KAFKA_TYPES.replace("\"AeJA\"", "123.456")), false)
                .value();
        assertEquals(new BigDecimal("123.456"), numeric.get("dec"), "decimal.format=NUMERIC input");
    }

    /** Payloads for KAFKA_TYPES' schema: every type the agent never sends, nulls in arrays and maps,
     *  missing optional fields, unknown fields, fields in another order, numbers the tree reads
     *  specially (exponents, -0.0, beyond a double, a numeric decimal with trailing zeros). */
    private static final List<String> KAFKA_TYPES_PAYLOADS = List.of(
            "{\"dec\":\"AeJA\",\"day\":-25567,\"tod\":86399999,\"ts\":-2208988800000,\"im\":[[2,\"two\"],[1,null]],"
                    + "\"dflt\":null,\"bin\":\"\",\"i8\":-128,\"i16\":32767,\"b\":false,\"nested\":[[1,9223372036854775807],[]]}",
            "{\"b\":true}",
            "{\"unknown\":{\"x\":[1,{\"y\":null}]},\"b\":true,\"also\":[],\"dflt\":5,\"nested\":null}",
            "{\"nested\":[[],[-1]],\"im\":[],\"bin\":\"AAEC/w==\",\"b\":false,\"dec\":1.25,\"i8\":127}",
            "{\"dec\":-12,\"b\":true,\"dec2\":1,\"im\":[[-5,\"x\"],[-5,\"y\"]],\"i16\":-32768}",
            "{\"dec\":1.5,\"b\":false,\"day\":0,\"tod\":0,\"ts\":0}",
            "{\"b\":true,\"b\":false,\"dflt\":1,\"dflt\":2}",
            "{\"dec\":null,\"day\":null,\"tod\":null,\"ts\":null,\"im\":null,\"dflt\":null,\"bin\":null,\"i8\":null,"
                    + "\"i16\":null,\"b\":true,\"nested\":[]}");

    /** Numeric decimals the tree path reads through a double (JsonNode.decimalValue() of a DoubleNode:
     *  1.1, 1500.0) where the stock converter keeps the text's scale (1.10, 1.5E+3): a difference of
     *  the tree path before decision 0153, which the streaming read keeps (compared with the tree only). */
    private static final List<String> DECIMALS_AS_THE_TREE = List.of(
            "{\"b\":true,\"dec\":1.10}", "{\"b\":true,\"dec\":1.5e3}", "{\"b\":true,\"dec\":-0.0}");

    /** A second schema: floats, a map of string keys whose values are arrays with nulls, a struct in
     *  an array, a map whose keys are structs, a nullable nested map. */
    private static final String NESTED_SCHEMA = "{\"type\":\"struct\",\"fields\":["
            + "{\"field\":\"f\",\"type\":\"float\",\"optional\":true},"
            + "{\"field\":\"d\",\"type\":\"double\",\"optional\":true},"
            + "{\"field\":\"ma\",\"type\":\"map\",\"optional\":true,\"keys\":{\"type\":\"string\"},"
            + "\"values\":{\"type\":\"array\",\"optional\":true,\"items\":{\"type\":\"int64\",\"optional\":true}}},"
            + "{\"field\":\"sa\",\"type\":\"array\",\"optional\":true,\"items\":{\"type\":\"struct\",\"optional\":true,"
            + "\"fields\":[{\"field\":\"x\",\"type\":\"string\",\"optional\":true},{\"field\":\"y\",\"type\":\"bytes\",\"optional\":true}]}},"
            + "{\"field\":\"sk\",\"type\":\"map\",\"optional\":true,\"keys\":{\"type\":\"struct\",\"fields\":["
            + "{\"field\":\"k\",\"type\":\"int16\"}]},\"values\":{\"type\":\"map\",\"optional\":true,"
            + "\"keys\":{\"type\":\"int8\"},\"values\":{\"type\":\"boolean\",\"optional\":true}}}]}";

    private static final List<String> NESTED_PAYLOADS = List.of(
            "{\"f\":1.1,\"d\":-0.0,\"ma\":{\"a\":[1,null,3],\"b\":null,\"c\":[]},\"sa\":[{\"x\":\"1\",\"y\":\"AQ==\"},null,{}],"
                    + "\"sk\":[[{\"k\":1},[[1,true],[2,null]]],[{\"k\":2},null]]}",
            "{\"f\":\"NaN\",\"d\":\"-Infinity\",\"sa\":[],\"sk\":[],\"ma\":{}}",
            "{\"f\":3,\"d\":1e400,\"ma\":{\"a\":[9223372036854775807,-9223372036854775808]}}",
            "{\"f\":3.4028235E38,\"d\":4.9E-324,\"sa\":[{\"x\":\"\\u00e9\\n\\\"\",\"z\":[1]}]}",
            "{}");

    /** The streaming read gives what the tree path gives (class, content, scale, -0.0) and what the
     *  stock converter gives, on every fixture and every payload above; and it is the streaming read
     *  that served them (no miss). */
    @TestFactory
    Stream<DynamicTest> theStreamingReadGivesTheTreePathsValue() {
        Map<String, CassandraJsonConverter> streamed = Map.of("key", ours(true), "value", ours(false));
        Map<String, CassandraJsonConverter> trees = Map.of("key", ours(true), "value", ours(false));
        trees.values().forEach(c -> c.streamPayloads(false));
        Stream<DynamicTest> fixtures = Fixtures.all().stream().flatMap(name -> Stream.of("key", "value")
                .map(part -> DynamicTest.dynamicTest(name + " " + part, () -> {
                    JsonNode node = Fixtures.raw(name).get(part);
                    if (node != null && !node.isNull()) {
                        assertStreamedAsTree(streamed.get(part), trees.get(part), name, MAPPER.writeValueAsBytes(node),
                                part.equals("key"));
                    }
                })));
        String kafkaSchema = readTree(KAFKA_TYPES).get("schema").toString();
        Stream<DynamicTest> extra = Stream.concat(
                KAFKA_TYPES_PAYLOADS.stream().map(payload -> envelope(kafkaSchema, payload)),
                NESTED_PAYLOADS.stream().map(payload -> envelope(NESTED_SCHEMA, payload)))
                .map(record -> DynamicTest.dynamicTest(record, () -> {
                    CassandraJsonConverter s = ours();
                    CassandraJsonConverter t = ours();
                    t.streamPayloads(false);
                    assertStreamedAsTree(s, t, "t", bytes(record), false);
                    assertSameAsStock(s, bytes(record), false);
                }));
        Stream<DynamicTest> decimals = DECIMALS_AS_THE_TREE.stream().map(payload -> envelope(kafkaSchema, payload))
                .map(record -> DynamicTest.dynamicTest(record, () -> {
                    CassandraJsonConverter t = ours();
                    t.streamPayloads(false);
                    assertStreamedAsTree(ours(), t, "t", bytes(record), false);
                }));
        return Stream.of(fixtures, extra, decimals).flatMap(x -> x);
    }

    /** What the streaming read does not take is the tree path's: its value (a number beyond a long,
     *  a map pair of three) or its error, message and all. */
    @Test
    void whatTheStreamingReadDoesNotTakeIsTheTreePaths() {
        String kafkaSchema = readTree(KAFKA_TYPES).get("schema").toString();
        List<String> payloads = List.of(
                "{\"b\":true,\"dec\":123456789012345678901234567890}",
                "{\"b\":true,\"ts\":92233720368547758070}",
                "{\"b\":\"true\"}",
                "{\"dflt\":1}",
                "{\"b\":null}",
                "{\"b\":true,\"im\":[[1,\"a\",2]]}",
                "{\"b\":true,\"im\":[[1]]}",
                "{\"b\":true,\"im\":{\"1\":\"a\"}}",
                "{\"b\":true,\"bin\":\"not base64!\"}",
                "{\"b\":true,\"bin\":1}",
                "{\"b\":true,\"i8\":1.5}",
                "{\"b\":true,\"nested\":[[null]]}",
                "{\"b\":true,\"day\":\"x\"}",
                "{\"b\":true",
                "[]");
        for (String payload : payloads) {
            byte[] record = bytes(envelope(kafkaSchema, payload));
            CassandraJsonConverter s = ours();
            CassandraJsonConverter t = ours();
            t.streamPayloads(false);
            byte[] first = bytes(envelope(kafkaSchema, "{\"b\":true}"));
            s.toConnectData("t", first);
            t.toConnectData("t", first);
            Object expected;
            try {
                expected = t.toConnectData("t", record);
            }
            catch (DataException e) {
                DataException actual = assertThrows(DataException.class, () -> s.toConnectData("t", record), payload);
                assertEquals(e.getMessage(), actual.getMessage(), payload);
                assertEquals(1, s.streamMisses(), payload);
                continue;
            }
            assertDeepEquals(((SchemaAndValue) expected).value(), s.toConnectData("t", record).value(), payload);
            assertEquals(1, s.streamMisses(), payload);
        }
    }

    private static String envelope(String schema, String payload) {
        return "{\"schema\":" + schema + ",\"payload\":" + payload + "}";
    }

    /** Twice through each converter (the second: the fast path), then compared deeply. */
    private static void assertStreamedAsTree(CassandraJsonConverter streamed, CassandraJsonConverter tree, String topic,
            byte[] record, boolean isKey) {
        streamed.toConnectData(topic, record);
        tree.toConnectData(topic, record);
        long full = streamed.fullPaths();
        long misses = streamed.streamMisses();
        SchemaAndValue s = streamed.toConnectData(topic, record);
        SchemaAndValue t = tree.toConnectData(topic, record);
        assertEquals(full, streamed.fullPaths(), "the fast path");
        assertEquals(misses, streamed.streamMisses(), "the streaming read, no tree");
        assertSame(s.schema(), streamed.toConnectData(topic, record).schema());
        assertEquals(t.schema(), s.schema());
        assertDeepEquals(t.value(), s.value(), new String(record, StandardCharsets.UTF_8));
    }

    /** Equal by class and content (a Struct's values as put, not its defaults), bytes by content,
     *  doubles by bits (-0.0, NaN), decimals with their scale. */
    private static void assertDeepEquals(Object expected, Object actual, String where) {
        if (expected == null || actual == null) {
            assertSame(expected, actual, where);
            return;
        }
        assertEquals(expected.getClass(), actual.getClass(), where);
        if (expected instanceof byte[] e) {
            assertTrue(java.util.Arrays.equals(e, (byte[]) actual), where);
        }
        else if (expected instanceof Struct e) {
            Struct a = (Struct) actual;
            assertEquals(e.schema(), a.schema(), where);
            for (Field f : e.schema().fields()) {
                assertDeepEquals(e.getWithoutDefault(f.name()), a.getWithoutDefault(f.name()), where + " ." + f.name());
            }
        }
        else if (expected instanceof List<?> e) {
            List<?> a = (List<?>) actual;
            assertEquals(e.size(), a.size(), where);
            for (int i = 0; i < e.size(); i++) {
                assertDeepEquals(e.get(i), a.get(i), where + " [" + i + "]");
            }
        }
        else if (expected instanceof Map<?, ?> e) {
            Map<?, ?> a = (Map<?, ?>) actual;
            assertEquals(e.keySet(), a.keySet(), where);
            for (Map.Entry<?, ?> entry : e.entrySet()) {
                assertDeepEquals(entry.getValue(), a.get(entry.getKey()), where + " [" + entry.getKey() + "]");
            }
        }
        else {
            assertEquals(expected, actual, where); // Double/Float.equals compare bits; BigDecimal its scale
        }
    }

    @Test
    void theSchemaCacheHitsOnEqualBytesAndMissesOnOtherSchemas() {
        CassandraJsonConverter conv = ours();
        String other = EVENT.replace("\"field\": \"ok\", \"type\": \"double\"", "\"field\": \"ok\", \"type\": \"float\"");
        Schema a = conv.toConnectData("t", bytes(EVENT)).schema();
        Schema again = conv.toConnectData("t", bytes(EVENT.replace("\"ok\": 2.5", "\"ok\": 3.5"))).schema();
        Schema b = conv.toConnectData("t", bytes(other)).schema();
        assertSame(a, again, "same schema bytes: the cached schema");
        assertNotSame(a, b);
        assertEquals(Schema.Type.FLOAT32, b.field("ok").schema().type());
        assertEquals(3.5f, (float) ((Struct) conv.toConnectData("t", bytes(other.replace("\"ok\": 2.5", "\"ok\": 3.5")))
                .value()).getFloat32("ok"));
    }

    @Test
    void aCompactEnvelopeWithTheTopicsLastSchemaSkipsTheSchemaAndStaysStrict() {
        CassandraJsonConverter conv = ours();
        JsonNode doc = readTree(EVENT);
        String compact = "{\"schema\":" + doc.get("schema") + ",\"payload\":" + doc.get("payload") + "}";
        SchemaAndValue first = assertSameAsStock(conv, bytes(compact), false);
        String next = compact.replace("\"ok\":2.5", "\"ok\":3.5");
        SchemaAndValue second = assertSameAsStock(conv, bytes(next), false); // the fast path
        assertSame(first.schema(), second.schema());
        assertEquals(3.5, ((Struct) second.value()).getFloat64("ok"));
        assertSameAsStock(conv, bytes(compact.replace("\"ok\":2.5", "\"ok\":null")), false);
        // the same schema bytes but not exactly the envelope: the full path and its errors
        String extra = next.substring(0, next.length() - 1) + ",\"x\":1}";
        DataException e = assertThrows(DataException.class, () -> conv.toConnectData("t", bytes(extra)));
        assertTrue(e.getMessage().contains("requires \"schema\" and \"payload\""), e.getMessage());
        assertThrows(DataException.class, () -> conv.toConnectData("t", bytes(next.substring(0, next.length() - 1))));
        assertThrows(DataException.class, () -> conv.toConnectData("t", bytes(next + "}")));
        assertThrows(DataException.class, () -> conv.toConnectData("t", bytes(next.replace("\"ok\":3.5", "\"ok\":\"x\""))));
        assertEquals(first.value().toString(), conv.toConnectData("t", bytes(compact)).value().toString());
        // another topic, another schema: each topic keeps its own
        String other = compact.replace("\"field\":\"ok\",\"type\":\"double\"", "\"field\":\"ok\",\"type\":\"float\"");
        assertEquals(Schema.Type.FLOAT32, conv.toConnectData("u", bytes(other)).schema().field("ok").schema().type());
        assertSame(first.schema(), conv.toConnectData("t", bytes(next)).schema());
        assertEquals(Schema.Type.FLOAT32, conv.toConnectData("t", bytes(other)).schema().field("ok").schema().type());
    }

    @Test
    void fieldOrderPayloadFirstStillWorks() {
        JsonNode doc = readTree(EVENT);
        String flipped = "{\"payload\":" + doc.get("payload") + ",\"schema\":" + doc.get("schema") + "}";
        assertEquals(ours().toConnectData("t", bytes(EVENT)).value().toString(),
                ours().toConnectData("t", bytes(flipped)).value().toString());
    }

    @Test
    void notAnEnvelopeGetsTheStockErrorAndNullStaysNull() {
        DataException e = assertThrows(DataException.class,
                () -> ours().toConnectData("t", bytes("{\"schema\": {\"type\": \"int32\"}, \"payload\": 1, \"x\": 2}")));
        assertTrue(e.getMessage().contains("requires \"schema\" and \"payload\""), e.getMessage());
        assertThrows(DataException.class, () -> ours().toConnectData("t", bytes("{\"payload\": 1}")));
        assertEquals(SchemaAndValue.NULL, ours().toConnectData("t", null));
        assertThrows(DataException.class, () -> ours().toConnectData("t", bytes("{\"schema\": ")));
    }

    @Test
    void aValueOfTheWrongKindIsAnErrorNamingTheField() {
        String bad = EVENT.replace("\"ok\": 2.5", "\"ok\": \"x\"");
        DataException e = assertThrows(DataException.class, () -> ours().toConnectData("t", bytes(bad)));
        assertTrue(e.getMessage().contains("payload.ok"), e.getMessage());
        String required = "{\"schema\": {\"type\": \"struct\", \"fields\": [{\"field\": \"r\", \"type\": \"int32\"}]},"
                + " \"payload\": {\"r\": null}}";
        DataException r = assertThrows(DataException.class, () -> ours().toConnectData("t", bytes(required)));
        assertTrue(r.getMessage().contains("required INT32 field payload.r"), r.getMessage());
    }

    @Test
    void schemasDisabledIsTheStockConverter() {
        CassandraJsonConverter conv = new CassandraJsonConverter();
        conv.configure(Map.of("schemas.enable", "false"), false);
        SchemaAndValue out = conv.toConnectData("t", bytes("{\"a\": 1}"));
        assertEquals(null, out.schema());
        assertEquals(Map.of("a", 1L), out.value());
    }

    private static SchemaAndValue assertSameAsStock(CassandraJsonConverter conv, byte[] bytes, boolean isKey) {
        return assertSameAsStock(conv, "t", bytes, isKey);
    }

    private static SchemaAndValue assertSameAsStock(CassandraJsonConverter conv, String topic, byte[] bytes,
            boolean isKey) {
        JsonConverter stock = new JsonConverter();
        stock.configure(Map.of("schemas.enable", "true"), isKey);
        SchemaAndValue expected = stock.toConnectData(topic, bytes);
        SchemaAndValue actual = conv.toConnectData(topic, bytes);
        assertEquals(expected.schema(), actual.schema());
        if (bytes != null) {
            JsonNode payload = readTree(new String(bytes, StandardCharsets.UTF_8)).get("payload");
            boolean nonFinite = patchNonFinite(expected.schema(), expected.value(), payload);
            // rendered, so byte[] inside lists and maps compare by content, not identity
            assertEquals(Json.appendValue(new StringBuilder(), expected.value()).toString(),
                    Json.appendValue(new StringBuilder(), actual.value()).toString(),
                    nonFinite ? "non-finite numbers patched in the expectation" : "");
            if (!nonFinite) {
                assertEquals(expected.value().getClass(), actual.value().getClass());
            }
        }
        else {
            assertEquals(SchemaAndValue.NULL, expected);
            assertEquals(SchemaAndValue.NULL, actual);
        }
        return actual;
    }

    /** Puts NaN/±Infinity where the stock converter read 0 from "NaN"/"Infinity"/"-Infinity" text. */
    @SuppressWarnings("unchecked")
    private static boolean patchNonFinite(Schema schema, Object value, JsonNode json) {
        if (schema == null || value == null || json == null || json.isNull()) {
            return false;
        }
        boolean any = false;
        switch (schema.type()) {
            case STRUCT -> {
                Struct s = (Struct) value;
                for (Field f : schema.fields()) {
                    Object child = s.get(f);
                    Object fixed = nonFinite(f.schema(), json.get(f.name()));
                    if (fixed != null) {
                        s.put(f, fixed);
                        any = true;
                    }
                    else {
                        any |= patchNonFinite(f.schema(), child, json.get(f.name()));
                    }
                }
            }
            case ARRAY -> {
                List<Object> l = (List<Object>) value;
                for (int i = 0; i < l.size(); i++) {
                    Object fixed = nonFinite(schema.valueSchema(), json.get(i));
                    if (fixed != null) {
                        l.set(i, fixed);
                        any = true;
                    }
                    else {
                        any |= patchNonFinite(schema.valueSchema(), l.get(i), json.get(i));
                    }
                }
            }
            case MAP -> {
                if (json.isArray() && isFloat(schema.keySchema())) {
                    // [[key, value], ...]: the stock converter reads "NaN" and "-Infinity" keys as
                    // 0.0, so keys collapse; rebuild the map from the pairs (primitive values)
                    Map<Object, Object> m = (Map<Object, Object>) value;
                    m.clear();
                    for (JsonNode pair : json) {
                        m.put(number(schema.keySchema(), pair.get(0)), primitive(schema.valueSchema(), pair.get(1)));
                    }
                    any = true;
                }
                else if (json.isObject()) {
                    for (Map.Entry<Object, Object> e : ((Map<Object, Object>) value).entrySet()) {
                        JsonNode child = json.get(String.valueOf(e.getKey()));
                        Object fixed = nonFinite(schema.valueSchema(), child);
                        if (fixed != null) {
                            e.setValue(fixed);
                            any = true;
                        }
                        else {
                            any |= patchNonFinite(schema.valueSchema(), e.getValue(), child);
                        }
                    }
                }
            }
            default -> {
            }
        }
        return any;
    }

    private static boolean isFloat(Schema schema) {
        return schema.type() == Schema.Type.FLOAT32 || schema.type() == Schema.Type.FLOAT64;
    }

    private static Object number(Schema schema, JsonNode json) {
        Object fixed = nonFinite(schema, json);
        double d = json.doubleValue();
        return fixed != null ? fixed : schema.type() == Schema.Type.FLOAT32 ? (Object) (float) d : (Object) d;
    }

    private static Object primitive(Schema schema, JsonNode json) {
        if (json == null || json.isNull()) {
            return null;
        }
        return switch (schema.type()) {
            case INT8 -> (byte) json.intValue();
            case INT16 -> (short) json.intValue();
            case INT32 -> json.intValue();
            case INT64 -> json.longValue();
            case FLOAT32, FLOAT64 -> number(schema, json);
            case BOOLEAN -> json.booleanValue();
            case STRING -> json.textValue();
            default -> throw new AssertionError("map value of type " + schema.type() + " not rebuilt here");
        };
    }

    /** The value the stock converter gets wrong for a float/double: NaN/±Infinity written as text
     *  (read as 0.0), and -0.0 (read through BigDecimal, which has no negative zero). */
    private static Object nonFinite(Schema schema, JsonNode json) {
        if (json != null && json.isNumber() && isFloat(schema)
                && Double.doubleToRawLongBits(json.doubleValue()) == Long.MIN_VALUE) {
            return schema.type() == Schema.Type.FLOAT32 ? (Object) (-0.0f) : (Object) (-0.0);
        }
        if (json == null || !json.isTextual() || !isFloat(schema)) {
            return null;
        }
        double d = switch (json.textValue()) {
            case "NaN" -> Double.NaN;
            case "Infinity" -> Double.POSITIVE_INFINITY;
            case "-Infinity" -> Double.NEGATIVE_INFINITY;
            default -> 0.0;
        };
        return schema.type() == Schema.Type.FLOAT32 ? (Object) (float) d : (Object) d;
    }

    private static JsonNode readTree(String json) {
        try {
            return MAPPER.readTree(json);
        }
        catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}

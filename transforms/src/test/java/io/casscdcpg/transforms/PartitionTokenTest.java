package io.casscdcpg.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.Test;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The partition token against tokens a real Cassandra gave (src/test/resources/tokens/, written by
 * transforms/tools/capture_partition_tokens.py: {@code SELECT token(pk), pk} of keys bound through
 * the Python driver; the keys in the agent's JSON form, read here with the sink's converter).
 */
class PartitionTokenTest {

    private static final ObjectMapper MAPPER = new ObjectMapper();

    private static JsonNode capturedEntries() throws IOException {
        try (InputStream in = PartitionTokenTest.class.getResourceAsStream("/tokens/partition_tokens.json")) {
            assertNotNull(in, "the captured token fixtures are missing");
            return MAPPER.readTree(in).get("entries");
        }
    }

    private static SchemaAndValue key(JsonNode keyJson) throws IOException {
        CassandraJsonConverter converter = new CassandraJsonConverter();
        converter.configure(Map.of("schemas.enable", "true"), true);
        try {
            return converter.toConnectData("demo.tok_fixtures.t", MAPPER.writeValueAsBytes(keyJson));
        } finally {
            converter.close();
        }
    }

    private static PartitionToken.Spec spec(JsonNode entry) {
        List<String> columns = new ArrayList<>();
        List<String> types = new ArrayList<>();
        for (int i = 0; i < entry.get("types").size(); i++) {
            columns.add("k" + i);
            types.add(entry.get("types").get(i).asText());
        }
        return new PartitionToken.Spec(columns, types);
    }

    @Test
    void everyCapturedKeyHasCassandrasToken() throws IOException {
        JsonNode entries = capturedEntries();
        Set<String> typesSeen = new HashSet<>();
        int composites = 0;
        int refused = 0;
        List<String> wrong = new ArrayList<>();
        for (JsonNode entry : entries) {
            SchemaAndValue k = key(entry.get("key"));
            Long token = spec(entry).bind(k.schema()).token((Struct) k.value());
            Long want = entry.get("token").isNull() ? null : entry.get("token").asLong();
            if (entry.get("types").size() > 1 && entry.get("types").toString().contains("\"blob\"")) {
                // refused (the agent's form of such a key is not its bytes: decision 0154), but the
                // serialisation and hash of the true key are still Cassandra's
                if (token != null) {
                    wrong.add(entry.get("table").asText() + ": a composite key with a blob must get no token");
                }
                token = PartitionToken.token(routingKeyOf(entry, k));
            }
            if (want == null) {
                refused++;
            }
            if (!java.util.Objects.equals(want, token)) {
                wrong.add(entry.get("table").asText() + " " + entry.get("key").get("payload") + ": want " + want
                        + ", got " + token);
            }
            entry.get("types").forEach(t -> typesSeen.add(t.asText()));
            composites += entry.get("types").size() > 1 ? 1 : 0;
        }
        assertEquals(List.of(), wrong);
        assertTrue(entries.size() >= 100, "fixtures too few: " + entries.size());
        assertTrue(composites >= 8, "composite keys too few: " + composites);
        assertEquals(2, refused, "the two integral decimals (1000, 1E+3) have no token");
        assertEquals(Set.of("int", "bigint", "smallint", "tinyint", "boolean", "text", "varchar", "ascii", "blob",
                "uuid", "timeuuid", "timestamp", "date", "time", "float", "double", "inet", "varint", "decimal"),
                typesSeen);
    }

    /** The composite key's true bytes (the serializers without the composite-blob refusal). */
    private static byte[] routingKeyOf(JsonNode entry, SchemaAndValue k) {
        List<byte[]> parts = new ArrayList<>();
        Struct key = (Struct) k.value();
        for (int i = 0; i < entry.get("types").size(); i++) {
            org.apache.kafka.connect.data.Field f = k.schema().field("k" + i);
            parts.add(PartitionToken.serializer(entry.get("types").get(i).asText(), f.schema()).bytes(key.get(f)));
        }
        return PartitionToken.routingKey(parts);
    }

    @Test
    void aVectorOfThePythonDriversMurmur3Holds() {
        // core/token_ranges.partition_token(["text"], ["acme"]), the driver's own murmur3
        assertEquals(3961280000524817226L, PartitionToken.token("acme".getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

    @Test
    void theMinimumHashIsTheMaximumToken() {
        assertEquals(Long.MAX_VALUE, PartitionToken.fromHash(Long.MIN_VALUE));
        assertEquals(Long.MIN_VALUE + 1, PartitionToken.fromHash(Long.MIN_VALUE + 1));
        assertEquals(Long.MAX_VALUE, PartitionToken.fromHash(Long.MAX_VALUE));
        assertEquals(-1L, PartitionToken.fromHash(-1L));
    }

    @Test
    void typesWithoutAFaithfulFormHaveNoToken() {
        Schema intList = SchemaBuilder.array(Schema.INT32_SCHEMA).optional().build();
        Schema tuple = SchemaBuilder.struct().field("field1", Schema.OPTIONAL_INT32_SCHEMA).optional().build();
        Map<String, Schema> fields = new HashMap<>();
        fields.put("frozen<list<int>>", intList);
        fields.put("frozen<tuple<int>>", tuple);
        fields.put("duration", Schema.OPTIONAL_INT64_SCHEMA);
        fields.put("vector<float, 2>", intList);
        fields.put("'org.apache.cassandra.db.marshal.BytesType'", Schema.OPTIONAL_BYTES_SCHEMA);
        // the 4.1 agent: decimal as float64 (digits lost), varint as int64 (wrapped)
        fields.put("decimal", Schema.OPTIONAL_FLOAT64_SCHEMA);
        fields.put("varint", Schema.OPTIONAL_INT64_SCHEMA);
        // a type whose Connect form is not the expected one
        fields.put("int", Schema.OPTIONAL_STRING_SCHEMA);
        for (Map.Entry<String, Schema> e : fields.entrySet()) {
            assertNull(PartitionToken.serializer(e.getKey(), e.getValue()), e.getKey());
            Schema keySchema = SchemaBuilder.struct().field("k", e.getValue()).build();
            PartitionToken.Binding b = new PartitionToken.Spec(List.of("k"), List.of(e.getKey())).bind(keySchema);
            assertNull(b.token(new Struct(keySchema)), e.getKey());
        }
        // a key column the key schema lacks
        Schema keySchema = SchemaBuilder.struct().field("k", Schema.OPTIONAL_INT32_SCHEMA).build();
        assertNull(new PartitionToken.Spec(List.of("other"), List.of("int")).bind(keySchema)
                .token(new Struct(keySchema).put("k", 1)));
        // one component of a composite key unsupported: no token at all
        Schema two = SchemaBuilder.struct().field("a", Schema.OPTIONAL_INT32_SCHEMA)
                .field("b", Schema.OPTIONAL_INT64_SCHEMA).build();
        assertNull(new PartitionToken.Spec(List.of("a", "b"), List.of("int", "duration")).bind(two)
                .token(new Struct(two).put("a", 1).put("b", 2L)));
    }

    @Test
    void valuesTheTransformCannotReadBackHaveNoToken() {
        assertNull(PartitionToken.serializer("inet", Schema.OPTIONAL_STRING_SCHEMA).bytes("somehost/"));
        assertNull(PartitionToken.serializer("inet", Schema.OPTIONAL_STRING_SCHEMA).bytes("cafe"));
        assertNull(PartitionToken.serializer("uuid", Schema.OPTIONAL_STRING_SCHEMA).bytes("1-1-1-1-1"));
        assertNull(PartitionToken.serializer("varint", Schema.OPTIONAL_STRING_SCHEMA).bytes("12a"));
        assertNull(PartitionToken.serializer("decimal", Schema.OPTIONAL_STRING_SCHEMA).bytes("1000"));
        assertNull(PartitionToken.serializer("decimal", Schema.OPTIONAL_STRING_SCHEMA).bytes("1.5E+3"));
        assertNotNull(PartitionToken.serializer("decimal", Schema.OPTIONAL_STRING_SCHEMA).bytes("1.50"));
    }

    @Test
    void configIsParsedPercentDecoded() {
        Map<String, PartitionToken.Spec> specs = PartitionToken.parse(Map.of(
                "token.tables", "shop.orders,ks_2.t",
                "token.table.shop.orders", "tenant:text,customer_id:uuid",
                "token.table.ks_2.t", "a%2Cb%3Ac%25%2B%C3%BC:frozen%3Ctuple%3Cint%2C%20text%3E%3E"));
        assertEquals(new PartitionToken.Spec(List.of("tenant", "customer_id"), List.of("text", "uuid")),
                specs.get("shop.orders"));
        assertEquals(new PartitionToken.Spec(List.of("a,b:c%+ü"), List.of("frozen<tuple<int, text>>")),
                specs.get("ks_2.t"));
        assertEquals(Map.of(), PartitionToken.parse(Map.of()));
        assertThrows(ConfigException.class, () -> PartitionToken.parse(Map.of("token.tables", "orders")));
        assertThrows(ConfigException.class, () -> PartitionToken.parse(Map.of("token.tables", "shop.orders")));
        assertThrows(ConfigException.class, () -> PartitionToken.parse(Map.of(
                "token.tables", "shop.orders", "token.table.shop.orders", "tenant")));
        assertThrows(ConfigException.class, () -> PartitionToken.parse(Map.of(
                "token.tables", "shop.orders", "token.table.shop.orders", "t%zz:text")));
    }

    @Test
    void tableOfTopicIsTheLastTwoParts() {
        assertEquals("shop.orders", PartitionToken.tableOfTopic("cdc.shop.orders"));
        assertEquals("shop.orders", PartitionToken.tableOfTopic("a.b.shop.orders"));
        assertEquals("shop.orders", PartitionToken.tableOfTopic("shop.orders"));
        assertNull(PartitionToken.tableOfTopic("orders"));
    }

    // ---- through the transform ------------------------------------------------------------------

    private static CassandraToRow<SinkRecord> smt(Map<String, ?> props) {
        CassandraToRow<SinkRecord> smt = new CassandraToRow<>();
        smt.configure(props);
        return smt;
    }

    private static final Map<String, String> ORDERS_SPEC = Map.of(
            "token.tables", "shop.orders",
            "token.table.shop.orders", "tenant:text,customer_id:uuid");

    @Test
    void aRowRecordOfAConfiguredTableCarriesTheToken() {
        SinkRecord out = smt(ORDERS_SPEC).apply(Fixtures.load("insert"));
        // the token of ('acme', 5b6f2f0e-...) by the Python driver's murmur3 (core/token_ranges.py)
        assertEquals(8023930055943059420L, ((Struct) out.value()).get(CassandraToRow.TOKEN_FIELD));
        Schema field = out.valueSchema().field(CassandraToRow.TOKEN_FIELD).schema();
        assertEquals(Schema.Type.INT64, field.type());
        assertTrue(field.isOptional());
    }

    @Test
    void aTableWithoutSpecGetsNoTokenField() {
        assertNull(smt(Map.of()).apply(Fixtures.load("insert")).valueSchema().field(CassandraToRow.TOKEN_FIELD));
        Map<String, String> other = Map.of("token.tables", "shop.other", "token.table.shop.other", "id:int");
        assertNull(smt(other).apply(Fixtures.load("insert")).valueSchema().field(CassandraToRow.TOKEN_FIELD));
    }

    @Test
    void anUnsupportedKeyTypeGivesANullToken() {
        Map<String, String> props = Map.of("token.tables", "shop.orders",
                "token.table.shop.orders", "tenant:text,customer_id:frozen%3Clist%3Cint%3E%3E");
        SinkRecord out = smt(props).apply(Fixtures.load("insert"));
        assertNotNull(out.valueSchema().field(CassandraToRow.TOKEN_FIELD));
        assertNull(((Struct) out.value()).get(CassandraToRow.TOKEN_FIELD));
    }

    @Test
    void tombstoneRecordsHaveNoToken() {
        SinkRecord out = smt(ORDERS_SPEC).apply(Fixtures.load("partition_delete"));
        assertTrue(out.topic().endsWith(".tombstones"));
        assertNull(out.valueSchema().field(CassandraToRow.TOKEN_FIELD));
    }

    /** CPU cost of the token in a JVM loop (not an assertion: printed for decision 0154). */
    @Test
    void tokenCostIsPrinted() {
        PartitionToken.Spec spec = new PartitionToken.Spec(List.of("tenant", "customer_id"), List.of("text", "uuid"));
        SinkRecord in = Fixtures.load("insert");
        Struct key = (Struct) in.key();
        PartitionToken.Binding b = spec.bind(in.keySchema());
        long sink = 0;
        for (int i = 0; i < 200_000; i++) {
            sink += b.token(key);
        }
        int n = 1_000_000;
        var bean = java.lang.management.ManagementFactory.getThreadMXBean();
        long cpu = bean.getCurrentThreadCpuTime();
        for (int i = 0; i < n; i++) {
            sink += b.token(key);
        }
        long perEventNs = (bean.getCurrentThreadCpuTime() - cpu) / n;
        System.out.println("partition token (text, uuid): " + perEventNs + " ns CPU per key (" + sink + ")");
    }
}

package io.casscdcpg.transforms;

import static io.casscdcpg.transforms.Fixtures.e;
import static io.casscdcpg.transforms.Fixtures.entries;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** One test per fixture in src/test/resources/events/, asserting every output field. */
class CassandraToRowFixtureTest {

    private static final String CUST = "5b6f2f0e-1c1a-4e8b-9a57-2d1f3c4b5a69";
    private static final String INT32 = "org.apache.cassandra.db.marshal.Int32Type";
    private static final List<String> ROW_FIELDS = List.of("tenant", "customer_id", "order_id", "amount",
            "note", "placed_at", "qty", "status", "tags", "_cdc_writetime", "_cdc_op", "_cdc_set",
            "_cdc_expiry", "_cdc_snapshot");

    private CassandraToRow<SinkRecord> smt;

    @BeforeEach
    void setUp() {
        smt = new CassandraToRow<>();
        smt.configure(Map.of());
    }

    @AfterEach
    void tearDown() {
        smt.close();
    }

    private SinkRecord apply(String fixture) {
        return apply(Fixtures.load(fixture));
    }

    private SinkRecord apply(SinkRecord in) {
        SinkRecord out = smt.apply(in);
        if (out != null) {
            // the result must be a valid record the sink's converter path accepts
            ((Struct) out.value()).validate();
            ((Struct) out.key()).validate();
            JsonConverter json = new JsonConverter();
            json.configure(Map.of("schemas.enable", "true"), false);
            assertNotNull(json.fromConnectData(out.topic(), out.valueSchema(), out.value()));
            assertEquals(in.kafkaPartition(), out.kafkaPartition());
            assertEquals(in.kafkaOffset(), out.kafkaOffset());
            assertEquals(in.timestamp(), out.timestamp());
        }
        return out;
    }

    private static void assertRowRecord(SinkRecord in, SinkRecord out) {
        assertEquals(in.topic(), out.topic());
        assertSame(in.keySchema(), out.keySchema());
        assertSame(in.key(), out.key());
        assertEquals("io.debezium.connector.cassandra.cdc.shop.orders.Row", out.valueSchema().name());
        assertEquals(ROW_FIELDS, out.valueSchema().fields().stream().map(f -> f.name()).toList());
        for (var f : out.valueSchema().fields()) {
            boolean meta = f.name().startsWith("_cdc_") && !f.name().equals("_cdc_expiry");
            assertEquals(!meta, f.schema().isOptional(), f.name() + " optional");
        }
        // logical types of the columns survive
        assertEquals("io.debezium.data.Uuid", out.valueSchema().field("customer_id").schema().name());
        assertEquals("io.debezium.time.Timestamp", out.valueSchema().field("placed_at").schema().name());
        // collections, tuples and UDTs become JSON text for PostgreSQL jsonb
        assertEquals(Schema.Type.STRING, out.valueSchema().field("tags").schema().type());
        assertEquals(Schema.Type.INT64, out.valueSchema().field("_cdc_writetime").schema().type());
        assertEquals(Schema.Type.BOOLEAN, out.valueSchema().field("_cdc_snapshot").schema().type());
    }

    private static void assertTombstoneRecord(SinkRecord out, String topic, List<String> fields) {
        assertEquals(topic, out.topic());
        assertEquals(List.of("_cdc_tombstone_id"), out.keySchema().fields().stream().map(f -> f.name()).toList());
        assertEquals(Schema.Type.STRING, out.keySchema().field("_cdc_tombstone_id").schema().type());
        assertEquals(fields, out.valueSchema().fields().stream().map(f -> f.name()).toList());
        String id = ((Struct) out.key()).getString("_cdc_tombstone_id");
        assertTrue(id.matches("[0-9a-f]{64}"), id);
    }

    @Test
    void insertBecomesRowWithTouchedColumnsOnly() {
        SinkRecord in = Fixtures.load("insert");
        SinkRecord out = apply(in);
        assertRowRecord(in, out);
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST), e("order_id", 7),
                e("amount", 19.99), e("note", null), e("placed_at", 1764080000123L), e("qty", 2),
                e("status", "NEW"), e("tags", "[\"gift\",\"express\"]"),
                e("_cdc_writetime", 1764080000123456L), e("_cdc_op", "i"),
                e("_cdc_set", "[\"amount\",\"placed_at\",\"qty\",\"status\",\"tags\"]"),
                e("_cdc_expiry", null), e("_cdc_snapshot", false)), entries((Struct) out.value()));
    }

    @Test
    void updateOfOneColumnSetsOnlyThatColumn() {
        SinkRecord in = Fixtures.load("update_one_column");
        SinkRecord out = apply(in);
        assertRowRecord(in, out);
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST), e("order_id", 7),
                e("amount", null), e("note", null), e("placed_at", null), e("qty", null),
                e("status", "SHIPPED"), e("tags", null),
                e("_cdc_writetime", 1764080100000000L), e("_cdc_op", "u"),
                e("_cdc_set", "[\"status\"]"), e("_cdc_expiry", null), e("_cdc_snapshot", false)),
                entries((Struct) out.value()));
    }

    @Test
    void settingAColumnToNullCountsAsSet() {
        SinkRecord in = Fixtures.load("update_set_null");
        SinkRecord out = apply(in);
        assertRowRecord(in, out);
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST), e("order_id", 7),
                e("amount", null), e("note", null), e("placed_at", null), e("qty", 3),
                e("status", null), e("tags", null),
                e("_cdc_writetime", 1764080150000000L), e("_cdc_op", "u"),
                e("_cdc_set", "[\"note\",\"qty\"]"), e("_cdc_expiry", null), e("_cdc_snapshot", false)),
                entries((Struct) out.value()));
    }

    @Test
    void rowDeleteSetsEveryRegularColumnAndCarriesNoExpiry() {
        SinkRecord in = Fixtures.load("row_delete");
        SinkRecord out = apply(in);
        assertRowRecord(in, out);
        // deletion_ts of a deleted cell is the deletion time, not an expiry: _cdc_expiry stays null
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST), e("order_id", 7),
                e("amount", null), e("note", null), e("placed_at", null), e("qty", null),
                e("status", null), e("tags", null),
                e("_cdc_writetime", 1764080200000000L), e("_cdc_op", "d"),
                e("_cdc_set", "[\"amount\",\"note\",\"placed_at\",\"qty\",\"status\",\"tags\"]"),
                e("_cdc_expiry", null), e("_cdc_snapshot", false)), entries((Struct) out.value()));
    }

    @Test
    void partitionDeleteBecomesTombstone() {
        SinkRecord out = apply("partition_delete");
        assertTombstoneRecord(out, "cdc.shop.orders.tombstones", List.of("tenant", "customer_id",
                "_cdc_writetime", "_cdc_op", "_cdc_range_start", "_cdc_range_end"));
        assertEquals("io.debezium.connector.cassandra.cdc.shop.orders.Tombstone", out.valueSchema().name());
        assertEquals("io.debezium.connector.cassandra.cdc.shop.orders.TombstoneKey", out.keySchema().name());
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST),
                e("_cdc_writetime", 1764080300000000L), e("_cdc_op", "p"),
                e("_cdc_range_start", null), e("_cdc_range_end", null)), entries((Struct) out.value()));
        String canonical = "{\"key\":{\"tenant\":\"acme\",\"customer_id\":\"" + CUST + "\"},"
                + "\"op\":\"p\",\"writetime\":1764080300000000,\"range_start\":null,\"range_end\":null}";
        assertEquals(Fixtures.sha256Hex(canonical), ((Struct) out.key()).getString("_cdc_tombstone_id"));
    }

    @Test
    void partitionDeleteTakesItsTimestampFromTheCellsNotTheUpdatesMax() {
        SinkRecord batch = apply("partition_delete_in_batch");
        SinkRecord alone = apply("partition_delete");
        assertEquals(1764080300000000L, ((Struct) batch.value()).getInt64("_cdc_writetime"));
        // the same tombstone has the same id however it arrived
        assertEquals(alone.key(), batch.key());
        assertEquals(alone.value(), batch.value());
    }

    @Test
    void rangeDeleteBecomesTombstoneWithBounds() {
        SinkRecord out = apply("range_delete");
        assertTombstoneRecord(out, "cdc.shop.orders.tombstones", List.of("tenant", "customer_id",
                "_cdc_writetime", "_cdc_op", "_cdc_range_start", "_cdc_range_end"));
        String start = "{\"method\":\"EXCL_START_BOUND\",\"values\":[{\"name\":\"order_id\",\"value\":\"10\","
                + "\"type\":\"" + INT32 + "\"}]}";
        String end = "{\"method\":\"INCL_END_BOUND\",\"values\":[{\"name\":\"order_id\",\"value\":\"20\","
                + "\"type\":\"" + INT32 + "\"}]}";
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST),
                e("_cdc_writetime", 1764080400000000L), e("_cdc_op", "r"),
                e("_cdc_range_start", start), e("_cdc_range_end", end)), entries((Struct) out.value()));
        String canonical = "{\"key\":{\"tenant\":\"acme\",\"customer_id\":\"" + CUST + "\"},"
                + "\"op\":\"r\",\"writetime\":1764080400000000,\"range_start\":" + start
                + ",\"range_end\":" + end + "}";
        assertEquals(Fixtures.sha256Hex(canonical), ((Struct) out.key()).getString("_cdc_tombstone_id"));
    }

    @Test
    void partitionAndRangeTombstonesOfATableShareOneSchema() {
        SinkRecord p = apply("partition_delete");
        SinkRecord r = apply("range_delete");
        assertSame(p.valueSchema(), r.valueSchema());
        assertSame(p.keySchema(), r.keySchema());
    }

    @Test
    void rangeBoundValuesFollowTheClusteringOrder() {
        SinkRecord out = apply("range_delete_multi_clustering");
        assertTombstoneRecord(out, "cdc.shop.readings.tombstones", List.of("sensor",
                "_cdc_writetime", "_cdc_op", "_cdc_range_start", "_cdc_range_end"));
        assertEquals(List.of(
                e("sensor", "s-1"), e("_cdc_writetime", 1764080450000000L), e("_cdc_op", "r"),
                e("_cdc_range_start", "{\"method\":\"INCL_START_BOUND\",\"values\":["
                        + "{\"name\":\"day\",\"value\":\"5\",\"type\":\"" + INT32 + "\"},"
                        + "{\"name\":\"seq\",\"value\":\"3\",\"type\":\"" + INT32 + "\"}]}"),
                e("_cdc_range_end", "{\"method\":\"INCL_END_BOUND\",\"values\":["
                        + "{\"name\":\"day\",\"value\":\"5\",\"type\":\"" + INT32 + "\"}]}")),
                entries((Struct) out.value()));
    }

    @Test
    void ttlCellsReportTheirExpiry() {
        SinkRecord in = Fixtures.load("ttl_insert");
        SinkRecord out = apply(in);
        assertRowRecord(in, out);
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST), e("order_id", 8),
                e("amount", 5.5), e("note", null), e("placed_at", null), e("qty", null),
                e("status", "NEW"), e("tags", null),
                e("_cdc_writetime", 1764080500000000L), e("_cdc_op", "i"),
                e("_cdc_set", "[\"amount\",\"status\"]"),
                e("_cdc_expiry", "{\"amount\":1764084100000000,\"status\":1764084100000000}"),
                e("_cdc_snapshot", false)), entries((Struct) out.value()));
    }

    @Test
    void snapshotRowIsFlaggedAndCarriesEveryColumn() {
        SinkRecord in = Fixtures.load("snapshot_row");
        SinkRecord out = apply(in);
        assertRowRecord(in, out);
        assertEquals(List.of(
                e("tenant", "acme"), e("customer_id", CUST), e("order_id", 9),
                e("amount", 42.0), e("note", null), e("placed_at", 1764000000000L), e("qty", 1),
                e("status", "PAID"), e("tags", "[]"),
                e("_cdc_writetime", 1764090000123000L), e("_cdc_op", "i"),
                e("_cdc_set", "[\"amount\",\"note\",\"placed_at\",\"qty\",\"status\",\"tags\"]"),
                e("_cdc_expiry", "{\"status\":1764176400123000}"),
                e("_cdc_snapshot", true)), entries((Struct) out.value()));
    }

    @Test
    void kafkaTombstoneIsDropped() {
        SinkRecord in = Fixtures.load("kafka_tombstone");
        assertNull(in.value());
        assertNull(smt.apply(in));
    }

    @Test
    void partitionDeleteOnATableWithoutClusteringIsARowDelete() {
        SinkRecord in = Fixtures.load("row_delete_no_clustering");
        SinkRecord out = apply(in);
        assertEquals("cdc.shop.customers", out.topic());
        assertSame(in.key(), out.key());
        assertEquals("io.debezium.connector.cassandra.cdc.shop.customers.Row", out.valueSchema().name());
        assertEquals(List.of(
                e("id", "0d9c7a8e-2f4b-4d1e-8c6a-7b5e3f2a1d09"), e("email", null), e("name", null),
                e("_cdc_writetime", 1764080600000000L), e("_cdc_op", "d"),
                e("_cdc_set", "[\"email\",\"name\"]"), e("_cdc_expiry", null), e("_cdc_snapshot", false)),
                entries((Struct) out.value()));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "malformed_unknown_op      | unknown op 'x' (expected one of i, u, d, r)",
        "malformed_no_op           | event has no op",
        "malformed_no_ts_us        | event has no source.ts_us",
        "malformed_cell_not_struct | column 'status' in after is not a cell struct {value, deletion_ts: int64, set: boolean}",
    })
    void malformedEventsRaiseDataExceptionWithCoordinates(String fixture, String reason) {
        SinkRecord in = Fixtures.load(fixture);
        DataException ex = assertThrows(DataException.class, () -> smt.apply(in));
        assertTrue(ex.getMessage().startsWith(
                "CassandraToRow cannot transform the record at topic=cdc.shop.orders partition=0 offset=42: "),
                ex.getMessage());
        assertTrue(ex.getMessage().contains(reason), ex.getMessage());
    }

    @Test
    void aMalformedSchemaKeepsFailingAndIsNotCached() {
        SinkRecord in = Fixtures.load("malformed_cell_not_struct");
        assertThrows(DataException.class, () -> smt.apply(in));
        assertThrows(DataException.class, () -> smt.apply(in));
        // and a good record afterwards still works
        assertNotNull(smt.apply(Fixtures.load("insert")));
    }
}

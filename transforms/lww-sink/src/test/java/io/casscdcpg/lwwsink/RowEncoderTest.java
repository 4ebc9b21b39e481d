package io.casscdcpg.lwwsink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.Test;

class RowEncoderTest {

    static final Schema KEY = SchemaBuilder.struct().field("id", Schema.OPTIONAL_INT32_SCHEMA).build();
    static final Schema VALUE = SchemaBuilder.struct()
            .field("id", Schema.OPTIONAL_INT32_SCHEMA)
            .field("note", Schema.OPTIONAL_STRING_SCHEMA)
            .field("_cdc_writetime", Schema.INT64_SCHEMA)
            .field("_cdc_op", Schema.STRING_SCHEMA)
            .field("_cdc_set", Schema.STRING_SCHEMA)
            .build();

    static SinkRecord row(int id, String note, long wt) {
        Struct key = new Struct(KEY).put("id", id);
        Struct value = new Struct(VALUE).put("id", id).put("note", note).put("_cdc_writetime", wt)
                .put("_cdc_op", "u").put("_cdc_set", "[\"note\"]");
        return new SinkRecord("orders", 0, KEY, key, VALUE, value, 7);
    }

    static TableSpec spec(String target, List<String> columns) {
        return new TableSpec(target, columns, "stage", "copy", "", "", "merge", "");
    }

    @Test
    void oneLineInColumnOrder() {
        StringBuilder out = new StringBuilder();
        RowEncoder.append(out, spec("orders", List.of("id", "note", "_cdc_writetime", "_cdc_op", "_cdc_set")),
                row(1, "a\tb", 5));
        RowEncoder.append(out, spec("orders", List.of("_cdc_op", "note", "id")), row(2, null, 6));
        assertEquals("1\ta\\tb\t5\tu\t[\"note\"]\nu\t\\N\t2\n", out.toString());
    }

    @Test
    void readsTheKeyWhenTheValueHasNoSuchField() {
        Schema tkey = SchemaBuilder.struct().field("_cdc_tombstone_id", Schema.STRING_SCHEMA).build();
        Schema tval = SchemaBuilder.struct().field("id", Schema.INT32_SCHEMA).field("_cdc_op", Schema.STRING_SCHEMA)
                .build();
        SinkRecord r = new SinkRecord("orders__tombstones", 0, tkey, new Struct(tkey).put("_cdc_tombstone_id", "ab12"),
                tval, new Struct(tval).put("id", 3).put("_cdc_op", "p"), 1);
        StringBuilder out = new StringBuilder();
        RowEncoder.append(out, spec("orders__tombstones", List.of("_cdc_tombstone_id", "id", "_cdc_op")), r);
        assertEquals("ab12\t3\tp\n", out.toString());
    }

    @Test
    void aRowRecordWithoutATokenStagesNull() {
        StringBuilder out = new StringBuilder();
        RowEncoder.append(out, spec("orders", List.of("id", "note", "_cdc_op", "_cdc_token")), row(1, "x", 5));
        assertEquals("1\tx\tu\t\\N\n", out.toString());
        // a tombstone record (no _cdc_set) has no token column configured; naming one is an error
        Schema tkey = SchemaBuilder.struct().field("_cdc_tombstone_id", Schema.STRING_SCHEMA).build();
        SinkRecord tomb = new SinkRecord("orders__tombstones", 0, tkey, new Struct(tkey).put("_cdc_tombstone_id", "a"),
                tkey, new Struct(tkey).put("_cdc_tombstone_id", "a"), 1);
        assertThrows(DataException.class,
                () -> RowEncoder.append(out, spec("orders__tombstones", List.of("_cdc_token")), tomb));
    }

    @Test
    void aMissingFieldLeavesTheBufferAsItWas() {
        StringBuilder out = new StringBuilder("earlier\n");
        assertThrows(DataException.class,
                () -> RowEncoder.append(out, spec("orders", List.of("id", "_cdc_expiry")), row(1, "x", 5)));
        assertThrows(DataException.class,
                () -> RowEncoder.append(out, spec("orders", List.of("id", "note")), row(1, "nul\u0000", 5)));
        assertEquals("earlier\n", out.toString());
        SinkRecord notStruct = new SinkRecord("orders", 0, null, null, null, "text", 1);
        assertThrows(DataException.class, () -> RowEncoder.append(out, spec("orders", List.of("id")), notStruct));
    }

    static SinkRecord evolved(String set, String added) {
        Schema value = SchemaBuilder.struct()
                .field("id", Schema.OPTIONAL_INT32_SCHEMA)
                .field("added", Schema.OPTIONAL_STRING_SCHEMA)
                .field("note", Schema.OPTIONAL_STRING_SCHEMA)
                .field("_cdc_writetime", Schema.INT64_SCHEMA)
                .field("_cdc_op", Schema.STRING_SCHEMA)
                .field("_cdc_set", Schema.STRING_SCHEMA)
                .build();
        Struct v = new Struct(value).put("id", 1).put("added", added).put("note", "n").put("_cdc_writetime", 5L)
                .put("_cdc_op", "u").put("_cdc_set", set);
        return new SinkRecord("orders", 0, KEY, new Struct(KEY).put("id", 1), value, v, 9);
    }

    @Test
    void aColumnAddedAtTheSourceThatTheRecordSetsIsASchemaMismatch() {
        TableSpec old = spec("orders", List.of("id", "note", "_cdc_op"));
        StringBuilder out = new StringBuilder("earlier\n");
        // unset and null: nothing of it to lose, applied with the old columns
        RowEncoder.append(out, old, evolved("[\"note\"]", null));
        assertEquals("earlier\n1\tn\tu\n", out.toString());
        // set (to null, or to a value), or holding a value: the old SQL would lose it
        SchemaMismatchException e = assertThrows(SchemaMismatchException.class,
                () -> RowEncoder.append(out, old, evolved("[\"note\",\"added\"]", null)));
        assertTrue(e.getMessage().contains("'added'") && e.getMessage().contains("cdcctl schema apply"), e.getMessage());
        assertThrows(SchemaMismatchException.class, () -> RowEncoder.append(out, old, evolved("[]", "v")));
        assertThrows(SchemaMismatchException.class,
                () -> RowEncoder.append(out, old, evolved("[\"a\\\"b\", \"ad\\u0064ed\"]", null)));
        assertEquals("earlier\n1\tn\tu\n", out.toString());
        // the new config knows it
        RowEncoder.append(out, spec("orders", List.of("id", "added", "note")), evolved("[\"added\"]", "v"));
        assertEquals("earlier\n1\tn\tu\n1\tv\tn\n", out.toString());
    }

    @Test
    void aColumnDroppedAtTheSourceIsStagedAsNullUntilTheConfigFollows() {
        StringBuilder out = new StringBuilder();
        RowEncoder.append(out, spec("orders", List.of("id", "gone", "note", "_cdc_set")), row(1, "x", 5));
        assertEquals("1\t\\N\tx\t[\"note\"]\n", out.toString());
        // a record naming the missing column in _cdc_set is not of this table at all
        assertThrows(DataException.class,
                () -> RowEncoder.append(out, spec("orders", List.of("id", "gone")), evolved("[\"gone\"]", null)));
        // not a row record (no _cdc_set): a missing field is still an error
        Schema tkey = SchemaBuilder.struct().field("_cdc_tombstone_id", Schema.STRING_SCHEMA).build();
        SinkRecord tomb = new SinkRecord("orders__tombstones", 0, tkey, new Struct(tkey).put("_cdc_tombstone_id", "a"),
                tkey, new Struct(tkey).put("_cdc_tombstone_id", "a"), 1);
        assertThrows(DataException.class,
                () -> RowEncoder.append(out, spec("orders__tombstones", List.of("_cdc_tombstone_id", "id")), tomb));
    }

    @Test
    void setColumnsReadsAJsonArrayOfNames() {
        SinkRecord r = evolved(" [ \"a\" , \"b\\\\c\\n\" ] ", null);
        assertEquals(java.util.Set.of("a", "b\\c\n"), RowEncoder.setColumns((Struct) r.value(), r));
        SinkRecord bad = evolved("[\"a\"", null);
        assertThrows(DataException.class, () -> RowEncoder.setColumns((Struct) bad.value(), bad));
    }
}

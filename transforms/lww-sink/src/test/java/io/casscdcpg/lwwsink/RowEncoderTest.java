package io.casscdcpg.lwwsink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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
    void aMissingFieldLeavesTheBufferAsItWas() {
        StringBuilder out = new StringBuilder("earlier\n");
        assertThrows(DataException.class,
                () -> RowEncoder.append(out, spec("orders", List.of("id", "nope")), row(1, "x", 5)));
        assertThrows(DataException.class,
                () -> RowEncoder.append(out, spec("orders", List.of("id", "note")), row(1, "nul\u0000", 5)));
        assertEquals("earlier\n", out.toString());
        SinkRecord notStruct = new SinkRecord("orders", 0, null, null, null, "text", 1);
        assertThrows(DataException.class, () -> RowEncoder.append(out, spec("orders", List.of("id")), notStruct));
    }
}
